/* A bounded pool of slots with a deadline on the injectable clock, and its
 * counting core. Hidden, never part of the public API.
 *
 * The counting core (bk__slotcount_t) is a bound and a wait: at most max holders,
 * a caller that finds it full waits up to a timeout for a leave. The slot pool
 * adds a resource per slot (a connection, a curl handle, a memcached_st), created
 * lazily or up front by the caller's callback, checked on acquire, closed when
 * broken, idle too long or at the end; and optional thread affinity: a thread
 * gets back the slot it released last if that slot is free (O(1): a per-slot
 * owner tag and a thread-local hint), which keeps a connection's server process
 * warm on the CPU of the thread that uses it.
 *
 * Deadlines: timeout_ns from the moment the caller would have to wait (no clock
 * is read while the pool has room), on the pool's clock. On the system clock
 * (NULL) the wait is a condition variable on CLOCK_MONOTONIC, so a wall-clock
 * step moves nothing; on a fake clock the waiter wakes when the test advances
 * the clock (bk_clock_fake_advance or bk_clock_sleep_ns on it) to or past the
 * deadline, never before, and never by real time passing (bk_clock(3)).
 * SPDX-License-Identifier: MIT */
#ifndef BK_CORE_SLOTPOOL_INT_H
#define BK_CORE_SLOTPOOL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <backend/core.h>

#include "core/clock_int.h"

#if defined(__GNUC__)
#define BK__SLOTPOOL_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__SLOTPOOL_HIDDEN
#endif

/* ------------------------------------------------------------ counting core */
/* Embedded in its owner (the bulkhead, the slot pool); the fields are the
 * implementation's: read them only through the functions below. */
typedef struct bk__slotcount {
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* a holder left, or shutdown */
    const bk_clock_t *clock;   /* NULL = system monotonic; borrowed, outlives c */
    bk__clock_watch_t watch;   /* on a fake clock: its advances wake cv */
    unsigned max, in_use, waiting;
    bool closed;
    uint64_t waits, timeouts;  /* enters that waited; that ended without a slot */
} bk__slotcount_t;

/* max >= 1. Returns BK_OK, BK_EINVAL or BK_ESYS. */
BK__SLOTPOOL_HIDDEN int bk__slotcount_init(bk__slotcount_t *c, unsigned max, const bk_clock_t *clock);
/* No thread may be inside c (call bk__slotcount_shutdown and let waiters go first). */
BK__SLOTPOOL_HIDDEN void bk__slotcount_destroy(bk__slotcount_t *c);
/* Takes one unit, waiting up to timeout_ns (<= 0: not at all; BK__CLOCK_NEVER:
 * without end) while c is full. BK_OK, BK_ETIMEDOUT (full until the deadline; a
 * refusal without waiting counts as a timeout too), BK_ECLOSED (shut down). */
BK__SLOTPOOL_HIDDEN int bk__slotcount_enter(bk__slotcount_t *c, int64_t timeout_ns);
/* Gives one unit back and wakes one waiter. */
BK__SLOTPOOL_HIDDEN void bk__slotcount_leave(bk__slotcount_t *c);
/* From now on every enter fails with BK_ECLOSED; waiters wake with it. */
BK__SLOTPOOL_HIDDEN void bk__slotcount_shutdown(bk__slotcount_t *c);
BK__SLOTPOOL_HIDDEN unsigned bk__slotcount_in_use(bk__slotcount_t *c);

/* ------------------------------------------------------------ slot pool */
typedef struct bk__slotpool bk__slotpool_t;

/* The caller's resource, one per slot. Every callback runs outside the pool's
 * lock, on the thread that acquires or releases. */
typedef struct bk__slotpool_ops {
    /* Opens a resource into *res; NULL: slots hold NULL. A failure's code (and
     * err) is what acquire (or new, for min_open) returns. */
    int (*create)(void **res, void *ud, bk_error_t *err);
    /* On acquire of a slot that holds a resource: false = broken, closed and
     * created anew in the same slot. NULL: always good. */
    bool (*validate)(void *res, void *ud);
    /* Closes a resource (broken, idle too long, or at free). NULL: nothing. */
    void (*close)(void *res, void *ud);
    void *ud;
} bk__slotpool_ops_t;

typedef struct bk__slotpool_opts {
    unsigned size;            /* slots, >= 1: the bound */
    unsigned min_open;        /* resources created by new and never reaped as idle */
    bool affinity;            /* a thread gets back the slot it released last, if free */
    int64_t idle_timeout_ns;  /* a free resource idle this long is closed (above
                                 min_open, a few per acquire); 0: never */
    const bk_clock_t *clock;  /* deadlines and idle times; NULL = system; borrowed */
} bk__slotpool_opts_t;

typedef struct bk__slotpool_stats {
    unsigned size, open, in_use; /* open: slots holding (or creating) a resource */
    uint64_t waits, timeouts;
} bk__slotpool_stats_t;

/* ops is copied. BK_OK, BK_EINVAL, BK_ENOMEM, BK_ESYS, or create's failure. */
BK__SLOTPOOL_HIDDEN int bk__slotpool_new(const bk__slotpool_opts_t *o, const bk__slotpool_ops_t *ops,
                                         bk__slotpool_t **out, bk_error_t *err);
/* Closes every free resource. No slot may be held and no thread inside. */
BK__SLOTPOOL_HIDDEN void bk__slotpool_free(bk__slotpool_t *p);
/* Every acquire from now on, and every waiter, fails with BK_ECLOSED. */
BK__SLOTPOOL_HIDDEN void bk__slotpool_shutdown(bk__slotpool_t *p);
/* A slot and its resource (never NULL when ops has a create), waiting up to
 * timeout_ns as bk__slotcount_enter does. BK_OK, BK_ETIMEDOUT, BK_ECLOSED (err
 * untouched: the adapter words them), or create's code and err. */
BK__SLOTPOOL_HIDDEN int bk__slotpool_acquire(bk__slotpool_t *p, int64_t timeout_ns, unsigned *slot, void **res,
                                             bk_error_t *err);
/* Gives slot back; broken: its resource is closed and the slot left empty. */
BK__SLOTPOOL_HIDDEN void bk__slotpool_release(bk__slotpool_t *p, unsigned slot, bool broken);
BK__SLOTPOOL_HIDDEN void bk__slotpool_stats(bk__slotpool_t *p, bk__slotpool_stats_t *st);

#endif
