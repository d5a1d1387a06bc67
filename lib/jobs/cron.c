/* Schedules of periodic jobs: parsing a cron line, a macro or "@every", and the
 * search for the next (or last) firing time. Semantics after Vixie cron (names,
 * 7 as Sunday, the day-of-month/day-of-week OR rule) and robfig/cron ("@every").
 * SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <string.h>

#include "core/error_int.h"
#include "jobs/cron_int.h"

#define NS_PER_SEC INT64_C(1000000000)
#define NS_PER_MIN (60 * NS_PER_SEC)
/* How many calendar years a search goes before it calls a schedule impossible:
 * a plain Feb 29 can be 8 years apart (2096 to 2104). */
#define HORIZON_YEARS 10
#define EVERY_MAX_SEC (INT64_C(36500) * 86400)

/* ---- parsing ---- */

typedef struct field {
    const char *name;
    int min, max;
    const char *const *names; /* names[i] is value names_base + i, or NULL */
    int names_base;
} field_t;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

static const field_t fields[F_COUNT] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},
    {"month", 1, 12, month_names, 1},
    {"day-of-week", 0, 7, dow_names, 0},
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    c = lower(c);
    return c >= 'a' && c <= 'z';
}

/* A number or (in month and day-of-week) a name at *p, within [f->min, f->max]. */
static int parse_value(const field_t *f, const char **p, const char *end, int *out, bk_error_t *err)
{
    const char *s = *p;
    if (s < end && is_digit(*s)) {
        long v = 0;
        while (s < end && is_digit(*s)) {
            if (v <= 100000)
                v = v * 10 + (*s - '0'); /* past that it is out of range anyway */
            s++;
        }
        if (v < f->min || v > f->max)
            return bk__error(err, BK_EINVAL, "schedule: %s: %ld is out of range %d-%d", f->name, v,
                             f->min, f->max);
        *out = (int)v;
        *p = s;
        return BK_OK;
    }
    if (s < end && is_alpha(*s)) {
        const char *w = s;
        while (s < end && is_alpha(*s))
            s++;
        size_t n = (size_t)(s - w);
        if (f->names != NULL && n == 3) {
            for (int i = 0; f->names[i] != NULL; i++) {
                if (lower(w[0]) == f->names[i][0] && lower(w[1]) == f->names[i][1] &&
                    lower(w[2]) == f->names[i][2]) {
                    *out = f->names_base + i;
                    *p = s;
                    return BK_OK;
                }
            }
        }
        return bk__error(err, BK_EINVAL, "schedule: %s: unknown name \"%.*s\"", f->name,
                         (int)(n > 32 ? 32 : n), w);
    }
    if (s == end)
        return bk__error(err, BK_EINVAL, "schedule: %s: a value is missing", f->name);
    return bk__error(err, BK_EINVAL, "schedule: %s: unexpected '%c'", f->name, *s);
}

/* One field s[0..end): items separated by commas, into the bit set *bits. */
static int parse_field(const field_t *f, const char *s, const char *end, uint64_t *bits, bk_error_t *err)
{
    uint64_t set = 0;
    for (;;) {
        int lo, hi, step = 1, rc;
        bool ranged;
        if (s < end && *s == '*') {
            lo = f->min;
            hi = f->max;
            s++;
            ranged = true;
        } else {
            if ((rc = parse_value(f, &s, end, &lo, err)) != BK_OK)
                return rc;
            hi = lo;
            ranged = false;
            if (s < end && *s == '-') {
                s++;
                if ((rc = parse_value(f, &s, end, &hi, err)) != BK_OK)
                    return rc;
                if (hi < lo)
                    return bk__error(err, BK_EINVAL, "schedule: %s: range %d-%d is reversed", f->name,
                                     lo, hi);
                ranged = true;
            }
        }
        if (s < end && *s == '/') {
            if (!ranged)
                return bk__error(err, BK_EINVAL, "schedule: %s: a step needs a range or '*' before it",
                                 f->name);
            s++;
            if (s == end || !is_digit(*s))
                return bk__error(err, BK_EINVAL, "schedule: %s: the step is not a number", f->name);
            long v = 0;
            while (s < end && is_digit(*s)) {
                if (v <= 100000)
                    v = v * 10 + (*s - '0');
                s++;
            }
            if (v < 1 || v > f->max - f->min + 1)
                return bk__error(err, BK_EINVAL, "schedule: %s: step %ld is out of range 1-%d", f->name,
                                 v, f->max - f->min + 1);
            step = (int)v;
        }
        for (int v = lo; v <= hi; v += step)
            set |= UINT64_C(1) << v;
        if (s == end)
            break;
        if (*s != ',')
            return bk__error(err, BK_EINVAL, "schedule: %s: unexpected '%c'", f->name, *s);
        s++;
        if (s == end)
            return bk__error(err, BK_EINVAL, "schedule: %s: nothing after ','", f->name);
    }
    *bits = set;
    return BK_OK;
}

static int parse_fields(const char *s, const char *end, bk__cron_t *c, bk_error_t *err)
{
    uint64_t bits[F_COUNT];
    for (int i = 0; i < F_COUNT; i++) {
        while (s < end && is_blank(*s))
            s++;
        if (s == end)
            return bk__error(err, BK_EINVAL, "schedule: %d fields where a cron line has 5 (the %s is missing)",
                             i, fields[i].name);
        const char *tok = s;
        while (s < end && !is_blank(*s))
            s++;
        if (i == F_DOM)
            c->dom_star = *tok == '*';
        if (i == F_DOW)
            c->dow_star = *tok == '*';
        int rc = parse_field(&fields[i], tok, s, &bits[i], err);
        if (rc != BK_OK)
            return rc;
    }
    while (s < end && is_blank(*s))
        s++;
    if (s != end)
        return bk__error(err, BK_EINVAL, "schedule: trailing junk after the day-of-week field");
    if (bits[F_DOW] & (UINT64_C(1) << 7))
        bits[F_DOW] = (bits[F_DOW] | 1) & 0x7f; /* 7 is Sunday too */
    c->kind = BK__CRON_FIELDS;
    c->minute = bits[F_MINUTE];
    c->hour = (uint32_t)bits[F_HOUR];
    c->dom = (uint32_t)bits[F_DOM];
    c->month = (uint16_t)bits[F_MONTH];
    c->dow = (uint8_t)bits[F_DOW];
    return BK_OK;
}

/* "1h30m": a sum of <digits><unit>, into seconds. */
static int parse_every(const char *s, const char *end, bk__cron_t *c, bk_error_t *err)
{
    if (s == end)
        return bk__error(err, BK_EINVAL, "schedule: @every: the duration is missing");
    int64_t total = 0;
    while (s < end) {
        if (!is_digit(*s))
            return bk__error(err, BK_EINVAL, "schedule: @every: expected a number, not '%c'", *s);
        int64_t v = 0;
        while (s < end && is_digit(*s)) {
            if (v <= EVERY_MAX_SEC)
                v = v * 10 + (*s - '0'); /* past that it is too long anyway */
            s++;
        }
        int64_t unit;
        switch (s < end ? lower(*s) : '\0') {
        case 'd': unit = 86400; break;
        case 'h': unit = 3600; break;
        case 'm': unit = 60; break;
        case 's': unit = 1; break;
        case '\0': return bk__error(err, BK_EINVAL, "schedule: @every: a unit (d, h, m, s) is missing");
        default: return bk__error(err, BK_EINVAL, "schedule: @every: unknown unit '%c'", *s);
        }
        s++;
        if (v > EVERY_MAX_SEC / unit || total + v * unit > EVERY_MAX_SEC)
            return bk__error(err, BK_EINVAL, "schedule: @every: the interval is longer than 36500d");
        total += v * unit;
    }
    if (total < 1)
        return bk__error(err, BK_EINVAL, "schedule: @every: the interval is shorter than 1s");
    c->kind = BK__CRON_EVERY;
    c->every_ns = total * NS_PER_SEC;
    return BK_OK;
}

static const struct {
    const char *name, *line;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static bool word_is(const char *w, size_t n, const char *name)
{
    if (strlen(name) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(w[i]) != name[i])
            return false;
    return true;
}

int bk__cron_parse(const char *spec, size_t len, bk__cron_t *out, bk_error_t *err)
{
    bk__error_clear(err);
    if (spec == NULL || out == NULL)
        return bk__error(err, BK_EINVAL, "schedule: NULL argument");
    if (len > BK__CRON_MAX_LEN)
        return bk__error(err, BK_EINVAL, "schedule: longer than %d bytes", BK__CRON_MAX_LEN);
    if (memchr(spec, '\0', len) != NULL)
        return bk__error(err, BK_EINVAL, "schedule: a NUL byte inside");
    const char *s = spec, *end = spec + len;
    while (s < end && is_blank(*s))
        s++;
    while (end > s && is_blank(end[-1]))
        end--;
    if (s == end)
        return bk__error(err, BK_EINVAL, "schedule: empty");

    bk__cron_t c;
    memset(&c, 0, sizeof c);
    int rc;
    if (*s == '@') {
        const char *w = s;
        while (s < end && !is_blank(*s))
            s++;
        size_t n = (size_t)(s - w);
        if (word_is(w, n, "@every")) {
            while (s < end && is_blank(*s))
                s++;
            rc = parse_every(s, end, &c, err);
        } else {
            size_t i;
            for (i = 0; i < sizeof macros / sizeof macros[0]; i++)
                if (word_is(w, n, macros[i].name))
                    break;
            if (i == sizeof macros / sizeof macros[0])
                return bk__error(err, BK_EINVAL, "schedule: unknown macro \"%.*s\"", (int)(n > 32 ? 32 : n), w);
            if (s != end)
                return bk__error(err, BK_EINVAL, "schedule: trailing junk after %s", macros[i].name);
            rc = parse_fields(macros[i].line, macros[i].line + strlen(macros[i].line), &c, err);
        }
    } else {
        rc = parse_fields(s, end, &c, err);
    }
    if (rc == BK_OK)
        *out = c;
    return rc;
}

/* ---- civil time (proleptic Gregorian, UTC), after H. Hinnant's days_from_civil ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* ---- the search ---- */

typedef struct tm_utc {
    int64_t year;
    int month, day, hour, minute;
} tm_utc_t;

/* Each move goes to the first (dir > 0) or last (dir < 0) minute of the next or
 * previous unit, carrying into the larger units. */
static void move_month(tm_utc_t *t, int dir)
{
    t->month += dir;
    if (t->month > 12) {
        t->month = 1;
        t->year++;
    } else if (t->month < 1) {
        t->month = 12;
        t->year--;
    }
    t->day = dir > 0 ? 1 : days_in_month(t->year, t->month);
    t->hour = dir > 0 ? 0 : 23;
    t->minute = dir > 0 ? 0 : 59;
}

static void move_day(tm_utc_t *t, int dir)
{
    t->day += dir;
    if (t->day > days_in_month(t->year, t->month) || t->day < 1) {
        move_month(t, dir);
        return;
    }
    t->hour = dir > 0 ? 0 : 23;
    t->minute = dir > 0 ? 0 : 59;
}

static void move_hour(tm_utc_t *t, int dir)
{
    t->hour += dir;
    if (t->hour > 23 || t->hour < 0) {
        move_day(t, dir);
        return;
    }
    t->minute = dir > 0 ? 0 : 59;
}

static void move_minute(tm_utc_t *t, int dir)
{
    t->minute += dir;
    if (t->minute > 59 || t->minute < 0)
        move_hour(t, dir);
}

static bool day_matches(const bk__cron_t *c, const tm_utc_t *t)
{
    int64_t days = days_from_civil(t->year, t->month, t->day);
    int wd = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    bool dom = (c->dom >> t->day) & 1, dow = (c->dow >> wd) & 1;
    /* Vixie: both restricted, either fires; otherwise both must hold (the '*'
     * one always does). */
    return c->dom_star || c->dow_star ? dom && dow : dom || dow;
}

/* The nearest matching minute from the minute starting at start_min (minutes
 * since the epoch) in direction dir, that minute included. */
static int search(const bk__cron_t *c, int64_t start_min, int dir, int64_t *out_ns)
{
    tm_utc_t t;
    int64_t days = floor_div(start_min, 1440);
    int rem = (int)(start_min - days * 1440);
    civil_from_days(days, &t.year, &t.month, &t.day);
    t.hour = rem / 60;
    t.minute = rem % 60;
    const int64_t first_year = t.year;
    for (;;) {
        if ((t.year - first_year) * dir > HORIZON_YEARS)
            return BK_ENOTFOUND;
        if (!((c->month >> t.month) & 1))
            move_month(&t, dir);
        else if (!day_matches(c, &t))
            move_day(&t, dir);
        else if (!((c->hour >> t.hour) & 1))
            move_hour(&t, dir);
        else if (!((c->minute >> t.minute) & 1))
            move_minute(&t, dir);
        else
            break;
    }
    int64_t min = days_from_civil(t.year, t.month, t.day) * 1440 + t.hour * 60 + t.minute;
    if (min > INT64_MAX / NS_PER_MIN || min < INT64_MIN / NS_PER_MIN)
        return BK_ENOTFOUND; /* beyond what an int64_t of ns holds (years 1677..2262) */
    *out_ns = min * NS_PER_MIN;
    return BK_OK;
}

int bk__cron_next(const bk__cron_t *sched, int64_t after_wall_ns, int64_t *next_wall_ns)
{
    if (sched == NULL || next_wall_ns == NULL)
        return BK_EINVAL;
    if (sched->kind == BK__CRON_EVERY) {
        int64_t p = sched->every_ns, start = floor_div(after_wall_ns, p);
        if (start > INT64_MAX / p - 1)
            return BK_ENOTFOUND;
        *next_wall_ns = (start + 1) * p;
        return BK_OK;
    }
    if (sched->kind != BK__CRON_FIELDS)
        return BK_EINVAL;
    /* The minute after the one after_wall_ns lies in: its second 0 is the first
     * whole minute strictly later. */
    return search(sched, floor_div(after_wall_ns, NS_PER_MIN) + 1, 1, next_wall_ns);
}

int bk__cron_period_start(const bk__cron_t *sched, int64_t wall_ns, int64_t *start_wall_ns)
{
    if (sched == NULL || start_wall_ns == NULL)
        return BK_EINVAL;
    if (sched->kind == BK__CRON_EVERY) {
        int64_t p = sched->every_ns, start = floor_div(wall_ns, p);
        if (start < INT64_MIN / p)
            return BK_ENOTFOUND;
        *start_wall_ns = start * p;
        return BK_OK;
    }
    if (sched->kind != BK__CRON_FIELDS)
        return BK_EINVAL;
    /* The minute wall_ns lies in: its second 0 is at or before wall_ns. */
    return search(sched, floor_div(wall_ns, NS_PER_MIN), -1, start_wall_ns);
}
