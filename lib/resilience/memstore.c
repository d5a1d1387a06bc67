/* The in-process rate-limit store: the core sharded table (core/table_int.h: a
 * lock and CLOCK eviction per shard) of keys and their tat; at most max_keys
 * keys, those not checked lately evicted first. Versions make store() a
 * compare-and-set, as a shared store's would be (memcached's cas); the limiter's
 * own checks skip it (bk__memstore_update: one hash, one lock).
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "core/table_int.h"
#include "resilience_int.h"

#define MAX_SHARDS 64
#define MIN_PER_SHARD 64

struct entry {
    bk__table_entry_t t; /* first: a table entry is this entry */
    uint64_t version;
    int64_t tat;
    char key[];
};

struct shard {
    uint64_t next_version;
};

static void free_entry(bk__table_entry_t *e, void *ud)
{
    (void)ud;
    free(e);
}

static struct entry *find(bk__table_shard_t *s, const char *key, size_t klen, uint64_t h)
{
    return (struct entry *)bk__table_find(s, key, klen, h);
}

/* A new key's entry in s (which may evict another); NULL when out of memory. */
static struct entry *add(bk__table_shard_t *s, const char *key, size_t klen, uint64_t h, int64_t tat)
{
    struct entry *e = malloc(sizeof *e + klen + 1);
    if (e == NULL)
        return NULL;
    *e = (struct entry){.t = {.key = e->key, .klen = klen, .bytes = 1},
                        .tat = tat,
                        .version = ++((struct shard *)bk__table_data(s))->next_version};
    memcpy(e->key, key, klen + 1);
    bk__table_insert(s, &e->t, h); /* no byte bound: never refused */
    return e;
}

static int ms_load(const char *key, int64_t *tat, uint64_t *version, void *ud)
{
    size_t klen = strlen(key);
    uint64_t h;
    bk__table_shard_t *s = bk__table_lock(ud, key, klen, &h);
    struct entry *e = find(s, key, klen, h);
    if (e != NULL) {
        *tat = e->tat;
        *version = e->version;
        bk__table_touch(&e->t);
    }
    bk__table_unlock(s);
    return e ? BK_OK : BK_ENOTFOUND;
}

static int ms_store(const char *key, int64_t tat, uint64_t version, int64_t ttl_ns, void *ud)
{
    (void)ttl_ns; /* idle keys leave by CLOCK order; the ttl is for shared stores */
    size_t klen = strlen(key);
    uint64_t h;
    bk__table_shard_t *s = bk__table_lock(ud, key, klen, &h);
    struct entry *e = find(s, key, klen, h);
    int rc = BK_OK;
    if (e != NULL ? e->version != version : version != 0) {
        rc = BK_ECONFLICT;
    } else if (e != NULL) {
        e->tat = tat;
        e->version = ++((struct shard *)bk__table_data(s))->next_version;
        bk__table_touch(&e->t);
    } else if (add(s, key, klen, h, tat) == NULL) {
        rc = BK_ENOMEM;
    }
    bk__table_unlock(s);
    return rc;
}

int bk__memstore_update(void *ud, const char *key, bk__ratelimit_step_fn step, void *arg)
{
    size_t klen = strlen(key);
    uint64_t h;
    bk__table_shard_t *s = bk__table_lock(ud, key, klen, &h);
    struct entry *e = find(s, key, klen, h);
    int64_t tat = e ? e->tat : 0;
    int rc = BK_OK;
    if (step(e != NULL, &tat, arg)) {
        if (e != NULL) {
            e->tat = tat;
            e->version = ++((struct shard *)bk__table_data(s))->next_version;
        } else if (add(s, key, klen, h, tat) == NULL) {
            rc = BK_ENOMEM;
        }
    }
    if (e != NULL)
        bk__table_touch(&e->t);
    bk__table_unlock(s);
    return rc;
}

static void ms_destroy(void *ud)
{
    bk__table_free(ud);
}

bool bk__memstore_is(const bk_ratelimit_store_t *store)
{
    return store->load == ms_load && store->store == ms_store;
}

int bk_ratelimit_memory_store(size_t max_keys, bk_ratelimit_store_t *out)
{
    if (out == NULL || max_keys == 0)
        return BK_EINVAL;
    /* Each shard evicts on its own, so a shard must hold enough keys for the
     * eviction order to mean something: at least MIN_PER_SHARD, hence fewer
     * shards (a power of two) for small stores. */
    size_t nshards = 1;
    while (nshards * 2 <= MAX_SHARDS && nshards * 2 * MIN_PER_SHARD <= max_keys)
        nshards *= 2;
    bk__table_opts_t o = {.shards = nshards, .max_entries = max_keys, .shard_extra = sizeof(struct shard),
                          .free_entry = free_entry};
    bk__table_t *t;
    int rc = bk__table_new(&o, &t);
    if (rc != BK_OK)
        return rc;
    *out = (bk_ratelimit_store_t){.load = ms_load, .store = ms_store, .destroy = ms_destroy, .ud = t};
    return BK_OK;
}
