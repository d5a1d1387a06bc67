/* The request-id built-in: every request, routed or not, gets an id before
 * anything else runs (bk_req_id, the X-Request-ID answer header, the access log).
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
static int request_id_before(bk_req_t *req, void *ud)
{
    (void)ud;
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
