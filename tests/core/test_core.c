/* Unit tests of the core layer: status codes, version, clock, random bytes.
 * SPDX-License-Identifier: MIT */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include <check.h>

#include "check_main.h"

#include "config.h"
#include <backend/core.h>

START_TEST(strerror_names_every_code)
{
    /* Every code in the table has its own text and name; the table is dense from -1. */
    const int codes[] = {
#define CODE_(name, value, text, http) BK_##name,
        BK_ERRNO_MAP(CODE_)
#undef CODE_
    };
    const size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(codes[i], -(int)(i + 1));
        ck_assert_str_ne(bk_strerror(codes[i]), "unknown error");
        ck_assert_str_ne(bk_err_name(codes[i]), "BK_UNKNOWN");
        for (size_t j = 0; j < i; j++) {
            ck_assert_str_ne(bk_strerror(codes[i]), bk_strerror(codes[j]));
            ck_assert_str_ne(bk_err_name(codes[i]), bk_err_name(codes[j]));
        }
    }
}
END_TEST

START_TEST(strerror_known_values)
{
    ck_assert_str_eq(bk_strerror(BK_OK), "success");
    ck_assert_str_eq(bk_err_name(BK_OK), "BK_OK");
    ck_assert_str_eq(bk_err_name(BK_EINVAL), "BK_EINVAL");
    ck_assert_str_eq(bk_strerror(BK_EINVAL), "invalid argument");
    ck_assert_str_eq(bk_err_name(BK_EBUSY), "BK_EBUSY");
    ck_assert_str_eq(bk_err_name(BK_ESYS), "BK_ESYS");
    ck_assert_str_eq(bk_err_name(BK_EJWT_EXPIRED), "BK_EJWT_EXPIRED");
    ck_assert_str_eq(bk_strerror(BK_EJWT_EXPIRED), "token expired");
    ck_assert_str_eq(bk_err_name(BK_EFORBIDDEN), "BK_EFORBIDDEN");
    ck_assert_str_eq(bk_strerror(BK_ETIMEDOUT), "operation timed out");
}
END_TEST

START_TEST(strerror_unknown_codes)
{
    ck_assert_str_eq(bk_strerror(-9999), "unknown error");
    ck_assert_str_eq(bk_strerror(1), "unknown error");
    ck_assert_str_eq(bk_err_name(-9999), "BK_UNKNOWN");
}
END_TEST

START_TEST(version_matches_package)
{
    /* The header, the library and configure.ac must agree. */
    ck_assert_str_eq(bk_version(), PACKAGE_VERSION);
    ck_assert_str_eq(bk_version(), BK_VERSION_STRING);
    ck_assert_uint_eq(bk_version_num(), BK_VERSION_NUM);
    unsigned major = 0, minor = 0, patch = 0;
    ck_assert_int_eq(sscanf(PACKAGE_VERSION, "%u.%u.%u", &major, &minor, &patch), 3);
    ck_assert_uint_eq(bk_version_num(), (major << 16) | (minor << 8) | patch);
}
END_TEST

START_TEST(system_clock_tracks_os)
{
    struct timespec a, b;
    clock_gettime(CLOCK_REALTIME, &a);
    int64_t wall = bk_clock_wall_ns(NULL);
    clock_gettime(CLOCK_REALTIME, &b);
    ck_assert_int_ge(wall, (int64_t)a.tv_sec * BK_NSEC_PER_SEC + a.tv_nsec);
    ck_assert_int_le(wall, (int64_t)b.tv_sec * BK_NSEC_PER_SEC + b.tv_nsec);

    int64_t m1 = bk_clock_mono_ns(NULL);
    int64_t m2 = bk_clock_mono_ns(NULL);
    ck_assert_int_ge(m2, m1);
    ck_assert_int_gt(m1, 0);
}
END_TEST

START_TEST(fake_clock_advances_only_by_hand)
{
    const int64_t start = INT64_C(1795383995123456789);
    bk_clock_t *c = NULL;
    ck_assert_int_eq(bk_clock_fake_new(start, &c), BK_OK);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(bk_clock_mono_ns(c), 0);
    ck_assert_int_eq(bk_clock_wall_ns(c), start);
    /* Reading does not move it. */
    ck_assert_int_eq(bk_clock_mono_ns(c), 0);

    ck_assert_int_eq(bk_clock_fake_advance(c, 1500 * BK_NSEC_PER_MSEC), BK_OK);
    ck_assert_int_eq(bk_clock_mono_ns(c), 1500 * BK_NSEC_PER_MSEC);
    ck_assert_int_eq(bk_clock_wall_ns(c), start + 1500 * BK_NSEC_PER_MSEC);

    /* Time never goes backwards through advance. */
    ck_assert_int_eq(bk_clock_fake_advance(c, -1), BK_EINVAL);
    ck_assert_int_eq(bk_clock_mono_ns(c), 1500 * BK_NSEC_PER_MSEC);

    /* A wall step (NTP) leaves monotonic time alone. */
    ck_assert_int_eq(bk_clock_fake_set_wall(c, 42), BK_OK);
    ck_assert_int_eq(bk_clock_wall_ns(c), 42);
    ck_assert_int_eq(bk_clock_mono_ns(c), 1500 * BK_NSEC_PER_MSEC);
    ck_assert_int_eq(bk_clock_fake_advance(c, 8), BK_OK);
    ck_assert_int_eq(bk_clock_wall_ns(c), 50);
    ck_assert_int_eq(bk_clock_mono_ns(c), 1500 * BK_NSEC_PER_MSEC + 8);
    bk_clock_free(c);
}
END_TEST

START_TEST(fake_clock_invalid_arguments)
{
    ck_assert_int_eq(bk_clock_fake_new(0, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_clock_fake_advance(NULL, 1), BK_EINVAL);
    ck_assert_int_eq(bk_clock_fake_set_wall(NULL, 1), BK_EINVAL);
    bk_clock_free(NULL); /* a no-op, like free(NULL) */
}
END_TEST

static int64_t os_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * BK_NSEC_PER_SEC + ts.tv_nsec;
}

START_TEST(system_sleep_lasts_at_least_ns)
{
    int64_t t0 = os_mono_ns();
    ck_assert_int_eq(bk_clock_sleep_ns(NULL, 2 * BK_NSEC_PER_MSEC), BK_OK);
    ck_assert_int_ge(os_mono_ns() - t0, 2 * BK_NSEC_PER_MSEC);
}
END_TEST

START_TEST(sleep_zero_and_negative)
{
    int64_t t0 = os_mono_ns();
    ck_assert_int_eq(bk_clock_sleep_ns(NULL, 0), BK_OK);
    ck_assert_int_lt(os_mono_ns() - t0, BK_NSEC_PER_SEC); /* no sleep: far below 1 s */
    ck_assert_int_eq(bk_clock_sleep_ns(NULL, -1), BK_EINVAL);

    bk_clock_t *c;
    ck_assert_int_eq(bk_clock_fake_new(1000, &c), BK_OK);
    ck_assert_int_eq(bk_clock_sleep_ns(c, 0), BK_OK);
    ck_assert_int_eq(bk_clock_mono_ns(c), 0);
    ck_assert_int_eq(bk_clock_wall_ns(c), 1000);
    ck_assert_int_eq(bk_clock_sleep_ns(c, -1), BK_EINVAL);
    ck_assert_int_eq(bk_clock_mono_ns(c), 0);
    ck_assert_int_eq(bk_clock_wall_ns(c), 1000);
    bk_clock_free(c);
}
END_TEST

START_TEST(fake_sleep_advances_and_returns_at_once)
{
    bk_clock_t *c;
    ck_assert_int_eq(bk_clock_fake_new(1795383995 * BK_NSEC_PER_SEC, &c), BK_OK);
    ck_assert_int_eq(bk_clock_fake_advance(c, 7), BK_OK);
    int64_t t0 = os_mono_ns();
    /* An hour of fake sleep: were it real, the test would time out. */
    ck_assert_int_eq(bk_clock_sleep_ns(c, 3600 * BK_NSEC_PER_SEC), BK_OK);
    ck_assert_int_lt(os_mono_ns() - t0, BK_NSEC_PER_SEC);
    ck_assert_int_eq(bk_clock_mono_ns(c), 7 + 3600 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(bk_clock_wall_ns(c), (1795383995 + 3600) * BK_NSEC_PER_SEC + 7);
    ck_assert_int_eq(bk_clock_sleep_ns(c, 5), BK_OK);
    ck_assert_int_eq(bk_clock_mono_ns(c), 12 + 3600 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(bk_clock_wall_ns(c), (1795383995 + 3600) * BK_NSEC_PER_SEC + 12);
    bk_clock_free(c);
}
END_TEST

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

START_TEST(system_sleep_survives_signal)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the signal interrupts the sleep with EINTR */
    ck_assert_int_eq(sigaction(SIGALRM, &sa, &old), 0);
    /* A signal every 5 ms during a 60 ms sleep. */
    struct itimerval it = {.it_interval = {0, 5000}, .it_value = {0, 5000}};
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    alarms = 0;
    int64_t t0 = os_mono_ns();
    int rc = bk_clock_sleep_ns(NULL, 60 * BK_NSEC_PER_MSEC);
    int64_t elapsed = os_mono_ns() - t0;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    ck_assert_int_eq(rc, BK_OK);
    ck_assert_int_gt(alarms, 0); /* the sleep really was interrupted */
    ck_assert_int_ge(elapsed, 60 * BK_NSEC_PER_MSEC);
}
END_TEST

START_TEST(random_bytes_fill_and_differ)
{
    unsigned char a[64], b[64];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    ck_assert_int_eq(bk_random_bytes(a, sizeof a), BK_OK);
    ck_assert_int_eq(bk_random_bytes(b, sizeof b), BK_OK);
    /* Two 512-bit draws collide with probability 2^-512. */
    ck_assert_int_ne(memcmp(a, b, sizeof a), 0);

    /* Every byte value shows up over a large draw: the buffer is really filled. */
    static unsigned char big[1 << 16];
    int seen[256] = {0};
    ck_assert_int_eq(bk_random_bytes(big, sizeof big), BK_OK);
    for (size_t i = 0; i < sizeof big; i++)
        seen[big[i]]++;
    for (int v = 0; v < 256; v++)
        ck_assert_int_gt(seen[v], 0);
}
END_TEST

START_TEST(random_bytes_edges)
{
    ck_assert_int_eq(bk_random_bytes(NULL, 0), BK_OK);
    ck_assert_int_eq(bk_random_bytes(NULL, 1), BK_EINVAL);
    unsigned char guard[3] = {0xAA, 0xAA, 0xAA};
    ck_assert_int_eq(bk_random_bytes(guard + 1, 0), BK_OK);
    ck_assert_uint_eq(guard[1], 0xAA);
}
END_TEST

static Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("status");
    tcase_add_test(tc, strerror_names_every_code);
    tcase_add_test(tc, strerror_known_values);
    tcase_add_test(tc, strerror_unknown_codes);
    tcase_add_test(tc, version_matches_package);
    suite_add_tcase(s, tc);

    tc = tcase_create("clock");
    tcase_add_test(tc, system_clock_tracks_os);
    tcase_add_test(tc, fake_clock_advances_only_by_hand);
    tcase_add_test(tc, fake_clock_invalid_arguments);
    tcase_add_test(tc, system_sleep_lasts_at_least_ns);
    tcase_add_test(tc, sleep_zero_and_negative);
    tcase_add_test(tc, fake_sleep_advances_and_returns_at_once);
    tcase_add_test(tc, system_sleep_survives_signal);
    suite_add_tcase(s, tc);

    tc = tcase_create("random");
    tcase_add_test(tc, random_bytes_fill_and_differ);
    tcase_add_test(tc, random_bytes_edges);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(core_suite());
}
