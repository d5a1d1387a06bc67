#!/usr/bin/env bash
# installcheck.sh ROOT PREFIX SRCDIR: every example in SRCDIR/examples built
# against the library installed at ROOT + PREFIX (make install DESTDIR=ROOT, or
# ROOT empty for a real install) through pkg-config alone, as a user builds a
# program, and run: hello_json and hello_cpp answer /json, validate checks a
# document, passwd hashes and verifies, jwt issues and verifies, cache (with the
# harness's memcached, when BK_TEST_MEMCACHED is set) loads once. Run by
# `make installcheck` (Makefile.am's installcheck-local), which distcheck runs.
# SPDX-License-Identifier: MIT
set -euo pipefail
root=${1:-} prefix=${2:?usage: installcheck.sh ROOT PREFIX SRCDIR} src=${3:?usage: installcheck.sh ROOT PREFIX SRCDIR}
work=$(mktemp -d)
pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
libdir=""
for d in "$root$prefix"/lib "$root$prefix"/lib/*; do
    if [ -z "$libdir" ] && [ -e "$d/pkgconfig/libbackend.pc" ]; then libdir=$d; fi
done
[ -n "$libdir" ] || fail "no libbackend.pc under $root$prefix/lib"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
[ -z "$root" ] || export PKG_CONFIG_SYSROOT_DIR="$root"
export LD_LIBRARY_PATH="$libdir"
cflags=$(pkg-config --cflags libbackend) libs=$(pkg-config --libs libbackend)
built=""
for c in "$src"/examples/*.c "$src"/examples/*.cpp; do
    name=$(basename "$c")
    out="$work/${name%.*}"
    [ "${c##*.}" = cpp ] && { compiler=${CXX:-c++}; std=-std=c++17; out="$work/hello_cpp"; } || { compiler=${CC:-cc}; std=""; } # the compiler's own default (gnu17), as a user's build
    # shellcheck disable=SC2086 # the flags are words
    $compiler $std -Wall -Wextra -Werror $cflags "$c" -o "$out" $libs -pthread ${BK_SAN_LDFLAGS:-} ||
        fail "examples/$name does not build against the installed library"
    # ldd's output is taken whole first: under pipefail, `ldd | grep -q` fails
    # whenever grep exits at its match before ldd has written its last line.
    loads=$(ldd "$out")
    [[ $loads == *"$libdir/libbackend.so"* ]] || fail "examples/$name is not linked with the installed library: $loads"
    built+=" ${out##*/}"
done

# shellcheck source=tests/harness/listening.sh
. "$src/tests/harness/listening.sh"
# serve NAME: runs it on a free port and checks /json.
serve() {
    : >"$work/$1.log"
    "$work/$1" --port 0 --threads 1 2>>"$work/$1.log" &
    pid=$!
    local port
    port=$(listening_port "$work/$1.log" "$pid") || fail "$1 did not start: $(cat "$work/$1.log")"
    [ "$(curl -fsS "http://127.0.0.1:$port/json")" = '{"message":"Hello, World!"}' ] || fail "$1's answer"
    kill -TERM "$pid" && wait "$pid" || fail "$1 did not stop cleanly"
    pid=""
}
serve hello_json
serve hello_cpp
echo '{"type":"object","required":["a"]}' >"$work/schema.json"
echo '{"a":1}' >"$work/good.json"
echo '{}' >"$work/bad.json"
"$work/validate" "$work/schema.json" "$work/good.json" || fail "validate refused a valid document"
if "$work/validate" "$work/schema.json" "$work/bad.json" >/dev/null; then fail "validate accepted an invalid document"; fi
hash=$(printf 'correct horse\n' | "$work/passwd" hash) || fail "passwd hash"
printf 'correct horse\n' | "$work/passwd" verify "$hash" || fail "passwd verify"
head -c 32 /dev/urandom >"$work/key"
token=$("$work/jwt" issue --key-file "$work/key" --alg HS256 --sub u1) || fail "jwt issue"
"$work/jwt" verify --key-file "$work/key" --alg HS256 "$token" | grep -q '"sub":"u1"' || fail "jwt verify"
ran="hello_json hello_cpp validate passwd jwt"
if [ -n "${BK_TEST_MEMCACHED:-}" ]; then
    "$work/cache" "$BK_TEST_MEMCACHED" "installcheck-$$:" k 4 >"$work/cache.out" || fail "cache"
    ran+=" cache"
fi
echo "PASS: built against the installed library:$built; ran: $ran"
