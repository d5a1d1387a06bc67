/* A bump allocator: many small allocations freed at once (an HTTP request's
 * decoded strings, a compiled schema's nodes). Internal: hidden, never part of
 * the public API. Not thread-safe; one owner at a time.
 * SPDX-License-Identifier: MIT */
#ifndef BK_ARENA_INT_H
#define BK_ARENA_INT_H

#include <stddef.h>

#if defined(__GNUC__)
#define BK__ARENA_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__ARENA_HIDDEN
#endif

struct bk__arena_chunk;
typedef struct bk__arena {
    struct bk__arena_chunk *head;
} bk__arena_t;

/* 16-byte aligned, uninitialised; NULL on ENOMEM. */
BK__ARENA_HIDDEN void *bk__arena_alloc(bk__arena_t *a, size_t n);
/* The same, zeroed. */
BK__ARENA_HIDDEN void *bk__arena_zalloc(bk__arena_t *a, size_t n);
BK__ARENA_HIDDEN char *bk__arena_strndup(bk__arena_t *a, const char *s, size_t n);
/* Frees all but the first chunk and empties it: ready for reuse. */
BK__ARENA_HIDDEN void bk__arena_reset(bk__arena_t *a);
BK__ARENA_HIDDEN void bk__arena_free(bk__arena_t *a);

#endif
