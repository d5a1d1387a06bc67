# shellcheck shell=bash
# Sourced by the scripts that run a memcached of their own: the service harness
# (services.sh) and the chaos test, which kills its memcached and starts it
# again on the same port.
# SPDX-License-Identifier: MIT

# memcached_start LOG [PORT]: a memcached on 127.0.0.1:PORT (a random free port
# when PORT is not given, retried if taken), its output in LOG; sets mc_pid and
# mc_port once it accepts connections. Returns 1, with mc_pid empty, when it
# could not start (LOG says why).
memcached_start() {
    local log=$1 want=${2:-} attempt
    local user=()
    [ "$(id -u)" = 0 ] && user=(-u nobody)
    for attempt in 1 2 3 4 5 6 7 8; do
        mc_port=${want:-$((20000 + RANDOM % 30000))}
        memcached "${user[@]}" -l 127.0.0.1 -p "$mc_port" -U 0 -m 64 >"$log" 2>&1 &
        mc_pid=$!
        for _ in $(seq 50); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$mc_port") 2>/dev/null; then return 0; fi
            kill -0 "$mc_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$mc_pid" 2>/dev/null || true
        wait "$mc_pid" 2>/dev/null || true
        mc_pid=""
        # A port of our own choosing that is taken may be free again soon (its
        # last owner's sockets closing): wait a little before trying it again.
        [ -z "$want" ] || sleep 0.5
    done
    return 1
}
