/* Waiting with a deadline on the injectable clock: one helper for the deadline's
 * timespec, and a way for a fake clock to wake the waiters it holds up. Hidden,
 * never part of the public API.
 * SPDX-License-Identifier: MIT */
#ifndef BK_CORE_CLOCK_INT_H
#define BK_CORE_CLOCK_INT_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <backend/core.h>

#if defined(__GNUC__)
#define BK__CLOCK_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__CLOCK_HIDDEN
#endif

/* No deadline: wait until woken. */
#define BK__CLOCK_NEVER INT64_MAX

/* The CLOCK_MONOTONIC instant mono_ns (bk_clock_mono_ns(NULL) time) as the
 * timespec pthread_cond_timedwait and clock_nanosleep take. */
BK__CLOCK_HIDDEN struct timespec bk__clock_timespec(int64_t mono_ns);

/* A condition variable a fake clock broadcasts (under mu) on every advance, so
 * that a thread waiting on it for a deadline on that clock sees the new time.
 * Registered once per waitable object (a pool, a bulkhead), not per wait. */
typedef struct bk__clock_watch {
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    struct bk__clock_watch *prev, *next;
} bk__clock_watch_t;

/* Registers w (mu and cv set by the caller) with clock; a no-op on the system
 * clock (NULL). Call without holding w->mu: an advance takes the clock's list
 * lock, then w->mu. The clock must outlive the registration. */
BK__CLOCK_HIDDEN void bk__clock_watch(const bk_clock_t *clock, bk__clock_watch_t *w);
BK__CLOCK_HIDDEN void bk__clock_unwatch(const bk_clock_t *clock, bk__clock_watch_t *w);

/* Waits on cv (created with CLOCK_MONOTONIC, and watched if clock is fake) with
 * mu held, until woken or deadline_ns on clock has come. Returns 0 when woken
 * (spuriously, possibly: the caller checks its condition and calls again) or
 * BK_ETIMEDOUT when the deadline has come. On a fake clock the wait itself has
 * no timeout: only an advance past the deadline (or a signal of cv) ends it. */
BK__CLOCK_HIDDEN int bk__clock_wait(const bk_clock_t *clock, pthread_cond_t *cv, pthread_mutex_t *mu,
                                    int64_t deadline_ns);

/* Initialises cv on CLOCK_MONOTONIC, never CLOCK_REALTIME: a wall-clock step does
 * not move a deadline. Returns 0 or an errno value. */
BK__CLOCK_HIDDEN int bk__clock_cond_init(pthread_cond_t *cv);

#endif
