#!/usr/bin/env bash
# daemon/upstream-sim, the payment, shipping and notifications services of
# backendd's order saga, over HTTP: its listening line, the operations and their
# 404 and 422, Idempotency-Key scoped by operation (a repeat answers the same
# bytes and counts in duplicate_keys, a refund under the charge's key is an
# operation of its own, a failure is not remembered), /_control (only the fields
# given; 422 and no change), a service down (503, Retry-After, counted, no
# effect), fail_rate 1 (500), latency_ms, /_reset, and a graceful stop on
# SIGTERM. BK_TEST_WRAPPER (the valgrind pass sets it) runs the simulator under
# that command; its exit status must be 0. No database.
# SPDX-License-Identifier: MIT
set -euo pipefail
# shellcheck source=tests/daemon/lib.sh
. "$top_srcdir/tests/daemon/lib.sh"
work_setup
sim="$top_builddir/daemon/upstream-sim"
ok() { echo "ok - $*"; }

# ---------------------------------------------------------------- the command line
"$sim" --help >"$work/help" || fail "--help exited $?"
grep -q '^usage: upstream-sim ' "$work/help" || fail "--help printed: $(cat "$work/help")"
rc=0
"$sim" --port 70000 >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--port 70000 exited $rc, not 2"
rc=0
SIM_PORT=http "$sim" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "SIM_PORT=http exited $rc, not 2"
ok "--help, a bad --port and a bad SIM_PORT"

# ---------------------------------------------------------------- start
sim_start
addr=${sim_url#http://}
[ "$(wc -l <"$work/sim.out")" = 1 ] || fail "more than the one listening line: $(cat "$work/sim.out")"
[[ "$addr" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "the line names $addr"
[ "${addr##*:}" != 0 ] || fail "the line names port 0, not the real one"
url=$sim_url
ok "listening on $addr"

# is WHAT EXPR VALUE: the Python expression over the last body prints VALUE.
is() {
    local got
    got=$(jget "$2") || fail "$1: the body is not JSON: $(cat "$work/body")"
    [ "$got" = "$3" ] || fail "$1: $2 is $got, not $3: $(cat "$work/body")"
}
problem() {
    case "$(header Content-Type)" in application/problem+json*) ;; *) fail "$1: not problem+json: $(header Content-Type)" ;; esac
}
# stats EXPR VALUE: the expression over /_stats (as j) prints VALUE.
stats() {
    curl -sS --max-time 60 -o "$work/stats" "$url/_stats" || fail "GET /_stats failed"
    local got
    got=$(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($1)" "$work/stats")
    [ "$got" = "$2" ] || fail "/_stats: $1 is $got, not $2: $(cat "$work/stats")"
}
control() { req POST /_control "$1"; }

# ---------------------------------------------------------------- payment
charge='{"amount":1250,"currency":"EUR","order":7}'
req POST /payments "$charge" "Idempotency-Key: order-7/charge"
expect 201 "a charge"
is "a charge" "j['id'], j['amount'], j['currency'], j['status']" "pay_1 1250 EUR captured"
cp "$work/body" "$work/first"
ok "a charge: 201 pay_1 captured"

req POST /payments "$charge" "Idempotency-Key: order-7/charge"
expect 201 "the charge's key again"
cmp -s "$work/first" "$work/body" || fail "a repeated key answered $(cat "$work/body"), not $(cat "$work/first")"
stats "j['charges'], j['duplicate_keys'], j['requests']['payment']" "1 1 2"
ok "the same key again: the same body, charges 1, duplicate_keys 1"

req POST /payments/pay_1/refund "" "Idempotency-Key: order-7/charge"
expect 200 "a refund under the charge's key"
is "a refund" "j['id'], j['status'], j['amount']" "pay_1 refunded 1250"
cp "$work/body" "$work/refund"
stats "j['refunds'], j['duplicate_keys']" "1 1"
req POST /payments/pay_1/refund
expect 200 "refunding a refunded payment"
cmp -s "$work/refund" "$work/body" || fail "a second refund answered $(cat "$work/body")"
stats "j['refunds'], j['duplicate_keys'], j['requests']['payment']" "1 1 4"
ok "a refund under the charge's key is another operation; a second refund answers alike, counted once"

req POST /payments/pay_99/refund "" "Idempotency-Key: nope"
expect 404 "a refund of an unknown payment"
problem "a refund of an unknown payment"
req POST /payments/nope/refund
expect 404 "a refund of a malformed id"
ok "a refund of an unknown id: 404"

for bad in '{"amount":0,"currency":"EUR"}' '{"amount":1.5,"currency":"EUR"}' '{"amount":5,"currency":"EURO"}' \
    '{"amount":5}' '{"amount":5,"currency":"E1R"}' '[1]'; do
    req POST /payments "$bad" "Idempotency-Key: order-8/charge"
    expect 422 "the charge $bad"
    problem "the charge $bad"
done
req POST /payments '{"amount":300,"currency":"USD"}' "Idempotency-Key: order-8/charge"
expect 201 "a good charge under the key of refused ones"
is "the second charge" "j['id'], j['currency']" "pay_2 USD"
stats "j['charges'], j['duplicate_keys']" "2 1"
req POST /payments '{"amount":300,"currency":"USD"}'
expect 201 "a charge without a key"
req POST /payments '{"amount":300,"currency":"USD"}'
expect 201 "a charge without a key, again"
is "the fourth charge" "j['id']" "pay_4"
stats "j['charges'], j['duplicate_keys']" "4 1"
ok "a bad charge: 422, its key not remembered; without a key every charge takes effect"

# ---------------------------------------------------------------- shipping
req POST /shipments '{"order":7,"items":[{"product":1,"qty":2}]}' "Idempotency-Key: order-7/ship"
expect 201 "a shipment"
is "a shipment" "j['id'], j['status']" "shp_1 scheduled"
req POST /shipments '{"order":7,"items":"x"}'
expect 422 "a shipment whose items are no array"
req DELETE /shipments/shp_1 "" "Idempotency-Key: order-7/ship"
expect 200 "a cancellation under the shipment's key"
is "a cancellation" "j['id'], j['status']" "shp_1 cancelled"
cp "$work/body" "$work/cancel"
req DELETE /shipments/shp_1 "" "Idempotency-Key: another"
expect 200 "cancelling a cancelled shipment"
cmp -s "$work/cancel" "$work/body" || fail "a second cancellation answered $(cat "$work/body")"
req DELETE /shipments/shp_1 "" "Idempotency-Key: order-7/ship"
expect 200 "the cancellation's key again"
req DELETE /shipments/shp_2
expect 404 "cancelling an unknown shipment"
problem "cancelling an unknown shipment"
stats "j['shipments'], j['cancellations'], j['duplicate_keys'], j['requests']['shipping']" "1 1 2 6"
ok "a shipment and its cancellation; again: the same answer, counted once; unknown: 404"

# ---------------------------------------------------------------- notifications
req POST /notifications '{"template":"order-confirmation","order":7}' "Idempotency-Key: order-7/confirmation"
expect 202 "a notification"
is "a notification" "j['id'], j['status']" "ntf_1 sent"
req POST /notifications '{"template":"order-confirmation","order":7}' "Idempotency-Key: order-7/confirmation"
expect 202 "the notification's key again"
is "the repeated notification" "j['id']" "ntf_1"
req POST /notifications '"hello"'
expect 422 "a notification that is no object"
stats "j['notifications'], j['duplicate_keys'], j['requests']['notifications']" "1 3 3"
ok "a notification: 202, once for its key"

# ---------------------------------------------------------------- /_control
control '{"service":"shipping","latency_ms":5}'
expect 200 "setting a latency"
is "the settings" "j['service'], j['fail_rate'], j['latency_ms'], j['down']" "shipping 0.0 5 False"
control '{"service":"shipping","fail_rate":0.25}'
expect 200 "setting a fail rate"
is "the settings" "j['fail_rate'], j['latency_ms'], j['down']" "0.25 5 False"
for bad in '{"service":"billing","down":true}' '{"service":"shipping","fail_rate":1.5}' \
    '{"service":"shipping","fail_rate":-0.1}' '{"service":"shipping","fail_rate":"0.5"}' \
    '{"service":"shipping","latency_ms":-1}' '{"service":"shipping","latency_ms":2.5}' \
    '{"service":"shipping","down":"yes"}' '{"service":"shipping","down":true,"colour":"blue"}' \
    '{"down":true}' '[]'; do
    control "$bad"
    expect 422 "/_control $bad"
    problem "/_control $bad"
done
control '{"service":"shipping"}'
expect 200 "reading the settings"
is "the settings after refused changes" "j['fail_rate'], j['latency_ms'], j['down']" "0.25 5 False"
control '{"service":"payment"}'
is "the payment's settings" "j['fail_rate'], j['latency_ms'], j['down']" "0.0 0 False"
control '{"service":"shipping","fail_rate":0,"latency_ms":0}'
expect 200 "restoring shipping"
ok "/_control changes only the fields given; 422 and no change for a bad service, field, type or range"

# ---------------------------------------------------------------- down
control '{"service":"payment","down":true}'
expect 200 "payment down"
req POST /payments "$charge" "Idempotency-Key: order-9/charge"
expect 503 "a charge while payment is down"
problem "a charge while down"
[ "$(header Retry-After)" = 1 ] || fail "a 503 without Retry-After: 1: $(cat "$work/head")"
stats "j['requests']['payment'], j['charges']" "16 4"
control '{"service":"payment","down":false}'
req POST /payments "$charge" "Idempotency-Key: order-9/charge"
expect 201 "the key refused while down, once up"
stats "j['charges'], j['duplicate_keys']" "5 3"
ok "down: 503 with Retry-After, counted in requests, no charge; the key free once up"

# ---------------------------------------------------------------- fail_rate
control '{"service":"payment","fail_rate":1}'
for _ in 1 2 3; do
    req POST /payments "$charge" "Idempotency-Key: order-10/charge"
    expect 500 "a charge at fail_rate 1"
    problem "an injected failure"
done
stats "j['charges'], j['duplicate_keys']" "5 3"
control '{"service":"payment","fail_rate":0}'
req POST /payments "$charge" "Idempotency-Key: order-10/charge"
expect 201 "the failed key at fail_rate 0"
req POST /payments "$charge" "Idempotency-Key: order-10/charge"
expect 201 "the failed key, now remembered"
stats "j['charges'], j['duplicate_keys'], j['requests']['payment']" "6 4 22"
ok "fail_rate 1: 500, nothing remembered; at 0 the same key charges once"

# ---------------------------------------------------------------- latency
control '{"service":"notifications","latency_ms":200}'
expect 200 "a latency for notifications"
req POST /notifications '{"n":2}'
expect 202 "a notification that waits"
req POST /payments "$charge"
expect 201 "a charge meanwhile (no latency of its own)"
control '{"service":"notifications","latency_ms":0}'
ok "latency_ms: the answer still comes"

# ---------------------------------------------------------------- /_reset
control '{"service":"shipping","down":true,"fail_rate":0.5,"latency_ms":3}'
req POST /_reset
expect 200 "/_reset"
stats "sorted(j['requests'].items()), j['charges'], j['refunds'], j['shipments'], j['cancellations'], j['notifications'], j['duplicate_keys']" \
    "[('notifications', 0), ('payment', 0), ('shipping', 0)] 0 0 0 0 0 0"
control '{"service":"shipping"}'
is "shipping after /_reset" "j['fail_rate'], j['latency_ms'], j['down']" "0.0 0 False"
req POST /payments "$charge" "Idempotency-Key: order-7/charge"
expect 201 "a remembered key after /_reset"
is "the first charge after /_reset" "j['id']" "pay_1"
stats "j['charges'], j['duplicate_keys']" "1 0"
ok "/_reset: settings, counters, records and keys as at start"

# ---------------------------------------------------------------- stop
sim_stop
ok "SIGTERM: exit 0"
echo "PASS: upstream-sim"
