/* Unit tests of the core layer: status codes, version, clock, random bytes.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
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
