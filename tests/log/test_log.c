/* Unit tests of the structured logger: exact line text on a fake clock, filtering,
 * fields, UTF-8 repair, sinks, rotation, and no interleaving across threads.
 * SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include <backend/log.h>

/* A callback sink that keeps everything written to it. */
struct capture {
    char *text;
    size_t len;
    int calls;
    bk_log_level_t last_level;
};

static void capture_sink(void *ud, bk_log_level_t level, const char *line, size_t len)
{
    struct capture *c = ud;
    c->text = realloc(c->text, c->len + len + 1);
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
    ck_assert_int_eq(bk_log_new(&o, &log), BK_OK);
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
    ck_assert_str_eq(c.text,
                     "{\"ts\":\"1970-01-01T00:00:00.999Z\",\"level\":\"warn\",\"msg\":\"a\"}\n"
                     "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"error\",\"msg\":\"b\"}\n"
                     "{\"ts\":\"1969-12-31T23:59:59.999Z\",\"level\":\"debug\",\"msg\":\"c\"}\n");
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
    c.len = 0;
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

START_TEST(file_sink_append_and_reopen)
{
    char dir[] = "/tmp/bk-log-test.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], rotated[256];
    snprintf(path, sizeof path, "%s/app.log", dir);
    snprintf(rotated, sizeof rotated, "%s/app.log.1", dir);

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
    ck_assert_int_eq(bk_log_new(&o, &log), BK_OK);
    bk_log(log, BK_LOG_INFO, NULL, "one");
    ck_assert_int_eq(rename(path, rotated), 0); /* logrotate moves the file */
    bk_log(log, BK_LOG_INFO, NULL, "two");         /* still goes to the moved file */
    ck_assert_int_eq(bk_log_reopen(log), BK_OK);
    bk_log(log, BK_LOG_INFO, NULL, "three");
    bk_log_free(log);

    char *a = read_file(rotated), *b = read_file(path);
    ck_assert_str_eq(a, "old\n"
                        "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":\"one\"}\n"
                        "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":\"two\"}\n");
    ck_assert_str_eq(b, "{\"ts\":\"2026-11-22T21:46:35.123Z\",\"level\":\"info\",\"msg\":\"three\"}\n");
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640 & ~(mode_t)0); /* created 0640 (less umask) */
    free(a);
    free(b);
    unlink(path);
    unlink(rotated);
    rmdir(dir);

    /* A path that cannot be opened is an error, not a silent logger. */
    o.path = "/nonexistent-dir/x.log";
    log = (bk_log_t *)&o;
    ck_assert_int_eq(bk_log_new(&o, &log), BK_ESYS);
    ck_assert_ptr_null(log);
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
    ck_assert_int_eq(bk_log_new(&o, &log), BK_OK);
    bk_log(log, BK_LOG_INFO, NULL, "to the pipe");
    ck_assert_int_eq(bk_log_reopen(log), BK_OK); /* a no-op for an fd sink */
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
    ck_assert_int_eq(bk_log_new(&o, &log), BK_EINVAL);
    ck_assert_int_eq(bk_log_new(NULL, NULL), BK_EINVAL);
}
END_TEST

/* Many threads, long and short lines, one file: every line must come out whole. */
enum { THREADS = 8, LINES = 2000 };
static bk_log_t *shared_log;

static void *log_many(void *arg)
{
    int id = (int)(intptr_t)arg;
    char pad[10001];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < LINES; i++) {
        int len = (i % 7 == 0) ? 10000 : (i % 50);
        bk_log(shared_log, BK_LOG_INFO, json_pack("{s:i, s:i}", "thread", id, "i", i), "%.*s",
               len, pad);
    }
    return NULL;
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
    ck_assert_int_eq(bk_log_new(&o, &shared_log), BK_OK);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, log_many, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    bk_log_free(shared_log);

    char *text = read_file(path);
    unlink(path);
    int count[THREADS] = {0};
    int lines = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        ck_assert_msg(j != NULL, "line %d is not JSON: %s", lines, err.text);
        int t = (int)json_integer_value(json_object_get(j, "thread"));
        int i = (int)json_integer_value(json_object_get(j, "i"));
        ck_assert_int_eq(i, count[t]); /* each thread's lines in its order */
        count[t]++;
        json_decref(j);
        lines++;
    }
    ck_assert_int_eq(lines, THREADS * LINES);
    free(text);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, exact_line);
    tcase_add_test(tc, timestamps);
    tcase_add_test(tc, level_filter);
    tcase_add_test(tc, fields_order_and_reserved_names);
    tcase_add_test(tc, fields_consumed_when_dropped);
    tcase_add_test(tc, escaping_and_utf8_repair);
    tcase_add_test(tc, long_message_intact);
    tcase_add_test(tc, level_names);
    suite_add_tcase(s, tc);
    tc = tcase_create("sinks");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, file_sink_append_and_reopen);
    tcase_add_test(tc, fd_sink_borrowed);
    tcase_add_test(tc, no_interleaving_across_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
