#!/usr/bin/env bash
# /docs in a real browser: backendd with docs on and the docs directory that
# `make docs-ui` built (Swagger UI), Debian's headless Chromium driven by
# playwright-core (tests/browser/docs.cjs): the page lists every operation of
# /openapi.json, each once, and throws no error. The screenshot goes to
# $top_builddir/tests/browser/docs.png. `make check-browser` runs it once per CI
# run (it is not in make check: a browser under valgrind proves nothing more).
set -euo pipefail
# shellcheck source=tests/daemon/lib.sh
. "$top_srcdir/tests/daemon/lib.sh"
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "FAIL: no $chromium (Debian package chromium; make check-browser installs it)"; exit 1; }
docs="$top_builddir/docs"
[ -f "$docs/index.html" ] && [ -f "$docs/swagger-ui-bundle.js" ] ||
    { echo "FAIL: $docs has no Swagger UI: make docs-ui builds it"; exit 1; }
modules="$top_builddir/tests/browser.npm"
bash "$top_srcdir/tests/harness/npm_ci.sh" "$top_srcdir/tests/browser" "$modules" playwright-core

daemon_setup
daemon_conf "$work/backendd.conf" "docs = on" "docs_dir = $docs"
daemon_start "$work/backendd.conf"

code=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "$url/docs")
[ "$code" = "301 $url/docs/" ] || fail "GET /docs: $code, not a redirect to /docs/"
curl -fsS -o "$work/openapi.json" "$url/openapi.json" || fail "no /openapi.json"
mkdir -p "$top_builddir/tests/browser"
NODE_PATH="$modules/node_modules" CHROMIUM="$chromium" \
    node "$top_srcdir/tests/browser/docs.cjs" "$url/docs/" "$work/openapi.json" "$top_builddir/tests/browser/docs.png" ||
    fail "Swagger UI in Chromium"
daemon_stop
