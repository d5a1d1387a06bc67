/* The local store: the core sharded table (core/table_int.h: a lock, CLOCK
 * eviction and a byte budget per shard) of cache entries, plus, per shard, the
 * loads in flight per key (single-flight) and the hit counters. It is
 * an in-process cache's whole store and a memcached cache's near cache.
 * Every wait is for the one load of a key in flight, on that shard's lock and the
 * load's condition variable; the loader itself runs with no lock held.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "core/table_int.h"

/* One allocation: the table's header, the times, then key, NUL, value, NUL. */
struct entry {
    bk__table_entry_t t; /* first: a table entry is this entry */
    int64_t fresh_until, stale_until; /* monotonic ns */
    bool negative;             /* the origin said "not found" */
    bool refreshing;           /* stale (or due early), one caller is loading it again */
    int64_t load_ns;           /* how long its load took (XFetch) */
    size_t vlen;
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

/* Each shard's own, under its lock (the table's shard_extra): one counter shared
 * by all threads would move its cache line between cores on every hit. The
 * table counts entries, bytes and evictions. */
struct shard {
    struct flight *flights;
    uint64_t hits, stale_hits, misses, loads, coalesced;
};

struct bk__local {
    bk_cache_opts_t o;
    size_t shard_max;
    bk__table_t *table;
};

static void free_entry(bk__table_entry_t *e, void *ud)
{
    (void)ud;
    free(e);
}

int bk__local_new(const bk_cache_opts_t *opts, size_t room, struct bk__local **out)
{
    struct bk__local *c = calloc(1, sizeof *c);
    if (!c)
        return BK_ENOMEM;
    c->o = *opts;
    c->shard_max = room / BK__CACHE_SHARDS;
    /* Critical sections are a lookup and a copy: spin first. */
    bk__table_opts_t to = {.shards = BK__CACHE_SHARDS, .max_bytes = c->shard_max * BK__CACHE_SHARDS,
                           .shard_extra = sizeof(struct shard), .spin_first = true, .free_entry = free_entry};
    int rc = bk__table_new(&to, &c->table);
    if (rc != BK_OK) {
        free(c);
        return rc;
    }
    *out = c;
    return BK_OK;
}

void bk__local_free(struct bk__local *c)
{
    if (!c)
        return;
    bk__table_free(c->table);
    free(c);
}

/* ------------------------------------------------------------------ a shard, with its lock held */

static struct entry *lookup(bk__table_shard_t *s, const char *key, size_t klen, uint64_t h)
{
    return (struct entry *)bk__table_find(s, key, klen, h);
}

static void remove_entry(bk__table_shard_t *s, struct entry *e)
{
    bk__table_delete(s, &e->t);
}

/* Stores key → value (copied), replacing what was there; the table evicts
 * entries not read lately past the shard's budget. */
static int put(struct bk__local *c, bk__table_shard_t *s, const char *key, size_t klen, uint64_t h,
               const void *value, size_t vlen, int64_t fresh_ns, int64_t stale_ns, bool negative, int64_t load_ns)
{
    size_t size = sizeof(struct entry) + klen + vlen + 2;
    if (size > c->shard_max)
        return BK_ERANGE;
    struct entry *e = malloc(size);
    if (!e)
        return BK_ENOMEM;
    int64_t now = bk_clock_mono_ns(c->o.clock);
    fresh_ns = (int64_t)((double)fresh_ns * bk__cache_jitter(c->o.ttl_jitter_pct));
    *e = (struct entry){.t = {.key = e->data, .klen = klen, .bytes = size}, .vlen = vlen, .negative = negative,
                        .load_ns = load_ns, .fresh_until = now + fresh_ns, .stale_until = now + fresh_ns + stale_ns};
    memcpy(e->data, key, klen);
    e->data[klen] = '\0';
    if (vlen)
        memcpy(e->data + klen + 1, value, vlen);
    e->data[klen + 1 + vlen] = '\0';
    int rc = bk__table_insert(s, &e->t, h);
    if (rc != BK_OK)
        free(e);
    return rc;
}

/* ------------------------------------------------------------------ the store's API */

/* Hashes key once and locks its shard. */
static bk__table_shard_t *shard_of(struct bk__local *c, const char *key, size_t *klen, uint64_t *h)
{
    *klen = strlen(key);
    return bk__table_lock(c->table, key, *klen, h);
}

static struct shard *counters(bk__table_shard_t *s)
{
    return bk__table_data(s);
}

/* A fresh entry's answer; a hit marks the entry read (CLOCK). */
static int serve_hit(bk__table_shard_t *s, struct entry *e, void **value, size_t *len)
{
    counters(s)->hits++;
    bk__table_touch(&e->t);
    return e->negative ? BK_ENOTFOUND : bk__cache_copy(e->data + e->t.klen + 1, e->vlen, value, len);
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
static int load(struct bk__local *c, bk__table_shard_t *s, const char *key, size_t klen, uint64_t h, const bk_cache_ttl_t *ttl,
                bk_cache_loader_fn loader, void *ctx, void **value, size_t *len)
{
    counters(s)->loads++;
    pthread_mutex_unlock(bk__table_mutex(s));
    *value = NULL;
    *len = 0;
    int64_t start = bk_clock_mono_ns(c->o.clock);
    int rc = loader(key, value, len, ctx);
    int64_t load_ns = bk_clock_mono_ns(c->o.clock) - start;
    pthread_mutex_lock(bk__table_mutex(s));
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
    bk__table_shard_t *s = shard_of(c, key, &klen, &h);
    int64_t now = bk_clock_mono_ns(c->o.clock);
    struct entry *e = lookup(s, key, klen, h);
    int rc;
    bool fresh = e && now < e->fresh_until;
    if (fresh && (e->negative || e->refreshing || !bk__cache_early(c->o.early_refresh, e->load_ns, now, e->fresh_until))) {
        rc = serve_hit(s, e, value, len);
        bk__table_unlock(s);
        return rc;
    }
    if (e && now < e->stale_until && !e->negative) { /* stale, or fresh and due early */
        if (e->refreshing) { /* someone is on it: serve what we have */
            (*(fresh ? &counters(s)->hits : &counters(s)->stale_hits))++;
            rc = bk__cache_copy(e->data + klen + 1, e->vlen, value, len);
            bk__table_unlock(s);
            return rc;
        }
        /* This caller refreshes; if the origin fails (but not when it says the key
         * is gone), it too gets the stale copy. */
        e->refreshing = true;
        void *stale;
        size_t stale_len;
        if (bk__cache_copy(e->data + klen + 1, e->vlen, &stale, &stale_len) != BK_OK) {
            e->refreshing = false;
            bk__table_unlock(s);
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
        bk__table_unlock(s);
        return rc;
    }
    if (e)
        remove_entry(s, e); /* past its stale time */
    struct shard *sc = counters(s);
    sc->misses++;
    /* A load of this key in flight: wait for its answer. */
    for (struct flight *f = sc->flights; f; f = f->next) {
        if (f->hash != h || strcmp(f->key, key) != 0)
            continue;
        f->users++;
        sc->coalesced++;
        while (!f->done)
            pthread_cond_wait(&f->cond, bk__table_mutex(s));
        rc = f->rc == BK_OK ? bk__cache_copy(f->value, f->len, value, len) : f->rc;
        flight_leave(f);
        bk__table_unlock(s);
        return rc;
    }
    /* This caller loads, for everyone who asks meanwhile. */
    struct flight *f = calloc(1, sizeof *f);
    char *fkey = f ? strdup(key) : NULL;
    if (!fkey) {
        free(f);
        bk__table_unlock(s);
        return BK_ENOMEM;
    }
    f->hash = h;
    f->key = fkey;
    f->users = 1;
    pthread_cond_init(&f->cond, NULL);
    f->next = sc->flights;
    sc->flights = f;
    rc = load(c, s, key, klen, h, ttl, loader, ctx, value, len);
    for (struct flight **p = &sc->flights; *p; p = &(*p)->next) {
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
    bk__table_unlock(s);
    return rc;
}

int bk__local_get(struct bk__local *c, const char *key, void **value, size_t *len)
{
    size_t klen;
    uint64_t h;
    bk__table_shard_t *s = shard_of(c, key, &klen, &h);
    struct entry *e = lookup(s, key, klen, h);
    int rc = BK__CACHE_MISS;
    if (e && bk_clock_mono_ns(c->o.clock) < e->fresh_until) {
        rc = serve_hit(s, e, value, len);
    }
    bk__table_unlock(s);
    return rc;
}

int bk__local_set(struct bk__local *c, const char *key, const void *value, size_t len, const bk_cache_ttl_t *ttl)
{
    size_t klen;
    uint64_t h;
    bk__table_shard_t *s = shard_of(c, key, &klen, &h);
    int rc = put(c, s, key, klen, h, value, len, ttl->fresh_ns, ttl->stale_ns, false, 0);
    bk__table_unlock(s);
    return rc;
}

void bk__local_delete(struct bk__local *c, const char *key)
{
    size_t klen;
    uint64_t h;
    bk__table_shard_t *s = shard_of(c, key, &klen, &h);
    struct entry *e = lookup(s, key, klen, h);
    if (e)
        remove_entry(s, e);
    bk__table_unlock(s);
}

void bk__local_stats(struct bk__local *c, bk_cache_stats_t *out)
{
    memset(out, 0, sizeof *out);
    bk__table_counts_t n = {0};
    for (size_t i = 0; i < bk__table_shards(c->table); i++) {
        bk__table_shard_t *s = bk__table_shard(c->table, i);
        pthread_mutex_lock(bk__table_mutex(s));
        bk__table_counts(s, &n);
        const struct shard *sc = counters(s);
        out->hits += sc->hits;
        out->stale_hits += sc->stale_hits;
        out->misses += sc->misses;
        out->loads += sc->loads;
        out->coalesced += sc->coalesced;
        pthread_mutex_unlock(bk__table_mutex(s));
    }
    out->bytes = n.bytes;
    out->entries = n.entries;
    out->evictions = n.evictions;
}
