/* Retry schedules (exponential backoff with the jitters of the AWS architecture
 * blog's "Exponential Backoff and Jitter") and gRPC-style retry budgets.
 * SPDX-License-Identifier: MIT */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <backend/resilience.h>

#include "core/abi_int.h"
#include "resilience/resilience_int.h"

void bk_retry_opts_init(bk_retry_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->max_attempts = 3;
    o->base_ns = 100 * BK_NSEC_PER_MSEC;
    o->cap_ns = 10 * BK_NSEC_PER_SEC;
    o->jitter = BK_JITTER_FULL;
}
BK__ASSERT_ABI_SIZE(bk_retry_opts_t, 136);
BK__ASSERT_ABI_SIZE(bk_retry_t, 240);

/* xorshift64*: fast, seedable, good enough for spreading retries. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

/* Uniform in [lo, hi]. */
static int64_t rng_between(uint64_t *s, int64_t lo, int64_t hi)
{
    if (hi <= lo)
        return lo;
    return lo + (int64_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

int bk_retry_begin(bk_retry_t *r, const bk_retry_opts_t *opts, bool idempotent, uint64_t seed)
{
    bk_retry_opts_t defaults;
    if (opts == NULL) {
        bk_retry_opts_init(&defaults);
        opts = &defaults;
    }
    if (r == NULL || opts->max_attempts == 0 || opts->base_ns <= 0 ||
        opts->cap_ns < opts->base_ns || opts->deadline_ns < 0 || opts->jitter < BK_JITTER_NONE ||
        opts->jitter > BK_JITTER_DECORRELATED)
        return BK_EINVAL;
    memset(r, 0, sizeof *r);
    r->o = *opts;
    r->idempotent = idempotent;
    r->attempt = 1; /* the first attempt is about to run */
    r->start_ns = bk_clock_mono_ns(opts->clock);
    r->prev_delay_ns = opts->base_ns;
    if (seed == 0 && bk_random_bytes(&seed, sizeof seed) != BK_OK)
        return BK_ESYS;
    r->rng = seed ? seed : 1; /* xorshift must not start at 0 */
    return BK_OK;
}

static bool default_retryable(int status)
{
    return status != BK_OK && status != BK_EINVAL && status != BK_ECANCELED;
}

/* min(cap, base * 2^n) without overflow. */
static int64_t exp_delay(const bk_retry_opts_t *o, unsigned n)
{
    int64_t d = o->base_ns;
    for (unsigned i = 0; i < n && d < o->cap_ns; i++)
        d = d > o->cap_ns / 2 ? o->cap_ns : d * 2;
    return d < o->cap_ns ? d : o->cap_ns;
}

bool bk_retry_next(bk_retry_t *r, int *status, int64_t retry_after_ns, int64_t *delay_ns)
{
    if (r == NULL || status == NULL || delay_ns == NULL) {
        if (status != NULL)
            *status = BK_EINVAL;
        return false;
    }
    *delay_ns = 0;
    const bk_retry_opts_t *o = &r->o;
    int st = *status;
    if (st == BK_OK) {
        bk_retry_budget_record(o->budget, true);
        return false;
    }
    bool retryable = r->idempotent && (o->retryable ? o->retryable(st, o->ud) : default_retryable(st));
    if (!retryable)
        return false; /* the attempt's own status is the answer */
    /* Only failures the policy would retry cost tokens, as in gRPC. */
    bk_retry_budget_record(o->budget, false);
    if (r->attempt >= o->max_attempts)
        return false; /* the last attempt's status says why better than we could */
    if (o->budget != NULL && !bk_retry_budget_allows(o->budget)) {
        *status = BK_EBUSY;
        return false;
    }

    unsigned n = r->attempt - 1; /* retries so far */
    int64_t d;
    switch (o->jitter) {
    case BK_JITTER_NONE:
        d = exp_delay(o, n);
        break;
    case BK_JITTER_FULL:
        d = rng_between(&r->rng, 0, exp_delay(o, n));
        break;
    case BK_JITTER_EQUAL: {
        int64_t e = exp_delay(o, n);
        d = e / 2 + rng_between(&r->rng, 0, e - e / 2);
        break;
    }
    default: { /* decorrelated: sleep = min(cap, random_between(base, sleep * 3)) */
        int64_t hi = r->prev_delay_ns > o->cap_ns / 3 ? o->cap_ns : r->prev_delay_ns * 3;
        d = rng_between(&r->rng, o->base_ns, hi);
        if (d > o->cap_ns)
            d = o->cap_ns;
        break;
    }
    }
    r->prev_delay_ns = d; /* the schedule's own step, whatever Retry-After says */
    if (retry_after_ns > d)
        d = retry_after_ns; /* the server knows better when it will be back */
    if (o->deadline_ns > 0) {
        int64_t left = r->start_ns + o->deadline_ns - bk_clock_mono_ns(o->clock);
        if (d >= left) {
            *status = BK_ETIMEDOUT; /* the next attempt could not start in time */
            return false;
        }
    }
    r->attempt++;
    *delay_ns = d;
    return true;
}

/* ------------------------------------------------------------------ budget */
#define MILLI 1000 /* tokens are kept in thousandths, so ratio 0.1 is exact */

struct bk_retry_budget {
    _Atomic int64_t tokens; /* thousandths */
    int64_t max, ratio;
};

/* The values of the example in gRPC's retry design (A6): a tenth of a token back
 * per success, so retries stop when more than about one call in ten fails. */
void bk_retry_budget_opts_init(bk_retry_budget_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->max_tokens = 10;
    opts->ratio = 0.1;
}
BK__ASSERT_ABI_SIZE(bk_retry_budget_opts_t, 80);

int bk_retry_budget_new(const bk_retry_budget_opts_t *opts, bk_retry_budget_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    *out = NULL;
    bk_retry_budget_opts_t o;
    bk_retry_budget_opts_init(&o);
    /* NULL, or zero fields, mean the defaults: a struct cleared by other means works. */
    unsigned max_tokens = opts && opts->max_tokens ? opts->max_tokens : o.max_tokens;
    double ratio = opts && opts->ratio != 0 ? opts->ratio : o.ratio;
    if (max_tokens == 0 || max_tokens > 1000000 || !(ratio > 0 && ratio <= 1000))
        return BK_EINVAL;
    bk_retry_budget_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        return BK_ENOMEM;
    b->max = (int64_t)max_tokens * MILLI;
    b->ratio = (int64_t)(ratio * MILLI + 0.5);
    atomic_init(&b->tokens, b->max);
    *out = b;
    return BK_OK;
}

void bk_retry_budget_free(bk_retry_budget_t *b)
{
    free(b);
}

void bk_retry_budget_record(bk_retry_budget_t *b, bool success)
{
    if (b == NULL)
        return;
    int64_t cur = atomic_load(&b->tokens), next;
    do {
        next = success ? cur + b->ratio : cur - MILLI;
        if (next > b->max)
            next = b->max;
        if (next < 0)
            next = 0;
    } while (!atomic_compare_exchange_weak(&b->tokens, &cur, next));
}

bool bk_retry_budget_allows(bk_retry_budget_t *b)
{
    return b == NULL || atomic_load(&b->tokens) * 2 > b->max;
}

int64_t bk__retry_delay(const bk_retry_opts_t *opts, int attempt)
{
    /* bk_retry's own schedule, stepped to this attempt. */
    bk_retry_opts_t o = *opts;
    int steps = attempt < 1 ? 1 : attempt > 64 ? 64 : attempt; /* past 64 doublings every cap is reached */
    o.max_attempts = (unsigned)steps + 1;
    o.deadline_ns = 0;
    o.budget = NULL;
    o.retryable = NULL;
    bk_retry_t r;
    if (bk_retry_begin(&r, &o, true, 0) != BK_OK)
        return o.base_ns;
    int64_t d = o.base_ns;
    for (int i = 0; i < steps; i++) {
        int st = BK_EIO;
        if (!bk_retry_next(&r, &st, 0, &d))
            break;
    }
    return d;
}
