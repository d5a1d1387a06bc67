/* From a parsed request to its answer: the server stage (request id), routing
 * (404, 405, OPTIONS, CORS preflight), parameter and query decoding, the route
 * chain and handler (chain.c) inline or on the worker pool, then the server
 * stage's answer headers (CORS, security headers), the access log and the
 * metrics. The connection is reached through req->ops only: conn.c calls into
 * dispatch, never the reverse.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/utf8_int.h"
#include "http/http_int.h"
#include "log/line_int.h"

/* ------------------------------------------------------------------ query */
static int parse_query(struct bk_req *req)
{
    const char *q = req->query;
    if (q == NULL || *q == '\0')
        return BK_OK;
    while (*q != '\0') {
        size_t len = strcspn(q, "&");
        if (len > 0) {
            size_t klen = strcspn(q, "=");
            if (klen > len)
                klen = len;
            const char *k, *v;
            int rc = bk__pct_decode(&req->arena, q, klen, true, &k);
            if (rc == BK_OK)
                rc = klen < len ? bk__pct_decode(&req->arena, q + klen + 1, len - klen - 1, true, &v)
                                : bk__pct_decode(&req->arena, "", 0, true, &v);
            if (rc != BK_OK)
                return rc;
            if (req->nquery == req->query_cap) {
                size_t cap = req->query_cap ? req->query_cap * 2 : 8;
                struct qparam *np = realloc(req->query_params, cap * sizeof *np);
                if (np == NULL)
                    return BK_ENOMEM;
                req->query_params = np;
                req->query_cap = cap;
            }
            req->query_params[req->nquery++] = (struct qparam){k, v};
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return BK_OK;
}

/* Answers 400 when a decoded parameter is not UTF-8 (where names the place, "path"
 * or "query"): a handler that puts it into JSON could not, and would fail with a
 * 500. A route with BK_HTTP_RAW_PARAMS takes any bytes. False when answered. */
static bool param_utf8(struct bk_req *req, const char *where, const char *name, const char *value)
{
    if ((req->route->flags & BK_HTTP_RAW_PARAMS) || bk__utf8_valid(value, strlen(value)))
        return true;
    /* The name itself may be the bad part (a query name): quote it repaired. */
    char *quoted = bk__utf8_repair(name, strnlen(name, 100), NULL);
    char detail[400], loc[320];
    snprintf(detail, sizeof detail, "%s parameter \"%s\" is not valid UTF-8", where,
             quoted ? quoted : "?");
    snprintf(loc, sizeof loc, "%s.%s", where, quoted ? quoted : "?");
    free(quoted);
    bk_res_problem(req, 400, detail,
                   json_pack("[{s:s, s:s, s:s}]", "loc", loc, "msg", "not valid UTF-8", "type",
                             "encoding"));
    return false;
}

/* Decodes the path parameters and the query: false when answered (400). */
static bool decode_params(struct bk_req *req, const struct match *m)
{
    const struct route *r = req->route;
    for (size_t i = 0; i < m->ncap; i++) {
        if (bk__pct_decode(&req->arena, m->cap[i], m->caplen[i], false, &req->params[i]) != BK_OK) {
            bk_res_problem(req, 400, "invalid percent-encoding in the path", NULL);
            return false;
        }
        if (!param_utf8(req, "path", r->param_names[i], req->params[i]))
            return false;
    }
    int rc = parse_query(req);
    if (rc != BK_OK) {
        if (rc == BK_ENOMEM)
            bk_res_error(req, rc, NULL);
        else
            bk_res_problem(req, 400, "invalid percent-encoding in the query", NULL);
        return false;
    }
    for (size_t i = 0; i < req->nquery; i++) {
        const struct qparam *q = &req->query_params[i];
        if (!param_utf8(req, "query", q->name, q->name) ||
            !param_utf8(req, "query", q->name, q->value))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------ blocking */
/* The chain (chain.c) runs on a worker; the answer completes on the loop. */
static void blocking_work(void *arg)
{
    bk__chain_run(arg);
}

static void blocking_done(int status, void *arg)
{
    struct bk_req *req = arg;
    if (!bk__req_resume(req))
        return; /* the client went away: the request is freed */
    if (status != BK_OK && req->status == 0) /* BK_ECANCELED: 503, Retry-After */
        bk_res_error(req, status, "the server is shutting down");
    bk__req_complete(req);
}

/* ------------------------------------------------------------------ offload */
/* The rest of an inline route's request, on a worker: the handler's
 * continuation, then the route's after hooks (chain.c skipped them). */
static void offload_work(void *arg)
{
    struct bk_req *req = arg;
    req->offload_fn(req, req->offload_ud);
    if (req->status == 0)
        bk_res_problem(req, 500, "the handler did not answer", NULL);
    bk__chain_after(req, req->route->chain, req->mw_ran);
}

int bk_req_offload(bk_req_t *req, bk_http_handler_fn fn, void *ud)
{
    /* Only an OFFLOAD route's handler (never a blocking one: bk_http_route refuses
     * both flags), on the loop, before any answer; a route without the flag may
     * have no pool, and a deferred request is away already. */
    if (req == NULL || fn == NULL || req->route == NULL || !(req->route->flags & BK_HTTP_OFFLOAD) ||
        bk__req_is_deferred(req) || req->status != 0)
        return BK_EINVAL;
    req->offload_fn = fn;
    req->offload_ud = ud;
    bk__req_defer(req); /* before the worker can look */
    int rc = bk_workers_submit(req->srv->workers, offload_work, blocking_done, req, req->loop->base);
    if (rc == BK_OK)
        return BK_OK; /* blocking_done completes it on this loop */
    /* Never gone: the loop has not run since. The request stays the handler's,
     * answered now, and completes as an inline one does. */
    bk__req_resume(req);
    bk__req_defer_reset(req);
    req->offload_fn = NULL;
    bk_res_error(req, rc, rc == BK_EBUSY ? "the server is busy" : "the server is shutting down");
    return rc;
}

/* ------------------------------------------------------------------ completion */
static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "other"; /* a client cannot grow the series set with made-up methods */
}

/* http_requests_total{method,route,status} for this answer. Series are looked up
 * in the registry once per loop and kept in a small direct-mapped cache: the
 * registry's lookup hashes the labels under a lock, this is a pointer compare. */
static bk_counter_t *requests_counter(struct bk_req *req, const char *method)
{
    struct loop *loop = req->loop;
    const struct route *label = req->label;
    uintptr_t h = ((uintptr_t)label >> 4) ^ ((uintptr_t)method >> 3) ^ (uintptr_t)req->status * 31u;
    struct counter_slot *slot = &loop->counters[h % BK_HTTP_COUNTER_CACHE];
    if (slot->c != NULL && slot->label == label && slot->method == method &&
        slot->status == req->status)
        return slot->c;
    char status[8];
    snprintf(status, sizeof status, "%d", req->status);
    bk_counter_t *c;
    if (bk_metric_counter(req->srv->requests_total,
                          (const char *[]){method, label ? label->template : "unmatched", status,
                                           NULL},
                          &c) != BK_OK)
        return NULL;
    *slot = (struct counter_slot){label, method, req->status, c};
    return c;
}

void bk__req_complete(struct bk_req *req)
{
    bk_http_server_t *srv = req->srv;
    bk__chain_after(req, srv->stage, srv->nstage); /* CORS, security headers */

    int64_t dur_ns = bk_clock_mono_ns(srv->o.clock) - req->start_ns;
    double secs = (double)dur_ns / 1e9;
    size_t bytes = req->head_method ? 0 : evbuffer_get_length(req->res_body);
    const char *route = req->label ? req->label->template : NULL;

    bk_counter_t *c = requests_counter(req, method_label(req->method));
    if (c != NULL)
        bk_counter_inc(c);
    bk_histogram_observe(req->label ? req->label->duration : srv->unmatched_duration, secs);
    bk_gauge_add(srv->in_flight, -1);

    if (srv->o.access_log != NULL && bk_log_enabled(srv->o.access_log, BK_LOG_INFO)) {
        /* Written without jansson values: this line is every request's. */
        const struct bk__log_field f[] = {
            {"method", BK__LOG_STR, req->method, 0},
            {"path", BK__LOG_STR, req->path, 0},
            {"route", BK__LOG_STR, route, 0},
            {"status", BK__LOG_INT, NULL, req->status},
            {"bytes", BK__LOG_INT, NULL, (int64_t)bytes},
            {"duration_us", BK__LOG_INT, NULL, dur_ns / 1000},
            {"request_id", BK__LOG_STR, req->id, 0},
            {"trace_id", BK__LOG_STR, req->trace.trace_id, 0},
            {"span_id", BK__LOG_STR, req->trace.span_id, 0},
            {"client", BK__LOG_STR, bk_req_client(req), 0},
            {"user", BK__LOG_STR_OPT, json_string_value(json_object_get(req->claims, "sub")), 0},
        };
        bk__log_fields(srv->o.access_log, BK_LOG_INFO, "request", f, sizeof f / sizeof *f);
    }
    req->ops->finish(req);
}

/* ------------------------------------------------------------------ dispatch */
static void begin(struct bk_req *req)
{
    bk_http_server_t *srv = req->srv;
    req->start_ns = bk_clock_mono_ns(srv->o.clock);
    req->deadline_ns = req->start_ns + srv->o.request_timeout_ns;
    size_t ran; /* the stage's hooks never answer: every after hook is owed */
    bk__chain_before(req, srv->stage, srv->nstage, &ran); /* request id */
    bk_gauge_add(srv->in_flight, 1);
}

/* A request that failed before routing: it closes its connection. */
static void begin_failed(struct bk_req *req)
{
    /* The head may be cut short: give the log and the problem something to name. */
    if (req->method == NULL)
        req->method = "";
    if (req->path == NULL)
        req->path = "";
    req->keep_alive = false;
    begin(req);
}

void bk__dispatch_error(struct bk_req *req, int status, const char *detail)
{
    begin_failed(req);
    bk_res_problem(req, status, detail, NULL);
    bk__req_complete(req);
}

void bk__dispatch_error_code(struct bk_req *req, int code, const char *detail)
{
    begin_failed(req);
    bk_res_error(req, code, detail);
    bk__req_complete(req);
}

void bk__dispatch(struct bk_req *req)
{
    bk_http_server_t *srv = req->srv;
    begin(req);

    if (strcmp(req->path, "*") == 0) { /* OPTIONS * */
        bk_res_header(req, "Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
        bk_res_bytes(req, 204, NULL, NULL, 0);
        bk__req_complete(req);
        return;
    }

    struct match m;
    bk__router_match(srv->root, req->path, req->method, &m);
    if (req->admin && (m.route == NULL || !m.route->internal)) {
        /* The admin listener serves the health probes and metrics, nothing else. */
        bk_res_problem(req, 404, "the admin listener serves only health and metrics", NULL);
        bk__req_complete(req);
        return;
    }
    bool preflight = srv->cors_origins != NULL && strcmp(req->method, "OPTIONS") == 0 &&
                     bk_req_header(req, "Origin") != NULL &&
                     bk_req_header(req, "Access-Control-Request-Method") != NULL;
    struct rnode *node = m.route ? m.node : m.any;
    if (node == NULL) {
        bk_res_problem(req, 404, "no route for this path", NULL);
    } else if (preflight) {
        req->label = node->routes;
        bk__cors_preflight(req, node);
    } else if (m.route == NULL) {
        req->label = node->routes;
        bk_res_header(req, "Allow", node->allow);
        if (strcmp(req->method, "OPTIONS") == 0)
            bk_res_bytes(req, 204, NULL, NULL, 0);
        else
            bk_res_problem(req, 405, "method not allowed for this path", NULL);
    } else {
        struct route *r = req->route = m.route;
        req->label = r;
        decode_params(req, &m);
        if (req->status == 0 && (r->flags & BK_HTTP_JSON) && req->body.len > 0 &&
            !bk__is_json_type(bk_req_header(req, "Content-Type")))
            bk_res_problem(req, 415, "the body must be application/json", NULL);
        if (req->status == 0) {
            if (r->flags & BK_HTTP_BLOCKING) {
                bk__req_defer(req); /* before the worker can look */
                int rc = bk_workers_submit(srv->workers, blocking_work, blocking_done, req,
                                           req->loop->base);
                if (rc == BK_OK)
                    return; /* blocking_done completes it on this loop */
                bk__req_resume(req); /* never gone: the loop has not run since */
                /* BK_EBUSY (queue full) or BK_ECLOSED: 503 with Retry-After. */
                bk_res_error(req, rc,
                             rc == BK_EBUSY ? "the server is busy" : "the server is shutting down");
            } else {
                bk__chain_run(req);
                if (bk__req_is_deferred(req))
                    return; /* internal code completes it later on this loop */
            }
        }
    }
    bk__req_complete(req);
}

void bk__req_reset(struct bk_req *req)
{
    bk__arena_reset(&req->arena);
    json_decref(req->body_json);
    json_decref(req->query_json);
    json_decref(req->claims);
    req->body_json = req->query_json = req->claims = NULL;
    req->method = req->path = req->query = NULL;
    req->nhdrs = 0; /* the body went with the last answer (req->ops->finish) */
    req->head_method = false;
    req->route = NULL;
    req->label = NULL;
    req->nquery = 0;
    req->id[0] = '\0';
    req->data = NULL;
    req->mw_ran = 0;
    req->offload_fn = NULL;
    req->offload_ud = NULL;
    req->status = 0;
    req->ctype = NULL;
    evbuffer_drain(req->res_body, evbuffer_get_length(req->res_body));
    evbuffer_drain(req->res_headers, evbuffer_get_length(req->res_headers));
    req->has_cache_control = false;
    req->has_content_encoding = false;
    req->etag = NULL;
    req->no_gzip = false;
    req->cors_done = false;
    bk__req_defer_reset(req);
    req->expect_continue = false;
    req->chunked = false;
    req->keep_alive = false;
}
