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
#   POST /api/v1/orders         an order placed (bench/orders.lua: a key of its own
#                               each), its saga run through daemon/upstream-sim at
#                               0 latency: 4 steps, 2 remote calls, a confirmation
# Figures: the best requests/s of each, the median p99 (us). Ends with
#   BENCH backendd_product ours=<req/s> base=<hello req/s> unit=req/s ratio=...
#   BENCH backendd_product_mc ...  BENCH backendd_list ...  BENCH backendd_me ...
#   BENCH backendd_<endpoint>_p99 ours=<us> base=<hello us> unit=us ratio=...
#   BENCH backendd_order ours=<orders/s> base=<product req/s> unit=req/s ratio=...
#   BENCH backendd_order_p99 ours=<us> base=<product us> unit=us ratio=...
#   BENCH backendd_order_statements ours=<db statements per order> base=1 unit=statements
# (the statements: both instances' db_queries_total over the order rounds, their
# background claims and heartbeats included, per order placed),
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
sim_bin="$(dirname "$bin")/upstream-sim"
for b in "$bin" "$hello" "$sim_bin"; do
    [ -x "$b" ] || die "$b is not an executable"
done

# shellcheck source=bench/wrk.sh
. "$(dirname "$0")/wrk.sh"

bench_db="backendd_bench_$$" # dropped at exit (wrk.sh)
psql "$BK_TEST_PG_DSN" -qc "CREATE DATABASE $bench_db" >/dev/null || die "cannot create the database $bench_db on $BK_TEST_PG_DSN"
dsn="${BK_TEST_PG_DSN/dbname=postgres/dbname=$bench_db}"
head -c 32 /dev/urandom >"$tmp/jwt.key"
# The services of an order, at 0 latency.
: >"$tmp/sim.out" # read below before the simulator may have opened it
"$sim_bin" --port 0 >"$tmp/sim.out" 2>"$tmp/sim.err" &
pids+=($!)
sim=""
for _ in $(seq 50); do
    sim=$(sed -n 's/^upstream-sim listening on \(.*\)$/\1/p' "$tmp/sim.out")
    [ -n "$sim" ] && break
    sleep 0.1
done
[ -n "$sim" ] || die "upstream-sim did not start: $(cat "$tmp/sim.err")"
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
payment_url = http://$sim
shipping_url = http://$sim
notify_url = http://$sim
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
order_product=$(post /api/v1/products '{"sku":"BENCH-ORDER","name":"Bench order","price":100,"stock":2000000000}' \
    "Authorization: Bearer $token" | jfield id)
export BENCH_TOKEN=$token BENCH_ORDER="{\"items\":[{\"product_id\":$order_product,\"quantity\":1}]}"
code=$(curl -sS -o "$tmp/order.check" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $token" -H 'Idempotency-Key: check' --data-binary "$BENCH_ORDER" "$url/api/v1/orders")
[ "$code" = 201 ] && grep -q '"status":"completed"' "$tmp/order.check" ||
    die "POST /api/v1/orders answered $code: $(cat "$tmp/order.check")"
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
# queries: both instances' db_queries_total.
queries() {
    for d in backendd backendd_mc; do curl -sS "http://127.0.0.1:${port[$d]}/metrics"; done |
        awk '/^db_queries_total/ { n += $2 } END { printf "%d\n", n }'
}
orders() { psql "$dsn" -Atc "SELECT count(*) FROM backendd.orders"; }
port[order]=${port[backendd]}
wrk -t2 -c"$conns" -d1s -s "$(dirname "$0")/orders.lua" "$url/api/v1/orders" -- warm >/dev/null ||
    die "wrk warm-up failed against order"
statements=0 placed=0
for r in $(seq "$rounds"); do
    for name in $endpoints; do
        measure "$name" "${path[$name]}" "${hdr[$name]}"
    done
    q0=$(queries) o0=$(orders)
    measure order /api/v1/orders "" "$(dirname "$0")/orders.lua" "round$r"
    statements=$((statements + $(queries) - q0)) placed=$((placed + $(orders) - o0))
done
# The orders in flight or queued for a worker when wrk stopped finish on their own.
for _ in $(seq 600); do
    [ "$(psql "$dsn" -Atc "SELECT count(*) FROM backendd.orders WHERE status <> 'completed'")" = 0 ] && break
    sleep 0.1
done
[ "$(psql "$dsn" -Atc "SELECT count(*) FROM backendd.orders WHERE status <> 'completed'")" = 0 ] ||
    die "orders not completed: $(psql "$dsn" -Atc "SELECT status, count(*) FROM backendd.orders GROUP BY 1")"
slowest="" slowest_rps=""
for name in product product_mc list me; do
    rps=$(figure "$name" 1 best)
    report "backendd_$name" "$rps" "$(figure hello 1 best)" req/s
    report "backendd_${name}_p99" "$(figure "$name" 3 median)" "$(figure hello 3 median)" us
    if [ -z "$slowest" ] || awk -v a="$rps" -v b="$slowest_rps" 'BEGIN { exit !(a < b) }'; then
        slowest=$name slowest_rps=$rps
    fi
done
report backendd_order "$(figure order 1 best)" "$(figure product 1 best)" req/s
report backendd_order_p99 "$(figure order 3 median)" "$(figure product 3 median)" us
report backendd_order_statements "$(awk -v s="$statements" -v n="$placed" 'BEGIN { printf "%.1f", n ? s / n : 0 }')" 1 statements
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
