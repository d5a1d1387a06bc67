/* The HTTP server over real sockets: routing, errors, middleware, CORS, blocking
 * routes, load shedding, health, metrics, graceful stop, unix and IPv6 listeners.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/un.h>

#include <check.h>

#include <backend/backend.h>

#include "check_main.h"
#include "gate.h"
#include "http/client.h"

/* ------------------------------------------------------------------ fixture */
static bk_http_server_t *srv;
static uint16_t port;

static void test_opts(bk_http_opts_t *o)
{
    bk_http_opts_init(o);
    o->host = "127.0.0.1";
    o->port = 0;
    o->threads = 1;
    o->handle_signals = false;
}

static void start(bk_http_server_t *s)
{
    ck_assert_int_eq(bk_http_server_start(s, NULL), BK_OK);
    srv = s;
    port = bk_http_server_port(s);
    ck_assert_uint_ne(port, 0);
}

static void teardown(void)
{
    if (srv != NULL) {
        gate_release();
        bk_http_server_free(srv);
        srv = NULL;
    }
    gate_reset();
}

/* GET path with extra header lines (each ending in \r\n). */
static struct bkt_response request(const char *method, const char *path, const char *headers,
                                   const char *body)
{
    char raw[8192];
    int n = snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: test\r\n%s", method, path,
                     headers ? headers : "");
    if (body != NULL)
        n += snprintf(raw + n, sizeof raw - (size_t)n, "Content-Length: %zu\r\n\r\n%s",
                      strlen(body), body);
    else
        n += snprintf(raw + n, sizeof raw - (size_t)n, "\r\n");
    struct bkt_response r;
    ck_assert_int_eq(bkt_request(port, raw, (size_t)n, &r), 0);
    return r;
}

static const char *header(const struct bkt_response *r, const char *name)
{
    static char buf[4][1024];
    static int next;
    char *b = buf[next++ % 4];
    return bkt_header(r, name, b, sizeof buf[0]);
}

static json_t *body_json(const struct bkt_response *r)
{
    json_error_t err;
    json_t *doc = json_loadb(r->body, r->body_len, 0, &err);
    ck_assert_msg(doc != NULL, "body is not JSON: %s", r->body);
    return doc;
}

/* The RFC 9457 shape every error of the server has. */
static void assert_problem(const struct bkt_response *r, int status)
{
    ck_assert_int_eq(r->status, status);
    ck_assert_str_eq(header(r, "Content-Type"), "application/problem+json");
    json_t *doc = body_json(r);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "type")), "about:blank");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "title")), bk_http_reason(status));
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "status")), status);
    /* instance names the path; absent only when the request line was never read */
    json_t *instance = json_object_get(doc, "instance");
    ck_assert(instance == NULL ? status == 414 || status == 431 : json_is_string(instance));
    ck_assert_str_eq(json_string_value(json_object_get(doc, "request_id")),
                     header(r, "X-Request-ID"));
    json_decref(doc);
}

/* A bk_res_error answer: the problem shape, its status and the code's name; no
 * "code" member on a problem that is not a library code's. */
static void assert_error(const struct bkt_response *r, int status, const char *code)
{
    assert_problem(r, status);
    json_t *doc = body_json(r);
    const char *got = json_string_value(json_object_get(doc, "code"));
    ck_assert_msg(got != NULL && strcmp(got, code) == 0, "want code %s in %s", code, r->body);
    json_decref(doc);
}

/* ------------------------------------------------------------------ handlers */
static void h_echo_route(bk_req_t *req, void *ud)
{
    json_t *doc = json_pack("{s:s, s:s?}", "route", bk_req_route(req), "tag", (const char *)ud);
    static const char *const names[] = {"id", "name", "path", "rest"};
    for (size_t i = 0; i < 4; i++)
        if (bk_req_param(req, names[i]) != NULL)
            json_object_set_new(doc, names[i], json_string(bk_req_param(req, names[i])));
    const char *q = bk_req_query(req, "q");
    if (q != NULL)
        json_object_set_new(doc, "q", json_string(q));
    bk_res_json(req, 200, doc);
}

static void h_json_echo(bk_req_t *req, void *ud)
{
    (void)ud;
    json_t *doc;
    if (bk_req_json(req, &doc) != BK_OK)
        return;
    bk_res_json(req, 201, doc);
}

static void h_nothing(bk_req_t *req, void *ud)
{
    (void)req;
    (void)ud;
}

static void h_cached(bk_req_t *req, void *ud)
{
    (void)ud;
    ck_assert_int_eq(bk_res_header(req, "Cache-Control", "max-age=60"), BK_OK);
    ck_assert_int_eq(bk_res_header(req, "X-Evil", "a\r\nSet-Cookie: x=1"), BK_EINVAL);
    ck_assert_int_eq(bk_res_header(req, "Content-Length", "5"), BK_EINVAL);
    ck_assert_int_eq(bk_res_bytes(req, 200, "text/plain", "hi", 2), BK_OK);
    ck_assert_int_eq(bk_res_bytes(req, 200, "text/plain", "again", 5), BK_EBUSY);
}

static _Atomic(pthread_t) loop_thread, handler_thread;

static void h_thread(bk_req_t *req, void *ud)
{
    (void)ud;
    atomic_store(&loop_thread, pthread_self());
    bk_res_json(req, 200, json_pack("{}"));
}

static void h_blocking(bk_req_t *req, void *ud)
{
    atomic_store(&handler_thread, pthread_self());
    if (ud != NULL)
        gate_pass();
    bk_res_json(req, 200, json_pack("{s:s}", "id", bk_req_id(req)));
}

/* ------------------------------------------------------------------ routing */
static bk_http_server_t *routing_server(void)
{
    bk_http_opts_t o;
    test_opts(&o);
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/users/{id}", h_echo_route, "param", NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/users/me", h_echo_route, "literal", NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "DELETE", "/users/{id}", h_echo_route, "delete", NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/files/{path...}", h_echo_route, "tail", NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/files/special/{name}", h_echo_route, "deep", NULL),
                     BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/", h_echo_route, "root", NULL), BK_OK);
    bk_http_route_opts_t ro = {.flags = BK_HTTP_JSON};
    ck_assert_int_eq(bk_http_route(s, "POST", "/echo", h_json_echo, NULL, &ro), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/nothing", h_nothing, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/cached", h_cached, NULL, NULL), BK_OK);
    return s;
}

static void expect_route(const char *path, const char *tag, const char *key, const char *value)
{
    struct bkt_response r = request("GET", path, NULL, NULL);
    ck_assert_msg(r.status == 200, "%s: status %d", path, r.status);
    json_t *doc = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "tag")), tag);
    if (key != NULL)
        ck_assert_str_eq(json_string_value(json_object_get(doc, key)), value);
    json_decref(doc);
    bkt_response_free(&r);
}

START_TEST(routes_and_params)
{
    start(routing_server());
    expect_route("/users/42", "param", "id", "42");
    expect_route("/users/me", "literal", NULL, NULL); /* a literal beats a parameter */
    expect_route("/users/a%20b%2Fc", "param", "id", "a b/c"); /* decoded, once */
    expect_route("/files/a/b/c.txt", "tail", "path", "a/b/c.txt");
    expect_route("/files/special/x", "deep", "name", "x");
    expect_route("/files/special/x/y", "tail", "path", "special/x/y"); /* backtracks */
    expect_route("/files", "tail", "path", "");
    expect_route("/", "root", NULL, NULL);
    expect_route("/users/7?q=a+b%26c&x=1", "param", "q", "a b&c");

    struct bkt_response r = request("GET", "/users/7", NULL, NULL);
    json_t *doc = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "route")), "/users/{id}");
    json_decref(doc);
    bkt_response_free(&r);
}
END_TEST

START_TEST(route_registration_errors)
{
    bk_http_opts_t o;
    test_opts(&o);
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/a/{id}", h_nothing, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/a/{id}", h_nothing, NULL, NULL), BK_EEXIST);
    ck_assert_int_eq(bk_http_route(s, "PUT", "/a/{other}", h_nothing, NULL, NULL), BK_EEXIST);
    ck_assert_int_eq(bk_http_route(s, "GET", "a", h_nothing, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_http_route(s, "GET", "/x/{bad name}", h_nothing, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_http_route(s, "GET", "/x/{t...}/y", h_nothing, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_http_route(s, "GET", "/x/{a}/{a}", h_nothing, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_http_route(s, "GET", "/x y", h_nothing, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_http_route(s, "get", "/x", h_nothing, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_http_route(s, "GET", "/x", NULL, NULL, NULL), BK_EINVAL);
    start(s);
    ck_assert_int_eq(bk_http_route(s, "GET", "/late", h_nothing, NULL, NULL), BK_EBUSY);
    ck_assert_int_eq(bk_http_server_start(s, NULL), BK_EBUSY);
}
END_TEST

START_TEST(not_found_method_not_allowed_head_options)
{
    start(routing_server());
    struct bkt_response r = request("GET", "/nope", NULL, NULL);
    assert_problem(&r, 404);
    bkt_response_free(&r);

    r = request("PUT", "/users/1", NULL, "");
    assert_problem(&r, 405);
    ck_assert_str_eq(header(&r, "Allow"), "GET, DELETE, HEAD, OPTIONS");
    bkt_response_free(&r);

    r = request("GET", "/users/5", NULL, NULL);
    char get_len[32];
    snprintf(get_len, sizeof get_len, "%zu", r.body_len);
    bkt_response_free(&r);
    r = request("HEAD", "/users/5", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_str_eq(header(&r, "Content-Length"), get_len); /* what GET would send */
    bkt_response_free(&r);

    r = request("OPTIONS", "/users/5", NULL, NULL);
    ck_assert_int_eq(r.status, 204);
    ck_assert_str_eq(header(&r, "Allow"), "GET, DELETE, HEAD, OPTIONS");
    bkt_response_free(&r);

    r = request("OPTIONS", "*", NULL, NULL);
    ck_assert_int_eq(r.status, 204);
    bkt_response_free(&r);

    r = request("GET", "/nothing", NULL, NULL); /* a handler that does not answer */
    assert_problem(&r, 500);
    bkt_response_free(&r);
}
END_TEST

START_TEST(json_in_and_out)
{
    start(routing_server());
    struct bkt_response r =
        request("POST", "/echo", "Content-Type: application/json\r\n", "{\"a\":[1,2.5,\"x\"]}");
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(header(&r, "Content-Type"), "application/json");
    ck_assert_str_eq(r.body, "{\"a\":[1,2.5,\"x\"]}");
    bkt_response_free(&r);

    r = request("POST", "/echo", "Content-Type: application/merge-patch+json\r\n", "[]");
    ck_assert_int_eq(r.status, 201);
    bkt_response_free(&r);

    r = request("POST", "/echo", "Content-Type: application/json\r\n", "{\"a\":");
    assert_problem(&r, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "malformed JSON"));
    bkt_response_free(&r);

    r = request("POST", "/echo", "Content-Type: application/json\r\n", "{\"a\":1,\"a\":2}");
    assert_problem(&r, 400); /* duplicate keys are refused */
    bkt_response_free(&r);

    r = request("POST", "/echo", "Content-Type: text/plain\r\n", "{}");
    assert_problem(&r, 415);
    bkt_response_free(&r);

    r = request("POST", "/echo", NULL, "");
    assert_problem(&r, 415); /* no Content-Type: bk_req_json refuses */
    bkt_response_free(&r);
}
END_TEST

START_TEST(limits_answer_problems)
{
    bk_http_opts_t o;
    test_opts(&o);
    o.max_header_bytes = 1024;
    o.max_body_bytes = 16;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    bk_http_route_opts_t ro = {.flags = BK_HTTP_JSON};
    ck_assert_int_eq(bk_http_route(s, "POST", "/echo", h_json_echo, NULL, &ro), BK_OK);
    start(s);

    struct bkt_response r =
        request("POST", "/echo", "Content-Type: application/json\r\n", "[1,2,3,4,5,6,7,8,9,10]");
    assert_problem(&r, 413);
    ck_assert_str_eq(header(&r, "Connection"), "close");
    bkt_response_free(&r);

    char big[2048];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char hdr[2100];
    snprintf(hdr, sizeof hdr, "X-Big: %s\r\n", big);
    r = request("GET", "/echo", hdr, NULL);
    assert_problem(&r, 431);
    bkt_response_free(&r);
}
END_TEST

START_TEST(security_headers_and_cache_control)
{
    bk_http_opts_t o;
    test_opts(&o);
    o.hsts_max_age_ns = 31536000 * BK_NSEC_PER_SEC;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/cached", h_cached, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/t", h_thread, NULL, NULL), BK_OK);
    start(s);
    struct bkt_response r = request("GET", "/t", NULL, NULL);
    ck_assert_str_eq(header(&r, "X-Content-Type-Options"), "nosniff");
    ck_assert_str_eq(header(&r, "X-Frame-Options"), "DENY");
    ck_assert_str_eq(header(&r, "Referrer-Policy"), "no-referrer");
    ck_assert_str_eq(header(&r, "Cache-Control"), "no-store");
    ck_assert_str_eq(header(&r, "Strict-Transport-Security"), "max-age=31536000; includeSubDomains");
    ck_assert_ptr_nonnull(header(&r, "Date"));
    bkt_response_free(&r);

    r = request("GET", "/cached", NULL, NULL); /* the handler's own Cache-Control wins */
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(header(&r, "Cache-Control"), "max-age=60");
    ck_assert_ptr_null(header(&r, "X-Evil"));
    ck_assert_ptr_null(header(&r, "Set-Cookie"));
    ck_assert_str_eq(r.body, "hi");
    bkt_response_free(&r);

    /* 404s carry them too */
    r = request("GET", "/missing", NULL, NULL);
    ck_assert_str_eq(header(&r, "X-Content-Type-Options"), "nosniff");
    bkt_response_free(&r);
}
END_TEST

START_TEST(request_id_accepted_or_generated)
{
    start(routing_server());
    struct bkt_response r = request("GET", "/users/1", "X-Request-ID: abc-123.x:y_z\r\n", NULL);
    ck_assert_str_eq(header(&r, "X-Request-ID"), "abc-123.x:y_z");
    bkt_response_free(&r);

    r = request("GET", "/users/1", "X-Request-ID: has space\r\n", NULL);
    const char *id = header(&r, "X-Request-ID");
    ck_assert_ptr_nonnull(id);
    ck_assert_str_ne(id, "has space");
    ck_assert_uint_gt(strlen(id), 8);
    char first[256];
    snprintf(first, sizeof first, "%s", id);
    bkt_response_free(&r);

    r = request("GET", "/nope", NULL, NULL); /* generated ids differ */
    ck_assert_str_ne(header(&r, "X-Request-ID"), first);
    json_t *doc = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "request_id")),
                     header(&r, "X-Request-ID"));
    json_decref(doc);
    bkt_response_free(&r);
}
END_TEST

/* ------------------------------------------------------------------ CORS */
static void cors_server(bool credentials)
{
    bk_http_opts_t o;
    test_opts(&o);
    static const char *const origins[] = {"https://app.example", NULL};
    o.cors_origins = origins;
    o.cors_credentials = credentials;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/t", h_thread, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "PUT", "/t", h_thread, NULL, NULL), BK_OK);
    start(s);
}

START_TEST(cors_preflight_allow_and_deny)
{
    cors_server(true);
    struct bkt_response r = request("OPTIONS", "/t",
                                    "Origin: https://app.example\r\n"
                                    "Access-Control-Request-Method: PUT\r\n",
                                    NULL);
    ck_assert_int_eq(r.status, 204);
    ck_assert_str_eq(header(&r, "Access-Control-Allow-Origin"), "https://app.example");
    ck_assert_str_eq(header(&r, "Access-Control-Allow-Credentials"), "true");
    ck_assert_str_eq(header(&r, "Access-Control-Allow-Methods"), "GET, PUT, HEAD, OPTIONS");
    ck_assert_ptr_nonnull(strstr(header(&r, "Access-Control-Allow-Headers"), "Authorization"));
    ck_assert_str_eq(header(&r, "Access-Control-Max-Age"), "600");
    ck_assert_str_eq(header(&r, "Vary"), "Origin");
    bkt_response_free(&r);

    r = request("OPTIONS", "/t",
                "Origin: https://evil.example\r\nAccess-Control-Request-Method: PUT\r\n", NULL);
    assert_problem(&r, 403);
    ck_assert_ptr_null(header(&r, "Access-Control-Allow-Origin"));
    bkt_response_free(&r);

    r = request("OPTIONS", "/t",
                "Origin: https://app.example\r\nAccess-Control-Request-Method: DELETE\r\n", NULL);
    assert_problem(&r, 403);
    bkt_response_free(&r);

    /* Simple requests: allowed origins are named, others get no CORS headers. */
    r = request("GET", "/t", "Origin: https://app.example\r\n", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(header(&r, "Access-Control-Allow-Origin"), "https://app.example");
    bkt_response_free(&r);
    r = request("GET", "/t", "Origin: https://evil.example\r\n", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(header(&r, "Access-Control-Allow-Origin"));
    bkt_response_free(&r);
}
END_TEST

START_TEST(cors_wildcard_never_with_credentials)
{
    bk_http_opts_t o;
    test_opts(&o);
    static const char *const any[] = {"*", NULL};
    o.cors_origins = any;
    o.cors_credentials = true;
    bk_http_server_t *s = NULL;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_EINVAL);
    ck_assert_ptr_null(s);

    o.cors_credentials = false;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/t", h_thread, NULL, NULL), BK_OK);
    start(s);
    struct bkt_response r = request("GET", "/t", "Origin: https://any.example\r\n", NULL);
    ck_assert_str_eq(header(&r, "Access-Control-Allow-Origin"), "*");
    ck_assert_ptr_null(header(&r, "Access-Control-Allow-Credentials"));
    bkt_response_free(&r);
}
END_TEST

/* ------------------------------------------------------------------ middleware */
struct trace {
    char log[256];
};

static int mw_before(bk_req_t *req, void *ud)
{
    const char *name = ud;
    char *log = bk_req_data(req);
    if (log != NULL)
        strncat(log, name, 255 - strlen(log));
    if (strcmp(name, "S") == 0 && bk_req_header(req, "X-Stop") != NULL) {
        bk_res_problem(req, 401, "stopped by middleware", NULL);
        return BK_HTTP_DONE;
    }
    return BK_HTTP_NEXT;
}

static void mw_after(bk_req_t *req, void *ud)
{
    char *log = bk_req_data(req);
    if (log != NULL) {
        strncat(log, "~", 255 - strlen(log));
        strncat(log, ud, 255 - strlen(log));
    }
}

static char last_trace[256];

static int mw_first(bk_req_t *req, void *ud)
{
    (void)ud;
    static _Thread_local char buf[256];
    buf[0] = '\0';
    bk_req_set_data(req, buf);
    return BK_HTTP_NEXT;
}

static void mw_first_after(bk_req_t *req, void *ud)
{
    (void)ud;
    snprintf(last_trace, sizeof last_trace, "%s|%d", (char *)bk_req_data(req), bk_res_status(req));
}

static void h_traced(bk_req_t *req, void *ud)
{
    (void)ud;
    strncat(bk_req_data(req), "H", 255 - strlen(bk_req_data(req)));
    bk_res_json(req, 200, json_pack("{}"));
}

START_TEST(middleware_order_and_short_circuit)
{
    bk_http_opts_t o;
    test_opts(&o);
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    /* Designated initializers: the fields not named, reserved_ among them, are zero. */
    ck_assert_int_eq(bk_http_use(s, &(bk_http_middleware_t){.name = "first", .before = mw_first,
                                                            .after = mw_first_after}),
                     BK_OK);
    ck_assert_int_eq(bk_http_use(s, &(bk_http_middleware_t){.name = "a", .before = mw_before,
                                                            .after = mw_after, .ud = "A"}),
                     BK_OK);
    bk_http_middleware_t route_mw[] = {
        {.name = "s", .before = mw_before, .after = mw_after, .ud = "S"},
        {.name = "b", .before = mw_before, .after = mw_after, .ud = "B"}};
    bk_http_route_opts_t ro = {.middleware = route_mw, .nmiddleware = 2};
    ck_assert_int_eq(bk_http_route(s, "GET", "/m", h_traced, NULL, &ro), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/plain", h_traced, NULL, NULL), BK_OK);
    start(s);

    struct bkt_response r = request("GET", "/m", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    ck_assert_str_eq(last_trace, "ASBH~B~S~A|200");

    r = request("GET", "/m", "X-Stop: 1\r\n", NULL);
    assert_problem(&r, 401);
    bkt_response_free(&r);
    ck_assert_str_eq(last_trace, "AS~S~A|401"); /* B and the handler never ran */

    r = request("GET", "/plain", NULL, NULL);
    bkt_response_free(&r);
    ck_assert_str_eq(last_trace, "AH~A|200"); /* route middleware is per route */
}
END_TEST

/* ------------------------------------------------------------------ blocking */
START_TEST(blocking_routes_run_on_the_pool)
{
    bk_http_opts_t o;
    test_opts(&o);
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    bk_http_route_opts_t ro = {.flags = BK_HTTP_BLOCKING};
    ck_assert_int_eq(bk_http_route(s, "GET", "/b", h_blocking, NULL, &ro), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/t", h_thread, NULL, NULL), BK_OK);
    start(s);
    /* Keep-alive: both requests on one connection, the second after a worker. */
    int fd = bkt_connect(port);
    const char *two = "GET /b HTTP/1.1\r\nHost: t\r\n\r\nGET /t HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(bkt_send_all(fd, two, strlen(two)), 0);
    struct bkt_response r;
    ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    json_t *doc = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "id")), header(&r, "X-Request-ID"));
    json_decref(doc);
    bkt_response_free(&r);
    ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    close(fd);
    ck_assert(!pthread_equal(atomic_load(&handler_thread), atomic_load(&loop_thread)));
}
END_TEST

START_TEST(full_queue_answers_503)
{
    bk_workers_opts_t wo;
    bk_workers_opts_init(&wo);
    wo.threads = 1;
    wo.queue_max = 1;
    bk_workers_t *w;
    ck_assert_int_eq(bk_workers_new(&wo, &w), BK_OK);
    bk_http_opts_t o;
    test_opts(&o);
    o.workers = w;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    bk_http_route_opts_t ro = {.flags = BK_HTTP_BLOCKING};
    ck_assert_int_eq(bk_http_route(s, "GET", "/b", h_blocking, "gate", &ro), BK_OK);
    start(s);

    const char *req = "GET /b HTTP/1.1\r\nHost: t\r\n\r\n";
    int running = bkt_connect(port), queued = bkt_connect(port);
    ck_assert_int_eq(bkt_send_all(running, req, strlen(req)), 0);
    gate_wait_for(1); /* the one worker is busy */
    ck_assert_int_eq(bkt_send_all(queued, req, strlen(req)), 0);
    /* The queue slot fills once the loop has read the second request; poll the
     * pool's own count rather than sleeping. */
    bk_workers_stats_t st;
    do
        bk_workers_stats(w, &st);
    while (st.queued < 1);

    struct bkt_response r;
    ck_assert_int_eq(bkt_request(port, req, strlen(req), &r), 0);
    assert_error(&r, 503, "BK_EBUSY");
    ck_assert_str_eq(header(&r, "Retry-After"), "1");
    bkt_response_free(&r);

    gate_release();
    ck_assert_int_eq(bkt_read_response(running, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    ck_assert_int_eq(bkt_read_response(queued, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    close(running);
    close(queued);
    bk_http_server_free(s);
    srv = NULL;
    bk_workers_free(w);
}
END_TEST

/* ------------------------------------------------------------------ shutdown */
START_TEST(graceful_stop_finishes_in_flight)
{
    bk_http_opts_t o;
    test_opts(&o);
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    bk_http_route_opts_t ro = {.flags = BK_HTTP_BLOCKING};
    ck_assert_int_eq(bk_http_route(s, "GET", "/b", h_blocking, "gate", &ro), BK_OK);
    ck_assert_int_eq(bk_http_mount_health(s), BK_OK);
    start(s);

    int idle = bkt_connect(port); /* a keep-alive connection with nothing in flight */
    struct bkt_response r;
    const char *ready = "GET /health/ready HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(bkt_send_all(idle, ready, strlen(ready)), 0);
    ck_assert_int_eq(bkt_read_response(idle, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);

    int busy = bkt_connect(port);
    const char *req = "GET /b HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(bkt_send_all(busy, req, strlen(req)), 0);
    gate_wait_for(1);

    bk_http_server_stop(s);
    ck_assert(bkt_wait_closed(idle)); /* idle connections close at once */
    close(idle);
    ck_assert_int_lt(bkt_connect(port), 0); /* no longer accepting */

    gate_release();
    ck_assert_int_eq(bkt_read_response(busy, &r, false), 0);
    ck_assert_int_eq(r.status, 200); /* the in-flight request finished */
    ck_assert_str_eq(header(&r, "Connection"), "close");
    bkt_response_free(&r);
    ck_assert(bkt_wait_closed(busy));
    close(busy);
    ck_assert_int_eq(bk_http_server_wait(s), BK_OK);
}
END_TEST

START_TEST(stop_deadline_closes_stragglers)
{
    bk_http_opts_t o;
    test_opts(&o);
    o.shutdown_timeout_ns = 50 * BK_NSEC_PER_MSEC;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    bk_http_route_opts_t ro = {.flags = BK_HTTP_BLOCKING};
    ck_assert_int_eq(bk_http_route(s, "GET", "/b", h_blocking, "gate", &ro), BK_OK);
    start(s);
    int busy = bkt_connect(port);
    const char *req = "GET /b HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(bkt_send_all(busy, req, strlen(req)), 0);
    gate_wait_for(1);
    bk_http_server_stop(s);
    ck_assert(bkt_wait_closed(busy)); /* closed at the deadline, handler still running */
    close(busy);
    gate_release(); /* the handler returns into a dead connection: freed, no crash */
    ck_assert_int_eq(bk_http_server_wait(s), BK_OK);
}
END_TEST

START_TEST(stop_delay_reports_not_ready_before_closing)
{
    bk_http_opts_t o;
    test_opts(&o);
    o.shutdown_delay_ns = 200 * BK_NSEC_PER_MSEC;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_mount_health(s), BK_OK);
    start(s);
    struct bkt_response r = request("GET", "/health/ready", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);

    bk_http_server_stop(s);
    /* Still accepting during the delay, but not ready, and closing each connection. */
    r = request("GET", "/health/ready", NULL, NULL);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.body, "{\"status\":\"stopping\",\"checks\":{}}");
    ck_assert_str_eq(header(&r, "Connection"), "close");
    bkt_response_free(&r);
    r = request("GET", "/health/live", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    /* Then the listener closes and the loop ends by itself. */
    ck_assert_int_eq(bk_http_server_wait(s), BK_OK);
    ck_assert_int_lt(bkt_connect(port), 0);
}
END_TEST

static const char *key_header(bk_req_t *req, void *ud)
{
    (void)ud;
    return bk_req_header(req, "X-Key");
}

START_TEST(route_rate_limit_answers_429)
{
    bk_clock_t *fake;
    ck_assert_int_eq(bk_clock_fake_new(1700000000 * BK_NSEC_PER_SEC, &fake), BK_OK);
    bk_ratelimit_opts_t lo;
    bk_ratelimit_opts_init(&lo);
    lo.period_ns = 60 * BK_NSEC_PER_SEC;
    lo.burst = 2;
    lo.name = "per-key";
    lo.clock = fake;
    bk_ratelimit_store_t st;
    ck_assert_int_eq(bk_ratelimit_memory_store(1000, &st), BK_OK);
    bk_ratelimit_t *rl;
    ck_assert_int_eq(bk_ratelimit_new(1, &st, &lo, &rl), BK_OK);

    bk_http_opts_t o;
    test_opts(&o);
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    bk_http_route_opts_t ro = {.ratelimit = rl, .ratelimit_key = key_header};
    ck_assert_int_eq(bk_http_route(s, "GET", "/limited", h_thread, NULL, &ro), BK_OK);
    start(s);

    struct bkt_response r = request("GET", "/limited", "X-Key: alice\r\n", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(header(&r, "RateLimit-Policy"), "\"per-key\";q=2;w=120");
    ck_assert_str_eq(header(&r, "RateLimit"), "\"per-key\";r=1;t=60");
    bkt_response_free(&r);
    r = request("GET", "/limited", "X-Key: alice\r\n", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(header(&r, "RateLimit"), "\"per-key\";r=0;t=120");
    bkt_response_free(&r);
    r = request("GET", "/limited", "X-Key: alice\r\n", NULL);
    assert_problem(&r, 429);
    ck_assert_str_eq(header(&r, "Retry-After"), "60");
    bkt_response_free(&r);
    r = request("GET", "/limited", "X-Key: bob\r\n", NULL); /* bob has his own */
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    r = request("GET", "/limited", NULL, NULL); /* no key: the client address */
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    bk_clock_fake_advance(fake, 60 * BK_NSEC_PER_SEC);
    r = request("GET", "/limited", "X-Key: alice\r\n", NULL);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);

    bk_http_server_free(s);
    srv = NULL;
    bk_ratelimit_free(rl);
    bk_clock_free(fake);
}
END_TEST

START_TEST(date_header_reads_the_server_clock)
{
    bk_clock_t *fake;
    ck_assert_int_eq(bk_clock_fake_new(1700000000 * BK_NSEC_PER_SEC + BK_NSEC_PER_SEC / 2, &fake),
                     BK_OK);
    bk_http_opts_t o;
    test_opts(&o);
    o.clock = fake;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/t", h_thread, NULL, NULL), BK_OK);
    start(s);
    struct bkt_response r = request("GET", "/t", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(header(&r, "Date"), "Tue, 14 Nov 2023 22:13:20 GMT");
    bkt_response_free(&r);
    /* The once-per-second cache follows the clock, a step of the wall time too. */
    bk_clock_fake_advance(fake, BK_NSEC_PER_SEC);
    r = request("GET", "/t", NULL, NULL);
    ck_assert_str_eq(header(&r, "Date"), "Tue, 14 Nov 2023 22:13:21 GMT");
    bkt_response_free(&r);
    bk_clock_fake_set_wall(fake, 0);
    r = request("GET", "/t", NULL, NULL);
    ck_assert_str_eq(header(&r, "Date"), "Thu, 01 Jan 1970 00:00:00 GMT");
    bkt_response_free(&r);
    bk_http_server_free(s);
    srv = NULL;
    bk_clock_free(fake);
}
END_TEST

/* A shared store always contended: load works, every store conflicts. */
static atomic_int contended_loads, contended_stores;

static int contended_load(const char *key, int64_t *tat, uint64_t *version, void *ud)
{
    (void)key, (void)ud;
    atomic_fetch_add(&contended_loads, 1);
    *tat = 0;
    *version = 1;
    return BK_OK;
}

static int contended_store(const char *key, int64_t tat, uint64_t version, int64_t ttl, void *ud)
{
    (void)key, (void)tat, (void)version, (void)ttl, (void)ud;
    atomic_fetch_add(&contended_stores, 1);
    return BK_ECONFLICT;
}

enum { CONTENDED_N = 20 };

static void *limited_requests(void *arg)
{
    atomic_int *refused = arg;
    for (int i = 0; i < CONTENDED_N; i++) {
        struct bkt_response r = request("GET", "/limited", NULL, NULL);
        if (r.status == 429)
            atomic_fetch_add(refused, 1);
        bkt_response_free(&r);
    }
    return NULL;
}

/* A one-loop server (every connection on one loop) with /limited (inline) and
 * /limited-blocking behind one limiter on the always-conflicting store, on
 * clock (NULL: the system's), and an unlimited /other; the counters zeroed. */
static bk_http_server_t *contended_server(bk_clock_t *clock, bk_ratelimit_t **rl)
{
    bk_ratelimit_opts_t lo;
    bk_ratelimit_opts_init(&lo);
    lo.clock = clock;
    bk_ratelimit_store_t st = {.load = contended_load, .store = contended_store};
    ck_assert_int_eq(bk_ratelimit_new(1, &st, &lo, rl), BK_OK);
    atomic_store(&contended_loads, 0);
    atomic_store(&contended_stores, 0);

    bk_http_opts_t o;
    test_opts(&o); /* threads = 1 */
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    bk_http_route_opts_t ro = {.ratelimit = *rl};
    ck_assert_int_eq(bk_http_route(s, "GET", "/limited", h_thread, NULL, &ro), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/other", h_thread, NULL, NULL), BK_OK);
    bk_http_route_opts_t bo = {.flags = BK_HTTP_BLOCKING, .ratelimit = *rl};
    ck_assert_int_eq(bk_http_route(s, "GET", "/limited-blocking", h_thread, NULL, &bo), BK_OK);
    start(s);
    return s;
}

START_TEST(inline_rate_limit_conflict_never_waits_on_the_loop)
{
    bk_ratelimit_t *rl;
    bk_http_server_t *s = contended_server(NULL, &rl);

    /* One conflict, one refusal: one load/store round, 429, no pause on the loop. */
    struct bkt_response r = request("GET", "/limited", NULL, NULL);
    assert_problem(&r, 429);
    ck_assert_ptr_null(header(&r, "Retry-After"));
    bkt_response_free(&r);
    ck_assert_int_eq(atomic_load(&contended_loads), 1);
    ck_assert_int_eq(atomic_load(&contended_stores), 1);

    /* Contended requests on one connection while another connection is answered
     * on the same loop meanwhile. */
    atomic_int refused = 0;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, limited_requests, &refused), 0);
    for (int i = 0; i < CONTENDED_N; i++) {
        r = request("GET", "/other", NULL, NULL);
        ck_assert_int_eq(r.status, 200);
        bkt_response_free(&r);
    }
    pthread_join(t, NULL);
    ck_assert_int_eq(atomic_load(&refused), CONTENDED_N);
    ck_assert_int_eq(atomic_load(&contended_stores), 1 + CONTENDED_N); /* one round each */
    ck_assert_int_eq(atomic_load(&contended_loads), 1 + CONTENDED_N);

    /* A blocking route retries on its worker, 16 rounds; a store that keeps
     * failing lets the request through, as before. */
    r = request("GET", "/limited-blocking", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    ck_assert_int_eq(atomic_load(&contended_stores), 1 + CONTENDED_N + 16);

    bk_http_server_free(s);
    srv = NULL;
    bk_ratelimit_free(rl);
}
END_TEST

/* The limiter's pauses go through bk_clock_sleep_ns on its clock: on a fake
 * clock a pause advances it. An inline route hammered with conflicts on a
 * shared store, on a one-loop server, while other requests on that loop are
 * answered meanwhile, never pauses (the clock stands still); the same store on
 * a blocking route pauses on its worker (the clock moves), which shows the
 * check can fail. */
START_TEST(inline_rate_limit_contended_store_never_sleeps_on_the_loop)
{
    bk_clock_t *fake;
    ck_assert_int_eq(bk_clock_fake_new(0, &fake), BK_OK);
    bk_ratelimit_t *rl;
    bk_http_server_t *s = contended_server(fake, &rl);

    atomic_int refused = 0;
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, limited_requests, &refused), 0);
    for (int i = 0; i < CONTENDED_N; i++) {
        struct bkt_response r = request("GET", "/other", NULL, NULL);
        ck_assert_int_eq(r.status, 200);
        bkt_response_free(&r);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(atomic_load(&refused), 2 * CONTENDED_N); /* each a 429 */
    ck_assert_int_eq(atomic_load(&contended_stores), 2 * CONTENDED_N); /* one round each */
    ck_assert_int_eq(bk_clock_mono_ns(fake), 0); /* no pause */
    ck_assert_int_eq(bk_clock_wall_ns(fake), 0);

    struct bkt_response r = request("GET", "/limited-blocking", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    ck_assert_int_gt(bk_clock_mono_ns(fake), 0); /* it paused, on the worker */

    bk_http_server_free(s);
    srv = NULL;
    bk_ratelimit_free(rl);
    bk_clock_free(fake);
}
END_TEST

/* ------------------------------------------------------------------ schemas */
static atomic_int orders_handled;

/* Answers what it was given: the coerced query and the validated body. */
static void h_order(bk_req_t *req, void *ud)
{
    (void)ud;
    atomic_fetch_add(&orders_handled, 1);
    json_t *body = NULL;
    if (strcmp(bk_req_method(req), "POST") == 0 && bk_req_json(req, &body) != BK_OK)
        return;
    bk_res_json(req, 201, json_pack("{s:O, s:o*}", "query", bk_req_query_json(req), "body", body));
}

static bk_schema_t *schema_of(const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    bk_schema_t *s = NULL;
    ck_assert_int_eq(bk_schema_compile(doc, NULL, &s, NULL), BK_OK);
    json_decref(doc);
    return s;
}

START_TEST(route_schemas_answer_422)
{
    bk_schema_t *body = schema_of(
        "{\"type\":\"object\",\"required\":[\"items\"],\"properties\":{\"items\":{\"type\":\"array\","
        "\"minItems\":1,\"items\":{\"properties\":{\"qty\":{\"type\":\"integer\",\"minimum\":1}}}}}}");
    bk_schema_t *query = schema_of("{\"properties\":{\"limit\":{\"type\":\"integer\",\"maximum\":100,"
                                   "\"default\":20},\"dry\":{\"type\":\"boolean\"},"
                                   "\"a/b~c\":{\"type\":\"integer\"}}}");
    bk_http_opts_t o;
    test_opts(&o);
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    bk_http_route_opts_t ro = {.body_schema = body, .query_schema = query};
    ck_assert_int_eq(bk_http_route(s, "POST", "/orders", h_order, NULL, &ro), BK_OK);
    bk_http_route_opts_t qo = {.query_schema = query};
    ck_assert_int_eq(bk_http_route(s, "GET", "/orders", h_order, NULL, &qo), BK_OK);
    start(s);
    atomic_store(&orders_handled, 0);

    /* Valid: the handler sees the coerced query (with its default) and the body. */
    struct bkt_response r = request("POST", "/orders?dry=true", "Content-Type: application/json\r\n",
                                    "{\"items\":[{\"qty\":2}]}");
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(r.body, "{\"query\":{\"dry\":true,\"limit\":20},\"body\":{\"items\":[{\"qty\":2}]}}");
    bkt_response_free(&r);
    ck_assert_int_eq(atomic_load(&orders_handled), 1);

    /* Body and query errors together, each with loc, msg and type. */
    r = request("POST", "/orders?limit=500&dry=maybe", "Content-Type: application/json\r\n",
                "{\"items\":[{\"qty\":2},{\"qty\":0}]}");
    assert_problem(&r, 422);
    json_t *doc = body_json(&r);
    json_t *want = json_loads("[{\"loc\":\"query.limit\",\"msg\":\"must be at most 100\",\"type\":\"maximum\"},"
                              "{\"loc\":\"query.dry\",\"msg\":\"must be a boolean\",\"type\":\"type\"},"
                              "{\"loc\":\"/items/1/qty\",\"msg\":\"must be at least 1\",\"type\":\"minimum\"}]",
                              0, NULL);
    ck_assert_msg(json_equal(json_object_get(doc, "errors"), want), "%s", r.body);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "status")), 422);
    json_decref(want);
    json_decref(doc);
    bkt_response_free(&r);

    r = request("POST", "/orders", "Content-Type: application/json\r\n", "{}");
    assert_problem(&r, 422);
    ck_assert_ptr_nonnull(strstr(r.body, "\"loc\":\"/items\",\"msg\":\"is required\""));
    bkt_response_free(&r);

    r = request("GET", "/orders?limit=abc", NULL, NULL);
    assert_problem(&r, 422);
    ck_assert_ptr_nonnull(strstr(r.body, "\"loc\":\"query.limit\",\"msg\":\"must be an integer\""));
    bkt_response_free(&r);

    /* A parameter name with "/" and "~": the pointer's escapes are undone in loc. */
    r = request("GET", "/orders?a%2Fb~c=x", NULL, NULL);
    assert_problem(&r, 422);
    ck_assert_msg(strstr(r.body, "\"loc\":\"query.a/b~c\",\"msg\":\"must be an integer\"") != NULL, "%s", r.body);
    bkt_response_free(&r);

    /* Not JSON: 415 and 400 as bk_req_json answers them. */
    r = request("POST", "/orders", "Content-Type: text/plain\r\n", "{}");
    assert_problem(&r, 415);
    bkt_response_free(&r);
    r = request("POST", "/orders", "Content-Type: application/json\r\n", "{\"items\":");
    assert_problem(&r, 400);
    bkt_response_free(&r);
    ck_assert_int_eq(atomic_load(&orders_handled), 1); /* no handler ran for a bad request */

    r = request("GET", "/orders?limit=7", NULL, NULL);
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(r.body, "{\"query\":{\"limit\":7}}");
    bkt_response_free(&r);

    bk_http_server_free(s);
    srv = NULL;
    bk_schema_free(body);
    bk_schema_free(query);
}
END_TEST

/* ------------------------------------------------------------------ auth guards */
static void h_whoami(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{s:O}", "sub", json_object_get(bk_req_claims(req), "sub")));
}

/* Order 1 belongs to alice, order 2 to bob. */
static int owns_order(bk_req_t *req, const json_t *claims, void *ud)
{
    (void)ud;
    const char *id = bk_req_param(req, "id"), *sub = json_string_value(json_object_get(claims, "sub"));
    const char *owner = strcmp(id, "1") == 0 ? "alice" : strcmp(id, "2") == 0 ? "bob" : NULL;
    return owner && sub && strcmp(owner, sub) == 0 ? BK_OK : BK_ENOTFOUND;
}

static struct bkt_response with_token(const char *method, const char *path, const char *token)
{
    char hdr[2048];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", token);
    return request(method, path, hdr, NULL);
}

/* What the caller may do, as the handler sees it. */
static void h_allows(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200,
                json_pack("{s:b, s:b, s:b}", "create", bk_req_allows(req, "orders:create"), "read",
                          bk_req_allows(req, "orders:read"), "null", bk_req_allows(req, NULL)));
}

static void ck_allows(const char *path, const char *token, const char *want)
{
    struct bkt_response r = token ? with_token("GET", path, token) : request("GET", path, NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    json_t *got = body_json(&r), *w = json_loads(want, 0, NULL);
    ck_assert_msg(json_equal(got, w), "%s: %s, want %s", path, r.body, want);
    json_decref(got);
    json_decref(w);
    bkt_response_free(&r);
}

static char *token_for(bk_jwt_keys_t *keys, bk_clock_t *clock, const char *sub, const char *roles,
                       const char *scope)
{
    bk_jwt_issue_opts_t io;
    bk_jwt_issue_opts_init(&io);
    io.iss = "test";
    io.sub = sub;
    io.clock = clock;
    json_t *claims = json_pack("{s:[s]}", "roles", roles);
    if (scope != NULL)
        json_object_set_new(claims, "scope", json_string(scope));
    char *tok = NULL;
    ck_assert_int_eq(bk_jwt_issue(keys, &io, claims, &tok, NULL), BK_OK);
    json_decref(claims);
    return tok;
}


START_TEST(auth_guards_answer_401_403_404)
{
    bk_clock_t *clock;
    ck_assert_int_eq(bk_clock_fake_new(1700000000 * BK_NSEC_PER_SEC, &clock), BK_OK);
    bk_jwt_keys_t *keys;
    ck_assert_int_eq(bk_jwt_keys_new(&keys), BK_OK);
    ck_assert_int_eq(bk_jwt_keys_add(keys, "k1", "HS256", "0123456789abcdef0123456789abcdef", 32, true, NULL), BK_OK);
    json_t *policy = json_loads("{\"roles\":{\"viewer\":{\"permissions\":[\"orders:read\"]},"
                                "\"editor\":{\"inherits\":[\"viewer\"],\"permissions\":[\"orders:*\"]}}}",
                                0, NULL);
    bk_rbac_t *rbac;
    ck_assert_int_eq(bk_rbac_load(policy, &rbac, NULL), BK_OK);
    json_decref(policy);
    bk_jwt_verify_opts_t vo;
    bk_jwt_verify_opts_init(&vo);
    vo.iss = "test";
    vo.clock = clock;
    bk_http_auth_t auth = {.keys = keys, .verify = &vo, .rbac = rbac};

    bk_http_opts_t o;
    test_opts(&o);
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    bk_http_route_opts_t bad = {.permission = "orders:read"}; /* a permission needs auth */
    ck_assert_int_eq(bk_http_route(s, "GET", "/bad", h_whoami, NULL, &bad), BK_EINVAL);
    bk_http_route_opts_t me = {.auth = &auth};
    ck_assert_int_eq(bk_http_route(s, "GET", "/me", h_whoami, NULL, &me), BK_OK);
    bk_http_route_opts_t read = {.auth = &auth, .permission = "orders:read", .owner = owns_order};
    ck_assert_int_eq(bk_http_route(s, "GET", "/orders/{id}", h_whoami, NULL, &read), BK_OK);
    bk_http_route_opts_t create = {.auth = &auth, .permission = "orders:create"};
    ck_assert_int_eq(bk_http_route(s, "POST", "/orders", h_whoami, NULL, &create), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/allows", h_allows, NULL, &me), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/allows-open", h_allows, NULL, NULL), BK_OK);
    bk_http_auth_t no_rbac = {.keys = keys, .verify = &vo};
    bk_http_route_opts_t plain = {.auth = &no_rbac};
    ck_assert_int_eq(bk_http_route(s, "GET", "/allows-plain", h_allows, NULL, &plain), BK_OK);
    start(s);

    struct bkt_response r = request("GET", "/me", NULL, NULL);
    assert_problem(&r, 401);
    ck_assert_str_eq(header(&r, "WWW-Authenticate"), "Bearer");
    ck_assert_ptr_null(strstr(r.body, "\"code\"")); /* no token: no library code */
    bkt_response_free(&r);
    r = request("GET", "/me", "Authorization: Basic YWxpY2U6cHc=\r\n", NULL);
    assert_error(&r, 401, "BK_EJWT_MALFORMED");
    ck_assert_str_eq(header(&r, "WWW-Authenticate"),
                     "Bearer error=\"invalid_token\", error_description=\"malformed token\"");
    bkt_response_free(&r);

    char *alice = token_for(keys, clock, "alice", "viewer", NULL);
    char *bob = token_for(keys, clock, "bob", "editor", NULL);
    char *narrow = token_for(keys, clock, "bob", "editor", "orders:read profile");
    r = with_token("GET", "/me", alice);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"sub\":\"alice\"}");
    bkt_response_free(&r);

    r = with_token("GET", "/orders/1", alice); /* hers */
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    r = with_token("GET", "/orders/2", alice); /* bob's: not even there */
    assert_problem(&r, 404);
    bkt_response_free(&r);
    r = with_token("POST", "/orders", alice); /* a viewer may not create */
    assert_error(&r, 403, "BK_EFORBIDDEN");
    bkt_response_free(&r);
    r = with_token("POST", "/orders", bob); /* an editor may */
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    r = with_token("POST", "/orders", narrow); /* unless the token's scopes say read only */
    assert_problem(&r, 403);
    bkt_response_free(&r);
    r = with_token("GET", "/orders/2", narrow);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    /* A handler asks the same question of the caller's roles and scopes. */
    ck_allows("/allows", alice, "{\"create\":false,\"read\":true,\"null\":false}");
    ck_allows("/allows", bob, "{\"create\":true,\"read\":true,\"null\":false}");
    ck_allows("/allows", narrow, "{\"create\":false,\"read\":true,\"null\":false}");
    ck_allows("/allows-open", bob, "{\"create\":false,\"read\":false,\"null\":false}"); /* no auth */
    ck_allows("/allows-plain", bob, "{\"create\":false,\"read\":false,\"null\":false}"); /* no rbac */

    /* A tampered token, then an expired one. */
    alice[strlen(alice) - 5] = alice[strlen(alice) - 5] == 'A' ? 'B' : 'A';
    r = with_token("GET", "/me", alice);
    assert_error(&r, 401, "BK_EJWT_SIGNATURE");
    ck_assert_str_eq(header(&r, "WWW-Authenticate"),
                     "Bearer error=\"invalid_token\", error_description=\"token signature does not verify\"");
    bkt_response_free(&r);
    bk_clock_fake_advance(clock, 3600 * BK_NSEC_PER_SEC);
    r = with_token("GET", "/me", bob);
    assert_error(&r, 401, "BK_EJWT_EXPIRED");
    ck_assert_str_eq(header(&r, "WWW-Authenticate"),
                     "Bearer error=\"invalid_token\", error_description=\"token expired\"");
    bkt_response_free(&r);

    bk_http_server_free(s);
    srv = NULL;
    free(alice);
    free(bob);
    free(narrow);
    bk_rbac_free(rbac);
    bk_jwt_keys_free(keys);
    bk_clock_free(clock);
}
END_TEST

/* ------------------------------------------------------------------ health, metrics */
static atomic_int db_ok = 1;

static int check_db(void *ud)
{
    (void)ud;
    return atomic_load(&db_ok) ? BK_OK : BK_EUNAVAIL;
}

static int check_slow(void *ud)
{
    (void)ud;
    if (atomic_load(&db_ok) == 2)
        gate_pass();
    return BK_OK;
}

START_TEST(health_endpoints_flip)
{
    bk_http_opts_t o;
    test_opts(&o);
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_mount_health(s), BK_OK);
    ck_assert_int_eq(bk_http_health_check(s, "db", check_db, NULL, 1000 * BK_NSEC_PER_MSEC), BK_OK);
    ck_assert_int_eq(bk_http_health_check(s, "slow", check_slow, NULL, 50 * BK_NSEC_PER_MSEC), BK_OK);
    ck_assert_int_eq(bk_http_health_check(s, "db", check_db, NULL, 1000 * BK_NSEC_PER_MSEC), BK_EEXIST);
    start(s);

    struct bkt_response r = request("GET", "/health/live", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);

    r = request("GET", "/health/startup", NULL, NULL);
    ck_assert_int_eq(r.status, 503);
    bkt_response_free(&r);
    bk_http_server_set_started(s, true);
    r = request("GET", "/health/startup", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);

    atomic_store(&db_ok, 1);
    r = request("GET", "/health/ready", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ok\",\"checks\":{\"db\":\"ok\",\"slow\":\"ok\"}}");
    bkt_response_free(&r);

    atomic_store(&db_ok, 0);
    r = request("GET", "/health/ready", NULL, NULL);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.body,
                     "{\"status\":\"unavailable\",\"checks\":{\"db\":\"failed\",\"slow\":\"ok\"}}");
    bkt_response_free(&r);

    /* A check that hangs past its timeout: the answer still comes, naming it. */
    atomic_store(&db_ok, 2);
    r = request("GET", "/health/ready", NULL, NULL);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.body,
                     "{\"status\":\"unavailable\",\"checks\":{\"db\":\"ok\",\"slow\":\"timeout\"}}");
    bkt_response_free(&r);
    gate_release();
}
END_TEST

static const char *breaker_report(void *ud)
{
    return bk_breaker_state_name(bk_breaker_state(ud));
}

static const char *no_report(void *ud)
{
    (void)ud;
    return NULL;
}

/* Reports show states beside the checks and never decide readiness. */
START_TEST(health_reports_show_states_without_deciding)
{
    bk_breaker_t *b;
    ck_assert_int_eq(bk_breaker_new(NULL, &b), BK_OK);
    bk_http_opts_t o;
    test_opts(&o);
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_mount_health(s), BK_OK);
    ck_assert_int_eq(bk_http_health_report(s, "payment", breaker_report, b), BK_OK);
    ck_assert_int_eq(bk_http_health_report(s, "none", no_report, NULL), BK_OK);
    ck_assert_int_eq(bk_http_health_report(s, "payment", breaker_report, b), BK_EEXIST);
    ck_assert_int_eq(bk_http_health_report(s, "", breaker_report, b), BK_EINVAL);
    ck_assert_int_eq(bk_http_health_report(s, "x", NULL, b), BK_EINVAL);
    ck_assert_int_eq(bk_http_health_report(NULL, "x", breaker_report, b), BK_EINVAL);
    start(s);
    ck_assert_int_eq(bk_http_health_report(s, "late", breaker_report, b), BK_EBUSY);
    struct bkt_response r = request("GET", "/health/ready", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ok\",\"checks\":{},\"reports\":{\"payment\":\"closed\",\"none\":null}}");
    bkt_response_free(&r);
    ck_assert_int_eq(bk_breaker_force(b, BK_BREAKER_FORCED_OPEN), BK_OK);
    r = request("GET", "/health/ready", NULL, NULL);
    ck_assert_int_eq(r.status, 200); /* still ready: the state is shown, not judged */
    ck_assert_ptr_nonnull(strstr(r.body, "\"payment\":\"forced_open\""));
    bkt_response_free(&r);
    bk_http_server_free(s);
    srv = NULL;
    bk_breaker_free(b);
}
END_TEST

START_TEST(metrics_after_traffic)
{
    bk_http_opts_t o;
    test_opts(&o);
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/users/{id}", h_echo_route, "p", NULL), BK_OK);
    ck_assert_int_eq(bk_http_mount_metrics(s, "/metrics"), BK_OK);
    start(s);
    for (int i = 0; i < 3; i++) {
        char path[32];
        snprintf(path, sizeof path, "/users/%d", i);
        struct bkt_response r = request("GET", path, NULL, NULL);
        bkt_response_free(&r);
    }
    struct bkt_response r = request("GET", "/nope", NULL, NULL);
    bkt_response_free(&r);
    r = request("BREW", "/users/1", NULL, NULL);
    bkt_response_free(&r);

    r = request("GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(header(&r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    const char *want[] = {
        "http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"} 3\n",
        "http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n",
        "http_requests_total{method=\"other\",route=\"/users/{id}\",status=\"405\"} 1\n",
        "http_request_duration_seconds_count{route=\"/users/{id}\"} 4\n",
        "http_request_duration_seconds_count{route=\"unmatched\"} 1\n",
        "http_requests_in_flight 1\n", /* the /metrics request itself */
        "# TYPE http_worker_queue_depth gauge\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(r.body, want[i]) != NULL, "missing %s in:\n%s", want[i], r.body);
    ck_assert_str_eq(header(&r, "Vary"), "Accept");
    bkt_response_free(&r);

    /* A scraper that prefers OpenMetrics (Prometheus's own Accept) gets it; one
     * that weighs text higher, or refuses OpenMetrics, gets the text format. */
    static const struct {
        const char *accept;
        bool om;
    } cases[] = {
        {"Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
         "text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n",
         true},
        {"Accept: application/openmetrics-text\r\n", true},
        {"Accept: text/plain;q=0.9, application/openmetrics-text; version=1.0.0; q=0.3\r\n", false},
        {"Accept: application/openmetrics-text;q=0\r\n", false},
        {"Accept: application/openmetrics-text;q=2\r\n", false}, /* not a qvalue */
        {"Accept: */*\r\n", false},
        {"Accept: text/html\r\nAccept: application/openmetrics-text;q=0.5\r\n", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        r = request("GET", "/metrics", cases[i].accept, NULL);
        ck_assert_int_eq(r.status, 200);
        ck_assert_msg(strcmp(header(&r, "Content-Type"), cases[i].om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                                                     : "text/plain; version=0.0.4; charset=utf-8") == 0,
                      "%s: %s", cases[i].accept, header(&r, "Content-Type"));
        bool eof = r.body_len >= 6 && memcmp(r.body + r.body_len - 6, "# EOF\n", 6) == 0;
        ck_assert_msg(eof == cases[i].om, "%s: # EOF %s", cases[i].accept, eof ? "present" : "missing");
        ck_assert_msg((strstr(r.body, "# TYPE http_requests counter\n") != NULL) == cases[i].om, "%s", cases[i].accept);
        bkt_response_free(&r);
    }
}
END_TEST

/* ------------------------------------------------------------------ connections */
START_TEST(keep_alive_and_http10)
{
    start(routing_server());
    int fd = bkt_connect(port);
    for (int i = 0; i < 3; i++) {
        const char *req = "GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n";
        ck_assert_int_eq(bkt_send_all(fd, req, strlen(req)), 0);
        struct bkt_response r;
        ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_ptr_null(header(&r, "Connection"));
        bkt_response_free(&r);
    }
    const char *last = "GET /users/1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    ck_assert_int_eq(bkt_send_all(fd, last, strlen(last)), 0);
    struct bkt_response r;
    ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
    ck_assert_str_eq(header(&r, "Connection"), "close");
    bkt_response_free(&r);
    ck_assert(bkt_wait_closed(fd));
    close(fd);

    const char *v10 = "GET /users/1 HTTP/1.0\r\n\r\n"; /* 1.0: no Host needed, closes */
    ck_assert_int_eq(bkt_request(port, v10, strlen(v10), &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(header(&r, "Connection"), "close");
    bkt_response_free(&r);
}
END_TEST

START_TEST(max_connections_refused_with_503)
{
    bk_http_opts_t o;
    test_opts(&o);
    o.max_connections = 2;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/t", h_thread, NULL, NULL), BK_OK);
    start(s);
    int a = bkt_connect(port), b = bkt_connect(port);
    const char *req = "GET /t HTTP/1.1\r\nHost: t\r\n\r\n";
    struct bkt_response r;
    for (int i = 0; i < 2; i++) { /* both are accepted and served */
        int fd = i ? b : a;
        ck_assert_int_eq(bkt_send_all(fd, req, strlen(req)), 0);
        ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
        ck_assert_int_eq(r.status, 200);
        bkt_response_free(&r);
    }
    int c = bkt_connect(port);
    ck_assert_int_eq(bkt_read_response(c, &r, false), 0);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(header(&r, "Content-Type"), "application/problem+json");
    bkt_response_free(&r);
    close(c);
    close(a);
    /* Once a slot frees, a new connection is served (the close is seen first). */
    for (;;) {
        ck_assert_int_eq(bkt_request(port, req, strlen(req), &r), 0);
        int st = r.status;
        bkt_response_free(&r);
        if (st == 200)
            break;
        ck_assert_int_eq(st, 503);
    }
    close(b);
}
END_TEST

START_TEST(unix_socket_and_ipv6)
{
    char path[108];
    snprintf(path, sizeof path, "/tmp/bk-http-test-%d.sock", (int)getpid());
    bk_http_opts_t o;
    test_opts(&o);
    o.unix_path = path;
    o.threads = 2;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/t", h_thread, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(s, NULL), BK_OK);
    ck_assert_uint_eq(bk_http_server_port(s), 0);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *req = "GET /t HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(bkt_send_all(fd, req, strlen(req)), 0);
    struct bkt_response r;
    ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    close(fd);
    /* A live socket is never replaced by a second server. */
    bk_http_server_t *s2;
    ck_assert_int_eq(bk_http_server_new(&o, &s2, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(s2, NULL), BK_EEXIST);
    bk_http_server_free(s2);
    bk_http_server_free(s);
    ck_assert_int_ne(access(path, F_OK), 0); /* removed at free */

    test_opts(&o);
    o.host = "::1";
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/t", h_thread, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(s, NULL), BK_OK);
    fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(bk_http_server_port(s)),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (connect(fd, (struct sockaddr *)&s6, sizeof s6) == 0) {
        ck_assert_int_eq(bkt_send_all(fd, req, strlen(req)), 0);
        ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
        ck_assert_int_eq(r.status, 200);
        bkt_response_free(&r);
    } else {
        ck_abort_msg("cannot connect to [::1]");
    }
    close(fd);
    bk_http_server_free(s);
}
END_TEST

/* ------------------------------------------------------------------ body budget */
static void h_sink(bk_req_t *req, void *ud)
{
    (void)ud;
    size_t len;
    bk_req_body(req, &len);
    bk_res_json(req, 200, json_pack("{s:I}", "len", (json_int_t)len));
}

/* The value of an unlabelled gauge in the server's registry; -1 when absent. */
static double gauge_value(bk_http_server_t *s, const char *name)
{
    char *text;
    size_t len;
    ck_assert_int_eq(bk_metrics_render(bk_http_server_metrics(s), &text, &len), BK_OK);
    char want[128];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *at = strstr(text, want);
    double v = at != NULL ? strtod(at + strlen(want), NULL) : -1;
    free(text);
    return v;
}

/* Waits (up to 10 s: the loop must first read what was sent) for the gauge to
 * reach want; fails with the last value seen. Asserts an outcome, not a time. */
static void await_gauge(bk_http_server_t *s, const char *name, double want)
{
    double v = -1;
    for (int i = 0; i < 2000; i++) {
        if ((v = gauge_value(s, name)) == want)
            return;
        usleep(5000);
    }
    ck_abort_msg("%s stayed at %.0f, want %.0f", name, v, want);
}

/* A connection that has sent the head of a POST /sink of total bytes and then
 * sent of them; chunked sends them as one chunk of total bytes. */
static int partial_body(size_t total, size_t sent, bool chunked)
{
    int fd = bkt_connect(port);
    ck_assert_int_ge(fd, 0);
    char head[256];
    int n = chunked ? snprintf(head, sizeof head,
                               "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                               "\r\n%zx\r\n", total)
                    : snprintf(head, sizeof head,
                               "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
                               total);
    ck_assert_int_eq(bkt_send_all(fd, head, (size_t)n), 0);
    char *body = malloc(sent);
    ck_assert_ptr_nonnull(body);
    memset(body, 'b', sent);
    int rc = bkt_send_all(fd, body, sent);
    free(body);
    ck_assert_int_eq(rc, 0);
    return fd;
}

/* Many large partial bodies: the server holds at most max_buffered_body_bytes of
 * them (the gauge says so), refuses the body that would pass it with 503 and
 * Retry-After, serves the bodies it holds, and holds nothing once they close. */
START_TEST(body_budget_bounds_buffered_bodies)
{
    enum { KIB = 1024, BODY = 256 * KIB, SENT = 200 * KIB, HELD = 5 };
    bk_http_opts_t o;
    test_opts(&o);
    o.max_body_bytes = BODY;
    /* Room for HELD partial bodies and the rest of one of them, not for one more. */
    o.max_buffered_body_bytes = HELD * SENT + (BODY - SENT) + 44 * KIB;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "POST", "/sink", h_sink, NULL, NULL), BK_OK);
    start(s);
    ck_assert(gauge_value(s, "http_buffered_body_bytes") == 0);

    int held[HELD];
    for (int i = 0; i < HELD; i++) { /* one at a time, so that the gauge is exact */
        held[i] = partial_body(BODY, SENT, i % 2 == 1);
        await_gauge(s, "http_buffered_body_bytes", (double)(i + 1) * SENT);
    }
    /* Over the budget, with either framing: 503, Retry-After, and nothing more held. */
    for (int chunked = 0; chunked <= 1; chunked++) {
        int fd = partial_body(BODY, SENT, chunked);
        struct bkt_response r;
        ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
        assert_error(&r, 503, "BK_EBUSY");
        ck_assert_str_eq(header(&r, "Retry-After"), "1");
        ck_assert_str_eq(header(&r, "Connection"), "close");
        bkt_response_free(&r);
        close(fd);
        await_gauge(s, "http_buffered_body_bytes", (double)HELD * SENT);
    }
    /* A held body that completes is served whole, and gives its bytes back. */
    char rest[BODY - SENT];
    memset(rest, 'b', sizeof rest);
    ck_assert_int_eq(bkt_send_all(held[0], rest, sizeof rest), 0);
    struct bkt_response r;
    ck_assert_int_eq(bkt_read_response(held[0], &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"len\":262144"));
    bkt_response_free(&r);
    await_gauge(s, "http_buffered_body_bytes", (double)(HELD - 1) * SENT);
    /* Closed connections hold nothing. */
    for (int i = 0; i < HELD; i++)
        close(held[i]);
    await_gauge(s, "http_buffered_body_bytes", 0);
    r = request("POST", "/sink", NULL, "{}");
    ck_assert_msg(r.status == 200, "after: %d %s", r.status, r.body);
    bkt_response_free(&r);
    ck_assert(gauge_value(s, "http_buffered_body_bytes") == 0);
}
END_TEST

/* ------------------------------------------------------------------ admin listener */
static int connect_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* GET path on fd (kept open); the status. */
static int get_on(int fd, const char *path, const char *want_in_body)
{
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    ck_assert_int_eq(bkt_send_all(fd, req, (size_t)n), 0);
    struct bkt_response r;
    ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
    int st = r.status;
    if (want_in_body != NULL)
        ck_assert_msg(strstr(r.body, want_in_body) != NULL, "GET %s: no %s in %s", path,
                      want_in_body, r.body);
    bkt_response_free(&r);
    return st;
}

/* The main listener is full (max_connections): it refuses even health checks,
 * while the admin listener serves health and metrics, and only those, under a
 * limit of its own. */
START_TEST(admin_listener_serves_health_during_a_flood)
{
    bk_http_opts_t o;
    test_opts(&o);
    o.max_connections = 2;
    o.admin_host = "127.0.0.1";
    o.admin_port = 0;
    o.admin_max_connections = 1;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/t", h_thread, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_mount_health(s), BK_OK);
    ck_assert_int_eq(bk_http_mount_metrics(s, "/metrics"), BK_OK);
    ck_assert_uint_eq(bk_http_server_admin_port(s), 0); /* not bound yet */
    start(s);
    uint16_t admin = bk_http_server_admin_port(s);
    ck_assert_uint_ne(admin, 0);
    ck_assert_uint_ne(admin, port);

    int a = bkt_connect(port), b = bkt_connect(port);
    ck_assert_int_eq(get_on(a, "/health/live", NULL), 200);
    ck_assert_int_eq(get_on(b, "/t", NULL), 200);
    int c = bkt_connect(port); /* over max_connections: refused, health too */
    struct bkt_response r;
    ck_assert_int_eq(bkt_read_response(c, &r, false), 0);
    ck_assert_int_eq(r.status, 503);
    bkt_response_free(&r);
    close(c);

    int adm = bkt_connect(admin);
    ck_assert_int_eq(get_on(adm, "/health/live", "\"ok\""), 200);
    ck_assert_int_eq(get_on(adm, "/health/ready", NULL), 200);
    ck_assert_int_eq(get_on(adm, "/metrics", "http_requests_total{"), 200);
    ck_assert_int_eq(get_on(adm, "/t", "only health and metrics"), 404); /* user routes: no */
    ck_assert_int_eq(get_on(adm, "/nope", NULL), 404);
    int adm2 = bkt_connect(admin); /* over admin_max_connections */
    ck_assert_int_eq(bkt_read_response(adm2, &r, false), 0);
    ck_assert_int_eq(r.status, 503);
    bkt_response_free(&r);
    close(adm2);
    close(adm);
    close(a);
    close(b);
    bk_http_server_free(s);
    srv = NULL;

    /* On a unix socket, removed at free. */
    char path[108];
    snprintf(path, sizeof path, "/tmp/bk-http-admin-%d.sock", (int)getpid());
    test_opts(&o);
    o.admin_unix_path = path;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_mount_health(s), BK_OK);
    start(s);
    ck_assert_uint_eq(bk_http_server_admin_port(s), 0);
    int u = connect_unix(path);
    ck_assert_int_eq(get_on(u, "/health/live", "\"ok\""), 200);
    close(u);
    bk_http_server_free(s);
    srv = NULL;
    ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

/* ------------------------------------------------------------------ parameters */
static void h_raw_hex(bk_req_t *req, void *ud)
{
    (void)ud;
    const char *v = bk_req_param(req, "id");
    char hex[64] = "";
    for (size_t i = 0; v[i] != '\0' && i < 30; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)v[i]);
    bk_res_json(req, 200, json_pack("{s:s}", "hex", hex));
}

/* Parameters that are not UTF-8 are answered 400 before the handler; a route
 * that asks for raw bytes gets them. */
START_TEST(params_not_utf8_refused_unless_raw)
{
    bk_http_server_t *s = routing_server();
    bk_http_route_opts_t ro = {.flags = BK_HTTP_RAW_PARAMS};
    ck_assert_int_eq(bk_http_route(s, "GET", "/raw/{id}", h_raw_hex, NULL, &ro), BK_OK);
    start(s);
    struct bkt_response r = request("GET", "/users/%FF", NULL, NULL);
    assert_problem(&r, 400);
    json_t *doc = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "detail")),
                     "path parameter \"id\" is not valid UTF-8");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(doc, "errors"), 0), "loc")),
                     "path.id");
    json_decref(doc);
    bkt_response_free(&r);
    r = request("GET", "/users/1?q=%ED%A0%80", NULL, NULL); /* a UTF-16 surrogate */
    assert_problem(&r, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "query parameter \\\"q\\\""));
    bkt_response_free(&r);
    r = request("GET", "/raw/%FF%00x", NULL, NULL); /* %00 is refused by decoding */
    assert_problem(&r, 400);
    bkt_response_free(&r);
    r = request("GET", "/raw/%FF%FE", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"hex\":\"fffe\""));
    bkt_response_free(&r);
    expect_route("/users/%E6%97%A5", "param", "id", "\xe6\x97\xa5");
}
END_TEST

/* HTTP/1.0 with Connection: keep-alive keeps its connection for more requests. */
START_TEST(http10_keep_alive_honoured)
{
    start(routing_server());
    int fd = bkt_connect(port);
    const char *req = "GET /users/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(bkt_send_all(fd, req, strlen(req)), 0);
        struct bkt_response r;
        ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(header(&r, "Connection"), "keep-alive");
        bkt_response_free(&r);
    }
    close(fd);
}
END_TEST

START_TEST(bad_options_refused)
{
    bk_http_opts_t o;
    test_opts(&o);
    o.max_connections = 0;
    bk_http_server_t *s = NULL;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_EINVAL);
    test_opts(&o);
    static const char *const bad[] = {"https://a.example\r\nX: y", NULL};
    o.cors_origins = bad;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_EINVAL);
    test_opts(&o);
    o.host = "999.1.1.1";
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(s, NULL), BK_EINVAL);
    bk_http_server_free(s);
    test_opts(&o);
    o.max_body_bytes = 2 * 1024 * 1024;
    o.max_buffered_body_bytes = 1024 * 1024; /* smaller than one body */
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_EINVAL);
    o.max_buffered_body_bytes = 0; /* the default grows to hold one body */
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    bk_http_server_free(s);
    ck_assert_str_eq(bk_http_reason(431), "Request Header Fields Too Large");
    ck_assert_str_eq(bk_http_reason(299), "Unknown");
}
END_TEST

/* ------------------------------------------------------------------ bk_res_error */
static void h_error(bk_req_t *req, void *ud)
{
    (void)ud;
    int code = atoi(bk_req_param(req, "code"));
    ck_assert_int_eq(bk_res_error(req, code, bk_req_query(req, "detail")), BK_OK);
    ck_assert_int_eq(bk_res_error(req, code, NULL), BK_EBUSY); /* one answer per request */
}

static void h_error_misuse(bk_req_t *req, void *ud)
{
    (void)ud;
    ck_assert_int_eq(bk_res_error(NULL, BK_EINVAL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_res_error(req, BK_OK, NULL), BK_EINVAL); /* not an error */
    ck_assert_int_eq(bk_res_error(req, 404, NULL), BK_EINVAL);   /* a status, not a code */
    ck_assert_int_eq(bk_res_error_ext(req, BK_EINVAL, NULL, json_pack("[]")), BK_EINVAL); /* not an object */
    ck_assert_int_eq(bk_res_error_ext(req, BK_OK, NULL, json_pack("{}")), BK_EINVAL);
    ck_assert_int_eq(bk_res_status(req), 0);
    bk_res_json(req, 200, json_pack("{}"));
    ck_assert_int_eq(bk_res_error_ext(req, BK_EINVAL, NULL, json_pack("{s:i}", "n", 1)), BK_EBUSY);
}

/* Extension members beside the problem's own, which they cannot replace. */
static void h_error_ext(bk_req_t *req, void *ud)
{
    (void)ud;
    ck_assert_int_eq(bk_res_error_ext(req, BK_EUNAVAIL, "payment is down",
                                      json_pack("{s:s, s:i, s:i, s:s}", "step", "charge_payment", "order_id", 42,
                                                "status", 200, "code", "BK_OK")),
                     BK_OK);
}

START_TEST(res_error_answers_library_codes)
{
    bk_http_opts_t o;
    test_opts(&o);
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/err/{code}", h_error, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/misuse", h_error_misuse, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/ext", h_error_ext, NULL, NULL), BK_OK);
    start(s);
    static const struct {
        int code, status;
        const char *name, *query, *detail;
    } cases[] = {
        {BK_EINVAL, 400, "BK_EINVAL", "?detail=id%20is%20not%20a%20number", "id is not a number"},
        {BK_ENOTFOUND, 404, "BK_ENOTFOUND", "", NULL},
        {BK_EUNAVAIL, 503, "BK_EUNAVAIL", "", NULL},
        {BK_EUPSTREAM, 502, "BK_EUPSTREAM", "", NULL},
        {BK_ETIMEDOUT, 504, "BK_ETIMEDOUT", "", NULL},
        {BK_EJWT_EXPIRED, 401, "BK_EJWT_EXPIRED", "", NULL},
        {-999, 500, "BK_UNKNOWN", "", NULL}, /* not in the table */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/err/%d%s", cases[i].code, cases[i].query);
        struct bkt_response r = request("GET", path, NULL, NULL);
        assert_error(&r, cases[i].status, cases[i].name);
        json_t *doc = body_json(&r);
        ck_assert_str_eq(json_string_value(json_object_get(doc, "detail")),
                         cases[i].detail ? cases[i].detail : bk_strerror(cases[i].code));
        ck_assert_int_eq(strncmp(json_string_value(json_object_get(doc, "instance")), "/err/", 5), 0);
        json_decref(doc);
        /* Retry-After only with 503: the service, not the request, is at fault. */
        if (cases[i].status == 503)
            ck_assert_str_eq(header(&r, "Retry-After"), "1");
        else
            ck_assert_ptr_null(header(&r, "Retry-After"));
        bkt_response_free(&r);
    }
    struct bkt_response r = request("GET", "/misuse", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
    r = request("GET", "/ext", NULL, NULL);
    assert_error(&r, 503, "BK_EUNAVAIL");
    ck_assert_str_eq(header(&r, "Retry-After"), "1");
    json_t *doc = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "step")), "charge_payment");
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "order_id")), 42);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "status")), 503);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "detail")), "payment is down");
    json_decref(doc);
    bkt_response_free(&r);
}
END_TEST

/* A pool that is shut down: a blocking route answers bk_res_error's BK_ECLOSED. */
START_TEST(closed_pool_answers_503_eclosed)
{
    bk_workers_t *w;
    ck_assert_int_eq(bk_workers_new(NULL, &w), BK_OK);
    ck_assert_int_eq(bk_workers_shutdown(w, BK_WORKERS_DRAIN), BK_OK);
    bk_http_opts_t o;
    test_opts(&o);
    o.workers = w;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.flags = BK_HTTP_BLOCKING;
    ck_assert_int_eq(bk_http_route(s, "GET", "/b", h_blocking, NULL, &ro), BK_OK);
    start(s);
    struct bkt_response r = request("GET", "/b", NULL, NULL);
    assert_error(&r, 503, "BK_ECLOSED");
    ck_assert_str_eq(header(&r, "Retry-After"), "1");
    bkt_response_free(&r);
    bk_http_server_free(s);
    srv = NULL;
    bk_workers_free(w);
}
END_TEST

/* ------------------------------------------------------------------ options */
START_TEST(opts_init_clears_and_null_means_defaults)
{
    bk_http_opts_t o;
    memset(&o, 0x5a, sizeof o);
    bk_http_opts_init(&o);
    ck_assert_str_eq(o.host, "127.0.0.1");
    ck_assert_uint_eq(o.port, 8080);
    ck_assert_ptr_null(o.unix_path);
    ck_assert_uint_eq(o.threads, 0);
    ck_assert_int_eq(o.header_timeout_ns, 10 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(o.body_timeout_ns, 30 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(o.idle_timeout_ns, 60 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(o.write_timeout_ns, 30 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(o.request_timeout_ns, 30 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(o.shutdown_delay_ns, 0);
    ck_assert_int_eq(o.shutdown_timeout_ns, 10 * BK_NSEC_PER_SEC);
    ck_assert_int_eq(o.hsts_max_age_ns, 0);
    ck_assert_int_eq(o.cors_max_age_ns, 600 * BK_NSEC_PER_SEC);
    ck_assert_ptr_null(o.cors_origins);
    ck_assert_ptr_null(o.admin_host);
    ck_assert_ptr_null(o.workers);
    ck_assert(o.security_headers && o.handle_signals && !o.cors_credentials);
    for (size_t i = 0; i < sizeof o.reserved_ / sizeof o.reserved_[0]; i++)
        ck_assert_uint_eq(o.reserved_[i], 0);
    bk_http_opts_init(NULL); /* a no-op */

    bk_http_route_opts_t ro;
    memset(&ro, 0x5a, sizeof ro);
    bk_http_route_opts_init(&ro);
    ck_assert_uint_eq(ro.flags, BK_HTTP_INLINE);
    ck_assert_ptr_null(ro.middleware);
    ck_assert_uint_eq(ro.nmiddleware, 0);
    ck_assert_ptr_null(ro.ratelimit);
    ck_assert_ptr_null(ro.body_schema);
    ck_assert_ptr_null(ro.auth);
    ck_assert_ptr_null(ro.permission);
    ck_assert_ptr_null(ro.owner);
    for (size_t i = 0; i < sizeof ro.reserved_ / sizeof ro.reserved_[0]; i++)
        ck_assert_uint_eq(ro.reserved_[i], 0);
    bk_http_route_opts_init(NULL);

    /* NULL options: a server with every default, never started here (8080 may be taken). */
    bk_http_server_t *s = NULL;
    bk_error_t err;
    memset(&err, 0x5a, sizeof err);
    ck_assert_int_eq(bk_http_server_new(NULL, &s, &err), BK_OK);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(err.code, BK_OK);
    ck_assert_str_eq(err.message, "");
    ck_assert_int_eq(bk_http_route(s, "GET", "/x", h_thread, NULL, &ro), BK_OK);
    bk_http_server_free(s);
}
END_TEST

/* A bad option is named in err->message. */
START_TEST(bad_option_named)
{
    static const struct {
        const char *want;
    } cases[] = {{"header_timeout_ns"}, {"cors_max_age_ns"}, {"hsts_max_age_ns"},
                 {"shutdown_delay_ns"}, {"max_connections"}, {"cors_origins"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bk_http_opts_t o;
        test_opts(&o);
        static const char *const star[] = {"*", NULL};
        switch (i) {
        case 0: o.header_timeout_ns = 0; break;
        case 1: o.cors_max_age_ns = -1; break;
        case 2: o.hsts_max_age_ns = -1; break;
        case 3: o.shutdown_delay_ns = -1; break;
        case 4: o.max_connections = 0; break;
        case 5: o.cors_origins = star; o.cors_credentials = true; break;
        }
        bk_http_server_t *s = (bk_http_server_t *)&o;
        bk_error_t err;
        ck_assert_int_eq(bk_http_server_new(&o, &s, &err), BK_EINVAL);
        ck_assert_ptr_null(s);
        ck_assert_int_eq(err.code, BK_EINVAL);
        ck_assert_msg(strstr(err.message, cases[i].want) != NULL, "want %s in \"%s\"", cases[i].want,
                      err.message);
    }
}
END_TEST

/* Durations in nanoseconds reach the headers as whole seconds. */
START_TEST(max_ages_in_whole_seconds)
{
    bk_http_opts_t o;
    test_opts(&o);
    o.hsts_max_age_ns = 86400 * BK_NSEC_PER_SEC + 999 * BK_NSEC_PER_MSEC; /* rounded down */
    static const char *const origins[] = {"https://a.example", NULL};
    o.cors_origins = origins;
    o.cors_max_age_ns = 90 * BK_NSEC_PER_SEC;
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/t", h_thread, NULL, NULL), BK_OK);
    start(s);
    struct bkt_response r = request("GET", "/t", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(header(&r, "Strict-Transport-Security"), "max-age=86400; includeSubDomains");
    bkt_response_free(&r);
    r = request("OPTIONS", "/t",
                "Origin: https://a.example\r\nAccess-Control-Request-Method: GET\r\n", NULL);
    ck_assert_int_eq(r.status, 204);
    ck_assert_str_eq(header(&r, "Access-Control-Max-Age"), "90");
    bkt_response_free(&r);
}
END_TEST

/* ------------------------------------------------------------------ start errors */
START_TEST(start_failure_names_the_address)
{
    bk_error_t err;
    bk_http_opts_t o;
    bk_http_server_t *s;

    /* A TCP port held by a socket without SO_REUSEPORT: address in use. */
    int hold = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(hold, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(listen(hold, 1), 0);
    socklen_t slen = sizeof sin;
    ck_assert_int_eq(getsockname(hold, (struct sockaddr *)&sin, &slen), 0);
    test_opts(&o);
    o.port = ntohs(sin.sin_port);
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    memset(&err, 0x5a, sizeof err);
    ck_assert_int_eq(bk_http_server_start(s, &err), BK_EEXIST);
    char want[160];
    snprintf(want, sizeof want, "127.0.0.1:%u: address in use", (unsigned)o.port);
    ck_assert_int_eq(err.code, BK_EEXIST);
    ck_assert_str_eq(err.message, want);
    ck_assert_str_eq(err.file, ""); /* cleared on entry */
    bk_http_server_free(s);
    close(hold);

    /* A unix socket path that is a regular file: never replaced. */
    char path[108];
    snprintf(path, sizeof path, "/tmp/bk-http-test-%d.file", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    test_opts(&o);
    o.unix_path = path;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(s, &err), BK_EEXIST);
    snprintf(want, sizeof want, "%s: exists and is not a socket", path);
    ck_assert_str_eq(err.message, want);
    bk_http_server_free(s);
    ck_assert_int_eq(access(path, F_OK), 0); /* still there */
    unlink(path);

    /* A host that does not resolve: the address and the resolver's reason. */
    test_opts(&o);
    o.host = "999.1.1.1";
    o.port = 8080;
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(s, &err), BK_EINVAL);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_msg(strncmp(err.message, "999.1.1.1:8080: ", 16) == 0 && strlen(err.message) > 16,
                  "%s", err.message);
    bk_http_server_free(s);

    /* A success clears err; starting twice says why it is refused. */
    test_opts(&o);
    ck_assert_int_eq(bk_http_server_new(&o, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(s, &err), BK_OK);
    ck_assert_int_eq(err.code, BK_OK);
    ck_assert_int_eq(bk_http_server_start(s, &err), BK_EBUSY);
    ck_assert_int_eq(err.code, BK_EBUSY);
    ck_assert_str_ne(err.message, "");
    bk_http_server_free(s);
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("server");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, routes_and_params);
    tcase_add_test(tc, route_registration_errors);
    tcase_add_test(tc, not_found_method_not_allowed_head_options);
    tcase_add_test(tc, json_in_and_out);
    tcase_add_test(tc, limits_answer_problems);
    tcase_add_test(tc, security_headers_and_cache_control);
    tcase_add_test(tc, request_id_accepted_or_generated);
    tcase_add_test(tc, cors_preflight_allow_and_deny);
    tcase_add_test(tc, cors_wildcard_never_with_credentials);
    tcase_add_test(tc, middleware_order_and_short_circuit);
    tcase_add_test(tc, blocking_routes_run_on_the_pool);
    tcase_add_test(tc, full_queue_answers_503);
    tcase_add_test(tc, graceful_stop_finishes_in_flight);
    tcase_add_test(tc, stop_deadline_closes_stragglers);
    tcase_add_test(tc, stop_delay_reports_not_ready_before_closing);
    tcase_add_test(tc, route_rate_limit_answers_429);
    tcase_add_test(tc, inline_rate_limit_conflict_never_waits_on_the_loop);
    tcase_add_test(tc, inline_rate_limit_contended_store_never_sleeps_on_the_loop);
    tcase_add_test(tc, date_header_reads_the_server_clock);
    tcase_add_test(tc, route_schemas_answer_422);
    tcase_add_test(tc, auth_guards_answer_401_403_404);
    tcase_add_test(tc, health_endpoints_flip);
    tcase_add_test(tc, health_reports_show_states_without_deciding);
    tcase_add_test(tc, metrics_after_traffic);
    tcase_add_test(tc, keep_alive_and_http10);
    tcase_add_test(tc, max_connections_refused_with_503);
    tcase_add_test(tc, unix_socket_and_ipv6);
    tcase_add_test(tc, body_budget_bounds_buffered_bodies);
    tcase_add_test(tc, admin_listener_serves_health_during_a_flood);
    tcase_add_test(tc, params_not_utf8_refused_unless_raw);
    tcase_add_test(tc, http10_keep_alive_honoured);
    tcase_add_test(tc, bad_options_refused);
    tcase_add_test(tc, res_error_answers_library_codes);
    tcase_add_test(tc, closed_pool_answers_503_eclosed);
    tcase_add_test(tc, opts_init_clears_and_null_means_defaults);
    tcase_add_test(tc, bad_option_named);
    tcase_add_test(tc, max_ages_in_whole_seconds);
    tcase_add_test(tc, start_failure_names_the_address);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(http_suite());
}
