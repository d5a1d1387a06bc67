/* bk_schema_validate: walks the compiled nodes over an instance.
 *
 * Paths (instance location, keyword location) and the dynamic scope are linked
 * frames on the C stack, turned into strings only when an error is recorded, so
 * a valid document costs no allocation beyond regex scratch space.
 *
 * Annotations for unevaluatedProperties/unevaluatedItems are a bitset over the
 * instance's members or items, collected only below a node that has one of those
 * keywords; a subschema that fails contributes none (anyOf, oneOf, if, contains
 * evaluate into a scratch set and merge it only when they pass).
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"
#include "core/json_int.h"
#include "core/jsonptr_int.h"
#include "core/utf8_int.h"

struct bk_schema_errors {
    bk_schema_error_t *v; /* each entry's strings are one malloc'ed block, at .instance_location */
    size_t n, cap;
    bool truncated;       /* more errors than max_errors */
};

typedef struct ipath { /* instance location */
    const struct ipath *up;
    const char *key; /* NULL: an array index */
    size_t klen, idx;
    unsigned depth;
} ipath_t;

typedef struct kpath { /* keyword location: /seg, then /key or /idx when has */
    const struct kpath *up;
    const char *seg;
    const char *key;
    size_t klen, idx;
    bool has_idx;
} kpath_t;

typedef struct dscope {
    const struct dscope *up;
    const bk__resource_t *res;
} dscope_t;

typedef struct ann {
    uint64_t *bits; /* member or item i evaluated */
} ann_t;

typedef struct vctx {
    const bk_schema_t *s;
    bk_schema_errors_t *errs; /* NULL: validity only */
    bool record;              /* errors from here are kept (not inside not, if, ...) */
    bool all;                 /* go on after the first error */
    bool oom;
    unsigned recursion;
    bk__regex_scratch_t *rx;
} vctx_t;

static bool eval(vctx_t *c, const bk__node_t *n, const json_t *v, const ipath_t *ip, const kpath_t *kp,
                 const dscope_t *ds, ann_t *ann);

/* ------------------------------------------------------------------ errors */

static size_t ipath_len(const ipath_t *ip)
{
    size_t n = 0;
    for (; ip && ip->up; ip = ip->up)
        n += 1 + (ip->key ? 2 * ip->klen : 20);
    return n;
}

/* Writes "/" and a number or a token so that it ends at end; returns its start. */
static char *write_back(char *end, const char *key, size_t klen, size_t idx)
{
    if (key == NULL) {
        char num[24];
        int n = snprintf(num, sizeof num, "/%zu", idx);
        end -= n;
        memcpy(end, num, (size_t)n);
        return end;
    }
    end -= 1 + bk__jsonptr_escape(NULL, key, klen);
    *end = '/';
    bk__jsonptr_escape(end + 1, key, klen);
    return end;
}

/* Writes ip's pointer so that it ends at end (backwards); returns its start. */
static char *ipath_write(const ipath_t *ip, char *end)
{
    for (; ip && ip->up; ip = ip->up)
        end = write_back(end, ip->key, ip->klen, ip->idx);
    return end;
}

static size_t kpath_len(const kpath_t *kp)
{
    size_t n = 0;
    for (; kp; kp = kp->up)
        n += 1 + strlen(kp->seg) + (kp->key ? 1 + 2 * kp->klen : kp->has_idx ? 21 : 0);
    return n;
}

static char *kpath_write(const kpath_t *kp, char *end)
{
    for (; kp; kp = kp->up) {
        if (kp->has_idx || kp->key)
            end = write_back(end, kp->key, kp->klen, kp->idx);
        end = write_back(end, kp->seg, strlen(kp->seg), 0);
    }
    return end;
}

/* Records an error (when recording) and returns false, the verdict. */
static bool fail(vctx_t *c, const ipath_t *ip, const kpath_t *kp, const char *kw, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static bool fail(vctx_t *c, const ipath_t *ip, const kpath_t *kp, const char *kw, const char *fmt, ...)
{
    if (!c->record || !c->errs)
        return false;
    bk_schema_errors_t *e = c->errs;
    if (e->n >= c->s->max_errors) {
        e->truncated = true;
        return false;
    }
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        bk_schema_error_t *nv = realloc(e->v, cap * sizeof *nv);
        if (!nv) {
            c->oom = true;
            return false;
        }
        e->v = nv;
        e->cap = cap;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int mlen = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (mlen < 0)
        mlen = 0;
    if ((size_t)mlen >= sizeof msg)
        mlen = sizeof msg - 1;
    size_t il = ipath_len(ip), kl = kpath_len(kp) + 1 + strlen(kw), wl = strlen(kw);
    /* One block: instance location, keyword location, keyword, message. Paths are
     * written backwards into over-sized slots, then moved to the slot's start. */
    char *block = malloc(il + 1 + kl + 1 + wl + 1 + (size_t)mlen + 1);
    if (!block) {
        c->oom = true;
        return false;
    }
    char *iend = block + il, *istart = ipath_write(ip, iend);
    size_t ilen = (size_t)(iend - istart);
    memmove(block, istart, ilen);
    block[ilen] = '\0';
    char *kbase = block + il + 1, *kend = kbase + kl;
    kend -= wl + 1;
    kend[0] = '/';
    memcpy(kend + 1, kw, wl);
    char *kstart = kpath_write(kp, kend);
    size_t klen = (size_t)(kbase + kl - kstart);
    memmove(kbase, kstart, klen);
    kbase[klen] = '\0';
    char *w = kbase + kl + 1;
    memcpy(w, kw, wl + 1);
    char *m = w + wl + 1;
    memcpy(m, msg, (size_t)mlen);
    m[mlen] = '\0';
    e->v[e->n++] = (bk_schema_error_t){block, kbase, w, m};
    return false;
}

/* Drops the errors recorded after mark (a branch that turned out not to matter). */
static void rollback(vctx_t *c, size_t mark)
{
    if (!c->errs)
        return;
    while (c->errs->n > mark)
        free((char *)c->errs->v[--c->errs->n].instance_location);
}

static size_t mark(const vctx_t *c)
{
    return c->errs ? c->errs->n : 0;
}

/* A JSON value for a message, shortened past 100 characters. */
static const char *show(const json_t *v, char *buf, size_t size)
{
    char *s = bk__json_dump(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        return "(value)";
    size_t n = strlen(s);
    if (n > 100)
        snprintf(buf, size, "%.96s...", s);
    else
        snprintf(buf, size, "%s", s);
    bk__json_free(s);
    return buf;
}

static const char *plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

/* ------------------------------------------------------------------ annotations */

static size_t ann_words(size_t n)
{
    return (n + 63) / 64;
}

static void ann_set(ann_t *a, size_t i)
{
    if (a)
        a->bits[i / 64] |= UINT64_C(1) << (i % 64);
}

static bool ann_get(const ann_t *a, size_t i)
{
    return a->bits[i / 64] >> (i % 64) & 1;
}

static void ann_set_all(ann_t *a, size_t n)
{
    if (a)
        for (size_t i = 0; i < n; i++)
            ann_set(a, i);
}

static size_t instance_size(const json_t *v)
{
    return json_is_object(v) ? json_object_size(v) : json_is_array(v) ? json_array_size(v) : 0;
}

/* A scratch set for a branch whose annotations count only if it passes. */
static bool ann_scratch(vctx_t *c, const ann_t *parent, const json_t *v, ann_t *out)
{
    out->bits = NULL;
    if (!parent)
        return true;
    out->bits = calloc(ann_words(instance_size(v)) + 1, sizeof *out->bits);
    if (!out->bits)
        c->oom = true;
    return out->bits != NULL;
}

static void ann_merge(ann_t *into, const ann_t *from, const json_t *v)
{
    if (into && from->bits)
        for (size_t i = 0; i < ann_words(instance_size(v)); i++)
            into->bits[i] |= from->bits[i];
}

/* ------------------------------------------------------------------ keywords */

static uint32_t type_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return BK_T_OBJECT;
    case JSON_ARRAY:
        return BK_T_ARRAY;
    case JSON_STRING:
        return BK_T_STRING;
    case JSON_INTEGER:
        return BK_T_INTEGER | BK_T_NUMBER;
    case JSON_REAL:
        return bk__json_is_integral(v) ? BK_T_INTEGER | BK_T_NUMBER : BK_T_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE:
        return BK_T_BOOLEAN;
    default:
        return BK_T_NULL;
    }
}

static bool check_type(vctx_t *c, const bk__kw_t *k, const json_t *v, const ipath_t *ip, const kpath_t *kp)
{
    if (k->u.types & type_of(v))
        return true;
    static const char *const names[] = {"null", "boolean", "object", "array", "number", "integer", "string"};
    static const char *const singular[] = {"null", "a boolean", "an object", "an array",
                                           "a number", "an integer", "a string"};
    uint32_t bits = k->u.types;
    if (bits & BK_T_NUMBER)
        bits &= ~(uint32_t)BK_T_INTEGER; /* "number" says it */
    if ((bits & (bits - 1)) == 0)
        return fail(c, ip, kp, "type", "must be %s", singular[__builtin_ctz(bits)]);
    char want[96] = "";
    for (int i = 0; i < 7; i++)
        if (bits & (1u << i))
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", *want ? " or " : "", names[i]);
    return fail(c, ip, kp, "type", "must be of type %s", want);
}

/* The failure of a bound; out of line, so the passing path formats nothing. */
static __attribute__((noinline)) bool number_failure(vctx_t *c, const bk__kw_t *k, const ipath_t *ip,
                                                     const kpath_t *kp)
{
    static const char *const what[] = {"at most", "less than", "at least", "greater than"};
    char lim[40];
    if (k->u.num.is_int)
        snprintf(lim, sizeof lim, "%lld", (long long)k->u.num.i);
    else
        snprintf(lim, sizeof lim, "%.17g", k->u.num.d);
    return fail(c, ip, kp, k->name, "must be %s %s", what[k->op - OP_MAXIMUM], lim);
}

static bool check_number(vctx_t *c, const bk__kw_t *k, const json_t *v, const ipath_t *ip, const kpath_t *kp)
{
    int cmp = bk__num_cmp(v, &k->u.num);
    bool ok = k->op == OP_MAXIMUM ? cmp <= 0 : k->op == OP_EXCLUSIVE_MAXIMUM ? cmp < 0
            : k->op == OP_MINIMUM ? cmp >= 0 : cmp > 0;
    return ok || number_failure(c, k, ip, kp);
}

/* The failure of enum or const, out of line for the same reason. */
static __attribute__((noinline)) bool value_failure(vctx_t *c, const bk__kw_t *k, const ipath_t *ip,
                                                    const kpath_t *kp)
{
    char buf[128];
    return k->op == OP_ENUM ? fail(c, ip, kp, "enum", "is not one of %s", show(k->u.value, buf, sizeof buf))
                            : fail(c, ip, kp, "const", "must be %s", show(k->u.value, buf, sizeof buf));
}

static bool check_unique(vctx_t *c, const json_t *v, const ipath_t *ip, const kpath_t *kp)
{
    size_t n = json_array_size(v);
    if (n < 2)
        return true;
    if (n <= 16) { /* pairwise beats hashing for the short arrays APIs carry */
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (bk__json_equal(json_array_get(v, i), json_array_get(v, j)))
                    return fail(c, ip, kp, "uniqueItems", "must not have duplicate items (items %zu and %zu are equal)",
                                i, j);
        return true;
    }
    /* Open addressing on hashes: O(n) expected, not O(n^2), for hostile sizes. */
    size_t cap = 32;
    while (cap < 2 * n)
        cap *= 2;
    size_t *slots = malloc(cap * sizeof *slots); /* item index + 1; 0 empty */
    uint64_t *hashes = malloc(n * sizeof *hashes);
    if (!slots || !hashes) {
        free(slots), free(hashes);
        c->oom = true;
        return false;
    }
    memset(slots, 0, cap * sizeof *slots);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        const json_t *item = json_array_get(v, i);
        hashes[i] = bk__json_hash(item);
        size_t s = hashes[i] & (cap - 1);
        for (; slots[s]; s = (s + 1) & (cap - 1)) {
            size_t j = slots[s] - 1;
            if (hashes[j] == hashes[i] && bk__json_equal(json_array_get(v, j), item)) {
                ok = fail(c, ip, kp, "uniqueItems", "must not have duplicate items (items %zu and %zu are equal)", j,
                          i);
                break;
            }
        }
        slots[s] = i + 1;
    }
    free(slots);
    free(hashes);
    return ok;
}

static bool check_contains(vctx_t *c, const bk__kw_t *k, const json_t *v, const ipath_t *ip, const kpath_t *kp,
                           const dscope_t *ds, ann_t *ann)
{
    size_t n = json_array_size(v);
    uint64_t found = 0;
    bool record = c->record;
    c->record = false; /* an item that does not match is not an error */
    kpath_t sub = {kp, "contains", NULL, 0, 0, false};
    for (size_t i = 0; i < n; i++) {
        ipath_t ii = {ip, NULL, 0, i, ip->depth + 1};
        if (eval(c, k->u.contains.node, json_array_get(v, i), &ii, &sub, ds, NULL)) {
            found++;
            ann_set(ann, i);
            /* Without annotations or a maximum, the minimum is all we need. */
            if (!ann && k->u.contains.max == UINT64_MAX && found >= k->u.contains.min)
                break;
        }
    }
    c->record = record;
    if (found < k->u.contains.min)
        return k->u.contains.min == 1
                   ? fail(c, ip, kp, "contains", "must contain an item matching the schema in \"contains\"")
                   : fail(c, ip, kp, "minContains", "must contain at least %llu items matching \"contains\"",
                          (unsigned long long)k->u.contains.min);
    if (found > k->u.contains.max)
        return fail(c, ip, kp, "maxContains", "must contain at most %llu item%s matching \"contains\"",
                    (unsigned long long)k->u.contains.max, plural(k->u.contains.max));
    return true;
}

static const bk__prop_t *find_prop(const bk__kw_t *k, const char *key, size_t klen)
{
    size_t lo = 0, hi = k->u.props.nprops;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const bk__prop_t *p = k->u.props.by_name[mid];
        size_t n = p->len < klen ? p->len : klen;
        int r = memcmp(p->name, key, n);
        r = r ? r : (p->len > klen) - (p->len < klen);
        if (r == 0)
            return p;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Regex scratch space (match data, a JIT stack) costs more to make than most
 * validations take, so each thread keeps one between validations; it is freed
 * when the thread exits. Taken out while in use, so nesting cannot share it. */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_key_ok;

static void scratch_destroy(void *sc)
{
    bk__regex_scratch_free(sc);
}

static void scratch_key_make(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0;
}

static bk__regex_scratch_t *scratch_take(void)
{
    pthread_once(&scratch_once, scratch_key_make);
    bk__regex_scratch_t *sc = scratch_key_ok ? pthread_getspecific(scratch_key) : NULL;
    if (sc != NULL) {
        pthread_setspecific(scratch_key, NULL);
        return sc;
    }
    return bk__regex_scratch_new();
}

static void scratch_give_back(bk__regex_scratch_t *sc)
{
    if (sc == NULL)
        return;
    if (scratch_key_ok && pthread_getspecific(scratch_key) == NULL && pthread_setspecific(scratch_key, sc) == 0)
        return;
    bk__regex_scratch_free(sc);
}

static int regex_match(vctx_t *c, const bk__regex_t *re, const char *s, size_t len)
{
    if (!c->rx && !(c->rx = scratch_take())) {
        c->oom = true;
        return -1;
    }
    return bk__regex_match(re, c->rx, s, len);
}

/* Member i (key) of object v is not covered by properties or patterns: checks it
 * against sub (additionalProperties or unevaluatedProperties). */
static bool check_leftover(vctx_t *c, const bk__node_t *sub, const char *kw, const json_t *m, const ipath_t *mi,
                           const kpath_t *kp, const dscope_t *ds)
{
    if (sub->boolean == 0)
        return fail(c, mi, kp, kw, "property \"%.*s\" is not allowed", (int)(mi->klen > 200 ? 200 : mi->klen),
                    mi->key);
    kpath_t sk = {kp, kw, NULL, 0, 0, false};
    return eval(c, sub, m, mi, &sk, ds, NULL);
}

static bool check_properties(vctx_t *c, const bk__kw_t *k, const json_t *v, const ipath_t *ip, const kpath_t *kp,
                             const dscope_t *ds, ann_t *ann)
{
    bool ok = true;
    if (!ann && !k->u.props.npatterns) {
        /* Fast path: look up each declared property (jansson hashes); members
         * left over matter only to additionalProperties, and only if there are. */
        size_t found = 0;
        for (size_t i = 0; i < k->u.props.nprops; i++) {
            const bk__prop_t *p = &k->u.props.props[i];
            const json_t *m = json_object_getn(v, p->name, p->len);
            if (!m)
                continue;
            found++;
            ipath_t mi = {ip, p->name, p->len, 0, ip->depth + 1};
            kpath_t sk = {kp, "properties", p->name, p->len, 0, false};
            if (!eval(c, p->node, m, &mi, &sk, ds, NULL) && !(ok = false, c->all))
                return false;
        }
        if (!k->u.props.additional || found == json_object_size(v))
            return ok;
        const char *key;
        size_t klen;
        json_t *m;
        json_object_keylen_foreach((json_t *)v, key, klen, m) {
            if (find_prop(k, key, klen))
                continue;
            ipath_t mi = {ip, key, klen, 0, ip->depth + 1};
            if (!check_leftover(c, k->u.props.additional, "additionalProperties", m, &mi, kp, ds) &&
                !(ok = false, c->all))
                return false;
        }
        return ok;
    }
    const char *key;
    size_t klen, i = 0;
    json_t *m;
    json_object_keylen_foreach((json_t *)v, key, klen, m) {
        ipath_t mi = {ip, key, klen, 0, ip->depth + 1};
        bool matched = false;
        const bk__prop_t *p = find_prop(k, key, klen);
        if (p) {
            matched = true;
            kpath_t sk = {kp, "properties", p->name, p->len, 0, false};
            if (!eval(c, p->node, m, &mi, &sk, ds, NULL) && !(ok = false, c->all))
                return false;
        }
        for (size_t j = 0; j < k->u.props.npatterns; j++) {
            const bk__pattern_prop_t *pp = &k->u.props.patterns[j];
            int r = regex_match(c, pp->re, key, klen);
            if (r < 0) {
                ok = fail(c, &mi, kp, "patternProperties",
                          "property name could not be checked against \"%s\" within limits", pp->source);
                if (!c->all)
                    return false;
                continue;
            }
            if (r == 0)
                continue;
            matched = true;
            kpath_t sk = {kp, "patternProperties", pp->source, strlen(pp->source), 0, false};
            if (!eval(c, pp->node, m, &mi, &sk, ds, NULL) && !(ok = false, c->all))
                return false;
        }
        if (!matched && k->u.props.additional) {
            matched = true;
            if (!check_leftover(c, k->u.props.additional, "additionalProperties", m, &mi, kp, ds) &&
                !(ok = false, c->all))
                return false;
        }
        if (matched)
            ann_set(ann, i);
        i++;
    }
    return ok;
}

static bool check_items(vctx_t *c, const bk__kw_t *k, const json_t *v, const ipath_t *ip, const kpath_t *kp,
                        const dscope_t *ds, ann_t *ann)
{
    size_t n = json_array_size(v), np = k->u.items.nprefix;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        ipath_t ii = {ip, NULL, 0, i, ip->depth + 1};
        bool valid;
        if (i < np) {
            kpath_t sk = {kp, k->u.items.prefix_kw, NULL, 0, i, true};
            valid = eval(c, k->u.items.prefix[i], json_array_get(v, i), &ii, &sk, ds, NULL);
        } else if (!k->u.items.rest) {
            break;
        } else if (k->u.items.rest->boolean == 0) {
            valid = fail(c, ip, kp, k->u.items.rest_kw, "must have at most %zu item%s", np, plural(np));
            ann_set_all(ann, n);
            return valid;
        } else {
            kpath_t sk = {kp, k->u.items.rest_kw, NULL, 0, 0, false};
            valid = eval(c, k->u.items.rest, json_array_get(v, i), &ii, &sk, ds, NULL);
        }
        ann_set(ann, i);
        if (!valid && !(ok = false, c->all))
            return false;
    }
    return ok;
}

static bool check_any_of(vctx_t *c, const bk__kw_t *k, const json_t *v, const ipath_t *ip, const kpath_t *kp,
                         const dscope_t *ds, ann_t *ann)
{
    size_t m = mark(c);
    bool record = c->record, any = false;
    c->record = record && c->all; /* first-error mode reports the anyOf itself */
    for (size_t i = 0; i < k->u.list.n && !c->oom; i++) {
        kpath_t sk = {kp, "anyOf", NULL, 0, i, true};
        ann_t a;
        if (!ann_scratch(c, ann, v, &a))
            break;
        if (eval(c, k->u.list.nodes[i], v, ip, &sk, ds, a.bits ? &a : NULL)) {
            any = true;
            ann_merge(ann, &a, v);
        }
        free(a.bits);
        if (any && !ann) /* every passing branch annotates; otherwise one is enough */
            break;
    }
    c->record = record;
    if (any) {
        rollback(c, m);
        return true;
    }
    return fail(c, ip, kp, "anyOf", "must match at least one of the schemas in \"anyOf\"");
}

static bool check_one_of(vctx_t *c, const bk__kw_t *k, const json_t *v, const ipath_t *ip, const kpath_t *kp,
                         const dscope_t *ds, ann_t *ann)
{
    size_t m = mark(c), first = SIZE_MAX, second = SIZE_MAX;
    bool record = c->record;
    c->record = record && c->all;
    ann_t keep = {NULL};
    for (size_t i = 0; i < k->u.list.n && second == SIZE_MAX && !c->oom; i++) {
        kpath_t sk = {kp, "oneOf", NULL, 0, i, true};
        ann_t a;
        if (!ann_scratch(c, ann, v, &a))
            break;
        if (eval(c, k->u.list.nodes[i], v, ip, &sk, ds, a.bits ? &a : NULL)) {
            if (first == SIZE_MAX) {
                first = i;
                keep = a;
                continue;
            }
            second = i;
        }
        free(a.bits);
    }
    c->record = record;
    bool ok = first != SIZE_MAX && second == SIZE_MAX;
    if (ok)
        ann_merge(ann, &keep, v);
    free(keep.bits);
    if (first != SIZE_MAX)
        rollback(c, m);
    if (ok)
        return true;
    if (first == SIZE_MAX)
        return fail(c, ip, kp, "oneOf", "must match exactly one of the schemas in \"oneOf\" (matches none)");
    return fail(c, ip, kp, "oneOf", "must match exactly one of the schemas in \"oneOf\" (matches %zu and %zu)",
                first, second);
}

static bool check_if(vctx_t *c, const bk__kw_t *k, const json_t *v, const ipath_t *ip, const kpath_t *kp,
                     const dscope_t *ds, ann_t *ann)
{
    if (!k->u.cond.then_ && !k->u.cond.else_ && !ann)
        return true; /* "if" alone asserts nothing */
    bool record = c->record;
    c->record = false;
    ann_t a;
    if (!ann_scratch(c, ann, v, &a))
        return false;
    kpath_t ik = {kp, "if", NULL, 0, 0, false};
    bool cond = eval(c, k->u.cond.if_, v, ip, &ik, ds, a.bits ? &a : NULL);
    c->record = record;
    if (cond)
        ann_merge(ann, &a, v);
    free(a.bits);
    const bk__node_t *branch = cond ? k->u.cond.then_ : k->u.cond.else_;
    if (!branch)
        return true;
    kpath_t bk = {kp, cond ? "then" : "else", NULL, 0, 0, false};
    return eval(c, branch, v, ip, &bk, ds, ann);
}

/* The target of a $dynamicRef: the outermost resource in the dynamic scope that
 * has a $dynamicAnchor of that name, else the static target. */
static const bk__node_t *dynamic_target(const bk__kw_t *k, const dscope_t *ds)
{
    const bk__node_t *t = k->u.ref.target;
    if (!k->u.ref.anchor)
        return t;
    for (; ds; ds = ds->up)
        for (size_t i = 0; i < ds->res->nanchors; i++)
            if (ds->res->anchors[i].name == k->u.ref.anchor && ds->res->anchors[i].node)
                t = ds->res->anchors[i].node;
    return t;
}

static bool check_unevaluated(vctx_t *c, const bk__kw_t *k, const json_t *v, const ipath_t *ip, const kpath_t *kp,
                              const dscope_t *ds, ann_t *ann)
{
    bool ok = true;
    if (k->op == OP_UNEVALUATED_PROPERTIES) {
        const char *key;
        size_t klen, i = 0;
        json_t *m;
        json_object_keylen_foreach((json_t *)v, key, klen, m) {
            if (!ann_get(ann, i)) {
                ipath_t mi = {ip, key, klen, 0, ip->depth + 1};
                if (!check_leftover(c, k->u.node, k->name, m, &mi, kp, ds) && !(ok = false, c->all))
                    return false;
            }
            i++;
        }
        ann_set_all(ann, i);
        return ok;
    }
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
        if (ann_get(ann, i))
            continue;
        ipath_t ii = {ip, NULL, 0, i, ip->depth + 1};
        if (k->u.node->boolean == 0) {
            ok = fail(c, &ii, kp, k->name, "item %zu is not allowed here", i);
        } else {
            kpath_t sk = {kp, k->name, NULL, 0, 0, false};
            ok = eval(c, k->u.node, json_array_get(v, i), &ii, &sk, ds, NULL) && ok;
        }
        if (!ok && !c->all)
            return false;
    }
    ann_set_all(ann, n);
    return ok;
}

/* Each of names[0..n) must be a member of object v; an absent one is reported
 * at its own location. when: the member that requires them (dependentRequired). */
static bool check_present(vctx_t *c, const json_t *v, const char *const *names, size_t n, const ipath_t *ip,
                          const kpath_t *kp, const char *kw, const char *when)
{
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        if (json_object_get(v, names[i]))
            continue;
        ipath_t mi = {ip, names[i], strlen(names[i]), 0, ip->depth + 1};
        ok = when ? fail(c, &mi, kp, kw, "is required when \"%s\" is present", when)
                  : fail(c, &mi, kp, kw, "is required");
        if (!c->all)
            return false;
    }
    return ok;
}

static bool check_kw(vctx_t *c, const bk__kw_t *k, const json_t *v, const ipath_t *ip, const kpath_t *kp,
                     const dscope_t *ds, ann_t *ann)
{
    switch (k->op) {
    case OP_TYPE:
        return check_type(c, k, v, ip, kp);
    case OP_ENUM:
        for (size_t i = 0; i < json_array_size(k->u.value); i++)
            if (bk__json_equal(v, json_array_get(k->u.value, i)))
                return true;
        return value_failure(c, k, ip, kp);
    case OP_CONST:
        return bk__json_equal(v, k->u.value) || value_failure(c, k, ip, kp);
    case OP_MULTIPLE_OF:
        if (!json_is_number(v) || bk__is_multiple(v, &k->u.step))
            return true;
        return fail(c, ip, kp, "multipleOf", "must be a multiple of %.17g", k->u.step.num.d);
    case OP_MAXIMUM:
    case OP_EXCLUSIVE_MAXIMUM:
    case OP_MINIMUM:
    case OP_EXCLUSIVE_MINIMUM:
        return !json_is_number(v) || check_number(c, k, v, ip, kp);
    case OP_MAX_LENGTH:
    case OP_MIN_LENGTH: {
        if (!json_is_string(v))
            return true;
        size_t len = json_string_length(v);
        /* Code points never outnumber bytes: skip counting when bytes decide. */
        if (k->op == OP_MAX_LENGTH && len <= k->u.count)
            return true;
        len = bk__utf8_count(json_string_value(v), len);
        if (k->op == OP_MAX_LENGTH)
            return len <= k->u.count || fail(c, ip, kp, k->name, "must be at most %llu character%s long",
                                              (unsigned long long)k->u.count, plural(k->u.count));
        return len >= k->u.count || fail(c, ip, kp, k->name, "must be at least %llu character%s long",
                                          (unsigned long long)k->u.count, plural(k->u.count));
    }
    case OP_PATTERN: {
        if (!json_is_string(v))
            return true;
        int r = regex_match(c, k->u.pattern.re, json_string_value(v), json_string_length(v));
        if (r > 0)
            return true;
        if (r < 0)
            return fail(c, ip, kp, "pattern", "could not be checked against the pattern \"%s\" within limits",
                        k->u.pattern.source);
        return fail(c, ip, kp, "pattern", "must match the pattern \"%s\"", k->u.pattern.source);
    }
    case OP_FORMAT:
        if (!json_is_string(v) || bk__format_check(k->u.format, json_string_value(v), json_string_length(v)))
            return true;
        return fail(c, ip, kp, "format", "must be a valid %s", bk__format_name(k->u.format));
    case OP_MAX_ITEMS:
        return !json_is_array(v) || json_array_size(v) <= k->u.count ||
               fail(c, ip, kp, k->name, "must have at most %llu item%s", (unsigned long long)k->u.count,
                    plural(k->u.count));
    case OP_MIN_ITEMS:
        return !json_is_array(v) || json_array_size(v) >= k->u.count ||
               fail(c, ip, kp, k->name, "must have at least %llu item%s", (unsigned long long)k->u.count,
                    plural(k->u.count));
    case OP_UNIQUE_ITEMS:
        return !json_is_array(v) || check_unique(c, v, ip, kp);
    case OP_CONTAINS:
        return !json_is_array(v) || check_contains(c, k, v, ip, kp, ds, ann);
    case OP_MAX_PROPERTIES:
        return !json_is_object(v) || json_object_size(v) <= k->u.count ||
               fail(c, ip, kp, k->name, "must have at most %llu propert%s", (unsigned long long)k->u.count,
                    k->u.count == 1 ? "y" : "ies");
    case OP_MIN_PROPERTIES:
        return !json_is_object(v) || json_object_size(v) >= k->u.count ||
               fail(c, ip, kp, k->name, "must have at least %llu propert%s", (unsigned long long)k->u.count,
                    k->u.count == 1 ? "y" : "ies");
    case OP_REQUIRED:
        return !json_is_object(v) ||
               check_present(c, v, k->u.required.names, k->u.required.n, ip, kp, "required", NULL);
    case OP_DEPENDENT_REQUIRED: {
        if (!json_is_object(v))
            return true;
        bool ok = true;
        for (size_t i = 0; i < k->u.deps.n; i++) {
            const bk__dependency_t *d = &k->u.deps.deps[i];
            if (json_object_get(v, d->name) &&
                !check_present(c, v, d->required, d->nrequired, ip, kp, k->name, d->name) && !(ok = false, c->all))
                return false;
        }
        return ok;
    }
    case OP_DEPENDENT_SCHEMAS: {
        if (!json_is_object(v))
            return true;
        bool ok = true;
        for (size_t i = 0; i < k->u.deps.n; i++) {
            const bk__dependency_t *d = &k->u.deps.deps[i];
            if (!json_object_get(v, d->name))
                continue;
            kpath_t sk = {kp, k->name, d->name, strlen(d->name), 0, false};
            if (!eval(c, d->node, v, ip, &sk, ds, ann) && !(ok = false, c->all))
                return false;
        }
        return ok;
    }
    case OP_PROPERTIES:
        return !json_is_object(v) || check_properties(c, k, v, ip, kp, ds, ann);
    case OP_PROPERTY_NAMES: {
        if (!json_is_object(v))
            return true;
        bool ok = true, record = c->record;
        const char *key;
        size_t klen;
        json_t *m;
        json_object_keylen_foreach((json_t *)v, key, klen, m) {
            json_t *name = json_stringn_nocheck(key, klen);
            if (!name) {
                c->oom = true;
                return false;
            }
            ipath_t mi = {ip, key, klen, 0, ip->depth + 1};
            kpath_t sk = {kp, "propertyNames", NULL, 0, 0, false};
            c->record = false;
            bool valid = eval(c, k->u.node, name, &mi, &sk, ds, NULL);
            c->record = record;
            json_decref(name);
            if (!valid) {
                ok = fail(c, &mi, kp, "propertyNames", "is not an allowed property name");
                if (!c->all)
                    return false;
            }
        }
        return ok;
    }
    case OP_ITEMS:
        return !json_is_array(v) || check_items(c, k, v, ip, kp, ds, ann);
    case OP_ALL_OF: {
        bool ok = true;
        for (size_t i = 0; i < k->u.list.n; i++) {
            kpath_t sk = {kp, "allOf", NULL, 0, i, true};
            if (!eval(c, k->u.list.nodes[i], v, ip, &sk, ds, ann) && !(ok = false, c->all))
                return false;
        }
        return ok;
    }
    case OP_ANY_OF:
        return check_any_of(c, k, v, ip, kp, ds, ann);
    case OP_ONE_OF:
        return check_one_of(c, k, v, ip, kp, ds, ann);
    case OP_NOT: {
        bool record = c->record;
        c->record = false;
        kpath_t sk = {kp, "not", NULL, 0, 0, false};
        bool matched = eval(c, k->u.node, v, ip, &sk, ds, NULL);
        c->record = record;
        return !matched || fail(c, ip, kp, "not", "must not match the schema in \"not\"");
    }
    case OP_IF:
        return check_if(c, k, v, ip, kp, ds, ann);
    case OP_REF:
    case OP_DYNAMIC_REF: {
        kpath_t sk = {kp, k->name, NULL, 0, 0, false};
        const bk__node_t *t = k->op == OP_REF ? k->u.ref.target : dynamic_target(k, ds);
        return eval(c, t, v, ip, &sk, ds, ann);
    }
    case OP_UNEVALUATED_ITEMS:
        return !json_is_array(v) || check_unevaluated(c, k, v, ip, kp, ds, ann);
    case OP_UNEVALUATED_PROPERTIES:
        return !json_is_object(v) || check_unevaluated(c, k, v, ip, kp, ds, ann);
    }
    return true;
}

static bool eval_keywords(vctx_t *c, const bk__node_t *n, const json_t *v, const ipath_t *ip, const kpath_t *kp,
                          const dscope_t *ds, ann_t *ann)
{
    bool ok = true;
    for (size_t i = 0; i < n->nkws && !c->oom; i++)
        if (!check_kw(c, &n->kws[i], v, ip, kp, ds, ann) && !(ok = false, c->all))
            return false;
    return ok && !c->oom;
}

static bool eval(vctx_t *c, const bk__node_t *n, const json_t *v, const ipath_t *ip, const kpath_t *kp,
                 const dscope_t *ds, ann_t *ann)
{
    if (n->boolean >= 0)
        return n->boolean || fail(c, ip, kp, "false", "is not allowed here");
    if (ip->depth > c->s->max_depth)
        return fail(c, ip, kp, "depth", "is nested more than %u levels deep", c->s->max_depth);
    if (c->recursion >= c->s->max_recursion)
        return fail(c, ip, kp, "depth", "needs more than %u nested schema evaluations", c->s->max_recursion);
    c->recursion++;
    dscope_t scope = {ds, n->resource};
    if (ds && ds->res == n->resource)
        scope = *ds; /* same resource: the scope does not change */
    bool ok;
    size_t size = instance_size(v);
    if (n->collects && size) {
        /* This node's own set; it reaches the parent only if the node passes. */
        uint64_t small[4] = {0};
        ann_t mine = {size <= 256 ? small : calloc(ann_words(size), sizeof(uint64_t))};
        if (!mine.bits) {
            c->oom = true;
            c->recursion--;
            return false;
        }
        ok = eval_keywords(c, n, v, ip, kp, &scope, &mine);
        if (ok)
            ann_merge(ann, &mine, v);
        if (mine.bits != small)
            free(mine.bits);
    } else {
        ok = eval_keywords(c, n, v, ip, kp, &scope, ann);
    }
    c->recursion--;
    return ok;
}

/* ------------------------------------------------------------------ public */

int bk_schema_validate(const bk_schema_t *s, const json_t *instance, unsigned flags, bk_schema_errors_t **errors)
{
    if (errors)
        *errors = NULL;
    if (!s || !instance)
        return BK_EINVAL;
    vctx_t c = {.s = s, .all = (flags & BK_SCHEMA_ALL_ERRORS) != 0, .record = errors != NULL};
    if (errors && !(c.errs = calloc(1, sizeof *c.errs)))
        return BK_ENOMEM;
    ipath_t root = {NULL, NULL, 0, 0, 0};
    bool ok = eval(&c, s->root, instance, &root, NULL, NULL, NULL);
    scratch_give_back(c.rx);
    if (c.oom) {
        bk_schema_errors_free(c.errs);
        return BK_ENOMEM;
    }
    if (ok || !errors) {
        bk_schema_errors_free(c.errs);
        return ok ? BK_OK : BK_EINVAL;
    }
    *errors = c.errs;
    return BK_EINVAL;
}

size_t bk_schema_errors_count(const bk_schema_errors_t *errs)
{
    return errs ? errs->n : 0;
}

const bk_schema_error_t *bk_schema_errors_get(const bk_schema_errors_t *errs, size_t i)
{
    return errs && i < errs->n ? &errs->v[i] : NULL;
}

json_t *bk_schema_errors_json(const bk_schema_errors_t *errs)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && errs && i < errs->n; i++) {
        const bk_schema_error_t *e = &errs->v[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "instanceLocation", e->instance_location, "keywordLocation",
                              e->keyword_location, "keyword", e->keyword, "message", e->message);
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

void bk_schema_errors_free(bk_schema_errors_t *errs)
{
    if (!errs)
        return;
    for (size_t i = 0; i < errs->n; i++)
        free((char *)errs->v[i].instance_location);
    free(errs->v);
    free(errs);
}
