/* The local store: shards of a chained hash table, each with its own lock, list
 * of entries for CLOCK eviction (least recently used, approximately) and byte
 * budget, plus the loads in flight per key (single-flight). It is
 * an in-process cache's whole store and a memcached cache's near cache.
 * Every wait is for the one load of a key in flight, on that shard's lock and the
 * load's condition variable; the loader itself runs with no lock held.
 * SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* PTHREAD_MUTEX_ADAPTIVE_NP */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "cache_int.h"
#include "core/hash_int.h"

#define SHARDS 16
#define SHARD_BITS 4 /* the hash's low bits pick the shard, the bits above them the bucket */

struct entry {
    struct entry *hnext;       /* hash chain */
    struct entry *newer, *older; /* insertion order, with second chances (CLOCK) */
    uint64_t hash;
    int64_t fresh_until, stale_until; /* monotonic ns */
    bool negative;             /* the origin said "not found" */
    bool refreshing;           /* stale (or due early), one caller is loading it again */
    bool referenced;           /* read since it last reached the old end */
    int64_t load_ns;           /* how long its load took (XFetch) */
    size_t klen, vlen;
    char data[];               /* key, NUL, value, NUL */
};

struct flight {
    struct flight *next;
    uint64_t hash;
    char *key;
    bool done;
    int rc;
    void *value;
    size_t len;
    unsigned users; /* the loader and its waiters; the last one frees it */
    pthread_cond_t cond;
};

/* Counters live in their shard, under its lock: one counter shared by all
 * threads would move its cache line between cores on every hit. Shards are
 * cache-line aligned for the same reason. */
struct shard {
    pthread_mutex_t lock;
    struct entry **table;
    size_t mask, count, bytes;
    struct entry *newest, *oldest;
    struct flight *flights;
    uint64_t hits, stale_hits, misses, loads, evictions;
} __attribute__((aligned(64)));

struct bk__local {
    bk_cache_opts_t o;
    size_t shard_max;
    struct shard shards[SHARDS];
};

/* The seeded hash (core/hash_int.h): keys come from clients, so an unkeyed hash
 * would let one send keys that all land in one bucket. Its 64 bits are uniformly
 * mixed (no finaliser needed, as FNV-1a needed one); the low SHARD_BITS pick the
 * shard and the bits above them the bucket, so the two never share bits. */
static uint64_t hash_key(const char *k, size_t n)
{
    return bk__hash(k, n);
}

static size_t entry_size(const struct entry *e)
{
    return sizeof *e + e->klen + e->vlen + 2;
}

int bk__local_new(const bk_cache_opts_t *opts, size_t room, struct bk__local **out)
{
    /* Aligned as its shards are (calloc only promises 16 bytes). */
    size_t size = (sizeof(struct bk__local) + 63) / 64 * 64;
    struct bk__local *c = aligned_alloc(64, size);
    if (!c)
        return BK_ENOMEM;
    memset(c, 0, size);
    c->o = *opts;
    c->shard_max = room / SHARDS;
    /* Critical sections are a lookup and a copy: spin briefly before sleeping
     * (a futex sleep and wake-up cost more than the wait). */
    pthread_mutexattr_t spin_first;
    pthread_mutexattr_init(&spin_first);
    pthread_mutexattr_settype(&spin_first, PTHREAD_MUTEX_ADAPTIVE_NP);
    for (size_t i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_init(&s->lock, &spin_first);
        s->mask = 63;
        if (!(s->table = calloc(s->mask + 1, sizeof *s->table))) {
            pthread_mutexattr_destroy(&spin_first);
            bk__local_free(c);
            return BK_ENOMEM;
        }
    }
    pthread_mutexattr_destroy(&spin_first);
    *out = c;
    return BK_OK;
}

void bk__local_free(struct bk__local *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shards[i];
        for (struct entry *e = s->newest, *next; e; e = next) {
            next = e->older;
            free(e);
        }
        free(s->table);
        pthread_mutex_destroy(&s->lock);
    }
    free(c);
}

/* ------------------------------------------------------------------ a shard, with its lock held */

static struct entry **slot(struct shard *s, const char *key, size_t klen, uint64_t h)
{
    struct entry **p = &s->table[(h >> SHARD_BITS) & s->mask];
    while (*p && !((*p)->hash == h && (*p)->klen == klen && memcmp((*p)->data, key, klen) == 0))
        p = &(*p)->hnext;
    return p;
}

static void lru_unlink(struct shard *s, struct entry *e)
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

static void lru_push(struct shard *s, struct entry *e)
{
    e->newer = NULL;
    e->older = s->newest;
    if (s->newest)
        s->newest->newer = e;
    s->newest = e;
    if (!s->oldest)
        s->oldest = e;
}

static void remove_entry(struct shard *s, struct entry *e)
{
    struct entry **p = slot(s, e->data, e->klen, e->hash);
    *p = e->hnext;
    lru_unlink(s, e);
    s->bytes -= entry_size(e);
    s->count--;
    free(e);
}

static void grow(struct shard *s)
{
    size_t size = (s->mask + 1) * 2;
    struct entry **t = calloc(size, sizeof *t);
    if (!t)
        return; /* longer chains, still correct */
    for (size_t i = 0; i <= s->mask; i++) {
        for (struct entry *e = s->table[i], *next; e; e = next) {
            next = e->hnext;
            size_t b = (e->hash >> SHARD_BITS) & (size - 1);
            e->hnext = t[b];
            t[b] = e;
        }
    }
    free(s->table);
    s->table = t;
    s->mask = size - 1;
}

double bk__cache_jitter(unsigned pct)
{
    uint32_t r = 0;
    if (pct == 0 || bk_random_bytes(&r, sizeof r) != BK_OK)
        return 1.0;
    return 1.0 + ((double)r / 4294967295.0 * 2.0 - 1.0) * pct / 100.0;
}

/* Stores key → value (copied), replacing what was there and evicting entries
 * not read lately past the shard's budget. */
static int put(struct bk__local *c, struct shard *s, const char *key, size_t klen, uint64_t h, const void *value,
               size_t vlen, int64_t fresh_ns, int64_t stale_ns, bool negative, int64_t load_ns)
{
    if (sizeof(struct entry) + klen + vlen + 2 > c->shard_max)
        return BK_ERANGE;
    struct entry *e = malloc(sizeof *e + klen + vlen + 2);
    if (!e)
        return BK_ENOMEM;
    int64_t now = bk_clock_mono_ns(c->o.clock);
    fresh_ns = (int64_t)((double)fresh_ns * bk__cache_jitter(c->o.ttl_jitter_pct));
    *e = (struct entry){.hash = h, .klen = klen, .vlen = vlen, .negative = negative, .load_ns = load_ns,
                        .fresh_until = now + fresh_ns, .stale_until = now + fresh_ns + stale_ns};
    memcpy(e->data, key, klen);
    e->data[klen] = '\0';
    if (vlen)
        memcpy(e->data + klen + 1, value, vlen);
    e->data[klen + 1 + vlen] = '\0';
    struct entry **p = slot(s, key, klen, h);
    if (*p)
        remove_entry(s, *p);
    p = slot(s, key, klen, h);
    e->hnext = NULL;
    *p = e;
    lru_push(s, e);
    s->bytes += entry_size(e);
    if (++s->count > (s->mask + 1) * 2)
        grow(s);
    /* CLOCK eviction: the oldest entry goes, unless it was read since it got
     * there; then it gets a second chance at the new end. The new entry is
     * never evicted (put checked it fits). */
    while (s->bytes > c->shard_max) {
        struct entry *old = s->oldest;
        if (old->referenced || old == e) {
            old->referenced = false;
            lru_unlink(s, old);
            lru_push(s, old);
            continue;
        }
        remove_entry(s, old);
        s->evictions++;
    }
    return BK_OK;
}

int bk__cache_copy(const void *value, size_t len, void **out, size_t *outlen)
{
    char *v = malloc(len + 1);
    if (!v)
        return BK_ENOMEM;
    if (len)
        memcpy(v, value, len);
    v[len] = '\0';
    *out = v;
    if (outlen)
        *outlen = len;
    return BK_OK;
}

static struct entry *lookup(struct shard *s, const char *key, size_t klen, uint64_t h)
{
    return *slot(s, key, klen, h);
}

bool bk__cache_early(double beta, int64_t load_ns, int64_t now, int64_t fresh_until)
{
    if (beta <= 0 || load_ns <= 0)
        return false;
    uint32_t r = 0;
    if (bk_random_bytes(&r, sizeof r) != BK_OK)
        return false;
    double u = ((double)r + 1.0) / 4294967296.0; /* (0, 1] */
    return (double)now - (double)load_ns * beta * log(u) >= (double)fresh_until;
}

/* ------------------------------------------------------------------ the store's API */

static struct shard *shard_of(struct bk__local *c, const char *key, size_t *klen, uint64_t *h)
{
    *klen = strlen(key);
    *h = hash_key(key, *klen);
    return &c->shards[*h & (SHARDS - 1)];
}

/* A fresh entry's answer. A hit marks the entry read (CLOCK) and does not move
 * it: moving writes the neighbours, which other threads walking the chain would
 * then miss; the mark is written once. */
static int serve_hit(struct shard *s, struct entry *e, void **value, size_t *len)
{
    s->hits++;
    if (!e->referenced)
        e->referenced = true;
    return e->negative ? BK_ENOTFOUND : bk__cache_copy(e->data + e->klen + 1, e->vlen, value, len);
}

/* The loader and each waiter leave a flight once; the last frees it. */
static void flight_leave(struct flight *f)
{
    if (--f->users > 0)
        return;
    pthread_cond_destroy(&f->cond);
    free(f->value);
    free(f->key);
    free(f);
}

/* Runs the loader (no lock held) and stores its answer; the shard is locked on
 * return. */
static int load(struct bk__local *c, struct shard *s, const char *key, size_t klen, uint64_t h, const bk_cache_ttl_t *ttl,
                bk_cache_loader_fn loader, void *ctx, void **value, size_t *len)
{
    s->loads++;
    pthread_mutex_unlock(&s->lock);
    *value = NULL;
    *len = 0;
    int64_t start = bk_clock_mono_ns(c->o.clock);
    int rc = loader(key, value, len, ctx);
    int64_t load_ns = bk_clock_mono_ns(c->o.clock) - start;
    pthread_mutex_lock(&s->lock);
    if (rc == BK_OK && *value == NULL && *len != 0)
        rc = BK_EINVAL; /* a loader bug: no bytes for a length */
    if (rc == BK_OK) {
        put(c, s, key, klen, h, *value, *len, ttl->fresh_ns, ttl->stale_ns, false,
            load_ns); /* ENOMEM, ERANGE: just not cached */
        void *v; /* the caller gets a NUL-terminated copy, as documented */
        size_t n = *len;
        rc = bk__cache_copy(*value, n, &v, len);
        free(*value);
        *value = rc == BK_OK ? v : NULL;
        if (rc != BK_OK)
            return rc;
    } else if (rc == BK_ENOTFOUND && c->o.negative_ttl_ns > 0)
        put(c, s, key, klen, h, NULL, 0, c->o.negative_ttl_ns, 0, true, load_ns);
    if (rc != BK_OK) {
        free(*value);
        *value = NULL;
        *len = 0;
    }
    return rc;
}


/* The public bk_cache_fetch has checked the arguments. */
int bk__local_fetch(struct bk__local *c, const char *key, const bk_cache_ttl_t *ttl, bk_cache_loader_fn loader,
                    void *ctx, void **value, size_t *len)
{
    size_t klen;
    uint64_t h;
    struct shard *s = shard_of(c, key, &klen, &h);
    pthread_mutex_lock(&s->lock);
    int64_t now = bk_clock_mono_ns(c->o.clock);
    struct entry *e = lookup(s, key, klen, h);
    int rc;
    bool fresh = e && now < e->fresh_until;
    if (fresh && (e->negative || e->refreshing || !bk__cache_early(c->o.early_refresh, e->load_ns, now, e->fresh_until))) {
        rc = serve_hit(s, e, value, len);
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    if (e && now < e->stale_until && !e->negative) { /* stale, or fresh and due early */
        if (e->refreshing) { /* someone is on it: serve what we have */
            (*(fresh ? &s->hits : &s->stale_hits))++;
            rc = bk__cache_copy(e->data + klen + 1, e->vlen, value, len);
            pthread_mutex_unlock(&s->lock);
            return rc;
        }
        /* This caller refreshes; if the origin fails (but not when it says the key
         * is gone), it too gets the stale copy. */
        e->refreshing = true;
        void *stale;
        size_t stale_len;
        if (bk__cache_copy(e->data + klen + 1, e->vlen, &stale, &stale_len) != BK_OK) {
            e->refreshing = false;
            pthread_mutex_unlock(&s->lock);
            return BK_ENOMEM;
        }
        rc = load(c, s, key, klen, h, ttl, loader, ctx, value, len);
        if (rc == BK_OK || rc == BK_ENOTFOUND) { /* the origin's answer, not a failure */
            struct entry *cur = rc == BK_ENOTFOUND ? lookup(s, key, klen, h) : NULL;
            if (cur && !cur->negative)
                remove_entry(s, cur); /* gone, and not remembered as such: forget the old copy */
            free(stale);
        } else {
            struct entry *cur = lookup(s, key, klen, h);
            if (cur)
                cur->refreshing = false; /* let a later caller try again */
            *value = stale;
            *len = stale_len;
            rc = BK_OK;
        }
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    if (e)
        remove_entry(s, e); /* past its stale time */
    s->misses++;
    /* A load of this key in flight: wait for its answer. */
    for (struct flight *f = s->flights; f; f = f->next) {
        if (f->hash != h || strcmp(f->key, key) != 0)
            continue;
        f->users++;
        while (!f->done)
            pthread_cond_wait(&f->cond, &s->lock);
        rc = f->rc == BK_OK ? bk__cache_copy(f->value, f->len, value, len) : f->rc;
        flight_leave(f);
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    /* This caller loads, for everyone who asks meanwhile. */
    struct flight *f = calloc(1, sizeof *f);
    char *fkey = f ? strdup(key) : NULL;
    if (!fkey) {
        free(f);
        pthread_mutex_unlock(&s->lock);
        return BK_ENOMEM;
    }
    f->hash = h;
    f->key = fkey;
    f->users = 1;
    pthread_cond_init(&f->cond, NULL);
    f->next = s->flights;
    s->flights = f;
    rc = load(c, s, key, klen, h, ttl, loader, ctx, value, len);
    for (struct flight **p = &s->flights; *p; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next; /* later callers find the cache, or load anew */
            break;
        }
    }
    f->rc = rc;
    if (rc == BK_OK && bk__cache_copy(*value, *len, &f->value, &f->len) != BK_OK)
        f->rc = BK_ENOMEM;
    f->done = true;
    pthread_cond_broadcast(&f->cond);
    flight_leave(f);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int bk__local_get(struct bk__local *c, const char *key, void **value, size_t *len)
{
    size_t klen;
    uint64_t h;
    struct shard *s = shard_of(c, key, &klen, &h);
    pthread_mutex_lock(&s->lock);
    struct entry *e = lookup(s, key, klen, h);
    int rc = BK__CACHE_MISS;
    if (e && bk_clock_mono_ns(c->o.clock) < e->fresh_until) {
        rc = serve_hit(s, e, value, len);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int bk__local_set(struct bk__local *c, const char *key, const void *value, size_t len, const bk_cache_ttl_t *ttl)
{
    size_t klen;
    uint64_t h;
    struct shard *s = shard_of(c, key, &klen, &h);
    pthread_mutex_lock(&s->lock);
    int rc = put(c, s, key, klen, h, value, len, ttl->fresh_ns, ttl->stale_ns, false, 0);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void bk__local_delete(struct bk__local *c, const char *key)
{
    size_t klen;
    uint64_t h;
    struct shard *s = shard_of(c, key, &klen, &h);
    pthread_mutex_lock(&s->lock);
    struct entry *e = lookup(s, key, klen, h);
    if (e)
        remove_entry(s, e);
    pthread_mutex_unlock(&s->lock);
}

void bk__local_stats(struct bk__local *c, bk_cache_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < SHARDS; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        out->bytes += s->bytes;
        out->entries += s->count;
        out->hits += s->hits;
        out->stale_hits += s->stale_hits;
        out->misses += s->misses;
        out->loads += s->loads;
        out->evictions += s->evictions;
        pthread_mutex_unlock(&s->lock);
    }
}
