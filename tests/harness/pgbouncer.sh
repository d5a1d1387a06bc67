#!/usr/bin/env bash
# A private PgBouncer in transaction pooling mode in front of the harness's
# PostgreSQL (BK_TEST_PG_DSN, tests/harness/services.sh), on a unix socket in a
# temporary directory of its own:
#
#   pgbouncer.sh run -- CMD [ARG...]   start it, run CMD, stop it (also when CMD
#                                      fails or is interrupted), exit with CMD's status
#
# CMD sees:
#   BK_TEST_PG_POOLER_DSN        libpq conninfo through PgBouncer (dbname=postgres;
#                                any database of the server is reachable by name)
#   BK_TEST_PG_POOLER_ADMIN_DSN  its admin console (SHOW POOLS, SHOW TOTALS)
#
# Debian's pgbouncer refuses to run as root: as root, it runs as the database
# server's user (postgres). It cannot start: the run fails with its log.
# SPDX-License-Identifier: MIT
set -euo pipefail
die() { echo "pgbouncer.sh: $*" >&2; exit 1; }
[ "${1:-}" = run ] && [ "${2:-}" = -- ] && [ $# -ge 3 ] || die "usage: pgbouncer.sh run -- CMD [ARG...]"
shift 2
: "${BK_TEST_PG_DSN:?BK_TEST_PG_DSN is not set: run under tests/harness/services.sh}"
command -v pgbouncer >/dev/null || die "pgbouncer not found: install the Debian package pgbouncer"

# Where the server listens, and as whom the clients connect.
read -r sockdir port user < <(psql "$BK_TEST_PG_DSN" -XAtF ' ' -c \
    "SELECT split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_user") ||
    die "cannot ask the server at $BK_TEST_PG_DSN where it listens"

dir=$(mktemp -d /tmp/bk-pgb.XXXXXX)
chmod 755 "$dir"
pid=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # SIGTERM to PgBouncer itself (runuser passes no signal on): it stops at once.
    if [ -n "$pid" ]; then
        kill -TERM "$(cat "$dir/pgbouncer.pid" 2>/dev/null)" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

printf '"%s" ""\n' "$user" >"$dir/users.txt"
# Pools big enough for the suites' own (up to 10 connections each, some tests
# run two) within the server's 100 connections; server connections are reused
# last-in first-out (the default), which the tests rely on nowhere.
cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$sockdir port=$port

[pgbouncer]
pool_mode = transaction
listen_addr =
listen_port = 6432
unix_socket_dir = $dir
auth_type = trust
auth_file = $dir/users.txt
admin_users = $user
default_pool_size = 40
max_db_connections = 60
max_client_conn = 400
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
[ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
run_as=()
[ "$(id -u)" = 0 ] && run_as=(runuser -u postgres --)
"${run_as[@]}" pgbouncer "$dir/pgbouncer.ini" 2>>"$dir/stderr.log" &
pid=$!
for _ in $(seq 100); do
    [ -S "$dir/.s.PGSQL.6432" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
[ -S "$dir/.s.PGSQL.6432" ] ||
    die "PgBouncer did not start: $(cat "$dir/stderr.log" "$dir/pgbouncer.log" 2>/dev/null)"
export BK_TEST_PG_POOLER_DSN="host=$dir port=6432 user=$user dbname=postgres"
export BK_TEST_PG_POOLER_ADMIN_DSN="host=$dir port=6432 user=$user dbname=pgbouncer"
psql "$BK_TEST_PG_POOLER_DSN" -XAtc "SELECT 1" >/dev/null || die "nothing answers through PgBouncer: $(cat "$dir/pgbouncer.log")"
echo "pgbouncer.sh: PgBouncer $(pgbouncer --version | head -n 1 | cut -d' ' -f2), pool_mode = transaction, at $BK_TEST_PG_POOLER_DSN" >&2
# Not exec: the EXIT trap must stop it after CMD ends.
"$@"
