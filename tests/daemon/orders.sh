#!/usr/bin/env bash
# backendd's orders end to end: the daemon on the harness's PostgreSQL and
# memcached, its payment, shipping and notifications services the upstream
# simulator (daemon/upstream-sim). An order that completes (stock shown at
# once, one charge, one shipment, one confirmation); the replay of a key and
# another body under it; keys per user; a key past its retention; a saga
# slower than order_wait (202, 409 with Retry-After, then its answer); a
# failure at payment and one at shipping, compensated (stock back, the charge
# refunded); out of stock; the
# payment service down: its breaker opens, orders are answered 503 without a
# call, readiness reports it, and orders go through once it is back; a charge
# that timed out (504 naming payment), refunded once the service answers; reads by
# owner and admin; the SQL invariants; /metrics after all that, clean for
# `promtool check metrics` with Prometheus's text Content-Type, and as
# OpenMetrics when asked, read by prometheus_client's parser. Outcomes only: the real waits are the
# breaker's open time (10 s: long enough for the orders that must find it open,
# under valgrind too) and a slow service's answer, which a process of its own
# cannot fake.
set -euo pipefail
# shellcheck source=tests/daemon/lib.sh
. "$top_srcdir/tests/daemon/lib.sh"
daemon_setup
sim_start
daemon_conf "$work/backendd.conf" "payment_url = $sim_url" "shipping_url = $sim_url" "notify_url = $sim_url" \
    "upstream_breaker_open = 10s" "upstream_timeout = 10s" "memcached_near_ttl = 30s" "docs = off" \
    "idempotency_retention = 1h" "order_wait = 5s"
daemon_start "$work/backendd.conf"

# stats EXPR: a Python expression over the simulator's /_stats (as j).
stats() { curl -sS "$sim_url/_stats" | python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
control() {
    [ "$(curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$1" \
        "$sim_url/_control")" = 200 ] || fail "the simulator refused $1"
}
# order TOKEN KEY BODY: the order's answer, as a client gets it: an order still
# being placed (202, or 409 without an order_status: a slow run, valgrind's) is
# asked again with its key until it has its outcome.
order() {
    for _ in $(seq 150); do
        req POST /api/v1/orders "$3" "Authorization: Bearer $1" "Idempotency-Key: $2"
        [ "$status" = 202 ] || { [ "$status" = 409 ] && ! grep -q order_status "$work/body"; } || return 0
        sleep 0.2
    done
}
stock() { psql "$dsn" -Atc "SELECT stock || ' ' || reserved FROM backendd.products WHERE id = $1"; }
# until_eq WANT CMD...: waits (UNTIL_S seconds, 10 by default, at most) until CMD prints WANT.
until_eq() {
    local want=$1 got=""
    shift
    for _ in $(seq $((${UNTIL_S:-10} * 10))); do
        got=$("$@")
        [ "$got" = "$want" ] && return 0
        sleep 0.1
    done
    fail "waited for $* to be $want: it is $got"
}

# ---------------------------------------------------------------- accounts, products
login() {
    req POST /api/v1/auth/login "{\"email\":\"$1\",\"password\":\"correct horse battery\"}"
    expect 200 "login $1"
    jget 'j["access_token"]'
}
register ann bob boss
make_admin boss
ann=$(login ann@example.com)
bob=$(login bob@example.com)
boss=$(login boss@example.com)
req POST /api/v1/products '{"sku":"O-1","name":"Teapot","price":1000,"stock":10}' "Authorization: Bearer $boss"
expect 201 "product 1"
p1=$(jget 'j["id"]')
req POST /api/v1/products '{"sku":"O-2","name":"Cup","price":250,"stock":5}' "Authorization: Bearer $boss"
expect 201 "product 2"
p2=$(jget 'j["id"]')
req POST /api/v1/products '{"sku":"O-3","name":"Spoon","price":100,"stock":1000}' "Authorization: Bearer $boss"
expect 201 "product 3"
p3=$(jget 'j["id"]')
req GET "/api/v1/products/$p1" # cached now: the order's invalidation must show
expect 200 "product 1 read"

# ---------------------------------------------------------------- an order that completes
two="{\"items\":[{\"product_id\":$p1,\"quantity\":2},{\"product_id\":$p2,\"quantity\":1}]}"
order "$ann" "" "$two"
expect 400 "an order without an Idempotency-Key"
req POST /api/v1/orders "$two" "Idempotency-Key: k1"
expect 401 "an order without a token"
order "$ann" k1 "{\"items\":[]}"
expect 422 "an order without items"
order "$ann" k1 "$two"
expect 201 "an order"
cp "$work/body" "$work/first"
o1=$(jget 'j["id"]')
[ "$(jget '(type(j["id"]).__name__, j["status"], j["total"], j["currency"], len(j["items"]))')" = \
    "('int', 'completed', 2250, 'EUR', 2)" ] || fail "the order: $(cat "$work/body")"
[ "$(jget '[(s["name"], s["status"], s["attempts"]) for s in j["steps"]]')" = \
    "[('reserve_stock', 'completed', 1), ('charge_payment', 'completed', 1), ('create_order', 'completed', 1), ('schedule_shipping', 'completed', 1)]" ] ||
    fail "the steps: $(cat "$work/body")"
[ "$(header Location)" = "/api/v1/orders/$o1" ] || fail "Location: $(header Location)"
req GET "/api/v1/products/$p1"
[ "$(jget 'j["stock"]')" = 8 ] || fail "the stock after an order, as the product shows it: $(cat "$work/body")"
[ "$(stats '(j["charges"], j["shipments"], j["refunds"])')" = "(1, 1, 0)" ] || fail "the services: $(stats j)"
until_eq 1 stats 'j["notifications"]'

# The same key and body: the first answer, and nothing done again.
order "$ann" k1 "$two"
expect 201 "a replay"
python3 -c 'import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); assert a == b, (a, b)' \
    "$work/first" "$work/body" || fail "the replay differs: $(cat "$work/body")"
[ "$(stats '(j["charges"], j["shipments"])')" = "(1, 1)" ] || fail "a replay called the services: $(stats j)"
order "$ann" k1 "{\"items\":[{\"product_id\":$p1,\"quantity\":1}]}"
expect 422 "the key with another body"
# A key past its retention places a new order, whatever the body.
psql "$dsn" -qc "UPDATE backendd.orders SET created_at = now() - interval '2 hours' WHERE id = $o1" >/dev/null
order "$ann" k1 "{\"items\":[{\"product_id\":$p2,\"quantity\":1}]}"
expect 201 "a key past its retention"
[ "$(jget 'j["id"]')" != "$o1" ] || fail "a key past its retention replayed its old order"
[ "$(psql "$dsn" -Atc "SELECT idempotency_key IS NULL FROM backendd.orders WHERE id = $o1")" = t ] ||
    fail "the old order kept its key"
# Keys are per user: bob's k1 is an order of his own.
order "$bob" k1 "{\"items\":[{\"product_id\":$p2,\"quantity\":1}]}"
expect 201 "another user's key"
ob=$(jget 'j["id"]')
[ "$ob" != "$o1" ] || fail "bob got ann's order"

# A saga slower than order_wait (5 s; shipping answers in 6 s): two requests of
# one key at once; the one that made the order answers 202 with Location, the
# other 409 with Retry-After; once the saga is over, the key answers the order.
control '{"service":"shipping","latency_ms":6000}'
slow="{\"items\":[{\"product_id\":$p2,\"quantity\":1}]}"
post_slow() {
    curl -sS -o "$work/slow$1.body" -D "$work/slow$1.head" -w '%{http_code}' -H 'Content-Type: application/json' \
        -H "Authorization: Bearer $ann" -H 'Idempotency-Key: k-slow' --data-binary "$slow" "$url/api/v1/orders" \
        >"$work/slow$1.status"
}
post_slow 1 &
slow1=$!
sleep 0.5
post_slow 2
wait "$slow1"
[ "$(sort "$work"/slow?.status | tr '\n' ' ')" = "202 409 " ] ||
    fail "two requests of one slow order: $(cat "$work"/slow?.status "$work"/slow?.body)"
for i in 1 2; do
    if [ "$(cat "$work/slow$i.status")" = 409 ]; then
        grep -qi '^Retry-After: ' "$work/slow$i.head" || fail "a 409 without Retry-After"
    else
        grep -qi '^Location: /api/v1/orders/' "$work/slow$i.head" || fail "a 202 without Location"
    fi
done
control '{"service":"shipping","latency_ms":0}'
order "$ann" k-slow "$slow"
expect 201 "the slow order, once placed"
[ "$(jget 'j["status"]')" = completed ] || fail "the slow order: $(cat "$work/body")"

# ---------------------------------------------------------------- failures, compensated
# Ten orders first: the breakers' windows (the last 20 calls) then hold enough
# successes that one failed order (6 failed calls) does not open them.
for i in $(seq 10); do
    order "$bob" "k-ok-$i" "{\"items\":[{\"product_id\":$p3,\"quantity\":1}]}"
    expect 201 "order $i of ten"
done
# ans_is STATUS STEP: the problem names the failed step and the order, compensated.
ans_is() {
    expect "$1" "a failure at $2"
    local service=None # the upstream the step calls, which the problem names
    case "$2" in charge_payment) service="'payment'" ;; schedule_shipping) service="'shipping'" ;; esac
    [ "$(jget '(j["step"], j["order_status"], type(j["order_id"]).__name__, j.get("service"))')" = \
        "('$2', 'compensated', 'int', $service)" ] || fail "the problem: $(cat "$work/body")"
    header Content-Type | grep -q '^application/problem+json' || fail "not a problem: $(header Content-Type)"
}
before=$(stock "$p1")
charges=$(stats 'j["charges"]')
control '{"service":"payment","fail_rate":1}'
order "$ann" k-pay "{\"items\":[{\"product_id\":$p1,\"quantity\":1}]}"
ans_is 502 charge_payment
op=$(jget 'j["order_id"]')
control '{"service":"payment","fail_rate":0}'
[ "$(stock "$p1")" = "$before" ] || fail "the stock after a failed payment: $(stock "$p1"), not $before"
[ "$(stats 'j["charges"]')" = "$charges" ] || fail "a failed charge took effect"
req GET "/api/v1/orders/$op" "" "Authorization: Bearer $ann"
expect 200 "the failed order"
[ "$(jget 'j["status"]')" = compensated ] || fail "the failed order: $(cat "$work/body")"

refunds=$(stats 'j["refunds"]')
control '{"service":"shipping","fail_rate":1}'
order "$ann" k-ship "{\"items\":[{\"product_id\":$p1,\"quantity\":1}]}"
ans_is 502 schedule_shipping
control '{"service":"shipping","fail_rate":0}'
[ "$(stock "$p1")" = "$before" ] || fail "the stock after a failed shipping: $(stock "$p1"), not $before"
[ "$(stats 'j["refunds"]')" = "$((refunds + 1))" ] || fail "the charge of a failed shipping was not refunded"

order "$ann" k-much "{\"items\":[{\"product_id\":$p2,\"quantity\":100}]}"
ans_is 409 reserve_stock
[ "$(stats 'j["charges"]')" = "$((charges + 1))" ] || fail "an order out of stock was charged"
order "$ann" k-none '{"items":[{"product_id":999999,"quantity":1}]}'
expect 422 "an unknown product"

# ---------------------------------------------------------------- the payment service down
control '{"service":"payment","down":true}'
opened=""
for i in $(seq 10); do
    order "$ann" "k-down-$i" "{\"items\":[{\"product_id\":$p1,\"quantity\":1}]}"
    [ "$status" = 502 ] || [ "$status" = 503 ] || fail "payment down: status $status: $(cat "$work/body")"
    if [ "$status" = 503 ] && [ "$(jget 'j["code"]')" = BK_EUNAVAIL ]; then opened=$i; break; fi
done
[ -n "$opened" ] || fail "the payment breaker did not open in 10 orders"
calls=$(stats 'j["requests"]["payment"]')
for i in 1 2 3; do
    order "$ann" "k-open-$i" "{\"items\":[{\"product_id\":$p1,\"quantity\":1}]}"
    ans_is 503 charge_payment
    [ "$(header Retry-After)" != "" ] || fail "no Retry-After with an open breaker"
done
[ "$(stats 'j["requests"]["payment"]')" = "$calls" ] || fail "an open breaker let a call through"
req GET /health/ready
expect 200 "readiness with the payment breaker open"
[ "$(jget '(j["reports"]["payment"], j["reports"]["shipping"], j["reports"]["memcached"])')" = "('open', 'closed', 'closed')" ] ||
    fail "readiness: $(cat "$work/body")"
control '{"service":"payment","down":false}'
back="" i=0 end=$((SECONDS + 60))
while [ "$SECONDS" -lt "$end" ]; do
    i=$((i + 1))
    order "$ann" "k-back-$i" "{\"items\":[{\"product_id\":$p1,\"quantity\":1}]}"
    if [ "$status" = 201 ]; then back=$i; break; fi
    sleep 0.5
done
[ -n "$back" ] || fail "orders did not go through after the payment service came back"
read -r s0 r0 <<<"$before"
[ "$(stock "$p1")" = "$((s0 - 1)) $((r0 + 1))" ] ||
    fail "the stock after the outage: $(stock "$p1") (before it: $before, one order since)"

# ---------------------------------------------------------------- the payment service slow
# A charge that timed out may have been carried out (the service answers in
# 1.5 s, after upstream_timeout's 1 s): the order is compensated, the charge
# step too, and its charge refunded once the service is quick again; the 504
# names the step and the service although that step's status is compensated,
# not failed. backendd again, with the short timeout; ten orders first, so that
# the timeouts do not open the fresh breaker.
daemon_stop
sed -i 's/^upstream_timeout = 10s$/upstream_timeout = 1s/' "$work/backendd.conf"
daemon_start "$work/backendd.conf" short-timeout
for i in $(seq 10); do
    order "$bob" "k-warm-$i" "{\"items\":[{\"product_id\":$p3,\"quantity\":1}]}"
    expect 201 "order $i of ten, after the restart"
done
before=$(stock "$p1") charges=$(stats 'j["charges"]') refunds=$(stats 'j["refunds"]')
control '{"service":"payment","latency_ms":1500}'
req POST /api/v1/orders "{\"items\":[{\"product_id\":$p1,\"quantity\":1}]}" "Authorization: Bearer $ann" \
    "Idempotency-Key: k-slow-pay"
expect 202 "an order whose charge times out, past order_wait"
os=$(jget 'j["id"]')
# The charge step's compensation runs only once its action has failed for good.
charge_step() {
    req GET "/api/v1/orders/$os" "" "Authorization: Bearer $ann"
    jget '[s["status"] for s in j["steps"] if s["name"] == "charge_payment"]'
}
UNTIL_S=120 until_eq "['compensating']" charge_step
control '{"service":"payment","latency_ms":0}'
order "$ann" k-slow-pay "{\"items\":[{\"product_id\":$p1,\"quantity\":1}]}"
ans_is 504 charge_payment
[ "$(stock "$p1")" = "$before" ] || fail "the stock after a timed-out payment: $(stock "$p1"), not $before"
[ "$(stats '(j["charges"], j["refunds"])')" = "($((charges + 1)), $((refunds + 1)))" ] ||
    fail "the timed-out charge, carried out, was not refunded once: $(stats j) (before it: $charges charges, $refunds refunds)"
order "$ann" k-after-slow "{\"items\":[{\"product_id\":$p1,\"quantity\":1}]}"
expect 201 "an order once the payment service is quick again"

# ---------------------------------------------------------------- reads
req GET "/api/v1/orders/$o1" "" "Authorization: Bearer $ann"
expect 200 "her order"
[ "$(jget '(j["status"], len(j["steps"]), j["user_id"])')" = "('completed', 4, $(psql "$dsn" -Atc "SELECT user_id FROM backendd.orders WHERE id = $o1"))" ] ||
    fail "her order: $(cat "$work/body")"
req GET "/api/v1/orders/$o1" "" "Authorization: Bearer $bob"
expect 404 "another user's order"
req GET "/api/v1/orders/$o1" "" "Authorization: Bearer $boss"
expect 200 "an order, for an admin"
req GET "/api/v1/orders?per_page=100" "" "Authorization: Bearer $bob"
bobs=$(psql "$dsn" -Atc "SELECT '[' || string_agg(o.id::text, ', ' ORDER BY o.id) || ']' FROM backendd.orders o
    JOIN backendd.users u ON u.id = o.user_id WHERE u.email = 'bob@example.com'")
[ "$(jget 'sorted(o["id"] for o in j["items"])')" = "$bobs" ] && [ "$(jget "$ob in [o['id'] for o in j['items']]")" = True ] ||
    fail "bob's orders: $(cat "$work/body")"
req GET "/api/v1/orders?per_page=100" "" "Authorization: Bearer $boss"
[ "$(jget 'j["total"]')" = "$(psql "$dsn" -Atc 'SELECT count(*) FROM backendd.orders')" ] ||
    fail "every order, for an admin: $(cat "$work/body")"
req GET "/api/v1/orders?page=999" "" "Authorization: Bearer $boss"
[ "$(jget '(j["items"], j["total"] > 0, j["total_pages"] == (j["total"] + 19) // 20)')" = "([], True, True)" ] ||
    fail "a page past the end: $(cat "$work/body")"

# ---------------------------------------------------------------- invariants
completed=$(psql "$dsn" -Atc "SELECT count(*) FROM backendd.orders WHERE status = 'completed'")
until_eq 0 psql "$dsn" -Atc "SELECT count(*) FROM backend_jobs.jobs WHERE kind = 'order-confirmation' AND state <> 'completed'"
[ "$(stats 'j["notifications"]')" = "$completed" ] || fail "$(stats 'j["notifications"]') notifications for $completed orders"
[ "$(stats 'j["shipments"] - j["cancellations"]')" = "$completed" ] || fail "shipments: $(stats j)"
[ "$(stats 'j["charges"] - j["refunds"]')" = "$completed" ] || fail "charges: $(stats j)"
[ "$(psql "$dsn" -Atc "SELECT count(*) FROM backendd.orders WHERE status NOT IN ('completed', 'compensated')")" = 0 ] ||
    fail "orders left unfinished: $(psql "$dsn" -Atc "SELECT id, status FROM backendd.orders")"
[ "$(psql "$dsn" -Atc "SELECT string_agg(sku || '=' || (stock + reserved), ' ' ORDER BY sku) FROM backendd.products")" = "O-1=10 O-2=5 O-3=1000" ] ||
    fail "stock + reserved is not what was received"
[ "$(psql "$dsn" -Atc "SELECT count(*) FROM backendd.reservations r JOIN backendd.orders o ON o.id = r.order_id
    WHERE (o.status = 'compensated') <> r.released")" = 0 ] || fail "a reservation kept or released wrongly"
req GET /metrics
grep -q '^sagas_total{saga="order",outcome="completed"} ' "$work/body" || fail "no saga outcomes in /metrics"
grep -q '^breaker_state{.*"payment"' "$work/body" || fail "no payment breaker in /metrics"
grep -q '^jobs_total{queue="notify",kind="order-confirmation",outcome="completed"} ' "$work/body" ||
    fail "no confirmation jobs in /metrics"
# The exposition after this mixed workload, as Prometheus's own checker reads it.
tr -d '\r' <"$work/head" | grep -qix 'content-type: text/plain; version=0.0.4; charset=utf-8' ||
    fail "/metrics Content-Type: $(grep -i '^content-type' "$work/head")"
command -v promtool >/dev/null || fail "promtool is missing (Debian package prometheus)"
promtool check metrics <"$work/body" >"$work/promtool" 2>&1 || fail "promtool check metrics: $(cat "$work/promtool")"
[ ! -s "$work/promtool" ] || fail "promtool check metrics found problems: $(cat "$work/promtool")"
# And as OpenMetrics, which Prometheus asks for first: the same families, read by
# the OpenMetrics parser of Prometheus's Python client (strict about _total,
# _created, UNIT and # EOF).
req GET /metrics "" 'Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5'
tr -d '\r' <"$work/head" | grep -qix 'content-type: application/openmetrics-text; version=1.0.0; charset=utf-8' ||
    fail "OpenMetrics Content-Type: $(grep -i '^content-type' "$work/head")"
/usr/bin/python3 - "$work/body" <<'EOF' || fail "the OpenMetrics text does not parse: $(tail -5 "$work/body")"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
sagas = families["sagas"]
assert sagas.type == "counter", sagas.type
assert any(s.name == "sagas_total" and s.labels.get("outcome") == "completed" and s.value > 0 for s in sagas.samples)
assert any(s.name == "sagas_created" for s in sagas.samples)
assert families["http_request_duration_seconds"].unit == "seconds"
EOF

daemon_stop
sim_stop
echo "orders: every flow passed"
