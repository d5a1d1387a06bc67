#!/usr/bin/env bash
# The tree is wired together: every public header is included by backend/backend.h
# and installed (Makefile.am backendinclude_HEADERS), and every test under tests/ is
# run by `make check`: a .c file with a main() is a source of a program in TESTS, a
# .sh script is in TESTS, and any other .c or .h file is a source of such a program
# or a helper named below. So a new module or test cannot be left out by mistake.
set -euo pipefail
cd "$top_srcdir"
status=0
fail() { echo "FAIL: $*"; status=1; }

# Files under tests/ that make check does not run as tests, and why. A helper that is
# listed in its programs' _SOURCES (tests/http/client.h) needs no entry here.
exempt=(
    tests/check_main.h        # included by every Check suite: how a suite runs (bk_test_run)
    tests/gate.h              # included by suites that order threads by events
    tests/pg_test.h           # included by the suites on the harness's PostgreSQL: its DSN, a database of their own
    tests/proc_test.h         # included by the suites across processes: their children, bounded waits on the database
    tests/harness/services.sh # starts PostgreSQL and memcached around make check and make run
    tests/fuzz/run.sh         # runs the libFuzzer targets: make fuzz runs it, once per CI run
    tests/harness/pgbouncer.sh # starts PgBouncer in front of it for tests/db/pgbouncer.sh and make bench
    tests/harness/services_while.sh # the servers of a make check run without them (a tarball's, distcheck's)
    tests/harness/summary.sh  # prints what make check ran
    tests/harness/listening.sh # sourced by the scripts that learn a server's port from its log
    tests/harness/memcached.sh # sourced by services.sh and chaos.sh: a memcached started on a port
    tests/release/debian.sh   # the Debian packages built and checked: make check-release runs it, once per CI run
    tests/release/installcheck.sh # every example against the installed library: make installcheck runs it
    tests/harness/npm_ci.sh   # installs the npm packages of openapi.sh, bench/schema.sh, browser.sh and the docs
    tests/daemon/lib.sh       # sourced by e2e.sh and browser.sh: a database, a configuration, the daemon started
    tests/daemon/load.py      # the mixed workload of soak.sh and chaos.sh
    tests/daemon/browser.sh   # /docs in Chromium: make check-browser runs it, once per CI run
)
is_exempt() {
    local e
    for e in "${exempt[@]}"; do [ "$e" = "$1" ] && return 0; done
    return 1
}
for e in "${exempt[@]}"; do [ -e "$e" ] || fail "$e is exempted in tests/layout.sh but does not exist"; done

# What make check runs, asked of the build's Makefile (so it is what automake made of
# Makefile.am): the installed headers, TESTS, and the sources of each check program.
# The make variable names are automake's canonical names (/, -, . become _).
# shellcheck disable=SC2016
rules='bk-layout-print: ; @printf "%s\n" "headers $(backendinclude_HEADERS)" "tests $(TESTS)" $(foreach p,$(check_PROGRAMS),"sources $(p) $($(subst .,_,$(subst -,_,$(subst /,_,$(p))))_SOURCES)")'
vars=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "${MAKE:-make}" -s --no-print-directory -C "$top_builddir" \
    --eval "$rules" bk-layout-print) || { echo "FAIL: cannot read the variables of $top_builddir/Makefile (make says why above)"; exit 1; }
headers=" $(sed -n 's/^headers //p' <<<"$vars") "
tests=" $(sed -n 's/^tests //p' <<<"$vars") "
# "FILE PROGRAM" for every source of a check program that is also in TESTS.
run_sources=$(sed -n 's/^sources //p' <<<"$vars" | while read -r prog srcs; do
    case "$tests" in *" $prog "*) for s in $srcs; do echo "$s $prog"; done ;; esac
done)
source_of() { awk -v f="$1" '$1 == f { print $2; exit }' <<<"$run_sources"; }

# Public headers: in backend.h, and installed.
nh=0
for h in include/backend/*.h; do
    nh=$((nh + 1))
    name=${h#include/}
    [ "$name" = backend/backend.h ] ||
        grep -qE "^#include <$name>" include/backend/backend.h || fail "$h is not included by include/backend/backend.h"
    case "$headers" in *" $h "*) ;; *) fail "$h is not in Makefile.am backendinclude_HEADERS (make install would not ship it)" ;; esac
done

# Tests: every program and script is run by make check.
nt=0
while IFS= read -r f; do
    is_exempt "$f" && continue
    case "$f" in
        *.sh)
            case "$tests" in
                *" $f "*) nt=$((nt + 1)) ;;
                *) fail "$f is not run by make check: add it to SCRIPT_TESTS in Makefile.am (or, if it is no test, to the exempt list of tests/layout.sh)" ;;
            esac ;;
        *.c | *.h)
            prog=$(source_of "$f")
            if grep -qE '^(static )?int main[[:space:]]*\(' "$f"; then
                if [ -n "$prog" ]; then nt=$((nt + 1)); else
                    fail "$f has a main() but is not run by make check: add ${f%.c} to check_PROGRAMS in Makefile.am (TESTS runs them), with $f in its _SOURCES"
                fi
            elif [ -z "$prog" ]; then
                fail "$f is in no _SOURCES of a program that make check runs (a helper: list it in its programs' _SOURCES or the exempt list of tests/layout.sh)"
            fi ;;
    esac
done < <(find tests -type f \( -name '*.c' -o -name '*.h' -o -name '*.sh' \) | LC_ALL=C sort)

[ $status = 0 ] && echo "PASS: $nh public headers in backend/backend.h and installed; $nt test programs and scripts, all run by make check"
exit $status
