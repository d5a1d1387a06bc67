/* The injectable clock: the system clock, or a fake one that tests advance by hand.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <backend/core.h>

#include "core/clock_int.h"

/* A fake clock; the system clock is the NULL pointer, so it needs no object. The
 * fields are atomic so a test thread may advance time while others read it. */
struct bk_clock {
    _Atomic int64_t mono_ns;
    _Atomic int64_t wall_ns;
    pthread_mutex_t watch_mu; /* guards watches; taken before any watcher's mutex */
    bk__clock_watch_t *watches; /* waiters to wake when time moves (clock_int.h) */
};

struct timespec bk__clock_timespec(int64_t mono_ns)
{
    if (mono_ns < 0)
        mono_ns = 0;
    return (struct timespec){.tv_sec = (time_t)(mono_ns / BK_NSEC_PER_SEC), .tv_nsec = (long)(mono_ns % BK_NSEC_PER_SEC)};
}

int bk__clock_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

/* The fake clock is allocated non-const by bk_clock_fake_new; watching it
 * changes only its list, under its own lock. */
void bk__clock_watch(const bk_clock_t *clock, bk__clock_watch_t *w)
{
    if (clock == NULL)
        return;
    bk_clock_t *c = (bk_clock_t *)clock;
    pthread_mutex_lock(&c->watch_mu);
    w->prev = NULL;
    w->next = c->watches;
    if (c->watches != NULL)
        c->watches->prev = w;
    c->watches = w;
    pthread_mutex_unlock(&c->watch_mu);
}

void bk__clock_unwatch(const bk_clock_t *clock, bk__clock_watch_t *w)
{
    if (clock == NULL)
        return;
    bk_clock_t *c = (bk_clock_t *)clock;
    pthread_mutex_lock(&c->watch_mu);
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        c->watches = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&c->watch_mu);
}

/* After time moved: each watcher's mutex is taken before its broadcast, so a
 * waiter that read the old time is already inside pthread_cond_wait and wakes. */
static void wake_watchers(bk_clock_t *c)
{
    pthread_mutex_lock(&c->watch_mu);
    for (bk__clock_watch_t *w = c->watches; w != NULL; w = w->next) {
        pthread_mutex_lock(w->mu);
        pthread_cond_broadcast(w->cv);
        pthread_mutex_unlock(w->mu);
    }
    pthread_mutex_unlock(&c->watch_mu);
}

int bk__clock_wait(const bk_clock_t *clock, pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ns)
{
    if (bk_clock_mono_ns(clock) >= deadline_ns)
        return BK_ETIMEDOUT;
    if (clock != NULL || deadline_ns == BK__CLOCK_NEVER) {
        pthread_cond_wait(cv, mu); /* a fake clock's advance broadcasts cv */
        return 0;
    }
    struct timespec until = bk__clock_timespec(deadline_ns);
    if (pthread_cond_timedwait(cv, mu, &until) == ETIMEDOUT)
        return BK_ETIMEDOUT;
    return 0;
}

static int64_t timespec_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * BK_NSEC_PER_SEC + ts.tv_nsec;
}

int64_t bk_clock_mono_ns(const bk_clock_t *clock)
{
    if (clock == NULL)
        return timespec_ns(CLOCK_MONOTONIC);
    return atomic_load(&clock->mono_ns);
}

int64_t bk_clock_wall_ns(const bk_clock_t *clock)
{
    if (clock == NULL)
        return timespec_ns(CLOCK_REALTIME);
    return atomic_load(&clock->wall_ns);
}

int bk_clock_sleep_ns(const bk_clock_t *clock, int64_t ns)
{
    if (ns < 0)
        return BK_EINVAL;
    if (clock != NULL) {
        /* A fake clock never blocks: the sleeper moves time itself. The object is
         * always allocated non-const by bk_clock_fake_new, so dropping const here
         * is well defined; the fields are atomic, so concurrent sleepers add up. */
        return bk_clock_fake_advance((bk_clock_t *)clock, ns);
    }
    if (ns == 0)
        return BK_OK;
    int64_t now_ns = timespec_ns(CLOCK_MONOTONIC);
    struct timespec deadline = bk__clock_timespec(ns > INT64_MAX - now_ns ? INT64_MAX : now_ns + ns);
    /* To an absolute deadline, so a signal that interrupts the sleep costs nothing:
     * the loop resumes toward the same instant. clock_nanosleep returns the error
     * number rather than setting errno; any error but EINTR ends the sleep. */
    int rc;
    while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL)) == EINTR)
        ;
    return rc == 0 ? BK_OK : BK_ESYS;
}

int bk_clock_fake_new(int64_t wall_ns, bk_clock_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    *out = NULL;
    bk_clock_t *c = malloc(sizeof *c);
    if (c == NULL)
        return BK_ENOMEM;
    atomic_init(&c->mono_ns, 0);
    atomic_init(&c->wall_ns, wall_ns);
    pthread_mutex_init(&c->watch_mu, NULL);
    c->watches = NULL;
    *out = c;
    return BK_OK;
}

int bk_clock_fake_advance(bk_clock_t *clock, int64_t ns)
{
    if (clock == NULL || ns < 0)
        return BK_EINVAL;
    atomic_fetch_add(&clock->mono_ns, ns);
    atomic_fetch_add(&clock->wall_ns, ns);
    wake_watchers(clock); /* a waiter whose deadline has come sees it now */
    return BK_OK;
}

int bk_clock_fake_set_wall(bk_clock_t *clock, int64_t wall_ns)
{
    if (clock == NULL)
        return BK_EINVAL;
    atomic_store(&clock->wall_ns, wall_ns);
    return BK_OK;
}

void bk_clock_free(bk_clock_t *clock)
{
    if (clock == NULL)
        return;
    pthread_mutex_destroy(&clock->watch_mu);
    free(clock);
}
