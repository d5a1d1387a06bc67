/* The public cache API: argument checks, then the local store alone (an
 * in-process cache) or the local store's single-flight in front of memcached.
 * Namespaces live here too: their generations are cache entries like any other.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "core/abi_int.h"
#include "core/error_int.h"

void bk_cache_opts_init(bk_cache_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->max_bytes = 64u << 20;
    opts->ttl_jitter_pct = 10;
    opts->negative_ttl_ns = 30 * BK_NSEC_PER_SEC;
}
BK__ASSERT_ABI_SIZE(bk_cache_opts_t, 104);
BK__ASSERT_ABI_SIZE(bk_cache_ttl_t, 16);
BK__ASSERT_ABI_SIZE(bk_cache_stats_t, 136);

/* The option out of its range, or NULL. */
static const char *opts_problem(const bk_cache_opts_t *o)
{
    return o->max_bytes < BK__CACHE_SHARDS * 1024                ? "max_bytes"
           : o->ttl_jitter_pct > 50                              ? "ttl_jitter_pct"
           : o->negative_ttl_ns < 0                              ? "negative_ttl_ns"
           : !(o->early_refresh >= 0 && o->early_refresh <= 100) ? "early_refresh"
                                                                 : NULL;
}

/* A cache with opts (NULL: the defaults) checked and copied, no store yet. */
static int cache_alloc(const bk_cache_opts_t *opts, bk_cache_t **out, bk_error_t *err)
{
    bk_cache_opts_t defaults;
    if (!opts) {
        bk_cache_opts_init(&defaults);
        opts = &defaults;
    }
    const char *bad = opts_problem(opts);
    if (bad)
        return bk__error(err, BK_EINVAL, "cache option %s out of range", bad);
    bk_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return bk__error(err, BK_ENOMEM, NULL);
    c->o = *opts;
    *out = c;
    return BK_OK;
}

int bk_cache_memory_new(const bk_cache_opts_t *opts, bk_cache_t **out)
{
    if (!out)
        return BK_EINVAL;
    *out = NULL;
    bk_cache_t *c = NULL;
    int rc = cache_alloc(opts, &c, NULL);
    if (rc == BK_OK)
        rc = bk__local_new(&c->o, c->o.max_bytes, &c->local);
    if (rc == BK_OK && c->o.metrics)
        rc = bk__cache_metrics_new(c, c->o.metrics, &c->metrics);
    if (rc != BK_OK) {
        bk_cache_free(c);
        return rc;
    }
    *out = c;
    return BK_OK;
}

int bk_cache_memcached_new(const char *servers, const bk_cache_opts_t *opts,
                           const bk_cache_memcached_opts_t *mopts, bk_cache_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (!out)
        return bk__error(err, BK_EINVAL, "no place for the cache (out is NULL)");
    *out = NULL;
    bk_cache_memcached_opts_t mdefaults;
    if (!mopts) {
        bk_cache_memcached_opts_init(&mdefaults);
        mopts = &mdefaults;
    }
    if (mopts->near_ttl_ns < 0 || mopts->near_ttl_ns > INT64_MAX / 4)
        return bk__error(err, BK_EINVAL, "memcached option near_ttl_ns out of range");
    bk_cache_t *c = NULL;
    int rc = cache_alloc(opts, &c, err);
    if (rc != BK_OK)
        return rc;
    opts = &c->o;
    c->near_ttl_ns = mopts->near_ttl_ns;
    /* The near cache remembers a "not found" no longer than a value. */
    bk_cache_opts_t near = *opts;
    if (near.negative_ttl_ns > c->near_ttl_ns)
        near.negative_ttl_ns = c->near_ttl_ns;
    near.early_refresh = 0; /* memcached's entry decides early refreshes */
    rc = bk__local_new(&near, c->near_ttl_ns > 0 ? opts->max_bytes : 0, &c->local);
    if (rc == BK_OK)
        rc = bk__remote_new(servers, opts, mopts, &c->remote, err);
    else
        bk__error(err, rc, NULL);
    if (rc == BK_OK && opts->metrics && (rc = bk__cache_metrics_new(c, opts->metrics, &c->metrics)) != BK_OK)
        bk__error(err, rc, rc == BK_EEXIST ? "metrics: a cache_ family of another shape is registered" : NULL);
    if (rc != BK_OK) {
        bk_cache_free(c);
        return rc;
    }
    *out = c;
    return BK_OK;
}

void bk_cache_free(bk_cache_t *c)
{
    if (!c)
        return;
    bk__cache_metrics_free(c->metrics);
    bk__remote_free(c->remote);
    bk__local_free(c->local);
    free(c);
}

static bool ttl_ok(const bk_cache_ttl_t *ttl)
{
    return ttl && ttl->fresh_ns > 0 && ttl->stale_ns >= 0 && ttl->fresh_ns <= INT64_MAX / 4 &&
           ttl->stale_ns <= INT64_MAX / 4;
}

int bk_cache_fetch(bk_cache_t *c, const char *key, const bk_cache_ttl_t *ttl, bk_cache_loader_fn loader, void *ctx,
                   void **value, size_t *len)
{
    if (value)
        *value = NULL;
    if (len)
        *len = 0;
    if (!c || !key || !loader || !value || !ttl_ok(ttl))
        return BK_EINVAL;
    size_t dummy;
    if (!len)
        len = &dummy;
    if (!c->remote)
        return bk__local_fetch(c->local, key, ttl, loader, ctx, value, len);
    /* The near copy, then memcached directly: hits need no single-flight. */
    bk_cache_ttl_t near = {.fresh_ns = c->near_ttl_ns > 0 ? c->near_ttl_ns : 1, .stale_ns = 0};
    int rc = c->near_ttl_ns > 0 ? bk__local_get(c->local, key, value, len) : BK__CACHE_MISS;
    if (rc != BK__CACHE_MISS)
        return rc;
    rc = bk__remote_peek(c->remote, key, value, len);
    if (rc == BK_OK && c->near_ttl_ns > 0)
        bk__local_set(c->local, key, *value, *len, &near); /* ENOMEM, ERANGE: just not kept */
    if (rc != BK__CACHE_MISS)
        return rc;
    struct bk__remote_call call = {.remote = c->remote, .ttl = ttl, .loader = loader, .ctx = ctx};
    return bk__local_fetch(c->local, key, &near, bk__remote_fill, &call, value, len);
}

int bk_cache_peek(bk_cache_t *c, const char *key, void **value, size_t *len)
{
    if (value)
        *value = NULL;
    if (len)
        *len = 0;
    if (!c || !key || !value)
        return BK_EINVAL;
    size_t dummy;
    if (c->remote && c->near_ttl_ns == 0)
        return BK_EUNAVAIL; /* the local store keeps nothing */
    int rc = bk__local_get(c->local, key, value, len ? len : &dummy);
    return rc == BK__CACHE_MISS ? BK_EUNAVAIL : rc;
}

int bk_cache_set(bk_cache_t *c, const char *key, const void *value, size_t len, const bk_cache_ttl_t *ttl)
{
    if (!c || !key || (len && !value) || !ttl_ok(ttl))
        return BK_EINVAL;
    if (!c->remote)
        return bk__local_set(c->local, key, value, len, ttl);
    bk__local_delete(c->local, key);
    return bk__remote_set(c->remote, key, value, len, ttl);
}

int bk_cache_delete(bk_cache_t *c, const char *key)
{
    if (!c || !key)
        return BK_EINVAL;
    bk__local_delete(c->local, key);
    return c->remote ? bk__remote_delete(c->remote, key) : BK_OK;
}

void bk_cache_stats(bk_cache_t *c, bk_cache_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    bk__local_stats(c->local, out);
    if (!c->remote)
        return;
    /* The local store's "loads" are memcached reads; count what memcached answered
     * and the origin's loads instead, plus the near cache's own hits. */
    bk_cache_stats_t r;
    bk__remote_stats(c->remote, &r);
    out->hits += r.hits;
    out->stale_hits = r.stale_hits;
    out->misses = r.misses + out->coalesced; /* a wait in the single-flight missed too */
    out->loads = r.loads;
    out->lease_waits = r.lease_waits;
    out->coalesced += r.coalesced; /* the local store's waiters, and the lease's */
    out->remote_errors = r.remote_errors;
}

/* ------------------------------------------------------------------ namespaces */

/* Generations are entries under a key no caller's key can equal (a NUL cannot be
 * in a C string, so a control character marks them). */
#define GEN_MARK "\x01gen:"

struct gen_call {
    bk_cache_t *cache;
    const char *ns;
};

/* The loader of a generation entry: memcached's (created when absent), or a new
 * random one for an in-process cache (or one evicted: a spurious invalidation). */
static int load_generation(const char *key, void **value, size_t *len, void *ctx)
{
    (void)key;
    struct gen_call *g = ctx;
    char text[GEN_LEN + 1];
    int rc = g->cache->remote ? bk__remote_generation(g->cache->remote, g->ns, text) : bk__cache_new_generation(text);
    return rc == BK_OK ? bk__cache_copy(text, GEN_LEN, value, len) : rc;
}

static int ns_gen_key(const char *ns, char *buf, size_t size)
{
    int n = snprintf(buf, size, GEN_MARK "%s", ns);
    return n < 0 || (size_t)n >= size ? BK_ERANGE : BK_OK;
}

int bk_cache_ns_key(bk_cache_t *c, const char *ns, const char *key, char *buf, size_t size)
{
    if (!c || !ns || !key || !buf || !size || strchr(ns, '@'))
        return BK_EINVAL;
    buf[0] = '\0';
    char gkey[256];
    if (ns_gen_key(ns, gkey, sizeof gkey) != BK_OK)
        return BK_ERANGE;
    /* In-process: kept until evicted. Memcached: read each time, or kept as long as
     * the near cache keeps values (the same bound on seeing another's change). */
    int64_t keep = c->remote ? (c->near_ttl_ns > 0 ? c->near_ttl_ns : 1) : INT64_MAX / 4;
    bk_cache_ttl_t ttl = {.fresh_ns = keep, .stale_ns = 0};
    struct gen_call call = {c, ns};
    void *gen = NULL;
    size_t glen = 0;
    int rc = bk__local_fetch(c->local, gkey, &ttl, load_generation, &call, &gen, &glen);
    char oneoff[GEN_LEN + 1];
    if (rc != BK_OK) {
        if (rc == BK_ENOMEM)
            return rc;
        /* memcached unreadable: a generation nobody else has, so this fetch loads. */
        int rrc = bk__cache_new_generation(oneoff);
        if (rrc != BK_OK)
            return rrc;
    }
    int n = snprintf(buf, size, "%s@%s:%s", ns, rc == BK_OK ? (char *)gen : oneoff, key);
    free(gen);
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return BK_ERANGE;
    }
    return BK_OK;
}

int bk_cache_ns_invalidate(bk_cache_t *c, const char *ns)
{
    if (!c || !ns || strchr(ns, '@'))
        return BK_EINVAL;
    char gkey[256];
    if (ns_gen_key(ns, gkey, sizeof gkey) != BK_OK)
        return BK_ERANGE;
    char text[GEN_LEN + 1];
    int rc = bk__cache_new_generation(text);
    if (rc != BK_OK)
        return rc;
    if (c->remote) {
        bk__local_delete(c->local, gkey);
        return bk__remote_set_generation(c->remote, ns, text);
    }
    bk_cache_ttl_t ttl = {.fresh_ns = INT64_MAX / 4, .stale_ns = 0};
    return bk__local_set(c->local, gkey, text, GEN_LEN, &ttl);
}

int bk_cache_ratelimit_store(bk_cache_t *c, bk_ratelimit_store_t *out)
{
    if (!c || !out || !c->remote)
        return BK_EINVAL;
    return bk__remote_ratelimit_store(c->remote, out);
}
