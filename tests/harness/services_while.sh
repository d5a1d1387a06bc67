#!/usr/bin/env bash
# services_while.sh PID ENVFILE: the test servers (services.sh) for as long as
# process PID lives, their addresses written to ENVFILE (shell assignments:
# BK_TEST_PG_DSN="..." and the rest) once they are up, and ENVFILE removed when
# they stop. For a `make check` that has no servers (a tarball's, distcheck's):
# Makefile.am's bk-test-services starts it in the background with its own make's
# pid, and the tests read ENVFILE. Its output goes where the caller sends it.
# SPDX-License-Identifier: MIT
set -euo pipefail
[ $# = 2 ] || { echo "usage: services_while.sh PID ENVFILE" >&2; exit 2; }
pid=$1 envfile=$2
exec "$(dirname "$0")/services.sh" run -- bash -c '
    env | grep "^BK_TEST_" | sed "s/=\(.*\)/=\"\1\"/" >"$2.new" && mv "$2.new" "$2"
    while kill -0 "$1" 2>/dev/null; do sleep 1; done
    rm -f "$2"' services_while "$pid" "$envfile"
