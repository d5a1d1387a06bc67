/* Entries written to memcached: a caller's set, a delete (a tombstone for a
 * lease's lifetime, and the lease dropped), and the guarded stores of a fill.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "remote_int.h"

int bk__remote_write_entry(struct bk__remote *r, const char *k, size_t klen, const void *value, size_t len,
                           int64_t fresh_ns, int64_t stale_ns, unsigned flags, int64_t load_ns, bool guarded,
                           uint64_t cas)
{
    unsigned char *buf = malloc(BK__ENTRY_HDR + len);
    if (!buf)
        return BK_ENOMEM;
    if (!(flags & BK__ENTRY_TOMBSTONE))
        fresh_ns = (int64_t)((double)fresh_ns * bk__cache_jitter(r->jitter_pct));
    int64_t now = bk_clock_wall_ns(r->clock);
    struct bk__entry_header h = {
        .flags = flags, .fresh_until = now + fresh_ns, .stale_until = now + fresh_ns + stale_ns, .load_ns = load_ns};
    bk__entry_encode(buf, &h);
    if (len)
        memcpy(buf + BK__ENTRY_HDR, value, len);
    enum bk__store_op op = !guarded ? BK__OP_SET : cas ? BK__OP_CAS : BK__OP_ADD;
    int rc = bk__remote_store(r, op, k, klen, buf, BK__ENTRY_HDR + len, bk__remote_expiry(fresh_ns + stale_ns),
                              BK__ENTRY_FLAGS, cas);
    free(buf);
    return rc;
}

int bk__remote_set(struct bk__remote *r, const char *key, const void *value, size_t len, const bk_cache_ttl_t *ttl)
{
    char k[MAX_KEY + 1];
    size_t klen = bk__remote_key(r, 'v', key, k);
    return bk__remote_write_entry(r, k, klen, value, len, ttl->fresh_ns, ttl->stale_ns, 0, 0, false, 0);
}

int bk__remote_delete(struct bk__remote *r, const char *key)
{
    char k[MAX_KEY + 1], lk[MAX_KEY + 1];
    size_t klen = bk__remote_key(r, 'v', key, k), lklen = bk__remote_key(r, 'l', key, lk);
    int rc = bk__remote_write_entry(r, k, klen, NULL, 0, r->lease_ttl_ns, 0, BK__ENTRY_TOMBSTONE, 0, false, 0);
    if (rc == BK_OK) /* the load in flight cannot store: let the next reader start anew */
        bk__remote_forget(r, lk, lklen);
    return rc;
}
