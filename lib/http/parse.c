/* Request head parsing (RFC 9112), strict: CRLF line ends, token methods and
 * header names, no obs-fold, no control characters in values; plus the decoding
 * helpers the request accessors share (percent-decoding, media types, the arena).
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/pct_int.h"
#include "http/http_int.h"

bool bk__is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A field-value byte: VCHAR, obs-text, SP or HTAB. */
static bool is_vchar(unsigned char c)
{
    return (c >= 0x21 && c != 0x7f) || c == ' ' || c == '\t';
}

/* Parses "HTTP/1.x" at p (8 bytes available); 0 or an error status. */
static int parse_version(const char *p, size_t len, int *minor)
{
    if (len != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' || p[5] > '9' ||
        p[7] < '0' || p[7] > '9')
        return 400;
    if (p[5] != '1')
        return 505;
    *minor = p[7] - '0';
    return 0;
}

int bk__http_parse_head(struct bk_req *req, size_t len)
{
    char *buf = req->head;
    char *end = buf + len; /* the head ends with CRLF CRLF */
    char *eol = memchr(buf, '\r', len);
    if (eol == NULL || eol + 1 >= end || eol[1] != '\n')
        return 400;

    /* request-line = method SP request-target SP HTTP-version */
    char *p = buf;
    while (p < eol && bk__is_tchar((unsigned char)*p))
        p++;
    if (p == buf || p >= eol || *p != ' ' || p - buf > 32)
        return 400;
    *p++ = '\0';
    req->method = buf;
    char *target = p;
    while (p < eol && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f)
        p++;
    if (p == target || p >= eol || *p != ' ')
        return 400;
    *p++ = '\0';
    int rc = parse_version(p, (size_t)(eol - p), &req->minor);
    if (rc != 0)
        return rc;
    if (target[0] == '*' && target[1] == '\0') {
        if (strcmp(req->method, "OPTIONS") != 0)
            return 400;
    } else if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
        /* absolute-form (RFC 9112 3.2.2): route on its path; the authority is the
         * client's business with its proxy. */
        char *auth = strchr(target, ':') + 3;
        char *slash = auth + strcspn(auth, "/?");
        if (slash == auth)
            return 400;
        if (*slash == '/') {
            target = slash;
        } else {
            /* "http://host?q": the path is "/"; shift the query down one byte
             * to make room for it (the scheme and host are long enough). */
            size_t qlen = strlen(slash);
            memmove(auth + 1, slash, qlen + 1);
            *auth = '/';
            target = auth;
        }
    } else if (target[0] != '/') {
        return 400; /* origin-form, absolute-form, or "*" for OPTIONS */
    }
    char *q = strchr(target, '?');
    char *frag = strchr(target, '#');
    if (frag != NULL)
        return 400; /* a fragment is never sent by a client */
    if (q != NULL) {
        *q = '\0';
        req->query = q + 1;
    } else {
        req->query = NULL;
    }
    req->path = target;
    req->head_method = strcmp(req->method, "HEAD") == 0;

    /* header-field = field-name ":" OWS field-value OWS */
    req->nhdrs = 0;
    p = eol + 2;
    while (p < end) {
        eol = memchr(p, '\r', (size_t)(end - p));
        if (eol == NULL || eol + 1 >= end || eol[1] != '\n')
            return 400;
        if (eol == p)
            break; /* the empty line */
        if (req->nhdrs == BK_HTTP_MAX_HEADERS)
            return 431;
        if (bk__http_parse_field(p, eol, &req->hdrs[req->nhdrs]) != 0)
            return 400;
        req->nhdrs++;
        p = eol + 2;
    }
    return 0;
}

int bk__http_parse_field(char *p, char *eol, struct hdr *out)
{
    char *name = p;
    while (p < eol && bk__is_tchar((unsigned char)*p))
        p++;
    if (p == name || p >= eol || *p != ':')
        return 400; /* no name, no colon, space before colon, or obs-fold */
    size_t nlen = (size_t)(p - name);
    *p++ = '\0';
    while (p < eol && (*p == ' ' || *p == '\t'))
        p++;
    char *value = p;
    for (char *v = p; v < eol; v++)
        if (!is_vchar((unsigned char)*v))
            return 400;
    char *vend = eol;
    while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
    *vend = '\0';
    *out = (struct hdr){name, value, nlen, (size_t)(vend - value)};
    return 0;
}


/* BWS = *( SP / HTAB ) */
static size_t skip_bws(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

static size_t skip_token(const char *s, size_t len, size_t i)
{
    while (i < len && bk__is_tchar((unsigned char)s[i]))
        i++;
    return i;
}

/* quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE, starting at the DQUOTE;
 * the index after the closing DQUOTE, or 0 when malformed. */
static size_t skip_quoted(const char *s, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (++i == len || !is_vchar((unsigned char)s[i]))
                return 0;
        } else if (!is_vchar(c)) {
            return 0; /* qdtext is a field-value byte less DQUOTE and backslash */
        }
    }
    return 0;
}

/* chunk = chunk-size [ chunk-ext ] CRLF
 * chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 * chunk-ext-val = token / quoted-string
 * Anything else (control bytes, a bare CR, stray text) is refused: a proxy that
 * reads such a line otherwise sees a request where we see an extension. */
int64_t bk__http_parse_chunk_line(const char *line, size_t len, size_t *ext_len)
{
    int64_t n = 0;
    size_t i = 0;
    for (; i < len && bk__hexval((unsigned char)line[i]) >= 0; i++) {
        if (i >= 15)
            return -1; /* too large for the body limit in any case */
        n = n * 16 + bk__hexval((unsigned char)line[i]);
    }
    if (i == 0)
        return -1;
    *ext_len = len - i;
    while (i < len) {
        i = skip_bws(line, len, i);
        if (i == len || line[i] != ';')
            return -1;
        i = skip_bws(line, len, i + 1);
        size_t name = i;
        if ((i = skip_token(line, len, i)) == name)
            return -1;
        size_t j = skip_bws(line, len, i);
        if (j < len && line[j] == '=') {
            i = skip_bws(line, len, j + 1);
            size_t val = i;
            if (i < len && line[i] == '"') {
                if ((i = skip_quoted(line, len, i)) == 0)
                    return -1;
            } else if ((i = skip_token(line, len, i)) == val) {
                return -1;
            }
        }
    }
    return n;
}

int bk__pct_decode(bk__arena_t *a, const char *s, size_t len, bool plus_space, const char **out)
{
    char *d = bk__arena_alloc(a, len + 1);
    if (d == NULL)
        return BK_ENOMEM;
    size_t n = 0;
    /* "%00" refused: it would cut the C string */
    if (!bk__pct_decode_into(s, len, BK__PCT_NO_NUL | (plus_space ? BK__PCT_PLUS_SPACE : 0), d, &n))
        return BK_EINVAL;
    d[n] = '\0';
    *out = d;
    return BK_OK;
}

bool bk__host_ok(const char *v)
{
    /* uri-host [ ":" port ]: reg-name, IPv4 or an IP-literal in brackets. */
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && strchr("-._~!$&'()*+,;=:[]%", c) == NULL)
            return false;
    }
    return true;
}

bool bk__is_json_type(const char *ctype)
{
    if (ctype == NULL)
        return false;
    size_t len = strcspn(ctype, ";");
    while (len > 0 && (ctype[len - 1] == ' ' || ctype[len - 1] == '\t'))
        len--;
    if (len == 16 && strncasecmp(ctype, "application/json", 16) == 0)
        return true;
    /* application/<anything>+json, e.g. application/merge-patch+json */
    return len > 17 && strncasecmp(ctype, "application/", 12) == 0 &&
           strncasecmp(ctype + len - 5, "+json", 5) == 0;
}

int bk__http_weight(const char *p, const char *end)
{
    for (;;) {
        while (p < end && bk__ows(*p))
            p++;
        if (p == end || *p != ';')
            return 1000;
        p++;
        while (p < end && bk__ows(*p))
            p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *e = semi ? semi : end;
        if (e - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            /* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
            const char *v = p + 2, *ve = e;
            while (ve > v && bk__ows(ve[-1]))
                ve--;
            if (v == ve || (*v != '0' && *v != '1') || (ve - v > 1 && (v[1] != '.' || ve - v > 5)))
                return 0;
            int w = *v == '1' ? 1000 : 0, scale = 100;
            for (const char *d = v + 2; d < ve; d++, scale /= 10) {
                if (*d < '0' || *d > '9' || (*v == '1' && *d != '0'))
                    return 0;
                w += (*d - '0') * scale;
            }
            return w;
        }
        p = e; /* another parameter: skipped */
    }
}

void bk__http_each_element(const bk_req_t *req, const char *name, bk__http_element_fn fn, void *ud)
{
    const struct hdr *h;
    for (size_t i = 0; (h = bk__req_header_next(req, name, &i)) != NULL;) {
        const char *p = h->value, *end = h->value + h->vlen;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *e = comma ? comma : end;
            while (p < e && bk__ows(*p))
                p++;
            const char *t = p;
            while (p < e && !bk__ows(*p) && *p != ';')
                p++;
            if (p > t)
                fn(t, (size_t)(p - t), bk__http_weight(p, e), ud);
            p = comma ? comma + 1 : end;
        }
    }
}
