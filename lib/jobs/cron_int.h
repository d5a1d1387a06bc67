/* Schedules of periodic jobs: a cron line, a macro or an interval, compiled once
 * and asked for its next firing time. Internal: hidden, never part of the public API.
 *
 * Accepted forms (blanks are spaces and tabs; leading and trailing blanks allowed):
 *   - five cron fields "minute hour day-of-month month day-of-week", each a list
 *     of items "N", "A-B" and "*", the last two optionally followed by a step
 *     "/S" (so "A/S" is refused: a step needs a range); months
 *     jan..dec and weekdays sun..sat by name too (case-insensitive); 0 and 7 are
 *     Sunday. As in Vixie cron, when both day fields are restricted (neither
 *     starts with '*'), a day matching EITHER fires; otherwise it must match both.
 *   - @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly.
 *   - "@every D": D a sum of <digits><unit>, units d, h, m, s ("1h30m"), at least
 *     1 s and at most 36500 d. Periods are aligned to the Unix epoch, so every
 *     process computes the same boundaries (the periodic enqueue's unique key is
 *     kind + period start).
 * Schedules are UTC: no time zone, no DST question. Firing times are whole
 * seconds (a cron line fires at second 0 of its minute).
 *
 * A compiled schedule is a plain value: no allocation, nothing to free; reading
 * it is thread-safe.
 * SPDX-License-Identifier: MIT */
#ifndef BK_CRON_INT_H
#define BK_CRON_INT_H

#include <stddef.h>
#include <stdint.h>

#include <backend/core.h>

#if defined(__GNUC__)
#define BK__CRON_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__CRON_HIDDEN
#endif

/* The longest schedule string accepted, in bytes. */
#define BK__CRON_MAX_LEN 256

typedef enum { BK__CRON_FIELDS = 1, BK__CRON_EVERY = 2 } bk__cron_kind_t;

typedef struct bk__cron {
    bk__cron_kind_t kind;
    /* BK__CRON_FIELDS: bit i set when value i is in the field. */
    uint64_t minute; /* 0..59 */
    uint32_t hour;   /* 0..23 */
    uint32_t dom;    /* 1..31 */
    uint16_t month;  /* 1..12 */
    uint8_t dow;     /* 0..6, Sunday 0 (7 is folded into 0) */
    int dom_star;    /* the field started with '*': unrestricted for the OR rule */
    int dow_star;
    /* BK__CRON_EVERY: the period, a whole number of seconds, in ns. */
    int64_t every_ns;
} bk__cron_t;

/*
 * Compiles spec[0..len) into *out. BK_EINVAL (err says which field and what is
 * wrong) for an empty or too long string, a NUL inside, a value out of range, a
 * step of 0 or larger than the field, a reversed range, an unknown name or
 * macro, a wrong number of fields, trailing junk, an interval under 1 s.
 * *out is untouched on failure.
 */
BK__CRON_HIDDEN int bk__cron_parse(const char *spec, size_t len, bk__cron_t *out, bk_error_t *err);

/*
 * The first firing time strictly after after_wall_ns (ns since the epoch, UTC)
 * into *next_wall_ns. BK_ENOTFOUND when there is none through the tenth calendar
 * year after after_wall_ns's (an impossible schedule such as Feb 30; a rare one
 * such as a Sunday Feb 29, every 28 years or so; 10 because a plain Feb 29 can be
 * 8 years apart, around 2100), or none an int64_t of ns can hold (after
 * 2262-04-11). Skips by month, day and hour, so it costs a few thousand steps at
 * most.
 */
BK__CRON_HIDDEN int bk__cron_next(const bk__cron_t *sched, int64_t after_wall_ns, int64_t *next_wall_ns);

/*
 * The last firing time at or before wall_ns into *start_wall_ns: the start of the
 * period wall_ns lies in, the same in every process. BK_ENOTFOUND as for
 * bk__cron_next (searching back through the tenth year before wall_ns's).
 */
BK__CRON_HIDDEN int bk__cron_period_start(const bk__cron_t *sched, int64_t wall_ns, int64_t *start_wall_ns);

#endif
