#!/usr/bin/env bash
# daemon/backendd.service.in: the unit that make install writes (daemon/backendd.service)
# is this build's paths in the template; `systemd-analyze verify` accepts it (its man
# pages found in man/), its exposure (`systemd-analyze security --offline=yes`) is
# under 2.0, and it names the configuration file and state directory backendd uses.
# SPDX-License-Identifier: MIT
set -euo pipefail
: "${top_srcdir:?}" "${top_builddir:?}"
command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze is missing (Debian package systemd)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

unit="$top_builddir/daemon/backendd.service"
[ -f "$unit" ] || fail "$unit was not made"
grep -q '@[a-z]*@' "$unit" && fail "a placeholder is left in $unit: $(grep '@[a-z]*@' "$unit")"
# The daemon's own defaults are what the unit provides.
help=$("$top_builddir/daemon/backendd" --help 2>&1 || true)
conf=$(sed -n 's|^ExecStart=[^ ]* -c \(.*\)$|\1|p' "$unit")
[ -n "$conf" ] || fail "no -c FILE in ExecStart"
grep -qF "$conf" <<<"$help" || fail "backendd --help does not name $conf: $help"
grep -qx 'StateDirectory=backendd' "$unit" || fail "no StateDirectory=backendd"
grep -qx 'ConfigurationDirectory=backendd' "$unit" || fail "no ConfigurationDirectory=backendd"
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit" || fail "no ExecReload sending SIGHUP"
for k in DynamicUser=yes ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes PrivateTmp=yes; do
    grep -qx "$k" "$unit" || fail "no $k"
done

# verify wants the ExecStart program to exist: this build's, in a copy.
sed "s|^ExecStart=[^ ]*|ExecStart=$top_builddir/daemon/backendd|" "$unit" >"$work/backendd.service"
MANPATH="$top_srcdir/man" systemd-analyze verify "$work/backendd.service" >"$work/verify" 2>&1 ||
    fail "systemd-analyze verify: $(cat "$work/verify")"
systemd-analyze --offline=yes security "$work/backendd.service" >"$work/security" 2>&1 ||
    fail "systemd-analyze security: $(cat "$work/security")"
score=$(sed -n 's/.*Overall exposure level for backendd.service: \([0-9.]*\).*/\1/p' "$work/security")
[ -n "$score" ] || fail "no exposure level in: $(cat "$work/security")"
awk -v s="$score" 'BEGIN { exit !(s < 2.0) }' || fail "exposure $score, not under 2.0: $(grep '✗' "$work/security")"
echo "PASS: backendd.service verified by systemd-analyze; exposure $score (under 2.0)"
