/* The authentication guard (bk_http_route_opts_t.auth): a bearer token
 * verified into the request's claims, 401 with the RFC 6750 challenge otherwise.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/http_int.h"

/* 401 with the RFC 6750 challenge: no error code when no token came (code
 * BK_ENOTFOUND). A token refused with a 401 code (BK_EJWT_*) is answered by
 * bk_res_error, so that its "code" names the reason; one refused with another
 * code (a revocation lookup that failed) is a 401 all the same. */
static void unauthorized(struct bk_req *req, int code)
{
    char challenge[160];
    if (code == BK_ENOTFOUND)
        snprintf(challenge, sizeof challenge, "Bearer");
    else
        snprintf(challenge, sizeof challenge, "Bearer error=\"invalid_token\", error_description=\"%s\"",
                 bk_strerror(code));
    bk_res_header(req, "WWW-Authenticate", challenge);
    if (code != BK_ENOTFOUND && bk_http_status_of(code) == 401)
        bk_res_error(req, code, NULL);
    else
        bk_res_problem(req, 401, code == BK_ENOTFOUND ? "a bearer token is required" : bk_strerror(code),
                       NULL);
}

static int auth_before(bk_req_t *req, void *ud)
{
    const struct route *r = ud;
    const char *h = bk_req_header(req, "Authorization");
    /* RFC 6750 section 2.1: "Bearer" (any case), one space, the token. */
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0 || h[7] == '\0') {
        unauthorized(req, h == NULL ? BK_ENOTFOUND : BK_EJWT_MALFORMED);
        return BK_HTTP_DONE;
    }
    int rc = bk_jwt_verify(r->auth->keys, r->auth->verify, h + 7, strlen(h + 7), &req->claims);
    if (rc == BK_ENOMEM) {
        bk_res_error(req, rc, "out of memory while verifying the token");
        return BK_HTTP_DONE;
    }
    if (rc != BK_OK) {
        unauthorized(req, rc);
        return BK_HTTP_DONE;
    }
    return BK_HTTP_NEXT;
}

bk_http_middleware_t bk__mw_auth(struct route *r)
{
    return (bk_http_middleware_t){.name = "auth", .before = auth_before, .ud = r};
}
