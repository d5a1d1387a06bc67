#!/usr/bin/env bash
# examples/passwd hashes a password read on stdin into a PHC string, verifies one
# (exit 0 match, 1 mismatch, 2 malformed hash or usage) and says whether one needs a
# rehash (0 yes, 1 no); hashes made by Debian's python3-argon2 verify through it and
# its hashes verify in python.
set -euo pipefail
bin="$top_builddir/examples/passwd"
py=/usr/bin/python3
work=$(mktemp -d)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    echo "--- stdout"; cat "$work/out"
    echo "--- stderr"; cat "$work/err"
    exit 1
}
cd "$work"
: >out
: >err
# python3-argon2 is a test dependency (the top-level Makefile installs it): missing, it fails.
"$py" -c 'import argon2' >out 2>err || fail "$py with python3-argon2 is needed"

# run STDIN ARGS...: runs the example (the libtool wrapper, so a sanitizer build works
# too) with STDIN as its input, stdout in out, stderr in err, exit status in $rc.
run() {
    local input=$1
    shift
    rc=0
    printf '%s' "$input" >in
    "$bin" "$@" <in >out 2>err || rc=$?
}
expect() { # expect STATUS WHAT: that status, "passwd: ..." on stderr only for 2, no stdout
    [ "$rc" = "$1" ] || fail "$2: exit status $rc, not $1"
    if [ "$1" = 2 ]; then
        grep -q '^passwd: \|^usage: passwd ' err || fail "$2: no message on stderr"
    else
        [ ! -s err ] || fail "$2: unexpected stderr"
    fi
    [ ! -s out ] || fail "$2: unexpected stdout"
}

pw='correct horse battery staple'
run "$pw"$'\n' hash
[ "$rc" = 0 ] && [ ! -s err ] || fail "hash: exit status $rc"
hash=$(cat out)
[[ "$hash" =~ ^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$ ]] ||
    fail "hash: not a default Argon2id PHC string: $hash"
[ "$(wc -l <out)" = 1 ] || fail "hash: not one line"

# One trailing newline is removed, and only one.
run "$pw" verify "$hash"
expect 0 "verify without newline"
run "$pw"$'\n' verify "$hash"
expect 0 "verify with newline"
run "$pw"$'\n\n' verify "$hash"
expect 1 "verify with two newlines"
run "wrong" verify "$hash"
expect 1 "verify a wrong password"
run "" verify "$hash"
expect 1 "verify the empty password"

run "$pw" verify 'not-a-hash'
expect 2 "verify a malformed hash"
grep -q 'malformed' err || fail "malformed hash not named"
# Two characters off: 41 base64 characters cannot be a whole number of bytes. (One
# off leaves 42, a valid 31-byte hash one time in 16, when the last character's
# spare bits happen to be zero: then it is a mismatch, 1, not malformed.)
run "$pw" verify "${hash%??}"
expect 2 "verify a truncated hash"
run "$pw" verify "${hash/m=19456/m=4194304}"
expect 2 "verify a hash asking for 4 GiB"
run "$(head -c 1025 /dev/zero | tr '\0' x)" verify "$hash"
expect 2 "a password over 1024 bytes"

run "" needs-rehash "$hash"
expect 1 "needs-rehash for a default hash"
run "" needs-rehash "${hash/t=2/t=3}"
expect 0 "needs-rehash for other parameters"
run "" needs-rehash garbage
expect 0 "needs-rehash for garbage"

for args in "" "bogus" "hash extra" "verify" "verify a b" "needs-rehash"; do
    # shellcheck disable=SC2086 # split on purpose
    run "$pw" $args
    expect 2 "usage: passwd $args"
done

# Interop: python3-argon2's hashes (argon2id with other parameters, argon2i) verify
# here, ours in python; the password travels as an argument, never through a shell.
pyhash=$("$py" -c 'import sys, argon2
print(argon2.PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(sys.argv[1]))' "$pw")
run "$pw" verify "$pyhash"
expect 0 "verify a python argon2id hash"
run "$pw!" verify "$pyhash"
expect 1 "verify a wrong password against a python hash"
run "" needs-rehash "$pyhash"
expect 0 "needs-rehash for a python hash"
pyhash=$("$py" -c 'import os, sys
from argon2.low_level import Type, hash_secret
print(hash_secret(sys.argv[1].encode(), os.urandom(16), time_cost=2, memory_cost=256,
                  parallelism=2, hash_len=32, type=Type.I).decode())' "$pw")
[[ "$pyhash" == '$argon2i$'* ]] || fail "python made $pyhash"
run "$pw" verify "$pyhash"
expect 0 "verify a python argon2i hash"
"$py" -c 'import sys, argon2
argon2.PasswordHasher().verify(sys.argv[1], sys.argv[2])' "$hash" "$pw" >out 2>err ||
    fail "python does not verify our hash"

echo "PASS: passwd hashes, verifies (0/1/2), answers needs-rehash and interoperates with python3-argon2"
