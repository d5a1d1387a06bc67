#!/usr/bin/env bash
# build.sh SRCDIR OUT: backendd's /docs directory in OUT (a build-tree
# directory): Swagger UI from npm (swagger-ui-dist, pinned by
# daemon/docs/package-lock.json, installed by npm ci into OUT.npm) with our
# index.html and docs.js, which read the service's /openapi.json. Plain files,
# copied (bk_http_mount_static follows no symbolic link). `make docs-ui` runs it;
# `make run` and `make check-browser` use its output.
# SPDX-License-Identifier: MIT
set -euo pipefail
[ $# = 2 ] || { echo "usage: build.sh SRCDIR OUT" >&2; exit 2; }
src=$1/daemon/docs
out=$2
bash "$1/tests/harness/npm_ci.sh" "$src" "$out.npm" swagger-ui-dist
dist="$out.npm/node_modules/swagger-ui-dist"
rm -rf "$out.new"
mkdir -p "$out.new"
cp "$dist/swagger-ui.css" "$dist/swagger-ui-bundle.js" "$dist/swagger-ui-bundle.js.LICENSE.txt" \
    "$dist/favicon-32x32.png" "$dist/LICENSE" "$dist/NOTICE" "$out.new/"
cp "$src/index.html" "$src/docs.js" "$out.new/"
rm -rf "$out"
mv "$out.new" "$out"
echo "docs: $out (Swagger UI $(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$dist/package.json" | head -n1))"
