/* The CORS built-in (bk_http_opts_t.cors_*): the preflight answer (routing finds
 * an OPTIONS with Origin and Access-Control-Request-Method, dispatch.c), and the
 * Access-Control-Allow-Origin headers on every other answer to an allowed origin.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "http/http_int.h"

static const char *allowed_origin(const bk_http_server_t *srv, const char *origin)
{
    if (origin == NULL || srv->cors_origins == NULL)
        return NULL;
    if (srv->cors_any)
        return srv->o.cors_credentials ? origin : "*";
    for (char **o = srv->cors_origins; *o != NULL; o++)
        if (strcmp(*o, origin) == 0)
            return origin;
    return NULL;
}

static void cors_headers(struct bk_req *req, const char *allow)
{
    bk_res_header(req, "Access-Control-Allow-Origin", allow);
    if (strcmp(allow, "*") != 0)
        bk_res_header(req, "Vary", "Origin");
    if (req->srv->o.cors_credentials)
        bk_res_header(req, "Access-Control-Allow-Credentials", "true");
}

static bool method_listed(const char *allow, const char *method)
{
    size_t mlen = strlen(method);
    for (const char *p = allow; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len == mlen && strncmp(p, method, mlen) == 0)
            return true;
        p += len;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return false;
}

void bk__cors_preflight(struct bk_req *req, const struct rnode *node)
{
    bk_http_server_t *srv = req->srv;
    const char *allow = allowed_origin(srv, bk_req_header(req, "Origin"));
    const char *want = bk_req_header(req, "Access-Control-Request-Method");
    req->cors_done = true; /* the answer carries its own CORS headers */
    if (allow == NULL) {
        bk_res_problem(req, 403, "origin not allowed by the CORS policy", NULL);
        return;
    }
    if (!method_listed(node->allow, want)) {
        bk_res_problem(req, 403, "method not allowed by the CORS policy", NULL);
        return;
    }
    char age[24]; /* the header counts whole seconds */
    snprintf(age, sizeof age, "%lld", (long long)(srv->o.cors_max_age_ns / BK_NSEC_PER_SEC));
    cors_headers(req, allow);
    bk_res_header(req, "Access-Control-Allow-Methods", node->allow);
    bk_res_header(req, "Access-Control-Allow-Headers", srv->cors_headers);
    bk_res_header(req, "Access-Control-Max-Age", age);
    bk_res_bytes(req, 204, NULL, NULL, 0);
}

static void cors_after(bk_req_t *req, void *ud)
{
    const bk_http_server_t *srv = ud;
    if (req->cors_done)
        return;
    const char *allow = allowed_origin(srv, bk_req_header(req, "Origin"));
    if (allow != NULL) {
        cors_headers(req, allow);
        bk_res_header(req, "Access-Control-Expose-Headers", "X-Request-ID");
    }
}

bk_http_middleware_t bk__mw_cors(bk_http_server_t *srv)
{
    return (bk_http_middleware_t){.name = "cors", .after = cors_after, .ud = srv};
}
