#!/usr/bin/env bash
# debian.sh SRC: the Debian packages of the tree SRC, built as a packager builds
# them and checked as a user would use them, without installing anything:
#   1. dpkg-buildpackage -us -uc -b on a copy of SRC (DEB_BUILD_OPTIONS=nocheck:
#      the tests ran already), out of tree (debian/rules: debian/build);
#   2. lintian on the result: no error and no warning (pedantic and info tags
#      are printed; each override in debian/*.lintian-overrides says why);
#   3. the packages unpacked with dpkg -x into a temporary root: the headers,
#      pkg-config file, man pages and systemd unit are there; examples/hello_json
#      builds against that root through pkg-config and answers /json; backendd
#      --version runs.
# Run by `make check-release` (top-level Makefile), once per CI run.
# SPDX-License-Identifier: MIT
set -euo pipefail
src=$(cd "${1:?usage: debian.sh SRC}" && pwd)
for tool in dpkg-buildpackage lintian dpkg-deb pkg-config curl cc; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (make check-release installs it)"; exit 1; }
done
work=$(mktemp -d)
pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# 1. The build, on a copy of the tracked files (or all of SRC outside git).
mkdir "$work/libbackend"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work/libbackend")
else
    cp -a "$src/." "$work/libbackend"
fi
(cd "$work/libbackend" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -us -uc -b) \
    >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; fail "dpkg-buildpackage failed"; }
changes=$(ls "$work"/libbackend_*.changes)
for p in libbackend0 libbackend-dev backendd; do
    ls "$work/${p}"_*.deb >/dev/null 2>&1 || fail "no $p package was built"
done

# 2. lintian.
lintian --pedantic --display-info --fail-on error,warning "$changes" >"$work/lintian" 2>&1 ||
    { cat "$work/lintian"; fail "lintian found errors or warnings"; }
tags=$(grep -cE '^[EWIPX]:' "$work/lintian" || true)
echo "lintian: no error, no warning; $tags other tag(s):"
grep -E '^[EWIPX]:' "$work/lintian" | sed 's/^/  /' || true

# 3. Unpacked, used.
root="$work/root"
for deb in "$work"/libbackend0_*.deb "$work"/libbackend-dev_*.deb "$work"/backendd_*.deb; do
    dpkg -x "$deb" "$root"
done
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libdir="$root/usr/lib/$multiarch"
for f in usr/include/backend/backend.h "usr/lib/$multiarch/pkgconfig/libbackend.pc" "usr/lib/$multiarch/libbackend.so" \
    usr/share/man/man3/bk_http_server_new.3.gz usr/share/man/man8/backendd.8.gz usr/bin/backendd \
    lib/systemd/system/backendd.service; do
    [ -e "$root/$f" ] || fail "$f is in no package"
done
ls "$libdir"/libbackend.so.0.* >/dev/null || fail "no libbackend.so.0.* in libbackend0"
export PKG_CONFIG_SYSROOT_DIR="$root"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
libs=$(pkg-config --libs libbackend) || fail "pkg-config --libs libbackend failed"
cflags=$(pkg-config --cflags libbackend)
echo "pkg-config --libs libbackend: $libs"
# shellcheck disable=SC2086 # word splitting is what the flags need
cc -std=c11 -Wall -Wextra -Werror $cflags "$src/examples/hello_json.c" -o "$work/hello_json" $libs ||
    fail "examples/hello_json.c does not build against the packages"
export LD_LIBRARY_PATH="$libdir"
loads=$(ldd "$work/hello_json") # whole, not piped to grep -q (see installcheck.sh)
[[ $loads == *"$libdir/libbackend.so.0"* ]] || fail "hello_json does not load the packaged library: $loads"
: >"$work/log"
"$work/hello_json" --port 0 --threads 1 2>>"$work/log" &
pid=$!
# shellcheck source=tests/harness/listening.sh
. "$src/tests/harness/listening.sh"
port=$(listening_port "$work/log" "$pid") || fail "hello_json did not start: $(cat "$work/log")"
[ "$(curl -fsS "http://127.0.0.1:$port/json")" = '{"message":"Hello, World!"}' ] || fail "hello_json's answer"
kill -TERM "$pid" && wait "$pid" && pid=""
version=$("$root/usr/bin/backendd" --version) || fail "backendd --version failed"
echo "PASS: packages $(cd "$work" && ls ./*.deb | grep -v dbgsym | sed 's|^\./||' | tr '\n' ' ')built, lintian clean, hello_json built and run from them, $version"
