/* Entries read from memcached: one read judged now (peek), and the whole fetch
 * behind the local single-flight (read, lease, load, guarded fill).
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "remote_int.h"

/* Loads from the origin and stores the answer, guarded (add when cas is 0, else
 * cas): a write since our read wins. The value goes to the caller either way. */
static int load_and_fill(struct bk__remote *r, struct bk__remote_call *call, const char *key, const char *k,
                         size_t klen, uint64_t cas, void **value, size_t *len)
{
    atomic_fetch_add(&r->loads, 1);
    int64_t start = bk_clock_mono_ns(r->clock);
    int rc = call->loader(key, value, len, call->ctx);
    int64_t took = bk_clock_mono_ns(r->clock) - start;
    if (rc == BK_OK && *value == NULL && *len != 0)
        rc = BK_EINVAL; /* a loader bug: no bytes for a length */
    if (rc == BK_OK)
        bk__remote_write_entry(r, k, klen, *value, *len, call->ttl->fresh_ns, call->ttl->stale_ns, 0, took, true, cas);
    else if (rc == BK_ENOTFOUND && r->negative_ttl_ns > 0)
        bk__remote_write_entry(r, k, klen, NULL, 0, r->negative_ttl_ns, 0, BK__ENTRY_NEGATIVE, took, true, cas);
    else if (rc == BK_ENOTFOUND && cas) /* gone, and not remembered as such: forget the old copy */
        bk__remote_write_entry(r, k, klen, NULL, 0, r->lease_ttl_ns, 0, BK__ENTRY_TOMBSTONE, took, true, cas);
    if (rc != BK_OK) {
        free(*value);
        *value = NULL;
        *len = 0;
    }
    return rc;
}

/* Hands out the value of an entry read by mc_gets (header, value, NUL) in place. */
static void *take_value(char *buf, size_t blen, size_t *len)
{
    memmove(buf, buf + BK__ENTRY_HDR, blen - BK__ENTRY_HDR + 1);
    *len = blen - BK__ENTRY_HDR;
    return buf;
}

/* What memcached holds for a key, judged now. */
enum state {
    S_UNAVAIL,  /* memcached could not be read */
    S_ABSENT,   /* nothing usable: absent, past its stale time, a tombstone, not ours */
    S_FRESH,    /* a fresh value */
    S_NOTFOUND, /* a fresh "not found" */
    S_STALE     /* a stale value, or a fresh one due for an early refresh */
};

struct reading {
    char *buf; /* S_FRESH, S_STALE: the entry as read (header, value, NUL) */
    size_t blen;
    uint64_t cas; /* of what is there, whatever it is; 0: nothing */
    bool fresh;
};

static enum state read_entry(struct bk__remote *r, const char *k, size_t klen, struct reading *e)
{
    uint32_t flags = 0;
    *e = (struct reading){0};
    int rc = bk__remote_gets(r, k, klen, &e->buf, &e->blen, &flags, &e->cas);
    if (rc != BK_OK)
        return rc == BK_ENOTFOUND ? S_ABSENT : S_UNAVAIL;
    struct bk__entry_header h;
    int64_t now = bk_clock_wall_ns(r->clock);
    enum state st = S_ABSENT;
    if (bk__entry_decode(e->buf, e->blen, flags, &h) && !(h.flags & BK__ENTRY_TOMBSTONE) && now < h.stale_until) {
        e->fresh = now < h.fresh_until; /* a "not found" has no stale time: always fresh here */
        if (h.flags & BK__ENTRY_NEGATIVE)
            st = S_NOTFOUND;
        else
            st = e->fresh && !bk__cache_early(r->early, h.load_ns, now, h.fresh_until) ? S_FRESH : S_STALE;
    }
    if (st != S_FRESH && st != S_STALE) {
        free(e->buf);
        e->buf = NULL;
    }
    return st;
}

int bk__remote_peek(struct bk__remote *r, const char *key, void **value, size_t *len)
{
    char k[MAX_KEY + 1];
    size_t klen = bk__remote_key(r, 'v', key, k);
    struct reading e;
    enum state st = read_entry(r, k, klen, &e);
    if (st == S_FRESH || st == S_NOTFOUND) {
        atomic_fetch_add(&r->hits, 1);
        if (st == S_NOTFOUND)
            return BK_ENOTFOUND;
        *value = take_value(e.buf, e.blen, len);
        return BK_OK;
    }
    free(e.buf);
    return BK__CACHE_MISS; /* stale, absent, or memcached failing: the fill decides */
}

/* The lease is asked for before the entry is read: a holder that stored and
 * released just before is then seen, and never loaded for twice. */
int bk__remote_fill(const char *key, void **value, size_t *len, void *arg)
{
    struct bk__remote_call *call = arg;
    struct bk__remote *r = call->remote;
    char k[MAX_KEY + 1], lk[MAX_KEY + 1], token[33];
    size_t klen = bk__remote_key(r, 'v', key, k), lklen = bk__remote_key(r, 'l', key, lk);
    /* The wait for another holder's value is bounded by lease_wait_ns of the
     * cache's clock (its monotonic time), read, not summed from the naps. */
    int64_t start = bk_clock_mono_ns(r->clock), pause = 2 * BK_NSEC_PER_MSEC;
    bool counted = false; /* as a miss */
    bool waiting = false; /* counted as a lease wait */
    for (;;) {
        int64_t waited = bk_clock_mono_ns(r->clock) - start;
        enum bk__lease l = waited >= r->lease_wait_ns ? BK__LEASE_FAILED : bk__lease_take(r, lk, lklen, token);
        struct reading e;
        enum state st = read_entry(r, k, klen, &e);
        if (st == S_FRESH || st == S_NOTFOUND) { /* stored by another: nothing to load */
            if (l == BK__LEASE_GOT)
                bk__lease_release(r, lk, lklen, token);
            if (!counted)
                atomic_fetch_add(&r->hits, 1);
            if (waiting) /* the lease holder's value, not a load of ours */
                atomic_fetch_add(&r->coalesced, 1);
            if (st == S_NOTFOUND)
                return BK_ENOTFOUND;
            *value = take_value(e.buf, e.blen, len);
            return BK_OK;
        }
        if (st == S_UNAVAIL) { /* memcached down: the origin answers, nothing is stored */
            if (l == BK__LEASE_GOT)
                bk__lease_release(r, lk, lklen, token);
            if (!counted)
                atomic_fetch_add(&r->misses, 1);
            atomic_fetch_add(&r->loads, 1);
            return call->loader(key, value, len, call->ctx);
        }
        if (st == S_STALE && l != BK__LEASE_GOT) { /* another process refreshes it */
            atomic_fetch_add(e.fresh ? &r->hits : &r->stale_hits, 1);
            *value = take_value(e.buf, e.blen, len);
            return BK_OK;
        }
        if (st == S_ABSENT && !counted) {
            atomic_fetch_add(&r->misses, 1);
            counted = true;
        }
        if (l == BK__LEASE_TAKEN) { /* wait for the holder's value */
            if (!waiting)
                atomic_fetch_add(&r->lease_waits, 1);
            waiting = true;
            int64_t left = r->lease_wait_ns - (bk_clock_mono_ns(r->clock) - start);
            if (left > 0) /* else the next round gives up the wait and loads */
                bk_clock_sleep_ns(r->clock, pause < left ? pause : left);
            pause = pause * 2 < 50 * BK_NSEC_PER_MSEC ? pause * 2 : 50 * BK_NSEC_PER_MSEC;
            continue;
        }
        /* The lease is ours, or none is to be had (memcached failing, or waited
         * long enough): load; the guarded store keeps a newer value safe. */
        int rc = load_and_fill(r, call, key, k, klen, e.cas, value, len);
        if (l == BK__LEASE_GOT)
            bk__lease_release(r, lk, lklen, token);
        if (rc != BK_OK && rc != BK_ENOTFOUND && st == S_STALE) { /* the origin failed: the copy we have */
            atomic_fetch_add(e.fresh ? &r->hits : &r->stale_hits, 1);
            *value = take_value(e.buf, e.blen, len);
            return BK_OK;
        }
        free(e.buf);
        return rc;
    }
}
