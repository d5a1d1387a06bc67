#!/usr/bin/env bash
# The functional db, jobs and saga suites once more, through PgBouncer in
# transaction pooling mode (tests/harness/pgbouncer.sh, in front of the
# harness's PostgreSQL): not their crash tests, nor the listener's suite (LISTEN
# cannot work there; test_db asserts that the listener says so). Each suite sees
# BK_TEST_PG_POOLER_DSN, and tests/pg_test.h points the library under test at it
# with bk_db_opts_t.transaction_pooling, while the fixtures keep talking to the
# server directly. At the end PgBouncer's own count must show that the suites'
# transactions went through it.
#
# Once per CI run: the valgrind pass (BK_SLOW_CHECKS=no) skips it (77); the
# sanitizer pass has run it, and these suites are the slow ones.
# SPDX-License-Identifier: MIT
set -euo pipefail
if [ "${BK_SLOW_CHECKS:-yes}" = no ]; then
    echo "SKIP: the suites through PgBouncer run once, in the sanitizer pass"
    exit 77
fi
fail() { echo "FAIL: $*"; exit 1; }
: "${top_builddir:?run by make check}" "${top_srcdir:?run by make check}"
if [ -z "${BK_TEST_PG_POOLER_DSN:-}" ]; then
    exec "$top_srcdir/tests/harness/pgbouncer.sh" run -- bash "$0"
fi

failed=""
for suite in tests/db/test_db tests/db/test_migrate tests/jobs/test_jobs tests/jobs/test_periodic tests/saga/test_saga; do
    echo "== $suite through PgBouncer"
    "$top_builddir/$suite" || failed+=" $suite"
done
[ -z "$failed" ] || fail "through PgBouncer:$failed"

# backendd through it: without database_transaction_pooling it does not start
# and says what to set; with it, it migrates (transaction locks), signs up, logs
# in and answers with the account.
# shellcheck source=tests/daemon/lib.sh
. "$top_srcdir/tests/daemon/lib.sh"
daemon_setup
dsn="${BK_TEST_PG_POOLER_DSN/dbname=postgres/dbname=$db}"
daemon_conf "$work/off.conf" "docs = off"
rc=0
"$bin" -c "$work/off.conf" >"$work/off.out" 2>"$work/off.err" || rc=$?
[ "$rc" != 0 ] && grep -q 'database_transaction_pooling = on' "$work/off.err" ||
    fail "backendd through PgBouncer without database_transaction_pooling (exit $rc): $(cat "$work/off.err")"
echo "backendd without database_transaction_pooling: $(tail -n 1 "$work/off.err")"
daemon_conf "$work/on.conf" "docs = off" "database_transaction_pooling = on"
daemon_start "$work/on.conf"
req GET /health/ready
expect 200 "ready through PgBouncer"
register pat
req POST /api/v1/auth/login '{"email":"pat@example.com","password":"correct horse battery"}'
expect 200 "login through PgBouncer"
access=$(jget 'j["access_token"]')
req GET /api/v1/users/me "" "Authorization: Bearer $access"
expect 200 "me through PgBouncer"
[ "$(jget 'j["email"]')" = pat@example.com ] || fail "me: $(cat "$work/body")"
daemon_stop
echo "backendd through PgBouncer: refused to start without database_transaction_pooling; with it, ready, register, login, me"

# The suites' transactions really went through it: its own count of them.
xacts=$(psql "$BK_TEST_PG_POOLER_ADMIN_DSN" -XAt -c "SHOW TOTALS" | awk -F'|' '$1 == "total_xact_count" { print $2 }')
[ "${xacts:-0}" -gt 1000 ] || fail "PgBouncer counted ${xacts:-no} transactions"
echo "PASS: test_db, test_migrate, test_jobs, test_periodic, test_saga and backendd through PgBouncer ($xacts transactions)"
