/* Circuit breaker, retry, retry budget, bulkhead and GCRA rate limiter: every
 * time-dependent case on the fake clock, plus an 8-thread stress with invariants.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include <backend/resilience.h>

#include "check_main.h"
#include "gate.h"

#define MS BK_NSEC_PER_MSEC
#define SEC BK_NSEC_PER_SEC

static bk_clock_t *clk;

static void setup(void)
{
    ck_assert_int_eq(bk_clock_fake_new(1700000000 * SEC, &clk), BK_OK);
    gate_reset();
}

static void teardown(void)
{
    gate_release();
    bk_clock_free(clk);
    clk = NULL;
}

/* ------------------------------------------------------------------ breaker */
struct transitions {
    int n;
    bk_breaker_state_t from[16], to[16];
};

static void on_change(bk_breaker_t *b, bk_breaker_state_t from, bk_breaker_state_t to, void *ud)
{
    (void)b;
    struct transitions *t = ud;
    if (t->n < 16) {
        t->from[t->n] = from;
        t->to[t->n] = to;
    }
    t->n++;
}

static bk_breaker_t *breaker(struct transitions *t, void (*tune)(bk_breaker_opts_t *))
{
    bk_breaker_opts_t o;
    bk_breaker_opts_init(&o);
    o.window_size = 10;
    o.min_calls = 5;
    o.failure_threshold = 0.5;
    o.open_ns = 1 * SEC;
    o.half_open_calls = 2;
    o.clock = clk;
    o.on_state_change = t ? on_change : NULL;
    o.ud = t;
    if (tune)
        tune(&o);
    bk_breaker_t *b;
    ck_assert_int_eq(bk_breaker_new(&o, &b), BK_OK);
    return b;
}

static void call(bk_breaker_t *b, bk_outcome_t outcome, int64_t dur)
{
    bk_breaker_permit_t p;
    ck_assert_int_eq(bk_breaker_acquire(b, &p), BK_OK);
    bk_breaker_record(b, &p, outcome, dur);
}

START_TEST(breaker_trips_on_failure_rate_after_min_calls)
{
    struct transitions t = {0};
    bk_breaker_t *b = breaker(&t, NULL);
    for (int i = 0; i < 4; i++)
        call(b, BK_OUTCOME_FAILURE, MS); /* 100% failures, but under min_calls */
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_CLOSED);
    call(b, BK_OUTCOME_SUCCESS, MS); /* 5 calls, 4 failures: 80% >= 50% */
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_OPEN);
    ck_assert_int_eq(t.n, 1);
    ck_assert_int_eq(t.from[0], BK_BREAKER_CLOSED);
    ck_assert_int_eq(t.to[0], BK_BREAKER_OPEN);
    bk_breaker_permit_t p;
    ck_assert_int_eq(bk_breaker_acquire(b, &p), BK_EUNAVAIL);
    bk_breaker_free(b);
}
END_TEST

START_TEST(breaker_rate_below_threshold_stays_closed)
{
    bk_breaker_t *b = breaker(NULL, NULL);
    /* Failures at 2, 5, 7, 9 of every 10: every window of 5..10 calls is under 50%. */
    for (int i = 0; i < 100; i++) {
        int k = i % 10;
        call(b, k == 2 || k == 5 || k == 7 || k == 9 ? BK_OUTCOME_FAILURE : BK_OUTCOME_SUCCESS, MS);
    }
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_CLOSED);
    /* Ignored outcomes do not count either way. */
    for (int i = 0; i < 50; i++)
        call(b, BK_OUTCOME_IGNORED, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_CLOSED);
    bk_breaker_free(b);
}
END_TEST

static void grow(bk_breaker_opts_t *o)
{
    o->open_multiplier = 2;
    o->open_max_ns = 3 * SEC;
}

static void trip(bk_breaker_t *b)
{
    for (int i = 0; i < 5; i++)
        call(b, BK_OUTCOME_FAILURE, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_OPEN);
}

START_TEST(breaker_open_half_open_close_and_growing_wait)
{
    struct transitions t = {0};
    bk_breaker_t *b = breaker(&t, grow);
    bk_breaker_permit_t p1, p2, p3;
    trip(b);
    bk_clock_fake_advance(clk, SEC - 1);
    ck_assert_int_eq(bk_breaker_acquire(b, &p1), BK_EUNAVAIL);
    bk_clock_fake_advance(clk, 1); /* the wait is over: trials */
    ck_assert_int_eq(bk_breaker_acquire(b, &p1), BK_OK);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_HALF_OPEN);
    ck_assert_int_eq(bk_breaker_acquire(b, &p2), BK_OK);
    ck_assert_int_eq(bk_breaker_acquire(b, &p3), BK_EUNAVAIL); /* only 2 trials */
    bk_breaker_record(b, &p1, BK_OUTCOME_SUCCESS, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_HALF_OPEN);
    bk_breaker_record(b, &p2, BK_OUTCOME_FAILURE, MS); /* 1 of 2 failed: 50% reopens */
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_OPEN);

    /* Second trip in a row: the wait doubles to 2 s. */
    bk_clock_fake_advance(clk, 2 * SEC - 1);
    ck_assert_int_eq(bk_breaker_acquire(b, &p1), BK_EUNAVAIL);
    bk_clock_fake_advance(clk, 1);
    ck_assert_int_eq(bk_breaker_acquire(b, &p1), BK_OK);
    ck_assert_int_eq(bk_breaker_acquire(b, &p2), BK_OK);
    bk_breaker_permit_t q;
    ck_assert_int_eq(bk_breaker_acquire(b, &q), BK_EUNAVAIL);
    bk_breaker_record(b, &p1, BK_OUTCOME_FAILURE, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_HALF_OPEN); /* a trial still out */
    bk_breaker_record(b, &p2, BK_OUTCOME_FAILURE, MS);
    /* Third trip in a row: 4 s, capped at 3 s. */
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_OPEN);
    bk_clock_fake_advance(clk, 3 * SEC - 1);
    ck_assert_int_eq(bk_breaker_acquire(b, &q), BK_EUNAVAIL);
    bk_clock_fake_advance(clk, 1);
    ck_assert_int_eq(bk_breaker_acquire(b, &p1), BK_OK);
    ck_assert_int_eq(bk_breaker_acquire(b, &p2), BK_OK);
    bk_breaker_record(b, &p1, BK_OUTCOME_SUCCESS, MS);
    bk_breaker_record(b, &p2, BK_OUTCOME_SUCCESS, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_CLOSED);

    /* Closed again with an empty window and the wait reset to 1 s. */
    for (int i = 0; i < 4; i++)
        call(b, BK_OUTCOME_FAILURE, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_CLOSED);
    call(b, BK_OUTCOME_FAILURE, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_OPEN);
    bk_clock_fake_advance(clk, SEC);
    ck_assert_int_eq(bk_breaker_acquire(b, &p1), BK_OK);

    static const bk_breaker_state_t want[][2] = {
        {BK_BREAKER_CLOSED, BK_BREAKER_OPEN},      {BK_BREAKER_OPEN, BK_BREAKER_HALF_OPEN},
        {BK_BREAKER_HALF_OPEN, BK_BREAKER_OPEN},   {BK_BREAKER_OPEN, BK_BREAKER_HALF_OPEN},
        {BK_BREAKER_HALF_OPEN, BK_BREAKER_OPEN},   {BK_BREAKER_OPEN, BK_BREAKER_HALF_OPEN},
        {BK_BREAKER_HALF_OPEN, BK_BREAKER_CLOSED}, {BK_BREAKER_CLOSED, BK_BREAKER_OPEN},
        {BK_BREAKER_OPEN, BK_BREAKER_HALF_OPEN},
    };
    ck_assert_int_eq(t.n, 9);
    for (int i = 0; i < 9; i++) {
        ck_assert_int_eq(t.from[i], want[i][0]);
        ck_assert_int_eq(t.to[i], want[i][1]);
    }
    bk_breaker_free(b);
}
END_TEST

static void slow_tune(bk_breaker_opts_t *o)
{
    o->slow_call_ns = 100 * MS;
    o->slow_threshold = 0.6;
}

START_TEST(breaker_trips_on_slow_calls)
{
    bk_breaker_t *b = breaker(NULL, slow_tune);
    for (int i = 0; i < 10; i++) /* 5 of 10 slow: 50% < 60% */
        call(b, BK_OUTCOME_SUCCESS, i % 2 ? 100 * MS : 99 * MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_CLOSED);
    call(b, BK_OUTCOME_SUCCESS, 150 * MS); /* drops a fast one: 6 of 10 */
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_OPEN);
    bk_breaker_free(b);
}
END_TEST

struct trial_arg {
    bk_breaker_t *b;
    pthread_barrier_t *start;
    atomic_int *admitted;
};

static void *trial_thread(void *arg)
{
    struct trial_arg *a = arg;
    pthread_barrier_wait(a->start);
    bk_breaker_permit_t p;
    if (bk_breaker_acquire(a->b, &p) == BK_OK)
        atomic_fetch_add(a->admitted, 1);
    return NULL;
}

START_TEST(breaker_half_open_admits_exactly_the_trials_under_concurrency)
{
    for (int round = 0; round < 50; round++) {
        bk_breaker_t *b = breaker(NULL, NULL);
        trip(b);
        bk_clock_fake_advance(clk, SEC);
        enum { N = 8 };
        pthread_t th[N];
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, N);
        atomic_int admitted = 0;
        struct trial_arg a = {b, &start, &admitted};
        for (int i = 0; i < N; i++)
            pthread_create(&th[i], NULL, trial_thread, &a);
        for (int i = 0; i < N; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);
        ck_assert_int_eq(atomic_load(&admitted), 2); /* half_open_calls, never a herd */
        ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_HALF_OPEN);
        bk_breaker_free(b);
    }
}
END_TEST

START_TEST(breaker_stale_permits_do_not_count)
{
    bk_breaker_t *b = breaker(NULL, NULL);
    bk_breaker_permit_t old[5];
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(bk_breaker_acquire(b, &old[i]), BK_OK);
    trip(b); /* the breaker moved on while those calls were out */
    bk_clock_fake_advance(clk, SEC);
    bk_breaker_permit_t t1;
    ck_assert_int_eq(bk_breaker_acquire(b, &t1), BK_OK);
    for (int i = 0; i < 5; i++) /* late answers from the closed period */
        bk_breaker_record(b, &old[i], BK_OUTCOME_SUCCESS, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_HALF_OPEN); /* not taken as trials */
    /* An ignored trial gives its slot back. */
    bk_breaker_permit_t t2, t3;
    ck_assert_int_eq(bk_breaker_acquire(b, &t2), BK_OK);
    ck_assert_int_eq(bk_breaker_acquire(b, &t3), BK_EUNAVAIL);
    bk_breaker_record(b, &t2, BK_OUTCOME_IGNORED, MS);
    ck_assert_int_eq(bk_breaker_acquire(b, &t3), BK_OK);
    bk_breaker_record(b, &t1, BK_OUTCOME_SUCCESS, MS);
    bk_breaker_record(b, &t3, BK_OUTCOME_SUCCESS, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_CLOSED);
    /* A half-open permit recorded after the close is stale too. */
    bk_breaker_record(b, &t2, BK_OUTCOME_FAILURE, MS);
    for (int i = 0; i < 4; i++)
        call(b, BK_OUTCOME_FAILURE, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_CLOSED); /* 4 calls, not 5 */
    bk_breaker_free(b);
}
END_TEST

START_TEST(breaker_lost_trials_expire_and_refused_permits_count_nothing)
{
    bk_breaker_t *b = breaker(NULL, NULL);
    trip(b);
    bk_clock_fake_advance(clk, SEC);
    bk_breaker_permit_t lost1, lost2, p;
    ck_assert_int_eq(bk_breaker_acquire(b, &lost1), BK_OK);
    ck_assert_int_eq(bk_breaker_acquire(b, &lost2), BK_OK); /* never recorded */
    ck_assert_int_eq(bk_breaker_acquire(b, &p), BK_EUNAVAIL);
    bk_breaker_record(b, &p, BK_OUTCOME_SUCCESS, MS); /* a refused permit: nothing */
    bk_breaker_record(b, &p, BK_OUTCOME_SUCCESS, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_HALF_OPEN);
    bk_clock_fake_advance(clk, SEC - 1);
    ck_assert_int_eq(bk_breaker_acquire(b, &p), BK_EUNAVAIL);
    bk_clock_fake_advance(clk, 1); /* open_ns later: a new set of trials */
    bk_breaker_permit_t t1, t2;
    ck_assert_int_eq(bk_breaker_acquire(b, &t1), BK_OK);
    ck_assert_int_eq(bk_breaker_acquire(b, &t2), BK_OK);
    bk_breaker_record(b, &lost1, BK_OUTCOME_FAILURE, MS); /* stale now */
    bk_breaker_record(b, &lost2, BK_OUTCOME_FAILURE, MS);
    bk_breaker_record(b, &t1, BK_OUTCOME_SUCCESS, MS);
    bk_breaker_record(b, &t2, BK_OUTCOME_SUCCESS, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_CLOSED);
    bk_breaker_free(b);

    bk_breaker_opts_t o;
    bk_breaker_opts_init(&o);
    o.window_size = 10;
    o.min_calls = 11; /* a count window of 10 never holds 11 calls */
    ck_assert_int_eq(bk_breaker_new(&o, &b), BK_EINVAL);
}
END_TEST

static void time_window(bk_breaker_opts_t *o)
{
    o->window = BK_WINDOW_TIME;
    o->window_size = 10; /* seconds */
    o->min_calls = 4;
}

START_TEST(breaker_time_window_forgets_old_calls)
{
    bk_breaker_t *b = breaker(NULL, time_window);
    call(b, BK_OUTCOME_FAILURE, MS);
    call(b, BK_OUTCOME_FAILURE, MS);
    call(b, BK_OUTCOME_FAILURE, MS);
    bk_clock_fake_advance(clk, 10 * SEC); /* those three leave the window */
    call(b, BK_OUTCOME_FAILURE, MS);
    call(b, BK_OUTCOME_FAILURE, MS);
    call(b, BK_OUTCOME_FAILURE, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_CLOSED);
    bk_clock_fake_advance(clk, 9 * SEC); /* still inside: 4 of 4 */
    call(b, BK_OUTCOME_FAILURE, MS);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_OPEN);
    bk_breaker_free(b);
}
END_TEST

START_TEST(breaker_operator_states_and_metrics)
{
    bk_metrics_t *reg;
    ck_assert_int_eq(bk_metrics_new(&reg), BK_OK);
    bk_breaker_opts_t o;
    bk_breaker_opts_init(&o);
    o.name = "payments";
    o.metrics = reg;
    o.clock = clk;
    o.min_calls = 1;
    bk_breaker_t *b;
    ck_assert_int_eq(bk_breaker_new(&o, &b), BK_OK);
    bk_breaker_permit_t p;
    call(b, BK_OUTCOME_SUCCESS, 11 * SEC); /* slow (default 10 s), not failed */
    ck_assert_int_eq(bk_breaker_force(b, BK_BREAKER_FORCED_OPEN), BK_OK);
    ck_assert_int_eq(bk_breaker_acquire(b, &p), BK_EUNAVAIL);
    ck_assert_int_eq(bk_breaker_force(b, BK_BREAKER_DISABLED), BK_OK);
    for (int i = 0; i < 3; i++)
        call(b, BK_OUTCOME_FAILURE, MS); /* counted, but nothing trips */
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_DISABLED);
    ck_assert_int_eq(bk_breaker_force(b, BK_BREAKER_HALF_OPEN), BK_EINVAL);
    ck_assert_int_eq(bk_breaker_force(b, BK_BREAKER_CLOSED), BK_OK);
    call(b, BK_OUTCOME_FAILURE, MS); /* min_calls 1: trips */
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_OPEN);
    char *text;
    ck_assert_int_eq(bk_metrics_render(reg, &text, NULL), BK_OK);
    const char *want[] = {
        "breaker_state{name=\"payments\"} 1\n",
        "breaker_calls_total{name=\"payments\",outcome=\"success\"} 1\n",
        "breaker_calls_total{name=\"payments\",outcome=\"failure\"} 4\n",
        "breaker_calls_total{name=\"payments\",outcome=\"slow\"} 1\n",
        "breaker_calls_total{name=\"payments\",outcome=\"rejected\"} 1\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(text, want[i]) != NULL, "missing %s in\n%s", want[i], text);
    free(text);
    ck_assert_str_eq(bk_breaker_state_name(BK_BREAKER_HALF_OPEN), "half_open");
    bk_breaker_free(b);
    bk_metrics_free(reg);

    bk_breaker_opts_init(&o);
    o.failure_threshold = 0;
    ck_assert_int_eq(bk_breaker_new(&o, &b), BK_EINVAL);
    bk_breaker_opts_init(&o);
    o.open_multiplier = 0.5;
    ck_assert_int_eq(bk_breaker_new(&o, &b), BK_EINVAL);
}
END_TEST

/* ------------------------------------------------------------------ retry */
static bk_retry_opts_t retry_opts(bk_jitter_t jitter)
{
    bk_retry_opts_t o;
    bk_retry_opts_init(&o);
    o.max_attempts = 6;
    o.base_ns = 100 * MS;
    o.cap_ns = 1 * SEC;
    o.jitter = jitter;
    o.clock = clk;
    return o;
}

/* One more failed attempt: true (retry after *d) or false with the final status. */
static bool fail_again(bk_retry_t *r, int status, int64_t retry_after, int64_t *d, int *final)
{
    *final = status;
    return bk_retry_next(r, final, retry_after, d);
}

START_TEST(retry_exponential_schedule_and_attempt_limit)
{
    bk_retry_opts_t o = retry_opts(BK_JITTER_NONE);
    bk_retry_t r;
    ck_assert_int_eq(bk_retry_begin(&r, &o, true, 1), BK_OK);
    const int64_t want[] = {100 * MS, 200 * MS, 400 * MS, 800 * MS, 1 * SEC};
    int64_t d;
    int st;
    for (int i = 0; i < 5; i++) {
        ck_assert(fail_again(&r, BK_EUNAVAIL, 0, &d, &st));
        ck_assert_int_eq(d, want[i]);
    }
    ck_assert(!fail_again(&r, BK_EUNAVAIL, 0, &d, &st)); /* 6 attempts made */
    ck_assert_int_eq(st, BK_EUNAVAIL); /* the last attempt's own status */
}
END_TEST

static void schedule(bk_jitter_t j, uint64_t seed, int64_t out[5])
{
    bk_retry_opts_t o = retry_opts(j);
    bk_retry_t r;
    int st;
    ck_assert_int_eq(bk_retry_begin(&r, &o, true, seed), BK_OK);
    for (int i = 0; i < 5; i++)
        ck_assert(fail_again(&r, BK_ETIMEDOUT, 0, &out[i], &st));
}

START_TEST(retry_jitter_bounds_and_seeded_schedules)
{
    const int64_t exp[] = {100 * MS, 200 * MS, 400 * MS, 800 * MS, 1 * SEC};
    for (bk_jitter_t j = BK_JITTER_FULL; j <= BK_JITTER_DECORRELATED; j++) {
        int64_t a[5], b[5], c[5];
        schedule(j, 42, a);
        schedule(j, 42, b);
        schedule(j, 43, c);
        ck_assert_mem_eq(a, b, sizeof a); /* the same seed, the same schedule */
        ck_assert(memcmp(a, c, sizeof a) != 0);
        int64_t prev = 100 * MS;
        for (int i = 0; i < 5; i++) {
            if (j == BK_JITTER_FULL) {
                ck_assert(a[i] >= 0 && a[i] <= exp[i]);
            } else if (j == BK_JITTER_EQUAL) {
                ck_assert(a[i] >= exp[i] / 2 && a[i] <= exp[i]);
            } else {
                int64_t hi = prev * 3 < 1 * SEC ? prev * 3 : 1 * SEC;
                ck_assert(a[i] >= 100 * MS && a[i] <= hi);
                prev = a[i];
            }
        }
    }
}
END_TEST

START_TEST(retry_deadline_retry_after_and_rules)
{
    bk_retry_opts_t o = retry_opts(BK_JITTER_NONE);
    o.deadline_ns = 1 * SEC;
    o.base_ns = 400 * MS;
    bk_retry_t r;
    int64_t d;
    int st;
    ck_assert_int_eq(bk_retry_begin(&r, &o, true, 1), BK_OK);
    ck_assert(fail_again(&r, BK_EUNAVAIL, 0, &d, &st));
    ck_assert_int_eq(d, 400 * MS);
    bk_clock_fake_advance(clk, 400 * MS);
    /* 800 ms would end past the deadline (600 ms left): stop. */
    ck_assert(!fail_again(&r, BK_EUNAVAIL, 0, &d, &st));
    ck_assert_int_eq(st, BK_ETIMEDOUT);

    /* Retry-After replaces a shorter delay, within the deadline. */
    ck_assert_int_eq(bk_retry_begin(&r, &o, true, 1), BK_OK);
    ck_assert(fail_again(&r, BK_EUNAVAIL, 700 * MS, &d, &st));
    ck_assert_int_eq(d, 700 * MS);
    ck_assert_int_eq(bk_retry_begin(&r, &o, true, 1), BK_OK);
    ck_assert(!fail_again(&r, BK_EUNAVAIL, 5 * SEC, &d, &st));
    ck_assert_int_eq(st, BK_ETIMEDOUT);

    /* Never retried: a non-idempotent call, a non-retryable status; success ends it. */
    ck_assert_int_eq(bk_retry_begin(&r, &o, false, 1), BK_OK);
    ck_assert(!fail_again(&r, BK_EUNAVAIL, 0, &d, &st));
    ck_assert_int_eq(st, BK_EUNAVAIL);
    ck_assert_int_eq(bk_retry_begin(&r, &o, true, 1), BK_OK);
    ck_assert(!fail_again(&r, BK_EINVAL, 0, &d, &st));
    ck_assert_int_eq(st, BK_EINVAL);
    ck_assert(!fail_again(&r, BK_OK, 0, &d, &st));
    ck_assert_int_eq(st, BK_OK);
    ck_assert_int_eq(d, 0);

    o.base_ns = 0;
    ck_assert_int_eq(bk_retry_begin(&r, &o, true, 1), BK_EINVAL);
}
END_TEST

START_TEST(retry_budget_exhaustion_and_refill)
{
    bk_retry_budget_t *bud;
    bk_retry_budget_opts_t bo;
    bk_retry_budget_opts_init(&bo);
    bo.max_tokens = 10;
    bo.ratio = 0.1;
    ck_assert_int_eq(bk_retry_budget_new(&bo, &bud), BK_OK);
    bk_retry_opts_t o = retry_opts(BK_JITTER_NONE);
    o.budget = bud;
    o.max_attempts = 100;
    bk_retry_t r;
    int64_t d;
    int st;
    ck_assert_int_eq(bk_retry_begin(&r, &o, true, 1), BK_OK);
    /* Tokens 10 -> 9 -> ... -> 6: retries allowed while tokens > 5. */
    for (int i = 0; i < 4; i++)
        ck_assert(fail_again(&r, BK_EUNAVAIL, 0, &d, &st));
    ck_assert(!fail_again(&r, BK_EUNAVAIL, 0, &d, &st)); /* 5: refused */
    ck_assert_int_eq(st, BK_EBUSY);
    ck_assert(!bk_retry_budget_allows(bud));
    /* Non-retryable failures and non-idempotent calls cost nothing. */
    ck_assert_int_eq(bk_retry_begin(&r, &o, false, 1), BK_OK);
    ck_assert(!fail_again(&r, BK_EUNAVAIL, 0, &d, &st));
    ck_assert(!fail_again(&r, BK_EINVAL, 0, &d, &st));
    /* Successes seen by bk_retry_next give tokens back: ten make one. */
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(bk_retry_begin(&r, &o, true, 1), BK_OK);
        ck_assert(!fail_again(&r, BK_OK, 0, &d, &st));
    }
    ck_assert(bk_retry_budget_allows(bud)); /* 6 > 5 */
    for (int i = 0; i < 1000; i++)
        bk_retry_budget_record(bud, true); /* capped at max */
    for (int i = 0; i < 4; i++)
        bk_retry_budget_record(bud, false);
    ck_assert(bk_retry_budget_allows(bud));
    bk_retry_budget_record(bud, false);
    ck_assert(!bk_retry_budget_allows(bud));
    bk_retry_budget_free(bud);
}
END_TEST

/* ------------------------------------------------------------------ bulkhead */
static void *hold_and_leave(void *arg)
{
    bk_bulkhead_t *b = arg;
    gate_pass();
    bk_bulkhead_leave(b);
    return NULL;
}

START_TEST(bulkhead_saturation_and_bounded_wait)
{
    bk_bulkhead_t *b;
    ck_assert_int_eq(bk_bulkhead_new(2, NULL, &b), BK_OK);
    ck_assert_int_eq(bk_bulkhead_enter(b), BK_OK);
    ck_assert_int_eq(bk_bulkhead_enter(b), BK_OK);
    ck_assert_int_eq(bk_bulkhead_enter(b), BK_EBUSY); /* no wait: at once */
    ck_assert_uint_eq(bk_bulkhead_in_use(b), 2);
    bk_bulkhead_leave(b);
    ck_assert_int_eq(bk_bulkhead_enter(b), BK_OK);
    bk_bulkhead_free(b);

    /* With a wait: a slot freed while waiting is taken. */
    bk_bulkhead_opts_t bo;
    bk_bulkhead_opts_init(&bo);
    bo.max_wait_ns = 30 * SEC;
    ck_assert_int_eq(bk_bulkhead_new(1, &bo, &b), BK_OK);
    ck_assert_int_eq(bk_bulkhead_enter(b), BK_OK);
    pthread_t th;
    pthread_create(&th, NULL, hold_and_leave, b);
    gate_wait_for(1);
    gate_release(); /* the holder leaves while we wait */
    ck_assert_int_eq(bk_bulkhead_enter(b), BK_OK);
    pthread_join(th, NULL);
    ck_assert_uint_eq(bk_bulkhead_in_use(b), 1);
    bk_bulkhead_free(b);

    /* And a wait that runs out (real time: 20 ms). */
    bo.max_wait_ns = 20 * MS;
    ck_assert_int_eq(bk_bulkhead_new(1, &bo, &b), BK_OK);
    ck_assert_int_eq(bk_bulkhead_enter(b), BK_OK);
    ck_assert_int_eq(bk_bulkhead_enter(b), BK_EBUSY);
    bk_bulkhead_free(b);
}
END_TEST

/* ------------------------------------------------------------------ rate limit */
static bk_ratelimit_t *limiter(double rate, int64_t period, unsigned burst, size_t max_keys)
{
    bk_ratelimit_opts_t o;
    bk_ratelimit_opts_init(&o);
    o.period_ns = period;
    o.burst = burst;
    o.clock = clk;
    bk_ratelimit_store_t st;
    ck_assert_int_eq(bk_ratelimit_memory_store(max_keys, &st), BK_OK);
    bk_ratelimit_t *rl;
    ck_assert_int_eq(bk_ratelimit_new(rate, &st, &o, &rl), BK_OK);
    return rl;
}

static int allowed_over_a_minute(bk_ratelimit_t *rl, int64_t step)
{
    int allowed = 0;
    for (int64_t t = 0; t < 60 * SEC; t += step) {
        bk_ratelimit_result_t res;
        ck_assert_int_eq(bk_ratelimit_check(rl, "k", 0, &res), BK_OK);
        allowed += res.allowed;
        bk_clock_fake_advance(clk, step);
    }
    return allowed;
}

START_TEST(gcra_exact_over_a_simulated_minute)
{
    /* R = 10/s, B = 5, a request every millisecond: B at once, then one per 100 ms. */
    bk_ratelimit_t *rl = limiter(10, SEC, 5, 100);
    ck_assert_int_eq(allowed_over_a_minute(rl, MS), 5 + 599);
    bk_ratelimit_free(rl);
    /* R = 250/min (one per 240 ms), B = 20, a request every 7 ms. */
    rl = limiter(250, 60 * SEC, 20, 100);
    int n = allowed_over_a_minute(rl, 7 * MS);
    /* Allowed at 0 (x20), then at the first 7 ms tick at or after each 240 ms. */
    int expect = 20;
    for (int64_t k = 1;; k++) {
        int64_t at = (k * 240 * MS + 7 * MS - 1) / (7 * MS) * (7 * MS);
        if (at >= 60 * SEC)
            break;
        expect++;
    }
    ck_assert_int_eq(n, expect);
    bk_ratelimit_free(rl);
}
END_TEST

START_TEST(ratelimit_denials_counted)
{
    bk_metrics_t *reg;
    ck_assert_int_eq(bk_metrics_new(&reg), BK_OK);
    bk_ratelimit_opts_t o;
    bk_ratelimit_opts_init(&o);
    o.burst = 2;
    o.clock = clk;
    o.name = "login";
    o.metrics = reg;
    bk_ratelimit_store_t st;
    ck_assert_int_eq(bk_ratelimit_memory_store(10, &st), BK_OK);
    bk_ratelimit_t *rl;
    ck_assert_int_eq(bk_ratelimit_new(1, &st, &o, &rl), BK_OK);
    bk_ratelimit_result_t r;
    for (int i = 0; i < 5; i++) /* two allowed, three denied */
        ck_assert_int_eq(bk_ratelimit_check(rl, "k", 0, &r), BK_OK);
    ck_assert_int_eq(bk_ratelimit_check(rl, "k", BK_RATELIMIT_PEEK, &r), BK_OK); /* a denied peek counts */
    ck_assert(!r.allowed);
    ck_assert_int_eq(bk_ratelimit_check(rl, "other", BK_RATELIMIT_PEEK, &r), BK_OK); /* allowed: not */
    char *text;
    ck_assert_int_eq(bk_metrics_render(reg, &text, NULL), BK_OK);
    ck_assert_ptr_nonnull(strstr(text, "\nratelimit_denied_total{policy=\"login\"} 4\n"));
    free(text);
    bk_ratelimit_free(rl);
    /* A family of that name but another shape: refused, and the store freed. */
    bk_metrics_t *other;
    ck_assert_int_eq(bk_metrics_new(&other), BK_OK);
    bk_metric_t *f;
    ck_assert_int_eq(bk_metrics_gauge(other, "ratelimit_denied_total", "G.", NULL, &f), BK_OK);
    o.metrics = other;
    ck_assert_int_eq(bk_ratelimit_memory_store(10, &st), BK_OK);
    ck_assert_int_eq(bk_ratelimit_new(1, &st, &o, &rl), BK_EEXIST);
    bk_metrics_free(other);
    bk_metrics_free(reg);
}
END_TEST

START_TEST(gcra_result_fields_and_headers)
{
    bk_ratelimit_t *rl = limiter(10, SEC, 3, 100);
    bk_ratelimit_result_t r;
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_int_eq(bk_ratelimit_check(rl, "user:1", 0, &r), BK_OK);
        ck_assert(r.allowed);
        ck_assert_uint_eq(r.limit, 3);
        ck_assert_uint_eq(r.remaining, 2 - i);
        ck_assert_int_eq(r.reset_ns, (int64_t)(i + 1) * 100 * MS);
    }
    ck_assert_int_eq(bk_ratelimit_check(rl, "user:1", 0, &r), BK_OK);
    ck_assert(!r.allowed);
    ck_assert_int_eq(r.retry_after_ns, 100 * MS);
    char pol[64], lim[64], ra[64];
    ck_assert_int_eq(bk_ratelimit_headers(rl, &r, pol, lim, ra, sizeof pol), BK_OK);
    ck_assert_str_eq(pol, "\"default\";q=3;w=1");
    ck_assert_str_eq(lim, "\"default\";r=0;t=1");
    ck_assert_str_eq(ra, "1");
    ck_assert_int_eq(bk_ratelimit_headers(rl, &r, pol, NULL, NULL, 4), BK_ERANGE);
    /* Another key has its own budget. */
    ck_assert_int_eq(bk_ratelimit_check(rl, "user:2", 0, &r), BK_OK);
    ck_assert(r.allowed);
    ck_assert_int_eq(bk_ratelimit_headers(rl, &r, NULL, NULL, ra, sizeof ra), BK_OK);
    ck_assert_str_eq(ra, "");
    /* 100 ms later user:1 has one again. */
    bk_clock_fake_advance(clk, 100 * MS);
    ck_assert_int_eq(bk_ratelimit_check(rl, "user:1", 0, &r), BK_OK);
    ck_assert(r.allowed);
    ck_assert_uint_eq(r.remaining, 0);
    bk_ratelimit_free(rl);
}
END_TEST

START_TEST(gcra_store_evicts_least_recently_used)
{
    bk_ratelimit_t *rl = limiter(1, 60 * SEC, 1, 1); /* one key kept */
    bk_ratelimit_result_t r;
    ck_assert_int_eq(bk_ratelimit_check(rl, "a", 0, &r), BK_OK);
    ck_assert(r.allowed);
    ck_assert_int_eq(bk_ratelimit_check(rl, "a", 0, &r), BK_OK);
    ck_assert(!r.allowed);
    ck_assert_int_eq(bk_ratelimit_check(rl, "b", 0, &r), BK_OK); /* evicts a */
    ck_assert(r.allowed);
    ck_assert_int_eq(bk_ratelimit_check(rl, "a", 0, &r), BK_OK); /* forgotten: fresh */
    ck_assert(r.allowed);
    bk_ratelimit_free(rl);
}
END_TEST

START_TEST(gcra_small_store_keeps_its_keys)
{
    /* 64 keys fit one shard: 64 distinct keys never evict each other. */
    bk_ratelimit_t *rl = limiter(1, 60 * SEC, 1, 64);
    bk_ratelimit_result_t r;
    char key[16];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 64; i++) {
            snprintf(key, sizeof key, "k%d", i);
            ck_assert_int_eq(bk_ratelimit_check(rl, key, 0, &r), BK_OK);
            ck_assert_int_eq(r.allowed, round == 0);
        }
    bk_ratelimit_free(rl);
}
END_TEST

START_TEST(memory_store_load_store_is_compare_and_set)
{
    bk_ratelimit_store_t st;
    ck_assert_int_eq(bk_ratelimit_memory_store(100, &st), BK_OK);
    int64_t tat;
    uint64_t v;
    ck_assert_int_eq(st.load("k", &tat, &v, st.ud), BK_ENOTFOUND);
    ck_assert_int_eq(st.store("k", 5, 1, SEC, st.ud), BK_ECONFLICT); /* absent: only version 0 */
    ck_assert_int_eq(st.store("k", 5, 0, SEC, st.ud), BK_OK);
    ck_assert_int_eq(st.store("k", 6, 0, SEC, st.ud), BK_ECONFLICT); /* no longer absent */
    ck_assert_int_eq(st.load("k", &tat, &v, st.ud), BK_OK);
    ck_assert_int_eq(tat, 5);
    ck_assert_int_eq(st.store("k", 7, v, SEC, st.ud), BK_OK);
    ck_assert_int_eq(st.store("k", 8, v, SEC, st.ud), BK_ECONFLICT); /* v is stale now */
    ck_assert_int_eq(st.load("k", &tat, &v, st.ud), BK_OK);
    ck_assert_int_eq(tat, 7);
    st.destroy(st.ud);
}
END_TEST

/* The memory store's load and store, behind other function pointers: the
 * limiter cannot tell it is the in-process store and takes the load/store path. */
static int fwd_load(const char *key, int64_t *tat, uint64_t *version, void *ud)
{
    const bk_ratelimit_store_t *in = ud;
    return in->load(key, tat, version, in->ud);
}

static int fwd_store(const char *key, int64_t tat, uint64_t version, int64_t ttl_ns, void *ud)
{
    const bk_ratelimit_store_t *in = ud;
    return in->store(key, tat, version, ttl_ns, in->ud);
}

START_TEST(peek_decides_and_takes_nothing_on_either_store)
{
    /* A limit on failures: peek before each attempt, take one when it fails. On
     * the limiter's own store and through load/store rounds alike. */
    bk_ratelimit_opts_t o;
    bk_ratelimit_opts_init(&o);
    o.period_ns = 60 * SEC;
    o.burst = 3;
    o.clock = clk;
    bk_ratelimit_store_t direct, inner;
    ck_assert_int_eq(bk_ratelimit_memory_store(100, &direct), BK_OK);
    ck_assert_int_eq(bk_ratelimit_memory_store(100, &inner), BK_OK);
    bk_ratelimit_store_t wrapped = {.load = fwd_load, .store = fwd_store, .ud = &inner};
    bk_ratelimit_t *rls[2];
    ck_assert_int_eq(bk_ratelimit_new(3, &direct, &o, &rls[0]), BK_OK);
    ck_assert_int_eq(bk_ratelimit_new(3, &wrapped, &o, &rls[1]), BK_OK);
    for (int i = 0; i < 2; i++) {
        bk_ratelimit_t *rl = rls[i];
        bk_ratelimit_result_t r;
        /* Any number of peeks take nothing: still the whole burst. */
        for (int n = 0; n < 10; n++) {
            ck_assert_int_eq(bk_ratelimit_check(rl, "u", BK_RATELIMIT_PEEK, &r), BK_OK);
            ck_assert(r.allowed);
            ck_assert_uint_eq(r.remaining, 2); /* what taking one would leave */
        }
        int64_t tat;
        uint64_t v;
        const bk_ratelimit_store_t *st = i == 0 ? &direct : &inner;
        ck_assert_int_eq(st->load("u", &tat, &v, st->ud), BK_ENOTFOUND); /* never written */
        for (int n = 0; n < 3; n++)
            ck_assert(bk_ratelimit_check(rl, "u", 0, &r) == BK_OK && r.allowed);
        /* Spent: the peek says no, with the wait, and takes nothing either. */
        ck_assert_int_eq(bk_ratelimit_check(rl, "u", BK_RATELIMIT_PEEK | BK_RATELIMIT_NO_WAIT, &r), BK_OK);
        ck_assert(!r.allowed);
        ck_assert_int_eq(r.retry_after_ns, 20 * SEC);
        bk_clock_fake_advance(clk, 20 * SEC);
        ck_assert(bk_ratelimit_check(rl, "u", BK_RATELIMIT_PEEK, &r) == BK_OK && r.allowed);
        ck_assert(bk_ratelimit_check(rl, "u", BK_RATELIMIT_PEEK, &r) == BK_OK && r.allowed);
        ck_assert(bk_ratelimit_check(rl, "u", 0, &r) == BK_OK && r.allowed);
        ck_assert(bk_ratelimit_check(rl, "u", BK_RATELIMIT_PEEK, &r) == BK_OK && !r.allowed);
        bk_ratelimit_free(rl);
    }
    inner.destroy(inner.ud);
}
END_TEST

START_TEST(memory_store_one_round_matches_load_store)
{
    /* The limiter's one-lock round on its own store (direct) and the load/store
     * rounds (wrapped) decide alike, field for field, NO_WAIT or not. */
    bk_ratelimit_opts_t o;
    bk_ratelimit_opts_init(&o);
    o.burst = 3;
    o.clock = clk;
    bk_ratelimit_store_t direct, inner;
    ck_assert_int_eq(bk_ratelimit_memory_store(100, &direct), BK_OK);
    ck_assert_int_eq(bk_ratelimit_memory_store(100, &inner), BK_OK);
    bk_ratelimit_store_t wrapped = {.load = fwd_load, .store = fwd_store, .ud = &inner};
    bk_ratelimit_t *a, *b;
    ck_assert_int_eq(bk_ratelimit_new(10, &direct, &o, &a), BK_OK);
    ck_assert_int_eq(bk_ratelimit_new(10, &wrapped, &o, &b), BK_OK);
    int allowed = 0;
    for (int i = 0; i < 400; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i % 3);
        unsigned flags = i % 2 ? BK_RATELIMIT_NO_WAIT : 0;
        bk_ratelimit_result_t ra, rb;
        memset(&ra, 0xff, sizeof ra); /* the whole result is written, the tail zeroed */
        ck_assert_int_eq(bk_ratelimit_check(a, key, flags, &ra), BK_OK);
        ck_assert_int_eq(bk_ratelimit_check(b, key, flags, &rb), BK_OK);
        ck_assert(memcmp(&ra, &rb, sizeof ra) == 0);
        allowed += ra.allowed;
        bk_clock_fake_advance(clk, 7 * MS);
    }
    /* 3 keys, each 3 at once and then one per 100 ms over 2.8 s. */
    ck_assert_int_eq(allowed, 3 * (3 + 27));
    /* The round stored the state where load finds it. */
    int64_t tat;
    uint64_t v;
    ck_assert_int_eq(direct.load("k0", &tat, &v, direct.ud), BK_OK);
    ck_assert_int_gt(tat, bk_clock_wall_ns(clk));
    bk_ratelimit_free(a);
    bk_ratelimit_free(b);
    inner.destroy(inner.ud);
}
END_TEST

static int destroyed;

static void count_destroy(void *ud)
{
    (void)ud;
    destroyed++;
}

/* A store that conflicts a set number of times, as a busy shared store would. */
struct flaky {
    int conflicts;
    int64_t tat;
    uint64_t version;
};

static int flaky_load(const char *key, int64_t *tat, uint64_t *version, void *ud)
{
    (void)key;
    struct flaky *f = ud;
    if (f->version == 0)
        return BK_ENOTFOUND;
    *tat = f->tat;
    *version = f->version;
    return BK_OK;
}

static int flaky_store(const char *key, int64_t tat, uint64_t version, int64_t ttl, void *ud)
{
    (void)key;
    (void)ttl;
    struct flaky *f = ud;
    if (f->conflicts > 0) {
        f->conflicts--;
        return BK_ECONFLICT;
    }
    if (version != f->version)
        return BK_ECONFLICT;
    f->tat = tat;
    f->version++;
    return BK_OK;
}

/* A store whose load takes a second, during which another client stored its
 * state as of the end of that second (a full bucket then). */
static int slow_load(const char *key, int64_t *tat, uint64_t *version, void *ud)
{
    (void)ud;
    (void)key;
    bk_clock_fake_advance(clk, SEC);
    *tat = bk_clock_wall_ns(clk);
    *version = 1;
    return BK_OK;
}

static int accept_store(const char *key, int64_t tat, uint64_t version, int64_t ttl, void *ud)
{
    (void)ud, (void)key, (void)tat, (void)version, (void)ttl;
    return BK_OK;
}

START_TEST(gcra_reads_the_clock_after_the_state)
{
    bk_ratelimit_store_t st = {.load = slow_load, .store = accept_store};
    bk_ratelimit_opts_t o;
    bk_ratelimit_opts_init(&o);
    o.burst = 1;
    o.clock = clk;
    bk_ratelimit_t *rl;
    ck_assert_int_eq(bk_ratelimit_new(1, &st, &o, &rl), BK_OK);
    bk_ratelimit_result_t r;
    ck_assert_int_eq(bk_ratelimit_check(rl, "k", 0, &r), BK_OK);
    ck_assert(r.allowed); /* with a time read before the load it would be refused */
    bk_ratelimit_free(rl);
}
END_TEST

/* A store whose every store conflicts, counting its rounds. */
struct contended {
    int loads, stores;
};

static int contended_load(const char *key, int64_t *tat, uint64_t *version, void *ud)
{
    (void)key;
    struct contended *c = ud;
    c->loads++;
    *tat = 0;
    *version = 1;
    return BK_OK;
}

static int contended_store(const char *key, int64_t tat, uint64_t version, int64_t ttl, void *ud)
{
    (void)key, (void)tat, (void)version, (void)ttl;
    struct contended *c = ud;
    c->stores++;
    return BK_ECONFLICT;
}

START_TEST(gcra_no_wait_makes_one_round)
{
    struct contended c = {0};
    bk_ratelimit_store_t st = {.load = contended_load, .store = contended_store, .ud = &c};
    bk_ratelimit_opts_t o;
    bk_ratelimit_opts_init(&o);
    o.burst = 2;
    o.clock = clk;
    bk_ratelimit_t *rl;
    ck_assert_int_eq(bk_ratelimit_new(1, &st, &o, &rl), BK_OK);
    bk_ratelimit_result_t r;
    int64_t mono0 = bk_clock_mono_ns(clk), wall0 = bk_clock_wall_ns(clk);

    /* No wait: one load/store round, no pause, a conflict is BK_EBUSY at once. */
    ck_assert_int_eq(bk_ratelimit_check(rl, "k", BK_RATELIMIT_NO_WAIT, &r), BK_EBUSY);
    ck_assert(!r.allowed);
    ck_assert_int_eq(c.loads, 1);
    ck_assert_int_eq(c.stores, 1);
    ck_assert_int_eq(bk_clock_mono_ns(clk), mono0); /* no pause */

    /* Flags 0: 16 rounds, pausing after the second onwards on the fake clock,
     * which the pauses advance instead of sleeping. */
    c = (struct contended){0};
    ck_assert_int_eq(bk_ratelimit_check(rl, "k", 0, &r), BK_EBUSY);
    ck_assert_int_eq(c.loads, 16);
    ck_assert_int_eq(c.stores, 16);
    int64_t moved = bk_clock_mono_ns(clk) - mono0;
    ck_assert_int_gt(moved, 0);
    ck_assert_int_le(moved, 50000 * (2 + 15) * 14 / 2); /* up to 50 us per try, tries 2..15 */
    ck_assert_int_eq(bk_clock_wall_ns(clk) - wall0, moved);

    /* An unknown flag. */
    c = (struct contended){0};
    ck_assert_int_eq(bk_ratelimit_check(rl, "k", 0x4u, &r), BK_EINVAL);
    ck_assert_int_eq(c.loads, 0);
    bk_ratelimit_free(rl);
}
END_TEST

START_TEST(gcra_retries_store_conflicts)
{
    struct flaky f = {.conflicts = 3};
    bk_ratelimit_store_t st = {.load = flaky_load, .store = flaky_store, .ud = &f};
    bk_ratelimit_opts_t o;
    bk_ratelimit_opts_init(&o);
    o.burst = 2;
    o.clock = clk;
    bk_ratelimit_t *rl;
    ck_assert_int_eq(bk_ratelimit_new(1, &st, &o, &rl), BK_OK);
    bk_ratelimit_result_t r;
    ck_assert_int_eq(bk_ratelimit_check(rl, "k", 0, &r), BK_OK);
    ck_assert(r.allowed);
    f.conflicts = 1000;
    ck_assert_int_eq(bk_ratelimit_check(rl, "k", 0, &r), BK_EBUSY);
    bk_ratelimit_free(rl);

    /* A limiter that cannot be made still disposes of its store. */
    st.destroy = count_destroy;
    destroyed = 0;
    ck_assert_int_eq(bk_ratelimit_new(0, &st, &o, &rl), BK_EINVAL);
    o.name = "bad\"name";
    ck_assert_int_eq(bk_ratelimit_new(1, &st, &o, &rl), BK_EINVAL);
    ck_assert_int_eq(destroyed, 2);
}
END_TEST

/* ------------------------------------------------------------------ stress */
#define THREADS 8

static long stress_calls(void)
{
    const char *e = getenv("BK_STRESS_CALLS"); /* the valgrind pass runs fewer */
    return e ? atol(e) : 1000000;
}

struct stress {
    bk_breaker_t *b;
    bk_ratelimit_t *rl;
    long calls;
    atomic_long permitted, rejected, recorded_fail, recorded_ok, allowed;
    unsigned seed;
};

static void *breaker_worker(void *arg)
{
    struct stress *s = arg;
    uint64_t x = (uint64_t)pthread_self() | 1;
    for (long i = 0; i < s->calls / THREADS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        bk_breaker_permit_t p;
        if (bk_breaker_acquire(s->b, &p) != BK_OK) {
            atomic_fetch_add(&s->rejected, 1);
            if (i % 64 == 0)
                bk_clock_fake_advance(clk, 10 * MS); /* time moves: open ends */
            continue;
        }
        atomic_fetch_add(&s->permitted, 1);
        bool fail = x % 100 < 45; /* near the threshold: the breaker keeps changing */
        bk_breaker_record(s->b, &p, fail ? BK_OUTCOME_FAILURE : BK_OUTCOME_SUCCESS, MS);
        atomic_fetch_add(fail ? &s->recorded_fail : &s->recorded_ok, 1);
    }
    return NULL;
}

static double counter_of(bk_metrics_t *reg, const char *outcome)
{
    char *text, line[128];
    ck_assert_int_eq(bk_metrics_render(reg, &text, NULL), BK_OK);
    snprintf(line, sizeof line, "breaker_calls_total{name=\"stress\",outcome=\"%s\"} ", outcome);
    char *at = strstr(text, line);
    ck_assert_ptr_nonnull(at);
    double v = atof(at + strlen(line));
    free(text);
    return v;
}

START_TEST(stress_breaker_no_lost_counts)
{
    bk_metrics_t *reg;
    ck_assert_int_eq(bk_metrics_new(&reg), BK_OK);
    bk_breaker_opts_t o;
    bk_breaker_opts_init(&o);
    o.name = "stress";
    o.metrics = reg;
    o.clock = clk;
    o.window_size = 50;
    o.min_calls = 20;
    o.failure_threshold = 0.5;
    o.open_ns = 100 * MS;
    o.half_open_calls = 4;
    struct stress s = {.calls = stress_calls()};
    ck_assert_int_eq(bk_breaker_new(&o, &s.b), BK_OK);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, breaker_worker, &s);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    long total = atomic_load(&s.permitted) + atomic_load(&s.rejected);
    ck_assert_int_eq(total, s.calls / THREADS * THREADS);
    /* Every acquire and every record is counted exactly once. */
    ck_assert_int_eq((long)counter_of(reg, "rejected"), atomic_load(&s.rejected));
    ck_assert_int_eq((long)counter_of(reg, "failure"), atomic_load(&s.recorded_fail));
    ck_assert_int_eq((long)counter_of(reg, "success"), atomic_load(&s.recorded_ok));
    ck_assert_int_gt(atomic_load(&s.rejected), 0); /* it did trip */
    bk_breaker_state_t st = bk_breaker_state(s.b);
    ck_assert(st == BK_BREAKER_CLOSED || st == BK_BREAKER_OPEN || st == BK_BREAKER_HALF_OPEN);
    bk_breaker_free(s.b);
    bk_metrics_free(reg);
}
END_TEST

static void *limiter_worker(void *arg)
{
    struct stress *s = arg;
    char key[32];
    for (long i = 0; i < s->calls / THREADS; i++) {
        snprintf(key, sizeof key, "key-%ld", i % 100);
        bk_ratelimit_result_t r;
        int rc;
        while ((rc = bk_ratelimit_check(s->rl, key, 0, &r)) == BK_EBUSY)
            ; /* only under extreme contention; try again */
        ck_assert_int_eq(rc, BK_OK);
        if (r.allowed)
            atomic_fetch_add(&s->allowed, 1);
    }
    return NULL;
}

START_TEST(stress_limiter_exact_under_contention)
{
    /* The clock stands still: each of 100 keys allows exactly its burst of 50, no
     * matter how 8 threads race on it. */
    struct stress s = {.calls = stress_calls()};
    s.rl = limiter(1, 3600 * SEC, 50, 1000);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, limiter_worker, &s);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&s.allowed), 100 * 50);
    bk_ratelimit_free(s.rl);
}
END_TEST

/* ------------------------------------------------------------------ API conventions */
START_TEST(opts_init_clears_garbage_and_sets_defaults)
{
    bk_breaker_opts_t b;
    memset(&b, 0x5a, sizeof b);
    bk_breaker_opts_init(&b);
    ck_assert_str_eq(b.name, "default");
    ck_assert_uint_eq(b.window_size, 100);
    ck_assert_int_eq(b.open_ns, 30 * SEC);
    ck_assert_ptr_null(b.clock);
    ck_assert_ptr_null(b.on_state_change);
    ck_assert_ptr_null(b.ud);
    for (size_t i = 0; i < 8; i++)
        ck_assert_uint_eq(b.reserved_[i], 0);

    bk_retry_opts_t r;
    memset(&r, 0x5a, sizeof r);
    bk_retry_opts_init(&r);
    ck_assert_uint_eq(r.max_attempts, 3);
    ck_assert_int_eq(r.deadline_ns, 0);
    ck_assert_ptr_null(r.retryable);
    ck_assert_ptr_null(r.budget);
    for (size_t i = 0; i < 8; i++)
        ck_assert_uint_eq(r.reserved_[i], 0);

    bk_retry_budget_opts_t g;
    memset(&g, 0x5a, sizeof g);
    bk_retry_budget_opts_init(&g);
    ck_assert_uint_eq(g.max_tokens, 10);
    ck_assert(g.ratio == 0.1);
    for (size_t i = 0; i < 8; i++)
        ck_assert_uint_eq(g.reserved_[i], 0);

    bk_bulkhead_opts_t h;
    memset(&h, 0x5a, sizeof h);
    bk_bulkhead_opts_init(&h);
    ck_assert_int_eq(h.max_wait_ns, 0);
    for (size_t i = 0; i < 8; i++)
        ck_assert_uint_eq(h.reserved_[i], 0);

    bk_ratelimit_opts_t l;
    memset(&l, 0x5a, sizeof l);
    bk_ratelimit_opts_init(&l);
    ck_assert_int_eq(l.period_ns, SEC);
    ck_assert_uint_eq(l.burst, 1);
    ck_assert_str_eq(l.name, "default");
    ck_assert_ptr_null(l.clock);
    ck_assert_ptr_null(l.metrics);
    for (size_t i = 0; i < sizeof l.reserved_ / sizeof *l.reserved_; i++)
        ck_assert_uint_eq(l.reserved_[i], 0);
}
END_TEST

START_TEST(null_options_are_the_defaults)
{
    /* Breaker: 20 calls at 50 % failures trip the default policy. */
    bk_breaker_t *b;
    ck_assert_int_eq(bk_breaker_new(NULL, &b), BK_OK);
    bk_breaker_permit_t p;
    for (int i = 0; i < 19; i++) {
        ck_assert_int_eq(bk_breaker_acquire(b, &p), BK_OK);
        bk_breaker_record(b, &p, BK_OUTCOME_FAILURE, 0);
    }
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_CLOSED); /* min_calls 20 */
    ck_assert_int_eq(bk_breaker_acquire(b, &p), BK_OK);
    bk_breaker_record(b, &p, BK_OUTCOME_FAILURE, 0);
    ck_assert_int_eq(bk_breaker_state(b), BK_BREAKER_OPEN);
    bk_breaker_free(b);

    /* Retry: 3 attempts. */
    bk_retry_t r;
    int64_t d;
    ck_assert_int_eq(bk_retry_begin(&r, NULL, true, 1), BK_OK);
    int st = BK_EUNAVAIL;
    ck_assert(bk_retry_next(&r, &st, 0, &d));
    ck_assert(bk_retry_next(&r, &st, 0, &d));
    ck_assert(!bk_retry_next(&r, &st, 0, &d));
    ck_assert_int_eq(st, BK_EUNAVAIL);

    /* Budget: 10 tokens, retries while more than 5 are left; a zeroed struct is the
     * same. */
    bk_retry_budget_opts_t zero = {0};
    for (int k = 0; k < 2; k++) {
        bk_retry_budget_t *bud;
        ck_assert_int_eq(bk_retry_budget_new(k ? &zero : NULL, &bud), BK_OK);
        for (int i = 0; i < 4; i++)
            bk_retry_budget_record(bud, false);
        ck_assert(bk_retry_budget_allows(bud)); /* 6 */
        bk_retry_budget_record(bud, false);
        ck_assert(!bk_retry_budget_allows(bud)); /* 5 */
        for (int i = 0; i < 10; i++)
            bk_retry_budget_record(bud, true); /* ratio 0.1: ten give one back */
        ck_assert(bk_retry_budget_allows(bud));
        bk_retry_budget_free(bud);
    }
    bk_retry_budget_opts_t bad;
    bk_retry_budget_opts_init(&bad);
    bad.ratio = -1;
    bk_retry_budget_t *nb = (bk_retry_budget_t *)(uintptr_t)1; /* cleared on failure */
    ck_assert_int_eq(bk_retry_budget_new(&bad, &nb), BK_EINVAL);
    ck_assert_ptr_null(nb);

    /* Bulkhead: no wait. */
    bk_bulkhead_t *h;
    ck_assert_int_eq(bk_bulkhead_new(1, NULL, &h), BK_OK);
    ck_assert_int_eq(bk_bulkhead_enter(h), BK_OK);
    int64_t t0 = bk_clock_mono_ns(NULL);
    ck_assert_int_eq(bk_bulkhead_enter(h), BK_EBUSY);
    ck_assert_int_lt(bk_clock_mono_ns(NULL) - t0, 1 * SEC);
    bk_bulkhead_free(h);
    ck_assert_int_eq(bk_bulkhead_new(0, NULL, &h), BK_EINVAL); /* the limit is the point */

    /* Rate limiter: burst 1, the rate per second, the system clock. */
    bk_ratelimit_store_t ms;
    ck_assert_int_eq(bk_ratelimit_memory_store(16, &ms), BK_OK);
    bk_ratelimit_t *rl;
    ck_assert_int_eq(bk_ratelimit_new(0.001, &ms, NULL, &rl), BK_OK);
    bk_ratelimit_result_t res;
    ck_assert_int_eq(bk_ratelimit_check(rl, "k", 0, &res), BK_OK);
    ck_assert(res.allowed);
    ck_assert_uint_eq(res.limit, 1);
    ck_assert_int_eq(bk_ratelimit_check(rl, "k", 0, &res), BK_OK);
    ck_assert(!res.allowed);
    char policy[64];
    ck_assert_int_eq(bk_ratelimit_headers(rl, &res, policy, NULL, NULL, sizeof policy), BK_OK);
    ck_assert_str_eq(policy, "\"default\";q=1;w=1000");
    bk_ratelimit_free(rl);
}
END_TEST

/* The user-data pointer comes last in every callback. */
static bool retry_only(int status, void *ud)
{
    return status == *(const int *)ud;
}

struct seen {
    const char *key;
    void *ud;
    int64_t ttl_ns;
};

static int seen_load(const char *key, int64_t *tat, uint64_t *version, void *ud)
{
    (void)tat, (void)version;
    ((struct seen *)ud)->key = key;
    return BK_ENOTFOUND;
}

static int seen_store(const char *key, int64_t tat, uint64_t version, int64_t ttl_ns, void *ud)
{
    (void)key, (void)tat, (void)version;
    ((struct seen *)ud)->ttl_ns = ttl_ns;
    return BK_OK;
}

static void seen_destroy(void *ud)
{
    ((struct seen *)ud)->ud = ud;
}

START_TEST(callbacks_take_user_data_last)
{
    int only = BK_ETIMEDOUT;
    bk_retry_opts_t o = retry_opts(BK_JITTER_NONE);
    o.retryable = retry_only;
    o.ud = &only;
    bk_retry_t r;
    int64_t d;
    int st;
    ck_assert_int_eq(bk_retry_begin(&r, &o, true, 1), BK_OK);
    ck_assert(fail_again(&r, BK_ETIMEDOUT, 0, &d, &st));
    ck_assert(!fail_again(&r, BK_EUNAVAIL, 0, &d, &st));
    ck_assert_int_eq(st, BK_EUNAVAIL);

    struct seen s = {0};
    bk_ratelimit_store_t store = {.load = seen_load, .store = seen_store, .destroy = seen_destroy, .ud = &s};
    bk_ratelimit_opts_t lo;
    bk_ratelimit_opts_init(&lo);
    lo.clock = clk;
    bk_ratelimit_t *rl;
    ck_assert_int_eq(bk_ratelimit_new(2, &store, &lo, &rl), BK_OK);
    bk_ratelimit_result_t res;
    ck_assert_int_eq(bk_ratelimit_check(rl, "the-key", 0, &res), BK_OK);
    ck_assert(res.allowed);
    ck_assert_str_eq(s.key, "the-key");
    ck_assert_int_eq(s.ttl_ns, SEC / 2); /* one emission interval at 2 per second */
    bk_ratelimit_free(rl);
    ck_assert_ptr_eq(s.ud, &s);
}
END_TEST

static Suite *resilience_suite(void)
{
    Suite *s = suite_create("resilience");
    TCase *tc = tcase_create("fake clock");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, breaker_trips_on_failure_rate_after_min_calls);
    tcase_add_test(tc, breaker_rate_below_threshold_stays_closed);
    tcase_add_test(tc, breaker_open_half_open_close_and_growing_wait);
    tcase_add_test(tc, breaker_trips_on_slow_calls);
    tcase_add_test(tc, breaker_half_open_admits_exactly_the_trials_under_concurrency);
    tcase_add_test(tc, breaker_stale_permits_do_not_count);
    tcase_add_test(tc, breaker_lost_trials_expire_and_refused_permits_count_nothing);
    tcase_add_test(tc, breaker_time_window_forgets_old_calls);
    tcase_add_test(tc, breaker_operator_states_and_metrics);
    tcase_add_test(tc, retry_exponential_schedule_and_attempt_limit);
    tcase_add_test(tc, retry_jitter_bounds_and_seeded_schedules);
    tcase_add_test(tc, retry_deadline_retry_after_and_rules);
    tcase_add_test(tc, retry_budget_exhaustion_and_refill);
    tcase_add_test(tc, bulkhead_saturation_and_bounded_wait);
    tcase_add_test(tc, gcra_exact_over_a_simulated_minute);
    tcase_add_test(tc, gcra_result_fields_and_headers);
    tcase_add_test(tc, ratelimit_denials_counted);
    tcase_add_test(tc, gcra_store_evicts_least_recently_used);
    tcase_add_test(tc, gcra_small_store_keeps_its_keys);
    tcase_add_test(tc, memory_store_load_store_is_compare_and_set);
    tcase_add_test(tc, memory_store_one_round_matches_load_store);
    tcase_add_test(tc, peek_decides_and_takes_nothing_on_either_store);
    tcase_add_test(tc, gcra_retries_store_conflicts);
    tcase_add_test(tc, gcra_no_wait_makes_one_round);
    tcase_add_test(tc, gcra_reads_the_clock_after_the_state);
    tcase_add_test(tc, opts_init_clears_garbage_and_sets_defaults);
    tcase_add_test(tc, null_options_are_the_defaults);
    tcase_add_test(tc, callbacks_take_user_data_last);
    suite_add_tcase(s, tc);
    TCase *st = tcase_create("stress");
    tcase_add_checked_fixture(st, setup, teardown);
    tcase_set_timeout(st, 300);
    tcase_add_test(st, stress_breaker_no_lost_counts);
    tcase_add_test(st, stress_limiter_exact_under_contention);
    suite_add_tcase(s, st);
    return s;
}

int main(void)
{
    return bk_test_run(resilience_suite());
}
