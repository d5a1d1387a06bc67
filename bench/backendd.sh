#!/usr/bin/env bash
# backendd.sh: the daemon's routes under wrk beside examples/hello_json (the
# library's smallest JSON answer, the baseline), in the same run.
#
#   backendd.sh [BACKENDD [HELLO]]   run from the build directory
#     BACKENDD  the daemon     (default ./daemon/backendd)
#     HELLO     the baseline   (default ./examples/hello_json)
#   env: BK_TEST_PG_DSN, BK_TEST_MEMCACHED (the harness's servers: make bench
#        starts them), BENCH_CONNS (64), BENCH_SECONDS (5), BENCH_ROUNDS (2),
#        BENCH_WORKERS (the daemon's worker_threads, 2), BENCH_NEAR_TTL (the
#        first instance's memcached_near_ttl, 1s), BENCH_ACCESS_LOG=off (no
#        access log),
#        BENCH_PROFILE (the endpoint profiled; default the slowest),
#        BENCH_PERF_DATA (a file to keep the profile's perf.data in)
#
# Two instances of the daemon run as operators run it: 2 I/O threads, 2
# workers, memcached as the cache, the access log on (to a file), on a database
# of their own with 30 products; the first with a near cache of 1 s in front of
# memcached, the second (product_mc) without one, as backendd.conf's default
# has it. hello_json gets 2 threads. Each endpoint is checked once with curl,
# warmed up for 1 s, then measured with `wrk -t2 -cCONNS -dSECONDSs` in rounds
# that alternate hello, product, product_mc, list, me:
#   GET /api/v1/products/{id}   cached, all hits: answered on the event loop
#                               from the near cache
#   ... (product_mc)            cached, all hits: a memcached read on a worker
#   GET /api/v1/products?page=1 a PostgreSQL query per request (count included)
#   GET /api/v1/users/me        a Bearer HS256 JWT verified, then a primary-key read
# Figures: the best requests/s of each, the median p99 (us). Ends with
#   BENCH backendd_product ours=<req/s> base=<hello req/s> unit=req/s ratio=...
#   BENCH backendd_product_mc ...  BENCH backendd_list ...  BENCH backendd_me ...
#   BENCH backendd_<endpoint>_p99 ours=<us> base=<hello us> unit=us ratio=...
# and, when perf works here, the top symbols of the daemon under the slowest
# endpoint's load.
# SPDX-License-Identifier: MIT
set -euo pipefail

bin=${1:-./daemon/backendd}
hello=${2:-./examples/hello_json}
conns=${BENCH_CONNS:-64}
seconds=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-2}
wrk_threads=2

die() { echo "backendd.sh: $*" >&2; exit 1; }
[ -n "${BK_TEST_PG_DSN:-}" ] || die "BK_TEST_PG_DSN is not set: run me under tests/harness/services.sh run --"
[ -n "${BK_TEST_MEMCACHED:-}" ] || die "BK_TEST_MEMCACHED is not set: run me under tests/harness/services.sh run --"
for tool in wrk curl ss awk psql python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
for b in "$bin" "$hello"; do
    [ -x "$b" ] || die "$b is not an executable"
done

tmp=$(mktemp -d)
pids=()
declare -A port=()
db="backendd_bench_$$"
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$BK_TEST_PG_DSN" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# shellcheck source=bench/wrk.sh
. "$(dirname "$0")/wrk.sh"

psql "$BK_TEST_PG_DSN" -qc "CREATE DATABASE $db" >/dev/null || die "cannot create the database $db on $BK_TEST_PG_DSN"
dsn="${BK_TEST_PG_DSN/dbname=postgres/dbname=$db}"
head -c 32 /dev/urandom >"$tmp/jwt.key"
# conf NAME NEAR_TTL PORT: the daemon's configuration file, $tmp/NAME.conf.
conf() {
    cat >"$tmp/$1.conf" <<EOF
listen = 127.0.0.1:$3
database_url = $dsn
memcached_servers = $BK_TEST_MEMCACHED
memcached_prefix = bench-$$-$1:
jwt_key = bench HS256 $tmp/jwt.key
jwt_issuer = bench
io_threads = 2
worker_threads = ${BENCH_WORKERS:-2}
argon2_memory_kib = 64
argon2_iterations = 1
docs = off
state_dir = $tmp/state-$1
access_log_file = ${BENCH_ACCESS_LOG:-$tmp/$1.access.log}
log_level = warn
memcached_near_ttl = $2
EOF
}
near=${BENCH_NEAR_TTL:-1s}
declare -A pid_of=()
for d in backendd backendd_mc; do
    p=$(free_port)
    conf "$d" "$([ "$d" = backendd ] && echo "$near" || echo 0s)" "$p"
    serve "$d" "$p" "http://127.0.0.1:$p/health/ready" "" "$bin" -c "$tmp/$d.conf"
    pid_of[$d]=${pids[${#pids[@]} - 1]} # the libtool wrapper execs the daemon: the same pid
done
p=$(free_port)
serve hello "$p" "http://127.0.0.1:$p/json" '{"message":"Hello, World!"}' "$hello" --port "$p" --threads 2 \
    --access-log=off
url="http://127.0.0.1:${port[backendd]}"

# post PATH BODY [HEADER]: the answer's body; dies unless 2xx.
post() {
    curl -fsS -H 'Content-Type: application/json' ${3:+-H "$3"} --data-binary "$2" "$url$1" ||
        die "POST $1 failed"
}
jfield() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
post /api/v1/auth/register '{"email":"bench@example.com","password":"a long enough password","name":"Bench"}' >/dev/null
psql "$dsn" -qc "UPDATE backendd.users SET role = 'editor' WHERE email = 'bench@example.com'" >/dev/null
token=$(post /api/v1/auth/login '{"email":"bench@example.com","password":"a long enough password"}' |
    jfield access_token)
for i in $(seq 30); do
    id=$(post /api/v1/products "{\"sku\":\"BENCH-$i\",\"name\":\"Bench teapot $i\",\"description\":\"Cast iron.\",\"price\":$((1000 + i)),\"stock\":5}" \
        "Authorization: Bearer $token" | jfield id)
done
endpoints="hello product product_mc list me"
declare -A path=([hello]=/json [product]="/api/v1/products/$id" [product_mc]="/api/v1/products/$id"
    [list]="/api/v1/products?page=1" [me]=/api/v1/users/me)
declare -A hdr=([hello]="" [product]="" [product_mc]="" [list]="" [me]="Authorization: Bearer $token")
declare -A server=([hello]=hello [product]=backendd [product_mc]=backendd_mc [list]=backendd [me]=backendd)
for name in $endpoints; do
    port[$name]=${port[${server[$name]}]}
    code=$(curl -sS -o "$tmp/$name.check" -w '%{http_code}' ${hdr[$name]:+-H "${hdr[$name]}"} \
        "http://127.0.0.1:${port[$name]}${path[$name]}")
    [ "$code" = 200 ] || die "$name: GET ${path[$name]} answered $code: $(cat "$tmp/$name.check")"
done
if ! grep -q '"items"' "$tmp/list.check" || ! grep -q '"sku":"BENCH-30"' "$tmp/product.check" ||
    ! cmp -s "$tmp/product.check" "$tmp/product_mc.check" ||
    ! grep -q '"email":"bench@example.com"' "$tmp/me.check"; then
    die "an endpoint answered the wrong document"
fi

echo "backendd: 2 I/O threads, ${BENCH_WORKERS:-2} workers, access log ${BENCH_ACCESS_LOG:-on}," \
    "memcached $([ "$near" = 0s ] && echo "without a near cache" || echo "behind a near cache of $near")" \
    "(product_mc: a second instance without one);" \
    "hello_json: 2 threads; wrk -t2 -c$conns -d${seconds}s, $rounds rounds; best req/s, median p99"
for name in $endpoints; do
    wrk -t2 -c"$conns" -d1s ${hdr[$name]:+-H "${hdr[$name]}"} "http://127.0.0.1:${port[$name]}${path[$name]}" \
        >/dev/null || die "wrk warm-up failed against $name"
done
for _ in $(seq "$rounds"); do
    for name in $endpoints; do
        measure "$name" "${path[$name]}" "${hdr[$name]}"
    done
done
slowest="" slowest_rps=""
for name in product product_mc list me; do
    rps=$(figure "$name" 1 best)
    report "backendd_$name" "$rps" "$(figure hello 1 best)" req/s
    report "backendd_${name}_p99" "$(figure "$name" 3 median)" "$(figure hello 3 median)" us
    if [ -z "$slowest" ] || awk -v a="$rps" -v b="$slowest_rps" 'BEGIN { exit !(a < b) }'; then
        slowest=$name slowest_rps=$rps
    fi
done
if [ -z "${BENCH_ACCESS_LOG:-}" ]; then
    lines=$(cat "$tmp"/backendd*.access.log | wc -l)
    [ "$lines" -gt 0 ] || die "the access log is empty"
    echo "backendd: $lines access-log lines written"
fi

# Where the slowest endpoint's time goes (BENCH_PROFILE names another).
slowest=${BENCH_PROFILE:-$slowest}
if command -v perf >/dev/null && perf stat -e instructions true >/dev/null 2>&1; then
    bd_pid=${pid_of[${server[$slowest]}]}
    echo "backendd: the profile of $slowest (perf record -g, 3 s under wrk)"
    wrk -t2 -c"$conns" -d5s ${hdr[$slowest]:+-H "${hdr[$slowest]}"} \
        "http://127.0.0.1:${port[$slowest]}${path[$slowest]}" >/dev/null &
    load=$!
    sleep 1
    perf record -q -g -o "$tmp/perf.data" -p "$bd_pid" -- sleep 3 >/dev/null 2>&1 || true
    wait "$load" || true
    perf report -q -i "$tmp/perf.data" --stdio --no-children --sort dso,symbol 2>/dev/null |
        grep -E '^ +[0-9.]+%' | sed 's/[ -]*$//' | head -n "${BENCH_PROFILE_LINES:-15}" || true
    [ -z "${BENCH_PERF_DATA:-}" ] || cp "$tmp/perf.data" "$BENCH_PERF_DATA"
else
    echo "backendd: no profile (perf is missing or not allowed here: Debian linux-perf)"
fi
