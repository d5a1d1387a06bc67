#!/usr/bin/env bash
# A soak: backendd on the harness's servers and the upstream simulator under a
# steady mixed workload (product reads, logins, orders through the saga) for
# BK_SOAK_SECONDS (60 in make check; make soak: 600), then checks:
#   - every request was answered, none with a 5xx;
#   - the daemon's open file descriptors, once the load's connections are
#     closed, are no more after the second half of the run than after the first
#     (the pools grow to their working size in the first; a leak goes on);
#   - its log has no error line;
#   - with BK_SOAK_RSS=yes (make soak, a plain build: RSS means nothing under
#     the sanitizers), its RSS after the run is within 5% of its RSS after the
#     warm-up.
# Prints the figures. The valgrind pass (BK_SLOW_CHECKS=no) skips it (77): the
# sanitizer pass has run it.
# SPDX-License-Identifier: MIT
set -euo pipefail
if [ "${BK_SLOW_CHECKS:-yes}" = no ]; then
    echo "SKIP: the soak runs once, in the sanitizer pass"
    exit 77
fi
secs=${BK_SOAK_SECONDS:-60}
# shellcheck source=tests/daemon/lib.sh
. "$top_srcdir/tests/daemon/lib.sh"
daemon_setup
sim_start
daemon_conf "$work/backendd.conf" "payment_url = $sim_url" "shipping_url = $sim_url" "notify_url = $sim_url" \
    "docs = off" "login_rate_email = 1000000/1m" "login_rate_address = 1000000/1m" "order_wait = 5s" \
    "memcached_near_ttl = 1s" "database_pool_size = 4"
daemon_start "$work/backendd.conf"

load_setup SOAK 100000000

fds() { find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }

# load SECONDS: the mixed workload of tests/daemon/load.py from 6 clients
# reading and logging in and 2 placing orders; prints "requests status:count
# ...", and fails on a request that got no answer or a 5xx.
load() { /usr/bin/python3 "$top_srcdir/tests/daemon/load.py" "$port" "$1" --products "$products" --clients 6 --order-clients 2; }

# A warm-up: caches loaded, the saga engine's threads busy once.
warm=$(load 5) || fail "the warm-up load: $warm"
rss0=$(rss_kb)

# idle_fds: the daemon's descriptors once the load's connections are closed
# (polled until they stop falling).
idle_fds() {
    local n last=""
    for _ in $(seq 50); do
        n=$(fds)
        [ "$n" = "$last" ] && break
        last=$n
        sleep 0.2
    done
    echo "$n"
}

# The load in two halves. The pools (database, memcached, the upstreams' kept
# connections) grow to their working size in the first; a leak goes on growing
# in the second, and the descriptors after it must not exceed those after the
# first.
half=$(( (secs + 1) / 2 ))
total=0
statuses=""
for phase in 1 2; do
    out=$(load "$half") || fail "the load: $out"
    read -r n st <<<"$out"
    total=$((total + n))
    statuses+="$st "
    for s in $st; do
        case "$s" in 5*) fail "answers with a 5xx during the soak: $st" ;; esac
    done
    if [ "$phase" = 1 ]; then fd1=$(idle_fds); else fd2=$(idle_fds); fi
done
rss2=$(rss_kb)
echo "soak: $secs s, $total requests: $statuses"
[ "$total" -gt 100 ] || fail "only $total requests in $secs s"
echo "soak: descriptors $fd1 after the first half, $fd2 after the second; RSS $rss0 KB after the warm-up, $rss2 KB at the end"
[ "$fd2" -le "$fd1" ] || fail "descriptors grew from $fd1 to $fd2 in the second half: $(ls -l "/proc/$pid/fd" | tail -n 20)"
if grep -q '"level":"error"' "$work/log"; then fail "error lines in the log: $(grep '"level":"error"' "$work/log" | head -n 5)"; fi
if [ "${BK_SOAK_RSS:-no}" = yes ]; then
    growth=$(( (rss2 - rss0) * 1000 / rss0 ))
    echo "soak: RSS grew by $((growth / 10)).$((growth % 10))% (limit 5%)"
    [ "$growth" -lt 50 ] || fail "RSS grew from $rss0 KB to $rss2 KB"
fi
daemon_stop
echo "PASS: $total requests in $secs s, no 5xx, descriptors steady at $fd2, no error in the log"
