#!/usr/bin/env bash
# The hostile-input suite (tests/http/test_http_hostile) once more, over TLS: the
# server with a certificate, every case through a TLS relay. Run in the plain and
# sanitizer passes; the valgrind pass (BK_SLOW_CHECKS=no) has run it already
# without valgrind's cost, so there it is skipped (77).
set -euo pipefail
if [ "${BK_SLOW_CHECKS:-yes}" = no ]; then
    echo "SKIP: the TLS rerun of the hostile suite ran in the pass before"
    exit 77
fi
command -v openssl >/dev/null || { echo "FAIL: openssl is not installed (Debian package openssl)"; exit 1; }
BK_HOSTILE_TLS=1 exec "$top_builddir/tests/http/test_http_hostile"
