#!/bin/sh
# Writes the C table of built-in meta-schemas: one { "$id", "JSON text" } entry
# per file named after SRCDIR, the text as a C string literal.
# Usage: embed.sh SRCDIR FILE...
# SPDX-License-Identifier: MIT
set -eu
srcdir=$1
shift
for name in "$@"; do
    f=$srcdir/$name
    id=$(sed -n 's/^ *"\$id": *"\([^"]*\)".*/\1/p' "$f" | head -n 1)
    [ -n "$id" ] || { echo "embed.sh: no \$id in $f" >&2; exit 1; }
    printf '{"%s",\n' "$id"
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/ "/' -e 's/$/\\n"/' "$f"
    printf '},\n'
done
