/* gzip of answers (RFC 9110 8.4.1.3, RFC 1952), when the server is asked to
 * and the client accepts it: one deflate stream per loop, reset per answer, so
 * that an answer costs the compression and no allocation.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "http/http_int.h"

struct gzip_offer {
    int gzip, star; /* -1 unnamed, 0 refused, 1 accepted */
};

static void gzip_element(const char *t, size_t n, int weight, void *ud)
{
    struct gzip_offer *o = ud;
    bool yes = weight > 0;
    if ((n == 4 && strncasecmp(t, "gzip", 4) == 0) || (n == 6 && strncasecmp(t, "x-gzip", 6) == 0))
        o->gzip = o->gzip == 1 ? 1 : yes;
    else if (n == 1 && *t == '*')
        o->star = yes;
}

/* Accept-Encoding (every line) names gzip (or x-gzip), or "*", with a weight
 * above 0, and no explicit gzip;q=0 refuses it. */
static bool accepts_gzip(const bk_req_t *req)
{
    struct gzip_offer o = {-1, -1};
    bk__http_each_element(req, "Accept-Encoding", gzip_element, &o);
    return o.gzip == 1 || (o.gzip == -1 && o.star == 1);
}

/* Types that are text or text-like; everything else is compressed already
 * or not worth it. */
static bool compressible(const char *ctype)
{
    if (ctype == NULL)
        return false;
    size_t n = strcspn(ctype, ";");
    if (strncasecmp(ctype, "text/", 5) == 0)
        return true;
    static const char *const types[] = {"application/json", "application/problem+json", "application/xml",
                                        "application/javascript", "application/wasm", "application/yaml",
                                        "image/svg+xml", "application/manifest+json"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (n == strlen(types[i]) && strncasecmp(ctype, types[i], n) == 0)
            return true;
    /* application/<x>+json and +xml */
    return strncasecmp(ctype, "application/", 12) == 0 && n > 5 &&
           (strncasecmp(ctype + n - 5, "+json", 5) == 0 || strncasecmp(ctype + n - 4, "+xml", 4) == 0);
}

/* Deflates req->res_body into a gzip member, replacing it only when the whole
 * of it went in. */
static int deflate_body(struct loop *loop, bk_req_t *req, int level)
{
    if (loop->gz == NULL) {
        z_stream *z = calloc(1, sizeof *z);
        if (z == NULL || deflateInit2(z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(z);
            return BK_ENOMEM;
        }
        loop->gz = z;
    } else if (deflateReset(loop->gz) != Z_OK) {
        return BK_ENOMEM;
    }
    z_stream *z = loop->gz;
    int nv = evbuffer_peek(req->res_body, -1, NULL, NULL, 0);
    struct evbuffer_iovec stack[16], *in = nv <= 16 ? stack : malloc((size_t)nv * sizeof *in);
    struct evbuffer *out = evbuffer_new();
    int rc = in != NULL && out != NULL && nv > 0 ? BK_OK : BK_ENOMEM;
    if (rc == BK_OK && evbuffer_peek(req->res_body, -1, NULL, in, nv) != nv)
        rc = BK_ENOMEM;
    for (int i = 0; rc == BK_OK && i < nv; i++) {
        z->next_in = in[i].iov_base;
        z->avail_in = (uInt)in[i].iov_len;
        int flush = i == nv - 1 ? Z_FINISH : Z_NO_FLUSH, zr;
        do { /* until this piece is in (and, for the last, the stream ended) */
            struct evbuffer_iovec v;
            if (evbuffer_reserve_space(out, 16384, &v, 1) < 1) {
                rc = BK_ENOMEM;
                break;
            }
            z->next_out = v.iov_base;
            z->avail_out = (uInt)v.iov_len;
            zr = deflate(z, flush);
            v.iov_len -= z->avail_out;
            evbuffer_commit_space(out, &v, 1);
            if (zr == Z_STREAM_ERROR)
                rc = BK_ENOMEM;
        } while (rc == BK_OK && (z->avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END)));
    }
    if (rc == BK_OK) {
        evbuffer_drain(req->res_body, evbuffer_get_length(req->res_body));
        evbuffer_add_buffer(req->res_body, out);
    }
    if (in != stack)
        free(in);
    if (out != NULL)
        evbuffer_free(out);
    return rc;
}

bool bk__gzip_answer(struct loop *loop, bk_req_t *req)
{
    const bk_http_server_t *srv = req->srv;
    size_t len = evbuffer_get_length(req->res_body);
    if (srv->o.gzip_min_bytes == 0 || len < srv->o.gzip_min_bytes || req->no_gzip || req->status == 206 ||
        req->status < 200 || req->status == 204 || req->has_content_encoding || !compressible(req->ctype))
        return false;
    /* The answer depends on Accept-Encoding whether or not this one is gzipped. */
    evbuffer_add(req->res_headers, "Vary: Accept-Encoding\r\n", 23);
    if (!accepts_gzip(req))
        return false;
    int level = srv->o.gzip_level >= 1 && srv->o.gzip_level <= 9 ? srv->o.gzip_level : 1;
    if (deflate_body(loop, req, level) != BK_OK)
        return false; /* the body as it was: uncompressed is always an answer */
    evbuffer_add(req->res_headers, "Content-Encoding: gzip\r\n", 24);
    return true; /* the head makes the ETag weak */
}

void bk__gzip_free(struct loop *loop)
{
    if (loop->gz != NULL) {
        deflateEnd(loop->gz);
        free(loop->gz);
        loop->gz = NULL;
    }
}
