/* Conditional requests (RFC 9110, section 13): If-Match and If-None-Match
 * against the entity tag of the representation a handler is about to answer,
 * so that a client revalidates with 304 and a write loses no update (412).
 * SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <string.h>

#include "http/http_int.h"

/* etagc = %x21 / %x23-7E / obs-text */
static bool etagc(unsigned char c) { return c == 0x21 || (c >= 0x23 && c != 0x7f); }

struct etag {
    const char *opaque; /* from the opening quote to the closing one, both in */
    size_t len;
    bool weak;
};

/* entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, at *p (before end); *p moves past it. */
static bool parse_etag(const char **p, const char *end, struct etag *t)
{
    const char *s = *p;
    t->weak = end - s >= 2 && s[0] == 'W' && s[1] == '/';
    if (t->weak)
        s += 2;
    if (s >= end || *s != '"')
        return false;
    const char *q = s + 1;
    while (q < end && etagc((unsigned char)*q))
        q++;
    if (q >= end || *q != '"')
        return false;
    t->opaque = s;
    t->len = (size_t)(q + 1 - s);
    *p = q + 1;
    return true;
}

/* The handler's tag: one whole entity-tag, or NULL (no current representation). */
static bool handler_etag(const char *etag, struct etag *t)
{
    if (etag == NULL)
        return true;
    const char *p = etag, *end = etag + strlen(etag);
    return parse_etag(&p, end, t) && p == end;
}

enum outcome { NO_HEADER, MATCHED, NOT_MATCHED, INVALID };

/* Every header line named name, as one list ( "*" / 1#entity-tag ): whether a
 * member matches cur (NULL: there is no current representation, which "*"
 * does not match either), by the strong or the weak comparison. Empty list
 * members are allowed (RFC 9110, 5.6.1). */
static enum outcome list_match(const bk_req_t *req, const char *name, const struct etag *cur, bool strong)
{
    enum outcome out = NO_HEADER;
    bool matched = false;
    const struct hdr *h;
    for (size_t i = 0; (h = bk__req_header_next(req, name, &i)) != NULL;) {
        out = NOT_MATCHED;
        const char *p = h->value, *end = h->value + h->vlen;
        for (;;) {
            while (p < end && (bk__ows(*p) || *p == ','))
                p++;
            if (p >= end)
                break;
            struct etag t;
            if (*p == '*') {
                p++;
                matched |= cur != NULL;
            } else if (parse_etag(&p, end, &t)) {
                matched |= cur != NULL && t.len == cur->len && memcmp(t.opaque, cur->opaque, t.len) == 0 &&
                           (!strong || (!t.weak && !cur->weak));
            } else {
                return INVALID;
            }
            while (p < end && bk__ows(*p))
                p++;
            if (p < end && *p != ',')
                return INVALID;
        }
    }
    return out == NO_HEADER ? NO_HEADER : matched ? MATCHED : NOT_MATCHED;
}

static bool bad_etag(bk_req_t *req)
{
    bk_res_problem(req, 500, "the handler's entity tag is not a valid entity-tag (\"...\" or W/\"...\")", NULL);
    return true;
}

bool bk_req_if_match(bk_req_t *req, const char *etag)
{
    struct etag cur;
    if (req == NULL)
        return false;
    if (!handler_etag(etag, &cur))
        return bad_etag(req);
    enum outcome o = list_match(req, "If-Match", etag ? &cur : NULL, true);
    if (o == NO_HEADER || o == MATCHED)
        return false;
    /* Not matched, or not understood: a write must not go ahead on a guess. */
    bk_res_problem(req, 412,
                   o == INVALID ? "If-Match is not a list of entity tags"
                                : "the representation is not the one If-Match names (it has changed)",
                   NULL);
    return true;
}

bool bk_req_if_none_match(bk_req_t *req, const char *etag)
{
    struct etag cur;
    if (req == NULL)
        return false;
    if (!handler_etag(etag, &cur))
        return bad_etag(req);
    if (etag != NULL && bk_res_header(req, "ETag", etag) != BK_OK)
        return bad_etag(req); /* obs-text it cannot send? never: etagc excludes CR and LF */
    /* A field that is not a list of entity tags is ignored: the full answer
     * is always a safe one to a read. */
    if (list_match(req, "If-None-Match", etag ? &cur : NULL, false) != MATCHED)
        return false;
    if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)
        bk_res_bytes(req, 304, NULL, NULL, 0);
    else
        bk_res_problem(req, 412, "If-None-Match names the current representation", NULL);
    return true;
}
