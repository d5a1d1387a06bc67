/* The schedules of periodic jobs (lib/jobs/cron.c, hidden, linked from its
 * sources): vectors checked by hand against a calendar, every refused input, the
 * impossible schedule, and a property test of random schedules against a
 * brute-force matcher built on gmtime_r.
 * SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "check_main.h"

#include "jobs/cron_int.h"

#define SEC INT64_C(1000000000)

/* ns since the epoch of a UTC date and time. */
static int64_t at(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm) * SEC;
}

static bk__cron_t parse_ok(const char *spec)
{
    bk__cron_t c;
    bk_error_t err;
    int rc = bk__cron_parse(spec, strlen(spec), &c, &err);
    ck_assert_msg(rc == BK_OK, "\"%s\": %d %s", spec, rc, err.message);
    ck_assert_int_eq(err.code, BK_OK);
    return c;
}

static int64_t next_of(const char *spec, int64_t after)
{
    bk__cron_t c = parse_ok(spec);
    int64_t n = 0;
    int rc = bk__cron_next(&c, after, &n);
    ck_assert_msg(rc == BK_OK, "\"%s\": next %d", spec, rc);
    return n;
}

static int64_t start_of(const char *spec, int64_t wall)
{
    bk__cron_t c = parse_ok(spec);
    int64_t n = 0;
    int rc = bk__cron_period_start(&c, wall, &n);
    ck_assert_msg(rc == BK_OK, "\"%s\": period_start %d", spec, rc);
    return n;
}

#define NEXT_EQ(spec, after, want)                                                                 \
    do {                                                                                           \
        int64_t got_ = next_of(spec, after), want_ = (want);                                       \
        ck_assert_msg(got_ == want_, "\"%s\": next %lld, want %lld", spec, (long long)got_,        \
                      (long long)want_);                                                           \
    } while (0)

START_TEST(vectors)
{
    /* Steps: the next quarter hour, at second 0. */
    NEXT_EQ("*/15 * * * *", at(2026, 3, 10, 10, 7, 30), at(2026, 3, 10, 10, 15, 0));
    /* Strictly after: a firing time itself is not its own next. */
    NEXT_EQ("*/15 * * * *", at(2026, 3, 10, 10, 15, 0), at(2026, 3, 10, 10, 30, 0));
    NEXT_EQ("*/15 * * * *", at(2026, 3, 10, 10, 15, 0) - 1, at(2026, 3, 10, 10, 15, 0));
    NEXT_EQ("5-20/5 * * * *", at(2026, 3, 10, 10, 20, 0), at(2026, 3, 10, 11, 5, 0));
    /* 2026-12-04 is a Friday, 12-07 the Monday after. */
    NEXT_EQ("0 9 * * mon-fri", at(2026, 12, 4, 9, 0, 0), at(2026, 12, 7, 9, 0, 0));
    NEXT_EQ("0 9 * * 1-5", at(2026, 12, 4, 8, 59, 59), at(2026, 12, 4, 9, 0, 0));
    /* Vixie: both day fields restricted, either fires. 2026-01-01 is a Thursday,
     * 01-02 a Friday. */
    NEXT_EQ("0 0 1,15 * 5", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 2, 0, 0, 0));
    NEXT_EQ("0 0 1,15 * 5", at(2026, 1, 9, 0, 0, 0), at(2026, 1, 15, 0, 0, 0));
    NEXT_EQ("0 0 1,15 * 5", at(2026, 1, 15, 0, 0, 0), at(2026, 1, 16, 0, 0, 0));
    NEXT_EQ("0 0 1,15 * 5", at(2026, 1, 30, 0, 0, 0), at(2026, 2, 1, 0, 0, 0));
    /* One of them '*': both must hold. */
    NEXT_EQ("0 0 13 * *", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 13, 0, 0, 0));
    NEXT_EQ("0 0 * * fri", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 2, 0, 0, 0));
    /* Restricted by a range that is just Friday: OR. Led by '*' (Vixie counts that
     * as unrestricted, even with a step: here Sunday only): AND, a Sunday the 13th. */
    NEXT_EQ("0 0 13 * 5-7/7", at(2026, 1, 1, 0, 0, 0), at(2026, 1, 2, 0, 0, 0));
    NEXT_EQ("0 0 13 * */7", at(2026, 1, 1, 0, 0, 0), at(2026, 9, 13, 0, 0, 0)); /* a Sunday */
    /* Leap day: 2028 next, and 8 years apart around 2100 (not a leap year). */
    NEXT_EQ("0 0 29 2 *", at(2025, 1, 1, 0, 0, 0), at(2028, 2, 29, 0, 0, 0));
    NEXT_EQ("0 0 29 2 *", at(2096, 3, 1, 0, 0, 0), at(2104, 2, 29, 0, 0, 0));
    /* Rollover of minute, hour, day, month and year at once. */
    NEXT_EQ("* * * * *", at(2026, 12, 31, 23, 59, 30), at(2027, 1, 1, 0, 0, 0));
    NEXT_EQ("0 0 * * *", at(2026, 12, 31, 23, 59, 0), at(2027, 1, 1, 0, 0, 0));
    NEXT_EQ("59 23 31 12 *", at(2026, 12, 31, 23, 59, 0), at(2027, 12, 31, 23, 59, 0));
    /* Names, any case; 0 and 7 both Sunday (2026-05-10 is a Sunday). */
    NEXT_EQ("0 0 1 JAN,Jul *", at(2026, 2, 1, 0, 0, 0), at(2026, 7, 1, 0, 0, 0));
    NEXT_EQ("0 0 * * 7", at(2026, 5, 5, 0, 0, 0), at(2026, 5, 10, 0, 0, 0));
    NEXT_EQ("0 0 * * 0", at(2026, 5, 5, 0, 0, 0), at(2026, 5, 10, 0, 0, 0));
    NEXT_EQ("0 0 * * SuN", at(2026, 5, 5, 0, 0, 0), at(2026, 5, 10, 0, 0, 0));
    NEXT_EQ("0 0 * * 6-7", at(2026, 5, 5, 0, 0, 0), at(2026, 5, 9, 0, 0, 0));
    /* Macros. */
    NEXT_EQ("@yearly", at(2026, 5, 5, 12, 0, 0), at(2027, 1, 1, 0, 0, 0));
    NEXT_EQ("@annually", at(2026, 5, 5, 12, 0, 0), at(2027, 1, 1, 0, 0, 0));
    NEXT_EQ("@monthly", at(2026, 5, 5, 12, 0, 0), at(2026, 6, 1, 0, 0, 0));
    NEXT_EQ("@weekly", at(2026, 5, 5, 12, 0, 0), at(2026, 5, 10, 0, 0, 0));
    NEXT_EQ("@daily", at(2026, 5, 5, 12, 0, 0), at(2026, 5, 6, 0, 0, 0));
    NEXT_EQ("@midnight", at(2026, 5, 5, 12, 0, 0), at(2026, 5, 6, 0, 0, 0));
    NEXT_EQ("@HOURLY", at(2026, 5, 5, 12, 0, 0), at(2026, 5, 5, 13, 0, 0));
    /* Blanks around and between. */
    NEXT_EQ("\t 30  1\t* * *  ", at(2026, 5, 5, 12, 0, 0), at(2026, 5, 6, 1, 30, 0));
    /* Before the epoch. */
    NEXT_EQ("0 0 1 1 *", at(1969, 6, 1, 0, 0, 0), 0);
    NEXT_EQ("0 0 1 1 *", at(1969, 6, 1, 0, 0, 0) + 1, 0);
}
END_TEST

START_TEST(every)
{
    /* Aligned to the epoch: 90 s periods start at multiples of 90 s. */
    NEXT_EQ("@every 90s", 1000 * SEC, 1080 * SEC);
    NEXT_EQ("@every 90s", 1080 * SEC, 1170 * SEC);
    NEXT_EQ("@every 90s", 1080 * SEC - 1, 1080 * SEC);
    NEXT_EQ("@every 1m30s", 1000 * SEC, 1080 * SEC);
    NEXT_EQ("@every 30s", at(2026, 3, 10, 10, 7, 31), at(2026, 3, 10, 10, 8, 0));
    NEXT_EQ("@every 5m", at(2026, 3, 10, 10, 7, 31), at(2026, 3, 10, 10, 10, 0));
    NEXT_EQ("@every 1h30m", at(2026, 3, 10, 10, 7, 31), at(2026, 3, 10, 10, 30, 0));
    NEXT_EQ("@every 1d", at(2026, 3, 10, 10, 7, 31), at(2026, 3, 11, 0, 0, 0));
    NEXT_EQ("@every 1s", 5 * SEC + 1, 6 * SEC);
    NEXT_EQ("@every 90s", -1, 0);
    NEXT_EQ("@every 90s", -90 * SEC - 1, -90 * SEC);
    NEXT_EQ("  @EVERY\t2H  ", 0, 7200 * SEC);

    bk__cron_t c = parse_ok("@every 90s");
    ck_assert_int_eq(c.kind, BK__CRON_EVERY);
    ck_assert(c.every_ns == 90 * SEC);
}
END_TEST

START_TEST(period_start)
{
    ck_assert(start_of("@every 90s", 1000 * SEC) == 990 * SEC);
    ck_assert(start_of("@every 90s", 1080 * SEC) == 1080 * SEC);
    ck_assert(start_of("@every 90s", 1080 * SEC - 1) == 990 * SEC);
    ck_assert(start_of("@every 90s", -1) == -90 * SEC);
    ck_assert(start_of("@every 90s", 0) == 0);
    /* Sunday noon: the last weekday 09:00 was Friday's. */
    ck_assert(start_of("0 9 * * mon-fri", at(2026, 12, 6, 12, 0, 0)) == at(2026, 12, 4, 9, 0, 0));
    ck_assert(start_of("0 9 * * mon-fri", at(2026, 12, 7, 9, 0, 0)) == at(2026, 12, 7, 9, 0, 0));
    ck_assert(start_of("0 9 * * mon-fri", at(2026, 12, 7, 9, 0, 0) - 1) == at(2026, 12, 4, 9, 0, 0));
    ck_assert(start_of("*/15 * * * *", at(2026, 3, 10, 10, 7, 30)) == at(2026, 3, 10, 10, 0, 0));
    ck_assert(start_of("*/15 * * * *", at(2026, 3, 10, 10, 0, 59)) == at(2026, 3, 10, 10, 0, 0));
    /* Backwards over a year boundary, and a leap day 8 years back. */
    ck_assert(start_of("0 0 * * *", at(2027, 1, 1, 0, 0, 0) - 1) == at(2026, 12, 31, 0, 0, 0));
    ck_assert(start_of("0 0 29 2 *", at(2104, 2, 28, 0, 0, 0)) == at(2096, 2, 29, 0, 0, 0));
    ck_assert(start_of("@yearly", at(2026, 5, 5, 0, 0, 0)) == at(2026, 1, 1, 0, 0, 0));
}
END_TEST

START_TEST(impossible)
{
    const char *specs[] = {"0 0 30 2 *", "0 0 31 4,6,9,11 *", "* * 30-31 2 *"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        bk__cron_t c = parse_ok(specs[i]);
        int64_t n = 42;
        ck_assert_int_eq(bk__cron_next(&c, at(2026, 1, 1, 0, 0, 0), &n), BK_ENOTFOUND);
        ck_assert_int_eq(bk__cron_period_start(&c, at(2026, 1, 1, 0, 0, 0), &n), BK_ENOTFOUND);
        ck_assert(n == 42);
    }
    /* The Vixie OR makes Feb 30 possible again: any Monday in February. */
    NEXT_EQ("0 0 30 2 mon", at(2026, 12, 2, 0, 0, 0), at(2027, 2, 1, 0, 0, 0));

    /* Beyond what an int64_t of ns holds (2262-04-11). */
    bk__cron_t c = parse_ok("* * * * *");
    int64_t n;
    ck_assert_int_eq(bk__cron_next(&c, INT64_MAX - 1, &n), BK_ENOTFOUND);
    ck_assert_int_eq(bk__cron_period_start(&c, INT64_MIN + 1, &n), BK_ENOTFOUND);
    ck_assert_int_eq(bk__cron_period_start(&c, INT64_MAX, &n), BK_OK);
    ck_assert(n > INT64_MAX - 60 * SEC && n % (60 * SEC) == 0);
    c = parse_ok("@every 1s");
    ck_assert_int_eq(bk__cron_next(&c, INT64_MAX, &n), BK_ENOTFOUND);
    ck_assert_int_eq(bk__cron_period_start(&c, INT64_MIN, &n), BK_ENOTFOUND);
    ck_assert_int_eq(bk__cron_next(NULL, 0, &n), BK_EINVAL);
    ck_assert_int_eq(bk__cron_next(&c, 0, NULL), BK_EINVAL);
}
END_TEST

/* Every refused input, with a word its message must contain (the field named). */
static const struct {
    const char *spec, *word;
} bad[] = {
    {"", "empty"},
    {" \t ", "empty"},
    {"* * * *", "day-of-week"},
    {"*", "hour"},
    {"* * * * * *", "trailing"},
    {"* * * * * junk", "trailing"},
    {"60 * * * *", "minute"},
    {"-1 * * * *", "minute"},
    {"99999999999999999999 * * * *", "minute"},
    {"* 24 * * *", "hour"},
    {"* * 0 * *", "day-of-month"},
    {"* * 32 * *", "day-of-month"},
    {"* * * 0 *", "month"},
    {"* * * 13 *", "month"},
    {"* * * * 8", "day-of-week"},
    {"*/0 * * * *", "step"},
    {"*/61 * * * *", "step"},
    {"*/ * * * *", "step"},
    {"*/99999999999999999 * * * *", "step"},
    {"1-5/0 * * * *", "step"},
    {"5/15 * * * *", "step"},
    {"*/5/2 * * * *", "minute"},
    {"5-1 * * * *", "reversed"},
    {"* * * * fri-mon", "reversed"},
    {"1-5-7 * * * *", "minute"},
    {"1, * * * *", "minute"},
    {",1 * * * *", "minute"},
    {"1,,2 * * * *", "minute"},
    {"* * * foo *", "month"},
    {"* * * janu *", "month"},
    {"* * * mon *", "month"},
    {"* * * * fr", "day-of-week"},
    {"* * * * jan", "day-of-week"},
    {"mon * * * *", "minute"},
    {"* * * * mon-", "day-of-week"},
    {"5x * * * *", "minute"},
    {"*5 * * * *", "minute"},
    {"** * * * *", "minute"},
    {"@often", "macro"},
    {"@", "macro"},
    {"@daily 0", "trailing"},
    {"@hourly *", "trailing"},
    {"@every", "@every"},
    {"@every ", "@every"},
    {"@every5m", "macro"},
    {"@every 0s", "shorter"},
    {"@every 0h0m0s", "shorter"},
    {"@every 5", "unit"},
    {"@every 5x", "unit"},
    {"@every 500ms", "@every"},
    {"@every 1h 30m", "@every"},
    {"@every h", "@every"},
    {"@every -5s", "@every"},
    {"@every 36501d", "longer"},
    {"@every 36500d1s", "longer"},
    {"@every 99999999999999999999999s", "longer"},
};

START_TEST(refused)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bk__cron_t c;
        memset(&c, 0x5a, sizeof c);
        bk__cron_t before = c;
        bk_error_t err;
        int rc = bk__cron_parse(bad[i].spec, strlen(bad[i].spec), &c, &err);
        ck_assert_msg(rc == BK_EINVAL, "\"%s\" accepted", bad[i].spec);
        ck_assert_int_eq(err.code, BK_EINVAL);
        ck_assert_msg(strstr(err.message, bad[i].word) != NULL, "\"%s\": \"%s\" lacks \"%s\"",
                      bad[i].spec, err.message, bad[i].word);
        ck_assert_msg(memcmp(&c, &before, sizeof c) == 0, "\"%s\": out written", bad[i].spec);
    }
    bk__cron_t c;
    bk_error_t err;
    /* A NUL inside: the length says where the string ends. */
    ck_assert_int_eq(bk__cron_parse("* * * * *\0x", 11, &c, &err), BK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "NUL"));
    ck_assert_int_eq(bk__cron_parse("* * * * *\0x", 9, &c, &err), BK_OK);
    /* Too long, even if only blanks make it so. */
    char big[BK__CRON_MAX_LEN + 2];
    memset(big, ' ', sizeof big);
    memcpy(big, "* * * * *", 9);
    ck_assert_int_eq(bk__cron_parse(big, BK__CRON_MAX_LEN, &c, &err), BK_OK);
    ck_assert_int_eq(bk__cron_parse(big, BK__CRON_MAX_LEN + 1, &c, &err), BK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "longer"));
    /* Bytes that are not UTF-8 are quoted in a message that still is. */
    ck_assert_int_eq(bk__cron_parse("\xff * * * *", 9, &c, &err), BK_EINVAL);
    ck_assert_int_eq(bk__cron_parse(NULL, 0, &c, &err), BK_EINVAL);
    ck_assert_int_eq(bk__cron_parse("* * * * *", 9, NULL, NULL), BK_EINVAL);
    /* err may be NULL. */
    ck_assert_int_eq(bk__cron_parse("60 * * * *", 10, &c, NULL), BK_EINVAL);
}
END_TEST

/* ---- the property test ---- */

static uint64_t rng = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int rnd_in(int lo, int hi)
{
    return lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
}

/* A random schedule, as a string and as the test's own sets. */
typedef struct gen {
    char spec[200];
    bool set[5][64];
    bool star[5];
} gen_t;

static const int gmin[5] = {0, 0, 1, 1, 0}, gmax[5] = {59, 23, 31, 12, 7};
static const char *const gmonths[] = {"jan", "FEB", "Mar", "apr", "MAY", "jun",
                                      "jul", "aug", "Sep", "oct", "nov", "DEC"};
static const char *const gdays[] = {"sun", "Mon", "tue", "WED", "thu", "fri", "sat"}; /* 7 has no name */

static void put_value(char *out, size_t n, int field, int v)
{
    size_t len = strlen(out);
    if (field == 3 && rnd() % 3 == 0)
        snprintf(out + len, n - len, "%s", gmonths[v - 1]);
    else if (field == 4 && v < 7 && rnd() % 3 == 0)
        snprintf(out + len, n - len, "%s", gdays[v]);
    else
        snprintf(out + len, n - len, "%d", v);
}

static void gen_field(gen_t *g, int f, char *out, size_t n)
{
    int lo = gmin[f], hi = gmax[f], items = rnd_in(1, 3);
    out[0] = '\0';
    for (int i = 0; i < items; i++) {
        int kind = rnd_in(0, 4), a = rnd_in(lo, hi), b = rnd_in(a, hi), step = 1;
        if (i > 0)
            strncat(out, ",", n - strlen(out) - 1);
        size_t len = strlen(out);
        switch (kind) {
        case 0: /* "*" */
            a = lo, b = hi;
            snprintf(out + len, n - len, "*");
            break;
        case 1: /* "*" "/" step */
            a = lo, b = hi, step = rnd_in(1, hi - lo + 1);
            snprintf(out + len, n - len, "*/%d", step);
            break;
        case 2: /* a */
            b = a;
            put_value(out, n, f, a);
            break;
        case 3: /* a-b */
        case 4: /* a-b/step */
            put_value(out, n, f, a);
            strncat(out, "-", n - strlen(out) - 1);
            put_value(out, n, f, b);
            if (kind == 4) {
                step = rnd_in(1, hi - lo + 1);
                len = strlen(out);
                snprintf(out + len, n - len, "/%d", step);
            }
            break;
        }
        if (i == 0)
            g->star[f] = kind <= 1;
        for (int v = a; v <= b; v += step)
            g->set[f][v] = true;
    }
}

static void gen_schedule(gen_t *g)
{
    memset(g, 0, sizeof *g);
    for (int f = 0; f < 5; f++) {
        char part[64];
        /* Mostly '*' in the slow fields, so that schedules fire often enough. */
        if (f >= 2 && rnd() % 2 == 0) {
            snprintf(part, sizeof part, "*");
            for (int v = gmin[f]; v <= gmax[f]; v++)
                g->set[f][v] = true;
            g->star[f] = true;
        } else {
            gen_field(g, f, part, sizeof part);
        }
        size_t len = strlen(g->spec);
        snprintf(g->spec + len, sizeof g->spec - len, "%s%s", f ? " " : "", part);
    }
}

static bool day_match(const gen_t *g, const struct tm *tm)
{
    bool dom = g->set[2][tm->tm_mday];
    bool dow = g->set[4][tm->tm_wday] || (tm->tm_wday == 0 && g->set[4][7]);
    if (!g->set[3][tm->tm_mon + 1])
        return false;
    return g->star[2] || g->star[4] ? dom && dow : dom || dow;
}

static bool minute_match(const gen_t *g, int64_t sec)
{
    time_t tt = (time_t)sec;
    struct tm tm;
    gmtime_r(&tt, &tm);
    return tm.tm_sec == 0 && g->set[0][tm.tm_min] && g->set[1][tm.tm_hour] && day_match(g, &tm);
}

/* The first matching minute in (after, limit] by brute force: minute by minute,
 * skipping days that cannot match as a whole. NONE when none. */
#define NONE INT64_MIN

static int64_t brute_next(const gen_t *g, int64_t after_sec, int64_t limit_sec)
{
    int64_t m = (after_sec >= 0 ? after_sec / 60 : (after_sec - 59) / 60) * 60 + 60;
    while (m <= limit_sec) {
        time_t tt = (time_t)m;
        struct tm tm;
        gmtime_r(&tt, &tm);
        if (!day_match(g, &tm)) {
            m += 86400 - (tm.tm_hour * 3600 + tm.tm_min * 60); /* the next midnight */
            continue;
        }
        if (minute_match(g, m))
            return m;
        m += 60;
    }
    return NONE;
}

START_TEST(property)
{
    for (int i = 0; i < 600; i++) {
        gen_t g;
        gen_schedule(&g);
        bk__cron_t c = parse_ok(g.spec);
        for (int k = 0; k < 4; k++) {
            /* 1901..2200, whole minutes a third of the time (the strictness edge). */
            int64_t t = (int64_t)(rnd() % UINT64_C(9400000000)) - INT64_C(2140000000);
            int64_t t_ns = t * SEC + (k == 0 ? 0 : (int64_t)(rnd() % (uint64_t)SEC));
            if (k == 1)
                t_ns = (t / 60) * 60 * SEC;
            int64_t t_sec = t_ns >= 0 ? t_ns / SEC : (t_ns - SEC + 1) / SEC;
            int64_t next = 0, start = 0;
            int rc = bk__cron_next(&c, t_ns, &next);
            /* The search's horizon: through the tenth year after t's, from the
             * tenth year before it. Minutes after the one holding t_sec are all
             * later than t_ns. */
            time_t tt = (time_t)t_sec;
            struct tm tm;
            gmtime_r(&tt, &tm);
            int64_t horizon = at(tm.tm_year + 1900 + 11, 1, 1, 0, 0, 0) / SEC - 1;
            int64_t back = at(tm.tm_year + 1900 - 10, 1, 1, 0, 0, 0) / SEC;
            int64_t want = brute_next(&g, t_sec, horizon);
            if (want == NONE) {
                ck_assert_msg(rc == BK_ENOTFOUND, "\"%s\" after %lld: %d, none by brute force", g.spec,
                              (long long)t_ns, rc);
                continue;
            }
            ck_assert_msg(rc == BK_OK, "\"%s\" after %lld: %d, brute force %lld", g.spec, (long long)t_ns,
                          rc, (long long)want);
            ck_assert_msg(next == want * SEC, "\"%s\" after %lld: %lld, brute force %lld", g.spec,
                          (long long)t_ns, (long long)next, (long long)want * SEC);
            ck_assert(next > t_ns);
            ck_assert(minute_match(&g, next / SEC));

            /* The period holding t started at a firing time <= t, and the next
             * one after it is the same: nothing fires in (start, t]. */
            rc = bk__cron_period_start(&c, t_ns, &start);
            if (rc == BK_ENOTFOUND) {
                ck_assert_msg(brute_next(&g, back - 1, t_sec) == NONE, "\"%s\" t %lld: no start", g.spec,
                              (long long)t_ns);
                continue;
            }
            ck_assert_int_eq(rc, BK_OK);
            ck_assert(start <= t_ns);
            ck_assert(minute_match(&g, start / SEC));
            int64_t again = 0;
            ck_assert_int_eq(bk__cron_next(&c, start, &again), BK_OK);
            ck_assert_msg(again == next, "\"%s\" t %lld start %lld", g.spec, (long long)t_ns, (long long)start);
            /* A firing time is its own period start, and not its own next. */
            ck_assert_int_eq(bk__cron_period_start(&c, next, &start), BK_OK);
            ck_assert(start == next);
            ck_assert_int_eq(bk__cron_next(&c, next - 1, &again), BK_OK);
            ck_assert(again == next);
        }
    }
}
END_TEST

START_TEST(property_every)
{
    for (int i = 0; i < 2000; i++) {
        char spec[64];
        int h = rnd_in(0, 30), m = rnd_in(0, 90), s = rnd_in(h == 0 && m == 0 ? 1 : 0, 100);
        snprintf(spec, sizeof spec, "@every %dh%dm%ds", h, m, s);
        int64_t p = ((int64_t)h * 3600 + m * 60 + s) * SEC;
        bk__cron_t c = parse_ok(spec);
        int64_t t = (int64_t)(rnd() >> 2) - (INT64_C(1) << 61), next, start;
        ck_assert_int_eq(bk__cron_next(&c, t, &next), BK_OK);
        ck_assert_int_eq(bk__cron_period_start(&c, t, &start), BK_OK);
        ck_assert(next > t && next - t <= p && next % p == 0);
        ck_assert(start <= t && t - start < p && start % p == 0);
        ck_assert(next - start == p);
    }
}
END_TEST

static Suite *cron_suite(void)
{
    Suite *s = suite_create("cron");
    TCase *tc = tcase_create("cron");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, vectors);
    tcase_add_test(tc, every);
    tcase_add_test(tc, period_start);
    tcase_add_test(tc, impossible);
    tcase_add_test(tc, refused);
    tcase_add_test(tc, property);
    tcase_add_test(tc, property_every);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(cron_suite());
}
