/* The hash map of map_int.h: open addressing, linear probing, the seeded hash of
 * hash_int.h over byte keys and over pointer keys.
 * SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/core.h"
#include "core/hash_int.h"
#include "core/map_int.h"

struct bk__map_slot {
    const char *key;
    size_t klen; /* SIZE_MAX: key is a pointer compared by address */
    uint64_t hash;
    void *value;
};

#define PTR_KEY SIZE_MAX

static bool same(const struct bk__map_slot *s, const char *key, size_t klen, uint64_t h)
{
    if (s->hash != h || s->klen != klen)
        return false;
    return klen == PTR_KEY ? s->key == key : memcmp(s->key, key, klen) == 0;
}

static void *get(const bk__map_t *m, const char *key, size_t klen, uint64_t h)
{
    if (!m->cap)
        return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const struct bk__map_slot *s = &m->slots[i];
        if (!s->value)
            return NULL;
        if (same(s, key, klen, h))
            return s->value;
    }
}

static int grow(bk__map_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct bk__map_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return BK_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        struct bk__map_slot *s = &m->slots[i];
        if (!s->value)
            continue;
        size_t j = s->hash & (cap - 1);
        while (slots[j].value)
            j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return BK_OK;
}

/* Inserts or replaces. */
static int put(bk__map_t *m, const char *key, size_t klen, uint64_t h, void *value)
{
    if ((m->len + 1) * 4 > m->cap * 3) { /* keep the load under 3/4 */
        int rc = grow(m);
        if (rc)
            return rc;
    }
    size_t i = h & (m->cap - 1);
    while (m->slots[i].value && !same(&m->slots[i], key, klen, h))
        i = (i + 1) & (m->cap - 1);
    if (!m->slots[i].value)
        m->len++;
    m->slots[i] = (struct bk__map_slot){key, klen, h, value};
    return BK_OK;
}

void *bk__map_get(const bk__map_t *m, const char *key, size_t klen)
{
    return get(m, key, klen, bk__hash(key, klen));
}

int bk__map_put(bk__map_t *m, const char *key, size_t klen, void *value)
{
    return put(m, key, klen, bk__hash(key, klen), value);
}

void *bk__map_get_ptr(const bk__map_t *m, const void *key)
{
    return get(m, key, PTR_KEY, bk__hash_ptr(key));
}

int bk__map_put_ptr(bk__map_t *m, const void *key, void *value)
{
    return put(m, key, PTR_KEY, bk__hash_ptr(key), value);
}

void bk__map_free(bk__map_t *m)
{
    free(m->slots);
    *m = (bk__map_t){0};
}
