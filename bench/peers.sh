#!/usr/bin/env bash
# peers.sh: libbackend beside what users would pick instead, the same endpoints
# implemented in each, measured in one interleaved run on this machine.
#
#   peers.sh [OUT]   run from the build directory, under tests/harness/services.sh
#     OUT   where the table, the data and the chart go (default ./bench/peers)
#   env: BK_TEST_PG_DSN, BK_TEST_MEMCACHED (the harness's servers),
#        BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_CONNS (64), BENCH_IDLE (10000),
#        BENCH_RATE_SECONDS (10), BENCH_PEERS (the peers, default all:
#        fastapi fastify ulfius nginx evhttp), BENCH_WORKERS (backendd's
#        worker_threads, 2)
#
# The endpoints, and who serves each (libbackend's side first):
#   json     GET /json -> {"message":"Hello, World!"}: examples/hello_json,
#            FastAPI + uvicorn, Fastify, Ulfius, nginx (return 200), raw evhttp
#            (bench/http_raw)
#   jwt      GET /api/v1/me, a Bearer HS256 token verified (iss, aud, exp) and an
#            RBAC permission checked, answered from the claims: bench/http_me,
#            FastAPI (PyJWT), Fastify (@fastify/jwt)
#   product  GET /api/v1/products/{id}, cache-aside over memcached in front of
#            PostgreSQL, hits only (warmed up): backendd, FastAPI (psycopg +
#            pymemcache), Fastify (pg + memjs); and backendd_near, a second
#            instance with a near cache of 1 s in front of memcached (one
#            configuration key, memcached_near_ttl), beside the same peers
#   list     GET /api/v1/products?page=1, a pooled PostgreSQL query per request:
#            the same three
# Each server gets 2 CPUs' worth of workers: our 2 I/O threads (backendd: and 2
# workers), uvicorn --workers 2, a Node cluster of 2, Ulfius with a pool of 2
# threads, nginx worker_processes 2, evhttp 2 threads; access logs off
# everywhere. Every endpoint is checked once (status and document), warmed up
# for 1 s, then measured with `wrk -t2 -cCONNS -dSECONDSs` in ROUNDS rounds,
# each round running every endpoint of every server in turn, so that the
# machine's noise falls on all alike. Figures: the best and the median
# requests/s. Then:
#   idle     each /json server's RSS (summed over its processes) idle and while
#            bench/peers/idle_conns holds IDLE keep-alive connections (each
#            answered once), and the requests/s of wrk -t2 -c64 meanwhile
#   rate     latency at a fixed arrival rate: half the slowest /json server's best
#            requests/s, offered by wrk with a paced script (bench/peers/rate.lua:
#            RATE/100 connections, each pausing 10 ms before each request; wrk2
#            is not in Debian), p50, p99 and p99.9; the same for product
# Ends with one line per endpoint and peer (ours: libbackend's figure):
#   BENCH peers_<endpoint>_<peer> ours=<req/s> base=<req/s> unit=req/s ratio=...
#   BENCH peers_product_near_<peer> ours=<backendd_near req/s> base=<req/s> unit=req/s ratio=...
#   BENCH peers_idle_<peer> ours=<KB/conn> base=<KB/conn> unit=KB/conn ratio=...
#   BENCH peers_held_<peer> ours=<req/s> base=<req/s> unit=req/s ratio=...
#   BENCH peers_rate_<endpoint>_<peer>_p99 ours=<us> base=<us> unit=us ratio=...
# and writes OUT/peers.md (the tables), OUT/peers.tsv (the figures) and
# OUT/peers.png (the chart, gnuplot).
# SPDX-License-Identifier: MIT
set -euo pipefail

out=${1:-./bench/peers}
conns=${BENCH_CONNS:-64}
seconds=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-3}
idle=${BENCH_IDLE:-10000}
rate_seconds=${BENCH_RATE_SECONDS:-10}
peers=${BENCH_PEERS:-fastapi fastify ulfius nginx evhttp}
wrk_threads=2 serve_wait=20
src=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3 # Debian's: FastAPI, uvicorn and PyJWT load only there

die() { echo "peers.sh: $*" >&2; exit 1; }
[ -n "${BK_TEST_PG_DSN:-}" ] || die "BK_TEST_PG_DSN is not set: run me under tests/harness/services.sh run --"
[ -n "${BK_TEST_MEMCACHED:-}" ] || die "BK_TEST_MEMCACHED is not set: run me under tests/harness/services.sh run --"
for tool in wrk curl ss awk psql node npm gnuplot pkg-config; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
nginx=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
[ -n "$nginx" ] || die "nginx is not installed (Debian package nginx-light)"
"$python" -c 'import fastapi, uvicorn, jwt, psycopg, psycopg_pool, pymemcache' 2>/dev/null ||
    die "$python lacks FastAPI's packages (python3-fastapi uvicorn python3-jwt python3-psycopg python3-psycopg-pool python3-pymemcache)"
for b in ./examples/hello_json ./examples/jwt ./bench/http_me ./bench/http_raw ./bench/peers/ulfius \
    ./bench/peers/idle_conns ./daemon/backendd; do
    [ -x "$b" ] || die "$b is not an executable"
done
# The idle connections, the second client's, and the servers' own: every
# process started from here inherits the limit.
ulimit -Hn $((idle * 3)) 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" || die "cannot raise the open-file limit"
[ "$(ulimit -n)" -ge $((idle * 2)) ] || die "the open-file limit ($(ulimit -n)) is too low for $idle connections"

# shellcheck source=bench/wrk.sh
. "$src/wrk.sh"

# ------------------------------------------------------------------ servers
bench_db="peers_bench_$$" # dropped at exit (wrk.sh)
psql "$BK_TEST_PG_DSN" -qc "CREATE DATABASE $bench_db" >/dev/null || die "cannot create the database $bench_db"
dsn="${BK_TEST_PG_DSN/dbname=postgres/dbname=$bench_db}"
head -c 32 /dev/urandom >"$tmp/backendd.key"
head -c 32 /dev/urandom >"$tmp/peers.key"
hello='{"message":"Hello, World!"}'

# backendd as backendd.conf's defaults have it (memcached, no near cache; as
# many I/O threads and workers as CPUs: 2), and backendd_near with a near cache;
# the first migrates the database, the rows come after.
declare -A pid_of=() # server -> its pid (the libtool wrappers exec the program: the same pid)
for d in backendd backendd_near; do
    p=$(free_port)
    cat >"$tmp/$d.conf" <<EOF
listen = 127.0.0.1:$p
database_url = $dsn
memcached_servers = $BK_TEST_MEMCACHED
memcached_prefix = peers-$$-$d:
memcached_near_ttl = $([ $d = backendd ] && echo 0s || echo 1s)
jwt_key = bench HS256 $tmp/backendd.key
io_threads = 2
worker_threads = ${BENCH_WORKERS:-2}
docs = off
state_dir = $tmp/state-$d
access_log_file = off
log_level = warn
EOF
    serve "$d" "$p" "http://127.0.0.1:$p/health/ready" "" ./daemon/backendd -c "$tmp/$d.conf"
    pid_of[$d]=${pids[${#pids[@]} - 1]}
done
psql "$dsn" -qc "INSERT INTO backendd.products (sku, name, description, price, stock)
    SELECT 'PEER-' || i, 'Peer teapot ' || i, 'Cast iron, 1.2 l.', 1000 + i, 5 FROM generate_series(1, 30) i" >/dev/null
product=$(psql "$dsn" -Atc "SELECT max(id) FROM backendd.products")

# The peers' token: HS256, iss, aud, exp in an hour, a role that allows profile:read.
token=$(./examples/jwt issue --key-file "$tmp/peers.key" --alg HS256 --iss peers --aud peers-bench --sub 42 \
    --ttl 3600 --claim 'roles=["customer"]') || die "cannot issue the token"
export PEER_PG_DSN=$dsn PEER_MEMCACHED=$BK_TEST_MEMCACHED PEER_JWT_KEY_FILE=$tmp/peers.key \
    PEER_JWT_ISS=peers PEER_JWT_AUD=peers-bench

# start NAME CMD...: CMD serves GET /json on $p (the caller's free port).
start() {
    local name=$1
    shift
    serve "$name" "$p" "http://127.0.0.1:$p/json" "$hello" "$@"
    pid_of[$name]=${pids[${#pids[@]} - 1]}
}
p=$(free_port); start libbackend ./examples/hello_json --port "$p" --threads 2 --access-log=off \
    --max-connections $((idle + 1000))
p=$(free_port); start http_me ./bench/http_me --port "$p" --threads 2 --key-file "$tmp/peers.key" \
    --iss peers --aud peers-bench
for peer in $peers; do
    p=$(free_port)
    case $peer in
    fastapi)
        # uvicorn's keep-alive timeout is 5 s: the idle connections must outlive it.
        PYTHONDONTWRITEBYTECODE=1 PORT=$p PEER_CACHE_PREFIX="peers-$$-fastapi:" start fastapi "$python" -m uvicorn --app-dir "$src/peers/fastapi" \
            app:app --host 127.0.0.1 --port "$p" --workers 2 --no-access-log --log-level warning \
            --timeout-keep-alive 300 ;;
    fastify)
        "$src/../tests/harness/npm_ci.sh" "$src/peers/fastify" "$out/fastify" fastify @fastify/jwt pg memjs
        cp "$src/peers/fastify/server.js" "$out/fastify/"
        PORT=$p PEER_CACHE_PREFIX="peers-$$-fastify:" PEER_WORKERS=2 start fastify node "$out/fastify/server.js" ;;
    ulfius)
        start ulfius ./bench/peers/ulfius --port "$p" --threads 2 ;;
    nginx)
        mkdir -p "$tmp/nginx"
        sed -e "s|@PORT@|$p|" -e "s|@DIR@|$tmp/nginx|g" -e "s|@CONNECTIONS@|$((idle + 1000))|" -e "s|@NOFILE@|$(ulimit -Hn)|" \
            "$src/peers/nginx.conf.in" >"$tmp/nginx/nginx.conf"
        start nginx "$nginx" -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" ;;
    evhttp)
        start evhttp ./bench/http_raw --port "$p" --threads 2 --access-log=off ;;
    *) die "no such peer: $peer" ;;
    esac
done

# ------------------------------------------------------------------ checks
# Who serves each endpoint: libbackend's side first.
declare -A servers=([json]="libbackend $peers" [jwt]="http_me" [product]="backendd backendd_near" [list]="backendd")
for peer in fastapi fastify; do
    case " $peers " in *" $peer "*) for e in jwt product list; do servers[$e]+=" $peer"; done ;; esac
done
declare -A path=([json]=/json [jwt]=/api/v1/me [product]=/api/v1/products/$product [list]="/api/v1/products?page=1")
declare -A hdr=([json]="" [jwt]="Authorization: Bearer $token" [product]="" [list]="")
endpoints="json jwt product list"
# peer_of SERVER: the peer a server stands for ("ours" for libbackend's).
peer_of() { case $1 in libbackend | http_me | backendd) echo ours ;; backendd_near) echo ours_near ;; *) echo "$1" ;; esac; }
# check ENDPOINT SERVER: status 200 and the document the endpoint answers.
check() {
    local e=$1 s=$2 body="$tmp/$1_$2.check" code
    code=$(curl -sS -o "$body" -w '%{http_code}' ${hdr[$e]:+-H "${hdr[$e]}"} "http://127.0.0.1:${port[$s]}${path[$e]}")
    [ "$code" = 200 ] || die "$s: GET ${path[$e]} answered $code: $(cat "$body")"
    "$python" - "$e" "$product" "$body" <<'EOF' || die "$s: GET ${path[$e]} answered the wrong document: $(cat "$body")"
import json, sys
e, product, doc = sys.argv[1], int(sys.argv[2]), json.load(open(sys.argv[3]))
ok = {"json": lambda d: d == {"message": "Hello, World!"},
      "jwt": lambda d: d == {"sub": "42", "roles": ["customer"]},
      "product": lambda d: d["id"] == product and d["sku"] == "PEER-30" and d["price"] == 1030,
      "list": lambda d: len(d["items"]) == 20 and d["total"] == 30 and d["items"][0]["sku"] == "PEER-1"}[e](doc)
sys.exit(0 if ok else 1)
EOF
}
for e in $endpoints; do
    for s in ${servers[$e]}; do
        check "$e" "$s"
        port["${e}_$s"]=${port[$s]}
    done
done
# A token refused: a forged signature, then no permission.
forged="${token%.*}.$(printf 'x%.0s' $(seq 43))"
for s in ${servers[jwt]}; do
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $forged" "http://127.0.0.1:${port[$s]}/api/v1/me")
    [ "$code" = 401 ] || die "$s: a forged token answered $code"
done

# ------------------------------------------------------------------ throughput
echo "peers: wrk -t2 -c$conns -d${seconds}s, $rounds interleaved rounds, after 1 s of warm-up each;" \
    "2 CPUs' worth of workers per server; on $(nproc) cores: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
for e in $endpoints; do
    for s in ${servers[$e]}; do
        wrk -t2 -c"$conns" -d1s ${hdr[$e]:+-H "${hdr[$e]}"} "http://127.0.0.1:${port[$s]}${path[$e]}" >/dev/null ||
            die "wrk warm-up failed against $s"
    done
done
for r in $(seq "$rounds"); do
    echo "peers: round $r"
    for e in $endpoints; do
        for s in ${servers[$e]}; do
            measure "${e}_$s" "${path[$e]}" "${hdr[$e]}"
        done
    done
done

# ------------------------------------------------------------------ idle connections
# rss PID: the RSS (KB) of PID and its descendants.
rss() {
    local all=$1 next=$1 kids
    while [ -n "$next" ]; do
        kids=$(for q in $next; do cat "/proc/$q/task/"*/children 2>/dev/null; done | tr -s ' \n' ' ')
        next=${kids% }
        all+=" $next"
    done
    for q in $all; do awk '/^VmRSS:/ { print $2 }' "/proc/$q/status" 2>/dev/null; done | awk '{ n += $1 } END { print n + 0 }'
}
echo "peers: $idle idle keep-alive connections to each /json server"
for s in ${servers[json]}; do
    rss0=$(rss "${pid_of[$s]}")
    rm -f "$tmp/hold" && mkfifo "$tmp/hold"
    : >"$tmp/idle.out"
    ./bench/peers/idle_conns --port "${port[$s]}" --count "$idle" <"$tmp/hold" >"$tmp/idle.out" 2>"$tmp/idle.err" &
    holder=$!
    exec 9>"$tmp/hold"
    held=""
    for _ in $(seq 600); do
        held=$(sed -n 's/^held //p' "$tmp/idle.out")
        [ -n "$held" ] && break
        kill -0 "$holder" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$held" ] || die "idle_conns did not report against $s: $(cat "$tmp/idle.err")"
    sleep 1 # the server's side settles (the last answers written, buffers released)
    rss1=$(rss "${pid_of[$s]}")
    # The second client, while they are held.
    port[held_$s]=${port[$s]}
    measure "held_$s" /json "" >/dev/null
    exec 9>&-
    wait "$holder" || true
    still=$(sed -n 's/^still //p' "$tmp/idle.out")
    kb=$(awk -v a="$rss0" -v b="$rss1" -v n="$held" 'BEGIN { printf "%.2f", n ? (b - a) / n : 0 }')
    echo "$rss0 $rss1 $held ${still:-0} $kb" >"$tmp/idle_$s"
    printf '  %-10s idle %7d KB, holding %5d of %d: %7d KB (%s KB/conn), %s still open after the second client\n' \
        "$s" "$rss0" "$held" "$idle" "$rss1" "$kb" "${still:-?}"
done

# ------------------------------------------------------------------ fixed arrival rate
# rate ENDPOINT: every server of ENDPOINT offered half the slowest one's best
# req/s: RATE/100 connections, each pausing 10 ms before each request (wrk's
# pauses are whole milliseconds), so about RATE while the latency stays well
# under the pause.
rate() {
    local e=$1 s slowest="" r c
    for s in ${servers[$e]}; do
        r=$(figure "${e}_$s" 1 best)
        if [ -z "$slowest" ] || awk -v a="$r" -v b="$slowest" 'BEGIN { exit !(a < b) }'; then slowest=$r; fi
    done
    r=$(awk -v b="$slowest" 'BEGIN { printf "%d", b / 2 }')
    c=$(awk -v r="$r" 'BEGIN { c = int(r / 100 + 0.5); print c < 2 ? 2 : c }')
    echo "peers: $e at a fixed rate of about $r req/s ($c connections, each pausing 10 ms before each request)"
    for s in ${servers[$e]}; do
        wrk -t2 -c"$c" -d"${rate_seconds}s" ${hdr[$e]:+-H "${hdr[$e]}"} -s "$src/peers/rate.lua" \
            "http://127.0.0.1:${port[$s]}${path[$e]}" -- 10 >"$tmp/rate.out" || die "wrk failed against $s"
        grep -q 'Non-2xx' "$tmp/rate.out" && die "$s answered non-2xx responses at a fixed rate"
        sed -n 's/^RATE //p' "$tmp/rate.out" >"$tmp/rate_${e}_$s"
        [ -s "$tmp/rate_${e}_$s" ] || die "no figures from rate.lua against $s"
        awk -v s="$s" '{ printf "  %-10s %8.1f req/s  p50 %8.1f us  p99 %8.1f us  p99.9 %8.1f us\n", s, $1, $2, $3, $4 }' \
            "$tmp/rate_${e}_$s"
    done
}
rate json
rate product

# ------------------------------------------------------------------ figures
mkdir -p "$out"
ours_of() { set -- ${servers[$1]}; echo "$1"; }
: >"$out/peers.tsv"
for e in $endpoints; do
    o=$(ours_of "$e")
    for s in ${servers[$e]}; do
        printf '%s\t%s\t%s\t%s\n' "$e" "$(peer_of "$s")" "$(figure "${e}_$s" 1 best)" "$(figure "${e}_$s" 1 median)" \
            >>"$out/peers.tsv"
        case $(peer_of "$s") in ours*) continue ;; esac
        report "peers_${e}_$s" "$(figure "${e}_$o" 1 best)" "$(figure "${e}_$s" 1 best)" req/s
        [ "$e" != product ] ||
            report "peers_product_near_$s" "$(figure product_backendd_near 1 best)" "$(figure "${e}_$s" 1 best)" req/s
    done
done
read -r _ _ _ _ kb_ours <"$tmp/idle_libbackend"
for s in $peers; do
    read -r _ _ _ _ kb <"$tmp/idle_$s"
    report "peers_idle_$s" "$kb_ours" "$kb" KB/conn
    report "peers_held_$s" "$(figure held_libbackend 1 best)" "$(figure "held_$s" 1 best)" req/s
done
for e in json product; do
    o=$(ours_of "$e")
    for s in ${servers[$e]}; do
        case $(peer_of "$s") in ours*) continue ;; esac
        report "peers_rate_${e}_${s}_p99" "$(awk '{ print $3 }' "$tmp/rate_${e}_$o")" \
            "$(awk '{ print $3 }' "$tmp/rate_${e}_$s")" us
    done
done

# The tables (Markdown) and the chart.
{
    echo "Recorded $(date -u '+%Y-%m-%d') on $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)):"
    echo "wrk -t2 -c$conns, $rounds rounds of ${seconds} s, every server with 2 CPUs' worth of workers."
    echo
    echo "| endpoint | server | best req/s | median req/s | libbackend / it |"
    echo "|---|---|---:|---:|---:|"
    for e in $endpoints; do
        o=$(ours_of "$e")
        for s in ${servers[$e]}; do
            awk -v e="$e" -v s="$(peer_of "$s")" -v n="$s" -v b="$(figure "${e}_$s" 1 best)" \
                -v m="$(figure "${e}_$s" 1 median)" -v ob="$(figure "${e}_$o" 1 best)" \
                'BEGIN { us = s ~ /^ours/
                         printf "| %s | %s | %.0f | %.0f | %s |\n", e,
                                (s == "ours_near" ? "**libbackend** (backendd, near cache 1 s)" :
                                 us ? "**libbackend** (" (n == "libbackend" ? "hello_json" : n) ")" : s),
                                b, m, (us ? "" : sprintf("%.2f×", ob / b)) }'
        done
    done
    echo
    echo "| /json server | RSS idle | RSS holding $idle | KB per connection | held | req/s of a second client meanwhile |"
    echo "|---|---:|---:|---:|---:|---:|"
    for s in ${servers[json]}; do
        read -r a b h _ kb <"$tmp/idle_$s"
        printf '| %s | %d KB | %d KB | %s | %s | %.0f |\n' "$s" "$a" "$b" "$kb" "$h" "$(figure "held_$s" 1 best)"
    done
    echo
    echo "| endpoint at a fixed rate | server | req/s | p50 µs | p99 µs | p99.9 µs |"
    echo "|---|---|---:|---:|---:|---:|"
    for e in json product; do
        for s in ${servers[$e]}; do
            awk -v e="$e" -v s="$s" '{ printf "| %s | %s | %.0f | %.0f | %.0f | %.0f |\n", e, s, $1, $2, $3, $4 }' \
                "$tmp/rate_${e}_$s"
        done
    done
} >"$out/peers.md"
awk -F'\t' '{ v[$1, $2] = $3; if (!($2 in seen)) { seen[$2] = 1; col[++nc] = $2 } if (!($1 in es)) { es[$1] = 1; row[++nr] = $1 } }
    END { printf "endpoint"; for (c = 1; c <= nc; c++) printf "\t%s", (col[c] == "ours" ? "libbackend" : col[c] == "ours_near" ? "libbackend, near cache" : col[c]); print ""
          for (r = 1; r <= nr; r++) { printf "%s", row[r]
              for (c = 1; c <= nc; c++) printf "\t%s", ((row[r], col[c]) in v ? v[row[r], col[c]] : "NaN"); print "" } }' \
    "$out/peers.tsv" >"$tmp/chart.dat"
gnuplot -e "datafile='$tmp/chart.dat'; output='$out/peers.png'; columns=$(head -1 "$tmp/chart.dat" | awk -F'\t' '{ print NF }')" \
    "$src/peers/chart.gp" ||
    die "gnuplot could not draw the chart"
echo "peers: the tables in $out/peers.md, the chart in $out/peers.png"
