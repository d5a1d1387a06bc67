/* The injectable clock: the system clock, or a fake one that tests advance by hand.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <backend/core.h>

/* A fake clock; the system clock is the NULL pointer, so it needs no object. The
 * fields are atomic so a test thread may advance time while others read it. */
struct bk_clock {
    _Atomic int64_t mono_ns;
    _Atomic int64_t wall_ns;
};

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
        bk_clock_t *c = (bk_clock_t *)clock;
        atomic_fetch_add(&c->mono_ns, ns);
        atomic_fetch_add(&c->wall_ns, ns);
        return BK_OK;
    }
    if (ns == 0)
        return BK_OK;
    struct timespec deadline;
    if (clock_gettime(CLOCK_MONOTONIC, &deadline) != 0)
        return BK_ESYS;
    int64_t sec = ns / BK_NSEC_PER_SEC;
    int64_t nsec = deadline.tv_nsec + ns % BK_NSEC_PER_SEC;
    if (nsec >= BK_NSEC_PER_SEC) {
        nsec -= BK_NSEC_PER_SEC;
        sec++;
    }
    deadline.tv_sec += (time_t)sec;
    deadline.tv_nsec = (long)nsec;
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
    *out = c;
    return BK_OK;
}

int bk_clock_fake_advance(bk_clock_t *clock, int64_t ns)
{
    if (clock == NULL || ns < 0)
        return BK_EINVAL;
    atomic_fetch_add(&clock->mono_ns, ns);
    atomic_fetch_add(&clock->wall_ns, ns);
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
    free(clock);
}
