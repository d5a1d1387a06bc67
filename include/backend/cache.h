/*
 * libbackend cache: cache-aside with stampede protection.
 *
 * Layer 2 (services). A hot key is served from the cache; a cold or expiring key
 * reaches the origin (the loader) once, not once per concurrent request:
 * concurrent misses of one key wait for the one load in flight (single-flight),
 * and after an entry's fresh time one caller refreshes it while the others are
 * served the stale copy (stale-while-revalidate).
 *
 * This version keeps entries in process memory: sharded, bounded by bytes, least
 * recently used evicted first, TTLs on the injectable clock. The memcached
 * backend (shared across processes, with leases) comes with the same API.
 *
 *   static int load_user(void *ctx, const char *key, void **value, size_t *len)
 *   {   ... *value = malloc'ed bytes; *len = n; return BK_OK;   (or BK_ENOTFOUND)  }
 *
 *   bk_cache_ttl_t ttl = {.fresh_ns = 30 * BK_NSEC_PER_SEC, .stale_ns = 300 * BK_NSEC_PER_SEC};
 *   void *v; size_t n;
 *   int rc = bk_cache_fetch(cache, "user:42", &ttl, load_user, db, &v, &n);
 *   ... free(v);
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_CACHE_H
#define BACKEND_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <backend/core.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bk_cache bk_cache_t; /* thread-safe */

typedef struct bk_cache_opts {
    size_t max_bytes;         /* keys and values kept at most; default 64 MiB */
    unsigned ttl_jitter_pct;  /* TTLs written vary by up to ± this percent, so keys
                                 written together do not expire together; default 10 */
    int64_t negative_ttl_ns;  /* how long a "not found" is remembered; default 30 s; 0 = never */
    bk_clock_t *clock;        /* NULL = system; borrowed */
} bk_cache_opts_t;

BK_EXPORT void bk_cache_opts_init(bk_cache_opts_t *opts);
/* An in-process cache. BK_EINVAL, BK_ENOMEM. */
BK_EXPORT int bk_cache_memory_new(const bk_cache_opts_t *opts, bk_cache_t **out);
/* No fetch may be running. */
BK_EXPORT void bk_cache_free(bk_cache_t *cache);

/* An entry is fresh for fresh_ns, then stale (still served while one caller
 * refreshes it) for stale_ns more, then gone. */
typedef struct bk_cache_ttl {
    int64_t fresh_ns; /* > 0 */
    int64_t stale_ns; /* >= 0; 0 = no stale serving */
} bk_cache_ttl_t;

/*
 * Loads key from the origin: *value (malloc'ed; the cache takes it) and *len.
 * BK_OK; BK_ENOTFOUND when the origin has no such thing (remembered for
 * negative_ttl_ns); another code for a failure (not remembered: the next fetch
 * loads again). Called with no lock held; it may block (it is the origin).
 */
typedef int (*bk_cache_loader_fn)(void *ctx, const char *key, void **value, size_t *len);

/*
 * The value of key: from the cache when fresh; when stale, the stale copy, unless
 * this caller is the one that refreshes it (it then loads and gets the new
 * value); when absent, the loader's result, loaded once for all concurrent
 * callers of the same key, who wait for it. *value is a malloc'ed copy the caller
 * frees (NUL-terminated beyond *len for convenience). BK_OK; BK_ENOTFOUND (from
 * the loader, now or remembered); the loader's error; BK_EINVAL; BK_ENOMEM.
 */
BK_EXPORT int bk_cache_fetch(bk_cache_t *cache, const char *key, const bk_cache_ttl_t *ttl,
                             bk_cache_loader_fn loader, void *ctx, void **value, size_t *len);
/* Stores a copy of value[0..len) under key (write-through after a database
 * write). BK_ERANGE when the entry alone exceeds a shard's budget (max_bytes / 16). */
BK_EXPORT int bk_cache_set(bk_cache_t *cache, const char *key, const void *value, size_t len,
                           const bk_cache_ttl_t *ttl);
/* Forgets key (after a database write that changed it). */
BK_EXPORT int bk_cache_delete(bk_cache_t *cache, const char *key);

typedef struct bk_cache_stats {
    uint64_t hits, stale_hits, misses, loads, evictions;
    size_t bytes, entries;
} bk_cache_stats_t;
BK_EXPORT void bk_cache_stats(bk_cache_t *cache, bk_cache_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_CACHE_H */
