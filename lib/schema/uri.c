/* RFC 3986 reference resolution for $id and $ref. Only what schema identifiers
 * need: split, resolve (section 5.2), remove dot segments; no normalisation of
 * case or percent-encoding, as JSON Schema compares identifiers as strings.
 * SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

typedef struct span {
    const char *p;
    size_t n;
    bool defined;
} span_t;

typedef struct parts {
    span_t scheme, authority, path, query, fragment;
} parts_t;

static size_t scheme_len(const char *s)
{
    if (!isalpha((unsigned char)s[0]))
        return 0;
    size_t i = 1;
    while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
        i++;
    return s[i] == ':' ? i : 0;
}

bool bk__uri_has_scheme(const char *uri)
{
    return scheme_len(uri) > 0;
}

static void split(const char *s, parts_t *u)
{
    memset(u, 0, sizeof *u);
    size_t n = scheme_len(s);
    if (n) {
        u->scheme = (span_t){s, n, true};
        s += n + 1;
    }
    if (s[0] == '/' && s[1] == '/') {
        s += 2;
        size_t a = strcspn(s, "/?#");
        u->authority = (span_t){s, a, true};
        s += a;
    }
    size_t p = strcspn(s, "?#");
    u->path = (span_t){s, p, true};
    s += p;
    if (*s == '?') {
        size_t q = strcspn(s + 1, "#");
        u->query = (span_t){s + 1, q, true};
        s += 1 + q;
    }
    if (*s == '#')
        u->fragment = (span_t){s + 1, strlen(s + 1), true};
}

/* Section 5.2.4, reading in[0..n) (which it may overwrite: "replace the prefix
 * with /" is done in place) and writing out (at least n + 1 bytes). */
static size_t remove_dots(char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    while (i < n) {
        char *s = in + i;
        size_t left = n - i;
        if (left >= 3 && memcmp(s, "../", 3) == 0) {
            i += 3;
        } else if (left >= 2 && memcmp(s, "./", 2) == 0) {
            i += 2;
        } else if (left >= 3 && memcmp(s, "/./", 3) == 0) {
            i += 2;
        } else if (left == 2 && memcmp(s, "/.", 2) == 0) {
            s[1] = '/';
            i += 1;
        } else if ((left >= 4 && memcmp(s, "/../", 4) == 0) || (left == 3 && memcmp(s, "/..", 3) == 0)) {
            if (left == 3) {
                s[2] = '/';
                i += 2;
            } else {
                i += 3;
            }
            while (o > 0 && out[o - 1] != '/') /* drop the last output segment */
                o--;
            if (o > 0)
                o--;
        } else if ((left == 1 && s[0] == '.') || (left == 2 && memcmp(s, "..", 2) == 0)) {
            i = n;
        } else {
            /* Move the first segment, with its leading "/" if any, to the output. */
            size_t k = s[0] == '/' ? 1 : 0;
            while (k < left && s[k] != '/')
                k++;
            memcpy(out + o, s, k);
            o += k;
            i += k;
        }
    }
    out[o] = '\0';
    return o;
}

static char *append(char *o, span_t s, const char *prefix, const char *suffix)
{
    if (!s.defined)
        return o;
    size_t np = strlen(prefix), ns = strlen(suffix);
    memcpy(o, prefix, np);
    memcpy(o + np, s.p, s.n);
    memcpy(o + np + s.n, suffix, ns);
    return o + np + s.n + ns;
}

char *bk__uri_resolve(const char *base, const char *ref)
{
    parts_t b, r, t;
    split(base, &b);
    split(ref, &r);
    size_t cap = strlen(base) + strlen(ref) + 8;
    char *merged = malloc(cap), *path = malloc(cap), *out = malloc(cap);
    if (!merged || !path || !out) {
        free(merged), free(path), free(out);
        return NULL;
    }
    memset(&t, 0, sizeof t);
    if (r.scheme.defined || r.authority.defined) {
        t.scheme = r.scheme.defined ? r.scheme : b.scheme;
        t.authority = r.authority;
        memcpy(merged, r.path.p, r.path.n);
        t.path = (span_t){path, remove_dots(merged, r.path.n, path), true};
        t.query = r.query;
    } else {
        t.scheme = b.scheme;
        t.authority = b.authority;
        if (r.path.n == 0) {
            t.path = b.path;
            t.query = r.query.defined ? r.query : b.query;
        } else {
            size_t m = 0;
            if (r.path.p[0] == '/') {
                memcpy(merged, r.path.p, r.path.n);
                m = r.path.n;
            } else if (b.authority.defined && b.path.n == 0) {
                merged[0] = '/';
                memcpy(merged + 1, r.path.p, r.path.n);
                m = r.path.n + 1;
            } else {
                size_t keep = b.path.n; /* up to and with the base's last "/" */
                while (keep > 0 && b.path.p[keep - 1] != '/')
                    keep--;
                memcpy(merged, b.path.p, keep);
                memcpy(merged + keep, r.path.p, r.path.n);
                m = keep + r.path.n;
            }
            /* A relative result (no base) keeps its leading "../": nothing to climb. */
            if (!t.scheme.defined && !t.authority.defined && merged[0] != '/') {
                memcpy(path, merged, m);
                path[m] = '\0';
                t.path = (span_t){path, m, true};
            } else {
                t.path = (span_t){path, remove_dots(merged, m, path), true};
            }
            t.query = r.query;
        }
    }
    t.fragment = r.fragment.n ? r.fragment : (span_t){0};
    char *o = out;
    o = append(o, t.scheme, "", ":");
    o = append(o, t.authority, "//", "");
    o = append(o, t.path, "", "");
    o = append(o, t.query, "?", "");
    o = append(o, t.fragment, "#", "");
    *o = '\0';
    free(merged);
    free(path);
    return out;
}
