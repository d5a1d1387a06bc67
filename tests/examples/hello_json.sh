#!/usr/bin/env bash
# examples/hello_json answers JSON over HTTP, logs JSON lines (server events and the
# access log), counts requests and stops gracefully on SIGTERM.
set -euo pipefail
bin="$top_builddir/examples/hello_json"
work=$(mktemp -d)
pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- server log"; cat "$work/log"; exit 1; }

: >"$work/log" # exists before the server opens it, so polling it never races
"$bin" --port 0 --threads 2 2>>"$work/log" &
pid=$!
# shellcheck source=tests/harness/listening.sh
. "$top_srcdir/tests/harness/listening.sh"
port=$(listening_port "$work/log" "$pid") || fail "no 'listening' log line (or the server exited)"
url="http://127.0.0.1:$port"

body=$(curl -fsS "$url/json")
[ "$body" = '{"message":"Hello, World!"}' ] || fail "unexpected body: $body"
version=$(sed -n 's/^AC_INIT(\[libbackend\], \[\([^]]*\)\].*/\1/p' "$top_srcdir/configure.ac")
body=$(curl -fsS "$url/hello/w%C3%B6rld")
[ "$body" = "{\"hello\":\"wörld\",\"version\":\"$version\"}" ] || fail "unexpected body: $body"
ctype=$(curl -fsS -o /dev/null -w '%{content_type}' "$url/json")
[ "$ctype" = application/json ] || fail "content type $ctype"
status=$(curl -sS -o /dev/null -w '%{http_code}' "$url/nope")
[ "$status" = 404 ] || fail "unknown path gave $status"
curl -fsS "$url/health/ready" | grep -q '"status":"ok"' || fail "not ready"
curl -fsS "$url/health/startup" | grep -q '"status":"ok"' || fail "not started"

metrics=$(curl -fsS "$url/metrics")
grep -qx '# TYPE http_requests_total counter' <<<"$metrics" || fail "no TYPE line: $metrics"
grep -qx 'http_requests_total{method="GET",route="/json",status="200"} 2' <<<"$metrics" || fail "count of /json wrong: $metrics"
grep -qx 'http_requests_total{method="GET",route="unmatched",status="404"} 1' <<<"$metrics" || fail "count of 404 wrong: $metrics"

kill -TERM "$pid"
wait "$pid" || fail "exit status $? after SIGTERM"
pid=""
# Every log line is one JSON object with ts, level and msg first.
n=$(grep -c '^{"ts":"[0-9-]*T[0-9:]*\.[0-9]\{3\}Z","level":"info","msg":"' "$work/log")
[ "$n" = "$(wc -l <"$work/log")" ] || fail "a log line is not structured"
grep -q '"msg":"request","method":"GET","path":"/nope","route":null,"status":404' "$work/log" || fail "no access log line"
grep -q '"msg":"stopped"' "$work/log" || fail "no clean stop"
# A listener that cannot be made: the error line says which address and why.
if "$bin" --host 999.1.1.1 --port 8080 2>"$work/fail.log"; then fail "started on 999.1.1.1"; fi
grep -q '"msg":"cannot start","error":"999.1.1.1:8080: ' "$work/fail.log" ||
    fail "no address in the start failure: $(cat "$work/fail.log")"
echo "PASS: hello_json answered /json, /hello/{name}, health, /metrics and 404, stopped on SIGTERM, and named the address it could not bind"
