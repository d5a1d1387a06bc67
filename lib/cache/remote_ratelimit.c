/* The rate-limit store (bk_ratelimit_store_t) over the cache's memcached
 * connections.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>

#include "remote_int.h"

/* A key's state is its TAT in decimal; its version is memcached's CAS value (never
 * 0 for a stored item). A new key is an add, a change a cas: of two processes
 * that read the same state only one stores, the other reloads, so no request is
 * admitted twice. */
static int rl_load(const char *key, int64_t *tat, uint64_t *version, void *ud)
{
    struct bk__remote *r = ud;
    char k[MAX_KEY + 1], *val, *end;
    size_t klen = bk__remote_key(r, 'r', key, k), vlen;
    uint32_t flags;
    int rc = bk__remote_gets(r, k, klen, &val, &vlen, &flags, version);
    if (rc != BK_OK)
        return rc;
    long long v = strtoll(val, &end, 10);
    bool ok = vlen > 0 && end == val + vlen;
    free(val);
    *tat = ok ? (int64_t)v : 0; /* not a state of ours: as if idle, and the cas replaces it */
    return BK_OK;
}

static int rl_store(const char *key, int64_t tat, uint64_t version, int64_t ttl_ns, void *ud)
{
    struct bk__remote *r = ud;
    char k[MAX_KEY + 1], text[24];
    size_t klen = bk__remote_key(r, 'r', key, k);
    int n = snprintf(text, sizeof text, "%lld", (long long)tat);
    int rc = bk__remote_store(r, version ? BK__OP_CAS : BK__OP_ADD, k, klen, text, (size_t)n,
                              bk__remote_expiry(ttl_ns), 0, version);
    return rc == BK_EEXIST ? BK_ECONFLICT : rc;
}

int bk__remote_ratelimit_store(struct bk__remote *r, bk_ratelimit_store_t *out)
{
    *out = (bk_ratelimit_store_t){.load = rl_load, .store = rl_store, .destroy = NULL, .ud = r};
    return BK_OK;
}
