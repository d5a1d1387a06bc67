/* jansson text through jansson's own allocator: what json_dumps returns was
 * allocated with the functions a host may have installed (json_set_alloc_funcs),
 * so it must be freed with them, never with free(3). Internal: hidden, never part
 * of the public API.
 * SPDX-License-Identifier: MIT */
#ifndef BK_JSON_INT_H
#define BK_JSON_INT_H

#include <stddef.h>

#include <jansson.h>

#if defined(__GNUC__)
#define BK__JSON_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__JSON_HIDDEN
#endif

/* json_dumps(v, flags): NUL-terminated text, freed with bk__json_free. NULL when
 * out of memory or when jansson refuses v (invalid UTF-8 let in by *_nocheck, a
 * non-container without JSON_ENCODE_ANY). */
BK__JSON_HIDDEN char *bk__json_dump(const json_t *v, size_t flags);

/* Frees text from bk__json_dump (or any block jansson allocated) with jansson's
 * current free function. NULL does nothing. */
BK__JSON_HIDDEN void bk__json_free(void *p);

#endif
