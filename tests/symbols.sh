#!/usr/bin/env bash
# The shared library exports only bk_ symbols (-fvisibility=hidden + BK_EXPORT),
# each under the version node LIBBACKEND_0 (lib/libbackend.map), and carries a
# libtool-versioned SONAME.
set -euo pipefail
lib=$(ls "$top_builddir"/.libs/libbackend.so.* | head -n 1)
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
case "$soname" in
    libbackend.so.[0-9]*) ;;
    *) echo "FAIL: SONAME is '$soname'"; exit 1 ;;
esac
# Defined dynamic symbols, less the ELF section markers the linker always adds.
bad=$(nm -D --defined-only "$lib" | awk '{ sub(/@.*/, "", $3); print $3 }' | grep -v '^bk_' | grep -vxE '_init|_fini|_edata|_end|__bss_start|LIBBACKEND_0' || true)
if [ -n "$bad" ]; then
    echo "FAIL: symbols without the bk_ prefix are exported:"; echo "$bad"; exit 1
fi
n=$(nm -D --defined-only "$lib" | awk '{ sub(/@.*/, "", $3); print $3 }' | grep -c '^bk_')
# Every one under the version node (objdump -T: the version is the column before the name).
unversioned=$(objdump -T "$lib" | awk '$NF ~ /^bk_/ && $(NF - 1) != "LIBBACKEND_0" { print $NF }')
[ -z "$unversioned" ] || { echo "FAIL: not under LIBBACKEND_0: $unversioned"; exit 1; }
# Every exported function is declared in a public header.
for sym in $(nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }'); do
    grep -rqw -- "$sym" "$top_srcdir/include/backend" || { echo "FAIL: $sym exported but in no header"; exit 1; }
done
echo "PASS: $n bk_ symbols exported under LIBBACKEND_0, nothing else; SONAME $soname"
