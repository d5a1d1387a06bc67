/* HTTP-date written and read (lib/http/date.c, internal): every day of four
 * centuries' leap rules round-trips, against gmtime_r; what is not an
 * IMF-fixdate is refused; the locale never changes the text.
 * SPDX-License-Identifier: MIT */
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "check_main.h"
#include "http/http_int.h"

START_TEST(dates_round_trip_and_match_the_c_library)
{
    char buf[BK__HTTP_DATE_LEN + 1], want[64];
    /* 1900-03-01 .. 2400-03-01 by 1 day and 7 seconds: every month, leap day
     * and century rule. */
    for (int64_t t = -2203891200; t < 13574563200; t += 86407) {
        bk__http_date(t, buf);
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm); /* the C locale here */
        ck_assert_str_eq(buf, want);
        int64_t back = 0;
        ck_assert_msg(bk__http_date_parse(buf, &back) && back == t, "%s: %lld", buf, (long long)back);
    }
    bk__http_date(784111777, buf);
    ck_assert_str_eq(buf, "Sun, 06 Nov 1994 08:49:37 GMT"); /* RFC 9110's example */
}
END_TEST

START_TEST(only_an_imf_fixdate_is_read)
{
    static const char *const bad[] = {
        "Sunday, 06-Nov-94 08:49:37 GMT", /* RFC 850 */
        "Sun Nov  6 08:49:37 1994",       /* asctime */
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:49:37 GMT",
        "Sun, 06 Nov 19x4 08:49:37 GMT",
        "",
    };
    int64_t t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!bk__http_date_parse(bad[i], &t), "read: %s", bad[i]);
    ck_assert(!bk__http_date_parse(NULL, &t));
}
END_TEST

START_TEST(the_locale_does_not_change_the_text)
{
    /* Whatever locale the host runs in (if one with other day names is
     * installed, it is used; C.UTF-8 at least changes nothing). */
    if (setlocale(LC_TIME, "fr_FR.UTF-8") == NULL && setlocale(LC_TIME, "de_DE.UTF-8") == NULL)
        setlocale(LC_TIME, "C.UTF-8");
    char buf[BK__HTTP_DATE_LEN + 1];
    bk__http_date(784111777, buf);
    ck_assert_str_eq(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    setlocale(LC_TIME, "C");
}
END_TEST

static Suite *date_suite(void)
{
    Suite *s = suite_create("http_date");
    TCase *tc = tcase_create("date");
    tcase_add_test(tc, dates_round_trip_and_match_the_c_library);
    tcase_add_test(tc, only_an_imf_fixdate_is_read);
    tcase_add_test(tc, the_locale_does_not_change_the_text);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(date_suite());
}
