/* backendd's configuration (daemon/conf.c): defaults, the file's syntax,
 * environment overrides, and every problem reported at once with its place,
 * secrets never quoted.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include <backend/core.h>

#include "check_main.h"
#include "conf.h"

static char path[64];

/* Writes text to a fresh file; its name in path. */
static const char *conf_file(const char *text)
{
    snprintf(path, sizeof path, "/tmp/bk-conf-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static char *const NO_ENV[] = {NULL};

/* The problems as "where: message" lines, one string. */
static char *lines(const struct conf_problems *p)
{
    size_t cap = 1;
    for (size_t i = 0; i < p->n; i++)
        cap += strlen(p->items[i].where) + strlen(p->items[i].message) + 3;
    char *s = calloc(1, cap);
    for (size_t i = 0; i < p->n; i++) {
        strcat(s, p->items[i].where);
        strcat(s, ": ");
        strcat(s, p->items[i].message);
        strcat(s, "\n");
    }
    return s;
}

START_TEST(defaults_need_only_the_required_keys)
{
    struct conf c;
    struct conf_problems p;
    const char *f = conf_file("# a comment\n\ndatabase_url = host=/run/pg dbname=shop\n"
                              "jwt_key = k1 ES256 /etc/backendd/k1.pem\n");
    ck_assert_uint_eq(conf_load(&c, f, NO_ENV, false, &p), 0);
    ck_assert_str_eq(c.database_url, "host=/run/pg dbname=shop");
    ck_assert_uint_eq(c.nlisten, 1);
    ck_assert_str_eq(c.listen[0], "127.0.0.1:8080");
    ck_assert_int_eq(c.access_token_ttl_ns, 15 * 60 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(c.refresh_token_ttl_ns, 30LL * 86400 * BK_NSEC_PER_SEC);
    ck_assert_uint_eq(c.login_rate_email.count, 5);
    ck_assert_int_eq(c.login_rate_email.period_ns, 15 * 60 * BK_NSEC_PER_SEC);
    ck_assert_uint_eq(c.argon2_memory_kib, 19456);
    ck_assert_uint_eq(c.worker_queue, 1024);
    ck_assert(c.docs);
    ck_assert_ptr_null(c.memcached_servers);
    ck_assert_uint_eq(c.njwt_keys, 1);
    ck_assert_str_eq(c.jwt_keys[0].kid, "k1");
    ck_assert_str_eq(c.jwt_keys[0].alg, "ES256");
    ck_assert_str_eq(c.jwt_keys[0].file, "/etc/backendd/k1.pem");
    conf_free(&c);
    conf_problems_free(&p);
    unlink(f);
}
END_TEST

START_TEST(every_problem_is_reported_with_its_line)
{
    struct conf c;
    struct conf_problems p;
    const char *f = conf_file("listen = 127.0.0.1:8080\n"       /* 1 */
                              "listen = localhost\n"            /* 2: no port */
                              "access_token_ttl = 15\n"         /* 3: no unit */
                              "refresh_token_ttl = 30x\n"       /* 4 */
                              "colour = blue\n"                 /* 5 */
                              "io_threads = -1\n"               /* 6 */
                              "docs = maybe\n"                  /* 7 */
                              "just words\n"                    /* 8 */
                              "log_level = loud\n"              /* 9 */
                              "login_rate_email = 5 per hour\n" /* 10 */
                              "jwt_key = k1 XS256 /k\n"         /* 11 */
                              "log_level = info\n"              /* 12: valid, but set again */
                              "access_token_ttl = 2d\n"         /* 13: set again (and too long) */
                              "tls_cert_file = /etc/cert.pem\n");
    size_t n = conf_load(&c, f, NO_ENV, false, &p);
    char *got = lines(&p);
    char want[4096];
    snprintf(want, sizeof want,
             "%1$s:2: listen: \"localhost\" is not host:port (\"127.0.0.1:8080\", \"[::1]:8080\")\n"
             "%1$s:3: access_token_ttl: \"15\" is not a duration (a number and ms, s, m, h or d: \"15m\")\n"
             "%1$s:4: refresh_token_ttl: \"30x\" is not a duration (a number and ms, s, m, h or d: \"15m\")\n"
             "%1$s:5: colour: unknown key\n"
             "%1$s:6: io_threads: \"-1\" is not a whole number from 0 to 256\n"
             "%1$s:7: docs: \"maybe\" is not on or off\n"
             "%1$s:8: not \"key = value\"\n"
             "%1$s:9: log_level: \"loud\" is not a level (debug, info, warn, error)\n"
             "%1$s:10: login_rate_email: \"5 per hour\" is not a rate (a count per duration: \"5/15m\")\n"
             "%1$s:11: jwt_key: \"XS256\" is not an algorithm (HS256, RS256, ES256, ...)\n"
             "%1$s:12: log_level: set already on line 9\n"
             "%1$s:13: access_token_ttl: set already on line 3\n"
             "%1$s: database_url is required (a libpq connection string or URI)\n"
             "%1$s: jwt_key is required (\"KID ALG FILE\"), or --dev for a generated one\n"
             "%1$s: tls_cert_file and tls_key_file go together\n",
             f);
    ck_assert_str_eq(got, want);
    ck_assert_uint_eq(n, 15);
    free(got);
    conf_free(&c);
    conf_problems_free(&p);
    unlink(f);
}
END_TEST

START_TEST(the_environment_overrides_the_file)
{
    struct conf c;
    struct conf_problems p;
    const char *f = conf_file("database_url = postgresql://file@db/shop\n"
                              "listen = 127.0.0.1:8080\n"
                              "listen = [::1]:8080\n"
                              "access_token_ttl = 10m\n");
    char *env[] = {"HOME=/root",
                   "BACKENDD_LISTEN=0.0.0.0:9000, [::]:9000",
                   "BACKENDD_ACCESS_TOKEN_TTL=90s",
                   "BACKENDD_DATABASE_URL=postgresql://env@db/shop",
                   "BACKENDD_MEMCACHED_SERVERS=10.0.0.1:11211,10.0.0.2",
                   "BACKENDD_JWT_KEY=a HS256 /a.key,b ES256 /b.pem",
                   "OTHER_THING=1",
                   NULL};
    ck_assert_uint_eq(conf_load(&c, f, env, false, &p), 0);
    ck_assert_uint_eq(c.nlisten, 2);
    ck_assert_str_eq(c.listen[0], "0.0.0.0:9000");
    ck_assert_str_eq(c.listen[1], "[::]:9000");
    ck_assert_int_eq(c.access_token_ttl_ns, 90 * BK_NSEC_PER_SEC);
    ck_assert_str_eq(c.database_url, "postgresql://env@db/shop");
    ck_assert_str_eq(c.memcached_servers, "10.0.0.1:11211,10.0.0.2");
    ck_assert_uint_eq(c.njwt_keys, 2);
    ck_assert_str_eq(c.jwt_keys[1].kid, "b");
    conf_free(&c);
    conf_problems_free(&p);
    /* A bad or unknown variable is a problem named after it. */
    char *bad[] = {"BACKENDD_DATABASE_URL=x", "BACKENDD_JWT_KEY=a HS256 /a", "BACKENDD_IO_THREADS=lots",
                   "BACKENDD_NO_SUCH=1", NULL};
    ck_assert_uint_eq(conf_load(&c, NULL, bad, false, &p), 2);
    char *got = lines(&p);
    ck_assert_str_eq(got, "BACKENDD_IO_THREADS: io_threads: \"lots\" is not a whole number from 0 to 256\n"
                          "BACKENDD_NO_SUCH: no_such: unknown key\n");
    free(got);
    conf_free(&c);
    conf_problems_free(&p);
    unlink(f);
}
END_TEST

START_TEST(secrets_are_never_quoted)
{
    struct conf c;
    struct conf_problems p;
    const char *f = conf_file("database_url = postgresql://app:s3cret@db/shop\n"
                              "database_url = postgresql://app:0ther@db/shop\n"
                              "database_read_url = postgresql://ro:hidden@replica/shop\n");
    ck_assert_uint_gt(conf_load(&c, f, NO_ENV, false, &p), 0);
    char *got = lines(&p);
    ck_assert_ptr_null(strstr(got, "s3cret"));
    ck_assert_ptr_null(strstr(got, "0ther"));
    ck_assert_ptr_null(strstr(got, "hidden"));
    ck_assert_ptr_nonnull(strstr(got, ":2: database_url: set already on line 1"));
    free(got);
    conf_free(&c);
    conf_problems_free(&p);
    unlink(f);
}
END_TEST

START_TEST(dev_needs_no_key_and_a_missing_file_is_one_problem)
{
    struct conf c;
    struct conf_problems p;
    char *env[] = {"BACKENDD_DATABASE_URL=dbname=shop", NULL};
    ck_assert_uint_eq(conf_load(&c, NULL, env, true, &p), 0);
    conf_free(&c);
    conf_problems_free(&p);
    ck_assert_uint_eq(conf_load(&c, "/nonexistent/backendd.conf", env, true, &p), 1);
    ck_assert_str_eq(p.items[0].where, "/nonexistent/backendd.conf");
    ck_assert_str_eq(p.items[0].message, "cannot be read: No such file or directory");
    conf_free(&c);
    conf_problems_free(&p);
    /* A signing kid must name a key. */
    const char *f = conf_file("database_url = dbname=shop\njwt_key = a HS256 /a\njwt_key = a HS256 /b\n"
                              "jwt_signing_kid = z\n");
    ck_assert_uint_eq(conf_load(&c, f, NO_ENV, false, &p), 2);
    char *got = lines(&p);
    char want[512];
    snprintf(want, sizeof want, "%1$s:3: jwt_key: the kid \"a\" is there twice\n"
                                "%1$s: jwt_signing_kid: no jwt_key has the kid \"z\"\n", f);
    ck_assert_str_eq(got, want);
    free(got);
    conf_free(&c);
    conf_problems_free(&p);
    unlink(f);
}
END_TEST

START_TEST(durations_have_units)
{
    int64_t ns;
    ck_assert(conf_parse_duration("900s", &ns) && ns == 900 * BK_NSEC_PER_SEC);
    ck_assert(conf_parse_duration("15m", &ns) && ns == 900 * BK_NSEC_PER_SEC);
    ck_assert(conf_parse_duration("2h", &ns) && ns == 7200 * BK_NSEC_PER_SEC);
    ck_assert(conf_parse_duration("30d", &ns) && ns == 30LL * 86400 * BK_NSEC_PER_SEC);
    ck_assert(conf_parse_duration("250ms", &ns) && ns == 250 * BK_NSEC_PER_MSEC);
    ck_assert(conf_parse_duration("0s", &ns) && ns == 0);
    const char *bad[] = {"", "15", "m", "-5s", "1.5h", "15 m", "15M", "5ss", "99999999999999999999d",
                         "200000d"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(!conf_parse_duration(bad[i], &ns), "\"%s\" taken", bad[i]);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("daemon_config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, defaults_need_only_the_required_keys);
    tcase_add_test(tc, every_problem_is_reported_with_its_line);
    tcase_add_test(tc, the_environment_overrides_the_file);
    tcase_add_test(tc, secrets_are_never_quoted);
    tcase_add_test(tc, dev_needs_no_key_and_a_missing_file_is_one_problem);
    tcase_add_test(tc, durations_have_units);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(suite());
}
