#!/usr/bin/env bash
# examples/validate checks JSON files against a JSON Schema: exit 0 when all are valid,
# 1 with one JSON line of errors per invalid file, 2 for usage errors, unreadable files
# and invalid schemas; $ref reaches documents given by --remote and --remote-dir;
# --draft and --format-assert change the verdict.
set -euo pipefail
bin="$top_builddir/examples/validate"
py=/usr/bin/python3
work=$(mktemp -d)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    echo "--- stdout"; cat "$work/out"
    echo "--- stderr"; cat "$work/err"
    exit 1
}
[ -x "$py" ] || { echo "FAIL: no $py (Debian's python3)"; exit 1; }
cd "$work"
: >out
: >err

# run ARGS...: runs the example (the libtool wrapper, so a sanitizer build works too)
# with stdout in out, stderr in err and the exit status in $rc.
run() {
    rc=0
    "$bin" "$@" >out 2>err || rc=$?
}
expect() { # expect STATUS WHAT
    [ "$rc" = "$1" ] || fail "$2: exit status $rc, not $1"
    if [ "$1" = 2 ]; then
        grep -q '^validate: ' err || fail "$2: no 'validate: ...' message on stderr"
    else
        [ ! -s err ] || fail "$2: unexpected stderr"
    fi
    [ "$1" = 1 ] || [ ! -s out ] || fail "$2: unexpected stdout"
}
# errors: checks that every line of out is {"file","valid":false,"errors":[...]} with
# the four members per error, and prints one "FILE INSTANCE-LOCATION KEYWORD" per error.
errors() {
    "$py" -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    assert list(d) == ["file", "valid", "errors"] and d["valid"] is False and d["errors"], d
    for e in d["errors"]:
        assert list(e) == ["instanceLocation", "keywordLocation", "keyword", "message"], e
        assert all(isinstance(v, str) for v in e.values()) and e["message"], e
        print(d["file"], e["instanceLocation"] or "(root)", e["keyword"])
' out
}
expect_errors() { # expect_errors WHAT "FILE LOCATION KEYWORD"...: exactly these errors
    local what=$1 got
    shift
    got=$(errors) || fail "$what: stdout is not JSON lines of errors"
    [ "$(sort <<<"$got")" = "$(printf '%s\n' "$@" | sort)" ] || fail "$what: errors were: $got"
}

cat >order.json <<'EOF'
{
  "type": "object",
  "properties": {
    "id": {"type": "integer", "minimum": 1},
    "tags": {"type": "array", "items": {"type": "string"}}
  },
  "required": ["id"]
}
EOF
echo '{"id": 7, "tags": ["a", "b"]}' >ok1.json
echo '{"id": 123456789012345678901234567890}' >ok2.json # too big for json_int_t
echo '{"id": 0, "tags": ["a", 2]}' >bad1.json
echo '{"tags": []}' >bad2.json

run order.json ok1.json ok2.json
expect 0 "valid documents"
run order.json ok1.json bad1.json ok2.json bad2.json
expect 1 "invalid documents"
[ "$(wc -l <out)" = 2 ] || fail "not one line per invalid document"
expect_errors "invalid documents" "bad1.json /id minimum" "bad1.json /tags/1 type" "bad2.json /id required"
grep -q '"keywordLocation":"/properties/id/minimum"' out || fail "no keywordLocation for minimum"

# Exit status 2: an invalid schema, a missing or unparsable file, a usage error.
echo '{"type": 12}' >badschema.json
run badschema.json ok1.json
expect 2 "invalid schema"
grep -q 'invalid schema' err || fail "invalid schema not named"
run order.json missing.json
expect 2 "missing document"
run missing.json ok1.json
expect 2 "missing schema"
printf '{"id": ' >broken.json
run order.json broken.json
expect 2 "unparsable document"
run order.json missing.json bad2.json # the other documents are still checked
[ "$rc" = 2 ] || fail "missing document among others: exit status $rc"
expect_errors "missing document among others" "bad2.json /id required"
run --bogus order.json ok1.json
expect 2 "unknown option"
grep -q '^usage: validate ' err || fail "no usage for an unknown option"
run --draft 6 order.json ok1.json
expect 2 "unknown draft"
run order.json
expect 2 "no document"
run --help
[ "$rc" = 0 ] && grep -q '^usage: validate ' out && [ ! -s err ] || fail "--help"

# --remote: a $ref to a registered URI.
echo '{"$ref": "https://example.com/positive.json"}' >ref.json
echo '{"type": "integer", "minimum": 1}' >positive.json
echo 5 >five.json
echo 0 >zero.json
run ref.json five.json
expect 2 "unregistered \$ref"
run --remote https://example.com/positive.json=positive.json ref.json five.json zero.json
expect 1 "--remote"
expect_errors "--remote" "zero.json (root) minimum"
run --remote https://example.com/positive.json=positive.json \
    --remote https://example.com/positive.json=positive.json ref.json five.json
expect 2 "a URI registered twice"
run --remote positive.json ref.json five.json
expect 2 "--remote without URI="

# --remote-dir: every *.json under a tree, by its relative path; relative $refs between
# the registered documents resolve too. A missing '/' after BASEURI is added.
mkdir -p lib/types
echo '{"type": "string", "$defs": {"n": {"$ref": "../number.json"}}}' >lib/types/str.json
echo '{"type": "number"}' >lib/number.json
echo 'not json, and not *.json either' >lib/README
cat >refs.json <<'EOF'
{
  "properties": {
    "s": {"$ref": "https://example.com/lib/types/str.json"},
    "n": {"$ref": "https://example.com/lib/types/str.json#/$defs/n"}
  }
}
EOF
echo '{"s": "x", "n": 1.5}' >refs-ok.json
echo '{"s": 1, "n": "x"}' >refs-bad.json
run --remote-dir https://example.com/lib=lib refs.json refs-ok.json refs-bad.json
expect 1 "--remote-dir"
expect_errors "--remote-dir" "refs-bad.json /s type" "refs-bad.json /n type"
run --remote-dir https://example.com/lib/=lib/ refs.json refs-ok.json
expect 0 "--remote-dir with slashes"
# The schema's base URI is its file:// URI, so a relative $ref reaches a sibling file
# registered under the same directory's file:// URI.
echo '{"$ref": "lib/number.json"}' >relative.json
dir=$(pwd -P)
uri=$("$py" -c 'import sys, urllib.parse; print("file://" + urllib.parse.quote(sys.argv[1], safe="/-._~!$&'"'"'()*+,;=:@"))' "$dir")
run --remote-dir "$uri/lib/=lib" relative.json five.json ok1.json
expect 1 "relative \$ref through file://"
expect_errors "relative \$ref through file://" "ok1.json (root) type"

# --format-assert: "format" only annotates unless asked to assert.
echo '{"format": "email"}' >email.json
echo '"not-an-email"' >not-email.json
echo '"someone@example.com"' >is-email.json
run email.json not-email.json is-email.json
expect 0 "format annotates"
run --format-assert email.json not-email.json is-email.json
expect 1 "--format-assert"
expect_errors "--format-assert" "not-email.json (root) format"

# --draft 7: an array "items" is a tuple. In 2020-12 "items" must be a schema, so the
# same schema is invalid there; "$schema" wins over --draft.
echo '{"items": [{"type": "integer"}]}' >tuple.json
echo '["x"]' >x.json
echo '[1, "x"]' >one-x.json
run --draft 7 tuple.json x.json one-x.json
expect 1 "--draft 7"
expect_errors "--draft 7" "x.json /0 type"
run --draft 7 tuple.json one-x.json
expect 0 "--draft 7 tuple with extra items"
run tuple.json one-x.json
expect 2 "array items in 2020-12"
grep -q '"items"' err || fail "array items in 2020-12: the message does not name items"
run --draft 2020-12 tuple.json one-x.json
expect 2 "array items with --draft 2020-12"
echo '{"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "integer"}]}' >tuple7.json
run --draft 2020-12 tuple7.json x.json one-x.json
expect 1 "\$schema over --draft"
expect_errors "\$schema over --draft" "x.json /0 type"

echo "PASS: validate exits 0/1/2 rightly, prints JSON error lines, resolves --remote and --remote-dir, and honours --draft and --format-assert"
