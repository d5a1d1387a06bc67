#!/usr/bin/env bash
# Faults under load: backendd on a PostgreSQL and a memcached of its own (a
# services.sh of its own, never the servers other suites are using) and the
# upstream simulator, under the steady mixed load of tests/daemon/load.py
# (product reads, logins, orders), while, one after another:
#   memcached is killed (SIGKILL) and started again on its port;
#   PostgreSQL is stopped and started again;
#   the payment service is down, then back;
#   it is slow (2 s answers, beyond upstream_timeout), then fast again;
#   the worker queue is full (a burst of 48 more clients).
# Each lasts BK_CHAOS_FAULT_SECONDS (3 in make check; make soak: 10), the
# payment service's twice that (its breaker opens after 10 failed calls, which
# orders make slowly: each failed call is tried 3 times, as Retry-After says),
# and BK_CHAOS_SETTLE_SECONDS (2; make soak: 12) pass after each. Checks:
#   - no answer missing and no 5xx but the documented ones (backendd(8)): 503
#     with Retry-After, 502/504 problem+json naming the service;
#   - /health/ready answered throughout, reported each fault while it lasted,
#     and was ready again (200, every breaker closed) within 30 s of its end;
#     it stayed ready (200) through the faults of memcached and the payment
#     service, which the instance outlives (reports, not checks);
#   - the daemon still runs (no crash; under the sanitizers, no report: one
#     exits the process), and its log has no sanitizer line;
#   - once every saga has finished, the order invariants: every order
#     completed or compensated, as its client was told; stock + reserved as
#     stocked; a reservation released exactly for a compensated order; the
#     simulator's charges less refunds, shipments less cancellations and
#     notifications each equal to the orders completed: nothing lost, nothing
#     done twice.
# Prints, per fault, the answers and how soon readiness and throughput came
# back; BK_CHAOS_RECOVERY=yes (make soak, a plain build) also asserts that
# answers per second (2xx, reads and logins) were back to 90% of their level
# in the 3 s before each fault within 10 s of its end. The valgrind pass (BK_SLOW_CHECKS=no) skips it: the
# sanitizer pass has run it.
# SPDX-License-Identifier: MIT
set -euo pipefail
if [ "${BK_SLOW_CHECKS:-yes}" = no ]; then
    echo "SKIP: the chaos test runs once, in the sanitizer pass"
    exit 77
fi
if [ -z "${BK_CHAOS_OWN_SERVICES:-}" ]; then
    exec "$top_srcdir/tests/harness/services.sh" run -- env BK_CHAOS_OWN_SERVICES=1 bash "$0" "$@"
fi
fault_secs=${BK_CHAOS_FAULT_SECONDS:-3}
settle_secs=${BK_CHAOS_SETTLE_SECONDS:-2}
# The cluster its services.sh lets it stop and start, and a memcached of its own.
export BK_TEST_PG_DSN=$BK_TEST_PG_RESTART_DSN
# shellcheck source=tests/daemon/lib.sh
. "$top_srcdir/tests/daemon/lib.sh"
# shellcheck source=tests/harness/memcached.sh
. "$top_srcdir/tests/harness/memcached.sh"
daemon_setup
load_pid=""
mc_pid=""
chaos_cleanup() {
    [ -z "$load_pid" ] || kill "$load_pid" 2>/dev/null || true
    [ -z "$mc_pid" ] || kill -9 "$mc_pid" 2>/dev/null || true
    $BK_TEST_PG_CTL start >/dev/null 2>&1 || true # for the database's drop
    daemon_cleanup
}
trap chaos_cleanup EXIT
memcached_start "$work/memcached.log" || fail "memcached did not start: $(cat "$work/memcached.log")"
export BK_TEST_MEMCACHED="127.0.0.1:$mc_port"
sim_start
# Short breaker and lease times, so that each fault's end is soon seen; a
# queue of 16 for the 4 workers, so that a burst fills it.
daemon_conf "$work/backendd.conf" "payment_url = $sim_url" "shipping_url = $sim_url" "notify_url = $sim_url" \
    "docs = off" "login_rate_email = 1000000/1m" "login_rate_address = 1000000/1m" "order_wait = 5s" \
    "upstream_timeout = 1s" "upstream_breaker_open = 1s" "job_lease = 3s" \
    "worker_queue = 16" "database_pool_size = 4"
daemon_start "$work/backendd.conf"

load_setup CHAOS 100000

control() {
    [ "$(curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$1" \
        "$sim_url/_control")" = 200 ] || fail "the simulator refused $1"
}
now() { date +%s.%N; }
# mark NAME: the fault's phases on the wall clock, in $work/marks.
mark() { echo "$1 $(now)" >>"$work/marks"; }
# ready_again FAULT: waits (30 s at most) for a readiness line after now that is
# 200 with every breaker closed; marks FAULT.ready, then lets the load settle.
ready_again() {
    local since
    since=$(now)
    for _ in $(seq 300); do
        if /usr/bin/python3 - "$work/ready" "$since" <<'EOF'; then mark "$1.ready"; sleep "$settle_secs"; return 0; fi
import json, sys
for line in open(sys.argv[1]):
    t, status, body = line.split(" ", 2)
    if float(t) > float(sys.argv[2]) and status == "200" and \
            all(v == "closed" for v in json.loads(body).get("reports", {}).values()):
        sys.exit(0)
sys.exit(1)
EOF
        kill -0 "$pid" 2>/dev/null || fail "backendd exited during the fault $1"
        sleep 0.1
    done
    fail "readiness did not come back within 30 s of the fault $1: $(tail -n 3 "$work/ready")"
}

: >"$work/marks"
/usr/bin/python3 "$top_srcdir/tests/daemon/load.py" "$port" 3600 --products "$products" --until "$work/stop" \
    --clients 6 --order-clients 4 --documented-5xx --orders "$work/orders" --timeline "$work/timeline" --ready "$work/ready" \
    >"$work/load.out" 2>&1 &
load_pid=$!
sleep 4 # the level before the faults: caches loaded, the pools at their size
mark baseline

mark memcached.start
kill -9 "$mc_pid"
wait "$mc_pid" 2>/dev/null || true
mc_pid=""
sleep "$fault_secs"
memcached_start "$work/memcached.log" "$mc_port" || fail "memcached did not start again on $mc_port"
mark memcached.end
ready_again memcached

mark postgres.start
$BK_TEST_PG_CTL stop >/dev/null
sleep "$fault_secs"
$BK_TEST_PG_CTL start >/dev/null
mark postgres.end
ready_again postgres

mark payment_down.start
control '{"service":"payment","down":true}'
sleep $((2 * fault_secs))
control '{"service":"payment","down":false}'
mark payment_down.end
ready_again payment_down

mark payment_slow.start
control '{"service":"payment","latency_ms":2000}'
sleep $((2 * fault_secs))
control '{"service":"payment","latency_ms":0}'
mark payment_slow.end
ready_again payment_slow

# A burst of 48 more clients, reading and placing orders: more requests at
# once than the 4 workers and the 16 places of their queue.
mark queue_full.start
/usr/bin/python3 "$top_srcdir/tests/daemon/load.py" "$port" "$fault_secs" --products "$products" --clients 40 \
    --order-clients 8 --documented-5xx --orders "$work/orders.burst" >"$work/burst.out" 2>&1 ||
    fail "the burst: $(cat "$work/burst.out")"
mark queue_full.end
ready_again queue_full
sleep 2 # the level after the faults
mark after

touch "$work/stop"
rc=0
wait "$load_pid" || rc=$?
load_pid=""
[ "$rc" = 0 ] || fail "the load: $(cat "$work/load.out")"
kill -0 "$pid" 2>/dev/null || fail "backendd exited"
echo "chaos: load $(cat "$work/load.out")"
echo "chaos: burst $(cat "$work/burst.out")"

# Every saga finished (those a fault left running go on, on their leases).
unfinished() { psql "$dsn" -Atc "SELECT count(*) FROM backendd.orders WHERE status NOT IN ('completed', 'compensated')"; }
confirming() { psql "$dsn" -Atc "SELECT count(*) FROM backend_jobs.jobs WHERE kind = 'order-confirmation' AND state <> 'completed'"; }
for _ in $(seq 600); do
    [ "$(unfinished)" = 0 ] && [ "$(confirming)" = 0 ] && break
    sleep 0.1
done
[ "$(unfinished)" = 0 ] || fail "orders left unfinished: $(psql "$dsn" -Atc "SELECT id, status FROM backendd.orders WHERE status NOT IN ('completed', 'compensated')")"
[ "$(confirming)" = 0 ] || fail "confirmations left: $(confirming)"

curl -sS "$sim_url/_stats" >"$work/stats"
psql "$dsn" -AtF ' ' -c "SELECT idempotency_key, status FROM backendd.orders WHERE idempotency_key IS NOT NULL" >"$work/db_orders"
psql "$dsn" -AtF ' ' -c "SELECT p.sku, p.stock + p.reserved, (SELECT count(*) FROM backendd.reservations r
    JOIN backendd.orders o ON o.id = r.order_id WHERE r.product_id = p.id AND (o.status = 'compensated') <> r.released)
    FROM backendd.products p ORDER BY p.sku" >"$work/db_products"
if grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' "$work"/log*; then
    fail "a sanitizer report: $(grep -E 'Sanitizer|runtime error:' "$work"/log* | head -n 5)"
fi

/usr/bin/python3 - "$work" "${BK_CHAOS_RECOVERY:-no}" <<'EOF' || fail "the checks above"
import json, os, sys
work, assert_recovery = sys.argv[1], sys.argv[2] == "yes"
failures = []

# ---- readiness: answered throughout, each fault seen while it lasted
marks = {}
for line in open(os.path.join(work, "marks")):
    name, t = line.split()
    marks[name] = float(t)
ready = []
for line in open(os.path.join(work, "ready")):
    t, status, body = line.split(" ", 2)
    ready.append((float(t), int(status), json.loads(body)))
for t, status, body in ready:
    if status == 0:
        failures.append("/health/ready got no answer at %.1f: %s" % (t, body))
        break

def seen(fault, test):
    start, end = marks[fault + ".start"], marks[fault + ".end"] + 1.0
    return any(test(status, body) for t, status, body in ready if start <= t <= end)

reports = lambda b: b.get("reports", {})
checks = lambda b: b.get("checks", {})
expected = {
    "memcached": lambda s, b: reports(b).get("memcached") == "open",
    "postgres": lambda s, b: s == 503 and checks(b).get("database") != "ok",
    "payment_down": lambda s, b: reports(b).get("payment") == "open",
    "payment_slow": lambda s, b: reports(b).get("payment") == "open",
    "queue_full": lambda s, b: s == 503 and "busy" in checks(b).values(),
}

# ---- throughput: answers per second before the faults, and after each
timeline = {}
for line in open(os.path.join(work, "timeline")):
    sec, n, ok = map(int, line.split())
    timeline[sec] = ok
def rate(t0, t1):
    secs = [s for s in range(int(t0) + 1, int(t1)) if s in timeline]
    return sum(timeline[s] for s in secs) / len(secs) if secs else 0.0
base = rate(marks["baseline"] - 3, marks["baseline"])
print("chaos: %.0f answers/s (2xx) before the faults, %.0f after them" % (base, rate(marks["after"] - 3, marks["after"])))
at = {int(t): name for name, t in marks.items()}  # the answers per second, the phases marked
print("chaos: 2xx/s " + " ".join("%s%d" % ("[%s]" % at[s] if s in at else "", timeline[s])
                                 for s in sorted(timeline) if s >= int(marks["baseline"]) - 3))
for fault in expected:
    end = marks[fault + ".end"]
    before = rate(marks[fault + ".start"] - 3, marks[fault + ".start"])  # its pre-fault level
    back = None
    for s in range(int(end) + 1, int(end) + 30):
        if s in timeline and s + 1 in timeline and (timeline[s] + timeline[s + 1]) / 2 >= 0.9 * before:
            back = s - end
            break
    reported = seen(fault, expected[fault])
    shown = sorted({"%d %s" % (s, " ".join("%s:%s" % kv for kv in sorted({**checks(b), **reports(b)}.items())
                                           if kv[1] not in ("ok", "closed")))
                    for t, s, b in ready if marks[fault + ".start"] <= t <= end + 1})
    print("chaos: %-12s readiness %s (%s), ready again %.1f s after its end; throughput at 90%% of %.0f/s %s" % (
        fault, "reported it" if reported else "DID NOT report it", "; ".join(shown), marks[fault + ".ready"] - end, before,
        "%.1f s after its end" % back if back is not None else "not within 30 s"))
    if not reported:
        failures.append("readiness never reported the fault " + fault)
    if fault in ("memcached", "payment_down", "payment_slow") and seen(fault, lambda s, b: s != 200):
        failures.append("readiness was not 200 through the fault %s, which the instance outlives" % fault)
    if assert_recovery and (back is None or back > 10):
        failures.append("throughput not back to 90%% within 10 s of the fault %s" % fault)

# ---- the orders: as their clients were told, nothing lost, nothing doubled
db = {}
for line in open(os.path.join(work, "db_orders")):
    key, status = line.split()
    if key in db:
        failures.append("two orders under the key " + key)
    db[key] = status
told = {}
for name in ("orders", "orders.burst"):
    for line in open(os.path.join(work, name)):
        key, status, oid, ostatus = line.split()
        told[key] = (int(status), ostatus)
completed = sum(1 for s in db.values() if s == "completed")
for key, (status, ostatus) in told.items():
    got = db.get(key)
    if status == 201 and got != "completed":
        failures.append("order %s: answered 201, and it is %s" % (key, got))
    if status in (502, 503, 504) and ostatus == "compensated" and got != "compensated":
        failures.append("order %s: answered %d compensated, and it is %s" % (key, status, got))
    if status in (400, 422) and got is not None:
        failures.append("order %s: refused %d, and it exists" % (key, status))
for key in db:
    if key not in told:
        failures.append("an order no client placed: " + key)
stats = json.load(open(os.path.join(work, "stats")))
for what, n in (("charges less refunds", stats["charges"] - stats["refunds"]),
                ("shipments less cancellations", stats["shipments"] - stats["cancellations"]),
                ("notifications", stats["notifications"])):
    if n != completed:
        failures.append("%s: %d, for %d orders completed" % (what, n, completed))
for line in open(os.path.join(work, "db_products")):
    sku, total, wrong = line.split()
    if total != "100000":
        failures.append("%s: stock + reserved %s, stocked 100000" % (sku, total))
    if wrong != "0":
        failures.append("%s: %s reservations kept or released wrongly" % (sku, wrong))
print("chaos: %d orders (%d completed, %d compensated), %d answered 201; simulator %s" % (
    len(db), completed, sum(1 for s in db.values() if s == "compensated"),
    sum(1 for s, _ in told.values() if s == 201), json.dumps(stats)))
for f in failures[:20]:
    print("FAIL: " + f)
sys.exit(1 if failures else 0)
EOF
daemon_stop
sim_stop
echo "PASS: five faults under load, only documented answers, readiness back after each, every order whole"
