/* The memcached connection pool: size clones of the master, an idle one claimed
 * by a compare-and-swap, a semaphore counting the idle ones so that a claim can
 * wait with a real deadline (remote_int.h says why the pool is ours).
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "remote_int.h"

int bk__remote_pool_init(struct bk__remote_pool *p, memcached_st *master, unsigned size, int64_t wait_ns)
{
    p->size = size;
    p->wait_ns = wait_ns;
    if (!(p->conns = aligned_alloc(64, size * sizeof *p->conns)))
        return BK_ENOMEM;
    memset(p->conns, 0, size * sizeof *p->conns);
    for (unsigned i = 0; i < size; i++) /* each connects at its first call */
        if (!(p->conns[i].mc = memcached_clone(NULL, master)))
            return BK_ENOMEM;
    if (sem_init(&p->free_conns, 0, size) != 0)
        return BK_ENOMEM;
    p->sem_ready = true;
    return BK_OK;
}

void bk__remote_pool_free(struct bk__remote_pool *p)
{
    for (unsigned i = 0; p->conns && i < p->size; i++)
        memcached_free(p->conns[i].mc);
    free(p->conns);
    p->conns = NULL;
    if (p->sem_ready)
        sem_destroy(&p->free_conns);
    p->sem_ready = false;
}

/* The connection this thread used last, while the same pool's (its socket and
 * buffers are warm on this CPU). */
static _Thread_local struct {
    const struct bk__remote_pool *pool;
    unsigned index;
} last_conn;

/* An idle connection; the caller holds one count of free_conns, so one exists. */
static struct bk__conn *conn_claim(struct bk__remote_pool *p)
{
    unsigned start = last_conn.pool == p && last_conn.index < p->size ? last_conn.index : 0;
    for (;;) {
        for (unsigned n = 0; n < p->size; n++) {
            unsigned i = (start + n) % p->size;
            int idle = 0;
            if (atomic_compare_exchange_strong_explicit(&p->conns[i].busy, &idle, 1, memory_order_acquire,
                                                        memory_order_relaxed)) {
                last_conn.pool = p;
                last_conn.index = i;
                return &p->conns[i];
            }
        }
    }
}

struct bk__conn *bk__remote_pool_claim(struct bk__remote_pool *p)
{
    /* An idle connection, or a wait of up to wait_ns for one; the pool then has
     * one for us. */
    int w = sem_trywait(&p->free_conns);
    if (w != 0) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline); /* sem_timedwait's clock */
        int64_t ns = deadline.tv_nsec + p->wait_ns % BK_NSEC_PER_SEC;
        deadline.tv_sec += (time_t)(p->wait_ns / BK_NSEC_PER_SEC + ns / BK_NSEC_PER_SEC);
        deadline.tv_nsec = (long)(ns % BK_NSEC_PER_SEC);
        while ((w = sem_timedwait(&p->free_conns, &deadline)) != 0 && errno == EINTR)
            ;
    }
    return w == 0 ? conn_claim(p) : NULL;
}

void bk__remote_pool_release(struct bk__remote_pool *p, struct bk__conn *c)
{
    atomic_store_explicit(&c->busy, 0, memory_order_release);
    sem_post(&p->free_conns);
}
