#!/usr/bin/env bash
# examples/hello_cpp (examples/hello.cpp): libbackend from C++17 answers its lambda
# routes, keeps a count across requests, turns a handler's exception into a 500
# problem (its text in the log, not in the answer), and stops on SIGTERM.
# SPDX-License-Identifier: MIT
set -euo pipefail
bin="$top_builddir/examples/hello_cpp"
work=$(mktemp -d)
pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- server log"; cat "$work/log"; exit 1; }

: >"$work/log" # exists before the server opens it, so polling it never races
${BK_TEST_WRAPPER:-} "$bin" --port 0 --threads 2 2>>"$work/log" &
pid=$!
# shellcheck source=tests/harness/listening.sh
. "$top_srcdir/tests/harness/listening.sh"
port=$(listening_port "$work/log" "$pid") || fail "no 'listening' log line (or the server exited)"
url="http://127.0.0.1:$port"

body=$(curl -fsS "$url/json")
[ "$body" = '{"message":"Hello, World!"}' ] || fail "unexpected body: $body"
for i in 1 2 3; do
    body=$(curl -fsS "$url/hello/n$i")
    [ "$body" = "{\"hello\":\"n$i\",\"count\":$i}" ] || fail "unexpected body: $body"
done
status=$(curl -sS -o "$work/throw" -w '%{http_code}' "$url/throw")
[ "$status" = 500 ] || fail "/throw answered $status"
grep -q '"detail":"the handler failed"' "$work/throw" || fail "not the problem answer: $(cat "$work/throw")"
grep -q 'on purpose' "$work/throw" && fail "the exception's text reached the client"
grep -q '"msg":"a handler threw","exception":"thrown on purpose"' "$work/log" || fail "the exception was not logged"
# The server goes on after the exception.
body=$(curl -fsS "$url/json")
[ "$body" = '{"message":"Hello, World!"}' ] || fail "unexpected body after the exception: $body"
status=$(curl -sS -o /dev/null -w '%{http_code}' "$url/nope")
[ "$status" = 404 ] || fail "unknown path gave $status"

kill -TERM "$pid"
wait "$pid" || fail "exit status $? after SIGTERM"
pid=""
grep -q '"msg":"stopped"' "$work/log" || fail "no clean stop"
if "$bin" --bogus 2>"$work/usage"; then fail "accepted --bogus"; fi
grep -q '^usage:' "$work/usage" || fail "no usage line: $(cat "$work/usage")"
echo "PASS: hello_cpp answered its lambda routes, counted, answered an exception 500 (logged, not shown) and stopped on SIGTERM"
