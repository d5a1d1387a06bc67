#!/usr/bin/env bash
# `make run`: backendd in --dev mode on 127.0.0.1:PORT with a private PostgreSQL
# and memcached, kept between runs, and daemon/upstream-sim (payment, shipping
# and notifications for the orders) on SIM_PORT, or a free port.
#
#   daemon/run.sh BUILD_DIR PORT
#
# The cluster's data lives in ./var/pg when the PostgreSQL server's user can reach
# it (it refuses to run as root, and /root is closed to others), else under
# /var/tmp/backendd-run-<hash of this checkout>; the place is printed. Servers a
# killed run left behind (their pid files are in the state directory) are stopped
# first; Ctrl-C stops everything this run started.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR PORT}
port=${2:?usage: run.sh BUILD_DIR PORT}
top=$(cd "$(dirname "$0")/.." && pwd)
bin="$build/daemon/backendd"
die() { echo "run: $*" >&2; exit 1; }
[ -x "$bin" ] || die "$bin is not built"

PG_BINDIR=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PG_BINDIR/initdb" ] || die "PostgreSQL server binaries not found: install the Debian package postgresql"
command -v memcached >/dev/null || die "memcached not found: install the Debian package memcached"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Where the cluster can live: ./var, when the server's user reaches it.
var="$top/var"
mkdir -p "$var"
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$var" 2>/dev/null; then
    var="/var/tmp/backendd-run-$(printf '%s' "$top" | sha256sum | cut -c1-12)"
    mkdir -p "$var"
fi
[ "$(id -u)" = 0 ] && chown postgres: "$var" && chmod 755 "$var"
state="$var/state"
mkdir -p "$state"
echo "run: data in $var"

# ---- what a killed run left
for name in backendd upstream-sim memcached; do
    if [ -f "$state/$name.pid" ]; then
        old=$(cat "$state/$name.pid")
        if kill -0 "$old" 2>/dev/null; then
            echo "run: stopping the $name ($old) of an earlier run"
            kill "$old" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$old" 2>/dev/null || true
        fi
        rm -f "$state/$name.pid"
    fi
done
if [ -f "$var/pg/postmaster.pid" ]; then
    as_pg "$PG_BINDIR/pg_ctl" -D "$var/pg" -m fast -w stop >/dev/null 2>&1 || true
fi

mc_pid="" pg_started="" bd_pid="" sim_pid=""
cleanup() {
    trap - EXIT INT TERM
    [ -z "$bd_pid" ] || { kill -TERM "$bd_pid" 2>/dev/null || true; wait "$bd_pid" 2>/dev/null || true; }
    [ -z "$sim_pid" ] || { kill -TERM "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; }
    [ -z "$mc_pid" ] || { kill "$mc_pid" 2>/dev/null || true; wait "$mc_pid" 2>/dev/null || true; }
    [ -z "$pg_started" ] || as_pg "$PG_BINDIR/pg_ctl" -D "$var/pg" -m fast -w stop >/dev/null 2>&1 || true
    rm -f "$state/backendd.pid" "$state/upstream-sim.pid" "$state/memcached.pid"
    echo "run: stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- PostgreSQL, its socket beside its data
if [ ! -f "$var/pg/PG_VERSION" ]; then
    echo "run: a new PostgreSQL cluster in $var/pg"
    as_pg "$PG_BINDIR/initdb" -A trust -U backend -E UTF8 --no-locale -D "$var/pg" >"$var/initdb.log" 2>&1 ||
        { cat "$var/initdb.log" >&2; die "initdb failed (log above)"; }
fi
as_pg "$PG_BINDIR/pg_ctl" -D "$var/pg" -l "$var/postgres.log" -w -t 30 \
    -o "-k $var -p 5432 -c listen_addresses=''" start >/dev/null ||
    { tail -n 20 "$var/postgres.log" >&2; die "PostgreSQL did not start (log above)"; }
pg_started=1
dsn="host=$var port=5432 user=backend"
psql "$dsn dbname=postgres" -qtAc "SELECT 1 FROM pg_database WHERE datname = 'backendd'" | grep -q 1 ||
    psql "$dsn dbname=postgres" -qc "CREATE DATABASE backendd" >/dev/null

# ---- memcached on a free loopback port
mc_user=()
[ "$(id -u)" = 0 ] && mc_user=(-u nobody)
for _ in 1 2 3 4 5 6 7 8; do
    mc_port=$((20000 + RANDOM % 30000))
    memcached "${mc_user[@]}" -l 127.0.0.1 -p "$mc_port" -U 0 -m 64 >"$var/memcached.log" 2>&1 &
    mc_pid=$!
    sleep 0.2
    kill -0 "$mc_pid" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$mc_port") 2>/dev/null && break
    kill "$mc_pid" 2>/dev/null || true
    mc_pid=""
done
[ -n "$mc_pid" ] || die "memcached did not start"
echo "$mc_pid" >"$state/memcached.pid"

# ---- the services an order calls, on SIM_PORT (0: a free port)
: >"$var/sim.out" # no line of an earlier run is read below
"$build/daemon/upstream-sim" --port "${SIM_PORT:-0}" >"$var/sim.out" 2>"$var/sim.log" &
sim_pid=$!
echo "$sim_pid" >"$state/upstream-sim.pid"
sim=""
for _ in $(seq 100); do
    sim=$(sed -n 's/^upstream-sim listening on \(.*\)$/\1/p' "$var/sim.out")
    [ -n "$sim" ] && break
    kill -0 "$sim_pid" 2>/dev/null || { cat "$var/sim.log" >&2; die "upstream-sim did not start (log above)"; }
    sleep 0.1
done
[ -n "$sim" ] || die "upstream-sim did not say where it listens"
echo "run: payment, shipping and notifications (daemon/upstream-sim) at http://$sim"

# ---- backendd
docs="$build/docs"
BACKENDD_LISTEN="127.0.0.1:$port" BACKENDD_DATABASE_URL="$dsn dbname=backendd" \
    BACKENDD_MEMCACHED_SERVERS="127.0.0.1:$mc_port" BACKENDD_STATE_DIR="$state" \
    BACKENDD_DOCS_DIR="$docs" BACKENDD_ACCESS_LOG_FILE="$var/access.log" \
    BACKENDD_PAYMENT_URL="http://$sim" BACKENDD_SHIPPING_URL="http://$sim" BACKENDD_NOTIFY_URL="http://$sim" \
    "$bin" --dev &
bd_pid=$!
echo "$bd_pid" >"$state/backendd.pid"
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
    kill -0 "$bd_pid" 2>/dev/null || die "backendd exited"
    sleep 0.1
done
url="http://127.0.0.1:$port"
cat <<EOF
run: backendd is at $url (access log: $var/access.log). Try:
  curl -s $url/api/v1/products?per_page=2
  curl -s -H 'Content-Type: application/json' $url/api/v1/auth/register -d '{"email":"you@example.com","password":"a long enough password","name":"You"}'
  curl -s -H 'Content-Type: application/json' $url/api/v1/auth/login -d '{"email":"you@example.com","password":"a long enough password"}'
  curl -s -H 'Content-Type: application/json' -H "Authorization: Bearer TOKEN" -H 'Idempotency-Key: first' $url/api/v1/orders -d '{"items":[{"product_id":1,"quantity":1}]}'
  curl -s http://$sim/_stats
The API's reference: $url/openapi.json$( [ -d "$docs" ] && echo " and $url/docs/" ). Ctrl-C stops everything.
EOF
wait "$bd_pid" || true
bd_pid=""
