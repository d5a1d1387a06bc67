/*
 * libbackend cache: cache-aside with stampede protection.
 *
 * Layer 2 (services). A hot key is served from the cache; a cold or expiring key
 * reaches the origin (the loader) once, not once per concurrent request:
 * concurrent misses of one key wait for the one load in flight (single-flight),
 * and after an entry's fresh time one caller refreshes it while the others are
 * served the stale copy (stale-while-revalidate).
 *
 * Two stores share one API. bk_cache_memory_new keeps entries in process memory:
 * sharded, bounded by bytes, least recently used evicted first (CLOCK), TTLs on the
 * injectable clock. bk_cache_memcached_new keeps them in memcached, shared by
 * every process: a cold key is loaded by one process, which holds a lease (a lock
 * key in memcached) while the others wait for its result or serve a stale copy;
 * a near cache in process memory may sit in front. If memcached is down, reads go
 * to the loader and writes are dropped: nothing fails that would work without a
 * cache.
 *
 *   static int load_user(const char *key, void **value, size_t *len, void *ud)
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

#include <jansson.h>

#include <backend/core.h>
#include <backend/metrics.h>
#include <backend/resilience.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bk_cache bk_cache_t; /* thread-safe */

typedef struct bk_cache_opts {
    size_t max_bytes;         /* in-process bytes (keys and values) kept at most: the
                                 cache, or a memcached cache's near cache; default 64 MiB */
    unsigned ttl_jitter_pct;  /* fresh TTLs written vary by up to +- this percent, so keys
                                 written together do not expire together; default 10 */
    int64_t negative_ttl_ns;  /* how long a "not found" is remembered; default 30 s; 0 = never */
    double early_refresh;     /* XFetch: a fresh entry is refreshed early, by one caller,
                                 with a probability that rises as its fresh time ends,
                                 scaled by its measured load time times this (1.0 is the
                                 usual value); default 0 = never early */
    bk_clock_t *clock;        /* NULL = system; borrowed */
    bk_metrics_t *metrics;    /* what bk_cache_stats counts, as cache_requests_total{result=
                                 "hit"|"stale"|"miss"}, cache_loads_total and
                                 cache_coalesced_total (bk_cache_stats_t's hits,
                                 stale_hits, misses, loads, coalesced), read at each render; NULL = none;
                                 borrowed: it outlives the cache */
    uint64_t reserved_[7];    /* zeroed by bk_cache_opts_init: room to grow (HACKING.md) */
} bk_cache_opts_t;

BK_EXPORT void bk_cache_opts_init(bk_cache_opts_t *opts);
/* An in-process cache (opts: NULL for defaults). BK_EINVAL, BK_ENOMEM. */
BK_EXPORT int bk_cache_memory_new(const bk_cache_opts_t *opts, bk_cache_t **out);

typedef struct bk_cache_memcached_opts {
    const char *prefix;         /* before every key, to share servers between
                                   applications; up to 64 printable ASCII bytes, no
                                   spaces; default "" */
    bool binary_protocol;       /* default false: the text protocol */
    unsigned pool_size;         /* connections, each used by one thread at a time;
                                   default 8 */
    int64_t pool_wait_ns;       /* longest wait for a free connection, else the call
                                   goes without the cache; default 100 ms */
    int64_t connect_timeout_ns; /* default 250 ms */
    int64_t io_timeout_ns;      /* default 250 ms */
    int64_t retry_timeout_ns;   /* a server that failed is not tried again for this long
                                   (whole seconds); default 1 s */
    int64_t near_ttl_ns;        /* a near cache in process memory in front, which may
                                   serve a value this long after another process changed
                                   it; default 0 = none */
    int64_t lease_ttl_ns;       /* a load's lease (and a delete's tombstone) lasts this
                                   long: longer than any load; default 10 s */
    int64_t lease_wait_ns;      /* a process without the lease waits this long (bounded
                                   backoff, re-reading) for its holder's value, then loads
                                   by itself; default 2 s */
    const bk_breaker_opts_t *breaker; /* the breaker around memcached; NULL = 20-call
                                   window, trips at 50% failures after 5 calls, open 1 s */
    bk_metrics_t *metrics;      /* cache_memcached_operations_total{outcome} and
                                   cache_memcached_duration_seconds; NULL = none; borrowed */
    uint64_t reserved_[8];      /* zeroed by bk_cache_memcached_opts_init: room to grow
                                   (HACKING.md) */
} bk_cache_memcached_opts_t;

BK_EXPORT void bk_cache_memcached_opts_init(bk_cache_memcached_opts_t *mopts);
/* A cache in memcached. servers: "host:port[,host:port...]" (IPv6 hosts in
 * brackets, port 11211 when left out), consistent hashing (ketama) across them.
 * opts, mopts: NULL for defaults. No connection is made here, so a server down now
 * is no error. BK_EINVAL (a bad server list or option: err says which entry or
 * option), BK_ENOMEM, BK_EEXIST (metrics: a family of the same name but another
 * shape is registered). err may be NULL. */
BK_EXPORT int bk_cache_memcached_new(const char *servers, const bk_cache_opts_t *opts,
                                     const bk_cache_memcached_opts_t *mopts, bk_cache_t **out,
                                     bk_error_t *err);
/* No fetch may be running. */
BK_EXPORT void bk_cache_free(bk_cache_t *cache);
/* The circuit breaker around memcached server number server (from 0, in the
 * order of the servers string), for its state or an operator's force; NULL for
 * an in-process cache, or past the last server. Borrowed: it lives as long as
 * the cache. Any thread. */
BK_EXPORT bk_breaker_t *bk_cache_breaker(bk_cache_t *cache, size_t server);

/* An entry is fresh for fresh_ns, then stale (still served while one caller
 * refreshes it) for stale_ns more, then gone. A value pair, often a static const
 * beside its key: it has no reserved tail and will not grow (a new per-fetch
 * setting would be a new function's argument). */
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
typedef int (*bk_cache_loader_fn)(const char *key, void **value, size_t *len, void *ud);

/*
 * The value of key: from the cache when fresh; when stale, the stale copy, unless
 * this caller is the one that refreshes it (it then loads and gets the new
 * value); when absent, the loader's result, loaded once for all concurrent
 * callers of the same key, who wait for it. *value is a malloc'ed copy the caller
 * frees (NUL-terminated beyond *len for convenience). BK_OK; BK_ENOTFOUND (from
 * the loader, now or remembered); the loader's error; BK_EINVAL; BK_ENOMEM.
 */
BK_EXPORT int bk_cache_fetch(bk_cache_t *cache, const char *key, const bk_cache_ttl_t *ttl,
                             bk_cache_loader_fn loader, void *ud, void **value, size_t *len);
/*
 * The value of key if process memory holds it fresh (an in-process cache, or a
 * memcached cache's near cache), without blocking: no memcached call, no load, no
 * wait for another's; for an event loop that answers hits itself and hands the
 * rest to a thread that may fetch. *value as bk_cache_fetch's. BK_OK (counted
 * as a hit); BK_ENOTFOUND when a "not found" is remembered; BK_EUNAVAIL when
 * process memory has no fresh answer (absent, stale, or a memcached cache
 * without a near cache), counted as nothing: the fetch that follows counts;
 * BK_EINVAL; BK_ENOMEM.
 */
BK_EXPORT int bk_cache_peek(bk_cache_t *cache, const char *key, void **value, size_t *len);
BK_EXPORT int bk_cache_peek_json(bk_cache_t *cache, const char *key, json_t **value);
/*
 * JSON values, kept as compact JSON text. The loader answers a new reference
 * (*value; the cache takes it) or, as above, BK_ENOTFOUND or another code. *value
 * is a new reference the caller releases with json_decref. BK_EIO when the bytes
 * under key are not JSON (written by something else); otherwise as bk_cache_fetch.
 */
typedef int (*bk_cache_json_loader_fn)(const char *key, json_t **value, void *ud);
BK_EXPORT int bk_cache_fetch_json(bk_cache_t *cache, const char *key, const bk_cache_ttl_t *ttl,
                                  bk_cache_json_loader_fn loader, void *ud, json_t **value);
BK_EXPORT int bk_cache_set_json(bk_cache_t *cache, const char *key, const json_t *value,
                                const bk_cache_ttl_t *ttl);

/*
 * Stores a copy of value[0..len) under key (write-through after a database
 * write). BK_ERANGE when the entry alone exceeds a shard's budget (max_bytes / 16)
 * or memcached's item size; BK_EUNAVAIL when memcached could not take it.
 */
BK_EXPORT int bk_cache_set(bk_cache_t *cache, const char *key, const void *value, size_t len,
                           const bk_cache_ttl_t *ttl);
/*
 * Forgets key (after a database write that changed it). In memcached the value is
 * replaced by a tombstone that lives lease_ttl_ns, so a load that read the
 * database before the write cannot store its old value afterwards.
 * BK_EUNAVAIL when memcached could not be told.
 */
BK_EXPORT int bk_cache_delete(bk_cache_t *cache, const char *key);

/*
 * Namespaces. Writes to buf the key of key within namespace ns
 * ("<ns>@<generation>:<key>"); bk_cache_ns_invalidate gives ns a new random
 * generation, which makes every key of the namespace unreachable at once (the old
 * entries age out). When memcached cannot be read the key gets a one-off
 * generation, so the fetch loads from the origin. BK_ERANGE when buf is too small.
 */
BK_EXPORT int bk_cache_ns_key(bk_cache_t *cache, const char *ns, const char *key, char *buf, size_t size);
BK_EXPORT int bk_cache_ns_invalidate(bk_cache_t *cache, const char *ns);

/*
 * A rate-limiter store (see bk_ratelimit_new) in the cache's memcached, so every
 * process using the same servers and prefix shares each limit. Compare-and-set on
 * memcached CAS values: no request is admitted twice under races. The cache must
 * outlive the limiter. BK_EINVAL for an in-process cache.
 */
BK_EXPORT int bk_cache_ratelimit_store(bk_cache_t *cache, bk_ratelimit_store_t *out);

typedef struct bk_cache_stats {
    uint64_t hits, stale_hits, misses; /* fetches answered fresh, stale, not at all */
    uint64_t loads;                    /* loader calls (the origin) */
    uint64_t evictions;                /* in-process entries evicted for room */
    uint64_t lease_waits;              /* memcached: fetches that waited for another's load */
    uint64_t remote_errors;            /* memcached: calls that failed or were refused */
    size_t bytes, entries;             /* in process */
    uint64_t coalesced;                /* misses answered by another's load: a wait in this
                                          process's single-flight or, memcached, a lease wait
                                          that ended with the holder's value */
    uint64_t reserved_[7];             /* zeroed by bk_cache_stats (the caller allocates it) */
} bk_cache_stats_t;
BK_EXPORT void bk_cache_stats(bk_cache_t *cache, bk_cache_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_CACHE_H */
