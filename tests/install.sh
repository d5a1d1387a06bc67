#!/usr/bin/env bash
# `make install` into a fresh prefix gives a tree that a program builds against
# through pkg-config alone, and that program runs.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $MAKE -s -C "$top_builddir" install DESTDIR="$work/root" >"$work/install.log" 2>&1 ||
    { cat "$work/install.log"; echo "FAIL: make install"; exit 1; }
prefix=$(sed -n 's/^prefix=//p' "$top_builddir/pkgconfig/libbackend.pc")
root="$work/root$prefix"
export PKG_CONFIG_PATH="$root/lib/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$work/root"
for f in include/backend/backend.h lib/pkgconfig/libbackend.pc share/man/man3/bk_strerror.3 share/man/man3/bk_err_name.3 share/man/man7/libbackend.7; do
    [ -e "$root/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
cat >"$work/hello.c" <<'C'
#include <stdio.h>
#include <backend/backend.h>

int main(void)
{
    unsigned char b[4];
    if (bk_random_bytes(b, sizeof b) != BK_OK)
        return 1;
    printf("libbackend %s: %s\n", bk_version(), bk_strerror(BK_EBUSY));
    return bk_version_num() == BK_VERSION_NUM ? 0 : 1;
}
C
# shellcheck disable=SC2046
${CC:-cc} -o "$work/hello" "$work/hello.c" $(pkg-config --cflags --libs libbackend) $BK_SAN_LDFLAGS
out=$(LD_LIBRARY_PATH="$root/lib" "$work/hello")
[ "$out" = "libbackend $(pkg-config --modversion libbackend): resource busy or queue full" ] ||
    { echo "FAIL: program printed '$out'"; exit 1; }
# The program resolved libbackend from the installed tree, not from the build tree.
# (ldd's output is captured first: with pipefail, grep -q closing the pipe early
# would fail the pipeline.)
libs=$(LD_LIBRARY_PATH="$root/lib" ldd "$work/hello")
grep -q "$root/lib/libbackend.so" <<<"$libs" ||
    { echo "FAIL: not linked against the installed library"; exit 1; }
echo "PASS: installed tree builds and runs a program via pkg-config ($out)"
