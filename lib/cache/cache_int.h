/* Cache internals shared by the files of lib/cache/. Hidden, never part of the
 * public API.
 *
 * A bk_cache_t always has a local store (memory.c): the whole cache for an
 * in-process cache, the near cache for a memcached one. Its single-flight is what
 * makes one thread per process load a key; for a memcached cache a fetch first
 * reads memcached directly (a fresh hit ends there), and only otherwise enters
 * the single-flight, whose "load" is bk__remote_fill (fetch.c): it reads again
 * and, on a miss, takes the cross-process lease and calls the caller's loader. A memcached cache with no
 * near cache has a local store with no room (every put is refused), which keeps
 * only the single-flight.
 * SPDX-License-Identifier: MIT */
#ifndef BK_CACHE_INT_H
#define BK_CACHE_INT_H

#include <backend/cache.h>

#if defined(__GNUC__)
#define BK__CACHE_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__CACHE_HIDDEN
#endif

struct bk__local;
struct bk__remote;

/* The local store's shards (memory.c), each with max_bytes / BK__CACHE_SHARDS of
 * room: bk_cache_new refuses a max_bytes that leaves a shard under 1 KiB. */
#define BK__CACHE_SHARDS 16

struct bk__cache_metrics;

struct bk_cache {
    bk_cache_opts_t o;
    struct bk__local *local;
    struct bk__remote *remote; /* NULL: an in-process cache */
    int64_t near_ttl_ns;       /* memcached: how long the local store keeps a value */
    struct bk__cache_metrics *metrics; /* NULL: o.metrics unset */
};

/* stats_metrics.c: o.metrics's counters, brought up to date from bk_cache_stats
 * by a collector of the registry; freed (the collector removed) before the cache. */
BK__CACHE_HIDDEN int bk__cache_metrics_new(bk_cache_t *cache, bk_metrics_t *reg, struct bk__cache_metrics **out);
BK__CACHE_HIDDEN void bk__cache_metrics_free(struct bk__cache_metrics *m);

/* memory.c: room 0 keeps nothing (a put is refused) but still single-flights. */
BK__CACHE_HIDDEN int bk__local_new(const bk_cache_opts_t *opts, size_t room, struct bk__local **out);
BK__CACHE_HIDDEN void bk__local_free(struct bk__local *l);
BK__CACHE_HIDDEN int bk__local_fetch(struct bk__local *l, const char *key, const bk_cache_ttl_t *ttl,
                                     bk_cache_loader_fn loader, void *ctx, void **value, size_t *len);
/* Not a status code: "no fresh entry", from the lookups that do not load. */
#define BK__CACHE_MISS 1
/* A fresh entry's value (BK_OK), a fresh "not found" (BK_ENOTFOUND), or
 * BK__CACHE_MISS; loads nothing. */
BK__CACHE_HIDDEN int bk__local_get(struct bk__local *l, const char *key, void **value, size_t *len);
BK__CACHE_HIDDEN int bk__local_set(struct bk__local *l, const char *key, const void *value, size_t len,
                                   const bk_cache_ttl_t *ttl);
BK__CACHE_HIDDEN void bk__local_delete(struct bk__local *l, const char *key);
BK__CACHE_HIDDEN void bk__local_stats(struct bk__local *l, bk_cache_stats_t *out);
/* policy.c. A random factor in [1 - pct/100, 1 + pct/100]. */
BK__CACHE_HIDDEN double bk__cache_jitter(unsigned pct);
/* XFetch: whether a fresh entry that took load_ns to load, fresh until
 * fresh_until, should be refreshed now. */
BK__CACHE_HIDDEN bool bk__cache_early(double beta, int64_t load_ns, int64_t now, int64_t fresh_until);
/* A namespace generation: 16 hex digits of randomness, as keys embed it. */
#define GEN_LEN 16
BK__CACHE_HIDDEN int bk__cache_new_generation(char text[GEN_LEN + 1]);
/* A malloc'ed NUL-terminated copy of value[0..len). */
BK__CACHE_HIDDEN int bk__cache_copy(const void *value, size_t len, void **out, size_t *outlen);

/* The memcached store (remote_int.h lists its files, in their order). */
BK__CACHE_HIDDEN int bk__remote_new(const char *servers, const bk_cache_opts_t *opts,
                                    const bk_cache_memcached_opts_t *mopts, struct bk__remote **out,
                                    bk_error_t *err);
BK__CACHE_HIDDEN void bk__remote_free(struct bk__remote *r);
/* The whole memcached fetch (read, lease, load, fill), as a local loader whose
 * ctx is a struct bk__remote_call. */
struct bk__remote_call {
    struct bk__remote *remote;
    const bk_cache_ttl_t *ttl;
    bk_cache_loader_fn loader;
    void *ctx;
};
/* One read of memcached, as bk__local_get: a fresh hit needs no single-flight
 * (which would make concurrent readers of a hot key wait for one another). */
BK__CACHE_HIDDEN int bk__remote_peek(struct bk__remote *r, const char *key, void **value, size_t *len);
BK__CACHE_HIDDEN int bk__remote_fill(const char *key, void **value, size_t *len, void *call);
BK__CACHE_HIDDEN int bk__remote_set(struct bk__remote *r, const char *key, const void *value, size_t len,
                                    const bk_cache_ttl_t *ttl);
BK__CACHE_HIDDEN int bk__remote_delete(struct bk__remote *r, const char *key);
/* Namespace generations: read (created when absent), replaced. */
BK__CACHE_HIDDEN int bk__remote_generation(struct bk__remote *r, const char *ns, char text[GEN_LEN + 1]);
BK__CACHE_HIDDEN int bk__remote_set_generation(struct bk__remote *r, const char *ns, const char text[GEN_LEN + 1]);
BK__CACHE_HIDDEN void bk__remote_stats(struct bk__remote *r, bk_cache_stats_t *out);
/* The rate-limit store over the same connections. */
BK__CACHE_HIDDEN int bk__remote_ratelimit_store(struct bk__remote *r, bk_ratelimit_store_t *out);

#endif
