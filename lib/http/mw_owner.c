/* The ownership guard (bk_http_route_opts_t.owner): 404 for a resource that is
 * not the caller's, so that it is not even revealed to exist.
 * SPDX-License-Identifier: MIT */
#include "http/http_int.h"

static int owner_before(bk_req_t *req, void *ud)
{
    const struct route *r = ud;
    if (r->owner(req, bk_req_claims(req), r->owner_ud) == BK_OK)
        return BK_HTTP_NEXT;
    bk_res_problem(req, 404, "no such resource", NULL);
    return BK_HTTP_DONE;
}

bk_http_middleware_t bk__mw_owner(struct route *r)
{
    return (bk_http_middleware_t){.name = "owner", .before = owner_before, .ud = r};
}
