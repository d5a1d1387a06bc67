#!/usr/bin/env bash
# run.sh BUILDDIR SECONDS [JOBS]: each libFuzzer target of BUILDDIR/tests/fuzz/
# (fuzz_http, fuzz_schema, fuzz_jwt, fuzz_rbac, fuzz_phc, fuzz_entry and
# fuzz_conf, which `make fuzz` builds with clang and
# -fsanitize=fuzzer,address,undefined) for SECONDS, JOBS at a time
# (default 2), each on a fresh copy of its seeds (tests/fuzz/corpus/NAME/) and
# regression inputs (tests/fuzz/regress/NAME/), with its dictionary. A crash, a
# leak, a timeout (an input over 10 s) or running out of memory fails the run,
# and the input is kept under BUILDDIR/tests/fuzz/run/NAME/: copy it into
# tests/fuzz/regress/NAME/ with the fix, so that make check replays it. Prints
# per target the executions, the coverage (edges), the corpus size and the
# findings.
# SPDX-License-Identifier: MIT
set -euo pipefail
build=${1:?usage: run.sh BUILDDIR SECONDS [JOBS]} secs=${2:?usage: run.sh BUILDDIR SECONDS [JOBS]} jobs=${3:-2}
src=$(cd "$(dirname "$0")/../.." && pwd)
targets=(http schema jwt rbac phc entry conf)
work="$build/tests/fuzz/run"
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)

run_one() {
    local t=$1 dir="$work/$1" args=()
    mkdir -p "$dir/corpus"
    cp "$src/tests/fuzz/corpus/$t/"* "$dir/corpus/"
    if [ -d "$src/tests/fuzz/regress/$t" ]; then cp "$src/tests/fuzz/regress/$t/"* "$dir/corpus/"; fi
    [ -f "$src/tests/fuzz/$t.dict" ] && args+=("-dict=$src/tests/fuzz/$t.dict")
    local rc=0
    BK_FUZZ_JWT_CORPUS="$dir/corpus" "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/" "${args[@]}" "$dir/corpus" \
        >"$dir/log" 2>&1 || rc=$?
    echo "$rc" >"$dir/rc"
}

for t in "${targets[@]}"; do
    [ -x "$build/tests/fuzz/fuzz_$t" ] || { echo "FAIL: no $build/tests/fuzz/fuzz_$t (make fuzz builds it)"; exit 1; }
done
running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait

failed=""
for t in "${targets[@]}"; do
    dir="$work/$t"
    # (A run that failed early has no such lines: || true, under pipefail.)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1) || true
    cov=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -n 1 | cut -d' ' -f2) || true
    corpus=$(find "$dir/corpus" -type f | wc -l)
    findings=$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' -o -name 'slow-unit-*' \) | wc -l)
    rc=$(cat "$dir/rc")
    echo "fuzz_$t: ${execs:-0} executions in ${secs} s, coverage ${cov:-0} edges, corpus $corpus inputs, findings $findings"
    if [ "$rc" != 0 ] || [ "$findings" != 0 ]; then
        failed+=" fuzz_$t"
        echo "--- fuzz_$t (exit $rc): the end of $dir/log"
        tail -n 40 "$dir/log"
        find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) \
            -exec echo "input kept: {} (copy it into tests/fuzz/regress/$t/ with the fix)" \;
    fi
done
[ -z "$failed" ] || { echo "FAIL:$failed"; exit 1; }
echo "PASS: ${#targets[@]} fuzz targets, ${secs} s each, no finding"
