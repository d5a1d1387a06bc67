/* bk_schema_coerce: query strings and path parameters arrive as strings; the
 * schema says which are numbers or booleans. Converting them before validation is
 * what FastAPI and Pydantic do, so "?limit=10" validates against
 * {"type": "integer"}. Defaults are filled the same way.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

#define MAX_IN_PLACE 16 /* $ref/allOf hops followed looking for properties or types */

/* The types n declares, following $ref and allOf; 0 when it declares none. */
static uint32_t declared_types(const bk__node_t *n, int hops)
{
    if (!n || n->boolean >= 0 || hops > MAX_IN_PLACE)
        return 0;
    for (size_t i = 0; i < n->nkws; i++) {
        const bk__kw_t *k = &n->kws[i];
        uint32_t t = 0;
        if (k->op == OP_TYPE)
            return k->u.types;
        if (k->op == OP_REF)
            t = declared_types(k->u.ref.target, hops + 1);
        for (size_t j = 0; k->op == OP_ALL_OF && !t && j < k->u.list.n; j++)
            t = declared_types(k->u.list.nodes[j], hops + 1);
        if (t)
            return t;
    }
    return 0;
}

/* The "items" schema of an array schema n (following $ref and allOf), or NULL. */
static const bk__node_t *items_of(const bk__node_t *n, int hops)
{
    if (!n || n->boolean >= 0 || hops > MAX_IN_PLACE)
        return NULL;
    for (size_t i = 0; i < n->nkws; i++) {
        const bk__kw_t *k = &n->kws[i];
        const bk__node_t *t = NULL;
        if (k->op == OP_ITEMS && k->u.items.nprefix == 0)
            return k->u.items.rest;
        if (k->op == OP_REF)
            t = items_of(k->u.ref.target, hops + 1);
        for (size_t j = 0; k->op == OP_ALL_OF && !t && j < k->u.list.n; j++)
            t = items_of(k->u.list.nodes[j], hops + 1);
        if (t)
            return t;
    }
    return NULL;
}

/* The value s reads as under types, or NULL when it reads as none of them. */
static json_t *convert(const char *s, size_t len, uint32_t types)
{
    if (types & BK_T_STRING || len == 0)
        return NULL;
    bool numeric = s[0] == '-' || (s[0] >= '0' && s[0] <= '9'); /* strto* skip spaces */
    if (numeric && types & (BK_T_INTEGER | BK_T_NUMBER)) {
        char *end;
        errno = 0;
        long long i = strtoll(s, &end, 10);
        if (end == s + len && errno == 0)
            return json_integer(i);
        if (types & BK_T_NUMBER) {
            errno = 0;
            double d = strtod(s, &end);
            /* Decimal notation only: strtod also reads "inf", "nan" and hex. */
            bool plain = strspn(s, "0123456789+-.eE") == len;
            if (end == s + len && errno == 0 && isfinite(d) && plain)
                return json_real(d);
        }
    }
    if (types & BK_T_BOOLEAN && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0))
        return json_boolean(s[0] == 't');
    if (types & BK_T_NULL && strcmp(s, "null") == 0)
        return json_null();
    return NULL;
}

/* Replaces *slot (a string) by its conversion; false on ENOMEM only. */
static bool coerce_value(json_t *parent_obj, const char *key, json_t *arr, size_t idx, const json_t *v,
                         uint32_t types)
{
    if (!json_is_string(v) || !types)
        return true;
    if (strlen(json_string_value(v)) != json_string_length(v))
        return true; /* a NUL inside: not a number or a boolean */
    json_t *nv = convert(json_string_value(v), json_string_length(v), types);
    if (!nv)
        return true;
    return (parent_obj ? json_object_set_new(parent_obj, key, nv) : json_array_set_new(arr, idx, nv)) == 0;
}

typedef struct walk {
    unsigned flags;
    unsigned depth, max_depth;
    bool oom;
} walk_t;

static void apply(walk_t *w, const bk__node_t *n, json_t *obj, int hops);

static void apply_props(walk_t *w, const bk__kw_t *k, json_t *obj)
{
    for (size_t i = 0; i < k->u.props.nprops && !w->oom; i++) {
        const bk__prop_t *p = &k->u.props.props[i];
        char key[256];
        if (p->len >= sizeof key || memchr(p->name, '\0', p->len))
            continue; /* jansson's key API wants a C string; such names are not query names */
        memcpy(key, p->name, p->len);
        key[p->len] = '\0';
        json_t *v = json_object_get(obj, key);
        if (!v && (w->flags & BK_SCHEMA_FILL_DEFAULTS) && p->node->default_value) {
            json_t *copy = json_deep_copy(p->node->default_value);
            if (!copy || json_object_set_new(obj, key, copy)) {
                w->oom = true;
                return;
            }
            v = copy;
        }
        if (!v)
            continue;
        if ((w->flags & BK_SCHEMA_COERCE_STRINGS) && w->depth == 0) {
            uint32_t types = declared_types(p->node, 0);
            if (json_is_array(v) && (types & BK_T_ARRAY)) {
                uint32_t item_types = declared_types(items_of(p->node, 0), 0);
                for (size_t j = 0; j < json_array_size(v) && !w->oom; j++)
                    w->oom = !coerce_value(NULL, NULL, v, j, json_array_get(v, j), item_types);
            } else if (!coerce_value(obj, key, NULL, 0, v, types)) {
                w->oom = true;
            }
            v = json_object_get(obj, key);
        }
        if (json_is_object(v) && (w->flags & BK_SCHEMA_FILL_DEFAULTS) && w->depth < w->max_depth) {
            w->depth++;
            apply(w, p->node, v, 0);
            w->depth--;
        }
    }
}

static void apply(walk_t *w, const bk__node_t *n, json_t *obj, int hops)
{
    if (!n || n->boolean >= 0 || hops > MAX_IN_PLACE)
        return;
    for (size_t i = 0; i < n->nkws && !w->oom; i++) {
        const bk__kw_t *k = &n->kws[i];
        if (k->op == OP_PROPERTIES)
            apply_props(w, k, obj);
        else if (k->op == OP_REF)
            apply(w, k->u.ref.target, obj, hops + 1);
        else if (k->op == OP_ALL_OF)
            for (size_t j = 0; j < k->u.list.n; j++)
                apply(w, k->u.list.nodes[j], obj, hops + 1);
    }
}

int bk_schema_coerce(const bk_schema_t *s, const json_t *instance, unsigned flags, json_t **out)
{
    if (out)
        *out = NULL;
    if (!s || !instance || !out)
        return BK_EINVAL;
    /* The caller's document is borrowed: the conversions go into a copy. */
    json_t *copy = json_deep_copy(instance);
    if (!copy)
        return BK_ENOMEM;
    if (json_is_object(copy)) {
        walk_t w = {flags, 0, s->max_depth, false};
        apply(&w, s->root, copy, 0);
        if (w.oom) {
            json_decref(copy);
            return BK_ENOMEM;
        }
    }
    *out = copy;
    return BK_OK;
}
