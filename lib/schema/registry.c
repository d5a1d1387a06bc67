/* bk_schema_registry: the documents a host makes reachable by URI. $ref never
 * fetches anything from the network; this is the only way in.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

struct bk_schema_registry {
    bk__map_t map; /* URI -> json_t * */
    bk__arena_t uris;
    json_t **docs;
    size_t n;
};

int bk_schema_registry_new(bk_schema_registry_t **out)
{
    if (!out)
        return BK_EINVAL;
    *out = calloc(1, sizeof **out);
    return *out ? BK_OK : BK_ENOMEM;
}

void bk_schema_registry_free(bk_schema_registry_t *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++)
        json_decref(reg->docs[i]);
    free(reg->docs);
    bk__map_free(&reg->map);
    bk__arena_free(&reg->uris);
    free(reg);
}

int bk_schema_registry_add(bk_schema_registry_t *reg, const char *uri, const json_t *doc)
{
    if (!reg || !uri || !doc || !bk__uri_has_scheme(uri) || strchr(uri, '#'))
        return BK_EINVAL;
    size_t len = strlen(uri);
    if (bk__map_get(&reg->map, uri, len))
        return BK_EEXIST;
    json_t **docs = realloc(reg->docs, (reg->n + 1) * sizeof *docs);
    if (!docs)
        return BK_ENOMEM;
    reg->docs = docs;
    char *key = bk__arena_strndup(&reg->uris, uri, len);
    /* Borrowed: the registry keeps a reference of its own (json_incref needs a
     * non-const pointer) and only ever reads the document. */
    json_t *kept = (json_t *)doc;
    if (!key || bk__map_put(&reg->map, key, len, kept))
        return BK_ENOMEM;
    reg->docs[reg->n++] = json_incref(kept);
    return BK_OK;
}

json_t *bk__registry_get(const bk_schema_registry_t *reg, const char *uri, size_t len)
{
    return bk__map_get(&reg->map, uri, len);
}
