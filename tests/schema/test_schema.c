/* JSON Schema beyond the official suite: error paths and messages, first-error
 * and all-errors modes, numbers, code points, limits against hostile documents,
 * $ref loops, the registry, meta-schemas, and one schema shared by 8 threads.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include <backend/schema.h>

#include "check_main.h"

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    ck_assert_msg(v != NULL, "bad test JSON: %s", err.text);
    return v;
}

static bk_schema_t *compile_opts(const char *text, const bk_schema_opts_t *o)
{
    json_t *doc = parse(text);
    bk_schema_t *s = NULL;
    bk_error_t err;
    int rc = bk_schema_compile(doc, o, &s, &err);
    ck_assert_msg(rc == BK_OK, "compile failed: %s", err.message);
    json_decref(doc); /* the schema keeps its own reference */
    return s;
}

static bk_schema_t *compile(const char *text)
{
    return compile_opts(text, NULL);
}

/* The compile error for text (which must not compile). */
static int compile_error(const char *text, bk_error_t *err)
{
    json_t *doc = parse(text);
    bk_schema_t *s = NULL;
    int rc = bk_schema_compile(doc, NULL, &s, err);
    ck_assert_ptr_null(s);
    json_decref(doc);
    return rc;
}

static bool valid(const bk_schema_t *s, const char *instance)
{
    json_t *v = parse(instance);
    int rc = bk_schema_validate(s, v, 0, NULL);
    json_decref(v);
    ck_assert(rc == BK_OK || rc == BK_EINVAL);
    return rc == BK_OK;
}

static bk_schema_errors_t *errors_of(const bk_schema_t *s, const char *instance, unsigned flags)
{
    json_t *v = parse(instance);
    bk_schema_errors_t *errs = NULL;
    ck_assert_int_eq(bk_schema_validate(s, v, flags, &errs), BK_EINVAL);
    ck_assert_ptr_nonnull(errs);
    json_decref(v);
    return errs;
}

static void expect_error(const bk_schema_errors_t *errs, size_t i, const char *instance_location,
                         const char *keyword_location, const char *keyword, const char *message)
{
    const bk_schema_error_t *e = bk_schema_errors_get(errs, i);
    ck_assert_msg(e != NULL, "no error %zu", i);
    ck_assert_str_eq(e->instance_location, instance_location);
    ck_assert_str_eq(e->keyword_location, keyword_location);
    ck_assert_str_eq(e->keyword, keyword);
    ck_assert_str_eq(e->message, message);
}

/* ------------------------------------------------------------------ errors */
static const char ORDER[] =
    "{\"type\":\"object\",\"required\":[\"id\",\"items\",\"zip\"],\"additionalProperties\":false,"
    " \"properties\":{"
    "  \"id\":{\"type\":\"string\",\"maxLength\":5},"
    "  \"zip\":{\"type\":\"string\"},"
    "  \"status\":{\"enum\":[\"a\",\"b\"]},"
    "  \"items\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/item\"}}},"
    " \"$defs\":{\"item\":{\"type\":\"object\",\"properties\":{\"qty\":{\"type\":\"integer\",\"minimum\":1}}}}}";

START_TEST(all_errors_have_paths_and_plain_messages)
{
    bk_schema_t *s = compile(ORDER);
    bk_schema_errors_t *errs =
        errors_of(s, "{\"id\":\"abcdefg\",\"status\":\"c\",\"items\":[{\"qty\":2},{\"qty\":0}],\"extra\":1}",
                  BK_SCHEMA_ALL_ERRORS);
    ck_assert_uint_eq(bk_schema_errors_count(errs), 5);
    expect_error(errs, 0, "/zip", "/required", "required", "is required");
    expect_error(errs, 1, "/id", "/properties/id/maxLength", "maxLength", "must be at most 5 characters long");
    expect_error(errs, 2, "/status", "/properties/status/enum", "enum", "is not one of [\"a\",\"b\"]");
    expect_error(errs, 3, "/items/1/qty", "/properties/items/items/$ref/properties/qty/minimum", "minimum",
                 "must be at least 1");
    expect_error(errs, 4, "/extra", "/additionalProperties", "additionalProperties",
                 "property \"extra\" is not allowed");
    ck_assert_ptr_null(bk_schema_errors_get(errs, 5));

    json_t *j = bk_schema_errors_json(errs);
    ck_assert_uint_eq(json_array_size(j), 5);
    json_t *e3 = json_array_get(j, 3);
    ck_assert_str_eq(json_string_value(json_object_get(e3, "instanceLocation")), "/items/1/qty");
    ck_assert_str_eq(json_string_value(json_object_get(e3, "keyword")), "minimum");
    ck_assert_str_eq(json_string_value(json_object_get(e3, "message")), "must be at least 1");
    json_decref(j);
    bk_schema_errors_free(errs);
    bk_schema_free(s);
}
END_TEST

START_TEST(first_error_mode_stops_at_one)
{
    bk_schema_t *s = compile(ORDER);
    bk_schema_errors_t *errs = errors_of(s, "{\"id\":7,\"items\":[{\"qty\":0}],\"extra\":1}", 0);
    ck_assert_uint_eq(bk_schema_errors_count(errs), 1);
    bk_schema_errors_free(errs);

    /* Valid: BK_OK and no error list; without a list, only the verdict. */
    json_t *v = parse("{\"id\":\"a\",\"zip\":\"1\",\"items\":[]}");
    errs = (bk_schema_errors_t *)1;
    ck_assert_int_eq(bk_schema_validate(s, v, BK_SCHEMA_ALL_ERRORS, &errs), BK_OK);
    ck_assert_ptr_null(errs);
    json_decref(v);
    v = parse("[]");
    ck_assert_int_eq(bk_schema_validate(s, v, BK_SCHEMA_ALL_ERRORS, NULL), BK_EINVAL);
    json_decref(v);
    bk_schema_free(s);
}
END_TEST

START_TEST(type_messages_name_the_types)
{
    bk_schema_t *s = compile("{\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":[\"integer\",\"null\"]},"
                             "\"c\":{\"type\":\"object\"}}}");
    bk_schema_errors_t *errs = errors_of(s, "{\"a\":1,\"b\":1.5,\"c\":[]}", BK_SCHEMA_ALL_ERRORS);
    ck_assert_uint_eq(bk_schema_errors_count(errs), 3);
    expect_error(errs, 0, "/a", "/properties/a/type", "type", "must be a string");
    expect_error(errs, 1, "/b", "/properties/b/type", "type", "must be of type null or integer");
    expect_error(errs, 2, "/c", "/properties/c/type", "type", "must be an object");
    bk_schema_errors_free(errs);
    bk_schema_free(s);
}
END_TEST

START_TEST(max_errors_caps_the_list_not_the_verdict)
{
    bk_schema_opts_t o;
    bk_schema_opts_init(&o);
    o.max_errors = 3;
    bk_schema_t *s = compile_opts("{\"items\":{\"type\":\"string\"}}", &o);
    bk_schema_errors_t *errs = errors_of(s, "[1,2,3,4,5,6,7,8,9,10]", BK_SCHEMA_ALL_ERRORS);
    ck_assert_uint_eq(bk_schema_errors_count(errs), 3);
    expect_error(errs, 2, "/2", "/items/type", "type", "must be a string");
    bk_schema_errors_free(errs);
    bk_schema_free(s);
}
END_TEST

START_TEST(branch_errors_are_dropped_when_anyof_passes)
{
    bk_schema_t *s = compile("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\",\"minimum\":10}],"
                             "\"not\":{\"const\":11}}");
    json_t *v = parse("12");
    bk_schema_errors_t *errs = NULL;
    ck_assert_int_eq(bk_schema_validate(s, v, BK_SCHEMA_ALL_ERRORS, &errs), BK_OK);
    ck_assert_ptr_null(errs);
    json_decref(v);

    errs = errors_of(s, "5", BK_SCHEMA_ALL_ERRORS);
    ck_assert_uint_eq(bk_schema_errors_count(errs), 3); /* both branches, then anyOf */
    expect_error(errs, 0, "", "/anyOf/0/type", "type", "must be a string");
    expect_error(errs, 1, "", "/anyOf/1/minimum", "minimum", "must be at least 10");
    expect_error(errs, 2, "", "/anyOf", "anyOf", "must match at least one of the schemas in \"anyOf\"");
    bk_schema_errors_free(errs);

    errs = errors_of(s, "11", 0);
    expect_error(errs, 0, "", "/not", "not", "must not match the schema in \"not\"");
    bk_schema_errors_free(errs);

    errs = errors_of(s, "1.5", 0); /* first-error mode reports the anyOf itself */
    ck_assert_uint_eq(bk_schema_errors_count(errs), 1);
    ck_assert_str_eq(bk_schema_errors_get(errs, 0)->keyword, "anyOf");
    bk_schema_errors_free(errs);
    bk_schema_free(s);
}
END_TEST

START_TEST(oneof_reports_which_schemas_matched)
{
    bk_schema_t *s = compile("{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\",\"minimum\":0},{\"type\":\"string\"}]}");
    ck_assert(valid(s, "-1"));
    ck_assert(valid(s, "\"x\""));
    bk_schema_errors_t *errs = errors_of(s, "3", 0);
    expect_error(errs, 0, "", "/oneOf", "oneOf",
                 "must match exactly one of the schemas in \"oneOf\" (matches 0 and 1)");
    bk_schema_errors_free(errs);
    bk_schema_free(s);
}
END_TEST

START_TEST(pointer_tokens_are_escaped)
{
    bk_schema_t *s = compile("{\"properties\":{\"a/b~c\":{\"type\":\"string\"}}}");
    bk_schema_errors_t *errs = errors_of(s, "{\"a/b~c\":1}", 0);
    expect_error(errs, 0, "/a~1b~0c", "/properties/a~1b~0c/type", "type", "must be a string");
    bk_schema_errors_free(errs);
    bk_schema_free(s);
}
END_TEST

/* ------------------------------------------------------------------ values */
START_TEST(numbers_compare_by_value)
{
    bk_schema_t *s = compile("{\"type\":\"integer\",\"maximum\":9223372036854775807}");
    ck_assert(valid(s, "1.0"));
    ck_assert(!valid(s, "1.5"));
    ck_assert(valid(s, "9223372036854775807"));
    ck_assert(!valid(s, "9.3e18"));
    bk_schema_free(s);

    s = compile("{\"multipleOf\":0.01}");
    ck_assert(valid(s, "19.99"));
    ck_assert(valid(s, "0.07"));
    ck_assert(valid(s, "-123456.78"));
    ck_assert(!valid(s, "19.999"));
    bk_schema_free(s);

    s = compile("{\"enum\":[1,[2,{\"a\":3}]],\"uniqueItems\":true}");
    ck_assert(valid(s, "1.0"));
    ck_assert(valid(s, "[2.0,{\"a\":3.0}]"));
    ck_assert(!valid(s, "[2,{\"a\":3,\"b\":4}]"));
    bk_schema_free(s);

    s = compile("{\"uniqueItems\":true}");
    ck_assert(!valid(s, "[1,1.0]"));
    ck_assert(!valid(s, "[{\"a\":1,\"b\":2},{\"b\":2,\"a\":1.0}]"));
    /* The hashed path (more than 16 items). */
    ck_assert(valid(s, "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19]"));
    ck_assert(!valid(s, "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,7.0]"));
    bk_schema_free(s);
}
END_TEST

START_TEST(lengths_count_code_points)
{
    bk_schema_t *s = compile("{\"minLength\":2,\"maxLength\":3}");
    ck_assert(valid(s, "\"\\u00e9\\u00e9\\u00e9\""));         /* 3 code points, 6 bytes */
    ck_assert(valid(s, "\"\\ud83d\\ude00\\ud83d\\ude00\"")); /* 2 code points, 8 bytes */
    ck_assert(!valid(s, "\"\\ud83d\\ude00\""));
    ck_assert(!valid(s, "\"abcd\""));
    bk_schema_free(s);
}
END_TEST

/* ------------------------------------------------------------------ limits */
/* 10,000 nested arrays, built by hand: jansson's parser stops at 2048 levels. */
static json_t *deep_array(int levels)
{
    json_t *v = json_array();
    for (int i = 1; i < levels; i++) {
        json_t *outer = json_array();
        json_array_append_new(outer, v);
        v = outer;
    }
    return v;
}

START_TEST(deep_instance_is_an_error_not_a_crash)
{
    bk_schema_t *s = compile("{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}");
    json_t *deep = deep_array(10000);
    bk_schema_errors_t *errs = NULL;
    ck_assert_int_eq(bk_schema_validate(s, deep, 0, &errs), BK_EINVAL);
    const bk_schema_error_t *e = bk_schema_errors_get(errs, 0);
    ck_assert_str_eq(e->keyword, "depth");
    ck_assert_str_eq(e->message, "is nested more than 128 levels deep");
    ck_assert_uint_eq(strlen(e->instance_location), 129 * 2); /* "/0" per level */
    bk_schema_errors_free(errs);
    ck_assert_int_eq(bk_schema_validate(s, deep, BK_SCHEMA_ALL_ERRORS, NULL), BK_EINVAL);
    json_decref(deep);

    /* Within the limit it validates. */
    deep = deep_array(100);
    ck_assert_int_eq(bk_schema_validate(s, deep, 0, NULL), BK_OK);
    json_decref(deep);
    bk_schema_free(s);
}
END_TEST

START_TEST(deep_schema_is_refused_at_compile)
{
    json_t *schema = json_true();
    for (int i = 0; i < 10000; i++)
        schema = json_pack("{s:o}", "not", schema);
    bk_schema_t *s = NULL;
    bk_error_t err;
    ck_assert_int_eq(bk_schema_compile(schema, NULL, &s, &err), BK_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.message, "nests deeper than") != NULL, "%s", err.message);
    json_decref(schema);
}
END_TEST

START_TEST(recursion_limit_stops_in_place_dynamic_recursion)
{
    bk_schema_opts_t o;
    bk_schema_opts_init(&o);
    o.max_recursion = 50;
    bk_schema_t *s = compile_opts("{\"properties\":{\"a\":{\"$ref\":\"#\"}}}", &o);
    json_t *v = json_object();
    for (int i = 0; i < 60; i++)
        v = json_pack("{s:o}", "a", v);
    bk_schema_errors_t *errs = NULL;
    ck_assert_int_eq(bk_schema_validate(s, v, 0, &errs), BK_EINVAL);
    ck_assert_str_eq(bk_schema_errors_get(errs, 0)->keyword, "depth");
    ck_assert_str_eq(bk_schema_errors_get(errs, 0)->message, "needs more than 50 nested schema evaluations");
    bk_schema_errors_free(errs);
    json_decref(v);
    bk_schema_free(s);
}
END_TEST

START_TEST(catastrophic_pattern_is_bounded)
{
    bk_schema_t *s = compile("{\"pattern\":\"^(a+)+$\"}");
    size_t n = 1 << 20;
    char *text = malloc(n + 1);
    memset(text, 'a', n);
    text[n - 1] = '!';
    text[n] = '\0';
    json_t *v = json_stringn(text, n);
    bk_schema_errors_t *errs = NULL;
    ck_assert_int_eq(bk_schema_validate(s, v, 0, &errs), BK_EINVAL);
    const bk_schema_error_t *e = bk_schema_errors_get(errs, 0);
    ck_assert_str_eq(e->keyword, "pattern");
    ck_assert_msg(strstr(e->message, "within limits") || strstr(e->message, "must match"), "%s", e->message);
    bk_schema_errors_free(errs);
    json_decref(v);
    free(text);
    /* A short subject still matches normally. */
    ck_assert(valid(s, "\"aaaa\""));
    ck_assert(!valid(s, "\"aab\""));
    bk_schema_free(s);
}
END_TEST

/* ------------------------------------------------------------------ compile errors */
START_TEST(ref_loops_and_bad_refs_are_refused)
{
    bk_error_t err;
    ck_assert_int_eq(compile_error("{\"$ref\":\"#\"}", &err), BK_EINVAL);
    ck_assert_msg(strstr(err.message, "infinite $ref loop"), "%s", err.message);
    ck_assert_int_eq(compile_error("{\"$defs\":{\"a\":{\"allOf\":[{\"$ref\":\"#/$defs/b\"}]},"
                                   "\"b\":{\"anyOf\":[{\"$ref\":\"#/$defs/a\"}]}},\"$ref\":\"#/$defs/a\"}", &err),
                     BK_EINVAL);
    ck_assert_msg(strstr(err.message, "infinite $ref loop"), "%s", err.message);
    ck_assert_int_eq(compile_error("{\"$ref\":\"#/$defs/missing\"}", &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "cannot resolve \"#/$defs/missing\" at the root: the pointer leads nowhere");
    ck_assert_int_eq(compile_error("{\"$ref\":\"https://example.com/x.json\"}", &err), BK_EINVAL);
    ck_assert_msg(strstr(err.message, "no schema is known as \"https://example.com/x.json\""), "%s", err.message);
    ck_assert_int_eq(compile_error("{\"properties\":{\"a\":{\"minLength\":-1}}}", &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "\"minLength\" at /properties/a must be a non-negative integer");
    ck_assert_int_eq(compile_error("{\"pattern\":\"(\"}", &err), BK_EINVAL);
    ck_assert_msg(strstr(err.message, "invalid regular expression"), "%s", err.message);
    ck_assert_int_eq(compile_error("{\"$schema\":\"https://example.com/meta\"}", &err), BK_EINVAL);
    ck_assert_msg(strstr(err.message, "unknown \"$schema\""), "%s", err.message);
    ck_assert_int_eq(compile_error("42", &err), BK_EINVAL);

    /* Recursion that descends into the instance is fine. */
    bk_schema_t *s = compile("{\"properties\":{\"next\":{\"$ref\":\"#\"}},\"required\":[\"v\"]}");
    ck_assert(valid(s, "{\"v\":1,\"next\":{\"v\":2,\"next\":{\"v\":3}}}"));
    ck_assert(!valid(s, "{\"v\":1,\"next\":{\"next\":{\"v\":3}}}"));
    bk_schema_free(s);
}
END_TEST

START_TEST(registry_documents_are_reachable)
{
    bk_schema_registry_t *reg;
    ck_assert_int_eq(bk_schema_registry_new(&reg), BK_OK);
    json_t *money = parse("{\"type\":\"number\",\"multipleOf\":0.01,\"minimum\":0}");
    ck_assert_int_eq(bk_schema_registry_add(reg, "https://schemas.example.com/money.json", money), BK_OK);
    ck_assert_int_eq(bk_schema_registry_add(reg, "https://schemas.example.com/money.json", money), BK_EEXIST);
    ck_assert_int_eq(bk_schema_registry_add(reg, "money.json", money), BK_EINVAL);
    ck_assert_int_eq(bk_schema_registry_add(reg, "https://schemas.example.com/a#frag", money), BK_EINVAL);
    json_decref(money);

    bk_schema_opts_t o;
    bk_schema_opts_init(&o);
    o.registry = reg;
    o.base_uri = "https://schemas.example.com/order.json";
    bk_schema_t *s = compile_opts("{\"properties\":{\"price\":{\"$ref\":\"money.json\"}}}", &o);
    bk_schema_registry_free(reg); /* the compiled schema keeps what it uses */
    ck_assert(valid(s, "{\"price\":19.99}"));
    ck_assert(!valid(s, "{\"price\":-1}"));
    bk_schema_errors_t *errs = errors_of(s, "{\"price\":1.001}", 0);
    expect_error(errs, 0, "/price", "/properties/price/$ref/multipleOf", "multipleOf", "must be a multiple of 0.01");
    bk_schema_errors_free(errs);
    bk_schema_free(s);
}
END_TEST

/* The compiler searches the caller's registry first, then the built-in one: a
 * $ref reaches the built-in meta-schemas without a registry, and a caller's
 * document under a built-in URI takes its place for $ref (a $schema naming draft
 * 2020-12 or draft-07 still means the built-in dialect). */
START_TEST(registry_order_caller_then_builtin)
{
    static const char *const ref2020 = "{\"$ref\":\"https://json-schema.org/draft/2020-12/schema\"}";
    bk_schema_t *s = compile(ref2020); /* the built-in one */
    ck_assert(valid(s, "{\"type\":\"string\"}"));
    ck_assert(valid(s, "{}"));
    ck_assert(!valid(s, "{\"type\":\"strin\"}"));
    ck_assert(!valid(s, "5"));
    bk_schema_free(s);
    s = compile("{\"$ref\":\"https://json-schema.org/draft/2020-12/meta/validation\"}");
    ck_assert(!valid(s, "{\"minLength\":-1}"));
    ck_assert(valid(s, "{\"minLength\":1}"));
    bk_schema_free(s);
    s = compile("{\"$ref\":\"http://json-schema.org/draft-07/schema#\"}"); /* its $id's empty fragment */
    ck_assert(!valid(s, "{\"type\":\"strin\"}"));
    ck_assert(valid(s, "{\"items\":[{\"type\":\"string\"}]}"));
    bk_schema_free(s);

    bk_schema_registry_t *reg;
    ck_assert_int_eq(bk_schema_registry_new(&reg), BK_OK);
    json_t *mine = parse("{\"type\":\"integer\"}");
    ck_assert_int_eq(bk_schema_registry_add(reg, "https://json-schema.org/draft/2020-12/schema", mine), BK_OK);
    ck_assert_int_eq(bk_schema_registry_add(reg, "http://json-schema.org/draft-07/schema", mine), BK_OK);
    json_decref(mine);
    bk_schema_opts_t o;
    bk_schema_opts_init(&o);
    o.registry = reg;
    s = compile_opts(ref2020, &o); /* the caller's wins */
    ck_assert(valid(s, "5"));
    ck_assert(!valid(s, "{}"));
    bk_schema_free(s);
    s = compile_opts("{\"$ref\":\"http://json-schema.org/draft-07/schema#\"}", &o);
    ck_assert(valid(s, "5"));
    ck_assert(!valid(s, "{}"));
    bk_schema_free(s);
    /* Not the caller's {"type":"integer"} (it has no $schema, so as a custom
     * meta-schema it would be refused): the built-in dialect. */
    s = compile_opts("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"string\"}", &o);
    ck_assert(valid(s, "\"x\""));
    ck_assert(!valid(s, "5"));
    bk_schema_free(s);
    /* Other URIs still reach the built-in documents through the caller's registry. */
    s = compile_opts("{\"$ref\":\"https://json-schema.org/draft/2020-12/meta/validation\"}", &o);
    ck_assert(!valid(s, "{\"minLength\":-1}"));
    bk_schema_free(s);
    bk_schema_registry_free(reg);
}
END_TEST

START_TEST(metaschemas_check_schemas)
{
    const bk_schema_t *m = bk_schema_metaschema(BK_SCHEMA_DRAFT_2020_12);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_eq(m, bk_schema_metaschema(BK_SCHEMA_DRAFT_2020_12));
    ck_assert(valid(m, ORDER));
    bk_schema_errors_t *errs = errors_of(m, "{\"properties\":{\"a\":{\"minLength\":-1}}}", 0);
    ck_assert_str_eq(bk_schema_errors_get(errs, 0)->instance_location, "/properties/a/minLength");
    bk_schema_errors_free(errs);

    const bk_schema_t *m7 = bk_schema_metaschema(BK_SCHEMA_DRAFT_7);
    ck_assert_ptr_nonnull(m7);
    ck_assert(valid(m7, "{\"items\":[{\"type\":\"string\"}],\"additionalItems\":false}"));
    ck_assert(!valid(m7, "{\"type\":\"strin\"}"));
    ck_assert_ptr_null(bk_schema_metaschema(4));
}
END_TEST

START_TEST(formats_assert_only_when_asked)
{
    bk_schema_t *s = compile("{\"format\":\"email\"}");
    ck_assert(valid(s, "\"not an email\""));
    bk_schema_free(s);
    bk_schema_opts_t o;
    bk_schema_opts_init(&o);
    o.format_assert = true;
    s = compile_opts("{\"properties\":{\"at\":{\"format\":\"date-time\"},\"x\":{\"format\":\"no-such-format\"}}}", &o);
    ck_assert(valid(s, "{\"at\":\"2026-11-23T10:00:00Z\",\"x\":\"anything\"}"));
    bk_schema_errors_t *errs = errors_of(s, "{\"at\":\"2026-02-30T10:00:00Z\"}", 0);
    expect_error(errs, 0, "/at", "/properties/at/format", "format", "must be a valid date-time");
    bk_schema_errors_free(errs);
    bk_schema_free(s);
}
END_TEST

START_TEST(bad_arguments)
{
    bk_schema_t *s = NULL;
    bk_schema_opts_t o;
    bk_schema_opts_init(&o);
    o.draft = 4;
    json_t *doc = json_object();
    ck_assert_int_eq(bk_schema_compile(doc, &o, &s, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_schema_compile(NULL, NULL, &s, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_schema_compile(doc, NULL, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_schema_validate(NULL, doc, 0, NULL), BK_EINVAL);
    ck_assert_uint_eq(bk_schema_errors_count(NULL), 0);
    ck_assert_ptr_null(bk_schema_errors_get(NULL, 0));
    bk_schema_errors_free(NULL);
    bk_schema_free(NULL);
    bk_schema_registry_free(NULL);
    json_decref(doc);
}
END_TEST

/* ------------------------------------------------------------------ coercion */
/* bk_schema_coerce into a new document: *out, checked against the caller's,
 * which must come out of the call as it went in. */
static json_t *coerced(const bk_schema_t *s, const json_t *in, unsigned flags)
{
    json_t *before = json_deep_copy(in), *out = NULL;
    ck_assert_int_eq(bk_schema_coerce(s, in, flags, &out), BK_OK);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_ne(out, in);
    ck_assert_msg(json_equal(in, before), "the caller's instance changed");
    json_decref(before);
    return out;
}

START_TEST(query_strings_coerce_to_declared_types)
{
    bk_schema_t *s = compile("{\"type\":\"object\",\"allOf\":[{\"$ref\":\"#/$defs/paging\"}],"
                             "\"properties\":{\"active\":{\"type\":\"boolean\"},\"q\":{\"type\":\"string\"},"
                             "\"price\":{\"type\":[\"number\",\"null\"]},"
                             "\"ids\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}},"
                             "\"$defs\":{\"paging\":{\"properties\":{\"limit\":{\"type\":\"integer\",\"maximum\":100,"
                             "\"default\":20},\"offset\":{\"type\":\"integer\",\"default\":0}}}}}");
    json_t *in = parse("{\"active\":\"true\",\"q\":\"42\",\"price\":\"19.99\",\"ids\":[\"1\",\"2\"],"
                       "\"limit\":\"50\"}");
    json_t *q = coerced(s, in, BK_SCHEMA_COERCE_STRINGS | BK_SCHEMA_FILL_DEFAULTS);
    json_t *want = parse("{\"active\":true,\"q\":\"42\",\"price\":19.99,\"ids\":[1,2],\"limit\":50,"
                         "\"offset\":0}");
    ck_assert_msg(json_equal(q, want), "%s", json_dumps(q, JSON_COMPACT | JSON_SORT_KEYS));
    ck_assert_int_eq(bk_schema_validate(s, q, 0, NULL), BK_OK);
    /* The caller's strings are still strings (its array too). */
    ck_assert_str_eq(json_string_value(json_object_get(in, "limit")), "50");
    ck_assert(json_is_string(json_array_get(json_object_get(in, "ids"), 0)));
    ck_assert_ptr_null(json_object_get(in, "offset"));
    json_decref(in);
    json_decref(q);
    json_decref(want);

    /* What does not read as the type stays a string, and validation says so. */
    in = parse("{\"limit\":\" 5\",\"active\":\"yes\",\"price\":\"inf\"}");
    q = coerced(s, in, BK_SCHEMA_COERCE_STRINGS);
    ck_assert_str_eq(json_string_value(json_object_get(q, "limit")), " 5");
    ck_assert_str_eq(json_string_value(json_object_get(q, "active")), "yes");
    ck_assert_str_eq(json_string_value(json_object_get(q, "price")), "inf");
    ck_assert_ptr_null(json_object_get(q, "offset")); /* no defaults without the flag */
    bk_schema_errors_t *errs = NULL;
    ck_assert_int_eq(bk_schema_validate(s, q, BK_SCHEMA_ALL_ERRORS, &errs), BK_EINVAL);
    ck_assert_uint_eq(bk_schema_errors_count(errs), 3);
    bk_schema_errors_free(errs);
    json_decref(in);
    json_decref(q);

    in = parse("{\"limit\":\"500\"}");
    q = coerced(s, in, BK_SCHEMA_COERCE_STRINGS);
    ck_assert_int_eq(bk_schema_validate(s, q, 0, &errs), BK_EINVAL);
    expect_error(errs, 0, "/limit", "/allOf/0/$ref/properties/limit/maximum", "maximum", "must be at most 100");
    bk_schema_errors_free(errs);
    json_decref(q);
    /* Not an object: a copy, as it was. */
    json_t *arr = parse("[\"1\"]");
    q = coerced(s, arr, BK_SCHEMA_COERCE_STRINGS | BK_SCHEMA_FILL_DEFAULTS);
    ck_assert(json_equal(q, arr));
    json_decref(q);
    json_decref(arr);
    q = (json_t *)"untouched";
    ck_assert_int_eq(bk_schema_coerce(s, NULL, 0, &q), BK_EINVAL);
    ck_assert_ptr_null(q);
    ck_assert_int_eq(bk_schema_coerce(s, in, 0, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_schema_coerce(NULL, in, 0, &q), BK_EINVAL);
    json_decref(in);
    bk_schema_free(s);
}
END_TEST

START_TEST(defaults_fill_nested_objects)
{
    bk_schema_t *s = compile("{\"properties\":{\"opts\":{\"type\":\"object\",\"default\":{},"
                             "\"properties\":{\"depth\":{\"default\":3},\"tags\":{\"default\":[\"a\"]}}}}}");
    json_t *in = json_object();
    json_t *v = coerced(s, in, BK_SCHEMA_FILL_DEFAULTS);
    json_t *want = parse("{\"opts\":{\"depth\":3,\"tags\":[\"a\"]}}");
    ck_assert(json_equal(v, want));
    ck_assert_uint_eq(json_object_size(in), 0);
    json_decref(want);
    json_decref(v);
    json_decref(in);
    in = parse("{\"opts\":{\"depth\":7}}");
    v = coerced(s, in, BK_SCHEMA_FILL_DEFAULTS);
    want = parse("{\"opts\":{\"depth\":7,\"tags\":[\"a\"]}}");
    ck_assert(json_equal(v, want));
    /* The nested object was filled in the copy, not in the caller's. */
    ck_assert_uint_eq(json_object_size(json_object_get(in, "opts")), 1);
    json_decref(want);
    json_decref(v);
    json_decref(in);
    bk_schema_free(s);
}
END_TEST

/* ------------------------------------------------------------------ API conventions */
START_TEST(opts_init_clears_garbage_and_zero_is_default)
{
    bk_schema_opts_t o;
    memset(&o, 0x5a, sizeof o);
    bk_schema_opts_init(&o);
    ck_assert_int_eq(o.draft, BK_SCHEMA_DRAFT_2020_12);
    ck_assert(!o.format_assert);
    ck_assert_ptr_null(o.base_uri);
    ck_assert_ptr_null(o.registry);
    ck_assert_uint_eq(o.max_errors, 100);
    ck_assert_uint_eq(o.max_depth, 128);
    ck_assert_uint_eq(o.max_recursion, 1000);
    ck_assert_uint_eq(o.regex_match_limit, 1000000);
    for (size_t i = 0; i < sizeof o.reserved_ / sizeof o.reserved_[0]; i++)
        ck_assert_uint_eq(o.reserved_[i], 0);
    /* A struct cleared by other means: every zero field is its default (it was
     * BK_EINVAL for draft and the limits). */
    memset(&o, 0, sizeof o);
    bk_schema_t *s = compile_opts("{\"items\":{\"type\":\"integer\"}}", &o);
    bk_schema_errors_t *errs = errors_of(s, "[\"a\",\"b\",\"c\"]", BK_SCHEMA_ALL_ERRORS);
    ck_assert_uint_eq(bk_schema_errors_count(errs), 3); /* max_errors 100, not 0 */
    bk_schema_errors_free(errs);
    bk_schema_free(s);
    /* draft 0 is 2020-12: prefixItems applies. */
    s = compile_opts("{\"prefixItems\":[{\"type\":\"integer\"}]}", &o);
    ck_assert(!valid(s, "[\"a\"]"));
    bk_schema_free(s);
}
END_TEST

/* The compile error says where, as a JSON pointer into the schema. */
START_TEST(compile_error_points_into_the_schema)
{
    static const struct {
        const char *schema, *pointer, *message;
    } cases[] = {
        {"{\"properties\":{\"a\":{\"minLength\":-1}}}", "/properties/a/minLength", "must be a non-negative"},
        {"{\"properties\":{\"a/b\":{\"items\":{\"type\":\"x\"}}}}", "/properties/a~1b/items/type", "\"type\""},
        {"{\"$defs\":{\"x\":{\"$ref\":\"#/nowhere\"}},\"$ref\":\"#/$defs/x\"}", "/$defs/x/$ref", "leads nowhere"},
        {"{\"allOf\":[true,{\"pattern\":\"(\"}]}", "/allOf/1/pattern", "invalid regular expression"},
        {"{\"anyOf\":[]}", "/anyOf", "non-empty array"},
        {"{\"properties\":[]}", "/properties", "must be objects"},
        {"{\"minContains\":1,\"maxContains\":-2,\"contains\":true}", "/maxContains", "non-negative"},
        {"{\"$schema\":\"https://example.com/meta\"}", "/$schema", "unknown \"$schema\""},
        {"{\"$ref\":\"#\"}", "", "infinite $ref loop"},
        {"42", "", "must be an object or a boolean"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bk_error_t err;
        memset(&err, 0x5a, sizeof err);
        ck_assert_int_eq(compile_error(cases[i].schema, &err), BK_EINVAL);
        ck_assert_int_eq(err.code, BK_EINVAL);
        ck_assert_msg(strcmp(err.pointer, cases[i].pointer) == 0, "%s: pointer \"%s\", want \"%s\"",
                      cases[i].schema, err.pointer, cases[i].pointer);
        ck_assert_msg(strstr(err.message, cases[i].message), "%s: message \"%s\"", cases[i].schema, err.message);
        ck_assert_str_eq(err.file, ""); /* in the schema itself */
    }
    /* A fault in a registered document: its URI in err.file, the pointer into it. */
    bk_schema_registry_t *reg;
    ck_assert_int_eq(bk_schema_registry_new(&reg), BK_OK);
    json_t *bad = parse("{\"$defs\":{\"amount\":{\"minimum\":\"zero\"}}}");
    ck_assert_int_eq(bk_schema_registry_add(reg, "https://schemas.example.com/money.json", bad), BK_OK);
    json_decref(bad);
    bk_schema_opts_t o;
    bk_schema_opts_init(&o);
    o.registry = reg;
    json_t *doc = parse("{\"properties\":{\"price\":"
                        "{\"$ref\":\"https://schemas.example.com/money.json#/$defs/amount\"}}}");
    bk_schema_t *s = (bk_schema_t *)&o;
    bk_error_t err;
    ck_assert_int_eq(bk_schema_compile(doc, &o, &s, &err), BK_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_str_eq(err.file, "https://schemas.example.com/money.json");
    ck_assert_str_eq(err.pointer, "/$defs/amount/minimum");
    ck_assert_msg(strstr(err.message, "https://schemas.example.com/money.json#/$defs/amount"), "%s", err.message);
    /* Success clears it; NULL is fine. */
    json_decref(doc);
    doc = parse("{\"type\":\"integer\"}");
    memset(&err, 0x5a, sizeof err);
    ck_assert_int_eq(bk_schema_compile(doc, NULL, &s, &err), BK_OK);
    ck_assert_int_eq(err.code, BK_OK);
    ck_assert_str_eq(err.message, "");
    ck_assert_str_eq(err.pointer, "");
    bk_schema_free(s);
    ck_assert_int_eq(bk_schema_compile(NULL, NULL, &s, &err), BK_EINVAL);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "a schema is needed"));
    json_decref(doc);
    bk_schema_registry_free(reg);
}
END_TEST

/* compile and registry_add borrow their documents: a reference of their own,
 * nothing written. */
START_TEST(documents_are_borrowed_and_left_alone)
{
    const char *text = "{\"properties\":{\"a\":{\"default\":1,\"pattern\":\"^x\"}},\"$defs\":{\"d\":true}}";
    json_t *doc = parse(text), *before = parse(text);
    bk_schema_t *s;
    ck_assert_int_eq(bk_schema_compile(doc, NULL, &s, NULL), BK_OK);
    ck_assert_int_eq(doc->refcount, 2); /* the schema's own */
    ck_assert(json_equal(doc, before));
    bk_schema_free(s);
    ck_assert_int_eq(doc->refcount, 1);
    bk_schema_registry_t *reg;
    ck_assert_int_eq(bk_schema_registry_new(&reg), BK_OK);
    ck_assert_int_eq(bk_schema_registry_add(reg, "https://example.com/d.json", doc), BK_OK);
    ck_assert_int_eq(doc->refcount, 2);
    bk_schema_registry_free(reg);
    ck_assert_int_eq(doc->refcount, 1);
    ck_assert(json_equal(doc, before));
    json_decref(doc);
    json_decref(before);
}
END_TEST

/* ------------------------------------------------------------------ threads */
#define THREADS 8
#define ROUNDS 2000

struct shared {
    const bk_schema_t *s;
    json_t *good, *bad;
    int wrong;
};

static void *validate_many(void *arg)
{
    struct shared *sh = arg;
    int wrong = 0;
    for (int i = 0; i < ROUNDS; i++) {
        wrong += bk_schema_validate(sh->s, sh->good, 0, NULL) != BK_OK;
        bk_schema_errors_t *errs = NULL;
        if (bk_schema_validate(sh->s, sh->bad, BK_SCHEMA_ALL_ERRORS, &errs) != BK_EINVAL ||
            bk_schema_errors_count(errs) != 5)
            wrong++;
        bk_schema_errors_free(errs);
    }
    __atomic_add_fetch(&sh->wrong, wrong, __ATOMIC_RELAXED);
    return NULL;
}

START_TEST(one_schema_many_threads)
{
    struct shared sh = {compile(ORDER), parse("{\"id\":\"a\",\"zip\":\"1\",\"items\":[{\"qty\":1}]}"),
                        parse("{\"id\":\"abcdefg\",\"status\":\"c\",\"items\":[{\"qty\":2},{\"qty\":0}],\"extra\":1}"),
                        0};
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, validate_many, &sh), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(sh.wrong, 0);
    json_decref(sh.good);
    json_decref(sh.bad);
    bk_schema_free((bk_schema_t *)sh.s);
}
END_TEST

static Suite *schema_suite(void)
{
    Suite *s = suite_create("schema");
    TCase *tc = tcase_create("schema");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, all_errors_have_paths_and_plain_messages);
    tcase_add_test(tc, first_error_mode_stops_at_one);
    tcase_add_test(tc, type_messages_name_the_types);
    tcase_add_test(tc, max_errors_caps_the_list_not_the_verdict);
    tcase_add_test(tc, branch_errors_are_dropped_when_anyof_passes);
    tcase_add_test(tc, oneof_reports_which_schemas_matched);
    tcase_add_test(tc, pointer_tokens_are_escaped);
    tcase_add_test(tc, numbers_compare_by_value);
    tcase_add_test(tc, lengths_count_code_points);
    tcase_add_test(tc, deep_instance_is_an_error_not_a_crash);
    tcase_add_test(tc, deep_schema_is_refused_at_compile);
    tcase_add_test(tc, recursion_limit_stops_in_place_dynamic_recursion);
    tcase_add_test(tc, catastrophic_pattern_is_bounded);
    tcase_add_test(tc, ref_loops_and_bad_refs_are_refused);
    tcase_add_test(tc, registry_documents_are_reachable);
    tcase_add_test(tc, registry_order_caller_then_builtin);
    tcase_add_test(tc, metaschemas_check_schemas);
    tcase_add_test(tc, formats_assert_only_when_asked);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, query_strings_coerce_to_declared_types);
    tcase_add_test(tc, opts_init_clears_garbage_and_zero_is_default);
    tcase_add_test(tc, compile_error_points_into_the_schema);
    tcase_add_test(tc, documents_are_borrowed_and_left_alone);
    tcase_add_test(tc, defaults_fill_nested_objects);
    tcase_add_test(tc, one_schema_many_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(schema_suite());
}
