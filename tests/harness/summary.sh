#!/usr/bin/env bash
# Prints what `make check` ran: each Check suite's summary line, each script test's
# result, and one total line "N passed, N failed" (Check test cases, the cases of
# programs that end with "total: N passed, N failed", and script tests), with ", N
# skipped" when a script skipped itself (exit 77: a slow check the pass before
# ran). A test's
# lines that begin "note: " (what it ran on, e.g. which JSON Schema Test Suite) are
# printed under its result.
set -u
build=${1:-build}
passed=0 failed=0 skipped=0
shopt -s nullglob globstar
for trs in "$build"/**/*.trs; do
    log=${trs%.trs}.log
    name=${trs#"$build"/}; name=${name%.trs}
    line=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" 2>/dev/null | tail -n 1)
    result=$(sed -n 's/^:test-result: //p' "$trs" | head -n 1)
    total=$(grep -E '^total: [0-9]+ passed, [0-9]+ failed$' "$log" 2>/dev/null | tail -n 1)
    if [ -z "$line" ] && [ -n "$total" ]; then
        ok=$(sed -E 's/^total: ([0-9]+) passed.*/\1/' <<<"$total")
        bad=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$total")
        [ "$result" = PASS ] || [ "$bad" -gt 0 ] || bad=1
        passed=$((passed + ok)); failed=$((failed + bad))
        printf '%-36s %s\n' "$name" "$total"
    elif [ -n "$line" ]; then
        checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
        bad=$(sed -E 's/.*Failures: ([0-9]+), Errors: ([0-9]+).*/\1 + \2/' <<<"$line")
        bad=$((bad))
        # A suite that crashed after printing still counts as one failure.
        [ "$result" = PASS ] || [ "$bad" -gt 0 ] || bad=1
        passed=$((passed + checks - bad)); failed=$((failed + bad))
        printf '%-36s %s\n' "$name" "$line"
    else
        case "$result" in
            PASS) passed=$((passed + 1)) ;;
            SKIP) skipped=$((skipped + 1)) ;;
            *) failed=$((failed + 1)) ;;
        esac
        printf '%-36s %s\n' "$name" "${result:-NOT RUN}"
    fi
    grep -E '^note: ' "$log" 2>/dev/null | sed 's/^/    /' || true
done
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
