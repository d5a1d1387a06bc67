/* The route table: a trie of path segments. Each node has sorted literal children
 * (binary search), at most one "{name}" child and at most one "{name...}" tail.
 * Lookup walks the path once, trying literal, then parameter, then tail at each
 * segment and backtracking only when a branch has no route for the method, so a
 * literal beats a parameter and a parameter beats a tail.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

struct rnode *bk__rnode_new(void)
{
    return calloc(1, sizeof(struct rnode));
}

void bk__route_free(struct route *r)
{
    free(r->method);
    free(r->template);
    free(r->permission);
    json_decref(r->doc);
    free(r->chain);
    for (size_t i = 0; i < r->nmw; i++)
        free((char *)r->mw[i].name);
    free(r->mw);
    for (size_t i = 0; i < r->nparams; i++)
        free(r->param_names[i]);
    free(r);
}

void bk__rnode_free(struct rnode *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        bk__rnode_free(n->kids[i]);
    free(n->kids);
    bk__rnode_free(n->param);
    bk__rnode_free(n->tail);
    free(n->seg);
    free(n->param_name);
    free(n->tail_name);
    free(n->allow);
    for (struct route *r = n->routes, *next; r != NULL; r = next) {
        next = r->next;
        bk__route_free(r);
    }
    free(n);
}

static int seg_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* Index of the literal child seg, or -(insertion point) - 1. */
static long kid_find(const struct rnode *n, const char *seg, size_t len)
{
    size_t lo = 0, hi = n->nkids;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = seg_cmp(n->kids[mid]->seg, n->kids[mid]->seglen, seg, len);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

static struct rnode *kid_add(struct rnode *n, const char *seg, size_t len)
{
    long at = kid_find(n, seg, len);
    if (at >= 0)
        return n->kids[at];
    size_t pos = (size_t)(-at - 1);
    struct rnode *k = bk__rnode_new();
    struct rnode **kids = realloc(n->kids, (n->nkids + 1) * sizeof *kids);
    if (k == NULL || kids == NULL || (k->seg = strndup(seg, len)) == NULL) {
        free(k);
        if (kids != NULL)
            n->kids = kids;
        return NULL;
    }
    k->seglen = len;
    n->kids = kids;
    memmove(kids + pos + 1, kids + pos, (n->nkids - pos) * sizeof *kids);
    kids[pos] = k;
    n->nkids++;
    return k;
}

/* A parameter name: [A-Za-z_][A-Za-z0-9_]*. */
static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* A literal segment: characters a request path may carry unencoded (RFC 3986 pchar
 * without '%'), so a template never needs decoding to be compared. */
static bool literal_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("%{}?#\"<>\\^`|", c) != NULL)
            return false;
    }
    return true;
}

/* Takes or checks the name of a parameter edge: one name per edge. */
static int edge_name(char **slot, const char *name, size_t len)
{
    if (*slot == NULL)
        return (*slot = strndup(name, len)) == NULL ? BK_ENOMEM : BK_OK;
    return strlen(*slot) == len && memcmp(*slot, name, len) == 0 ? BK_OK : BK_EEXIST;
}

int bk__router_add(struct rnode *root, struct route *r)
{
    const char *p = r->template;
    if (*p != '/')
        return BK_EINVAL;
    struct rnode *n = root;
    size_t depth = 0;
    if (strcmp(p, "/") == 0)
        p++; /* the root itself */
    while (*p == '/') {
        const char *seg = p + 1;
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (++depth > BK_HTTP_MAX_SEGMENTS)
            return BK_EINVAL;
        p = seg + len;
        int rc;
        if (len >= 2 && seg[0] == '{' && seg[len - 1] == '}') {
            bool tail = len >= 5 && memcmp(seg + len - 4, "...}", 4) == 0;
            size_t nlen = len - 2 - (tail ? 3 : 0);
            if (!name_ok(seg + 1, nlen) || r->nparams == BK_HTTP_MAX_PARAMS)
                return BK_EINVAL;
            for (size_t i = 0; i < r->nparams; i++)
                if (strlen(r->param_names[i]) == nlen && memcmp(r->param_names[i], seg + 1, nlen) == 0)
                    return BK_EINVAL; /* the same name twice */
            if ((r->param_names[r->nparams] = strndup(seg + 1, nlen)) == NULL)
                return BK_ENOMEM;
            r->nparams++;
            if (tail) {
                if (*p != '\0')
                    return BK_EINVAL; /* a tail is the last segment */
                if ((rc = edge_name(&n->tail_name, seg + 1, nlen)) != BK_OK)
                    return rc;
                if (n->tail == NULL && (n->tail = bk__rnode_new()) == NULL)
                    return BK_ENOMEM;
                n = n->tail;
            } else {
                if ((rc = edge_name(&n->param_name, seg + 1, nlen)) != BK_OK)
                    return rc;
                if (n->param == NULL && (n->param = bk__rnode_new()) == NULL)
                    return BK_ENOMEM;
                n = n->param;
            }
        } else {
            if (!literal_ok(seg, len))
                return BK_EINVAL;
            if ((n = kid_add(n, seg, len)) == NULL)
                return BK_ENOMEM;
        }
    }
    if (*p != '\0')
        return BK_EINVAL;
    for (struct route *e = n->routes; e != NULL; e = e->next)
        if (strcmp(e->method, r->method) == 0)
            return BK_EEXIST;
    /* Append, so Allow lists methods in registration order. */
    struct route **tailp = &n->routes;
    while (*tailp != NULL)
        tailp = &(*tailp)->next;
    *tailp = r;
    return BK_OK;
}

static bool has_method(const struct rnode *n, const char *m)
{
    for (const struct route *r = n->routes; r != NULL; r = r->next)
        if (strcmp(r->method, m) == 0)
            return true;
    return false;
}

int bk__router_finish(struct rnode *n, bk_http_server_t *srv)
{
    for (size_t i = 0; i < n->nkids; i++)
        if (bk__router_finish(n->kids[i], srv) != BK_OK)
            return BK_ENOMEM;
    if (n->param != NULL && bk__router_finish(n->param, srv) != BK_OK)
        return BK_ENOMEM;
    if (n->tail != NULL && bk__router_finish(n->tail, srv) != BK_OK)
        return BK_ENOMEM;
    if (n->routes == NULL)
        return BK_OK;
    for (struct route *r = n->routes; r != NULL; r = r->next)
        if (bk__chain_build(srv, r) != BK_OK)
            return BK_ENOMEM;
    size_t len = 0;
    for (const struct route *r = n->routes; r != NULL; r = r->next)
        len += strlen(r->method) + 2;
    len += sizeof ", HEAD, OPTIONS";
    free(n->allow);
    if ((n->allow = malloc(len)) == NULL)
        return BK_ENOMEM;
    char *w = n->allow;
    for (const struct route *r = n->routes; r != NULL; r = r->next)
        w += sprintf(w, "%s%s", w == n->allow ? "" : ", ", r->method);
    if (has_method(n, "GET") && !has_method(n, "HEAD"))
        w += sprintf(w, ", HEAD");
    if (!has_method(n, "OPTIONS"))
        sprintf(w, ", OPTIONS");
    return BK_OK;
}

/* The route of n that answers method: itself, GET for HEAD. */
static struct route *route_for(struct rnode *n, const char *method)
{
    struct route *get = NULL;
    for (struct route *r = n->routes; r != NULL; r = r->next) {
        if (strcmp(r->method, method) == 0)
            return r;
        if (strcmp(r->method, "GET") == 0)
            get = r;
    }
    return strcmp(method, "HEAD") == 0 ? get : NULL;
}

/* At node n with the rest of the path p (at a '/' or the end): true when a route
 * for the method is found (m->node, m->route, captures set). */
static bool walk(struct rnode *n, const char *p, const char *method, struct match *m,
                 size_t depth)
{
    if (*p == '\0') {
        if (n->routes != NULL) {
            if (m->any == NULL)
                m->any = n;
            if ((m->route = route_for(n, method)) != NULL) {
                m->node = n;
                return true;
            }
        }
        if (n->tail != NULL && n->tail->routes != NULL && m->ncap < BK_HTTP_MAX_PARAMS) {
            m->cap[m->ncap] = p;
            m->caplen[m->ncap++] = 0;
            if (walk(n->tail, p, method, m, depth + 1))
                return true;
            m->ncap--;
        }
        return false;
    }
    if (depth >= BK_HTTP_MAX_SEGMENTS)
        return false;
    const char *seg = p + 1;
    const char *end = strchr(seg, '/');
    size_t len = end ? (size_t)(end - seg) : strlen(seg);
    long k = kid_find(n, seg, len);
    if (k >= 0 && walk(n->kids[k], seg + len, method, m, depth + 1))
        return true;
    if (n->param != NULL && len > 0 && m->ncap < BK_HTTP_MAX_PARAMS) {
        m->cap[m->ncap] = seg;
        m->caplen[m->ncap++] = len;
        if (walk(n->param, seg + len, method, m, depth + 1))
            return true;
        m->ncap--;
    }
    if (n->tail != NULL && n->tail->routes != NULL && m->ncap < BK_HTTP_MAX_PARAMS) {
        size_t rest = strlen(seg);
        m->cap[m->ncap] = seg;
        m->caplen[m->ncap++] = rest;
        if (walk(n->tail, seg + rest, method, m, depth + 1))
            return true;
        m->ncap--;
    }
    return false;
}

void bk__router_match(struct rnode *root, const char *path, const char *method,
                      struct match *m)
{
    memset(m, 0, sizeof *m);
    if (strcmp(path, "/") == 0)
        path++;
    if (!walk(root, path, method, m, 0)) {
        m->node = NULL;
        m->route = NULL;
        m->ncap = 0;
    }
}
