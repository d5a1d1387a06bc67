#!/usr/bin/env bash
# schema.sh: JSON Schema validations per second, our bench/bench_schema against
# ajv under node (bench/ajv/bench.js: ajv/dist/2020 + ajv-formats), measured in the
# same run: a ~2 KB order document (bench/schema/) against a draft 2020-12 schema
# with formats asserted, compiled once.
#
#   schema.sh [OURS [PREFIX]]     run from the build directory
#     OURS    our benchmark (or $BENCH_OURS; default ./bench/bench_schema)
#     PREFIX  build-tree directory that npm ci installs bench/ajv/package-lock.json
#             into (or $BENCH_NODE_PREFIX; default ./bench/node); reinstalled when
#             the lock file changes. Never the source tree.
#   env: BENCH_SCHEMA_SECONDS (time of each figure, 1)  BENCH_SCHEMA_ROUNDS (3)
#        BENCH_SCHEMA_DATA (the schema and documents; default bench/schema beside this)
#        BENCH_VERBOSE (set: print each side's errors on the invalid document)
#
# First both sides must agree: order-valid.json valid, order-invalid.json invalid
# (with either error mode); the script fails otherwise. Then rounds alternate
# ours, ajv, ajv, ours, ... each run giving both figures (valid document with the
# first-error fast path; invalid document with every error collected). Figures:
# the best validations/s of each over the rounds. Ends with:
#   BENCH schema_valid ours=<v/s> base=<v/s> unit=validations/s ratio=<ours/base>
#   BENCH schema_invalid_all_errors ours=<v/s> base=<v/s> unit=validations/s ratio=<ours/base>
#
# SPDX-License-Identifier: MIT
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ours=${1:-${BENCH_OURS:-./bench/bench_schema}}
prefix=${2:-${BENCH_NODE_PREFIX:-./bench/node}}
seconds=${BENCH_SCHEMA_SECONDS:-1}
rounds=${BENCH_SCHEMA_ROUNDS:-3}
data=${BENCH_SCHEMA_DATA:-$here/schema}
ajv_src=$here/ajv

die() { echo "schema: $*" >&2; exit 1; }
[ -x "$ours" ] || die "$ours is not an executable"
for f in order.schema.json order-valid.json order-invalid.json; do
    [ -f "$data/$f" ] || die "$data/$f is missing"
done

# The packages, pinned by the lock file, in the build tree.
bash "$here/../tests/harness/npm_ci.sh" "$ajv_src" "$prefix" ajv ajv-formats || die "cannot install ajv"
prefix=$(cd "$prefix" && pwd)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

# value KEY FILE: the value of the KEY=value line of FILE.
value() { sed -n "s/^$1=//p" "$2" | tail -n1; }

# Agreement on validity, before any timing.
"$ours" --check "$data" >"$tmp/ours.check" || die "our validator disagrees with the documents (see above)"
node "$ajv_src/bench.js" --prefix "$prefix" --check "$data" >"$tmp/ajv.check" ||
    die "ajv disagrees with the documents (see above)"
for side in ours ajv; do
    [ "$(value "${side}_valid_ok" "$tmp/$side.check")" = 1 ] || die "$side: order-valid.json is not valid"
    [ "$(value "${side}_invalid_ok" "$tmp/$side.check")" = 0 ] || die "$side: order-invalid.json is not invalid"
done
ours_errors=$(value ours_invalid_errors "$tmp/ours.check")
ajv_errors=$(value ajv_invalid_errors "$tmp/ajv.check")
echo "schema: both agree: order-valid.json valid, order-invalid.json invalid" \
    "($ours_errors errors ours, $ajv_errors ajv)"
[ "$ours_errors" = "$ajv_errors" ] ||
    echo "schema: warning: the two report different numbers of errors on order-invalid.json" >&2

# run SIDE: one run of SIDE; appends "valid invalid_all_errors" to $tmp/SIDE.runs.
run() {
    local side=$1 out="$tmp/$1.out" v a
    if [ "$side" = ours ]; then
        "$ours" --seconds "$seconds" "$data" >"$out" || die "$ours failed"
    else
        node "$ajv_src/bench.js" --prefix "$prefix" --seconds "$seconds" "$data" >"$out" ||
            die "node bench.js failed"
    fi
    v=$(value "${side}_valid" "$out")
    a=$(value "${side}_invalid_all_errors" "$out")
    if [ -z "$v" ] || [ -z "$a" ]; then cat "$out" >&2; die "cannot parse the output of $side"; fi
    echo "$v $a" >>"$tmp/$side.runs"
    printf '  %-4s valid %12.0f/s   invalid, all errors %12.0f/s\n' "$side" "$v" "$a"
}

best() { sort -g -k"$2","$2" "$tmp/$1.runs" | tail -n1 | awk -v c="$2" '{ print $c }'; }

report() {
    awk -v n="$1" -v o="$2" -v b="$3" -v u="$4" \
        'BEGIN { printf "BENCH %s ours=%s base=%s unit=%s ratio=%.3f\n", n, o, b, u, (b > 0 ? o / b : 0) }'
}

echo "schema: $rounds rounds of ${seconds} s per figure, alternating; best of each;" \
    "ajv $(node -p 'require(process.argv[1]).version' "$prefix/node_modules/ajv/package.json"), node $(node --version)"
for r in $(seq "$rounds"); do
    if [ $((r % 2)) = 1 ]; then run ours; run ajv; else run ajv; run ours; fi
done

report schema_valid "$(best ours 1)" "$(best ajv 1)" validations/s
report schema_invalid_all_errors "$(best ours 2)" "$(best ajv 2)" validations/s
