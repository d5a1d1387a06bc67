/* From a parsed request to its answer: request id, routing (404, 405, OPTIONS,
 * CORS preflight), parameter and query decoding, the middleware chain and handler
 * inline or on the worker pool, then the built-in response headers, the access
 * log and the metrics.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/jsonptr_int.h"
#include "core/utf8_int.h"
#include "http/http_int.h"

/* ------------------------------------------------------------------ request id */
static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == ':';
}

/* The client's X-Request-ID when it is 1..128 safe characters (it is echoed and
 * logged), otherwise the loop's random prefix and a counter. */
static void request_id(struct bk_req *req)
{
    const char *in = bk_req_header(req, "X-Request-ID");
    if (in != NULL) {
        size_t n = 0;
        while (n <= BK_HTTP_REQUEST_ID_MAX && in[n] != '\0' && id_char(in[n]))
            n++;
        if (n > 0 && n <= BK_HTTP_REQUEST_ID_MAX && in[n] == '\0') {
            memcpy(req->id, in, n + 1);
            return;
        }
    }
    struct loop *l = req->loop;
    snprintf(req->id, sizeof req->id, "%s-%08llx", l->id_prefix,
             (unsigned long long)++l->id_seq);
}

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

/* ------------------------------------------------------------------ CORS */
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

static void cors_preflight(struct bk_req *req, const struct rnode *node)
{
    bk_http_server_t *srv = req->srv;
    const char *allow = allowed_origin(srv, bk_req_header(req, "Origin"));
    const char *want = bk_req_header(req, "Access-Control-Request-Method");
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

/* ------------------------------------------------------------------ the chain */
static const bk_http_middleware_t *mw_at(const struct bk_req *req, size_t i)
{
    const bk_http_server_t *srv = req->srv;
    return i < srv->nmw ? &srv->mw[i] : &req->route->mw[i - srv->nmw];
}

/* The route's rate limit: false when the request was answered with 429. */
static bool within_limit(struct bk_req *req)
{
    struct route *r = req->route;
    const char *key = r->ratelimit_key ? r->ratelimit_key(req, r->ratelimit_ud) : NULL;
    if (key == NULL || *key == '\0')
        key = req->conn->client;
    bk_ratelimit_result_t res;
    /* Nothing sleeps on the loop: an inline route gets one store round, and a
     * conflict on a shared store costs one refusal; a blocking route (on a worker)
     * retries with pauses. */
    bool inline_route = !(r->flags & BK_HTTP_BLOCKING);
    int rc = bk_ratelimit_check(r->ratelimit, key, inline_route ? BK_RATELIMIT_NO_WAIT : 0, &res);
    if (rc == BK_EBUSY && inline_route) {
        bk_res_problem(req, 429, "rate limit contended", NULL);
        return false;
    }
    if (rc != BK_OK)
        return true; /* a broken store must not take the service down with it */
    char policy[128], limit[128], retry[32];
    if (bk_ratelimit_headers(r->ratelimit, &res, policy, limit, NULL, sizeof policy) == BK_OK) {
        bk_res_header(req, "RateLimit-Policy", policy);
        bk_res_header(req, "RateLimit", limit);
    }
    if (res.allowed)
        return true;
    if (bk_ratelimit_headers(r->ratelimit, &res, NULL, NULL, retry, sizeof retry) == BK_OK)
        bk_res_header(req, "Retry-After", retry);
    bk_res_problem(req, 429, "rate limit exceeded", NULL);
    return false;
}

/* Appends the errors of validating v against s to out as {loc, msg, type}; loc
 * is the JSON pointer into the body, or "query.<name>" for query parameters. */
static int schema_errors(const bk_schema_t *s, const json_t *v, bool query, json_t *out)
{
    bk_schema_errors_t *errs = NULL;
    int rc = bk_schema_validate(s, v, BK_SCHEMA_ALL_ERRORS, &errs);
    for (size_t i = 0; rc == BK_EINVAL && i < bk_schema_errors_count(errs); i++) {
        const bk_schema_error_t *e = bk_schema_errors_get(errs, i);
        char loc[512];
        if (query) { /* "/ids/1" -> "query.ids.1", with ~1 and ~0 unescaped */
            size_t o = (size_t)snprintf(loc, sizeof loc, "query");
            for (const char *p = e->instance_location; *p == '/';) {
                size_t tlen = strcspn(p + 1, "/"), n;
                if (o + 1 + tlen >= sizeof loc)
                    break; /* cut short at a token: still names an ancestor */
                loc[o++] = '.';
                if (!bk__jsonptr_unescape(loc + o, p + 1, tlen, &n))
                    memcpy(loc + o, p + 1, n = tlen); /* never from the validator: kept as is */
                o += n;
                p += 1 + tlen;
            }
            loc[o] = '\0';
        }
        json_t *item = json_pack("{s:s, s:s, s:s}", "loc", query ? loc : e->instance_location, "msg",
                                 e->message, "type", e->keyword);
        if (item == NULL || json_array_append_new(out, item) != 0)
            rc = BK_ENOMEM;
    }
    bk_schema_errors_free(errs);
    return rc == BK_EINVAL ? BK_OK : rc;
}

/* The route's schemas: false when the request was answered (422, or 415/400 for
 * a body that is not JSON). */
static bool request_valid(struct bk_req *req)
{
    struct route *r = req->route;
    json_t *errors = json_array(), *query = NULL, *body = NULL;
    int rc = errors ? BK_OK : BK_ENOMEM;
    if (rc == BK_OK && r->query_schema != NULL) {
        query = bk_req_query_json(req);
        rc = query ? schema_errors(r->query_schema, query, true, errors) : BK_ENOMEM;
    }
    if (rc == BK_OK && r->body_schema != NULL) {
        if (bk_req_json(req, &body) != BK_OK) {
            json_decref(errors);
            return false; /* answered */
        }
        rc = schema_errors(r->body_schema, body, false, errors);
        json_decref(body);
    }
    if (rc != BK_OK) {
        json_decref(errors);
        bk_res_error(req, rc, "out of memory while validating the request");
        return false;
    }
    if (json_array_size(errors) == 0) {
        json_decref(errors);
        return true;
    }
    bk_res_problem(req, 422, "the request does not match its schema", errors);
    return false;
}

/* ------------------------------------------------------------------ auth */

/* The strings of a claim that is a string (split at spaces when split) or an
 * array of strings, NULL-terminated in the request's arena; NULL when absent. */
static const char **claim_list(struct bk_req *req, const char *name, bool split)
{
    const json_t *v = json_object_get(req->claims, name);
    size_t n = 0, cap = json_is_array(v) ? json_array_size(v) : 0;
    if (json_is_string(v))
        cap = split ? json_string_length(v) / 2 + 1 : 1;
    else if (!json_is_array(v))
        return NULL;
    const char **list = bk__arena_alloc(&req->arena, (cap + 1) * sizeof *list);
    if (list == NULL)
        return NULL;
    if (json_is_string(v) && split) {
        char *s = bk__arena_strndup(&req->arena, json_string_value(v), json_string_length(v));
        for (char *save = NULL, *tok = s ? strtok_r(s, " ", &save) : NULL; tok; tok = strtok_r(NULL, " ", &save))
            list[n++] = tok;
    } else if (json_is_string(v)) {
        list[n++] = json_string_value(v);
    } else {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
            if (json_is_string(e))
                list[n++] = json_string_value(e);
    }
    list[n] = NULL;
    return list;
}

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

/* The route's authentication and permission: false when answered (401, 403). */
static bool authorized(struct bk_req *req)
{
    const struct route *r = req->route;
    const bk_http_auth_t *a = r->auth;
    const char *h = bk_req_header(req, "Authorization");
    /* RFC 6750 section 2.1: "Bearer" (any case), one space, the token. */
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0 || h[7] == '\0') {
        unauthorized(req, h == NULL ? BK_ENOTFOUND : BK_EJWT_MALFORMED);
        return false;
    }
    int rc = bk_jwt_verify(a->keys, a->verify, h + 7, strlen(h + 7), &req->claims);
    if (rc == BK_ENOMEM) {
        bk_res_error(req, rc, "out of memory while verifying the token");
        return false;
    }
    if (rc != BK_OK) {
        unauthorized(req, rc);
        return false;
    }
    if (r->permission == NULL)
        return true;
    const char **roles = claim_list(req, a->roles_claim ? a->roles_claim : "roles", false);
    const char **scopes = claim_list(req, a->scope_claim ? a->scope_claim : "scope", true);
    static const char *const none[] = {NULL};
    if (!bk_rbac_allows(a->rbac, roles ? roles : none, scopes, r->permission)) {
        bk_res_error(req, BK_EFORBIDDEN, "the token does not allow this");
        return false;
    }
    return true;
}

/* Rate limit, authentication, middleware before hooks, validation, ownership,
 * the handler, after hooks: all on the handler's thread. */
static void run_chain(struct bk_req *req)
{
    struct route *r = req->route;
    if (r->ratelimit != NULL && !within_limit(req))
        return;
    if (r->auth != NULL && !authorized(req))
        return;
    size_t n = r->internal ? 0 : req->srv->nmw + r->nmw;
    bool answered = false;
    for (size_t i = 0; i < n && !answered; i++) {
        const bk_http_middleware_t *mw = mw_at(req, i);
        req->mw_ran = i + 1;
        if (mw->before != NULL && mw->before(req, mw->ud) != BK_HTTP_NEXT)
            answered = true;
    }
    if (!answered && (r->body_schema != NULL || r->query_schema != NULL))
        answered = !request_valid(req);
    if (!answered && r->owner != NULL && r->owner(req, req->claims, r->owner_ud) != BK_OK) {
        bk_res_problem(req, 404, "no such resource", NULL);
        answered = true;
    }
    if (!answered)
        r->fn(req, r->ud);
    if (req->status == 0 && !req->deferred)
        bk_res_problem(req, 500, answered ? "a middleware stopped the request without an answer"
                                          : "the handler did not answer",
                       NULL);
    for (size_t i = req->mw_ran; i-- > 0;) {
        const bk_http_middleware_t *mw = mw_at(req, i);
        if (mw->after != NULL)
            mw->after(req, mw->ud);
    }
}

static void blocking_work(void *arg)
{
    run_chain(arg);
}

static void blocking_done(int status, void *arg)
{
    struct bk_req *req = arg;
    struct loop *loop = req->loop;
    loop->outstanding--;
    if (req->conn->dead) {
        bk__conn_free(req->conn);
        bk__loop_maybe_exit(loop);
        return;
    }
    if (status != BK_OK && req->status == 0) /* BK_ECANCELED: 503, Retry-After */
        bk_res_error(req, status, "the server is shutting down");
    bk__req_complete(req);
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
    if (srv->cors_origins != NULL && !req->cors_done) {
        const char *allow = allowed_origin(srv, bk_req_header(req, "Origin"));
        if (allow != NULL) {
            cors_headers(req, allow);
            bk_res_header(req, "Access-Control-Expose-Headers", "X-Request-ID");
        }
    }

    int64_t dur_ns = bk_clock_mono_ns(srv->o.clock) - req->start_ns;
    double secs = (double)dur_ns / 1e9;
    size_t bytes = req->head_method ? 0 : evbuffer_get_length(req->res_body);
    const char *route = req->label ? req->label->template : NULL;

    bk_counter_t *c = requests_counter(req, method_label(req->method));
    if (c != NULL)
        bk_counter_inc(c);
    bk_histogram_observe(req->label ? req->label->duration : srv->unmatched_duration, secs);
    bk_gauge_add(srv->in_flight, -1);

    if (srv->o.access_log != NULL && bk_log_enabled(srv->o.access_log, BK_LOG_INFO))
        bk_log(srv->o.access_log, BK_LOG_INFO,
               json_pack("{s:s, s:s, s:s?, s:i, s:I, s:I, s:s, s:s}", "method", req->method,
                         "path", req->path, "route", route, "status", req->status, "bytes",
                         (json_int_t)bytes, "duration_us", (json_int_t)(dur_ns / 1000), "request_id",
                         req->id, "client", req->conn->client),
               "request");
    bk__conn_finish(req);
}

/* ------------------------------------------------------------------ dispatch */
static void begin(struct bk_req *req)
{
    bk_http_server_t *srv = req->srv;
    req->start_ns = bk_clock_mono_ns(srv->o.clock);
    req->deadline_ns = req->start_ns + srv->o.request_timeout_ns;
    request_id(req);
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
    if (req->conn->admin && (m.route == NULL || !m.route->internal)) {
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
        req->cors_done = true;
        req->label = node->routes;
        cors_preflight(req, node);
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
                int rc = bk_workers_submit(srv->workers, blocking_work, blocking_done, req,
                                           req->loop->base);
                if (rc == BK_OK) {
                    req->loop->outstanding++;
                    return; /* blocking_done completes it on this loop */
                }
                /* BK_EBUSY (queue full) or BK_ECLOSED: 503 with Retry-After. */
                bk_res_error(req, rc,
                             rc == BK_EBUSY ? "the server is busy" : "the server is shutting down");
            } else {
                run_chain(req);
                if (req->deferred)
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
    req->nhdrs = 0; /* the body went with the last answer (bk__conn_finish) */
    req->head_method = false;
    req->route = NULL;
    req->label = NULL;
    req->nquery = 0;
    req->id[0] = '\0';
    req->data = NULL;
    req->mw_ran = 0;
    req->status = 0;
    req->ctype = NULL;
    evbuffer_drain(req->res_body, evbuffer_get_length(req->res_body));
    evbuffer_drain(req->res_headers, evbuffer_get_length(req->res_headers));
    req->has_cache_control = false;
    req->cors_done = false;
    req->deferred = false;
    req->expect_continue = false;
    req->chunked = false;
    req->keep_alive = false;
}
