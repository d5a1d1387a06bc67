/* JSON values over the byte cache: stored as compact JSON text, handed out
 * parsed. Any JSON value may be cached, not only objects and arrays.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "core/json_int.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

struct json_call {
    bk_cache_json_loader_fn loader;
    void *ctx;
};

static int load_as_text(const char *key, void **value, size_t *len, void *arg)
{
    struct json_call *call = arg;
    json_t *j = NULL;
    int rc = call->loader(key, &j, call->ctx);
    if (rc != BK_OK) {
        json_decref(j);
        return rc;
    }
    if (!j)
        return BK_EINVAL; /* a loader bug: success without a value */
    char *text = bk__json_dump(j, DUMP_FLAGS);
    json_decref(j);
    if (!text)
        return BK_ENOMEM;
    /* The cache frees with free(3); jansson's text is freed with jansson's own
     * free, which a host may have replaced (json_set_alloc_funcs). */
    rc = bk__cache_copy(text, strlen(text), value, len);
    bk__json_free(text);
    return rc;
}

/* The bytes a fetch or a peek answered (rc), parsed into *value; text freed. */
static int parsed(int rc, void *text, size_t len, json_t **value)
{
    if (rc != BK_OK)
        return rc;
    json_error_t err;
    *value = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    free(text);
    return *value ? BK_OK : BK_EIO;
}

int bk_cache_fetch_json(bk_cache_t *c, const char *key, const bk_cache_ttl_t *ttl, bk_cache_json_loader_fn loader,
                        void *ctx, json_t **value)
{
    if (value)
        *value = NULL;
    if (!loader || !value)
        return BK_EINVAL;
    struct json_call call = {loader, ctx};
    void *text = NULL;
    size_t len = 0;
    int rc = bk_cache_fetch(c, key, ttl, load_as_text, &call, &text, &len);
    return parsed(rc, text, len, value);
}

int bk_cache_peek_json(bk_cache_t *c, const char *key, json_t **value)
{
    if (value)
        *value = NULL;
    if (!value)
        return BK_EINVAL;
    void *text = NULL;
    size_t len = 0;
    int rc = bk_cache_peek(c, key, &text, &len);
    return parsed(rc, text, len, value);
}

int bk_cache_set_json(bk_cache_t *c, const char *key, const json_t *value, const bk_cache_ttl_t *ttl)
{
    if (!value)
        return BK_EINVAL;
    char *text = bk__json_dump(value, DUMP_FLAGS);
    if (!text)
        return BK_ENOMEM;
    int rc = bk_cache_set(c, key, text, strlen(text), ttl);
    bk__json_free(text);
    return rc;
}
