# shellcheck shell=bash
# Sourced by the scripts that run backendd and daemon/upstream-sim
# (tests/daemon/*.sh): a work directory, a database of the script's own on the
# harness's PostgreSQL, and the programs started on free ports, all gone at exit.
#   work_setup              $work and the EXIT trap, no database (upstream_sim.sh)
#   daemon_setup            the same, and $db, $dsn (the database made)
#   daemon_conf FILE [LINE...]  a configuration on $dsn and the harness's
#                           memcached, cheap Argon2, logs in $work; LINEs appended
#   daemon_start FILE [NAME]  backendd -c FILE (under BK_TEST_WRAPPER): $pid, $port,
#                           $url; its log $work/log, or $work/log.NAME for another
#   daemon_stop             SIGTERM to $pid; fails unless it exits 0
#   fail MESSAGE            prints it and the logs' tails, exits 1
#   sim_start               daemon/upstream-sim on a free port (under BK_TEST_WRAPPER):
#                           $sim_pid, $sim_url; its stdout $work/sim.out
#   sim_stop                SIGTERM to $sim_pid; fails unless it exits 0
#   req METHOD PATH [BODY [HEADER...]]  curl $url: $status, $work/body, $work/head
#   jget EXPR               a Python expression over $work/body (as j)
#   header NAME             a header of $work/head
#   expect STATUS WHAT      fails unless $status is STATUS
#   register NAME...        accounts NAME@example.com, password "correct horse battery"
#   make_admin NAME         NAME@example.com's role made admin (in the database)
#   load_setup SKU STOCK    what tests/daemon/load.py logs in as and reads: the account
#                           soak@example.com, and 5 products SKU-1..5 of STOCK each
#                           (made by an admin, boss): their ids in $products
# Needs $top_builddir; daemon_setup BK_TEST_PG_DSN and BK_TEST_MEMCACHED too.
# SPDX-License-Identifier: MIT
bin="${top_builddir:?make check sets top_builddir}/daemon/backendd"
pid=""
sim_pid=""
db=""

daemon_cleanup() {
    [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true
    [ -z "$sim_pid" ] || kill -9 "$sim_pid" 2>/dev/null || true
    [ -z "$db" ] || psql "$BK_TEST_PG_DSN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}

fail() {
    echo "FAIL: $*"
    local log
    for log in "$work"/log* "$work"/sim.log; do
        [ -f "$log" ] || continue
        echo "--- $log"
        tail -n 40 "$log" || true
    done
    exit 1
}

work_setup() {
    for tool in curl python3; do
        command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed"; exit 1; }
    done
    work=$(mktemp -d)
    trap daemon_cleanup EXIT
}

daemon_setup() {
    : "${BK_TEST_PG_DSN:?the harness (tests/harness/services.sh) gives BK_TEST_PG_DSN}"
    : "${BK_TEST_MEMCACHED:?the harness gives BK_TEST_MEMCACHED}"
    command -v psql >/dev/null || { echo "FAIL: psql is not installed"; exit 1; }
    work_setup
    db="backendd_$(basename "$0" .sh)_$$"
    psql "$BK_TEST_PG_DSN" -qc "CREATE DATABASE $db" >/dev/null
    dsn="${BK_TEST_PG_DSN/dbname=postgres/dbname=$db}"
    : >"$work/log"
}

daemon_conf() {
    local file=$1
    shift
    head -c 32 /dev/urandom >"$work/jwt.key"
    cat >"$file" <<EOF
listen = 127.0.0.1:0
database_url = $dsn
memcached_servers = $BK_TEST_MEMCACHED
memcached_prefix = $db-$RANDOM:
jwt_key = e2e HS256 $work/jwt.key
jwt_issuer = e2e
io_threads = 2
worker_threads = 4
# cheap hashes: the flows, not Argon2, are under test
argon2_memory_kib = 64
argon2_iterations = 1
state_dir = $work/state
access_log_file = $work/access.log
EOF
    local line
    for line in "$@"; do echo "$line" >>"$file"; done
}

daemon_start() {
    # shellcheck disable=SC2086 # the wrapper is a command line
    local log="$work/log${2:+.$2}"
    touch "$log" # read below before the daemon may have opened it
    ${BK_TEST_WRAPPER:-} "$bin" -c "$1" >"$work/out${2:+.$2}" 2>>"$log" &
    pid=$!
    port=""
    for _ in $(seq 600); do
        port=$(sed -n 's/.*"msg":"serving".*"port":\([0-9]*\).*/\1/p' "$log")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || fail "backendd exited"
        sleep 0.1
    done
    [ -n "$port" ] || fail "no 'serving' line"
    url="http://127.0.0.1:$port"
}

sim_start() {
    : >"$work/sim.out" # read below before the simulator may have opened it
    # shellcheck disable=SC2086 # the wrapper is a command line
    ${BK_TEST_WRAPPER:-} "$top_builddir/daemon/upstream-sim" --port 0 >"$work/sim.out" 2>>"$work/sim.log" &
    sim_pid=$!
    local line=""
    for _ in $(seq 600); do
        line=$(sed -n 's/^upstream-sim listening on \(.*\)$/\1/p' "$work/sim.out")
        [ -n "$line" ] && break
        kill -0 "$sim_pid" 2>/dev/null || fail "upstream-sim exited: $(cat "$work/sim.log")"
        sleep 0.1
    done
    [ -n "$line" ] || fail "no 'listening' line from upstream-sim"
    sim_url="http://$line"
}

req() {
    local method=$1 path=$2 body=${3:-}
    shift 3 || shift $#
    local args=(-sS --max-time 60 -X "$method" -o "$work/body" -D "$work/head" -w '%{http_code}') h
    [ -z "$body" ] || args+=(-H 'Content-Type: application/json' --data-binary "$body")
    for h in "$@"; do args+=(-H "$h"); done
    status=$(curl "${args[@]}" "$url$path") || fail "curl $method $path failed"
}

# stop_pid VAR NAME: SIGTERM to the process whose pid VAR holds; fails unless it exits 0.
stop_pid() {
    local p=${!1} rc=0
    kill -TERM "$p"
    wait "$p" || rc=$?
    printf -v "$1" ''
    [ "$rc" = 0 ] || fail "$2 exited $rc after SIGTERM"
}
daemon_stop() { stop_pid pid backendd; }
sim_stop() { stop_pid sim_pid upstream-sim; }
jget() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($1)" "$work/body"; }
header() { sed -n "s/^$1: *//Ip" "$work/head" | tr -d '\r'; }
expect() { [ "$status" = "$1" ] || fail "$2: status $status, not $1: $(cat "$work/body")"; }
register() {
    local who
    for who in "$@"; do
        req POST /api/v1/auth/register \
            "{\"email\":\"$who@example.com\",\"password\":\"correct horse battery\",\"name\":\"$who\"}"
        expect 201 "register $who"
    done
}
make_admin() {
    psql "$dsn" -qc "UPDATE backendd.users SET role = 'admin' WHERE email = '$1@example.com'" >/dev/null
}
load_setup() {
    local boss i
    register soak boss
    make_admin boss
    req POST /api/v1/auth/login '{"email":"boss@example.com","password":"correct horse battery"}'
    expect 200 "login boss"
    boss=$(jget 'j["access_token"]')
    products=""
    for i in 1 2 3 4 5; do
        req POST /api/v1/products "{\"sku\":\"$1-$i\",\"name\":\"Item $i\",\"price\":$((i * 100)),\"stock\":$2}" \
            "Authorization: Bearer $boss"
        expect 201 "product $i"
        products+="$(jget 'j["id"]') "
    done
}
