#!/usr/bin/env bash
# The ABI of libbackend.so is the one committed in abi/libbackend.abi: abidiff
# (Debian abigail-tools) finds no function or variable removed, changed or added,
# and no type of the public headers changed. A change to the ABI fails here until
# `make abi-baseline` writes the new baseline in the same commit (HACKING.md, "The
# ABI", says what such a change must also do to the SONAME).
# SPDX-License-Identifier: MIT
set -euo pipefail
: "${top_srcdir:?}" "${top_builddir:?}"
command -v abidiff >/dev/null || { echo "FAIL: abidiff is missing (Debian package abigail-tools)"; exit 1; }
lib=$(ls "$top_builddir"/.libs/libbackend.so.*.*.* | head -n 1)
baseline="$top_srcdir/abi/libbackend.abi"
[ -f "$baseline" ] || { echo "FAIL: no ABI baseline $baseline (make abi-baseline)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rc=0
abidiff --headers-dir1 "$top_srcdir/include/backend" --headers-dir2 "$top_srcdir/include/backend" \
    "$baseline" "$lib" >"$work/diff" 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
    echo "FAIL: the ABI differs from abi/libbackend.abi (abidiff exit $rc):"
    cat "$work/diff"
    echo "If the change is meant: make abi-baseline, and see HACKING.md, \"The ABI\"."
    exit 1
fi
echo "PASS: the ABI is abi/libbackend.abi's: $(grep -m1 'Functions changes summary' "$work/diff")"
