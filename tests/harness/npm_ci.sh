#!/usr/bin/env bash
# npm_ci.sh SRC PREFIX PACKAGE...: the npm packages that SRC's package.json and
# package-lock.json pin, installed by `npm ci` into PREFIX (a build-tree
# directory, never SRC itself), again only when the lock file or package.json
# changed or a PACKAGE (a name under node_modules/) is missing. Used by the tests
# and benchmarks that run something from npm (tests/http/openapi.sh, bench/schema.sh).
# SPDX-License-Identifier: MIT
set -euo pipefail
die() { echo "npm_ci: $*" >&2; exit 1; }
[ $# -ge 3 ] || die "usage: npm_ci.sh SRC PREFIX PACKAGE..."
src=$(cd "$1" && pwd)
mkdir -p "$2"
prefix=$(cd "$2" && pwd)
shift 2
case "$prefix/" in
"$src"/*) die "$prefix is in the source tree's $src; give a directory of the build tree" ;;
esac
command -v node >/dev/null || die "node is not installed (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm is not installed (it comes with Node.js)"
fresh=yes
cmp -s "$src/package-lock.json" "$prefix/package-lock.json" || fresh=no
cmp -s "$src/package.json" "$prefix/package.json" || fresh=no
for p in "$@"; do
    [ -f "$prefix/node_modules/$p/package.json" ] || fresh=no
done
[ "$fresh" = yes ] && exit 0
echo "npm_ci: npm ci into $prefix" >&2
cp "$src/package.json" "$src/package-lock.json" "$prefix/"
(cd "$prefix" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
    { rm -f "$prefix/package-lock.json"; die "npm ci failed in $prefix"; }
