/* The sharded bounded table of table_int.h: chains, a CLOCK list and bounds per
 * shard, the seeded hash of hash_int.h computed once per key.
 * SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* PTHREAD_MUTEX_ADAPTIVE_NP */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "backend/core.h"
#include "core/hash_int.h"
#include "core/table_int.h"

#define LINE 64
#define FIRST_BUCKETS 64

/* Its own cache line(s): one shard's lock and counters never share a line with
 * another's, so threads on different shards do not bounce lines between cores. */
struct bk__table_shard {
    pthread_mutex_t lock;
    const bk__table_t *table;
    bk__table_entry_t **buckets;
    size_t mask; /* buckets - 1 */
    size_t count, bytes, max_entries, max_bytes;
    uint64_t evictions;
    bk__table_entry_t *newest, *oldest;
    alignas(max_align_t) unsigned char data[]; /* shard_extra */
};

struct bk__table {
    bk__table_opts_t o;
    unsigned shard_bits;
    size_t stride; /* bytes from one shard to the next: whole lines */
    unsigned char *shards;
};

static bk__table_shard_t *shard_at(const bk__table_t *t, size_t i)
{
    return (bk__table_shard_t *)(t->shards + i * t->stride);
}

int bk__table_new(const bk__table_opts_t *o, bk__table_t **out)
{
    *out = NULL;
    if (o->shards == 0 || (o->shards & (o->shards - 1)) != 0 || (o->max_entries && o->max_entries < o->shards) ||
        !o->free_entry)
        return BK_EINVAL;
    bk__table_t *t = calloc(1, sizeof *t);
    if (!t)
        return BK_ENOMEM;
    t->o = *o;
    while (((size_t)1 << t->shard_bits) < o->shards)
        t->shard_bits++;
    t->stride = (sizeof(bk__table_shard_t) + o->shard_extra + LINE - 1) / LINE * LINE;
    if (!(t->shards = aligned_alloc(LINE, o->shards * t->stride))) {
        free(t);
        return BK_ENOMEM;
    }
    memset(t->shards, 0, o->shards * t->stride);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (o->spin_first) /* spin briefly before sleeping: a futex sleep and wake-up cost more than the wait */
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    int rc = BK_OK;
    for (size_t i = 0; i < o->shards; i++) {
        bk__table_shard_t *s = shard_at(t, i);
        pthread_mutex_init(&s->lock, &attr);
        s->table = t;
        /* Spread the bounds exactly: the first shards take the remainder. */
        s->max_entries = o->max_entries / o->shards + (i < o->max_entries % o->shards);
        s->max_bytes = o->max_bytes / o->shards;
        s->mask = FIRST_BUCKETS - 1;
        if (!(s->buckets = calloc(FIRST_BUCKETS, sizeof *s->buckets)))
            rc = BK_ENOMEM;
    }
    pthread_mutexattr_destroy(&attr);
    if (rc != BK_OK) {
        bk__table_free(t);
        return rc;
    }
    *out = t;
    return BK_OK;
}

void bk__table_free(bk__table_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->o.shards; i++) {
        bk__table_shard_t *s = shard_at(t, i);
        for (bk__table_entry_t *e = s->newest, *next; e; e = next) {
            next = e->older;
            t->o.free_entry(e, t->o.ud);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(t->shards);
    free(t);
}

bk__table_shard_t *bk__table_lock(bk__table_t *t, const char *key, size_t klen, uint64_t *hash)
{
    *hash = bk__hash(key, klen);
    bk__table_shard_t *s = shard_at(t, *hash & (t->o.shards - 1));
    pthread_mutex_lock(&s->lock);
    return s;
}

void bk__table_unlock(bk__table_shard_t *s)
{
    pthread_mutex_unlock(&s->lock);
}

pthread_mutex_t *bk__table_mutex(bk__table_shard_t *s)
{
    return &s->lock;
}

void *bk__table_data(bk__table_shard_t *s)
{
    return s->data;
}

size_t bk__table_shards(const bk__table_t *t)
{
    return t->o.shards;
}

bk__table_shard_t *bk__table_shard(bk__table_t *t, size_t i)
{
    return shard_at(t, i);
}

void bk__table_counts(const bk__table_shard_t *s, bk__table_counts_t *out)
{
    out->entries += s->count;
    out->bytes += s->bytes;
    out->evictions += s->evictions;
}

/* ------------------------------------------------------------------ a shard, locked */

static bk__table_entry_t **slot(bk__table_shard_t *s, const char *key, size_t klen, uint64_t h)
{
    bk__table_entry_t **p = &s->buckets[(h >> s->table->shard_bits) & s->mask];
    while (*p && !((*p)->hash == h && (*p)->klen == klen && memcmp((*p)->key, key, klen) == 0))
        p = &(*p)->hnext;
    return p;
}

bk__table_entry_t *bk__table_find(bk__table_shard_t *s, const char *key, size_t klen, uint64_t hash)
{
    return *slot(s, key, klen, hash);
}

static void clock_unlink(bk__table_shard_t *s, bk__table_entry_t *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        s->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        s->oldest = e->newer;
}

static void clock_push(bk__table_shard_t *s, bk__table_entry_t *e)
{
    e->newer = NULL;
    e->older = s->newest;
    if (s->newest)
        s->newest->newer = e;
    s->newest = e;
    if (!s->oldest)
        s->oldest = e;
}

void bk__table_delete(bk__table_shard_t *s, bk__table_entry_t *e)
{
    bk__table_entry_t **p = slot(s, e->key, e->klen, e->hash);
    *p = e->hnext;
    clock_unlink(s, e);
    s->bytes -= e->bytes;
    s->count--;
    s->table->o.free_entry(e, s->table->o.ud);
}

static void grow(bk__table_shard_t *s)
{
    size_t size = (s->mask + 1) * 2;
    bk__table_entry_t **b = calloc(size, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    unsigned bits = s->table->shard_bits;
    for (size_t i = 0; i <= s->mask; i++) {
        for (bk__table_entry_t *e = s->buckets[i], *next; e; e = next) {
            next = e->hnext;
            size_t j = (e->hash >> bits) & (size - 1);
            e->hnext = b[j];
            b[j] = e;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->mask = size - 1;
}

static bool over(const bk__table_shard_t *s)
{
    return (s->max_entries && s->count > s->max_entries) || (s->max_bytes && s->bytes > s->max_bytes);
}

int bk__table_insert(bk__table_shard_t *s, bk__table_entry_t *e, uint64_t hash)
{
    if (s->max_bytes && e->bytes > s->max_bytes)
        return BK_ERANGE;
    bk__table_entry_t **p = slot(s, e->key, e->klen, hash);
    if (*p) {
        bk__table_delete(s, *p);
        p = slot(s, e->key, e->klen, hash);
    }
    e->hash = hash;
    e->hnext = NULL;
    e->referenced = false;
    *p = e;
    clock_push(s, e);
    s->bytes += e->bytes;
    if (++s->count > (s->mask + 1) * 2)
        grow(s);
    /* CLOCK: the oldest entry goes, unless it was read since it got there; then
     * it gets a second chance at the new end. The new entry fits (checked
     * above), so it is never the one to go. */
    while (over(s)) {
        bk__table_entry_t *old = s->oldest;
        if (old->referenced || old == e) {
            old->referenced = false;
            clock_unlink(s, old);
            clock_push(s, old);
            continue;
        }
        bk__table_delete(s, old);
        s->evictions++;
    }
    return BK_OK;
}
