/* The in-process rate-limit store: shards of a chained hash table, each under its
 * own mutex, each with an LRU list; at most max_keys keys, least recently used
 * evicted first. Versions make store() a compare-and-set, as a shared store's
 * would be (memcached's cas).
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <backend/resilience.h>

#include "core/hash_int.h"

#define MAX_SHARDS 64
#define MIN_PER_SHARD 64

struct entry {
    struct entry *chain;      /* next in the hash bucket */
    struct entry *prev, *next; /* LRU: head is the most recent */
    uint64_t hash, version;
    int64_t tat;
    char key[];
};

struct shard {
    pthread_mutex_t mu;
    struct entry **table;
    size_t mask; /* table size - 1 (a power of two) */
    struct entry *head, *tail;
    size_t count, max;
    uint64_t next_version;
};

struct memstore {
    struct shard *shards;
    size_t nshards;
};

/* The seeded hash (core/hash_int.h): rate-limit keys come from clients. The
 * shard is the hash modulo the shard count, the bucket the bits from 8 up, so
 * that shard and bucket do not depend on the same bits. */
static uint64_t key_hash(const char *s)
{
    return bk__hash(s, strlen(s));
}

static struct entry **slot_of(struct shard *sh, const char *key, uint64_t hash)
{
    struct entry **p = &sh->table[(hash >> 8) & sh->mask];
    while (*p != NULL && ((*p)->hash != hash || strcmp((*p)->key, key) != 0))
        p = &(*p)->chain;
    return p;
}

static void lru_unlink(struct shard *sh, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        sh->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        sh->tail = e->prev;
}

static void lru_front(struct shard *sh, struct entry *e)
{
    e->prev = NULL;
    e->next = sh->head;
    if (sh->head)
        sh->head->prev = e;
    sh->head = e;
    if (sh->tail == NULL)
        sh->tail = e;
}

static struct shard *shard_of(struct memstore *m, uint64_t hash)
{
    return &m->shards[hash % m->nshards];
}

static int ms_load(const char *key, int64_t *tat, uint64_t *version, void *ud)
{
    uint64_t h = key_hash(key);
    struct shard *sh = shard_of(ud, h);
    pthread_mutex_lock(&sh->mu);
    struct entry *e = *slot_of(sh, key, h);
    if (e != NULL) {
        *tat = e->tat;
        *version = e->version;
        lru_unlink(sh, e);
        lru_front(sh, e);
    }
    pthread_mutex_unlock(&sh->mu);
    return e ? BK_OK : BK_ENOTFOUND;
}

static void evict_lru(struct shard *sh)
{
    struct entry *e = sh->tail;
    lru_unlink(sh, e);
    struct entry **p = slot_of(sh, e->key, e->hash);
    *p = e->chain;
    sh->count--;
    free(e);
}

static int ms_store(const char *key, int64_t tat, uint64_t version, int64_t ttl_ns, void *ud)
{
    (void)ttl_ns; /* idle keys leave by LRU order; the ttl is for shared stores */
    uint64_t h = key_hash(key);
    struct shard *sh = shard_of(ud, h);
    int rc = BK_OK;
    pthread_mutex_lock(&sh->mu);
    struct entry **p = slot_of(sh, key, h);
    struct entry *e = *p;
    if (e != NULL ? e->version != version : version != 0) {
        rc = BK_ECONFLICT;
    } else if (e != NULL) {
        e->tat = tat;
        e->version = ++sh->next_version;
        lru_unlink(sh, e);
        lru_front(sh, e);
    } else {
        size_t len = strlen(key);
        e = malloc(sizeof *e + len + 1);
        if (e == NULL) {
            rc = BK_ENOMEM;
        } else {
            if (sh->count == sh->max) {
                evict_lru(sh);
                p = slot_of(sh, key, h); /* the chain may have changed */
            }
            memcpy(e->key, key, len + 1);
            e->hash = h;
            e->tat = tat;
            e->version = ++sh->next_version;
            e->chain = NULL;
            *p = e;
            lru_front(sh, e);
            sh->count++;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return rc;
}

static void ms_destroy(void *ud)
{
    struct memstore *m = ud;
    for (size_t i = 0; i < m->nshards; i++) {
        struct shard *sh = &m->shards[i];
        for (struct entry *e = sh->head, *next; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
        free(sh->table);
        pthread_mutex_destroy(&sh->mu);
    }
    free(m->shards);
    free(m);
}

int bk_ratelimit_memory_store(size_t max_keys, bk_ratelimit_store_t *out)
{
    if (out == NULL || max_keys == 0)
        return BK_EINVAL;
    struct memstore *m = calloc(1, sizeof *m);
    /* Each shard evicts on its own, so a shard must hold enough keys for the LRU
     * order to mean something: at least MIN_PER_SHARD, hence fewer shards for
     * small stores. */
    size_t nshards = max_keys / MIN_PER_SHARD;
    if (nshards < 1)
        nshards = 1;
    if (nshards > MAX_SHARDS)
        nshards = MAX_SHARDS;
    if (m == NULL || (m->shards = calloc(nshards, sizeof *m->shards)) == NULL) {
        free(m);
        return BK_ENOMEM;
    }
    for (size_t i = 0; i < nshards; i++) {
        struct shard *sh = &m->shards[i];
        /* Spread max_keys exactly: the first shards take the remainder. */
        sh->max = max_keys / nshards + (i < max_keys % nshards);
        size_t size = 16;
        while (size < sh->max && size < ((size_t)1 << 30))
            size *= 2;
        sh->mask = size - 1;
        pthread_mutex_init(&sh->mu, NULL);
        m->nshards++;
        if ((sh->table = calloc(size, sizeof *sh->table)) == NULL) {
            ms_destroy(m);
            return BK_ENOMEM;
        }
    }
    *out = (bk_ratelimit_store_t){.load = ms_load, .store = ms_store, .destroy = ms_destroy, .ud = m};
    return BK_OK;
}
