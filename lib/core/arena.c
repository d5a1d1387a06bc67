/* The bump allocator of arena_int.h.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "core/arena_int.h"

#define ARENA_CHUNK 4096

struct bk__arena_chunk {
    struct bk__arena_chunk *next;
    size_t used, cap;
    _Alignas(16) char data[];
};

void *bk__arena_alloc(bk__arena_t *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct bk__arena_chunk *c = a->head;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        struct bk__arena_chunk *nc = malloc(sizeof *nc + cap);
        if (nc == NULL)
            return NULL;
        nc->used = 0;
        nc->cap = cap;
        nc->next = c;
        a->head = c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void *bk__arena_zalloc(bk__arena_t *a, size_t n)
{
    void *p = bk__arena_alloc(a, n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

char *bk__arena_strndup(bk__arena_t *a, const char *s, size_t n)
{
    char *d = bk__arena_alloc(a, n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void bk__arena_reset(bk__arena_t *a)
{
    struct bk__arena_chunk *c = a->head;
    if (c == NULL)
        return;
    /* Keep the oldest chunk (the last in the list): most uses fit in it. */
    while (c->next != NULL) {
        struct bk__arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    c->used = 0;
    a->head = c;
}

void bk__arena_free(bk__arena_t *a)
{
    for (struct bk__arena_chunk *c = a->head, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}
