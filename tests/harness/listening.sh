# shellcheck shell=bash
# Sourced by the scripts that start a libbackend server on port 0 and must learn
# its port (tests/examples/*.sh, tests/release/*.sh).
# SPDX-License-Identifier: MIT

# listening_port LOG PID [TRIES]: prints the port of the first "listening" line
# (the server's JSON log) in LOG, polling every 50 ms, TRIES times (600: 30 s,
# enough under valgrind); fails when PID exits first or the time is up. LOG must
# exist before the server starts, so that polling it never races its creation.
listening_port() {
    local log=$1 pid=$2 port=""
    for _ in $(seq "${3:-600}"); do
        port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' "$log" | head -n 1)
        if [ -n "$port" ]; then echo "$port"; return 0; fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
