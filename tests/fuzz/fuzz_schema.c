/* libFuzzer target: JSON Schema. The input, when it is JSON, is compiled as a
 * schema (under its own $schema, else 2020-12, and again as draft-07), and
 * validated as an instance against that schema and against fixed schemas that
 * use most keywords ($ref and $defs, patterns, formats, unevaluated*,
 * dependent*, if/then/else, contains), with every error collected; then
 * coerced as a query string would be, with defaults filled in.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>

#include <backend/schema.h>

#include "fuzz.h"

static const char *const FIXED[] = {
    "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\","
    "\"required\":[\"sku\",\"items\"],\"properties\":{\"sku\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{2,5}-[0-9]+$\"},"
    "\"price\":{\"type\":\"integer\",\"minimum\":0,\"multipleOf\":5},\"email\":{\"format\":\"email\"},"
    "\"when\":{\"format\":\"date-time\"},\"items\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":50,"
    "\"items\":{\"$ref\":\"#/$defs/item\"},\"uniqueItems\":true,\"contains\":{\"const\":1},\"maxContains\":3}},"
    "\"$defs\":{\"item\":{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"object\",\"properties\":{\"qty\":"
    "{\"type\":\"number\",\"exclusiveMinimum\":0}},\"additionalProperties\":false}]}},"
    "\"patternProperties\":{\"^x-\":{\"type\":\"string\",\"maxLength\":8}},\"unevaluatedProperties\":false,"
    "\"dependentRequired\":{\"price\":[\"sku\"]},\"if\":{\"properties\":{\"sku\":{\"const\":\"AB-1\"}}},"
    "\"then\":{\"required\":[\"price\"]},\"else\":{\"not\":{\"required\":[\"email\"]}}}",
    "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"definitions\":{\"node\":{\"type\":\"object\","
    "\"properties\":{\"v\":{\"type\":[\"string\",\"null\"],\"enum\":[\"a\",\"b\",null]},\"next\":{\"$ref\":"
    "\"#/definitions/node\"}},\"dependencies\":{\"v\":[\"next\"]},\"propertyNames\":{\"maxLength\":4}}},"
    "\"$ref\":\"#/definitions/node\"}",
    "{\"type\":\"object\",\"properties\":{\"page\":{\"type\":\"integer\",\"minimum\":1,\"default\":1},"
    "\"q\":{\"type\":\"string\",\"minLength\":1},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"on\":{\"type\":\"boolean\",\"default\":false},\"ratio\":{\"type\":\"number\",\"maximum\":1}}}",
};
#define NFIXED (sizeof FIXED / sizeof FIXED[0])
static bk_schema_t *fixed[NFIXED];

BK_FUZZ_INIT
{
    for (size_t i = 0; i < NFIXED; i++) {
        json_error_t je;
        json_t *doc = json_loads(FIXED[i], 0, &je);
        bk_error_t err;
        if (!doc || bk_schema_compile(doc, NULL, &fixed[i], &err) != BK_OK) {
            fprintf(stderr, "fuzz_schema: fixed schema %zu: %s\n", i, doc ? err.message : je.text);
            abort();
        }
        json_decref(doc);
    }
}

static void validate(const bk_schema_t *s, const json_t *instance)
{
    bk_schema_errors_t *errors = NULL;
    int rc = bk_schema_validate(s, instance, BK_SCHEMA_ALL_ERRORS, &errors);
    if (rc != BK_OK && rc != BK_EINVAL && rc != BK_ENOMEM)
        abort(); /* no other code is documented */
    bk_schema_errors_free(errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, &je);
    if (!doc)
        return 0;
    for (int draft = 0; draft < 2; draft++) {
        bk_schema_opts_t o;
        bk_schema_opts_init(&o);
        if (draft)
            o.draft = BK_SCHEMA_DRAFT_7;
        bk_schema_t *s;
        bk_error_t err;
        if (bk_schema_compile(doc, &o, &s, &err) == BK_OK) {
            validate(s, doc);
            bk_schema_free(s);
        }
    }
    for (size_t i = 0; i < NFIXED; i++) {
        validate(fixed[i], doc);
        json_t *out = NULL;
        if (bk_schema_coerce(fixed[i], doc, BK_SCHEMA_COERCE_STRINGS | BK_SCHEMA_FILL_DEFAULTS, &out) == BK_OK)
            validate(fixed[i], out);
        json_decref(out);
    }
    json_decref(doc);
    return 0;
}
