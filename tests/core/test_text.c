/* The internal text helpers of lib/core: JSON text through jansson's allocator
 * (json.c), RFC 6901 tokens (jsonptr.c), percent-decoding (pct.c) and the UTF-8
 * code-point count (utf8.c), linked into this program from their sources (they
 * are hidden in the library).
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "check_main.h"

#include "core/json_int.h"
#include "core/jsonptr_int.h"
#include "core/pct_int.h"
#include "core/utf8_int.h"

/* jansson's allocator for this program, installed in main before any jansson
 * allocation: bk__json_free must reach it. */
static size_t frees_seen;

static void *count_malloc(size_t n)
{
    return malloc(n);
}

static void count_free(void *p)
{
    if (p)
        frees_seen++;
    free(p);
}

START_TEST(json_dump_frees_through_janssons_allocator)
{
    json_t *v = json_pack("{s:i, s:[s]}", "a", 1, "b", "x");
    char *s = bk__json_dump(v, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "{\"a\":1,\"b\":[\"x\"]}");
    size_t before = frees_seen;
    bk__json_free(s);
    ck_assert_uint_eq(frees_seen, before + 1);
    bk__json_free(NULL); /* nothing */
    ck_assert_uint_eq(frees_seen, before + 1);
    json_decref(v);
    /* a scalar needs JSON_ENCODE_ANY, NULL gives NULL */
    json_t *n = json_integer(7);
    ck_assert_ptr_null(bk__json_dump(n, JSON_COMPACT));
    s = bk__json_dump(n, JSON_COMPACT | JSON_ENCODE_ANY);
    ck_assert_str_eq(s, "7");
    bk__json_free(s);
    json_decref(n);
    ck_assert_ptr_null(bk__json_dump(NULL, JSON_COMPACT));
}
END_TEST

START_TEST(jsonptr_escape_one_token)
{
    char out[32];
    ck_assert_uint_eq(bk__jsonptr_escape(NULL, "a/b~c", 5), 7);
    size_t n = bk__jsonptr_escape(out, "a/b~c", 5);
    ck_assert_uint_eq(n, 7);
    ck_assert_mem_eq(out, "a~1b~0c", 7);
    ck_assert_uint_eq(bk__jsonptr_escape(out, "", 0), 0);
    ck_assert_uint_eq(bk__jsonptr_escape(out, "~~", 2), 4);
    ck_assert_mem_eq(out, "~0~0", 4);
    /* a NUL is a byte like any other in a member name */
    ck_assert_uint_eq(bk__jsonptr_escape(out, "a\0b", 3), 3);
    ck_assert_mem_eq(out, "a\0b", 3);
    /* append goes through the same escape */
    char buf[16] = "";
    ck_assert(bk__jsonptr_append(buf, sizeof buf, "x/y", 3));
    ck_assert(bk__jsonptr_append_index(buf, sizeof buf, 12));
    ck_assert_str_eq(buf, "/x~1y/12");
    ck_assert(!bk__jsonptr_append(buf, sizeof buf, "~~~~", 4)); /* 9 more bytes do not fit */
    ck_assert_str_eq(buf, "/x~1y/12");
}
END_TEST

START_TEST(jsonptr_unescape_one_token)
{
    char out[32];
    size_t n = 99;
    ck_assert(bk__jsonptr_unescape(out, "a~1b~0c", 7, &n));
    ck_assert_uint_eq(n, 5);
    ck_assert_mem_eq(out, "a/b~c", 5);
    /* ~01 is "~1", not "/": the escapes are read left to right */
    ck_assert(bk__jsonptr_unescape(out, "~01", 3, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(out, "~1", 2);
    ck_assert(bk__jsonptr_unescape(out, "", 0, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert(!bk__jsonptr_unescape(out, "a~", 2, &n));
    ck_assert(!bk__jsonptr_unescape(out, "~2", 2, &n));
    /* in place */
    char t[] = "x~0~1y";
    ck_assert(bk__jsonptr_unescape(t, t, 6, &n));
    ck_assert_uint_eq(n, 4);
    ck_assert_mem_eq(t, "x~/y", 4);
    /* escape then unescape gives the token back */
    const char *tok = "/~a~/~0";
    char esc[32];
    size_t e = bk__jsonptr_escape(esc, tok, strlen(tok));
    ck_assert(bk__jsonptr_unescape(out, esc, e, &n));
    ck_assert_uint_eq(n, strlen(tok));
    ck_assert_mem_eq(out, tok, n);
}
END_TEST

START_TEST(pct_decode_into_buffer)
{
    char out[32];
    size_t n = 99;
    ck_assert(bk__pct_decode_into("a%20b%2Fc%7e", 12, 0, out, &n));
    ck_assert_uint_eq(n, 6);
    ck_assert_mem_eq(out, "a b/c~", 6);
    /* '+' is a space only when asked */
    ck_assert(bk__pct_decode_into("a+b", 3, 0, out, &n));
    ck_assert_mem_eq(out, "a+b", 3);
    ck_assert(bk__pct_decode_into("a+b%2B", 6, BK__PCT_PLUS_SPACE, out, &n));
    ck_assert_uint_eq(n, 4);
    ck_assert_mem_eq(out, "a b+", 4);
    /* %00: a NUL byte, unless refused */
    ck_assert(bk__pct_decode_into("x%00y", 5, 0, out, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(out, "x\0y", 3);
    ck_assert(!bk__pct_decode_into("x%00y", 5, BK__PCT_NO_NUL, out, &n));
    /* truncated or non-hex escapes */
    ck_assert(!bk__pct_decode_into("%", 1, 0, out, &n));
    ck_assert(!bk__pct_decode_into("%4", 2, 0, out, &n));
    ck_assert(!bk__pct_decode_into("ab%4", 4, 0, out, &n));
    ck_assert(!bk__pct_decode_into("%g0", 3, 0, out, &n));
    ck_assert(!bk__pct_decode_into("%0g", 3, 0, out, &n));
    ck_assert(bk__pct_decode_into("%41", 3, 0, out, &n)); /* at the very end */
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(out[0], 'A');
    ck_assert(bk__pct_decode_into("", 0, 0, out, &n));
    ck_assert_uint_eq(n, 0);
    /* in place; the length bound is respected (no read past len) */
    char t[] = "%41%42c%";
    ck_assert(bk__pct_decode_into(t, 7, 0, t, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(t, "ABc", 3);
}
END_TEST

START_TEST(utf8_count_code_points)
{
    ck_assert_uint_eq(bk__utf8_count("", 0), 0);
    ck_assert_uint_eq(bk__utf8_count("abc", 3), 3);
    ck_assert_uint_eq(bk__utf8_count("\xC3\xA9t\xC3\xA9", 5), 3);      /* été */
    ck_assert_uint_eq(bk__utf8_count("\xE2\x82\xAC", 3), 1);           /* € */
    ck_assert_uint_eq(bk__utf8_count("\xF0\x9F\x98\x80!", 5), 2);      /* U+1F600 ! */
    ck_assert_uint_eq(bk__utf8_count("a\0b", 3), 3);                   /* NUL counts */
    ck_assert_uint_eq(bk__utf8_count("\xF0\x9F\x98\x80", 2), 1);       /* by length */
}
END_TEST

static Suite *text_suite(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("text");
    tcase_add_test(tc, json_dump_frees_through_janssons_allocator);
    tcase_add_test(tc, jsonptr_escape_one_token);
    tcase_add_test(tc, jsonptr_unescape_one_token);
    tcase_add_test(tc, pct_decode_into_buffer);
    tcase_add_test(tc, utf8_count_code_points);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    json_set_alloc_funcs(count_malloc, count_free);
    return bk_test_run(text_suite());
}
