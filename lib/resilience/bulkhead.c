/* The bulkhead: the counting core of core/slotpool with a bounded wait, so one
 * slow dependency cannot take every thread of the process.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include <backend/resilience.h>

#include "core/abi_int.h"
#include "core/slotpool_int.h"

struct bk_bulkhead {
    bk__slotcount_t count; /* on the system monotonic clock: the options have no clock */
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
    int rc = bk__slotcount_init(&b->count, max_concurrent, NULL);
    if (rc != BK_OK) {
        free(b);
        return rc;
    }
    b->max_wait_ns = max_wait_ns;
    *out = b;
    return BK_OK;
}

void bk_bulkhead_free(bk_bulkhead_t *b)
{
    if (b == NULL)
        return;
    bk__slotcount_destroy(&b->count);
    free(b);
}

int bk_bulkhead_enter(bk_bulkhead_t *b)
{
    if (b == NULL)
        return BK_EINVAL;
    /* Full until the deadline: the bulkhead's word for it is "busy". */
    return bk__slotcount_enter(&b->count, b->max_wait_ns) == BK_OK ? BK_OK : BK_EBUSY;
}

void bk_bulkhead_leave(bk_bulkhead_t *b)
{
    if (b != NULL)
        bk__slotcount_leave(&b->count);
}

unsigned bk_bulkhead_in_use(bk_bulkhead_t *b)
{
    return b != NULL ? bk__slotcount_in_use(&b->count) : 0;
}
