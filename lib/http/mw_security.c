/* The security-headers built-in (bk_http_opts_t.security_headers,
 * hsts_max_age_ns): nosniff, DENY, no-referrer and HSTS on every answer,
 * formatted once at start, and Cache-Control: no-store unless the handler set
 * its own.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "http/http_int.h"

static void security_after(bk_req_t *req, void *ud)
{
    const bk_http_server_t *srv = ud;
    evbuffer_add(req->res_headers, srv->static_headers, srv->static_headers_len);
    if (!req->has_cache_control)
        evbuffer_add(req->res_headers, "Cache-Control: no-store\r\n",
                     sizeof "Cache-Control: no-store\r\n" - 1);
}

int bk__mw_security(bk_http_server_t *srv, bk_http_middleware_t *out)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
                     "Referrer-Policy: no-referrer\r\n");
    if (srv->o.hsts_max_age_ns > 0) /* the header counts whole seconds */
        snprintf(buf + n, sizeof buf - (size_t)n,
                 "Strict-Transport-Security: max-age=%lld; includeSubDomains\r\n",
                 (long long)(srv->o.hsts_max_age_ns / BK_NSEC_PER_SEC));
    if ((srv->static_headers = strdup(buf)) == NULL)
        return BK_ENOMEM;
    srv->static_headers_len = strlen(buf);
    *out = (bk_http_middleware_t){.name = "security-headers", .after = security_after, .ud = srv};
    return BK_OK;
}
