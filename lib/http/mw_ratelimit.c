/* The rate-limit guard (bk_http_route_opts_t.ratelimit): 429 over the limit,
 * the RateLimit headers on every answer it lets through.
 * SPDX-License-Identifier: MIT */
#include "http/http_int.h"

/* Nothing sleeps on the loop: an inline route gets one store round and a
 * conflict on a shared store costs one refusal (429); a blocking route (on a
 * worker) lets the limiter retry with its pauses. */
static int ratelimit_before(bk_req_t *req, void *ud)
{
    const struct route *r = ud;
    const char *key = r->ratelimit_key ? r->ratelimit_key(req, r->ratelimit_ud) : NULL;
    if (key == NULL || *key == '\0')
        key = bk_req_client(req);
    bk_ratelimit_result_t res;
    bool inline_route = !(r->flags & BK_HTTP_BLOCKING);
    int rc = bk_ratelimit_check(r->ratelimit, key, inline_route ? BK_RATELIMIT_NO_WAIT : 0, &res);
    if (rc == BK_EBUSY && inline_route) {
        bk_res_problem(req, 429, "rate limit contended", NULL);
        return BK_HTTP_DONE;
    }
    if (rc != BK_OK)
        return BK_HTTP_NEXT; /* a broken store must not take the service down with it */
    char policy[128], limit[128], retry[32];
    if (bk_ratelimit_headers(r->ratelimit, &res, policy, limit, NULL, sizeof policy) == BK_OK) {
        bk_res_header(req, "RateLimit-Policy", policy);
        bk_res_header(req, "RateLimit", limit);
    }
    if (res.allowed)
        return BK_HTTP_NEXT;
    if (bk_ratelimit_headers(r->ratelimit, &res, NULL, NULL, retry, sizeof retry) == BK_OK)
        bk_res_header(req, "Retry-After", retry);
    bk_res_problem(req, 429, "rate limit exceeded", NULL);
    return BK_HTTP_DONE;
}

bk_http_middleware_t bk__mw_ratelimit(struct route *r)
{
    return (bk_http_middleware_t){.name = "ratelimit", .before = ratelimit_before, .ud = r};
}
