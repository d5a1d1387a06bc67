#!/usr/bin/python3
# A steady mixed workload on backendd, for the soak (tests/soak/soak.sh) and the
# faults under load (tests/chaos/chaos.sh), each client a thread on a
# keep-alive connection of its own: CLIENTS doing 90% product reads and 10%
# logins, and ORDER_CLIENTS placing orders through the saga one after another,
# each under an Idempotency-Key of its own (asked again under the same key, as
# a client would, while it is 202, 409 or 503), for SECONDS or until --until
# FILE exists.
#
#   load.py PORT SECONDS --products "ID ..." [--clients N] [--order-clients M]
#           [--until FILE] [--documented-5xx] [--orders FILE] [--timeline FILE]
#           [--ready FILE]
#
# Prints "REQUESTS STATUS:COUNT ..." (a 5xx problem's code with its status:
# "503/BK_EBUSY:3") and exits 1 when a request got no answer or an answer it
# may not get: any 5xx, or with --documented-5xx any 5xx other than the
# documented ones (backendd(8)): a problem+json that is a 503 with Retry-After,
# or a 502 or 504 whose "service" names the upstream.
# --orders: one line per order key, "KEY STATUS ORDER_ID ORDER_STATUS" of its
# last answer (- when it has none). --timeline: one line per second of wall
# time, "SECOND ANSWERS 2XX" of the reads and logins. --ready: /health/ready every 100 ms meanwhile,
# one line each, "WALLTIME STATUS BODY".
# SPDX-License-Identifier: MIT
import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import uuid

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("seconds", type=float)
ap.add_argument("--products", required=True)
ap.add_argument("--clients", type=int, default=8)
ap.add_argument("--order-clients", type=int, default=0)
ap.add_argument("--email", default="soak@example.com")
ap.add_argument("--until")
ap.add_argument("--documented-5xx", action="store_true")
ap.add_argument("--orders")
ap.add_argument("--timeline")
ap.add_argument("--ready")
args = ap.parse_args()
products = args.products.split()
end = time.monotonic() + args.seconds
lock = threading.Lock()
counts, errors, bad, orders, seconds = {}, [], [], {}, {}
SERVICES = ("payment", "shipping", "notify")


def done():
    return time.monotonic() >= end or (args.until and os.path.exists(args.until))


def undocumented(status, headers, doc):
    """Why a 5xx answer is not one backendd documents, or None."""
    if status < 500:
        return None
    if not args.documented_5xx:
        return "a 5xx"
    if (headers.get("Content-Type") or "").split(";")[0] != "application/problem+json":
        return "not problem+json"
    if doc is None:
        return "a body that is not JSON"
    if status == 503:
        return None if headers.get("Retry-After") else "503 without Retry-After"
    if status in (502, 504):
        return None if doc.get("service") in SERVICES else "%d naming no upstream" % status
    return "an undocumented status"


def call(conn, method, path, body=None, headers=None):
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = conn.getresponse()
    data = r.read()
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    why = undocumented(r.status, r.headers, doc)
    what = str(r.status)
    if r.status >= 500 and isinstance(doc, dict) and "code" in doc:
        what += "/" + str(doc["code"])
    now = int(time.time())
    with lock:
        counts[what] = counts.get(what, 0) + 1
        if path != "/api/v1/orders":
            n, ok = seconds.get(now, (0, 0))
            seconds[now] = (n + 1, ok + (200 <= r.status < 300))
        if why:
            bad.append("%s %s: %d (%s): %s" % (method, path, r.status, why, data[:200].decode("utf-8", "replace")))
    if r.status == 503:  # as a client heeding Retry-After would, if less patiently
        time.sleep(0.1)
    return r.status, doc if isinstance(doc, dict) else {}


def order(conn, token):
    key = str(uuid.uuid4())
    items = [{"product_id": int(random.choice(products)), "quantity": 1}]
    for _ in range(20):
        st, doc = call(conn, "POST", "/api/v1/orders", {"items": items},
                       {"Authorization": "Bearer " + token, "Idempotency-Key": key})
        oid = doc.get("id", doc.get("order_id", "-"))
        with lock:
            orders[key] = (st, oid, doc.get("status") if st in (201, 202) else doc.get("order_status") or "-")
        # Its outcome is not known yet: 202 and 409 (still being placed), or 503
        # (an outage before it was decided). Asked again under its key.
        if st not in (202, 409, 503) or done():
            return
        time.sleep(0.2)


def worker(orders_client):
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
    token = None
    try:
        while not done():
            if token is None or (not orders_client and random.random() < 0.1):
                st, doc = call(conn, "POST", "/api/v1/auth/login",
                               {"email": args.email, "password": "correct horse battery"})
                if st == 200:
                    token = doc["access_token"]
            elif orders_client:
                order(conn, token)
            else:
                call(conn, "GET", "/api/v1/products/" + random.choice(products))
    except Exception as e:  # a request that got no answer
        with lock:
            errors.append(repr(e))
    finally:
        conn.close()


def ready():
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
    with open(args.ready, "w") as f:
        while not done():
            try:
                conn.request("GET", "/health/ready")
                r = conn.getresponse()
                f.write("%.3f %d %s\n" % (time.time(), r.status, r.read().decode("utf-8", "replace")))
            except Exception as e:  # no answer: status 0, which the chaos test fails on
                f.write("%.3f 0 %s\n" % (time.time(), json.dumps(repr(e))))
                conn.close()
            f.flush()
            time.sleep(0.1)
    conn.close()


threads = [threading.Thread(target=worker, args=(i >= args.clients,))
           for i in range(args.clients + args.order_clients)]
if args.ready:
    threads.append(threading.Thread(target=ready))
for t in threads:
    t.start()
for t in threads:
    t.join()
total = sum(counts.values())
print("%d %s" % (total, " ".join("%s:%d" % kv for kv in sorted(counts.items()))))
if args.orders:
    with open(args.orders, "w") as f:
        for key, (st, oid, ost) in orders.items():
            f.write("%s %d %s %s\n" % (key, st, oid, ost))
if args.timeline:
    with open(args.timeline, "w") as f:
        for sec in sorted(seconds):
            f.write("%d %d %d\n" % (sec, seconds[sec][0], seconds[sec][1]))
if errors:
    print("no answer: " + "; ".join(errors[:5]), file=sys.stderr)
if bad:
    print("%d answers it may not give, the first: %s" % (len(bad), "; ".join(bad[:5])), file=sys.stderr)
sys.exit(1 if errors or bad else 0)
