/* The circuit breaker: closed, open, half-open, plus the operator states.
 *
 * The state is an atomic read without the lock on the hot path (a closed or
 * disabled breaker admits a call with two atomic loads); recording takes the
 * breaker's mutex to update the window, which is O(1): a ring of outcomes for
 * count windows, one-second buckets for time windows. Every state change bumps
 * the generation, so permits from before the change are recognised and ignored.
 * SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* PTHREAD_MUTEX_ADAPTIVE_NP */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <backend/resilience.h>

#include "core/abi_int.h"

#define SLOW 2u /* outcome bits in the count ring: 1 = failure, 2 = slow, 4 = used */
#define USED 4u

struct bucket {
    int64_t sec;
    uint32_t calls, failures, slow;
};

enum { M_SUCCESS, M_FAILURE, M_SLOW, M_REJECTED, M_COUNT };

struct bk_breaker {
    bk_breaker_opts_t o;
    char *name;
    _Atomic int state;
    _Atomic uint64_t generation;
    pthread_mutex_t mu;
    /* the window (closed state) */
    uint8_t *ring; /* count window */
    size_t pos;
    struct bucket *buckets; /* time window */
    int64_t last_sec;
    uint32_t calls, failures, slow;
    /* open and half-open */
    int64_t open_until;
    int64_t half_open_since;
    unsigned trips; /* consecutive trips without a close: the wait grows */
    unsigned trials_issued, trials_done, trial_failures, trial_slow;
    /* metrics */
    bk_gauge_t *state_gauge;
    bk_counter_t *calls_total[M_COUNT];
};

void bk_breaker_opts_init(bk_breaker_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->name = "default";
    o->window = BK_WINDOW_COUNT;
    o->window_size = 100;
    o->min_calls = 20;
    o->failure_threshold = 0.5;
    o->slow_threshold = 1.0;
    o->slow_call_ns = 10 * BK_NSEC_PER_SEC;
    o->open_ns = 30 * BK_NSEC_PER_SEC;
    o->open_multiplier = 1.0;
    o->open_max_ns = 600 * BK_NSEC_PER_SEC;
    o->half_open_calls = 5;
}
BK__ASSERT_ABI_SIZE(bk_breaker_opts_t, 176);
BK__ASSERT_ABI_SIZE(bk_breaker_permit_t, 8); /* a token: one generation, never grows */

const char *bk_breaker_state_name(bk_breaker_state_t s)
{
    switch (s) {
    case BK_BREAKER_CLOSED: return "closed";
    case BK_BREAKER_OPEN: return "open";
    case BK_BREAKER_HALF_OPEN: return "half_open";
    case BK_BREAKER_FORCED_OPEN: return "forced_open";
    case BK_BREAKER_DISABLED: return "disabled";
    }
    return "unknown";
}

static int metrics_init(bk_breaker_t *b)
{
    bk_metric_t *fam;
    int rc = bk_metrics_gauge(b->o.metrics, "breaker_state",
                              "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced "
                              "open, 4 disabled.",
                              (const char *[]){"name", NULL}, &fam);
    if (rc == BK_OK)
        rc = bk_metric_gauge(fam, (const char *[]){b->name, NULL}, &b->state_gauge);
    if (rc == BK_OK)
        rc = bk_metrics_counter(b->o.metrics, "breaker_calls_total",
                                "Calls seen by a circuit breaker, by outcome.",
                                (const char *[]){"name", "outcome", NULL}, &fam);
    static const char *const names[M_COUNT] = {"success", "failure", "slow", "rejected"};
    for (int i = 0; rc == BK_OK && i < M_COUNT; i++)
        rc = bk_metric_counter(fam, (const char *[]){b->name, names[i], NULL}, &b->calls_total[i]);
    return rc;
}

static void count(bk_breaker_t *b, int which)
{
    if (b->calls_total[which] != NULL)
        bk_counter_inc(b->calls_total[which]);
}

int bk_breaker_new(const bk_breaker_opts_t *opts, bk_breaker_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    *out = NULL;
    bk_breaker_opts_t defaults;
    if (opts == NULL) {
        bk_breaker_opts_init(&defaults);
        opts = &defaults;
    }
    const bk_breaker_opts_t *o = opts;
    if (o->name == NULL || o->window_size == 0 || o->window_size > 1000000 ||
        (o->window != BK_WINDOW_COUNT && o->window != BK_WINDOW_TIME) ||
        !(o->failure_threshold > 0 && o->failure_threshold <= 1) ||
        !(o->slow_threshold > 0 && o->slow_threshold <= 1) || o->slow_call_ns <= 0 ||
        o->open_ns <= 0 || !(o->open_multiplier >= 1) || o->open_max_ns < o->open_ns ||
        o->half_open_calls == 0 ||
        (o->window == BK_WINDOW_COUNT && o->min_calls > o->window_size))
        return BK_EINVAL; /* (a count window never holds more than window_size calls) */
    bk_breaker_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        return BK_ENOMEM;
    b->o = *o;
    b->name = strdup(o->name);
    b->o.name = b->name;
    if (o->window == BK_WINDOW_COUNT)
        b->ring = calloc(o->window_size, 1);
    else
        b->buckets = calloc(o->window_size, sizeof *b->buckets);
    int rc = b->name && (b->ring || b->buckets) ? BK_OK : BK_ENOMEM;
    if (rc == BK_OK && o->metrics != NULL)
        rc = metrics_init(b);
    if (rc != BK_OK) {
        free(b->ring);
        free(b->buckets);
        free(b->name);
        free(b);
        return rc;
    }
    /* The critical sections are a few dozen instructions: spin briefly before
     * sleeping, rather than paying a futex round trip when two threads meet. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&b->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    atomic_init(&b->state, BK_BREAKER_CLOSED);
    atomic_init(&b->generation, 1);
    *out = b;
    return BK_OK;
}

void bk_breaker_free(bk_breaker_t *b)
{
    if (b == NULL)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b->ring);
    free(b->buckets);
    free(b->name);
    free(b);
}

bk_breaker_state_t bk_breaker_state(bk_breaker_t *b)
{
    return b ? (bk_breaker_state_t)atomic_load(&b->state) : BK_BREAKER_CLOSED;
}

static void window_clear(bk_breaker_t *b)
{
    if (b->ring)
        memset(b->ring, 0, b->o.window_size);
    else
        memset(b->buckets, 0, b->o.window_size * sizeof *b->buckets);
    b->pos = 0;
    b->last_sec = 0;
    b->calls = b->failures = b->slow = 0;
}

/* Drops the buckets of seconds that have left the time window. Amortised O(1):
 * each second is cleared once. */
static void window_advance(bk_breaker_t *b, int64_t sec)
{
    int64_t n = b->o.window_size;
    int64_t from = b->last_sec + 1;
    if (sec - from >= n)
        from = sec - n + 1;
    for (int64_t s = from; s <= sec; s++) {
        struct bucket *k = &b->buckets[s % n];
        b->calls -= k->calls;
        b->failures -= k->failures;
        b->slow -= k->slow;
        *k = (struct bucket){.sec = s};
    }
    if (sec > b->last_sec)
        b->last_sec = sec;
}

static void window_add(bk_breaker_t *b, bool failure, bool slow)
{
    if (b->ring != NULL) {
        uint8_t old = b->ring[b->pos];
        if (old & USED) {
            b->calls--;
            b->failures -= old & 1u;
            b->slow -= (old & SLOW) != 0;
        }
        b->ring[b->pos] = (uint8_t)(USED | (failure ? 1u : 0u) | (slow ? SLOW : 0u));
        b->pos = (b->pos + 1) % b->o.window_size;
    } else {
        int64_t sec = bk_clock_mono_ns(b->o.clock) / BK_NSEC_PER_SEC;
        if (sec > b->last_sec || b->last_sec == 0)
            window_advance(b, sec);
        struct bucket *k = &b->buckets[b->last_sec % b->o.window_size];
        k->calls++;
        k->failures += failure;
        k->slow += slow;
    }
    b->calls++;
    b->failures += failure;
    b->slow += slow;
}

static bool over(uint32_t part, uint32_t whole, double threshold)
{
    return whole > 0 && (double)part >= threshold * (double)whole;
}

/* Changes state under the lock; the caller reports the change after unlocking. */
static void set_state(bk_breaker_t *b, bk_breaker_state_t to, int64_t now)
{
    atomic_fetch_add(&b->generation, 1);
    if (to == BK_BREAKER_OPEN) {
        double wait = (double)b->o.open_ns;
        for (unsigned i = 0; i < b->trips && wait < (double)b->o.open_max_ns; i++)
            wait *= b->o.open_multiplier;
        if (wait > (double)b->o.open_max_ns)
            wait = (double)b->o.open_max_ns;
        b->open_until = now + (int64_t)wait;
        b->trips++;
    } else if (to == BK_BREAKER_HALF_OPEN) {
        b->trials_issued = b->trials_done = b->trial_failures = b->trial_slow = 0;
        b->half_open_since = now;
    } else if (to == BK_BREAKER_CLOSED) {
        b->trips = 0;
        window_clear(b);
    }
    atomic_store(&b->state, to);
    if (b->state_gauge != NULL)
        bk_gauge_set(b->state_gauge, (double)to);
}

static void report(bk_breaker_t *b, bk_breaker_state_t from, bk_breaker_state_t to)
{
    if (from != to && b->o.on_state_change != NULL)
        b->o.on_state_change(b, from, to, b->o.ud);
}

int bk_breaker_acquire(bk_breaker_t *b, bk_breaker_permit_t *permit)
{
    if (b == NULL || permit == NULL)
        return BK_EINVAL;
    /* Generation first: a permit never claims a newer period than the state it saw. */
    permit->generation = atomic_load(&b->generation);
    int s = atomic_load(&b->state);
    if (s == BK_BREAKER_CLOSED || s == BK_BREAKER_DISABLED)
        return BK_OK;
    if (s == BK_BREAKER_FORCED_OPEN) {
        permit->generation = 0;
        count(b, M_REJECTED);
        return BK_EUNAVAIL;
    }
    int rc = BK_EUNAVAIL;
    bk_breaker_state_t from = (bk_breaker_state_t)s, to = from;
    pthread_mutex_lock(&b->mu);
    s = atomic_load(&b->state);
    from = to = (bk_breaker_state_t)s;
    if (s == BK_BREAKER_OPEN) {
        int64_t now = bk_clock_mono_ns(b->o.clock);
        if (now >= b->open_until) {
            set_state(b, BK_BREAKER_HALF_OPEN, now);
            to = BK_BREAKER_HALF_OPEN;
            s = to;
        }
    }
    if (s == BK_BREAKER_HALF_OPEN && b->trials_issued == b->o.half_open_calls) {
        /* Trials that never came back (their caller lost the permit) must not hold
         * the breaker half-open for ever: after open_ns a new set begins, and the
         * new generation makes the lost permits stale. */
        int64_t now = bk_clock_mono_ns(b->o.clock);
        if (now - b->half_open_since >= b->o.open_ns)
            set_state(b, BK_BREAKER_HALF_OPEN, now);
    }
    if (s == BK_BREAKER_HALF_OPEN) {
        if (b->trials_issued < b->o.half_open_calls) {
            b->trials_issued++;
            rc = BK_OK;
        }
    } else if (s == BK_BREAKER_CLOSED || s == BK_BREAKER_DISABLED) {
        rc = BK_OK;
    }
    /* A refused permit gets generation 0, which no period has: recording it by
     * mistake counts nothing. */
    permit->generation = rc == BK_OK ? atomic_load(&b->generation) : 0;
    pthread_mutex_unlock(&b->mu);
    if (rc != BK_OK)
        count(b, M_REJECTED);
    report(b, from, to);
    return rc;
}

void bk_breaker_record(bk_breaker_t *b, const bk_breaker_permit_t *permit, bk_outcome_t outcome,
                       int64_t duration_ns)
{
    if (b == NULL || permit == NULL)
        return;
    bool failure = outcome == BK_OUTCOME_FAILURE;
    bool slow = outcome != BK_OUTCOME_IGNORED && duration_ns >= b->o.slow_call_ns;
    if (outcome != BK_OUTCOME_IGNORED) {
        count(b, failure ? M_FAILURE : M_SUCCESS);
        if (slow)
            count(b, M_SLOW);
    }
    if (atomic_load(&b->state) == BK_BREAKER_DISABLED)
        return;
    bk_breaker_state_t from, to;
    pthread_mutex_lock(&b->mu);
    from = to = (bk_breaker_state_t)atomic_load(&b->state);
    if (permit->generation != atomic_load(&b->generation)) {
        pthread_mutex_unlock(&b->mu); /* a permit from an earlier state period */
        return;
    }
    if (from == BK_BREAKER_CLOSED && outcome != BK_OUTCOME_IGNORED) {
        window_add(b, failure, slow);
        if (b->calls >= b->o.min_calls &&
            (over(b->failures, b->calls, b->o.failure_threshold) ||
             over(b->slow, b->calls, b->o.slow_threshold)))
            to = BK_BREAKER_OPEN;
    } else if (from == BK_BREAKER_HALF_OPEN) {
        if (outcome == BK_OUTCOME_IGNORED) {
            b->trials_issued--; /* the slot goes to another trial */
        } else {
            b->trials_done++;
            b->trial_failures += failure;
            b->trial_slow += slow;
            if (b->trials_done == b->o.half_open_calls)
                to = over(b->trial_failures, b->trials_done, b->o.failure_threshold) ||
                             over(b->trial_slow, b->trials_done, b->o.slow_threshold)
                         ? BK_BREAKER_OPEN
                         : BK_BREAKER_CLOSED;
        }
    }
    if (to != from)
        set_state(b, to, bk_clock_mono_ns(b->o.clock));
    pthread_mutex_unlock(&b->mu);
    report(b, from, to);
}

int bk_breaker_force(bk_breaker_t *b, bk_breaker_state_t state)
{
    if (b == NULL || (state != BK_BREAKER_FORCED_OPEN && state != BK_BREAKER_DISABLED &&
                      state != BK_BREAKER_CLOSED))
        return BK_EINVAL;
    pthread_mutex_lock(&b->mu);
    bk_breaker_state_t from = (bk_breaker_state_t)atomic_load(&b->state);
    set_state(b, state, bk_clock_mono_ns(b->o.clock));
    if (state == BK_BREAKER_CLOSED)
        b->trips = 0;
    pthread_mutex_unlock(&b->mu);
    report(b, from, state);
    return BK_OK;
}
