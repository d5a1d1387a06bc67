#!/usr/bin/env bash
# Two backendd instances behind nginx (daemon/nginx.conf, its ports and paths
# replaced), sharing PostgreSQL and memcached: a token from one accepted by
# the other; the login limit shared; after a product update, 200 concurrent
# GETs over both load the product from the database once (their
# cache_loads_total); and one instance killed with SIGKILL during 300 orders
# from six clients, each repeating a request with its Idempotency-Key until it
# has an answer: the survivor brings every saga to completed or compensated,
# and the invariants hold (stock + reserved as received, every charge refunded
# or its order completed, one shipment and one notification per completed
# order, one charge per key). Real time only for the dead instance's leases
# (job_lease = 2s) to expire. Run in the plain and sanitizer passes; the
# valgrind pass (BK_SLOW_CHECKS=no) skips it (77).
set -euo pipefail
if [ "${BK_SLOW_CHECKS:-yes}" = no ]; then
    echo "SKIP: two instances, nginx and 300 orders ran in the pass before (orders.sh runs the daemon here)"
    exit 77
fi
# shellcheck source=tests/daemon/lib.sh
. "$top_srcdir/tests/daemon/lib.sh"
daemon_setup
nginx=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
[ -n "$nginx" ] || fail "nginx is not installed (Debian package nginx-light)"
sim_start
daemon_conf "$work/backendd.conf" "payment_url = $sim_url" "shipping_url = $sim_url" "notify_url = $sim_url" \
    "job_lease = 2s" "login_rate_email = 3/15m" "login_rate_address = 1000/15m" "docs = off" "order_wait = 20s"
daemon_start "$work/backendd.conf"
pid_a=$pid url_a=$url port_a=$port
daemon_start "$work/backendd.conf" b
pid_b=$pid url_b=$url port_b=$port
pid="" # daemon_cleanup kills these two itself
nginx_pid=""
scale_cleanup() {
    for p in "$pid_a" "$pid_b"; do [ -z "$p" ] || kill -9 "$p" 2>/dev/null || true; done
    [ -z "$nginx_pid" ] || kill -QUIT "$nginx_pid" 2>/dev/null || true # its workers with it
    daemon_cleanup
}
trap scale_cleanup EXIT

# nginx: the sample, on this test's ports and paths.
lb_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -e "s|server 127.0.0.1:8080 |server 127.0.0.1:$port_a |; s|server 127.0.0.1:8081 |server 127.0.0.1:$port_b |" \
    -e "s|listen 127.0.0.1:8000;|listen 127.0.0.1:$lb_port;|" \
    -e "s|/var/log/nginx/backendd|$work/nginx|" \
    -e "s|^http {|http {\n    client_body_temp_path $work/nginx-body; proxy_temp_path $work/nginx-proxy;|" \
    "$top_srcdir/daemon/nginx.conf" >"$work/nginx.conf"
"$nginx" -c "$work/nginx.conf" -g "daemon off; pid $work/nginx.pid;" 2>>"$work/log.nginx" &
nginx_pid=$!
lb="http://127.0.0.1:$lb_port"
for _ in $(seq 100); do curl -fsS "$lb/health/live" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$lb/health/live" >/dev/null || fail "nginx does not answer: $(cat "$work/log.nginx")"

# at BASE: the requests below go there.
at() { url=$1; }
login() {
    req POST /api/v1/auth/login "{\"email\":\"$1\",\"password\":\"${2:-correct horse battery}\"}"
}
# loads: cache_loads_total of both instances, summed; reads URL: one instance's
# cache_requests_total.
loads() {
    for u in "$url_a" "$url_b"; do curl -sS "$u/metrics"; done | awk '/^cache_loads_total / { n += $2 } END { print n + 0 }'
}
reads() { curl -sS "$1/metrics" | awk '/^cache_requests_total/ { n += $2 } END { print n + 0 }'; }

# ---------------------------------------------------------------- shared sessions and limits
at "$url_a"
register ann boss eve
make_admin boss
login ann@example.com
expect 200 "login at a"
ann=$(jget 'j["access_token"]')
at "$url_b"
req GET /api/v1/users/me "" "Authorization: Bearer $ann"
expect 200 "a token of instance a at instance b"
# Three failures in all, over both instances, and the limit is reached for both.
at "$url_a"; login eve@example.com wrong-password; expect 401 "eve's failure 1 at a"
at "$url_b"; login eve@example.com wrong-password; expect 401 "eve's failure 2 at b"
at "$url_a"; login eve@example.com wrong-password; expect 401 "eve's failure 3 at a"
at "$url_b"; login eve@example.com
expect 429 "the login limit, shared, at b"
at "$url_a"; login eve@example.com
expect 429 "the login limit, shared, at a"

# ---------------------------------------------------------------- one load for 200 GETs
at "$lb"
login boss@example.com
boss=$(jget 'j["access_token"]')
req POST /api/v1/products '{"sku":"S-1","name":"Kettle","price":3000,"stock":100000}' "Authorization: Bearer $boss"
expect 201 "a product, through nginx"
p1=$(jget 'j["id"]')
req POST /api/v1/products '{"sku":"S-2","name":"Mug","price":500,"stock":100000}' "Authorization: Bearer $boss"
p2=$(jget 'j["id"]')
for u in "$url_a" "$url_b"; do curl -fsS -o /dev/null "$u/api/v1/products/$p1"; done
req PATCH "/api/v1/products/$p1" '{"price":3100}' "Authorization: Bearer $boss"
expect 200 "the update"
before=$(loads) reads_a=$(reads "$url_a") reads_b=$(reads "$url_b")
for _ in $(seq 200); do
    printf 'url = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$lb/api/v1/products/$p1"
done >"$work/curl200"
curl -sS --no-progress-meter --parallel --parallel-max 200 -K "$work/curl200" >"$work/codes200"
[ "$(sort "$work/codes200" | uniq -c | awk '{ print $1 " " $2 }')" = "200 200" ] ||
    fail "200 GETs through nginx: $(sort "$work/codes200" | uniq -c)"
[ "$(( $(loads) - before ))" = 1 ] || fail "200 GETs after an update loaded $(( $(loads) - before )) times, not once"
[ "$(reads "$url_a")" -gt "$reads_a" ] && [ "$(reads "$url_b")" -gt "$reads_b" ] ||
    fail "the 200 GETs did not reach both instances"
for u in "$url_a" "$url_b"; do
    [ "$(curl -fsS "$u/api/v1/products/$p1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["price"])')" = 3100 ] ||
        fail "$u does not show the update"
done

# ---------------------------------------------------------------- 300 orders, an instance killed
control() {
    [ "$(curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$1" \
        "$sim_url/_control")" = 200 ] || fail "the simulator refused $1"
}
control '{"service":"payment","fail_rate":0.2}' # retries and compensations in the mix
control '{"service":"shipping","fail_rate":0.2}'
python3 - "$lb" "$ann" "$p1" "$p2" "$work/progress" >"$work/clients.out" 2>&1 <<'PY' &
import json, os, sys, threading, urllib.request, urllib.error, time
lb, token, p1, p2, progress = sys.argv[1:]
lock = threading.Lock()
done = []
def place(client, i):
    body = json.dumps({"items": [{"product_id": int(p1), "quantity": 1 + i % 3},
                                 {"product_id": int(p2), "quantity": 1}]}).encode()
    key = "c%d-%d" % (client, i)
    for attempt in range(200):
        rq = urllib.request.Request(lb + "/api/v1/orders", data=body, method="POST", headers={
            "Authorization": "Bearer " + token, "Idempotency-Key": key, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(rq, timeout=60) as r:
                status, doc = r.status, json.load(r)
        except urllib.error.HTTPError as e:
            status = e.code
            try:
                doc = json.load(e)
            except Exception:
                doc = None  # nginx's own page: the instance died under it
        except Exception:
            status, doc = 0, None
        # An answer of the order's own: placed, or compensated with its step.
        if status == 201 or (doc is not None and "order_status" in doc):
            return status
        time.sleep(0.2)  # 202/409 still running, 502 from nginx, or no answer: the same key again
    raise SystemExit("order %s: no answer after 200 tries" % key)
took = []
def client(c):
    for i in range(50):
        t0 = time.monotonic()
        s = place(c, i)
        with lock:
            done.append(s)
            took.append(time.monotonic() - t0)
            open(progress + ".new", "w").write("%d\n" % len(done))
            os.replace(progress + ".new", progress)
threads = [threading.Thread(target=client, args=(c,)) for c in range(6)]
for t in threads: t.start()
for t in threads: t.join()
took.sort()
print("answers", {s: done.count(s) for s in set(done)}, "seconds per order: median %.2f, max %.2f" %
      (took[len(took) // 2], took[-1]))
PY
clients=$!
progress() { local n; n=$(cat "$work/progress" 2>/dev/null || true); echo "${n:-0}"; }
for _ in $(seq 600); do
    [ "$(progress)" -ge 100 ] && break
    kill -0 "$clients" 2>/dev/null || break
    sleep 0.1
done
[ "$(progress)" -ge 100 ] || fail "the clients did not reach 100 orders: $(cat "$work/clients.out")"
kill -9 "$pid_a"
wait "$pid_a" 2>/dev/null || true
pid_a=""
echo "scale: instance a killed after $(progress) orders (at ${SECONDS}s)"
wait "$clients" || fail "the clients: $(cat "$work/clients.out")"
[ "$(progress)" = 300 ] || fail "$(progress) orders answered, not 300"
echo "scale: 300 orders answered (at ${SECONDS}s)"
control '{"service":"payment","fail_rate":0}'
control '{"service":"shipping","fail_rate":0}'

# The survivor finishes every saga, the dead instance's too.
sql() { psql "$dsn" -Atc "$1"; }
for _ in $(seq 600); do
    [ "$(sql "SELECT count(*) FROM backend_saga.sagas WHERE status NOT IN ('completed', 'compensated')")" = 0 ] &&
        [ "$(sql "SELECT count(*) FROM backend_jobs.jobs WHERE kind = 'order-confirmation' AND state <> 'completed'")" = 0 ] &&
        break
    sleep 0.1
done
[ "$(sql "SELECT count(*) FROM backend_saga.sagas WHERE status NOT IN ('completed', 'compensated')")" = 0 ] ||
    fail "sagas left: $(sql "SELECT id, status, step FROM backend_saga.sagas WHERE status NOT IN ('completed', 'compensated')")"
[ "$(sql "SELECT count(*) FROM backendd.orders")" = 300 ] || fail "$(sql 'SELECT count(*) FROM backendd.orders') orders, not 300"
[ "$(sql "SELECT count(*) FROM backendd.orders WHERE status NOT IN ('completed', 'compensated')")" = 0 ] ||
    fail "orders left: $(sql "SELECT id, status FROM backendd.orders WHERE status NOT IN ('completed', 'compensated')")"
completed=$(sql "SELECT count(*) FROM backendd.orders WHERE status = 'completed'")
[ "$completed" -gt 0 ] || fail "no order completed"
stats() { curl -sS "$sim_url/_stats" | python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
violations=$(sql "SELECT count(*) FROM backendd.products WHERE stock + reserved <> 100000")
[ "$violations" = 0 ] || fail "stock + reserved is not what was received: $(sql 'SELECT sku, stock, reserved FROM backendd.products')"
[ "$(stats 'j["charges"] - j["refunds"]')" = "$completed" ] || fail "charges: $(stats j), $completed orders completed"
[ "$(stats 'j["shipments"] - j["cancellations"]')" = "$completed" ] || fail "shipments: $(stats j), $completed completed"
[ "$(stats 'j["notifications"]')" = "$completed" ] || fail "notifications: $(stats j), $completed completed"
# One charge per key: every order that got as far as charging has one charge.
[ "$(stats 'j["charges"]')" -le 300 ] || fail "more charges than orders: $(stats j)"
[ "$(sql "SELECT count(*) FROM backendd.reservations r JOIN backendd.orders o ON o.id = r.order_id
    WHERE (o.status = 'compensated') <> r.released")" = 0 ] || fail "a reservation kept or released wrongly"
grep -q "answers" "$work/clients.out" || fail "the clients: $(cat "$work/clients.out")"
echo "scale: $(cat "$work/clients.out"); $completed completed; $(stats 'j["charges"]') charges, $(stats 'j["refunds"]') refunds"

stop_pid pid_b "instance b"
echo "scale: every check passed"
