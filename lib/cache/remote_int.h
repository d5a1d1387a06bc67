/* Internals of the memcached store (struct bk__remote), shared by its files.
 * Hidden, never part of the public API. cache.c sees only the bk__remote_*
 * functions of cache_int.h.
 *
 * The files, each using only those listed before it (no file calls one listed
 * after it, so there is no cycle; lib/core and libmemcached are below all):
 *
 *   policy.c           jitter, XFetch, copy (cache_int.h); pure computation
 *   memory.c           the local store, on core/table
 *   entry.c            the entry codec: header encode/decode; pure bytes
 *   remote_key.c       memcached keys of our keys (prefix, kind, SHA-256)
 *   remote_pool.c      the connection pool: claim (with its wait), release
 *   remote_call.c      calls behind a server's breaker: gets, set/add/cas
 *   lease.c            the cross-process lease (take, release)
 *   store.c            entries written: set, delete (tombstone), guarded fill
 *   fetch.c            entries read: peek, the whole fetch (read, lease, load)
 *   generation.c       namespace generations, in-process and in memcached
 *   remote_ratelimit.c the rate-limit store over the same connections
 *   remote.c           setup (server list, options, breakers, metrics), stats
 *   cache.c            the public API
 *   json.c             JSON values over it
 *
 * The pool is ours, not libmemcachedutil's: a thread gets back the connection it
 * used last when it is idle. With memcached_pool() two threads kept trading
 * connections, each read's socket woke on another CPU than the last, and hits
 * ran at 0.55-0.85 of a thread with its own connection; with the affinity, at
 * 0.9-1.0 (measured, bench/bench_cache.c). It is the core slot pool, whose
 * wait has a real deadline on the monotonic clock (libmemcached's rounds it to
 * whole seconds).
 *
 * The race a cache-aside must close: process A misses and reads the database;
 * B writes the database and deletes the key; A stores what it read, now stale
 * until its TTL. Here A's store is guarded: it is an add when A saw no entry and a
 * CAS on the entry A saw otherwise, and bk_cache_delete leaves a tombstone (for a
 * lease's lifetime) instead of nothing. Whatever B wrote after A's read changes
 * the CAS value or fills the slot, so A's store is refused, and the next reader
 * loads the new row. B's delete also drops the lease, so that reader need not
 * wait for A's doomed load.
 * SPDX-License-Identifier: MIT */
#ifndef BK_CACHE_REMOTE_INT_H
#define BK_CACHE_REMOTE_INT_H

#include <stdatomic.h>
#include <time.h>

#include <libmemcached/memcached.h>

#include "cache_int.h"
#include "core/slotpool_int.h"

#define MAX_KEY 250                /* memcached's limit */
#define MAX_DELTA (30 * 86400)     /* memcached reads larger expiries as unix times */
#define EXPIRE_NOW (MAX_DELTA + 1) /* a unix time in 1970: already expired */

/* ------------------------------------------------------------------ entry.c */

#define BK__ENTRY_FLAGS 0xbc01u /* memcached item flags of our entries: format 1 */
#define BK__ENTRY_HDR 22        /* bytes before the value */
#define BK__ENTRY_NEGATIVE 1u   /* a remembered "not found" */
#define BK__ENTRY_TOMBSTONE 2u  /* left by a delete: nothing usable */

/* An entry is a 22-byte header and the value: format version (1), flags, the
 * fresh and stale deadlines on the cache's wall clock (big-endian ns), and how
 * long its load took (big-endian us, 32 bits, for XFetch). The deadlines, not
 * memcached's expiry, decide freshness, so tests run on a fake clock. */
struct bk__entry_header {
    unsigned flags;
    int64_t fresh_until, stale_until; /* wall ns */
    int64_t load_ns;                  /* a whole number of us */
};
/* Writes the BK__ENTRY_HDR bytes of a header to buf; load_ns is cut to us and
 * capped at UINT32_MAX us. */
BK__CACHE_HIDDEN void bk__entry_encode(unsigned char buf[BK__ENTRY_HDR], const struct bk__entry_header *h);
/* Reads the header of buf[0..len) stored with memcached item flags mcflags; false
 * when it is not an entry of ours (other flags, too short, another version). */
BK__CACHE_HIDDEN bool bk__entry_decode(const char *buf, size_t len, uint32_t mcflags, struct bk__entry_header *h);

/* ------------------------------------------------------------------ remote_pool.c */

/* A claimed connection: the clone and the pool slot it came from. */
struct bk__conn {
    memcached_st *mc;
    unsigned slot;
};

/* size clones of a master, each used by one thread at a time. */
struct bk__remote_pool {
    bk__slotpool_t *slots;
    int64_t wait_ns; /* how long a claim waits for an idle one */
};

/* Every clone is made here and connects at its first call; the wait for an idle
 * one runs on clock (NULL: the system's monotonic clock; a fake clock's advance
 * ends it). BK_OK or BK_ENOMEM (p is then still freed by bk__remote_pool_free). */
BK__CACHE_HIDDEN int bk__remote_pool_init(struct bk__remote_pool *p, memcached_st *master, unsigned size,
                                          int64_t wait_ns, const bk_clock_t *clock);
BK__CACHE_HIDDEN void bk__remote_pool_free(struct bk__remote_pool *p);
/* An idle connection into *out, after a wait of up to wait_ns: BK_OK, or
 * BK_ETIMEDOUT when none came free. */
BK__CACHE_HIDDEN int bk__remote_pool_claim(struct bk__remote_pool *p, struct bk__conn *out);
BK__CACHE_HIDDEN void bk__remote_pool_release(struct bk__remote_pool *p, const struct bk__conn *c);

/* ------------------------------------------------------------------ the store */

struct bk__remote {
    struct bk__remote_pool pool;
    memcached_st *master;
    bk_breaker_t **breakers; /* one per server, in the order of the server list */
    uint32_t nservers;
    bk_clock_t *clock;
    char prefix[65];
    unsigned jitter_pct;
    int64_t negative_ttl_ns, lease_ttl_ns, lease_wait_ns;
    double early;
    bk_counter_t *m_ok, *m_error, *m_refused, *m_busy;
    bk_histogram_t *m_duration;
    _Atomic uint64_t hits, stale_hits, misses, loads, lease_waits, coalesced, errors;
};

/* ------------------------------------------------------------------ remote_key.c */

/* A byte memcached takes in a key (printable ASCII, no space). */
BK__CACHE_HIDDEN bool bk__remote_key_char_ok(unsigned char ch);
/* prefix, kind, ':' and key; or, for a key memcached cannot take (too long,
 * spaces, control or non-ASCII bytes), prefix, kind, '#' and its SHA-256.
 * Kinds: 'v' entries, 'l' leases, 'g' generations, 'r' rate-limit states. */
BK__CACHE_HIDDEN size_t bk__remote_key(const struct bk__remote *r, char kind, const char *key,
                                       char out[MAX_KEY + 1]);

/* ------------------------------------------------------------------ remote_call.c */

/* A read with the CAS value: BK_OK (*val malloc'ed, NUL-terminated), BK_ENOTFOUND,
 * BK_EUNAVAIL, BK_ENOMEM. */
BK__CACHE_HIDDEN int bk__remote_gets(struct bk__remote *r, const char *k, size_t klen, char **val, size_t *vlen,
                                     uint32_t *flags, uint64_t *cas);
enum bk__store_op { BK__OP_SET, BK__OP_ADD, BK__OP_CAS };
/* BK_OK; BK_EEXIST (add: the key exists; cas: it changed or went); BK_ERANGE (too
 * big for memcached); BK_EUNAVAIL. */
BK__CACHE_HIDDEN int bk__remote_store(struct bk__remote *r, enum bk__store_op op, const char *k, size_t klen,
                                      const void *val, size_t vlen, time_t exp, uint32_t flags, uint64_t cas);
/* A delete whose outcome only feeds the breaker and the metrics. */
BK__CACHE_HIDDEN void bk__remote_forget(struct bk__remote *r, const char *k, size_t klen);
/* memcached's expiry for a lifetime in ns. */
BK__CACHE_HIDDEN time_t bk__remote_expiry(int64_t ns);

/* ------------------------------------------------------------------ lease.c */

enum bk__lease { BK__LEASE_GOT, BK__LEASE_TAKEN, BK__LEASE_FAILED };
/* Asks for the lease under lock key lk with a new random token. */
BK__CACHE_HIDDEN enum bk__lease bk__lease_take(struct bk__remote *r, const char *lk, size_t lklen, char token[33]);
/* Drops it only while it still holds token: never someone else's lease. */
BK__CACHE_HIDDEN void bk__lease_release(struct bk__remote *r, const char *lk, size_t lklen, const char token[33]);

/* ------------------------------------------------------------------ store.c */

/* Writes an entry under memcached key k: a set (cas 0, !guarded), an add (cas 0,
 * guarded) or a cas. fresh_ns is jittered unless flags has BK__ENTRY_TOMBSTONE. */
BK__CACHE_HIDDEN int bk__remote_write_entry(struct bk__remote *r, const char *k, size_t klen, const void *value,
                                            size_t len, int64_t fresh_ns, int64_t stale_ns, unsigned flags,
                                            int64_t load_ns, bool guarded, uint64_t cas);

#endif
