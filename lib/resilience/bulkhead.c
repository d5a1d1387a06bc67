/* The bulkhead: a counting semaphore with a bounded wait, so one slow dependency
 * cannot take every thread of the process.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <backend/resilience.h>

#include "core/abi_int.h"

struct bk_bulkhead {
    pthread_mutex_t mu;
    pthread_cond_t freed;
    unsigned max, in_use;
    int64_t max_wait_ns;
};

void bk_bulkhead_opts_init(bk_bulkhead_opts_t *opts)
{
    memset(opts, 0, sizeof *opts); /* max_wait_ns 0: a full bulkhead refuses at once */
}
BK__ASSERT_ABI_SIZE(bk_bulkhead_opts_t, 72);

int bk_bulkhead_new(unsigned max_concurrent, const bk_bulkhead_opts_t *opts, bk_bulkhead_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    *out = NULL;
    int64_t max_wait_ns = opts != NULL ? opts->max_wait_ns : 0;
    if (max_concurrent == 0 || max_wait_ns < 0)
        return BK_EINVAL;
    bk_bulkhead_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        return BK_ENOMEM;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* waits immune to wall-clock steps */
    pthread_cond_init(&b->freed, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&b->mu, NULL);
    b->max = max_concurrent;
    b->max_wait_ns = max_wait_ns;
    *out = b;
    return BK_OK;
}

void bk_bulkhead_free(bk_bulkhead_t *b)
{
    if (b == NULL)
        return;
    pthread_cond_destroy(&b->freed);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

int bk_bulkhead_enter(bk_bulkhead_t *b)
{
    if (b == NULL)
        return BK_EINVAL;
    pthread_mutex_lock(&b->mu);
    if (b->in_use == b->max && b->max_wait_ns > 0) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = until.tv_nsec + b->max_wait_ns % BK_NSEC_PER_SEC;
        until.tv_sec += (time_t)(b->max_wait_ns / BK_NSEC_PER_SEC + ns / BK_NSEC_PER_SEC);
        until.tv_nsec = (long)(ns % BK_NSEC_PER_SEC);
        while (b->in_use == b->max)
            if (pthread_cond_timedwait(&b->freed, &b->mu, &until) == ETIMEDOUT)
                break;
    }
    int rc = BK_EBUSY;
    if (b->in_use < b->max) {
        b->in_use++;
        rc = BK_OK;
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

void bk_bulkhead_leave(bk_bulkhead_t *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    if (b->in_use > 0)
        b->in_use--;
    pthread_cond_signal(&b->freed);
    pthread_mutex_unlock(&b->mu);
}

unsigned bk_bulkhead_in_use(bk_bulkhead_t *b)
{
    if (b == NULL)
        return 0;
    pthread_mutex_lock(&b->mu);
    unsigned n = b->in_use;
    pthread_mutex_unlock(&b->mu);
    return n;
}
