/* The memcached connection pool: size clones of the master in the core slot
 * pool (core/slotpool_int.h), with thread affinity, and a wait for an idle one
 * on the cache's clock (remote_int.h says why the pool is ours).
 * SPDX-License-Identifier: MIT */
#include "remote_int.h"

static int clone_create(void **res, void *ud, bk_error_t *err)
{
    (void)err;
    memcached_st *mc = memcached_clone(NULL, ud); /* connects at its first call */
    *res = mc;
    return mc ? BK_OK : BK_ENOMEM;
}

static void clone_close(void *res, void *ud)
{
    (void)ud;
    memcached_free(res);
}

int bk__remote_pool_init(struct bk__remote_pool *p, memcached_st *master, unsigned size, int64_t wait_ns,
                         const bk_clock_t *clock)
{
    p->wait_ns = wait_ns;
    /* Every clone up front (min_open = size) and never reaped: libmemcached
     * reconnects a clone by itself, so a slot is never closed as broken. */
    bk__slotpool_opts_t po = {.size = size, .min_open = size, .affinity = true, .clock = clock};
    bk__slotpool_ops_t ops = {.create = clone_create, .close = clone_close, .ud = master};
    return bk__slotpool_new(&po, &ops, &p->slots, NULL);
}

void bk__remote_pool_free(struct bk__remote_pool *p)
{
    if (p->slots)
        bk__slotpool_free(p->slots);
    p->slots = NULL;
}

int bk__remote_pool_claim(struct bk__remote_pool *p, struct bk__conn *out)
{
    void *res;
    int rc = bk__slotpool_acquire(p->slots, p->wait_ns, &out->slot, &res, NULL);
    out->mc = res;
    return rc;
}

void bk__remote_pool_release(struct bk__remote_pool *p, const struct bk__conn *c)
{
    bk__slotpool_release(p->slots, c->slot, false);
}
