/* memcached calls behind the breaker of the key's server: a pool connection is
 * claimed for each, and its outcome feeds the breaker, the stats and the metrics.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "remote_int.h"

struct call {
    struct bk__conn conn;
    memcached_st *mc;
    bk_breaker_t *breaker; /* that of the key's server */
    bk_breaker_permit_t permit;
    int64_t start;
};

/* Takes the breaker of the server that holds k, then a connection. */
static int call_begin(struct bk__remote *r, struct call *c, const char *k, size_t klen)
{
    /* The master's server list and continuum never change (no auto-eject), so
     * reading them from any thread is safe. */
    uint32_t server = r->nservers > 1 ? memcached_generate_hash(r->master, k, klen) : 0;
    c->breaker = r->breakers[server < r->nservers ? server : 0];
    if (bk_breaker_acquire(c->breaker, &c->permit) != BK_OK) {
        atomic_fetch_add(&r->errors, 1);
        if (r->m_refused)
            bk_counter_inc(r->m_refused);
        return BK_EUNAVAIL;
    }
    if (bk__remote_pool_claim(&r->pool, &c->conn) != BK_OK) {
        bk_breaker_record(c->breaker, &c->permit, BK_OUTCOME_IGNORED, 0); /* our congestion, not memcached's */
        atomic_fetch_add(&r->errors, 1);
        if (r->m_busy)
            bk_counter_inc(r->m_busy);
        return BK_EUNAVAIL;
    }
    c->mc = c->conn.mc;
    c->start = bk_clock_mono_ns(NULL);
    return BK_OK;
}

/* Answers the server gave (found or not, stored or not) versus failures to talk. */
static bool answered(memcached_return_t mrc)
{
    switch (mrc) {
    case MEMCACHED_SUCCESS:
    case MEMCACHED_NOTFOUND:
    case MEMCACHED_NOTSTORED:
    case MEMCACHED_DATA_EXISTS:
    case MEMCACHED_STORED:
    case MEMCACHED_DELETED:
    case MEMCACHED_END:
    case MEMCACHED_E2BIG:
        return true;
    default:
        return false;
    }
}

static void call_end(struct bk__remote *r, struct call *c, memcached_return_t mrc)
{
    int64_t took = bk_clock_mono_ns(NULL) - c->start;
    bk__remote_pool_release(&r->pool, &c->conn);
    bool ok = answered(mrc);
    bk_breaker_record(c->breaker, &c->permit, ok ? BK_OUTCOME_SUCCESS : BK_OUTCOME_FAILURE, took);
    if (!ok)
        atomic_fetch_add(&r->errors, 1);
    if (r->m_ok)
        bk_counter_inc(ok ? r->m_ok : r->m_error);
    if (r->m_duration)
        bk_histogram_observe(r->m_duration, (double)took / 1e9);
}

int bk__remote_gets(struct bk__remote *r, const char *k, size_t klen, char **val, size_t *vlen, uint32_t *flags,
                    uint64_t *cas)
{
    *val = NULL;
    struct call c;
    int rc = call_begin(r, &c, k, klen);
    if (rc != BK_OK)
        return rc;
    const char *keys[1] = {k};
    size_t lens[1] = {klen};
    memcached_return_t mrc = memcached_mget(c.mc, keys, lens, 1);
    rc = BK_ENOTFOUND;
    if (mrc == MEMCACHED_SUCCESS) {
        memcached_result_st res;
        memcached_result_create(c.mc, &res);
        while (memcached_fetch_result(c.mc, &res, &mrc)) {
            if (*val)
                continue; /* one key asked: drain anything else */
            *vlen = memcached_result_length(&res);
            *flags = memcached_result_flags(&res);
            *cas = memcached_result_cas(&res);
            if ((*val = malloc(*vlen + 1)) == NULL) {
                rc = BK_ENOMEM;
                continue;
            }
            memcpy(*val, memcached_result_value(&res), *vlen);
            (*val)[*vlen] = '\0';
            rc = BK_OK;
        }
        memcached_result_free(&res);
        if (mrc == MEMCACHED_NOTFOUND)
            mrc = MEMCACHED_END;
    }
    call_end(r, &c, mrc);
    if (!answered(mrc)) {
        free(*val);
        *val = NULL;
        return BK_EUNAVAIL;
    }
    return rc;
}

int bk__remote_store(struct bk__remote *r, enum bk__store_op op, const char *k, size_t klen, const void *val,
                     size_t vlen, time_t exp, uint32_t flags, uint64_t cas)
{
    struct call c;
    int rc = call_begin(r, &c, k, klen);
    if (rc != BK_OK)
        return rc;
    memcached_return_t mrc;
    if (op == BK__OP_SET)
        mrc = memcached_set(c.mc, k, klen, val, vlen, exp, flags);
    else if (op == BK__OP_ADD)
        mrc = memcached_add(c.mc, k, klen, val, vlen, exp, flags);
    else
        mrc = memcached_cas(c.mc, k, klen, val, vlen, exp, flags, cas);
    call_end(r, &c, mrc);
    switch (mrc) {
    case MEMCACHED_SUCCESS:
    case MEMCACHED_STORED:
        return BK_OK;
    case MEMCACHED_NOTSTORED:   /* add over the text protocol, or cas on a gone key */
    case MEMCACHED_DATA_EXISTS: /* add over binary, or cas on a changed key */
    case MEMCACHED_NOTFOUND:    /* cas on a gone key */
        return BK_EEXIST;
    case MEMCACHED_E2BIG:
        return BK_ERANGE;
    default:
        return BK_EUNAVAIL;
    }
}

void bk__remote_forget(struct bk__remote *r, const char *k, size_t klen)
{
    struct call c;
    if (call_begin(r, &c, k, klen) == BK_OK)
        call_end(r, &c, memcached_delete(c.mc, k, klen, 0));
}

/* Relative seconds, rounded up, plus one for clocks that disagree; an absolute
 * time beyond memcached's 30-day limit. */
time_t bk__remote_expiry(int64_t ns)
{
    int64_t s = (ns + BK_NSEC_PER_SEC - 1) / BK_NSEC_PER_SEC + 1;
    if (s > MAX_DELTA)
        return time(NULL) + (time_t)s;
    return (time_t)s;
}
