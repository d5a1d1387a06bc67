#!/usr/bin/env bash
# examples/cache against the harness memcached: 16 threads on a cold key load it
# once; a second process finds it in memcached (no load); two processes at once on
# a cold key load it once in all; after --delete it loads again; with memcached
# unreachable the values still come, from the origin.
set -euo pipefail
bin="$top_builddir/examples/cache"
servers=${BK_TEST_MEMCACHED:?BK_TEST_MEMCACHED is not set: run under tests/harness/services.sh (make check)}
prefix="ex$$-$RANDOM:"
fail() { echo "FAIL: $*"; exit 1; }
# loads OUTPUT: the "loads" figure of one run's JSON line
loads() { sed -n 's/.*"loads": \([0-9]*\).*/\1/p' <<<"$1"; }

out=$("$bin" "$servers" "$prefix" user:42 16)
[ "$(loads "$out")" = 1 ] || fail "16 threads, cold key: $out"
grep -q '"value": "value of user:42"' <<<"$out" || fail "value: $out"
grep -q '"errors": 0' <<<"$out" || fail "errors: $out"

out=$("$bin" "$servers" "$prefix" user:42 4)
[ "$(loads "$out")" = 0 ] || fail "another process should find it in memcached: $out"

"$bin" "$servers" "$prefix" user:7 16 >"$top_builddir/cache-a.out" &
a=$!
"$bin" "$servers" "$prefix" user:7 16 >"$top_builddir/cache-b.out"
wait "$a"
total=$(( $(loads "$(cat "$top_builddir/cache-a.out")") + $(loads "$(cat "$top_builddir/cache-b.out")") ))
rm -f "$top_builddir/cache-a.out" "$top_builddir/cache-b.out"
[ "$total" = 1 ] || fail "two processes at once loaded $total times"

"$bin" "$servers" "$prefix" user:42 --delete || fail "delete"
out=$("$bin" "$servers" "$prefix" user:42 2)
[ "$(loads "$out")" = 1 ] || fail "after delete: $out"

out=$("$bin" 127.0.0.1:1 "$prefix" user:42 3)
[ "$(loads "$out")" = 1 ] || fail "memcached unreachable: $out"
grep -q '"errors": 0' <<<"$out" || fail "memcached unreachable: $out"

rc=0
msg=$("$bin" "$servers,cache-2:0" "$prefix" user:42 2>&1 >/dev/null) || rc=$?
[ "$rc" = 2 ] || fail "bad server list exit $rc"
grep -q 'entry 2 ("cache-2:0")' <<<"$msg" || fail "bad server list: $msg"

rc=0
"$bin" "$servers" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "usage error exit $rc"
echo "PASS: cache example: one load per cold key across threads and processes"
