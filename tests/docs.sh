#!/usr/bin/env bash
# Every public function has a man page that names it, and every page lints clean.
set -euo pipefail
cd "$top_srcdir"
status=0
pages=$(ls man/man3/*.3 man/man7/*.7 man/man5/*.5 man/man8/*.8 2>/dev/null || true)
for p in $pages; do
    out=$(mandoc -Tlint -W warning "$p" 2>&1 || true)
    if [ -n "$out" ]; then echo "FAIL: mandoc -Tlint $p"; echo "$out"; status=1; fi
done
# Public functions: bk_ names followed by "(" in the headers (macros excluded).
funcs=$(grep -hoE '\bbk_[a-z0-9_]+\(' include/backend/*.h | tr -d '(' | sort -u)
for f in $funcs; do
    # Named in a page's NAME section (.Nm), so apropos and the page itself find it.
    grep -qE "^\.Nm $f( ,)?\$" man/man3/*.3 || { echo "FAIL: $f has no man page (.Nm $f)"; status=1; }
done
# libbackend-errors(7) lists every code of the table with its value and HTTP status.
while read -r name value http; do
    got=$(grep -A20 "^\.It Dv BK_$name\$" man/man7/libbackend-errors.7 | grep -m1 '^Value ' || true)
    [ "$got" = "Value $value; HTTP $http." ] ||
        { echo "FAIL: libbackend-errors(7) lists BK_$name as \"$got\", want \"Value $value; HTTP $http.\""; status=1; }
done < <(sed -nE 's/^ *X\(([A-Z_]+), (-[0-9]+), "[^"]*", ([0-9]+)\).*/\1 \2 \3/p' include/backend/core.h)
# Every cross-reference to one of ours names a page, or a function a page names in
# .Nm (make install links those names to their page).
while read -r _ page sec; do
    [ -f "man/man$sec/$page.$sec" ] || grep -qE "^\.Nm $page( ,)?\$" man/man$sec/*."$sec" ||
        { echo "FAIL: .Xr $page $sec leads to no page"; status=1; }
done < <(grep -ho '^\.Xr \(bk_[a-z0-9_]*\|libbackend[a-z-]*\) [0-9]' $pages | sort -u)
# Every installed page is listed in Makefile.am, so make install ships it.
for p in $pages; do
    grep -q "$p" Makefile.am || { echo "FAIL: $p is not in Makefile.am dist_man_MANS"; status=1; }
done
[ $status = 0 ] && echo "PASS: $(echo "$funcs" | wc -w) functions documented; $(echo "$pages" | wc -w) pages lint clean"
exit $status
