/* The middleware chain of a routed request: one array per route, built at start,
 * walked by one loop on the handler's thread (the loop for an inline route, a
 * worker for a blocking one).
 *
 * The order (DESIGN.md, "The request path"; bk_http_middleware(3)):
 *   server stage, for every request, routed or not (dispatch.c): request id,
 *     then around everything the access log and metrics, security headers and
 *     CORS (answer headers added at completion);
 *   route chain, built here:
 *     1. rate limit   (mw_ratelimit.c)  429
 *     2. auth         (mw_auth.c)       401
 *     3. permission   (mw_permission.c) 403
 *     4. the server's middleware (bk_http_use), then the route's own
 *     5. validation   (mw_validate.c)   422, 415, 400
 *     6. owner        (mw_owner.c)      404
 *     then the handler.
 * The design lists the caller's middleware after the owner check; it stays
 * between permission and validation, where it has always run, because a host's
 * middleware may answer (or log) a request that would fail validation, and
 * moving it would change what such a host sees. A route without built-ins runs
 * only its user middleware: the chain holds nothing else.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"

int bk__chain_build(bk_http_server_t *srv, struct route *r)
{
    size_t nuser = r->internal ? 0 : srv->nmw + r->nmw;
    size_t n = r->nguard + nuser;
    free(r->chain);
    r->chain = NULL;
    r->nchain = 0;
    if (n == 0)
        return BK_OK;
    if ((r->chain = calloc(n, sizeof *r->chain)) == NULL)
        return BK_ENOMEM;
    /* Copied part by part; an empty part may have no array at all. */
    const struct {
        const bk_http_middleware_t *mw;
        size_t n;
    } part[] = {
        {r->guard, r->nguard_pre},
        {srv->mw, nuser ? srv->nmw : 0},
        {r->mw, nuser ? r->nmw : 0},
        {r->guard + r->nguard_pre, r->nguard - r->nguard_pre},
    };
    bk_http_middleware_t *w = r->chain;
    for (size_t i = 0; i < sizeof part / sizeof part[0]; i++)
        if (part[i].n > 0) {
            memcpy(w, part[i].mw, part[i].n * sizeof *w);
            w += part[i].n;
        }
    r->nchain = n;
    return BK_OK;
}

bool bk__chain_before(struct bk_req *req, const bk_http_middleware_t *mw, size_t n, size_t *ran)
{
    for (size_t i = 0; i < n; i++) {
        *ran = i + 1;
        if (mw[i].before != NULL && mw[i].before(req, mw[i].ud) != BK_HTTP_NEXT)
            return true;
    }
    return false;
}

void bk__chain_after(struct bk_req *req, const bk_http_middleware_t *mw, size_t ran)
{
    for (size_t i = ran; i-- > 0;)
        if (mw[i].after != NULL)
            mw[i].after(req, mw[i].ud);
}

/* The route chain, then the handler when no hook answered, then the after hooks
 * of those whose before ran (even when a later one answered). */
void bk__chain_run(struct bk_req *req)
{
    const struct route *r = req->route;
    /* A blocking request is away already; only a deferral made here (a handler
     * whose answer comes later) excuses the missing answer below. */
    bool away = bk__req_is_deferred(req);
    bool answered = bk__chain_before(req, r->chain, r->nchain, &req->mw_ran);
    if (!answered)
        r->fn(req, r->ud);
    if (req->status == 0 && bk__req_is_deferred(req) == away)
        bk_res_problem(req, 500, answered ? "a middleware stopped the request without an answer"
                                          : "the handler did not answer",
                       NULL);
    if (req->offload_fn == NULL) /* an offloaded request's run on its worker */
        bk__chain_after(req, r->chain, req->mw_ran);
}

/* The server stage, in the design's order: request id (before anything), then
 * security headers and CORS, whose after hooks add the answer's headers at
 * completion (reverse order: CORS, then security). The access log and the
 * metrics stay around everything, in the completion itself (dispatch.c). */
int bk__chain_build_server(bk_http_server_t *srv)
{
    srv->nstage = 0;
    srv->stage[srv->nstage++] = bk__mw_request_id(srv);
    if (srv->o.security_headers) {
        int rc = bk__mw_security(srv, &srv->stage[srv->nstage]);
        if (rc != BK_OK)
            return rc;
        srv->nstage++;
    }
    if (srv->cors_origins != NULL)
        srv->stage[srv->nstage++] = bk__mw_cors(srv);
    return BK_OK;
}
