/* The request-id built-in: every request, routed or not, gets an id and a
 * trace span before anything else runs (bk_req_id, bk_req_trace, the
 * X-Request-ID answer header, the access log).
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "http/http_int.h"

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == ':';
}

/* The client's X-Request-ID when it is 1..128 safe characters (it is echoed and
 * logged), otherwise the loop's random prefix and a counter. */
/* W3C Trace Context: a request with one valid traceparent continues its
 * trace (with its tracestate, the headers' values joined as the
 * recommendation says), any other begins one. Nothing invalid is kept. */
static void trace_begin(bk_req_t *req)
{
    const struct hdr *h;
    const char *parent = NULL, *state = NULL;
    size_t nparent = 0, nstate = 0, state_len = 0;
    for (size_t i = 0; (h = bk__req_header_next(req, "traceparent", &i)) != NULL; nparent++)
        parent = h->value;
    for (size_t i = 0; (h = bk__req_header_next(req, "tracestate", &i)) != NULL; nstate++) {
        state = h->value;
        state_len += h->vlen + 1;
    }
    char *joined = NULL;
    if (nstate > 1 && (joined = bk__arena_alloc(&req->arena, state_len)) != NULL) {
        size_t n = 0;
        for (size_t i = 0; (h = bk__req_header_next(req, "tracestate", &i)) != NULL;) {
            if (n > 0)
                joined[n++] = ',';
            memcpy(joined + n, h->value, h->vlen);
            n += h->vlen;
        }
        joined[n] = '\0';
    }
    if (nstate > 1)
        state = joined; /* NULL on ENOMEM: no state, rather than a part of it */
    if (nparent == 1 && bk_trace_parse(parent, state, &req->trace) == BK_OK)
        return;
    if (bk_trace_new(&req->trace) != BK_OK)
        memset(&req->trace, 0, sizeof req->trace); /* no randomness: no ids, "" in the log */
}

static int request_id_before(bk_req_t *req, void *ud)
{
    (void)ud;
    trace_begin(req);
    const char *in = bk_req_header(req, "X-Request-ID");
    if (in != NULL) {
        size_t n = 0;
        while (n <= BK_HTTP_REQUEST_ID_MAX && in[n] != '\0' && id_char(in[n]))
            n++;
        if (n > 0 && n <= BK_HTTP_REQUEST_ID_MAX && in[n] == '\0') {
            memcpy(req->id, in, n + 1);
            return BK_HTTP_NEXT;
        }
    }
    struct loop *l = req->loop;
    snprintf(req->id, sizeof req->id, "%s-%08llx", l->id_prefix,
             (unsigned long long)++l->id_seq);
    return BK_HTTP_NEXT;
}

bk_http_middleware_t bk__mw_request_id(bk_http_server_t *srv)
{
    (void)srv;
    return (bk_http_middleware_t){.name = "request-id", .before = request_id_before};
}
