/* An open-addressing hash map (linear probing) from byte strings or pointers to
 * pointers: the schema compiler's tables, the RBAC policy's roles and permission
 * sets, a metric family's series. Internal: hidden, never part of the public
 * API. Not thread-safe to modify; once filled, any number of threads may read it
 * at once (or between modifications, under a read-write lock, as metrics do).
 * SPDX-License-Identifier: MIT */
#ifndef BK_MAP_INT_H
#define BK_MAP_INT_H

#include <stddef.h>

#if defined(__GNUC__)
#define BK__MAP_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__MAP_HIDDEN
#endif

/*
 * Keys are not copied: they must outlive the map. Values are never NULL (a set
 * stores any non-NULL pointer). A zeroed bk__map_t is an empty map.
 */
typedef struct bk__map {
    struct bk__map_slot *slots;
    size_t cap, len;
} bk__map_t;
BK__MAP_HIDDEN void *bk__map_get(const bk__map_t *m, const char *key, size_t klen);
BK__MAP_HIDDEN int bk__map_put(bk__map_t *m, const char *key, size_t klen, void *value);
BK__MAP_HIDDEN void *bk__map_get_ptr(const bk__map_t *m, const void *key);
BK__MAP_HIDDEN int bk__map_put_ptr(bk__map_t *m, const void *key, void *value);
BK__MAP_HIDDEN void bk__map_free(bk__map_t *m);

#endif
