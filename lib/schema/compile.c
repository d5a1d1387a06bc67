/* bk_schema_compile: from a jansson document to the compiled form validate.c
 * walks. Three passes:
 *   scan     records every schema position with its resource (base URI), dialect
 *            and vocabularies, and every $id, $anchor and $dynamicAnchor;
 *   compile  turns each reachable schema into a node of keyword operations,
 *            resolving $ref to nodes and compiling regexes, so validation never
 *            looks at a keyword string;
 *   check    refuses cycles of in-place applicators ($ref, allOf, ...), which
 *            would recurse forever on any instance that reaches them.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/abi_int.h"
#include "core/error_int.h"
#include "core/jsonptr_int.h"
#include "core/pct_int.h"
#include "schema/schema_int.h"

#define MAX_NEST 512 /* schema nesting the compiler walks (recursion bound) */

enum vocab {
    V_CORE = 1 << 0,
    V_APPLICATOR = 1 << 1,
    V_UNEVALUATED = 1 << 2,
    V_VALIDATION = 1 << 3,
    V_FORMAT_ASSERTION = 1 << 4,
    V_META = 1 << 5, /* meta-data, format-annotation, content: annotations only */
    V_ALL = V_CORE | V_APPLICATOR | V_UNEVALUATED | V_VALIDATION | V_META,
};

static const char URI_2020[] = "https://json-schema.org/draft/2020-12/schema";
static const char URI_7[] = "http://json-schema.org/draft-07/schema";

typedef struct sinfo {
    bk__resource_t *res; /* its base URI is res->uri */
    int draft;
    unsigned vocab;
    const char *loc;
    bk__node_t *node;
} sinfo_t;

typedef struct compiler {
    bk_schema_t *s;
    const bk_schema_opts_t *o;
    bk__map_t info;      /* json_t * -> sinfo_t * */
    bk__map_t resources; /* URI -> json_t * (a resource's root) */
    bk__map_t anchors;   /* "URI#name" -> json_t * */
    bk__map_t strings;   /* interned strings */
    const char **dyn_names; /* anchors some $dynamicRef resolves dynamically */
    size_t ndyn, capdyn;
    bk__node_t **nodes;
    size_t nnodes, capnodes;
    unsigned depth;
    int rc;
    bk_error_t *err;
} compiler_t;

/* ------------------------------------------------------------------ errors and memory */

/*
 * BK_EINVAL, with err saying what and where: loc (a schema position, NULL for
 * none) and kw, the keyword at fault in it (NULL for the schema itself), give
 * err->pointer. Positions in a document other than the one being compiled read
 * "URI#pointer" (see load): their URI goes to err->file.
 */
static int fail(compiler_t *c, const char *loc, const char *kw, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(compiler_t *c, const char *loc, const char *kw, const char *fmt, ...)
{
    if (c->rc != BK_OK)
        return c->rc;
    c->rc = BK_EINVAL;
    bk_error_t *err = c->err;
    if (!err)
        return c->rc;
    char msg[sizeof err->message], ptr[sizeof err->pointer] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bk__error(err, BK_EINVAL, "%s", msg);
    if (!loc)
        return c->rc;
    const char *hash = loc[0] && loc[0] != '/' ? strchr(loc, '#') : NULL;
    if (hash) {
        char file[sizeof err->file];
        snprintf(file, sizeof file, "%.*s", (int)(hash - loc), loc);
        bk__error_field(err->file, sizeof err->file, file);
        loc = hash + 1;
    }
    /* A location too long for the field would be cut inside a token: keep none. */
    if (strlen(loc) < sizeof ptr) {
        memcpy(ptr, loc, strlen(loc) + 1);
        if (kw)
            bk__jsonptr_append(ptr, sizeof ptr, kw, strlen(kw));
    }
    bk__error_field(err->pointer, sizeof err->pointer, ptr);
    return c->rc;
}

static int oom(compiler_t *c)
{
    if (c->rc == BK_OK)
        c->rc = bk__error(c->err, BK_ENOMEM, NULL);
    return c->rc;
}

static void *alloc(compiler_t *c, size_t size)
{
    void *p = bk__arena_zalloc(&c->s->arena, size);
    if (!p)
        oom(c);
    return p;
}

/* Grows *v (of *cap elements of size sz) to hold n + 1. */
static bool reserve(compiler_t *c, void **v, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *nv = realloc(*v, ncap * sz);
    if (!nv) {
        oom(c);
        return false;
    }
    *v = nv;
    *cap = ncap;
    return true;
}

static const char *intern(compiler_t *c, const char *str, size_t len)
{
    const char *p = bk__map_get(&c->strings, str, len);
    if (p)
        return p;
    char *copy = bk__arena_strndup(&c->s->arena, str, len);
    if (!copy || bk__map_put(&c->strings, copy, len, copy)) {
        oom(c);
        return NULL;
    }
    return copy;
}

/* loc + "/" + token, with the token escaped as RFC 6901 says. */
static const char *child_loc(compiler_t *c, const char *loc, const char *kw, const char *key, size_t klen,
                             size_t idx, bool has_idx)
{
    char num[24] = "";
    if (has_idx) {
        snprintf(num, sizeof num, "%zu", idx);
        key = num, klen = strlen(num);
    }
    size_t n = strlen(loc) + 1 + strlen(kw) + (key ? 1 + 2 * klen : 0);
    char *p = alloc(c, n + 1);
    if (!p)
        return NULL;
    sprintf(p, "%s/%s", loc, kw);
    if (key)
        bk__jsonptr_append(p, n + 1, key, klen); /* fits: n counts every byte of key as escaped */
    return p;
}

/* "" reads badly in messages: the root is "#". */
static const char *shown(const char *loc)
{
    return *loc ? loc : "the root";
}

/* ------------------------------------------------------------------ resources */

static bk__resource_t *new_resource(compiler_t *c, const char *uri)
{
    bk__resource_t *r = alloc(c, sizeof *r);
    if (!r)
        return NULL;
    r->uri = uri;
    r->next = c->s->resources;
    c->s->resources = r;
    return r;
}

static int add_anchor(compiler_t *c, bk__resource_t *r, const char *name, json_t *schema, bool dynamic)
{
    size_t ulen = strlen(r->uri), nlen = strlen(name);
    char *key = alloc(c, ulen + nlen + 2);
    if (!key)
        return c->rc;
    sprintf(key, "%s#%s", r->uri, name);
    if (!bk__map_get(&c->anchors, key, ulen + nlen + 1) &&
        bk__map_put(&c->anchors, key, ulen + nlen + 1, schema))
        return oom(c);
    if (!dynamic)
        return BK_OK;
    if (!reserve(c, (void **)&r->anchors, &r->cap, r->nanchors, sizeof *r->anchors))
        return c->rc;
    const char *iname = intern(c, name, nlen);
    if (!iname)
        return c->rc;
    r->anchors[r->nanchors++] = (bk__dynamic_anchor_t){iname, schema, NULL};
    return BK_OK;
}

/* Frees the anchor arrays (the only per-resource mallocs). */
static void free_resources(bk_schema_t *s)
{
    for (bk__resource_t *r = s->resources; r; r = r->next)
        free(r->anchors);
}

static const char *const VOCABS[][2] = {
    {"https://json-schema.org/draft/2020-12/vocab/core", (const char *)(uintptr_t)V_CORE},
    {"https://json-schema.org/draft/2020-12/vocab/applicator", (const char *)(uintptr_t)V_APPLICATOR},
    {"https://json-schema.org/draft/2020-12/vocab/unevaluated", (const char *)(uintptr_t)V_UNEVALUATED},
    {"https://json-schema.org/draft/2020-12/vocab/validation", (const char *)(uintptr_t)V_VALIDATION},
    {"https://json-schema.org/draft/2020-12/vocab/meta-data", (const char *)(uintptr_t)V_META},
    {"https://json-schema.org/draft/2020-12/vocab/format-annotation", (const char *)(uintptr_t)V_META},
    {"https://json-schema.org/draft/2020-12/vocab/format-assertion", (const char *)(uintptr_t)V_FORMAT_ASSERTION},
    {"https://json-schema.org/draft/2020-12/vocab/content", (const char *)(uintptr_t)V_META},
};

static json_t *load(compiler_t *c, const char *uri, size_t len, int draft, unsigned vocab);

static bool same_uri(const char *a, const char *known)
{
    size_t n = strlen(known);
    return strncmp(a, known, n) == 0 && (a[n] == '\0' || (a[n] == '#' && a[n + 1] == '\0'));
}

/* The dialect a "$schema" value names: a standard meta-schema, or a meta-schema
 * the host registered, whose $vocabulary says which keywords apply. */
static int dialect_of(compiler_t *c, const char *uri, const char *loc, int *draft, unsigned *vocab,
                      unsigned hops)
{
    if (same_uri(uri, URI_2020)) {
        *draft = BK_SCHEMA_DRAFT_2020_12, *vocab = V_ALL;
        return BK_OK;
    }
    if (same_uri(uri, URI_7) || same_uri(uri, "https://json-schema.org/draft-07/schema")) {
        *draft = BK_SCHEMA_DRAFT_7, *vocab = V_ALL;
        return BK_OK;
    }
    size_t len = strcspn(uri, "#");
    json_t *meta = bk__map_get(&c->resources, uri, len);
    if (!meta && c->rc == BK_OK)
        meta = load(c, uri, len, *draft, *vocab);
    if (c->rc)
        return c->rc;
    if (!json_is_object(meta) || hops > 8)
        return fail(c, loc, "$schema", "unknown \"$schema\" \"%s\" at %s", uri, shown(loc));
    const char *up = json_string_value(json_object_get(meta, "$schema"));
    if (!up)
        return fail(c, loc, "$schema", "meta-schema \"%s\" has no \"$schema\"", uri);
    int rc = dialect_of(c, up, loc, draft, vocab, hops + 1);
    if (rc)
        return rc;
    json_t *vocabs = json_object_get(meta, "$vocabulary");
    if (!json_is_object(vocabs))
        return BK_OK;
    *vocab = 0;
    const char *k;
    json_t *required;
    json_object_foreach(vocabs, k, required) {
        size_t i = 0;
        while (i < sizeof VOCABS / sizeof VOCABS[0] && strcmp(VOCABS[i][0], k) != 0)
            i++;
        if (i < sizeof VOCABS / sizeof VOCABS[0])
            *vocab |= (unsigned)(uintptr_t)VOCABS[i][1];
        else if (json_is_true(required))
            return fail(c, loc, "$schema", "meta-schema \"%s\" requires the unsupported vocabulary \"%s\"", uri, k);
    }
    return BK_OK;
}

/* ------------------------------------------------------------------ scan */

enum { K_ONE, K_ARRAY, K_MAP, K_ITEMS7, K_DEPS7 };
enum { D7 = 1, D2020 = 2, DBOTH = 3 };

static const struct subschema_kw {
    const char *name;
    int kind, drafts;
} SUBSCHEMA_KWS[] = {
    {"additionalProperties", K_ONE, DBOTH}, {"propertyNames", K_ONE, DBOTH},
    {"contains", K_ONE, DBOTH},             {"not", K_ONE, DBOTH},
    {"if", K_ONE, DBOTH},                   {"then", K_ONE, DBOTH},
    {"else", K_ONE, DBOTH},                 {"items", K_ONE, D2020},
    {"items", K_ITEMS7, D7},                {"additionalItems", K_ONE, D7},
    {"unevaluatedItems", K_ONE, D2020},     {"unevaluatedProperties", K_ONE, D2020},
    {"contentSchema", K_ONE, D2020},        {"allOf", K_ARRAY, DBOTH},
    {"anyOf", K_ARRAY, DBOTH},              {"oneOf", K_ARRAY, DBOTH},
    {"prefixItems", K_ARRAY, D2020},        {"properties", K_MAP, DBOTH},
    {"patternProperties", K_MAP, DBOTH},    {"$defs", K_MAP, D2020},
    {"definitions", K_MAP, DBOTH},          {"dependentSchemas", K_MAP, D2020},
    {"dependencies", K_DEPS7, DBOTH},
};

static int scan(compiler_t *c, json_t *s, bk__resource_t *res, int draft, unsigned vocab, const char *loc,
                unsigned depth);

static int scan_child(compiler_t *c, json_t *s, bk__resource_t *res, int draft, unsigned vocab,
                      const char *loc, const char *kw, const char *key, size_t klen, size_t idx, bool has_idx,
                      unsigned depth)
{
    if (!json_is_object(s) && !json_is_boolean(s))
        return BK_OK; /* not a schema here: compile reports it if it matters */
    const char *l = child_loc(c, loc, kw, key, klen, idx, has_idx);
    return l ? scan(c, s, res, draft, vocab, l, depth + 1) : c->rc;
}

static int scan_keywords(compiler_t *c, json_t *s, bk__resource_t *res, int draft, unsigned vocab,
                         const char *loc, unsigned depth)
{
    int mask = draft == BK_SCHEMA_DRAFT_7 ? D7 : D2020;
    for (size_t i = 0; i < sizeof SUBSCHEMA_KWS / sizeof SUBSCHEMA_KWS[0]; i++) {
        const struct subschema_kw *k = &SUBSCHEMA_KWS[i];
        json_t *v;
        if (!(k->drafts & mask) || !(v = json_object_get(s, k->name)))
            continue;
        int rc = BK_OK;
        if (k->kind == K_ONE || (k->kind == K_ITEMS7 && !json_is_array(v))) {
            rc = scan_child(c, v, res, draft, vocab, loc, k->name, NULL, 0, 0, false, depth);
        } else if (k->kind == K_ARRAY || k->kind == K_ITEMS7) {
            for (size_t j = 0; rc == BK_OK && j < json_array_size(v); j++)
                rc = scan_child(c, json_array_get(v, j), res, draft, vocab, loc, k->name, NULL, 0, j, true,
                                depth);
        } else if (json_is_object(v)) { /* K_MAP, K_DEPS7 (array values are skipped) */
            const char *key;
            size_t klen;
            json_t *m;
            json_object_keylen_foreach(v, key, klen, m) {
                rc = scan_child(c, m, res, draft, vocab, loc, k->name, key, klen, 0, false, depth);
                if (rc)
                    break;
            }
        }
        if (rc)
            return rc;
    }
    return BK_OK;
}

/* Records s and everything below it. res is NULL at a document's root, whose base
 * URI then comes in loc's place through base (see scan_document). */
static int scan(compiler_t *c, json_t *s, bk__resource_t *res, int draft, unsigned vocab, const char *loc,
                unsigned depth)
{
    if (depth > MAX_NEST)
        return fail(c, loc, NULL, "the schema nests deeper than %d levels at %s", MAX_NEST, shown(loc));
    if (bk__map_get_ptr(&c->info, s))
        return BK_OK;
    if (json_is_object(s)) {
        json_t *id = json_object_get(s, "$id");
        json_t *schema = json_object_get(s, "$schema");
        /* $schema counts where a resource starts: a document's root or an $id. */
        if (json_is_string(schema) && (id || depth == 0)) {
            int rc = dialect_of(c, json_string_value(schema), loc, &draft, &vocab, 0);
            if (rc)
                return rc;
        }
        /* draft-07 ignores every sibling of $ref, $id included. */
        if (draft == BK_SCHEMA_DRAFT_7 && json_object_get(s, "$ref"))
            id = NULL;
        const char *ids = json_string_value(id);
        if (ids && draft == BK_SCHEMA_DRAFT_7 && ids[0] == '#') {
            int rc = add_anchor(c, res, ids + 1, s, false);
            if (rc)
                return rc;
        } else if (ids) {
            char *full = bk__uri_resolve(res->uri, ids);
            if (!full)
                return oom(c);
            char *hash = strchr(full, '#');
            if (hash && draft != BK_SCHEMA_DRAFT_7) {
                free(full);
                return fail(c, loc, "$id", "\"$id\" \"%s\" at %s must not have a fragment", ids, shown(loc));
            }
            const char *uri = intern(c, full, hash ? (size_t)(hash - full) : strlen(full));
            bk__resource_t *r = uri ? new_resource(c, uri) : NULL;
            int rc = c->rc;
            if (r && !bk__map_get(&c->resources, uri, strlen(uri)) &&
                bk__map_put(&c->resources, uri, strlen(uri), s))
                rc = oom(c);
            if (r && hash && hash[1])
                rc = add_anchor(c, r, hash + 1, s, false);
            free(full);
            if (rc)
                return rc;
            res = r;
        }
        if (draft != BK_SCHEMA_DRAFT_7) {
            const char *a = json_string_value(json_object_get(s, "$anchor"));
            const char *d = json_string_value(json_object_get(s, "$dynamicAnchor"));
            if ((a && add_anchor(c, res, a, s, false)) || (d && add_anchor(c, res, d, s, true)))
                return c->rc;
        }
    }
    sinfo_t *si = alloc(c, sizeof *si);
    if (!si)
        return c->rc;
    *si = (sinfo_t){res, draft, vocab, loc, NULL};
    if (bk__map_put_ptr(&c->info, s, si))
        return oom(c);
    return json_is_object(s) ? scan_keywords(c, s, res, draft, vocab, loc, depth) : BK_OK;
}

/* Scans a whole document retrieved from uri; its positions are loc + pointer. */
static int scan_document(compiler_t *c, json_t *doc, const char *uri, size_t len, int draft, unsigned vocab,
                         const char *loc)
{
    const char *u = intern(c, uri, len);
    bk__resource_t *r = u ? new_resource(c, u) : NULL;
    if (!r)
        return c->rc;
    if (!bk__map_get(&c->resources, u, len) && bk__map_put(&c->resources, u, len, doc))
        return oom(c);
    return scan(c, doc, r, draft, vocab, loc, 0);
}

/* A document the schema names but does not contain, from the first registry that
 * has it: the caller's, then the built-in one (so a caller's document under a
 * built-in meta-schema's URI takes its place). NULL (and no error) when none has. */
static json_t *load(compiler_t *c, const char *uri, size_t len, int draft, unsigned vocab)
{
    const bk_schema_registry_t *const registries[] = {c->o->registry, bk__registry_builtin()};
    json_t *doc = NULL;
    for (size_t i = 0; !doc && i < sizeof registries / sizeof *registries; i++)
        if (registries[i])
            doc = bk__registry_get(registries[i], uri, len);
    if (!doc)
        return NULL;
    bk_schema_t *s = c->s;
    json_t **docs = realloc(s->docs, (s->ndocs + 1) * sizeof *docs);
    if (!docs) {
        oom(c);
        return NULL;
    }
    s->docs = docs;
    s->docs[s->ndocs++] = json_incref(doc);
    /* Positions in this document read "URI#/pointer", so that an error in it says
     * which document it is in (fail splits them). */
    char *loc = alloc(c, len + 2);
    if (!loc)
        return NULL;
    memcpy(loc, uri, len);
    memcpy(loc + len, "#", 2);
    return scan_document(c, doc, uri, len, draft, vocab, loc) ? NULL : doc;
}

/* ------------------------------------------------------------------ $ref */

/* Percent-decodes s in place (a fragment is URI-encoded; "%00" is a NUL in a
 * member name); false on a bad escape. */
static bool percent_decode(char *s, size_t *len)
{
    return bk__pct_decode_into(s, *len, 0, s, len);
}

/* Follows the JSON pointer ptr[0..len) from root; NULL when it leads nowhere.
 * *scanned receives the info of the deepest schema on the way that scan saw. */
static json_t *follow_pointer(compiler_t *c, json_t *root, char *ptr, size_t len, sinfo_t **scanned)
{
    json_t *cur = root;
    *scanned = bk__map_get_ptr(&c->info, root);
    size_t i = 0;
    while (i < len && cur) {
        if (ptr[i] != '/')
            return NULL;
        size_t start = ++i, tlen;
        while (i < len && ptr[i] != '/')
            i++;
        if (!bk__jsonptr_unescape(ptr + start, ptr + start, i - start, &tlen))
            return NULL;
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, ptr + start, tlen);
        } else if (json_is_array(cur)) {
            size_t idx = 0;
            if (tlen == 0 || (tlen > 1 && ptr[start] == '0'))
                return NULL;
            for (size_t k = start; k < start + tlen; k++) {
                if (ptr[k] < '0' || ptr[k] > '9' || idx > SIZE_MAX / 10 - 1)
                    return NULL;
                idx = idx * 10 + (size_t)(ptr[k] - '0');
            }
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
        sinfo_t *si = cur ? bk__map_get_ptr(&c->info, cur) : NULL;
        if (si)
            *scanned = si;
    }
    return cur;
}

/*
 * The schema that ref (a $ref or $dynamicRef value at loc, in a schema whose info
 * is si) names, scanned. *fragment receives the interned fragment ("" for none).
 */
static json_t *resolve(compiler_t *c, const sinfo_t *si, const char *ref, const char *loc, const char *kw,
                       const char **fragment)
{
    char *full = bk__uri_resolve(si->res->uri, ref);
    if (!full) {
        oom(c);
        return NULL;
    }
    size_t ulen = strcspn(full, "#");
    char *frag = full[ulen] ? full + ulen + 1 : full + ulen;
    size_t flen = strlen(frag);
    json_t *root = bk__map_get(&c->resources, full, ulen);
    if (!root)
        root = load(c, full, ulen, si->draft, si->vocab);
    json_t *target = NULL;
    if (!root) {
        if (c->rc == BK_OK)
            fail(c, loc, kw, "cannot resolve \"%s\" at %s: no schema is known as \"%.*s\"", ref, shown(loc), (int)ulen,
                 full);
    } else if (!percent_decode(frag, &flen)) {
        fail(c, loc, kw, "bad percent-encoding in \"%s\" at %s", ref, shown(loc));
    } else if (flen == 0) {
        target = root;
    } else if (frag[0] == '/') {
        sinfo_t *anc;
        target = follow_pointer(c, root, frag, flen, &anc);
        if (!target)
            fail(c, loc, kw, "cannot resolve \"%s\" at %s: the pointer leads nowhere", ref, shown(loc));
        else if (!bk__map_get_ptr(&c->info, target) && anc)
            /* A schema inside a keyword the scan does not know (refOfUnknownKeyword):
             * it takes its base and dialect from the nearest schema above it. */
            scan(c, target, anc->res, anc->draft, anc->vocab, loc, 0);
    } else {
        full[ulen] = '#';
        memmove(full + ulen + 1, frag, flen);
        target = bk__map_get(&c->anchors, full, ulen + 1 + flen);
        if (!target)
            fail(c, loc, kw, "cannot resolve \"%s\" at %s: no anchor \"%.*s\"", ref, shown(loc), (int)flen, frag);
    }
    if (target && fragment)
        *fragment = intern(c, frag, frag[0] == '/' ? 0 : flen);
    free(full);
    return c->rc ? NULL : target;
}

/* ------------------------------------------------------------------ keywords */

static bk__node_t *compile(compiler_t *c, json_t *s);

/* Compiles the subschema v found under keyword kw (and key or index) of schema at loc. */
static bk__node_t *compile_child(compiler_t *c, json_t *v, const char *loc, const char *kw)
{
    if (!json_is_object(v) && !json_is_boolean(v)) {
        fail(c, loc, kw, "\"%s\" at %s must hold a schema (an object or a boolean)", kw, shown(loc));
        return NULL;
    }
    return compile(c, v);
}

static bk__kw_t *add_kw(bk__node_t *n, bk__op_t op, const char *name)
{
    bk__kw_t *k = &n->kws[n->nkws++];
    k->op = op;
    k->name = name;
    return k;
}

static bool count_of(const json_t *v, uint64_t *out)
{
    if (!bk__json_is_integral(v))
        return false;
    double d = json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
    if (d < 0)
        return false;
    *out = json_is_integer(v) ? (uint64_t)json_integer_value(v) : d >= 1.8e19 ? UINT64_MAX : (uint64_t)d;
    return true;
}

static const char *const TYPE_NAMES[] = {"null", "boolean", "object", "array", "number", "integer", "string"};

static bool type_bit(const json_t *v, uint32_t *bits)
{
    const char *name = json_string_value(v);
    for (size_t i = 0; name && i < sizeof TYPE_NAMES / sizeof TYPE_NAMES[0]; i++) {
        if (strcmp(name, TYPE_NAMES[i]) == 0) {
            *bits |= 1u << i;
            return true;
        }
    }
    return false;
}

/* A list of strings (required, dependentRequired), copied to the arena. */
static bool string_list(compiler_t *c, const json_t *v, const char ***out, size_t *n)
{
    if (!json_is_array(v))
        return false;
    *n = json_array_size(v);
    *out = alloc(c, (*n ? *n : 1) * sizeof **out);
    for (size_t i = 0; *out && i < *n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e))
            return false;
        (*out)[i] = json_string_value(e); /* the document outlives the schema */
    }
    return *out != NULL;
}

static int cmp_prop(const void *a, const void *b)
{
    const bk__prop_t *x = *(const bk__prop_t *const *)a, *y = *(const bk__prop_t *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->name, y->name, n);
    return r ? r : (x->len > y->len) - (x->len < y->len);
}

static bk__regex_t *regex(compiler_t *c, const char *src, size_t len, const char *loc, const char *kw)
{
    char msg[128];
    bk__regex_t *re = bk__regex_compile(src, len, c->o->regex_match_limit, msg, sizeof msg);
    if (!re) {
        fail(c, loc, kw, "\"%s\" at %s: invalid regular expression \"%s\": %s", kw, shown(loc), src, msg);
        return NULL;
    }
    bk_schema_t *s = c->s;
    bk__regex_t **v = realloc(s->regexes, (s->nregexes + 1) * sizeof *v);
    if (!v) {
        bk__regex_free(re);
        oom(c);
        return NULL;
    }
    s->regexes = v;
    s->regexes[s->nregexes++] = re;
    return re;
}

/* properties, patternProperties, additionalProperties: one pass over the members. */
static int kw_properties(compiler_t *c, json_t *s, bk__node_t *n, const char *loc)
{
    json_t *props = json_object_get(s, "properties");
    json_t *pats = json_object_get(s, "patternProperties");
    json_t *addl = json_object_get(s, "additionalProperties");
    if ((props && !json_is_object(props)) || (pats && !json_is_object(pats)))
        return fail(c, loc, props && !json_is_object(props) ? "properties" : "patternProperties",
                    "\"properties\" and \"patternProperties\" at %s must be objects", shown(loc));
    bk__kw_t *k = add_kw(n, OP_PROPERTIES, props ? "properties" : pats ? "patternProperties" : "additionalProperties");
    k->u.props.nprops = json_object_size(props);
    k->u.props.npatterns = json_object_size(pats);
    k->u.props.props = alloc(c, (k->u.props.nprops + 1) * sizeof(bk__prop_t));
    k->u.props.by_name = alloc(c, (k->u.props.nprops + 1) * sizeof(bk__prop_t *));
    k->u.props.patterns = alloc(c, (k->u.props.npatterns + 1) * sizeof(bk__pattern_prop_t));
    if (c->rc)
        return c->rc;
    const char *key;
    size_t klen, i = 0;
    json_t *v;
    json_object_keylen_foreach(props, key, klen, v) {
        bk__node_t *child = compile_child(c, v, loc, "properties");
        if (!child)
            return c->rc;
        k->u.props.props[i] = (bk__prop_t){key, klen, child};
        k->u.props.by_name[i] = &k->u.props.props[i];
        i++;
    }
    qsort(k->u.props.by_name, k->u.props.nprops, sizeof(bk__prop_t *), cmp_prop);
    i = 0;
    json_object_keylen_foreach(pats, key, klen, v) {
        bk__regex_t *re = regex(c, key, klen, loc, "patternProperties");
        bk__node_t *child = re ? compile_child(c, v, loc, "patternProperties") : NULL;
        if (!child)
            return c->rc;
        k->u.props.patterns[i++] = (bk__pattern_prop_t){key, re, child};
    }
    if (addl) {
        k->u.props.additional = compile_child(c, addl, loc, "additionalProperties");
        k->u.props.additional_kw = "additionalProperties";
    }
    return c->rc;
}

/* prefixItems and items (2020-12); items and additionalItems (draft-07). */
static int kw_items(compiler_t *c, json_t *s, bk__node_t *n, const char *loc, int draft)
{
    json_t *prefix, *rest;
    const char *prefix_kw, *rest_kw;
    if (draft == BK_SCHEMA_DRAFT_7) {
        json_t *items = json_object_get(s, "items");
        prefix = json_is_array(items) ? items : NULL;
        rest = prefix ? json_object_get(s, "additionalItems") : items;
        prefix_kw = "items", rest_kw = prefix ? "additionalItems" : "items";
    } else {
        prefix = json_object_get(s, "prefixItems");
        rest = json_object_get(s, "items");
        prefix_kw = "prefixItems", rest_kw = "items";
        if (prefix && !json_is_array(prefix))
            return fail(c, loc, "prefixItems", "\"prefixItems\" at %s must be an array", shown(loc));
    }
    if (!prefix && !rest)
        return BK_OK;
    bk__kw_t *k = add_kw(n, OP_ITEMS, prefix ? prefix_kw : rest_kw);
    k->u.items.prefix_kw = prefix_kw;
    k->u.items.rest_kw = rest_kw;
    k->u.items.nprefix = json_array_size(prefix);
    k->u.items.prefix = alloc(c, (k->u.items.nprefix + 1) * sizeof(bk__node_t *));
    for (size_t i = 0; c->rc == BK_OK && i < k->u.items.nprefix; i++)
        k->u.items.prefix[i] = compile_child(c, json_array_get(prefix, i), loc, prefix_kw);
    if (rest && c->rc == BK_OK)
        k->u.items.rest = compile_child(c, rest, loc, rest_kw);
    return c->rc;
}

static int kw_list(compiler_t *c, json_t *v, bk__node_t *n, bk__op_t op, const char *name, const char *loc)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(c, loc, name, "\"%s\" at %s must be a non-empty array of schemas", name, shown(loc));
    bk__kw_t *k = add_kw(n, op, name);
    k->u.list.n = json_array_size(v);
    k->u.list.nodes = alloc(c, k->u.list.n * sizeof(bk__node_t *));
    for (size_t i = 0; c->rc == BK_OK && i < k->u.list.n; i++)
        k->u.list.nodes[i] = compile_child(c, json_array_get(v, i), loc, name);
    return c->rc;
}

/* dependentRequired, dependentSchemas and draft-07's dependencies (either kind). */
static int kw_dependencies(compiler_t *c, json_t *v, bk__node_t *n, const char *name, const char *loc)
{
    if (!json_is_object(v))
        return fail(c, loc, name, "\"%s\" at %s must be an object", name, shown(loc));
    size_t nreq = 0, nsch = 0;
    const char *key;
    json_t *d;
    json_object_foreach(v, key, d) {
        if (json_is_array(d))
            nreq++;
        else
            nsch++;
    }
    bk__kw_t *kr = nreq ? add_kw(n, OP_DEPENDENT_REQUIRED, name) : NULL;
    bk__kw_t *ks = nsch ? add_kw(n, OP_DEPENDENT_SCHEMAS, name) : NULL;
    if (kr && !(kr->u.deps.deps = alloc(c, nreq * sizeof(bk__dependency_t))))
        return c->rc;
    if (ks && !(ks->u.deps.deps = alloc(c, nsch * sizeof(bk__dependency_t))))
        return c->rc;
    json_object_foreach(v, key, d) {
        bk__kw_t *k = json_is_array(d) ? kr : ks;
        bk__dependency_t *dep = &k->u.deps.deps[k->u.deps.n++];
        dep->name = key;
        if (k == kr && !string_list(c, d, &dep->required, &dep->nrequired))
            return c->rc ? c->rc : fail(c, loc, name, "\"%s\" at %s must list property names", name, shown(loc));
        if (k == ks && !(dep->node = compile_child(c, d, loc, name)))
            return c->rc;
    }
    return BK_OK;
}

static int kw_ref(compiler_t *c, json_t *v, bk__node_t *n, const sinfo_t *si, const char *loc, bool dynamic)
{
    const char *name = dynamic ? "$dynamicRef" : "$ref";
    if (!json_is_string(v))
        return fail(c, loc, name, "\"%s\" at %s must be a string", name, shown(loc));
    const char *frag = NULL;
    json_t *target = resolve(c, si, json_string_value(v), loc, name, &frag);
    bk__node_t *t = target ? compile(c, target) : NULL;
    if (!t)
        return c->rc;
    bk__kw_t *k = add_kw(n, dynamic ? OP_DYNAMIC_REF : OP_REF, name);
    k->u.ref.target = t;
    /* Dynamic only when the fragment names a $dynamicAnchor of the schema it first
     * resolves to (the "bookend"); otherwise $dynamicRef acts as $ref. */
    const char *anchor = json_string_value(json_object_get(target, "$dynamicAnchor"));
    if (dynamic && frag && *frag && anchor && strcmp(anchor, frag) == 0) {
        k->u.ref.anchor = frag;
        for (size_t i = 0; i < c->ndyn; i++)
            if (c->dyn_names[i] == frag)
                return BK_OK;
        if (!reserve(c, (void **)&c->dyn_names, &c->capdyn, c->ndyn, sizeof *c->dyn_names))
            return c->rc;
        c->dyn_names[c->ndyn++] = frag;
    }
    return BK_OK;
}

static int kw_number(compiler_t *c, json_t *v, bk__node_t *n, bk__op_t op, const char *name, const char *loc)
{
    if (!json_is_number(v))
        return fail(c, loc, name, "\"%s\" at %s must be a number", name, shown(loc));
    bk__num_of(v, &add_kw(n, op, name)->u.num);
    return BK_OK;
}

static int kw_count(compiler_t *c, json_t *v, bk__node_t *n, bk__op_t op, const char *name, const char *loc)
{
    uint64_t count;
    if (!count_of(v, &count))
        return fail(c, loc, name, "\"%s\" at %s must be a non-negative integer", name, shown(loc));
    add_kw(n, op, name)->u.count = count;
    return BK_OK;
}

static int kw_contains(compiler_t *c, json_t *s, bk__node_t *n, const sinfo_t *si, const char *loc)
{
    bk__kw_t *k = add_kw(n, OP_CONTAINS, "contains");
    k->u.contains.min = 1;
    k->u.contains.max = UINT64_MAX;
    if (si->draft != BK_SCHEMA_DRAFT_7 && (si->vocab & V_VALIDATION)) {
        json_t *min = json_object_get(s, "minContains"), *max = json_object_get(s, "maxContains");
        bool min_bad = min && !count_of(min, &k->u.contains.min);
        if (min_bad || (max && !count_of(max, &k->u.contains.max)))
            return fail(c, loc, min_bad ? "minContains" : "maxContains",
                        "\"minContains\" and \"maxContains\" at %s must be non-negative integers", shown(loc));
    }
    k->u.contains.node = compile_child(c, json_object_get(s, "contains"), loc, "contains");
    return c->rc;
}

static int kw_type(compiler_t *c, json_t *v, bk__node_t *n, const char *loc)
{
    uint32_t bits = 0;
    bool ok = json_is_string(v) ? type_bit(v, &bits) : json_is_array(v) && json_array_size(v) > 0;
    for (size_t i = 0; ok && json_is_array(v) && i < json_array_size(v); i++)
        ok = type_bit(json_array_get(v, i), &bits);
    if (!ok)
        return fail(c, loc, "type", "\"type\" at %s must be a type name or an array of them", shown(loc));
    if (bits & BK_T_NUMBER)
        bits |= BK_T_INTEGER; /* every integer is a number */
    add_kw(n, OP_TYPE, "type")->u.types = bits;
    return BK_OK;
}

/* Compiles the keywords of object schema s into n. */
static int compile_keywords(compiler_t *c, json_t *s, bk__node_t *n, const sinfo_t *si)
{
    const char *loc = si->loc;
    bool d7 = si->draft == BK_SCHEMA_DRAFT_7;
    unsigned vocab = si->vocab;
    bool applicator = vocab & V_APPLICATOR, validation = vocab & V_VALIDATION;
    bool format_assert = c->o->format_assert || (vocab & V_FORMAT_ASSERTION);
    bool props_done = false, items_done = false, if_done = false;
    /* Room for every keyword, plus one: dependencies may add two operations. */
    n->kws = alloc(c, (json_object_size(s) + 1) * sizeof *n->kws);
    if (!n->kws)
        return c->rc;
    json_t *ref = json_object_get(s, "$ref");
    if (d7 && ref) /* draft-07: $ref overrides its siblings */
        return kw_ref(c, ref, n, si, loc, false);
    const char *key;
    json_t *v;
    json_object_foreach(s, key, v) {
        int rc = BK_OK;
        if (strcmp(key, "$ref") == 0) {
            rc = kw_ref(c, v, n, si, loc, false);
        } else if (!d7 && strcmp(key, "$dynamicRef") == 0) {
            rc = kw_ref(c, v, n, si, loc, true);
        } else if (applicator && (strcmp(key, "properties") == 0 || strcmp(key, "patternProperties") == 0 ||
                                  strcmp(key, "additionalProperties") == 0)) {
            if (!props_done)
                rc = kw_properties(c, s, n, loc);
            props_done = true;
        } else if (applicator && (strcmp(key, "items") == 0 || (!d7 && strcmp(key, "prefixItems") == 0) ||
                                  (d7 && strcmp(key, "additionalItems") == 0))) {
            if (!items_done)
                rc = kw_items(c, s, n, loc, si->draft);
            items_done = true;
        } else if (applicator && (strcmp(key, "if") == 0 || strcmp(key, "then") == 0 || strcmp(key, "else") == 0)) {
            json_t *f = json_object_get(s, "if");
            if (!if_done && f) {
                bk__kw_t *k = add_kw(n, OP_IF, "if");
                json_t *t = json_object_get(s, "then"), *e = json_object_get(s, "else");
                k->u.cond.if_ = compile_child(c, f, loc, "if");
                if (t && c->rc == BK_OK)
                    k->u.cond.then_ = compile_child(c, t, loc, "then");
                if (e && c->rc == BK_OK)
                    k->u.cond.else_ = compile_child(c, e, loc, "else");
                rc = c->rc;
            }
            if_done = true;
        } else if (applicator && strcmp(key, "allOf") == 0) {
            rc = kw_list(c, v, n, OP_ALL_OF, "allOf", loc);
        } else if (applicator && strcmp(key, "anyOf") == 0) {
            rc = kw_list(c, v, n, OP_ANY_OF, "anyOf", loc);
        } else if (applicator && strcmp(key, "oneOf") == 0) {
            rc = kw_list(c, v, n, OP_ONE_OF, "oneOf", loc);
        } else if (applicator && strcmp(key, "not") == 0) {
            bk__node_t *child = compile_child(c, v, loc, "not");
            if (child)
                add_kw(n, OP_NOT, "not")->u.node = child;
            rc = c->rc;
        } else if (applicator && strcmp(key, "propertyNames") == 0) {
            bk__node_t *child = compile_child(c, v, loc, "propertyNames");
            if (child)
                add_kw(n, OP_PROPERTY_NAMES, "propertyNames")->u.node = child;
            rc = c->rc;
        } else if (applicator && strcmp(key, "contains") == 0) {
            rc = kw_contains(c, s, n, si, loc);
        } else if (applicator && !d7 && strcmp(key, "dependentSchemas") == 0) {
            rc = kw_dependencies(c, v, n, "dependentSchemas", loc);
        } else if (strcmp(key, "dependencies") == 0) { /* draft-07's; 2020-12 keeps it for compatibility */
            rc = kw_dependencies(c, v, n, "dependencies", loc);
        } else if (!d7 && (vocab & V_UNEVALUATED) &&
                   (strcmp(key, "unevaluatedProperties") == 0 || strcmp(key, "unevaluatedItems") == 0)) {
            continue; /* compiled last, below: they need every other keyword's annotations */
        } else if (!validation) {
            if (strcmp(key, "format") == 0 && format_assert && json_is_string(v) &&
                bk__format_lookup(json_string_value(v)) != BK_FMT_UNKNOWN)
                add_kw(n, OP_FORMAT, "format")->u.format = bk__format_lookup(json_string_value(v));
            continue;
        } else if (strcmp(key, "type") == 0) {
            rc = kw_type(c, v, n, loc);
        } else if (strcmp(key, "enum") == 0) {
            if (!json_is_array(v))
                rc = fail(c, loc, "enum", "\"enum\" at %s must be an array", shown(loc));
            else
                add_kw(n, OP_ENUM, "enum")->u.value = v;
        } else if (strcmp(key, "const") == 0) {
            add_kw(n, OP_CONST, "const")->u.value = v;
        } else if (strcmp(key, "multipleOf") == 0) {
            bk__step_t step;
            if (!bk__step_of(v, &step))
                rc = fail(c, loc, "multipleOf", "\"multipleOf\" at %s must be a number greater than 0", shown(loc));
            else
                add_kw(n, OP_MULTIPLE_OF, "multipleOf")->u.step = step;
        } else if (strcmp(key, "maximum") == 0) {
            rc = kw_number(c, v, n, OP_MAXIMUM, "maximum", loc);
        } else if (strcmp(key, "exclusiveMaximum") == 0) {
            rc = kw_number(c, v, n, OP_EXCLUSIVE_MAXIMUM, "exclusiveMaximum", loc);
        } else if (strcmp(key, "minimum") == 0) {
            rc = kw_number(c, v, n, OP_MINIMUM, "minimum", loc);
        } else if (strcmp(key, "exclusiveMinimum") == 0) {
            rc = kw_number(c, v, n, OP_EXCLUSIVE_MINIMUM, "exclusiveMinimum", loc);
        } else if (strcmp(key, "maxLength") == 0) {
            rc = kw_count(c, v, n, OP_MAX_LENGTH, "maxLength", loc);
        } else if (strcmp(key, "minLength") == 0) {
            rc = kw_count(c, v, n, OP_MIN_LENGTH, "minLength", loc);
        } else if (strcmp(key, "maxItems") == 0) {
            rc = kw_count(c, v, n, OP_MAX_ITEMS, "maxItems", loc);
        } else if (strcmp(key, "minItems") == 0) {
            rc = kw_count(c, v, n, OP_MIN_ITEMS, "minItems", loc);
        } else if (strcmp(key, "maxProperties") == 0) {
            rc = kw_count(c, v, n, OP_MAX_PROPERTIES, "maxProperties", loc);
        } else if (strcmp(key, "minProperties") == 0) {
            rc = kw_count(c, v, n, OP_MIN_PROPERTIES, "minProperties", loc);
        } else if (strcmp(key, "uniqueItems") == 0) {
            if (!json_is_boolean(v))
                rc = fail(c, loc, "uniqueItems", "\"uniqueItems\" at %s must be a boolean", shown(loc));
            else if (json_is_true(v))
                add_kw(n, OP_UNIQUE_ITEMS, "uniqueItems");
        } else if (strcmp(key, "pattern") == 0) {
            bk__regex_t *re = json_is_string(v) ? regex(c, json_string_value(v), json_string_length(v), loc, key)
                                                : NULL;
            if (re) {
                bk__kw_t *k = add_kw(n, OP_PATTERN, "pattern");
                k->u.pattern.source = json_string_value(v);
                k->u.pattern.re = re;
            }
            rc = re ? BK_OK : c->rc ? c->rc : fail(c, loc, "pattern", "\"pattern\" at %s must be a string", shown(loc));
        } else if (strcmp(key, "format") == 0) {
            bk__format_t f = json_is_string(v) ? bk__format_lookup(json_string_value(v)) : BK_FMT_UNKNOWN;
            if (format_assert && f != BK_FMT_UNKNOWN)
                add_kw(n, OP_FORMAT, "format")->u.format = f;
        } else if (strcmp(key, "required") == 0) {
            bk__kw_t *k = add_kw(n, OP_REQUIRED, "required");
            if (!string_list(c, v, &k->u.required.names, &k->u.required.n))
                rc = c->rc ? c->rc
                           : fail(c, loc, "required", "\"required\" at %s must be an array of strings", shown(loc));
        } else if (!d7 && strcmp(key, "dependentRequired") == 0) {
            rc = kw_dependencies(c, v, n, "dependentRequired", loc);
        }
        if (rc)
            return rc;
    }
    if (!d7 && (vocab & V_UNEVALUATED)) {
        json_t *ui = json_object_get(s, "unevaluatedItems"), *up = json_object_get(s, "unevaluatedProperties");
        bk__node_t *child;
        if (ui && (child = compile_child(c, ui, loc, "unevaluatedItems")))
            add_kw(n, OP_UNEVALUATED_ITEMS, "unevaluatedItems")->u.node = child;
        if (up && c->rc == BK_OK && (child = compile_child(c, up, loc, "unevaluatedProperties")))
            add_kw(n, OP_UNEVALUATED_PROPERTIES, "unevaluatedProperties")->u.node = child;
        n->collects = ui || up;
    }
    /* "type" first: when the type is wrong, that is the error worth reporting. */
    for (size_t i = 1; i < n->nkws; i++) {
        if (n->kws[i].op == OP_TYPE) {
            bk__kw_t t = n->kws[i];
            memmove(&n->kws[1], &n->kws[0], i * sizeof t);
            n->kws[0] = t;
            break;
        }
    }
    return c->rc;
}

static bk__node_t *compile(compiler_t *c, json_t *s)
{
    sinfo_t *si = bk__map_get_ptr(&c->info, s);
    if (!si) { /* every schema position was scanned; anything else is not a schema */
        fail(c, NULL, NULL, "a schema must be an object or a boolean");
        return NULL;
    }
    if (si->node)
        return si->node;
    bk__node_t *n = alloc(c, sizeof *n);
    if (!n || !reserve(c, (void **)&c->nodes, &c->capnodes, c->nnodes, sizeof *c->nodes))
        return NULL;
    c->nodes[c->nnodes++] = n;
    si->node = n;
    n->resource = si->res;
    n->location = si->loc;
    n->boolean = json_is_boolean(s) ? json_is_true(s) : -1;
    if (n->boolean >= 0)
        return n;
    if (!json_is_object(s)) {
        fail(c, si->loc, NULL, "the schema at %s must be an object or a boolean", shown(si->loc));
        return NULL;
    }
    n->default_value = json_object_get(s, "default");
    if (++c->depth > MAX_NEST) {
        fail(c, si->loc, NULL, "$ref chains and nesting pass %d levels at %s", MAX_NEST, shown(si->loc));
        return NULL;
    }
    compile_keywords(c, s, n, si);
    c->depth--;
    return c->rc ? NULL : n;
}

/* ------------------------------------------------------------------ dynamic anchors, loops */

/* Compiles every $dynamicAnchor that a dynamic $dynamicRef may land on: any
 * resource can be in the dynamic scope. Compiling may reach new resources and
 * new dynamic references, so repeat until nothing changes. */
static int compile_dynamic_anchors(compiler_t *c)
{
    for (bool changed = true; changed && c->rc == BK_OK;) {
        changed = false;
        for (bk__resource_t *r = c->s->resources; r; r = r->next) {
            for (size_t i = 0; i < r->nanchors; i++) {
                bk__dynamic_anchor_t *a = &r->anchors[i];
                bool used = false;
                for (size_t j = 0; j < c->ndyn && !used; j++)
                    used = c->dyn_names[j] == a->name;
                if (!used || a->node)
                    continue;
                if (!(a->node = compile(c, (json_t *)a->schema)))
                    return c->rc;
                changed = true;
            }
        }
    }
    return c->rc;
}

/* The nodes n applies to the same instance location: the edges of an infinite
 * recursion. Returns how many were written to out (at most cap), or the number
 * needed when cap is too small. */
static size_t in_place_children(const bk_schema_t *s, const bk__node_t *n, bk__node_t **out, size_t cap)
{
    size_t k = 0;
#define PUSH(x)                                                                                                    \
    do {                                                                                                           \
        if ((x) && k < cap)                                                                                        \
            out[k] = (x);                                                                                          \
        if (x)                                                                                                     \
            k++;                                                                                                   \
    } while (0)
    for (size_t i = 0; i < n->nkws; i++) {
        const bk__kw_t *kw = &n->kws[i];
        switch (kw->op) {
        case OP_REF:
            PUSH(kw->u.ref.target);
            break;
        case OP_DYNAMIC_REF:
            PUSH(kw->u.ref.target);
            for (const bk__resource_t *r = s->resources; kw->u.ref.anchor && r; r = r->next)
                for (size_t j = 0; j < r->nanchors; j++)
                    if (r->anchors[j].name == kw->u.ref.anchor)
                        PUSH(r->anchors[j].node);
            break;
        case OP_ALL_OF:
        case OP_ANY_OF:
        case OP_ONE_OF:
            for (size_t j = 0; j < kw->u.list.n; j++)
                PUSH(kw->u.list.nodes[j]);
            break;
        case OP_NOT:
            PUSH(kw->u.node);
            break;
        case OP_IF:
            PUSH(kw->u.cond.if_);
            PUSH(kw->u.cond.then_);
            PUSH(kw->u.cond.else_);
            break;
        case OP_DEPENDENT_SCHEMAS:
            for (size_t j = 0; j < kw->u.deps.n; j++)
                PUSH(kw->u.deps.deps[j].node);
            break;
        default:
            break;
        }
    }
#undef PUSH
    return k;
}

typedef struct frame {
    bk__node_t *node;
    bk__node_t **children;
    size_t n, next;
} frame_t;

/* Depth-first search with an explicit stack: a schema may have thousands of
 * chained $refs, more than a thread's stack should take. */
static int check_loops(compiler_t *c)
{
    frame_t *stack = NULL;
    size_t depth = 0, cap = 0;
    for (size_t i = 0; i < c->nnodes && c->rc == BK_OK; i++) {
        bk__node_t *start = c->nodes[i];
        if (start->done)
            continue;
        bk__node_t *next = start;
        for (;;) {
            if (next) { /* enter next */
                if (!reserve(c, (void **)&stack, &cap, depth, sizeof *stack))
                    break;
                size_t n = in_place_children(c->s, next, NULL, 0);
                bk__node_t **ch = malloc((n ? n : 1) * sizeof *ch);
                if (!ch) {
                    oom(c);
                    break;
                }
                in_place_children(c->s, next, ch, n);
                stack[depth++] = (frame_t){next, ch, n, 0};
                next->visiting = true;
            }
            frame_t *f = &stack[depth - 1];
            if (f->next < f->n) {
                bk__node_t *ch = f->children[f->next++];
                if (ch->visiting) {
                    fail(c, ch->location, NULL,
                         "the schema at %s refers to itself without descending into the instance "
                         "(an infinite $ref loop)",
                         shown(ch->location));
                    break;
                }
                next = ch->done ? NULL : ch;
                continue;
            }
            f->node->visiting = false;
            f->node->done = true;
            free(f->children);
            if (--depth == 0)
                break;
            next = NULL;
        }
    }
    while (depth > 0)
        free(stack[--depth].children);
    free(stack);
    return c->rc;
}

/* ------------------------------------------------------------------ public */

BK__ASSERT_ABI_SIZE(bk_schema_opts_t, 104);

void bk_schema_opts_init(bk_schema_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->draft = BK_SCHEMA_DRAFT_2020_12;
    opts->max_errors = 100;
    opts->max_depth = 128;
    opts->max_recursion = 1000;
    opts->regex_match_limit = 1000000;
}

/* opts (NULL: all defaults) with each zero field at its default, in *out. */
static void effective_opts(const bk_schema_opts_t *opts, bk_schema_opts_t *out)
{
    bk_schema_opts_init(out);
    if (!opts)
        return;
    out->format_assert = opts->format_assert;
    out->base_uri = opts->base_uri;
    out->registry = opts->registry;
    if (opts->draft)
        out->draft = opts->draft;
    if (opts->max_errors)
        out->max_errors = opts->max_errors;
    if (opts->max_depth)
        out->max_depth = opts->max_depth;
    if (opts->max_recursion)
        out->max_recursion = opts->max_recursion;
    if (opts->regex_match_limit)
        out->regex_match_limit = opts->regex_match_limit;
}

void bk_schema_free(bk_schema_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nregexes; i++)
        bk__regex_free(s->regexes[i]);
    free(s->regexes);
    for (size_t i = 0; i < s->ndocs; i++)
        json_decref(s->docs[i]);
    free(s->docs);
    free_resources(s);
    bk__arena_free(&s->arena);
    free(s);
}

const json_t *bk_schema_document(const bk_schema_t *s)
{
    return s ? s->docs[0] : NULL;
}

int bk_schema_draft(const bk_schema_t *s)
{
    return s ? s->draft : 0;
}

int bk_schema_compile(const json_t *schema_in, const bk_schema_opts_t *opts_in, bk_schema_t **out,
                      bk_error_t *err)
{
    bk__error_clear(err);
    bk_schema_opts_t o;
    effective_opts(opts_in, &o);
    const bk_schema_opts_t *opts = &o;
    if (!out)
        return bk__error(err, BK_EINVAL, "out is required");
    *out = NULL;
    compiler_t c = {.o = opts, .err = err};
    if (!schema_in)
        return fail(&c, NULL, NULL, "invalid arguments: a schema is needed");
    if (opts->draft != BK_SCHEMA_DRAFT_2020_12 && opts->draft != BK_SCHEMA_DRAFT_7)
        return fail(&c, NULL, NULL, "invalid arguments: unknown draft %d (BK_SCHEMA_DRAFT_2020_12 or "
                                    "BK_SCHEMA_DRAFT_7)", opts->draft);
    /* Borrowed: the compiled form keeps a reference (json_incref needs a non-const
     * pointer) and reads it; nothing here writes to it. */
    json_t *schema = (json_t *)schema_in;
    if (!(c.s = calloc(1, sizeof *c.s)) || !(c.s->docs = malloc(sizeof *c.s->docs))) {
        free(c.s);
        return oom(&c);
    }
    bk_schema_t *s = c.s;
    s->docs[s->ndocs++] = json_incref(schema);
    s->max_errors = opts->max_errors;
    s->max_depth = opts->max_depth;
    s->max_recursion = opts->max_recursion;
    const char *base = opts->base_uri ? opts->base_uri : "";
    if (!scan_document(&c, schema, base, strcspn(base, "#"), opts->draft, V_ALL, "") &&
        (s->root = compile(&c, schema)) && compile_dynamic_anchors(&c) == BK_OK)
        check_loops(&c);
    const sinfo_t *root_info = c.rc ? NULL : bk__map_get_ptr(&c.info, schema);
    s->draft = root_info ? root_info->draft : opts->draft;
    bk__map_free(&c.info);
    bk__map_free(&c.resources);
    bk__map_free(&c.anchors);
    bk__map_free(&c.strings);
    free(c.dyn_names);
    free(c.nodes);
    if (c.rc) {
        bk_schema_free(s);
        return c.rc;
    }
    *out = s;
    return BK_OK;
}
