/*
 * libbackend resilience: circuit breaker, retry with backoff and jitter, retry
 * budget, bulkhead and a GCRA rate limiter with a pluggable store.
 *
 * Layer 1. Pure policy: nothing here talks to a server. Every object is
 * thread-safe and reads time only through its bk_clock_t, so tests drive it with
 * a fake clock.
 *
 *   bk_breaker_permit_t p;
 *   if (bk_breaker_acquire(br, &p) != BK_OK)
 *       return BK_EUNAVAIL;                       (open: fail fast)
 *   int64_t t0 = bk_clock_mono_ns(clock);
 *   int rc = call_the_dependency();
 *   bk_breaker_record(br, &p, rc == BK_OK ? BK_OUTCOME_SUCCESS : BK_OUTCOME_FAILURE,
 *                     bk_clock_mono_ns(clock) - t0);
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_RESILIENCE_H
#define BACKEND_RESILIENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <backend/core.h>
#include <backend/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ breaker */
typedef struct bk_breaker bk_breaker_t;

typedef enum bk_breaker_state {
    BK_BREAKER_CLOSED = 0,      /* calls pass; outcomes fill the window */
    BK_BREAKER_OPEN = 1,        /* calls are refused until the wait ends */
    BK_BREAKER_HALF_OPEN = 2,   /* a fixed number of trial calls decide */
    BK_BREAKER_FORCED_OPEN = 3, /* an operator refuses every call */
    BK_BREAKER_DISABLED = 4     /* an operator lets every call pass, nothing trips */
} bk_breaker_state_t;

typedef enum bk_outcome {
    BK_OUTCOME_SUCCESS = 0,
    BK_OUTCOME_FAILURE = 1,
    BK_OUTCOME_IGNORED = 2 /* neither: not counted (e.g. the caller's own 4xx) */
} bk_outcome_t;

typedef enum bk_window_kind {
    BK_WINDOW_COUNT = 0, /* the last window_size calls */
    BK_WINDOW_TIME = 1   /* the calls of the last window_size seconds (1 s buckets) */
} bk_window_kind_t;

typedef void (*bk_breaker_state_fn)(bk_breaker_t *b, bk_breaker_state_t from,
                                    bk_breaker_state_t to, void *ud);

typedef struct bk_breaker_opts {
    const char *name;          /* metrics label; default "default" */
    bk_window_kind_t window;   /* default BK_WINDOW_COUNT */
    unsigned window_size;      /* calls or seconds; default 100 */
    unsigned min_calls;        /* no trip before this many calls in the window; default 20 */
    double failure_threshold;  /* trips at failures/calls >= this (0..1]; default 0.5 */
    double slow_threshold;     /* trips at slow/calls >= this (0..1]; default 1.0 */
    int64_t slow_call_ns;      /* a call this long or longer is slow; default 10 s */
    int64_t open_ns;           /* the first wait in OPEN; default 30 s */
    double open_multiplier;    /* each further trip without a close multiplies the wait
                                  (>= 1); default 1 */
    int64_t open_max_ns;       /* cap on the grown wait; default 10 min */
    unsigned half_open_calls;  /* trial calls in HALF_OPEN; default 5 */
    bk_clock_t *clock;         /* NULL = system clock; borrowed */
    bk_metrics_t *metrics;     /* breaker_state, breaker_calls_total; NULL = none; borrowed */
    bk_breaker_state_fn on_state_change; /* called after each change, outside the lock */
    void *ud;                  /* on_state_change's last argument */
    uint64_t reserved_[8];     /* zeroed by bk_breaker_opts_init: room to grow (HACKING.md) */
} bk_breaker_opts_t;

/* What acquire hands out and record takes back: which generation of the breaker
 * (state period) the call belongs to. Plain data; copy it freely. */
typedef struct bk_breaker_permit {
    uint64_t generation;
} bk_breaker_permit_t;

BK_EXPORT void bk_breaker_opts_init(bk_breaker_opts_t *opts);
/* opts NULL: the defaults of bk_breaker_opts_init. BK_EINVAL, BK_ENOMEM, BK_EEXIST
 * (metrics: a family of the same name but another shape). */
BK_EXPORT int bk_breaker_new(const bk_breaker_opts_t *opts, bk_breaker_t **out);
BK_EXPORT void bk_breaker_free(bk_breaker_t *b);
/* BK_OK with a permit, or BK_EUNAVAIL at once when the breaker refuses the call. */
BK_EXPORT int bk_breaker_acquire(bk_breaker_t *b, bk_breaker_permit_t *permit);
/* Records a permitted call's outcome and duration. A permit from an earlier
 * generation (the state changed since it was acquired) is ignored. */
BK_EXPORT void bk_breaker_record(bk_breaker_t *b, const bk_breaker_permit_t *permit,
                                 bk_outcome_t outcome, int64_t duration_ns);
BK_EXPORT bk_breaker_state_t bk_breaker_state(bk_breaker_t *b);
/* Operator control: BK_BREAKER_FORCED_OPEN, BK_BREAKER_DISABLED, or BK_BREAKER_CLOSED
 * (back to normal with an empty window). BK_EINVAL for the other states. */
BK_EXPORT int bk_breaker_force(bk_breaker_t *b, bk_breaker_state_t state);
/* "closed", "open", "half_open", "forced_open", "disabled" ("unknown" otherwise). */
BK_EXPORT const char *bk_breaker_state_name(bk_breaker_state_t state);

/* ------------------------------------------------------------------ retry */
typedef enum bk_jitter {
    BK_JITTER_NONE = 0,        /* min(cap, base * 2^n) */
    BK_JITTER_FULL = 1,        /* random in [0, min(cap, base * 2^n)] */
    BK_JITTER_EQUAL = 2,       /* half of it fixed, half random */
    BK_JITTER_DECORRELATED = 3 /* min(cap, random in [base, previous * 3]) */
} bk_jitter_t;

typedef struct bk_retry_budget bk_retry_budget_t;

typedef struct bk_retry_opts {
    unsigned max_attempts;  /* including the first; default 3 */
    int64_t deadline_ns;    /* from the first attempt; 0 = none; default 0 */
    int64_t base_ns;        /* default 100 ms */
    int64_t cap_ns;         /* default 10 s */
    bk_jitter_t jitter;     /* default BK_JITTER_FULL */
    /* Which failures are worth another attempt: status is what the attempt
     * returned. NULL = every status except BK_OK, BK_EINVAL and BK_ECANCELED. */
    bool (*retryable)(int status, void *ud);
    void *ud;                  /* retryable's last argument */
    bk_retry_budget_t *budget; /* shared retry budget; NULL = none; borrowed */
    bk_clock_t *clock;         /* NULL = system clock; borrowed */
    uint64_t reserved_[8];     /* zeroed by bk_retry_opts_init: room to grow (HACKING.md) */
} bk_retry_opts_t;

/* The state of one call under a policy: on the caller's stack, one per call. The
 * caller allocates it and bk_retry_begin fills it, so its size is part of the ABI
 * like an options struct's: the tail is room for new state (HACKING.md). */
typedef struct bk_retry {
    bk_retry_opts_t o;
    unsigned attempt;     /* attempts made so far */
    int64_t start_ns;
    int64_t prev_delay_ns;
    uint64_t rng;         /* xorshift state */
    bool idempotent;
    uint64_t reserved_[8]; /* zeroed by bk_retry_begin */
} bk_retry_t;

BK_EXPORT void bk_retry_opts_init(bk_retry_opts_t *opts);
/*
 * Starts a call: copies opts (NULL: the defaults of bk_retry_opts_init), reads the clock. idempotent says whether the
 * operation may run twice (GET, or a write carrying an idempotency key); a call
 * that is not is never retried. seed 0 seeds the jitter from bk_random_bytes;
 * another value gives a reproducible schedule (tests).
 */
BK_EXPORT int bk_retry_begin(bk_retry_t *r, const bk_retry_opts_t *opts, bool idempotent,
                             uint64_t seed);
/*
 * Call after every attempt, with *status the attempt's result. true: wait
 * *delay_ns, then try again. false: the call is over and *status is its result:
 * BK_OK after a success; the attempt's status when it is not retryable, the call
 * is not idempotent, or max_attempts are used up; BK_ETIMEDOUT when the next
 * attempt could not start before the deadline; BK_EBUSY when the retry budget
 * refuses. retry_after_ns (0 = none) is the
 * server's Retry-After: it replaces a shorter computed delay, and a wait past the
 * deadline ends the call instead.
 *
 *   for (;;) {
 *       int rc = attempt();
 *       if (!bk_retry_next(&r, &rc, 0, &delay))
 *           return rc;
 *       sleep_ns(delay);
 *   }
 */
BK_EXPORT bool bk_retry_next(bk_retry_t *r, int *status, int64_t retry_after_ns,
                             int64_t *delay_ns);

/* gRPC-style retry throttling: tokens start at max_tokens; a retryable failure
 * takes one, a success gives back ratio; retries are allowed while tokens > max/2.
 * One budget is shared by many calls (thread-safe). */
typedef struct bk_retry_budget_opts {
    unsigned max_tokens;   /* 1..1000000; default 10 (gRPC's maxTokens) */
    double ratio;          /* tokens a success gives back, (0, 1000]; default 0.1
                              (gRPC's tokenRatio) */
    uint64_t reserved_[8]; /* zeroed by bk_retry_budget_opts_init: room to grow (HACKING.md) */
} bk_retry_budget_opts_t;

BK_EXPORT void bk_retry_budget_opts_init(bk_retry_budget_opts_t *opts);
/* opts NULL: the defaults. BK_EINVAL, BK_ENOMEM. */
BK_EXPORT int bk_retry_budget_new(const bk_retry_budget_opts_t *opts, bk_retry_budget_t **out);
BK_EXPORT void bk_retry_budget_free(bk_retry_budget_t *b);
/* Counts an attempt's outcome; bk_retry_next does it for the calls it sees. */
BK_EXPORT void bk_retry_budget_record(bk_retry_budget_t *b, bool success);
BK_EXPORT bool bk_retry_budget_allows(bk_retry_budget_t *b);

/* ------------------------------------------------------------------ bulkhead */
typedef struct bk_bulkhead bk_bulkhead_t;

typedef struct bk_bulkhead_opts {
    int64_t max_wait_ns;   /* how long enter waits for a slot; default 0 = not at all.
                              Real time (a condition variable), not the fake clock */
    uint64_t reserved_[8]; /* zeroed by bk_bulkhead_opts_init: room to grow (HACKING.md) */
} bk_bulkhead_opts_t;

BK_EXPORT void bk_bulkhead_opts_init(bk_bulkhead_opts_t *opts);
/* At most max_concurrent (>= 1) holders; opts NULL: the defaults. BK_EINVAL, BK_ENOMEM. */
BK_EXPORT int bk_bulkhead_new(unsigned max_concurrent, const bk_bulkhead_opts_t *opts,
                              bk_bulkhead_t **out);
BK_EXPORT void bk_bulkhead_free(bk_bulkhead_t *b);
/* BK_OK (the caller holds a slot: leave it with bk_bulkhead_leave) or BK_EBUSY. */
BK_EXPORT int bk_bulkhead_enter(bk_bulkhead_t *b);
BK_EXPORT void bk_bulkhead_leave(bk_bulkhead_t *b);
BK_EXPORT unsigned bk_bulkhead_in_use(bk_bulkhead_t *b);

/* ------------------------------------------------------------------ rate limit */
typedef struct bk_ratelimit bk_ratelimit_t;

/*
 * Where limiter state lives. The state of a key is one int64 (the GCRA
 * theoretical arrival time, wall-clock ns) and a version; the limiter loads it,
 * computes, and stores it back only if the version is unchanged, retrying on
 * conflict: exactly what memcached's gets/cas (or add for a new key) offers, so a
 * shared store across processes fits the same interface.
 */
typedef struct bk_ratelimit_store {
    /* *tat and *version of key; BK_ENOTFOUND when absent. */
    int (*load)(const char *key, int64_t *tat, uint64_t *version, void *ud);
    /* Stores tat when key still has version (0: key must be absent), to expire
     * after ttl_ns idle; BK_ECONFLICT when it changed, another code on failure. */
    int (*store)(const char *key, int64_t tat, uint64_t version, int64_t ttl_ns, void *ud);
    void (*destroy)(void *ud); /* called by bk_ratelimit_free; may be NULL */
    void *ud;                  /* the last argument of each of the three */
    uint64_t reserved_[8];     /* zero (a designated initializer, or the filling
                                  function): room to grow (HACKING.md) */
} bk_ratelimit_store_t;

/* The in-process store: sharded, thread-safe, at most max_keys keys (evicted
 * in CLOCK order, an approximation of least recently used; expired keys count
 * as absent). A limiter given it checks a key in one step under the key's shard
 * lock (one hash; never a conflict), not through load and store. */
BK_EXPORT int bk_ratelimit_memory_store(size_t max_keys, bk_ratelimit_store_t *out);

typedef struct bk_ratelimit_opts {
    int64_t period_ns;  /* the period of rate; default 1 s */
    unsigned burst;     /* requests allowed at once from idle (>= 1); default 1 */
    const char *name;   /* the policy's name in RateLimit headers; default "default"; copied */
    bk_clock_t *clock;  /* wall time (shared across processes); NULL = system; borrowed */
    bk_metrics_t *metrics; /* ratelimit_denied_total{policy=name}: the checks denied,
                              peeks included; NULL = none; borrowed */
    uint64_t reserved_[7]; /* zeroed by bk_ratelimit_opts_init: room to grow (HACKING.md) */
} bk_ratelimit_opts_t;

/* Filled by bk_ratelimit_check; the caller allocates it, hence the tail. */
typedef struct bk_ratelimit_result {
    bool allowed;
    unsigned limit;          /* burst */
    unsigned remaining;      /* requests allowed right now after this one */
    int64_t reset_ns;        /* until the key is back to a full burst */
    int64_t retry_after_ns;  /* denied: until one request will be allowed; else 0 */
    uint64_t reserved_[8];   /* zeroed by bk_ratelimit_check */
} bk_ratelimit_result_t;

BK_EXPORT void bk_ratelimit_opts_init(bk_ratelimit_opts_t *opts);
/* rate: requests per period_ns, sustained (> 0). The limiter takes store (copied;
 * its destroy runs at bk_ratelimit_free, or at once when this call fails). opts
 * NULL: the defaults. BK_EINVAL, BK_ERANGE, BK_ENOMEM. */
BK_EXPORT int bk_ratelimit_new(double rate, const bk_ratelimit_store_t *store,
                               const bk_ratelimit_opts_t *opts, bk_ratelimit_t **out);
BK_EXPORT void bk_ratelimit_free(bk_ratelimit_t *rl);
/* A flag of bk_ratelimit_check: one load/store round and no pause, for a thread
 * that must not sleep (an event loop); a conflict is BK_EBUSY at once. */
#define BK_RATELIMIT_NO_WAIT 0x1u
/* A flag of bk_ratelimit_check: decide, and take nothing (the store is read, never
 * written). For a limit on failures only (logins): peek before the attempt, take
 * one when it fails. */
#define BK_RATELIMIT_PEEK 0x2u
/* Takes one request for key (any string: user, IP, API key, route). flags: 0,
 * BK_RATELIMIT_NO_WAIT, BK_RATELIMIT_PEEK. BK_OK with *res filled (allowed or not); BK_EBUSY when
 * the store kept conflicting (up to 16 rounds, with short pauses on the limiter's
 * clock, after the second: never on an event loop), or conflicted once under
 * BK_RATELIMIT_NO_WAIT; BK_EINVAL for an unknown flag. */
BK_EXPORT int bk_ratelimit_check(bk_ratelimit_t *rl, const char *key, unsigned flags,
                                 bk_ratelimit_result_t *res);
/*
 * Formats the IETF RateLimit headers for res: policy gets the RateLimit-Policy
 * value ("default";q=100;w=60), limit the RateLimit value ("default";r=57;t=3),
 * retry_after the Retry-After seconds (rounded up; "" when allowed). Each buffer
 * of at least 64 bytes (NULL to skip one). BK_ERANGE when one is too small.
 */
BK_EXPORT int bk_ratelimit_headers(const bk_ratelimit_t *rl, const bk_ratelimit_result_t *res,
                                   char *policy, char *limit, char *retry_after, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_RESILIENCE_H */
