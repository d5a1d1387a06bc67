/* Unit tests of the structured logger: exact line text on a fake clock, filtering,
 * fields, UTF-8 repair, sinks, rotation, and no interleaving across threads.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "check_main.h"

#include <backend/log.h>

/* The UTF-8 helper is hidden inside the library; compile it in to test it directly
 * (the HTTP layer will reuse it, so it gets its own tests, not just through bk_log). */
#include "../../lib/core/utf8.c"

/* A callback sink that keeps everything written to it. */
struct capture {
    char *text;
    size_t len, cap;
    int calls;
    bk_log_level_t last_level;
};

static void capture_sink(bk_log_level_t level, const char *line, size_t len, void *ud)
{
    struct capture *c = ud;
    if (c->cap < c->len + len + 1) {
        c->cap = (c->len + len + 1) * 2;
        c->text = realloc(c->text, c->cap);
        ck_assert_ptr_nonnull(c->text);
    }
    memcpy(c->text + c->len, line, len);
    c->len += len;
    c->text[c->len] = '\0';
    c->calls++;
    c->last_level = level;
}

/* 2026-11-22T21:46:35.123456789Z */
static const int64_t T0 = INT64_C(1795383995123456789);

static bk_log_t *capture_log(struct capture *c, bk_clock_t **clock, bk_log_level_t level)
{
    memset(c, 0, sizeof *c);
    ck_assert_int_eq(bk_clock_fake_new(T0, clock), BK_OK);
    bk_log_opts_t o;
    bk_log_opts_init(&o);
    o.level = level;
    o.clock = *clock;
    o.sink = capture_sink;
    o.sink_ud = c;
    bk_log_t *log = NULL;
    ck_assert_int_eq(bk_log_new(&o, &log, NULL), BK_OK);
    return log;
}

static void capture_done(bk_log_t *log, bk_clock_t *clock, struct capture *c)
{
    bk_log_free(log);
    bk_clock_free(clock);
    free(c->text);
}

START_TEST(exact_line)
{
    struct capture c;
    bk_clock_t *clock;
    bk_log_t *log = capture_log(&c, &clock, BK_LOG_DEBUG);
    bk_log(log, BK_LOG_INFO, json_pack("{s:s, s:i, s:b}", "request_id", "r-1", "port", 8080, "tls", 0),
           "listening on %s:%d", "::1", 8080);
    ck_assert_str_eq(c.text, "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\","
                             "\"msg\":\"listening on ::1:8080\",\"request_id\":\"r-1\","
                             "\"port\":8080,\"tls\":false}\n");
    ck_assert_int_eq(c.calls, 1);
    ck_assert_int_eq(c.last_level, BK_LOG_INFO);
    capture_done(log, clock, &c);
}
END_TEST

START_TEST(timestamps)
{
    struct capture c;
    bk_clock_t *clock;
    bk_log_t *log = capture_log(&c, &clock, BK_LOG_DEBUG);
    /* Milliseconds round down. */
    bk_clock_fake_set_wall(clock, INT64_C(999999999));
    bk_log(log, BK_LOG_WARN, NULL, "a");
    bk_clock_fake_set_wall(clock, 0);
    bk_log(log, BK_LOG_ERROR, NULL, "b");
    /* Before 1970 the fraction still counts forward within its second. */
    bk_clock_fake_set_wall(clock, -1);
    bk_log(log, BK_LOG_DEBUG, NULL, "c");
    bk_clock_fake_set_wall(clock, INT64_C(-1500000001));
    bk_log(log, BK_LOG_DEBUG, NULL, "d");
    /* The ends of the int64_t range: no overflow, no UB, a real date. */
    bk_clock_fake_set_wall(clock, INT64_MIN);
    bk_log(log, BK_LOG_DEBUG, NULL, "e");
    bk_clock_fake_set_wall(clock, INT64_MAX);
    bk_log(log, BK_LOG_DEBUG, NULL, "f");
    /* 2024-02-29T23:59:59.9999999Z: a leap day, rounding down, not up to March. */
    bk_clock_fake_set_wall(clock, INT64_C(1709251199999999999));
    bk_log(log, BK_LOG_DEBUG, NULL, "g");
    ck_assert_str_eq(c.text,
                     "{\"ts\":\"1970-01-01T00:00:00.999Z\",\"level\":\"warn\",\"msg\":\"a\"}\n"
                     "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"error\",\"msg\":\"b\"}\n"
                     "{\"ts\":\"1969-12-31T23:59:59.999Z\",\"level\":\"debug\",\"msg\":\"c\"}\n"
                     "{\"ts\":\"1969-12-31T23:59:58.499Z\",\"level\":\"debug\",\"msg\":\"d\"}\n"
                     "{\"ts\":\"1677-09-21T00:12:43.145Z\",\"level\":\"debug\",\"msg\":\"e\"}\n"
                     "{\"ts\":\"2262-04-11T23:47:16.854Z\",\"level\":\"debug\",\"msg\":\"f\"}\n"
                     "{\"ts\":\"2024-02-29T23:59:59.999Z\",\"level\":\"debug\",\"msg\":\"g\"}\n");
    ck_assert_int_eq(c.calls, 7);
    capture_done(log, clock, &c);
}
END_TEST

START_TEST(level_filter)
{
    struct capture c;
    bk_clock_t *clock;
    bk_log_t *log = capture_log(&c, &clock, BK_LOG_WARN);
    ck_assert(!bk_log_enabled(log, BK_LOG_INFO));
    ck_assert(bk_log_enabled(log, BK_LOG_WARN));
    ck_assert(!bk_log_enabled(NULL, BK_LOG_ERROR));
    bk_log(log, BK_LOG_DEBUG, json_pack("{s:s}", "k", "dropped"), "no");
    bk_log(log, BK_LOG_INFO, NULL, "no");
    ck_assert_int_eq(c.calls, 0);
    bk_log(log, BK_LOG_ERROR, NULL, "yes");
    ck_assert_int_eq(c.calls, 1);

    bk_log_set_level(log, BK_LOG_DEBUG);
    bk_log(log, BK_LOG_DEBUG, NULL, "now yes");
    ck_assert_int_eq(c.calls, 2);
    bk_log_set_level(log, BK_LOG_OFF);
    bk_log(log, BK_LOG_ERROR, NULL, "off");
    ck_assert(!bk_log_enabled(log, BK_LOG_ERROR));
    ck_assert_int_eq(c.calls, 2);
    /* A level that is not a level is never written. */
    bk_log_set_level(log, BK_LOG_DEBUG);
    bk_log(log, (bk_log_level_t)9, NULL, "bogus");
    bk_log(log, BK_LOG_OFF, NULL, "off is not a line level");
    ck_assert_int_eq(c.calls, 2);
    capture_done(log, clock, &c);
}
END_TEST

START_TEST(fields_order_and_reserved_names)
{
    struct capture c;
    bk_clock_t *clock;
    bk_log_t *log = capture_log(&c, &clock, BK_LOG_INFO);
    json_t *f = json_object();
    json_object_set_new(f, "z", json_integer(1));
    json_object_set_new(f, "msg", json_string("forged"));
    json_object_set_new(f, "a", json_real(0.5));
    json_object_set_new(f, "level", json_string("debug"));
    json_object_set_new(f, "ts", json_string("1999"));
    json_object_set_new(f, "nested", json_pack("{s:[i,i]}", "x", 1, 2));
    json_object_set_new(f, "nothing", json_null());
    bk_log(log, BK_LOG_INFO, f, "real");
    ck_assert_str_eq(c.text, "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\","
                             "\"msg\":\"real\",\"z\":1,\"a\":0.5,\"nested\":{\"x\":[1,2]},"
                             "\"nothing\":null}\n");
    /* A non-object is ignored (and still released). */
    bk_log(log, BK_LOG_INFO, json_pack("[i]", 1), "array");
    ck_assert(strstr(c.text, "\"msg\":\"array\"}\n") != NULL);
    capture_done(log, clock, &c);
}
END_TEST

START_TEST(fields_consumed_when_dropped)
{
    /* Under valgrind/ASan a leak here fails the suite. */
    json_t *f = json_pack("{s:s}", "k", "v");
    json_incref(f);
    bk_log(NULL, BK_LOG_ERROR, f, "no logger");
    ck_assert_int_eq(f->refcount, 1);
    struct capture c;
    bk_clock_t *clock;
    bk_log_t *log = capture_log(&c, &clock, BK_LOG_ERROR);
    json_incref(f);
    bk_log(log, BK_LOG_DEBUG, f, "filtered");
    ck_assert_int_eq(f->refcount, 1);
    json_incref(f);
    bk_log(log, BK_LOG_ERROR, f, "written");
    ck_assert_int_eq(f->refcount, 1);
    json_decref(f);
    capture_done(log, clock, &c);
}
END_TEST

START_TEST(escaping_and_utf8_repair)
{
    struct capture c;
    bk_clock_t *clock;
    bk_log_t *log = capture_log(&c, &clock, BK_LOG_INFO);
    bk_log(log, BK_LOG_INFO, NULL, "%s", "q\"b\\n\nt\tc\x01 é€😀");
    ck_assert(strstr(c.text, "\"msg\":\"q\\\"b\\\\n\\nt\\tc\\u0001 é€😀\"}\n") != NULL);
    free(c.text);
    c.text = NULL;
    c.len = c.cap = 0;
    /* Overlong '/', lone continuation, surrogate U+D800, truncated 3-byte sequence,
     * > U+10FFFF: each maximal bad part becomes one U+FFFD. */
    bk_log(log, BK_LOG_INFO, NULL, "%s", "a\xC0\xAF" "b\x80" "c\xED\xA0\x80" "d\xE2\x82" "e\xF4\x90\x80\x80");
    ck_assert_str_eq(c.text, "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":"
                             "\"a\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                             "d\xEF\xBF\xBD" "e\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"}\n");
    json_error_t err;
    json_t *j = json_loads(c.text, 0, &err);
    ck_assert_msg(j != NULL, "repaired line must parse: %s", err.text);
    json_decref(j);
    capture_done(log, clock, &c);
}
END_TEST

START_TEST(long_message_intact)
{
    struct capture c;
    bk_clock_t *clock;
    bk_log_t *log = capture_log(&c, &clock, BK_LOG_INFO);
    size_t n = 100 * 1024;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    bk_log(log, BK_LOG_INFO, NULL, "<%s>", big);
    json_t *j = json_loads(c.text, 0, NULL);
    ck_assert_ptr_nonnull(j);
    const char *msg = json_string_value(json_object_get(j, "msg"));
    ck_assert_uint_eq(strlen(msg), n + 2);
    ck_assert_int_eq(memcmp(msg + 1, big, n), 0);
    json_decref(j);
    free(big);
    capture_done(log, clock, &c);
}
END_TEST

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

START_TEST(fields_with_invalid_utf8_repaired)
{
    /* jansson refuses invalid UTF-8, but the _nocheck calls let it in; json_dumps
     * would then refuse the whole line. The logger repairs it instead, at any depth,
     * keys included. */
    struct capture c;
    bk_clock_t *clock;
    bk_log_t *log = capture_log(&c, &clock, BK_LOG_INFO);
    json_t *f = json_object();
    json_object_set_new(f, "ok", json_string("caf\xC3\xA9"));
    json_object_set_new(f, "bad", json_stringn_nocheck("a\xFF" "b", 3));
    json_object_set_new(f, "deep", json_pack("{s:[i,o]}", "x", 1, json_stringn_nocheck("\xED\xA0\x80", 3)));
    json_object_setn_new_nocheck(f, "k\xC0", 2, json_true());
    json_object_set_new(f, "msg", json_stringn_nocheck("\xFF", 1)); /* reserved: dropped */
    bk_log(log, BK_LOG_INFO, f, "m");
    ck_assert_int_eq(c.calls, 1);
    ck_assert_str_eq(c.text, "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":\"m\","
                             "\"ok\":\"caf\xC3\xA9\",\"bad\":\"a\xEF\xBF\xBD" "b\","
                             "\"deep\":{\"x\":[1,\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"]},"
                             "\"k\xEF\xBF\xBD\":true}\n");
    json_t *j = json_loads(c.text, 0, NULL);
    ck_assert_ptr_nonnull(j);
    json_decref(j);

    /* A container that contains itself (jansson cannot encode it) becomes null
     * instead of sending the repair into endless recursion. */
    c.len = 0;
    json_t *loop = json_object(), *arr = json_array();
    json_object_set(loop, "arr", arr);
    json_array_append(arr, loop);
    json_array_append_new(arr, json_stringn_nocheck("\x80", 1));
    bk_log(log, BK_LOG_INFO, json_pack("{s:O}", "loop", loop), "cycle");
    ck_assert_str_eq(c.text, "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":"
                             "\"cycle\",\"loop\":{\"arr\":[null,\"\xEF\xBF\xBD\"]}}\n");
    json_array_clear(arr); /* break the cycle so both are freed */
    json_decref(arr);
    json_decref(loop);
    capture_done(log, clock, &c);
}
END_TEST

static void logv_null_format(bk_log_t *log, json_t *fields, ...)
{
    va_list ap;
    va_start(ap, fields);
    bk_logv(log, BK_LOG_INFO, fields, NULL, ap);
    va_end(ap);
}

/* The line is written without jansson values for its members (strings and
 * integers straight into the buffer): byte for byte what jansson would encode
 * for the same object, strings repaired, over random bytes. */
START_TEST(the_writer_agrees_with_jansson)
{
    struct capture c;
    bk_clock_t *clock;
    bk_log_t *log = capture_log(&c, &clock, BK_LOG_INFO);
    static const char *const pieces[] = {"a", "\"", "\\", "\n", "\x01", "\x1f", "\x7f", "/", "\xC3\xA9",
                                         "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xFF", "\xC3", "\xED\xA0\x80", " "};
    unsigned seed = 12345;
    for (int round = 0; round < 400; round++) {
        char raw[128];
        size_t n = 0;
        for (int k = rand_r(&seed) % 12; k > 0; k--) {
            const char *p = pieces[rand_r(&seed) % (sizeof pieces / sizeof *pieces)];
            memcpy(raw + n, p, strlen(p));
            n += strlen(p);
        }
        raw[n] = '\0';
        int64_t num = (int64_t)(((uint64_t)rand_r(&seed) << 33) ^ (uint64_t)rand_r(&seed));
        if (round == 1)
            num = INT64_MIN;
        if (round == 2)
            num = INT64_MAX;
        json_t *f = json_object();
        json_object_set_new(f, "s", json_stringn_nocheck(raw, n));
        json_object_set_new(f, "n", json_integer(num));
        json_object_set_new(f, "r", json_real(0.25));
        json_object_set_new(f, "a", json_pack("[o,b,n]", json_stringn_nocheck(raw, n), 1));
        json_object_setn_new_nocheck(f, raw, n, json_false());
        c.len = 0;
        bk_log(log, BK_LOG_WARN, f, "%s", raw);

        size_t rn;
        char *fixed = bk__utf8_repair(raw, n, &rn);
        json_t *want = json_object();
        json_object_set_new(want, "ts", json_string("2026-11-22T21:46:35.123Z"));
        json_object_set_new(want, "level", json_string("warn"));
        json_object_set_new(want, "msg", json_stringn(fixed, rn));
        json_object_set_new(want, "s", json_stringn(fixed, rn));
        json_object_set_new(want, "n", json_integer(num));
        json_object_set_new(want, "r", json_real(0.25));
        json_object_set_new(want, "a", json_pack("[s%,b,n]", fixed, rn, 1));
        /* The pieces spell no reserved name; "a" alone is the one other member's. */
        bool clash = rn == 1 && fixed[0] == 'a';
        if (!clash)
            json_object_setn_new(want, fixed, rn, json_false());
        char *text = json_dumps(want, JSON_COMPACT);
        ck_assert_ptr_nonnull(text);
        if (!clash) { /* the logger writes both members; jansson's object has one */
            ck_assert_uint_eq(c.len, strlen(text) + 1);
            ck_assert_msg(memcmp(c.text, text, strlen(text)) == 0, "round %d:\n got %s\nwant %s\n", round, c.text,
                          text);
        }
        free(text);
        free(fixed);
        json_decref(want);
    }
    capture_done(log, clock, &c);
}
END_TEST

START_TEST(message_edge_cases)
{
    struct capture c;
    bk_clock_t *clock;
    bk_log_t *log = capture_log(&c, &clock, BK_LOG_INFO);
    /* An embedded NUL is a character like any other; an empty message is fine. */
    bk_log(log, BK_LOG_INFO, NULL, "a%cb", 0);
    bk_log(log, BK_LOG_INFO, NULL, "%s", "");
    /* DEL, U+2028 and the C1 controls are not JSON control characters: kept as is. */
    bk_log(log, BK_LOG_INFO, NULL, "\x7F\xE2\x80\xA8\xC2\x85\r");
    ck_assert_str_eq(c.text,
                     "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":\"a\\u0000b\"}\n"
                     "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":\"\"}\n"
                     "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":"
                     "\"\x7F\xE2\x80\xA8\xC2\x85\\r\"}\n");
    /* A NULL format drops the line (and still releases the fields). */
    json_t *f = json_pack("{s:i}", "n", 1);
    json_incref(f);
    logv_null_format(log, f);
    ck_assert_int_eq(f->refcount, 1);
    json_decref(f);
    ck_assert_int_eq(c.calls, 3);
    /* Logging does not disturb errno. */
    errno = EAGAIN;
    bk_log(log, BK_LOG_INFO, json_pack("{s:s}", "k", "v"), "x");
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(c.calls, 4);
    capture_done(log, clock, &c);
}
END_TEST

START_TEST(every_control_character_escaped)
{
    /* All of 0x01..0x1F, quote and backslash, in msg and in a field: the line has
     * exactly one newline (the last byte) and parses back to the same text. */
    struct capture c;
    bk_clock_t *clock;
    bk_log_t *log = capture_log(&c, &clock, BK_LOG_INFO);
    char raw[40];
    size_t n = 0;
    for (int ch = 1; ch < 0x20; ch++)
        raw[n++] = (char)ch;
    raw[n++] = '"';
    raw[n++] = '\\';
    raw[n] = '\0';
    bk_log(log, BK_LOG_INFO, json_pack("{s:s}", "f", raw), "%s", raw);
    ck_assert_int_eq(c.calls, 1);
    ck_assert_ptr_eq(memchr(c.text, '\n', c.len), c.text + c.len - 1);
    ck_assert_ptr_null(memchr(c.text, '\r', c.len));
    json_t *j = json_loads(c.text, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), raw);
    ck_assert_str_eq(json_string_value(json_object_get(j, "f")), raw);
    json_decref(j);
    capture_done(log, clock, &c);
}
END_TEST

/* U+FFFD as UTF-8, for building expected strings. */
#define R "\xEF\xBF\xBD"

static void check_repair(const char *in, size_t in_len, const char *want)
{
    size_t out_len = 12345;
    char *out = bk__utf8_repair(in, in_len, &out_len);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(out_len, strlen(want));
    ck_assert_int_eq(memcmp(out, want, out_len), 0);
    ck_assert_int_eq(out[out_len], '\0');
    ck_assert_uint_eq(bk__utf8_repaired_len(in, in_len), out_len);
    ck_assert(bk__utf8_valid(out, out_len));
    ck_assert(bk__utf8_valid(in, in_len) == (strcmp(want, in) == 0 && in_len == out_len));
    free(out);
}

START_TEST(utf8_helper_cases)
{
    /* Valid: every length, and the boundaries of table 3-7. */
    check_repair("", 0, "");
    check_repair("plain", 5, "plain");
    check_repair("\xC2\x80\xDF\xBF", 4, "\xC2\x80\xDF\xBF");                 /* U+0080, U+07FF */
    check_repair("\xE0\xA0\x80\xED\x9F\xBF", 6, "\xE0\xA0\x80\xED\x9F\xBF"); /* U+0800, U+D7FF */
    check_repair("\xEE\x80\x80\xEF\xBF\xBF", 6, "\xEE\x80\x80\xEF\xBF\xBF"); /* U+E000, U+FFFF */
    check_repair("\xF0\x90\x80\x80\xF4\x8F\xBF\xBF", 8,
                 "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"); /* U+10000, U+10FFFF */
    /* Overlong forms. */
    check_repair("\xC0\x80", 2, R R);
    check_repair("\xC1\xBF", 2, R R);
    check_repair("\xE0\x80\xAF", 3, R R R);
    check_repair("\xE0\x9F\xBF", 3, R R R);
    check_repair("\xF0\x8F\xBF\xBF", 4, R R R R);
    /* Surrogates, above U+10FFFF, bytes that never appear. */
    check_repair("\xED\xA0\x80", 3, R R R);
    check_repair("\xED\xBF\xBF", 3, R R R);
    check_repair("\xF4\x90\x80\x80", 4, R R R R);
    check_repair("\xF5\x80", 2, R R);
    check_repair("\xFE\xFF", 2, R R);
    /* Lone continuation bytes and truncated sequences (one U+FFFD per maximal
     * subpart), at the end and in the middle. */
    check_repair("\x80", 1, R);
    check_repair("a\xBF" "b", 3, "a" R "b");
    check_repair("\xC3", 1, R);
    check_repair("\xE2\x82", 2, R);
    check_repair("\xF0\x9F\x98", 3, R);
    check_repair("\xE2\x82" "x", 3, R "x");
    check_repair("\xF0\x9F\x98\xE2\x82\xAC", 6, R "\xE2\x82\xAC");
    /* Unicode 15, section 3.9, table 3-8: U+FFFD for maximal subparts. */
    check_repair("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", 13,
                 "a" R R R "b" R "c" R R "d");
    /* A NUL is U+0000: valid, and the length decides, not the NUL. */
    ck_assert(bk__utf8_valid("a\0b", 3));
    ck_assert(!bk__utf8_valid("a\0\xFF", 3));
    ck_assert(bk__utf8_valid(NULL, 0));
    size_t nlen;
    char *nul = bk__utf8_repair("a\0\xFF", 3, &nlen);
    ck_assert_uint_eq(nlen, 5);
    ck_assert_int_eq(memcmp(nul, "a\0" R, 5), 0);
    free(nul);
}
END_TEST

START_TEST(utf8_helper_agrees_with_jansson)
{
    /* Differential test: every 1- and 2-byte string, and 3- and 4-byte strings over
     * the bytes at every boundary, are valid exactly when jansson accepts them; the
     * repair of any of them is valid, and a valid string is copied unchanged. */
    static const unsigned char edge[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
                                         0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC,
                                         0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5,
                                         0xFF};
    const size_t ne = sizeof edge;
    unsigned char buf[4];
    size_t tested = 0;
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 257; b++) { /* b == 256: the 1-byte string */
            size_t len = b == 256 ? 1 : 2;
            buf[0] = (unsigned char)a;
            buf[1] = (unsigned char)b;
            json_t *j = json_stringn((const char *)buf, len);
            ck_assert_msg(bk__utf8_valid((const char *)buf, len) == (j != NULL),
                          "%02X %02X", a, b);
            json_decref(j);
            size_t out_len;
            char *out = bk__utf8_repair((const char *)buf, len, &out_len);
            ck_assert(bk__utf8_valid(out, out_len));
            free(out);
            tested++;
        }
    }
    /* After the first byte of a 4-byte string, fewer bytes (ASCII, the edges of the
     * continuation ranges, lead bytes) keep the run short under valgrind. */
    static const unsigned char tail[] = {0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F,
                                         0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0};
    const size_t nt = sizeof tail;
    for (size_t len = 3; len <= 4; len++) {
        size_t total = len == 3 ? ne * ne * ne : ne * nt * nt * nt;
        for (size_t k = 0; k < total; k++) {
            size_t v = k;
            buf[0] = edge[v % ne];
            v /= ne;
            for (size_t i = 1; i < len; i++) {
                if (len == 3) {
                    buf[i] = edge[v % ne];
                    v /= ne;
                } else {
                    buf[i] = tail[v % nt];
                    v /= nt;
                }
            }
            bool valid = bk__utf8_valid((const char *)buf, len);
            json_t *j = json_stringn((const char *)buf, len);
            ck_assert_msg(valid == (j != NULL), "%02X %02X %02X %02X", buf[0], buf[1], buf[2],
                          len == 4 ? buf[3] : 0);
            json_decref(j);
            size_t out_len;
            char *out = bk__utf8_repair((const char *)buf, len, &out_len);
            ck_assert(bk__utf8_valid(out, out_len));
            ck_assert_uint_eq(bk__utf8_repaired_len((const char *)buf, len), out_len);
            if (valid) {
                ck_assert_uint_eq(out_len, len);
                ck_assert_int_eq(memcmp(out, buf, len), 0);
            }
            free(out);
            tested++;
        }
    }
    ck_assert_uint_eq(tested, 256 * 257 + ne * ne * ne + ne * nt * nt * nt);
}
END_TEST

START_TEST(api_edges)
{
    /* NULL handles are no-ops or BK_EINVAL, never crashes. */
    bk_log_free(NULL);
    bk_log_set_level(NULL, BK_LOG_DEBUG);
    ck_assert_int_eq(bk_log_reopen(NULL, NULL), BK_EINVAL);
    bk_log_opts_init(NULL);
    bk_log(NULL, BK_LOG_ERROR, NULL, "nothing");
    ck_assert_str_eq(bk_log_level_name((bk_log_level_t)99), "unknown");
    ck_assert_str_eq(bk_log_level_name((bk_log_level_t)-1), "unknown");

    bk_log_level_t l = BK_LOG_ERROR;
    ck_assert_int_eq(bk_log_level_parse("", &l), BK_EINVAL);
    ck_assert_int_eq(bk_log_level_parse("inf", &l), BK_EINVAL);
    ck_assert_int_eq(bk_log_level_parse("infos", &l), BK_EINVAL);
    ck_assert_int_eq(bk_log_level_parse("info", NULL), BK_EINVAL);
    ck_assert_int_eq(l, BK_LOG_ERROR);
    ck_assert_int_eq(bk_log_level_parse("OFF", &l), BK_OK);
    ck_assert_int_eq(l, BK_LOG_OFF);
    ck_assert_int_eq(bk_log_level_parse("dEbUg", &l), BK_OK);
    ck_assert_int_eq(l, BK_LOG_DEBUG);

    /* NULL opts: the defaults (INFO, stderr). Nothing is written here. */
    bk_log_t *log = NULL;
    ck_assert_int_eq(bk_log_new(NULL, &log, NULL), BK_OK);
    ck_assert(bk_log_enabled(log, BK_LOG_INFO));
    ck_assert(!bk_log_enabled(log, BK_LOG_DEBUG));
    ck_assert(!bk_log_enabled(log, BK_LOG_OFF));
    ck_assert(!bk_log_enabled(log, (bk_log_level_t)-1));
    /* An invalid threshold is ignored. */
    bk_log_set_level(log, (bk_log_level_t)7);
    ck_assert(bk_log_enabled(log, BK_LOG_INFO));
    ck_assert_int_eq(bk_log_reopen(log, NULL), BK_OK); /* no file: a no-op */
    bk_log_free(log);

    /* No sink at all. */
    bk_log_opts_t o;
    bk_log_opts_init(&o);
    o.fd = -1;
    log = (bk_log_t *)&o;
    ck_assert_int_eq(bk_log_new(&o, &log, NULL), BK_EINVAL);
    ck_assert_ptr_null(log);
    o.level = (bk_log_level_t)-1;
    o.fd = 2;
    ck_assert_int_eq(bk_log_new(&o, &log, NULL), BK_EINVAL);

    /* The callback sink wins over path: the path is never opened. */
    struct capture c;
    memset(&c, 0, sizeof c);
    bk_log_opts_init(&o);
    o.sink = capture_sink;
    o.sink_ud = &c;
    o.path = "/nonexistent-dir/never.log";
    ck_assert_int_eq(bk_log_new(&o, &log, NULL), BK_OK);
    bk_log(log, BK_LOG_WARN, NULL, "to the callback");
    ck_assert_int_eq(c.calls, 1);
    ck_assert_int_eq(c.last_level, BK_LOG_WARN);
    ck_assert(strstr(c.text, "\"level\":\"warn\",\"msg\":\"to the callback\"}\n") != NULL);
    ck_assert_int_eq(bk_log_reopen(log, NULL), BK_OK);
    bk_log_free(log);
    free(c.text);

    /* opts is copied: changing it after bk_log_new changes nothing. */
    char path[] = "/tmp/bk-log-opts.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char *heap_path = strdup(path);
    bk_log_opts_init(&o);
    o.path = heap_path;
    ck_assert_int_eq(bk_log_new(&o, &log, NULL), BK_OK);
    memset(heap_path, 'x', strlen(heap_path));
    free(heap_path);
    o.level = BK_LOG_DEBUG;
    ck_assert(!bk_log_enabled(log, BK_LOG_DEBUG));
    ck_assert_int_eq(bk_log_reopen(log, NULL), BK_OK); /* uses the copied path */
    bk_log(log, BK_LOG_INFO, NULL, "copied");
    bk_log_free(log);
    char *text = read_file(path);
    ck_assert(strstr(text, "\"msg\":\"copied\"}\n") != NULL);
    free(text);
    unlink(path);
}
END_TEST

START_TEST(reopen_failure_keeps_old_file)
{
    char dir[] = "/tmp/bk-log-reopen.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], moved_dir[256], moved[300];
    snprintf(path, sizeof path, "%s/app.log", dir);
    snprintf(moved_dir, sizeof moved_dir, "%s.moved", dir);
    snprintf(moved, sizeof moved, "%s/app.log", moved_dir);

    bk_clock_t *clock;
    bk_clock_fake_new(T0, &clock);
    bk_log_opts_t o;
    bk_log_opts_init(&o);
    o.clock = clock;
    o.path = path;
    bk_log_t *log;
    ck_assert_int_eq(bk_log_new(&o, &log, NULL), BK_OK);
    bk_log(log, BK_LOG_INFO, NULL, "one");
    /* The directory goes away: the path cannot be opened again. */
    ck_assert_int_eq(rename(dir, moved_dir), 0);
    errno = 0;
    bk_error_t err;
    memset(&err, 0x5a, sizeof err);
    ck_assert_int_eq(bk_log_reopen(log, &err), BK_ESYS);
    ck_assert_int_eq(errno, ENOENT);
    /* The detail: the code, which file and why. */
    ck_assert_int_eq(err.code, BK_ESYS);
    ck_assert_str_eq(err.file, path);
    ck_assert_msg(strstr(err.message, strerror(ENOENT)) != NULL, "%s", err.message);
    ck_assert_int_eq(bk_log_reopen(log, NULL), BK_ESYS); /* err may be NULL */
    bk_log(log, BK_LOG_INFO, NULL, "two"); /* still written, to the old file */
    bk_log_free(log);
    char *text = read_file(moved);
    ck_assert_str_eq(text, "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":\"one\"}\n"
                           "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":\"two\"}\n");
    free(text);
    unlink(moved);
    rmdir(moved_dir);
    bk_clock_free(clock);
}
END_TEST

START_TEST(file_sink_append_and_reopen)
{
    char dir[] = "/tmp/bk-log-test.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], rotated[256];
    snprintf(path, sizeof path, "%s/app.log", dir);
    snprintf(rotated, sizeof rotated, "%s/app.log.1", dir);
    mode_t mask = umask(0);
    umask(mask);

    /* Appends to what is there. */
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "old\n", 4), 4);
    close(fd);

    bk_clock_t *clock;
    bk_clock_fake_new(T0, &clock);
    bk_log_opts_t o;
    bk_log_opts_init(&o);
    o.clock = clock;
    o.path = path;
    bk_log_t *log;
    ck_assert_int_eq(bk_log_new(&o, &log, NULL), BK_OK);
    bk_log(log, BK_LOG_INFO, NULL, "one");
    bk_log(log, BK_LOG_DEBUG, NULL, "below the default level");
    ck_assert_int_eq(rename(path, rotated), 0); /* logrotate moves the file */
    bk_log(log, BK_LOG_INFO, NULL, "two");         /* still goes to the moved file */
    ck_assert_int_eq(bk_log_reopen(log, NULL), BK_OK);
    bk_log(log, BK_LOG_INFO, NULL, "three");
    bk_log_free(log);

    char *a = read_file(rotated), *b = read_file(path);
    ck_assert_str_eq(a, "old\n"
                        "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":\"one\"}\n"
                        "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":\"two\"}\n");
    ck_assert_str_eq(b, "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":\"three\"}\n");
    /* The reopen created the file at path, with mode 0640 less the umask. */
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640 & ~mask);
    free(a);
    free(b);
    unlink(path);
    unlink(rotated);
    rmdir(dir);

    /* A path that cannot be opened is an error, not a silent logger. */
    o.path = "/nonexistent-dir/x.log";
    log = (bk_log_t *)&o;
    errno = 0;
    ck_assert_int_eq(bk_log_new(&o, &log, NULL), BK_ESYS);
    ck_assert_int_eq(errno, ENOENT); /* errno says why */
    ck_assert_ptr_null(log);
    /* And so does the error detail: the file and the reason. */
    bk_error_t err;
    memset(&err, 0x5a, sizeof err);
    ck_assert_int_eq(bk_log_new(&o, &log, &err), BK_ESYS);
    ck_assert_int_eq(err.code, BK_ESYS);
    ck_assert_str_eq(err.file, "/nonexistent-dir/x.log");
    ck_assert_msg(strstr(err.message, strerror(ENOENT)) != NULL, "%s", err.message);
    ck_assert_str_eq(err.sqlstate, ""); /* cleared on entry: no garbage left */
    /* A success clears it. */
    o.path = NULL;
    ck_assert_int_eq(bk_log_new(&o, &log, &err), BK_OK);
    ck_assert_int_eq(err.code, BK_OK);
    ck_assert_str_eq(err.message, "");
    bk_log_free(log);
    bk_clock_free(clock);
}
END_TEST

START_TEST(fd_sink_borrowed)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    bk_log_opts_t o;
    bk_log_opts_init(&o);
    ck_assert_int_eq(o.fd, 2);
    ck_assert_int_eq(o.level, BK_LOG_INFO);
    o.fd = p[1];
    bk_log_t *log;
    ck_assert_int_eq(bk_log_new(&o, &log, NULL), BK_OK);
    bk_log(log, BK_LOG_INFO, NULL, "to the pipe");
    ck_assert_int_eq(bk_log_reopen(log, NULL), BK_OK); /* a no-op for an fd sink */
    bk_log_free(log);
    /* The logger did not close the borrowed fd. */
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    close(p[1]);
    char buf[512] = {0};
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    ck_assert_int_gt(n, 0);
    ck_assert(strstr(buf, "\"level\":\"info\",\"msg\":\"to the pipe\"}\nx") != NULL);
}
END_TEST

START_TEST(level_names)
{
    bk_log_level_t l = BK_LOG_ERROR;
    for (int i = BK_LOG_DEBUG; i <= BK_LOG_OFF; i++) {
        ck_assert_int_eq(bk_log_level_parse(bk_log_level_name((bk_log_level_t)i), &l), BK_OK);
        ck_assert_int_eq(l, i);
    }
    ck_assert_int_eq(bk_log_level_parse("WARNING", &l), BK_OK);
    ck_assert_int_eq(l, BK_LOG_WARN);
    ck_assert_int_eq(bk_log_level_parse("Info", &l), BK_OK);
    ck_assert_int_eq(l, BK_LOG_INFO);
    ck_assert_int_eq(bk_log_level_parse("verbose", &l), BK_EINVAL);
    ck_assert_int_eq(l, BK_LOG_INFO); /* untouched */
    ck_assert_int_eq(bk_log_level_parse(NULL, &l), BK_EINVAL);
    ck_assert_str_eq(bk_log_level_name(BK_LOG_WARN), "warn");

    bk_log_opts_t o;
    bk_log_opts_init(&o);
    o.level = (bk_log_level_t)42;
    bk_log_t *log;
    ck_assert_int_eq(bk_log_new(&o, &log, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_log_new(NULL, NULL, NULL), BK_EINVAL);
}
END_TEST

/* Many threads, long and short lines, one sink: every line must come out whole. */
enum { THREADS = 8, LINES = 2000, LONG_LINE = 10000 };
static bk_log_t *shared_log;

/* Line i of a thread has a message of this many bytes: some far over PIPE_BUF. */
static int msg_len_of(int i)
{
    return (i % 7 == 0) ? LONG_LINE : (i % 50);
}

static char pad[LONG_LINE + 1];

static int lines_per_thread;

static void *log_many(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < lines_per_thread; i++)
        bk_log(shared_log, BK_LOG_INFO, json_pack("{s:i, s:i}", "thread", id, "i", i), "%.*s",
               msg_len_of(i), pad);
    return NULL;
}

static void run_threads(int lines)
{
    lines_per_thread = lines;
    memset(pad, 'p', LONG_LINE);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, log_many, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
}

/* Every line parses, has its full message, and each thread's lines come in order. */
static void check_lines(char *text, size_t len, int lines_each)
{
    ck_assert_uint_eq(strlen(text), len);
    ck_assert(len > 0 && text[len - 1] == '\n');
    int count[THREADS] = {0};
    int lines = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        ck_assert_msg(j != NULL, "line %d is not JSON: %s", lines, err.text);
        int t = (int)json_integer_value(json_object_get(j, "thread"));
        int i = (int)json_integer_value(json_object_get(j, "i"));
        ck_assert(t >= 0 && t < THREADS);
        ck_assert_int_eq(i, count[t]); /* each thread's lines in its order */
        ck_assert_uint_eq(json_string_length(json_object_get(j, "msg")), (size_t)msg_len_of(i));
        count[t]++;
        json_decref(j);
        lines++;
    }
    ck_assert_int_eq(lines, THREADS * lines_each);
}

START_TEST(no_interleaving_across_threads)
{
    char path[] = "/tmp/bk-log-threads.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    bk_log_opts_t o;
    bk_log_opts_init(&o);
    o.path = path;
    ck_assert_int_eq(bk_log_new(&o, &shared_log, NULL), BK_OK);
    run_threads(LINES);
    bk_log_free(shared_log);

    char *text = read_file(path);
    unlink(path);
    check_lines(text, strlen(text), LINES);
    free(text);
}
END_TEST

/* A pipe splits writes over PIPE_BUF whenever it is full, so only the logger's
 * lock keeps 10 KB lines from different threads apart. */
struct drain {
    int fd;
    char *buf;
    size_t len, cap;
};

static void *drain_pipe(void *arg)
{
    struct drain *d = arg;
    for (;;) {
        if (d->cap - d->len < 65536) {
            d->cap = d->cap * 2 + 65536;
            d->buf = realloc(d->buf, d->cap + 1);
        }
        ssize_t n = read(d->fd, d->buf + d->len, d->cap - d->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        d->len += (size_t)n;
    }
    d->buf[d->len] = '\0';
    return NULL;
}

START_TEST(no_interleaving_on_a_pipe)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    struct drain d = {.fd = p[0]};
    pthread_t reader;
    ck_assert_int_eq(pthread_create(&reader, NULL, drain_pipe, &d), 0);
    bk_log_opts_t o;
    bk_log_opts_init(&o);
    o.fd = p[1];
    ck_assert_int_eq(bk_log_new(&o, &shared_log, NULL), BK_OK);
    run_threads(LINES / 4);
    bk_log_free(shared_log);
    close(p[1]); /* the reader sees EOF */
    pthread_join(reader, NULL);
    close(p[0]);
    check_lines(d.buf, d.len, LINES / 4);
    free(d.buf);
}
END_TEST

/* The callback sink is never entered twice at once. */
static atomic_int sink_inside, sink_overlaps;
static struct capture shared_capture;

static void exclusive_sink(bk_log_level_t level, const char *line, size_t len, void *ud)
{
    if (atomic_fetch_add(&sink_inside, 1) != 0)
        atomic_fetch_add(&sink_overlaps, 1);
    /* Unsynchronised work on shared state: a race shows up as lost or torn lines
     * (and under a thread sanitiser as a data race). */
    capture_sink(level, line, len, ud);
    atomic_fetch_sub(&sink_inside, 1);
}

/* bk_log_opts_init clears what was there, reserved_ tail included, then sets the
 * defaults; the sink gets its user data last, after the line. */
static void ud_last_sink(bk_log_level_t level, const char *line, size_t len, void *ud)
{
    struct capture *c = ud;
    ck_assert_int_eq(level, BK_LOG_ERROR);
    ck_assert_uint_gt(len, 0);
    ck_assert_int_eq(line[len - 1], '\n');
    c->calls++;
}

START_TEST(opts_init_clears)
{
    bk_log_opts_t o;
    memset(&o, 0x5a, sizeof o);
    bk_log_opts_init(&o);
    ck_assert_int_eq(o.level, BK_LOG_INFO);
    ck_assert_int_eq(o.fd, 2);
    ck_assert_ptr_null(o.clock);
    ck_assert_ptr_null(o.sink);
    ck_assert_ptr_null(o.sink_ud);
    ck_assert_ptr_null(o.path);
    for (size_t i = 0; i < sizeof o.reserved_ / sizeof o.reserved_[0]; i++)
        ck_assert_uint_eq(o.reserved_[i], 0);

    struct capture c;
    memset(&c, 0, sizeof c);
    o.sink = ud_last_sink;
    o.sink_ud = &c;
    bk_log_t *log;
    ck_assert_int_eq(bk_log_new(&o, &log, NULL), BK_OK);
    bk_log(log, BK_LOG_ERROR, NULL, "x");
    bk_log_free(log);
    ck_assert_int_eq(c.calls, 1);

    /* The refusals say which option. */
    bk_error_t err;
    o.sink = NULL;
    o.fd = -1;
    ck_assert_int_eq(bk_log_new(&o, &log, &err), BK_EINVAL);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_msg(strstr(err.message, "sink") != NULL, "%s", err.message);
}
END_TEST

START_TEST(callback_sink_serialised)
{
    memset(&shared_capture, 0, sizeof shared_capture);
    atomic_store(&sink_inside, 0);
    atomic_store(&sink_overlaps, 0);
    bk_log_opts_t o;
    bk_log_opts_init(&o);
    o.sink = exclusive_sink;
    o.sink_ud = &shared_capture;
    ck_assert_int_eq(bk_log_new(&o, &shared_log, NULL), BK_OK);
    run_threads(LINES / 4);
    bk_log_free(shared_log);
    ck_assert_int_eq(atomic_load(&sink_overlaps), 0);
    ck_assert_int_eq(shared_capture.calls, THREADS * (LINES / 4));
    check_lines(shared_capture.text, shared_capture.len, LINES / 4);
    free(shared_capture.text);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("format");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, exact_line);
    tcase_add_test(tc, timestamps);
    tcase_add_test(tc, level_filter);
    tcase_add_test(tc, fields_order_and_reserved_names);
    tcase_add_test(tc, fields_consumed_when_dropped);
    tcase_add_test(tc, escaping_and_utf8_repair);
    tcase_add_test(tc, fields_with_invalid_utf8_repaired);
    tcase_add_test(tc, message_edge_cases);
    tcase_add_test(tc, every_control_character_escaped);
    tcase_add_test(tc, the_writer_agrees_with_jansson);
    tcase_add_test(tc, utf8_helper_cases);
    tcase_add_test(tc, utf8_helper_agrees_with_jansson);
    tcase_add_test(tc, api_edges);
    tcase_add_test(tc, opts_init_clears);
    tcase_add_test(tc, long_message_intact);
    tcase_add_test(tc, level_names);
    suite_add_tcase(s, tc);
    tc = tcase_create("sinks");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, file_sink_append_and_reopen);
    tcase_add_test(tc, fd_sink_borrowed);
    tcase_add_test(tc, reopen_failure_keeps_old_file);
    tcase_add_test(tc, no_interleaving_across_threads);
    tcase_add_test(tc, no_interleaving_on_a_pipe);
    tcase_add_test(tc, callback_sink_serialised);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(log_suite());
}
