#!/usr/bin/env bash
# The service harness: a private PostgreSQL cluster (unix socket in a temporary
# directory) and a private memcached on loopback, for tests and for `make run`.
#
#   services.sh run -- CMD [ARG...]   start both, run CMD with the servers' addresses
#                                     in its environment, stop both (also when CMD
#                                     fails or is interrupted), exit with CMD's status
#
# CMD sees:
#   BK_TEST_PG_DSN      libpq conninfo, e.g. "host=/tmp/bk-svc.X port=5432 user=backend dbname=postgres"
#   BK_TEST_MEMCACHED   host:port, e.g. "127.0.0.1:21345"
#   BK_TEST_PG_RESTART_DSN, BK_TEST_PG_RESTART, BK_TEST_PG_CTL
#                       a second PostgreSQL, a command that restarts it, and one
#                       that stops or starts it ("$BK_TEST_PG_CTL stop"), for the
#                       tests that need their server to go away and come back
#                       (test_db; the chaos test, inside a services.sh of its own)
#
# A server that cannot start fails the run with its log: never a silent skip.
set -euo pipefail

die() { echo "services.sh: $*" >&2; exit 1; }

[ "${1:-}" = run ] && [ "${2:-}" = -- ] && [ $# -ge 3 ] || die "usage: services.sh run -- CMD [ARG...]"
shift 2

PG_BINDIR=$(pg_config --bindir 2>/dev/null || true)
# Debian's libpq-dev pg_config may name the client bindir; the server lives beside it.
if [ ! -x "$PG_BINDIR/initdb" ]; then
    PG_BINDIR=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
[ -x "$PG_BINDIR/initdb" ] || die "PostgreSQL server binaries not found: install the Debian package postgresql"
command -v memcached >/dev/null || die "memcached not found: install the Debian package memcached"

dir=$(mktemp -d /tmp/bk-svc.XXXXXX)
chmod 755 "$dir"
mc_pid=""
pg_started=""

# PostgreSQL refuses to run as root: run it as the postgres user the Debian package creates.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$pg_started" ]; then
        as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
        as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data2" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [ -n "$mc_pid" ]; then
        kill "$mc_pid" 2>/dev/null || true
        wait "$mc_pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- PostgreSQL
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
pg_port=5432   # only names the socket file inside our private directory: no clash possible
pg_user=backend
if ! as_pg "$PG_BINDIR/initdb" -A trust -U "$pg_user" -E UTF8 --no-locale -D "$dir/data" >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    die "PostgreSQL initdb failed (log above)"
fi
if ! as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
        -o "-k $dir -p $pg_port -c listen_addresses='' -c fsync=off -c full_page_writes=off" start >/dev/null; then
    cat "$dir/postgres.log" >&2 || true
    die "PostgreSQL failed to start (log above)"
fi
pg_started=1
export BK_TEST_PG_DSN="host=$dir port=$pg_port user=$pg_user dbname=postgres"

# A second cluster that one test restarts on purpose (BK_TEST_PG_RESTART), so
# the suites sharing the first never see it go away.
pg_opts="-k $dir -p 5433 -c listen_addresses='' -c fsync=off -c full_page_writes=off"
as_pg "$PG_BINDIR/initdb" -A trust -U "$pg_user" -E UTF8 --no-locale -D "$dir/data2" >"$dir/initdb2.log" 2>&1 ||
    { cat "$dir/initdb2.log" >&2; die "PostgreSQL initdb (second cluster) failed (log above)"; }
as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data2" -l "$dir/postgres2.log" -w -t 30 -o "$pg_opts" start >/dev/null ||
    { cat "$dir/postgres2.log" >&2; die "PostgreSQL (second cluster) failed to start (log above)"; }
run_as=""
[ "$(id -u)" = 0 ] && run_as="runuser -u postgres --"
cat >"$dir/pg2" <<EOF
#!/bin/sh
# pg2 stop|start|restart: the second cluster stopped (fast: connections are cut),
# started or both, each waiting until it is done.
case "\$1" in
stop) exec $run_as "$PG_BINDIR/pg_ctl" -D "$dir/data2" -m fast -w stop ;;
start|restart) exec $run_as "$PG_BINDIR/pg_ctl" -D "$dir/data2" -l "$dir/postgres2.log" -m fast -w -t 30 -o "$pg_opts" "\$1" ;;
*) echo "usage: pg2 stop|start|restart" >&2; exit 2 ;;
esac
EOF
chmod 755 "$dir/pg2"
export BK_TEST_PG_RESTART_DSN="host=$dir port=5433 user=$pg_user dbname=postgres"
export BK_TEST_PG_RESTART="$dir/pg2 restart"
export BK_TEST_PG_CTL="$dir/pg2"

# ---- memcached: a random loopback port, retried if taken
# shellcheck source=tests/harness/memcached.sh
. "$(dirname "$0")/memcached.sh"
if ! memcached_start "$dir/memcached.log"; then
    cat "$dir/memcached.log" >&2 || true
    die "memcached failed to start (log above)"
fi
export BK_TEST_MEMCACHED="127.0.0.1:$mc_port"

echo "services.sh: PostgreSQL at $BK_TEST_PG_DSN; memcached at $BK_TEST_MEMCACHED" >&2
# Not exec: the EXIT trap must stop the servers after CMD ends.
"$@"
