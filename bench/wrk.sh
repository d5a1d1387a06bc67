# shellcheck shell=bash disable=SC2154 # $conns, $seconds: the caller's
# Sourced by the wrk benchmarks (bench/http_json.sh, bench/backendd.sh,
# bench/peers.sh): servers started and checked, wrk runs parsed, figures and
# BENCH lines. It makes $tmp (a scratch directory), the array pids (the servers
# started) and the associative array port (server name -> its port), and at exit
# stops the servers, drops the database $bench_db when the caller named one,
# and removes $tmp. The caller sets $conns and $seconds, and die();
# $wrk_threads (1) and $scheme (http) may be set.
# SPDX-License-Identifier: MIT

tmp=$(mktemp -d)
pids=()
declare -A port=()
bench_db=""
bench_cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -z "$bench_db" ] || psql "$BK_TEST_PG_DSN" -qc "DROP DATABASE IF EXISTS $bench_db" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap bench_cleanup EXIT
trap 'exit 1' INT TERM

# A port in 20000-32767 that nothing listens on: below Linux's ephemeral range
# (32768-60999), so that no client's connection holds it when the server binds.
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 12768))
        if [ -z "$(ss -Htln "sport = :$p")" ]; then echo "$p"; return; fi
    done
    die "no free port found"
}

# serve NAME PORT URL BODY CMD [ARG...]: runs CMD (which serves on PORT), waits
# ($serve_wait s, 5 by default, at most) until URL answers 200, checks the body
# when BODY is not empty, and records port[NAME].
serve() {
    local name=$1 p=$2 url=$3 body=$4 pid code=000 end=$((SECONDS + ${serve_wait:-5}))
    shift 4
    "$@" >"$tmp/$name.out" 2>>"$tmp/$name.err" &
    pid=$!
    pids+=("$pid")
    while [ "$code" != 200 ] && [ "$SECONDS" -lt "$end" ]; do
        sleep 0.1
        kill -0 "$pid" 2>/dev/null || { cat "$tmp/$name.err" >&2; die "$name ($1) exited"; }
        code=$(curl -sk -m 1 -o "$tmp/$name.body" -w '%{http_code}' "$url") || true
    done
    [ "$code" = 200 ] || { cat "$tmp/$name.err" >&2; die "$name: GET $url gave $code after ${serve_wait:-5} s"; }
    [ -z "$body" ] || [ "$(cat "$tmp/$name.body")" = "$body" ] ||
        die "$name: unexpected body: $(cat "$tmp/$name.body")"
    port["$name"]=$p
}

# measure NAME [PATH [HEADER [SCRIPT [ARG]]]]: one wrk run (SCRIPT: a wrk Lua script,
# given ARG); appends "rps p50_us p99_us" to $tmp/NAME.runs.
measure() {
    local name=$1 path=${2:-/json} out="$tmp/wrk.out"
    local -a hdr=() script=() args=()
    [ -n "${3:-}" ] && hdr=(-H "$3")
    [ -n "${4:-}" ] && script=(-s "$4")
    [ -n "${5:-}" ] && args=(-- "$5")
    wrk -t"${wrk_threads:-1}" -c"$conns" -d"${seconds}s" --latency "${hdr[@]}" "${script[@]}" \
        "${scheme:-http}://127.0.0.1:${port[$name]}$path" "${args[@]}" >"$out" ||
        die "wrk failed against $name"
    if grep -q 'Non-2xx' "$out"; then cat "$out" >&2; die "$name answered non-2xx responses"; fi
    awk 'function us(v) {
             if (v ~ /us$/) return v + 0
             if (v ~ /ms$/) return v * 1000
             if (v ~ /m$/)  return v * 60e6
             if (v ~ /s$/)  return v * 1e6
             return v * 3600e6                     # h
         }
         $1 == "50%" { p50 = us($2) }
         $1 == "99%" { p99 = us($2) }
         $1 == "Requests/sec:" { rps = $2 }
         END { if (rps == "" || p50 == "" || p99 == "") exit 1
               printf "%.2f %.2f %.2f\n", rps, p50, p99 }' "$out" >>"$tmp/$name.runs" ||
        { cat "$out" >&2; die "cannot parse wrk output for $name"; }
    tail -n1 "$tmp/$name.runs" | awk -v n="$name" '{ printf "  %-4s %10.2f req/s  p50 %8.2f us  p99 %8.2f us\n", n, $1, $2, $3 }'
}

# figure NAME COLUMN best|median
figure() {
    sort -g -k"$2","$2" "$tmp/$1.runs" | awk -v c="$2" -v how="$3" '{ v[NR] = $c }
        END { if (how == "best") print v[NR]
              else printf "%.2f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

report() {
    awk -v n="$1" -v o="$2" -v b="$3" -v u="$4" \
        'BEGIN { printf "BENCH %s ours=%s base=%s unit=%s ratio=%.3f\n", n, o, b, u, (b > 0 ? o / b : 0) }'
}
