/* A sharded, bounded, chained hash table keyed by byte strings, with CLOCK
 * eviction: the in-process cache's store (lib/cache/memory.c) and the in-process
 * rate-limit store (lib/resilience/memstore.c). Hidden, never part of the public
 * API.
 *
 * Shards: a power of two, each cache-line aligned with its own mutex, chains,
 * CLOCK list and bounds, plus shard_extra bytes of the caller's (counters, loads
 * in flight) under the same lock. A key is hashed once with bk__hash: the low
 * bits pick the shard, the bits above them the bucket, so the two never share
 * bits. bk__table_lock hashes and locks; every other call works on a shard the
 * caller has locked, so a lookup and what follows it (insert, delete, an update
 * in place) take one hash and one lock.
 *
 * Entries are the caller's: it embeds a bk__table_entry_t (usually first) in one
 * allocation with its key and value, fills key, klen and bytes, and frees it in
 * free_entry, which the table calls (shard locked) for an entry it replaces,
 * evicts or deletes, and at bk__table_free.
 *
 * Bounds, per shard: max_entries / shards entries (the first shards take the
 * remainder) and max_bytes / shards bytes, 0 meaning none. Past a bound the
 * oldest entry goes, unless it was touched since it got to the old end; then it
 * gets a second chance at the new end (CLOCK). Chains grow past 2 per bucket.
 * SPDX-License-Identifier: MIT */
#ifndef BK_CORE_TABLE_INT_H
#define BK_CORE_TABLE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define BK__TABLE_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__TABLE_HIDDEN
#endif

typedef struct bk__table_entry {
    struct bk__table_entry *hnext;        /* hash chain */
    struct bk__table_entry *newer, *older; /* CLOCK order */
    const char *key;                      /* the caller's, in its allocation */
    size_t klen;
    size_t bytes; /* what it counts against max_bytes */
    uint64_t hash; /* set by bk__table_insert */
    bool referenced; /* touched since it last reached the old end */
} bk__table_entry_t;

typedef struct bk__table bk__table_t;
typedef struct bk__table_shard bk__table_shard_t;

typedef struct bk__table_opts {
    size_t shards;      /* a power of two >= 1 */
    size_t max_entries; /* in all; 0: no bound; else >= shards */
    size_t max_bytes;   /* in all; 0: no bound */
    size_t shard_extra; /* bytes of caller data per shard, zeroed */
    bool spin_first;    /* adaptive mutexes: for critical sections of a lookup and a copy */
    void (*free_entry)(bk__table_entry_t *e, void *ud);
    void *ud;
} bk__table_opts_t;

/* BK_EINVAL (shards not a power of two, max_entries < shards), BK_ENOMEM. */
BK__TABLE_HIDDEN int bk__table_new(const bk__table_opts_t *o, bk__table_t **out);
/* Frees every entry (free_entry) and the table; NULL is a no-op. */
BK__TABLE_HIDDEN void bk__table_free(bk__table_t *t);

/* Hashes key (once), locks its shard and returns it; *hash is for the calls below. */
BK__TABLE_HIDDEN bk__table_shard_t *bk__table_lock(bk__table_t *t, const char *key, size_t klen, uint64_t *hash);
BK__TABLE_HIDDEN void bk__table_unlock(bk__table_shard_t *s);
/* The shard's mutex, for a condition variable's wait or for unlocking around slow
 * work (the entries found before may be gone after). */
BK__TABLE_HIDDEN pthread_mutex_t *bk__table_mutex(bk__table_shard_t *s);
/* The shard's shard_extra bytes (aligned for any type). */
BK__TABLE_HIDDEN void *bk__table_data(bk__table_shard_t *s);

/* Shard locked, from here on. The entry of key, or NULL; does not touch it. */
BK__TABLE_HIDDEN bk__table_entry_t *bk__table_find(bk__table_shard_t *s, const char *key, size_t klen, uint64_t hash);
/* A read: the entry gets a second chance at eviction. It does not move (moving
 * writes its neighbours); the mark is written once. */
static inline void bk__table_touch(bk__table_entry_t *e)
{
    if (!e->referenced)
        e->referenced = true;
}
/* Adds e (key, klen, bytes filled) under hash, replacing (freeing) an entry of
 * the same key, then evicts until the shard is within its bounds; e itself is
 * never evicted. BK_ERANGE when e alone exceeds the shard's byte bound: nothing
 * changed, e is still the caller's. */
BK__TABLE_HIDDEN int bk__table_insert(bk__table_shard_t *s, bk__table_entry_t *e, uint64_t hash);
/* Unlinks e and frees it (free_entry). */
BK__TABLE_HIDDEN void bk__table_delete(bk__table_shard_t *s, bk__table_entry_t *e);

/* Stats: the shards, one at a time (lock each to read it). */
BK__TABLE_HIDDEN size_t bk__table_shards(const bk__table_t *t);
BK__TABLE_HIDDEN bk__table_shard_t *bk__table_shard(bk__table_t *t, size_t i);
typedef struct bk__table_counts {
    size_t entries, bytes;
    uint64_t evictions;
} bk__table_counts_t;
/* Shard locked: adds its counts to *out. */
BK__TABLE_HIDDEN void bk__table_counts(const bk__table_shard_t *s, bk__table_counts_t *out);

#endif
