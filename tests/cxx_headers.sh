#!/usr/bin/env bash
# Every public header compiles as C++17 with -Wall -Wextra -Werror -pedantic, on
# its own (it includes what it needs) and through backend/backend.h, and declares
# its functions extern "C" (a C++ program links them by their C names: checked by
# nm on a program that takes each function's address).
# SPDX-License-Identifier: MIT
set -euo pipefail
: "${top_srcdir:?}" "${top_builddir:?}"
cxx=${CXX:-g++}
command -v "${cxx%% *}" >/dev/null || { echo "FAIL: no C++ compiler ($cxx): install g++"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(-std=c++17 -Wall -Wextra -Werror -pedantic -I"$top_srcdir/include" -I"$top_builddir/include"
    $(pkg-config --cflags jansson))
n=0
for h in "$top_srcdir"/include/backend/*.h; do
    name=backend/$(basename "$h")
    printf '#include <%s>\nint main() { return 0; }\n' "$name" >"$work/one.cpp"
    "$cxx" "${flags[@]}" -c "$work/one.cpp" -o "$work/one.o" 2>"$work/err" ||
        { echo "FAIL: $name does not compile as C++17:"; cat "$work/err"; exit 1; }
    n=$((n + 1))
done
# Each exported function's address taken in C++: the object refers to it by its
# C name, never a mangled one.
funcs=$(sed -n 's/^BK_EXPORT [^(]*[ *]\(bk_[a-z0-9_]*\)(.*/\1/p' "$top_srcdir"/include/backend/*.h | sort -u)
[ -n "$funcs" ] || { echo "FAIL: no BK_EXPORT function found in the headers"; exit 1; }
{
    echo '#include <backend/backend.h>'
    echo 'extern const void *const bk_cxx_addresses[];'
    echo 'const void *const bk_cxx_addresses[] = {'
    for f in $funcs; do echo "    reinterpret_cast<const void *>(&$f),"; done
    echo '};'
} >"$work/all.cpp"
"$cxx" "${flags[@]}" -c "$work/all.cpp" -o "$work/all.o" 2>"$work/err" ||
    { echo "FAIL: backend/backend.h does not compile as C++17:"; cat "$work/err"; exit 1; }
undef=$(nm -u "$work/all.o" | awk '{ print $2 }')
for f in $funcs; do
    grep -qx "$f" <<<"$undef" || { echo "FAIL: $f is not referred to by its C name from C++ (extern \"C\" missing?)"; exit 1; }
done
grep -q '^_Z.*bk_' <<<"$undef" && { echo "FAIL: a mangled bk_ name: $(grep '^_Z.*bk_' <<<"$undef" | head -3)"; exit 1; }
echo "PASS: $n public headers compile as C++17 (-Wall -Wextra -Werror -pedantic); $(wc -w <<<"$funcs") functions have C linkage"
