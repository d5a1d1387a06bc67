/* bk_upstream against a local HTTP server (libbackend's own) that answers, fails,
 * hangs, sheds load or recovers on command.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include <backend/backend.h>

#include "check_main.h"
#include "gate.h"

#define MS BK_NSEC_PER_MSEC
#define SEC BK_NSEC_PER_SEC

/* ------------------------------------------------------------------ the server */
enum mode { OK, FAIL, HANG, SLOW_DOWN };
static atomic_int mode;
static atomic_int hits;
static atomic_int saw_key; /* requests that carried an Idempotency-Key */
static bk_http_server_t *srv;
static char base_url[64];
static bk_clock_t *clk;

static void on_any(bk_req_t *req, void *ud)
{
    (void)ud;
    atomic_fetch_add(&hits, 1);
    if (bk_req_header(req, "Idempotency-Key") != NULL)
        atomic_fetch_add(&saw_key, 1);
    switch (atomic_load(&mode)) {
    case FAIL:
        bk_res_problem(req, 503, "failing on command", NULL);
        break;
    case HANG:
        gate_pass(); /* until the test opens the gate */
        bk_res_json(req, 200, json_pack("{s:s}", "late", "yes"));
        break;
    case SLOW_DOWN:
        bk_res_header(req, "Retry-After", "0");
        bk_res_problem(req, 429, "slow down", NULL);
        break;
    default:
        bk_res_json(req, 200, json_pack("{s:s, s:s}", "ok", "yes", "method", bk_req_method(req)));
    }
}

static void big(bk_req_t *req, void *ud)
{
    (void)ud;
    char body[4096];
    memset(body, 'x', sizeof body);
    bk_res_bytes(req, 200, "text/plain", body, sizeof body);
}

/* What the call's trace headers said, as the server read them. */
static void traced(bk_req_t *req, void *ud)
{
    (void)ud;
    const bk_trace_t *t = bk_req_trace(req);
    bk_res_json(req, 200, json_pack("{s:s?, s:s?, s:s, s:s}", "traceparent", bk_req_header(req, "traceparent"),
                                    "tracestate", bk_req_header(req, "tracestate"), "trace_id", t->trace_id,
                                    "parent_id", t->parent_id));
}

static void setup(void)
{
    atomic_store(&mode, OK);
    atomic_store(&hits, 0);
    atomic_store(&saw_key, 0);
    gate_reset();
    ck_assert_int_eq(bk_clock_fake_new(0, &clk), BK_OK);
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    o.shutdown_timeout_ns = 100 * BK_NSEC_PER_MSEC;
    ck_assert_int_eq(bk_http_server_new(&o, &srv, NULL), BK_OK);
    bk_http_route_opts_t ro = {.flags = BK_HTTP_BLOCKING}; /* HANG must not block the loop */
    static const char *const methods[] = {"GET", "POST", "PUT"};
    for (size_t i = 0; i < 3; i++)
        ck_assert_int_eq(bk_http_route(srv, methods[i], "/api/{what}", on_any, NULL, &ro), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/big", big, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/traced", traced, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(srv, NULL), BK_OK);
    snprintf(base_url, sizeof base_url, "http://127.0.0.1:%u", bk_http_server_port(srv));
}

static void teardown(void)
{
    gate_release();
    bk_http_server_free(srv);
    srv = NULL;
    bk_clock_free(clk);
}

/* ------------------------------------------------------------------ helpers */
static bk_upstream_t *upstream(bk_metrics_t *reg, unsigned attempts, int64_t timeout_ns)
{
    bk_breaker_opts_t bo;
    bk_breaker_opts_init(&bo);
    bo.window_size = 10;
    bo.min_calls = 5;
    bo.open_ns = 30 * SEC;
    bo.half_open_calls = 2;
    bk_retry_opts_t ro;
    bk_retry_opts_init(&ro);
    ro.max_attempts = attempts;
    ro.base_ns = 1 * MS;
    ro.cap_ns = 2 * MS;
    ro.jitter = BK_JITTER_NONE;
    bk_upstream_opts_t o;
    bk_upstream_opts_init(&o);
    o.timeout_ns = timeout_ns;
    o.breaker = &bo;
    o.retry = &ro;
    o.metrics = reg;
    o.clock = clk; /* the breaker's open wait passes when the test says */
    bk_upstream_t *u;
    ck_assert_int_eq(bk_upstream_new("test", base_url, &o, &u, NULL), BK_OK);
    return u;
}

/* A call, with its error detail in *err (NULL: none wanted). */
static int call_err(bk_upstream_t *u, const char *method, const char *path, const char *key,
                    bk_upstream_response_t *res, bk_error_t *err)
{
    static const char *const json_type[] = {"Content-Type: application/json", NULL};
    bk_upstream_request_t rq = {.method = method, .path = path, .idempotency_key = key};
    if (method != NULL && strcmp(method, "POST") == 0) {
        rq.body = "{}";
        rq.body_len = 2;
        rq.headers = json_type;
    }
    return bk_upstream_call(u, &rq, res, err);
}

static int call(bk_upstream_t *u, const char *method, const char *path, const char *key,
                bk_upstream_response_t *res)
{
    return call_err(u, method, path, key, res, NULL);
}

static int64_t now_ns(void)
{
    return bk_clock_mono_ns(NULL);
}

/* ------------------------------------------------------------------ tests */
static json_t *traced_call(bk_upstream_t *u, const bk_trace_t *trace, const char *const *headers, int want)
{
    bk_upstream_request_t rq = {.path = "/traced", .trace = trace, .headers = headers};
    bk_upstream_response_t res;
    bk_error_t err;
    int rc = bk_upstream_call(u, &rq, &res, &err);
    ck_assert_msg(rc == want, "%s: %s", bk_err_name(rc), err.message);
    json_t *doc = rc == BK_OK ? json_loads(res.body, 0, NULL) : NULL;
    bk_upstream_response_free(&res);
    return doc;
}

START_TEST(a_call_given_a_trace_is_its_child_span)
{
    bk_upstream_t *u = upstream(NULL, 1, SEC);
    bk_trace_t t;
    ck_assert_int_eq(bk_trace_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=1,congo=2", &t),
                     BK_OK);
    json_t *doc = traced_call(u, &t, NULL, BK_OK);
    /* The same trace; the server's parent is the call's own span, a child of t's. */
    ck_assert_str_eq(json_string_value(json_object_get(doc, "trace_id")), t.trace_id);
    const char *parent = json_string_value(json_object_get(doc, "parent_id"));
    ck_assert_uint_eq(strlen(parent), 16);
    ck_assert_str_ne(parent, t.span_id);
    ck_assert_str_ne(parent, t.parent_id);
    char want[64];
    snprintf(want, sizeof want, "00-%s-%s-01", t.trace_id, parent);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "traceparent")), want);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "tracestate")), "rojo=1,congo=2");
    json_decref(doc);
    /* Without one, nothing is sent: the server began a trace of its own. */
    doc = traced_call(u, NULL, NULL, BK_OK);
    ck_assert(json_is_null(json_object_get(doc, "traceparent")));
    ck_assert_str_ne(json_string_value(json_object_get(doc, "trace_id")), t.trace_id);
    json_decref(doc);
    /* A trace and trace headers of the caller's, or a trace that is not one:
     * refused, and nothing is sent. */
    int before = atomic_load(&hits);
    static const char *const own[] = {"TraceParent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", NULL};
    ck_assert_ptr_null(traced_call(u, &t, own, BK_EINVAL));
    bk_trace_t bad = t;
    snprintf(bad.state, sizeof bad.state, "a=1\r\nX-Injected: yes");
    ck_assert_ptr_null(traced_call(u, &bad, NULL, BK_EINVAL));
    bad = t;
    memset(bad.trace_id, '0', 32);
    ck_assert_ptr_null(traced_call(u, &bad, NULL, BK_EINVAL));
    ck_assert_int_eq(atomic_load(&hits), before);
    bk_upstream_free(u);
}
END_TEST

START_TEST(answers_and_reuses_connections)
{
    bk_upstream_t *u = upstream(NULL, 3, 5 * SEC);
    bk_upstream_response_t res;
    unsigned connects = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(call(u, NULL, "/api/x", NULL, &res), BK_OK);
        ck_assert_int_eq(res.status, 200);
        ck_assert_str_eq(res.body, "{\"ok\":\"yes\",\"method\":\"GET\"}");
        ck_assert_uint_eq(res.attempts, 1);
        ck_assert_uint_eq(res.unanswered, 0);
        connects += res.connects;
        bk_upstream_response_free(&res);
    }
    ck_assert_uint_eq(connects, 1); /* one connection, kept alive */
    ck_assert_int_eq(call(u, "POST", "/api/x", NULL, &res), BK_OK);
    ck_assert_str_eq(res.body, "{\"ok\":\"yes\",\"method\":\"POST\"}");
    bk_upstream_response_free(&res);
    /* A 4xx is the caller's business: an answer, not a failure. */
    ck_assert_int_eq(call(u, NULL, "/nope", NULL, &res), BK_OK);
    ck_assert_int_eq(res.status, 404);
    bk_upstream_response_free(&res);
    ck_assert_int_eq(bk_breaker_state(bk_upstream_breaker(u)), BK_BREAKER_CLOSED);
    bk_upstream_free(u);
}
END_TEST

START_TEST(failures_open_the_breaker_then_calls_fail_fast_and_recover)
{
    bk_metrics_t *reg;
    ck_assert_int_eq(bk_metrics_new(&reg), BK_OK);
    bk_upstream_t *u = upstream(reg, 3, 5 * SEC);
    bk_upstream_response_t res;
    atomic_store(&mode, FAIL);
    bk_error_t err;
    /* It answered, with an error: 502 for our own caller. */
    ck_assert_int_eq(call_err(u, NULL, "/api/x", NULL, &res, &err), BK_EUPSTREAM);
    ck_assert_int_eq(bk_http_status_of(err.code), 502);
    ck_assert_str_eq(err.message, "upstream test answered HTTP 503 after 3 attempts");
    ck_assert_int_eq(res.status, 503);
    ck_assert_uint_eq(res.attempts, 3); /* retried */
    ck_assert_uint_eq(res.unanswered, 0); /* each attempt was answered */
    bk_upstream_response_free(&res);
    /* Failures 4 and 5 trip the breaker (min_calls 5); the third attempt is refused. */
    ck_assert_int_eq(call_err(u, NULL, "/api/x", NULL, &res, &err), BK_EUNAVAIL);
    ck_assert_int_eq(err.code, BK_EUNAVAIL);
    ck_assert_str_eq(err.message, "upstream test: circuit breaker open after 2 attempts");
    ck_assert_uint_eq(res.attempts, 2);
    bk_upstream_response_free(&res);
    ck_assert_int_eq(bk_breaker_state(bk_upstream_breaker(u)), BK_BREAKER_OPEN);
    ck_assert_int_eq(atomic_load(&hits), 5);

    /* Open: no request reaches the server, and each call returns in well under 1 ms. */
    enum { N = 101 };
    int64_t took[N];
    for (int i = 0; i < N; i++) {
        int64_t t = now_ns();
        ck_assert_int_eq(call_err(u, NULL, "/api/x", NULL, &res, &err), BK_EUNAVAIL);
        took[i] = now_ns() - t;
        ck_assert_int_eq(bk_http_status_of(err.code), 503);
        ck_assert_uint_eq(res.attempts, 0);
        ck_assert_ptr_nonnull(res.body); /* always a string, here empty */
        ck_assert_uint_eq(res.body_len, 0);
        bk_upstream_response_free(&res);
    }
    ck_assert_int_eq(atomic_load(&hits), 5);
    int64_t under = 0;
    for (int i = 0; i < N; i++)
        under += took[i] < 1 * MS;
    ck_assert_msg(under > N / 2, "only %lld of %d calls under 1 ms", (long long)under, N);

    /* The server recovers; after the open wait the trials close the breaker. */
    atomic_store(&mode, OK);
    bk_clock_fake_advance(clk, 30 * SEC);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(call_err(u, NULL, "/api/x", NULL, &res, &err), BK_OK);
        ck_assert_int_eq(err.code, BK_OK); /* cleared on entry */
        ck_assert_str_eq(err.message, "");
        bk_upstream_response_free(&res);
    }
    ck_assert_int_eq(bk_breaker_state(bk_upstream_breaker(u)), BK_BREAKER_CLOSED);

    char *text;
    ck_assert_int_eq(bk_metrics_render(reg, &text, NULL), BK_OK);
    const char *want[] = {
        "upstream_calls_total{name=\"test\",outcome=\"success\"} 2\n",
        "upstream_calls_total{name=\"test\",outcome=\"failure\"} 2\n",
        "upstream_calls_total{name=\"test\",outcome=\"rejected\"} 101\n",
        "breaker_state{name=\"test\"} 0\n",
        "breaker_calls_total{name=\"test\",outcome=\"failure\"} 5\n",
        "upstream_call_duration_seconds_count{name=\"test\"} 4\n", /* refused calls: not timed */
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(text, want[i]) != NULL, "missing %s in\n%s", want[i], text);
    free(text);
    bk_upstream_free(u);
    bk_metrics_free(reg);
}
END_TEST

START_TEST(a_hanging_upstream_times_out)
{
    bk_upstream_t *u = upstream(NULL, 1, 200 * MS);
    atomic_store(&mode, HANG);
    bk_upstream_response_t res;
    int64_t t = now_ns();
    bk_error_t err;
    ck_assert_int_eq(call_err(u, NULL, "/api/x", NULL, &res, &err), BK_ETIMEDOUT);
    int64_t took = now_ns() - t;
    ck_assert_int_eq(bk_http_status_of(err.code), 504);
    ck_assert_msg(strstr(err.message, "upstream test: attempt 1 timed out: ") == err.message, "%s",
                  err.message);
    ck_assert_msg(strstr(err.detail, "timed out") != NULL, "%s", err.detail); /* libcurl's words */
    ck_assert_int_ge(took, 190 * MS);
    ck_assert_int_lt(took, 3 * SEC);
    ck_assert_int_eq(res.status, 0);
    ck_assert_uint_eq(res.unanswered, 1); /* sent, and no answer: it may have been done */
    bk_upstream_response_free(&res);
    gate_release();
    bk_upstream_free(u);
}
END_TEST

START_TEST(non_idempotent_calls_retry_only_with_a_key)
{
    bk_upstream_t *u = upstream(NULL, 3, 5 * SEC);
    atomic_store(&mode, FAIL);
    bk_upstream_response_t res;
    ck_assert_int_eq(call(u, "POST", "/api/charge", NULL, &res), BK_EUPSTREAM);
    ck_assert_uint_eq(res.attempts, 1); /* a POST may have happened: never repeated */
    bk_upstream_response_free(&res);
    ck_assert_int_eq(call(u, "POST", "/api/charge", "order-42", &res), BK_EUPSTREAM);
    ck_assert_uint_eq(res.attempts, 3);
    bk_upstream_response_free(&res);
    ck_assert_int_eq(atomic_load(&saw_key), 3);
    ck_assert_int_eq(call(u, "POST", "/api/charge", "", &res), BK_EUPSTREAM);
    ck_assert_uint_eq(res.attempts, 1); /* an empty key is no key */
    bk_upstream_response_free(&res);
    ck_assert_int_eq(call(u, "PUT", "/api/x", NULL, &res), BK_EUNAVAIL); /* PUT is idempotent */
    ck_assert_uint_eq(res.attempts, 0); /* but the breaker opened at failure 5 */
    bk_upstream_response_free(&res);
    bk_upstream_free(u);
}
END_TEST

struct bg {
    bk_upstream_t *u;
    int rc;
};

static void *hang_call(void *arg)
{
    struct bg *b = arg;
    bk_upstream_response_t res;
    b->rc = call(b->u, NULL, "/api/slow", NULL, &res);
    bk_upstream_response_free(&res);
    return NULL;
}

START_TEST(a_full_bulkhead_refuses_at_once)
{
    bk_upstream_opts_t o;
    bk_upstream_opts_init(&o);
    o.max_concurrent = 1;
    o.clock = clk;
    bk_upstream_t *u;
    ck_assert_int_eq(bk_upstream_new("narrow", base_url, &o, &u, NULL), BK_OK);
    atomic_store(&mode, HANG);
    struct bg b = {u, -1};
    pthread_t th;
    pthread_create(&th, NULL, hang_call, &b);
    gate_wait_for(1); /* the one slot is in use, its request at the server */
    bk_upstream_response_t res;
    bk_error_t err;
    ck_assert_int_eq(call_err(u, NULL, "/api/x", NULL, &res, &err), BK_EBUSY);
    ck_assert_int_eq(bk_http_status_of(err.code), 503);
    ck_assert_str_eq(err.message, "upstream narrow: all 1 slots in use");
    ck_assert_uint_eq(res.attempts, 0);
    bk_upstream_response_free(&res);
    gate_release();
    pthread_join(th, NULL);
    ck_assert_int_eq(b.rc, BK_OK);
    ck_assert_int_eq(call(u, NULL, "/api/x", NULL, &res), BK_OK);
    bk_upstream_response_free(&res);
    bk_upstream_free(u);
}
END_TEST

START_TEST(slow_down_is_retried_but_does_not_trip)
{
    bk_upstream_t *u = upstream(NULL, 2, 5 * SEC);
    atomic_store(&mode, SLOW_DOWN);
    bk_upstream_response_t res;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(call(u, NULL, "/api/x", NULL, &res), BK_EUPSTREAM); /* it answered */
        ck_assert_int_eq(res.status, 429);
        ck_assert_uint_eq(res.attempts, 2);
        bk_upstream_response_free(&res);
    }
    ck_assert_int_eq(bk_breaker_state(bk_upstream_breaker(u)), BK_BREAKER_CLOSED);
    bk_upstream_free(u);
}
END_TEST

START_TEST(limits_and_bad_input)
{
    bk_upstream_opts_t o;
    bk_upstream_opts_init(&o);
    o.max_response_bytes = 100;
    bk_upstream_t *u;
    ck_assert_int_eq(bk_upstream_new("small", base_url, &o, &u, NULL), BK_OK);
    bk_upstream_response_t res;
    bk_error_t err;
    /* An answer too large to take is a bad answer: 502. */
    ck_assert_int_eq(call_err(u, NULL, "/big", NULL, &res, &err), BK_EUPSTREAM);
    ck_assert_str_eq(err.message, "upstream small answered more than 100 bytes");
    ck_assert_int_eq(bk_http_status_of(err.code), 502);
    ck_assert_uint_eq(res.attempts, 1); /* not retried */
    bk_upstream_response_free(&res);
    bk_upstream_request_t rq = {.path = "/api/x",
                                .headers = (const char *const[]){"X-A: b", "X-A: b\r\nX-Evil: 1", NULL}};
    ck_assert_int_eq(bk_upstream_call(u, &rq, &res, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "request header 1 has a line break");
    bk_upstream_response_free(&res);
    rq = (bk_upstream_request_t){.path = "/a b"};
    ck_assert_int_eq(bk_upstream_call(u, &rq, &res, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "the request path does not start with / or has a space");
    bk_upstream_response_free(&res);
    rq = (bk_upstream_request_t){.method = "POST", .path = "/api/x", .body_len = 5};
    ck_assert_int_eq(bk_upstream_call(u, &rq, &res, NULL), BK_EINVAL); /* length, no body */
    ck_assert_uint_eq(res.attempts, 0);
    ck_assert_ptr_nonnull(res.body);
    bk_upstream_response_free(&res);
    ck_assert_int_eq(atomic_load(&hits), 0); /* bad requests never left the process */
    bk_upstream_free(u);

    /* A bad base URL: why, and never the URL itself (it may carry a password). */
    ck_assert_int_eq(bk_upstream_new("small", "ftp://user:secret@example", &o, &u, &err), BK_EINVAL);
    ck_assert_ptr_null(u);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_str_eq(err.message, "upstream small: bad base URL: its scheme is not http:// or https://");
    ck_assert_int_eq(bk_upstream_new("small", "http://user:secret@[::1", &o, &u, &err), BK_EINVAL);
    ck_assert_msg(strncmp(err.message, "upstream small: bad base URL: ", 30) == 0 &&
                      strlen(err.message) > 30 && strstr(err.message, "secret") == NULL,
                  "%s", err.message);
    ck_assert_int_eq(bk_upstream_new("small", "http://127.0.0.1:1/?a=b", &o, &u, &err), BK_EINVAL);
    ck_assert_str_eq(err.message,
                     "upstream small: bad base URL: it has a query, which the request paths would follow");
    ck_assert_int_eq(bk_upstream_new("small", NULL, &o, &u, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "upstream small: no base URL");
    ck_assert_int_eq(bk_upstream_new(NULL, base_url, &o, &u, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "an upstream needs a name");
    o.deadline_ns = 0;
    ck_assert_int_eq(bk_upstream_new("small", base_url, &o, &u, &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "upstream small: option deadline_ns out of range");
}
END_TEST

START_TEST(an_unreachable_upstream_is_unavailable)
{
    bk_upstream_opts_t o;
    bk_upstream_opts_init(&o);
    bk_retry_opts_t ro;
    bk_retry_opts_init(&ro);
    ro.base_ns = 1 * MS;
    ro.cap_ns = 1 * MS;
    o.retry = &ro;
    bk_upstream_t *u; /* nothing listens on port 1 */
    ck_assert_int_eq(bk_upstream_new("gone", "http://127.0.0.1:1", &o, &u, NULL), BK_OK);
    bk_upstream_response_t res;
    bk_error_t err;
    ck_assert_int_eq(call_err(u, NULL, "/", NULL, &res, &err), BK_EUNAVAIL);
    ck_assert_int_eq(bk_http_status_of(err.code), 503);
    ck_assert_msg(strncmp(err.message, "upstream gone unreachable after 3 attempts: ", 44) == 0, "%s",
                  err.message);
    ck_assert_msg(strstr(err.detail, "127.0.0.1") != NULL, "%s", err.detail); /* libcurl's words */
    ck_assert_int_eq(res.status, 0);
    ck_assert_uint_eq(res.attempts, 3);
    ck_assert_uint_eq(res.unanswered, 0); /* never connected: nothing sent */
    bk_upstream_response_free(&res);
    bk_upstream_free(u);
}
END_TEST

START_TEST(defaults_and_opts_init)
{
    bk_upstream_opts_t o;
    memset(&o, 0x5a, sizeof o);
    bk_upstream_opts_init(&o);
    ck_assert_int_eq(o.connect_timeout_ns, 1 * SEC);
    ck_assert_int_eq(o.timeout_ns, 5 * SEC);
    ck_assert_int_eq(o.deadline_ns, 15 * SEC);
    ck_assert_uint_eq(o.max_response_bytes, 8u << 20);
    ck_assert_uint_eq(o.max_concurrent, 64);
    ck_assert_int_eq(o.max_wait_ns, 0);
    ck_assert_ptr_null(o.breaker);
    ck_assert_ptr_null(o.retry);
    ck_assert_ptr_null(o.metrics);
    ck_assert_ptr_null(o.clock);
    for (size_t i = 0; i < 8; i++)
        ck_assert_uint_eq(o.reserved_[i], 0);
    /* NULL options: the defaults. */
    bk_upstream_t *u;
    bk_error_t err;
    ck_assert_int_eq(bk_upstream_new("plain", base_url, NULL, &u, &err), BK_OK);
    ck_assert_int_eq(err.code, BK_OK);
    bk_upstream_response_t res;
    ck_assert_int_eq(call(u, NULL, "/api/x", NULL, &res), BK_OK);
    ck_assert_int_eq(res.status, 200);
    bk_upstream_response_free(&res);
    ck_assert_int_eq(bk_breaker_state(bk_upstream_breaker(u)), BK_BREAKER_CLOSED);
    bk_upstream_free(u);
}
END_TEST

START_TEST(a_passed_deadline_times_out)
{
    bk_retry_opts_t ro;
    bk_retry_opts_init(&ro);
    ro.base_ns = 10 * SEC; /* the first retry would start after the deadline */
    ro.cap_ns = 10 * SEC;
    ro.jitter = BK_JITTER_NONE;
    bk_upstream_opts_t o;
    bk_upstream_opts_init(&o);
    o.deadline_ns = 5 * SEC;
    o.retry = &ro;
    o.clock = clk;
    bk_upstream_t *u;
    ck_assert_int_eq(bk_upstream_new("late", base_url, &o, &u, NULL), BK_OK);
    atomic_store(&mode, FAIL);
    bk_upstream_response_t res;
    bk_error_t err;
    ck_assert_int_eq(call_err(u, NULL, "/api/x", NULL, &res, &err), BK_ETIMEDOUT);
    ck_assert_int_eq(bk_http_status_of(err.code), 504);
    ck_assert_str_eq(err.message, "upstream late: the call's deadline of 5000 ms passed after 1 attempts");
    ck_assert_str_eq(err.detail, "");
    ck_assert_int_eq(res.status, 503); /* what it last answered */
    ck_assert_uint_eq(res.attempts, 1);
    bk_upstream_response_free(&res);
    bk_upstream_free(u);
}
END_TEST

START_TEST(retry_waits_advance_the_fake_clock)
{
    /* The wait between attempts is a bk_clock_sleep_ns on the upstream's clock: on
     * a fake one, two waits of 10 s advance it by 20 s instead of sleeping. */
    bk_retry_opts_t ro;
    bk_retry_opts_init(&ro);
    ro.max_attempts = 3;
    ro.base_ns = 10 * SEC;
    ro.cap_ns = 10 * SEC;
    ro.jitter = BK_JITTER_NONE;
    bk_upstream_opts_t o;
    bk_upstream_opts_init(&o);
    o.deadline_ns = 60 * SEC;
    o.retry = &ro;
    o.clock = clk;
    bk_upstream_t *u;
    ck_assert_int_eq(bk_upstream_new("patient", base_url, &o, &u, NULL), BK_OK);
    atomic_store(&mode, FAIL);
    int64_t t0 = bk_clock_mono_ns(clk);
    bk_upstream_response_t res;
    ck_assert_int_eq(call(u, NULL, "/api/x", NULL, &res), BK_EUPSTREAM);
    ck_assert_uint_eq(res.attempts, 3);
    ck_assert_int_eq(bk_clock_mono_ns(clk) - t0, 20 * SEC);
    bk_upstream_response_free(&res);
    bk_upstream_free(u);
}
END_TEST

START_TEST(a_spent_retry_budget_is_busy)
{
    /* Two tokens: the first failure leaves one, not more than half: no retry. */
    bk_retry_budget_opts_t bo;
    bk_retry_budget_opts_init(&bo);
    bo.max_tokens = 2;
    bk_retry_budget_t *budget;
    ck_assert_int_eq(bk_retry_budget_new(&bo, &budget), BK_OK);
    bk_retry_opts_t ro;
    bk_retry_opts_init(&ro);
    ro.base_ns = 1 * MS;
    ro.cap_ns = 1 * MS;
    ro.budget = budget;
    bk_upstream_opts_t o;
    bk_upstream_opts_init(&o);
    o.retry = &ro;
    bk_upstream_t *u;
    ck_assert_int_eq(bk_upstream_new("thrifty", base_url, &o, &u, NULL), BK_OK);
    atomic_store(&mode, FAIL);
    bk_upstream_response_t res;
    bk_error_t err;
    ck_assert_int_eq(call_err(u, NULL, "/api/x", NULL, &res, &err), BK_EBUSY);
    ck_assert_int_eq(bk_http_status_of(err.code), 503);
    ck_assert_str_eq(err.message, "upstream thrifty: retry budget spent after 1 attempts");
    ck_assert_uint_eq(res.attempts, 1);
    bk_upstream_response_free(&res);
    bk_upstream_free(u);
    bk_retry_budget_free(budget);
}
END_TEST

static Suite *upstream_suite(void)
{
    Suite *s = suite_create("upstream");
    TCase *tc = tcase_create("against a local server");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, answers_and_reuses_connections);
    tcase_add_test(tc, a_call_given_a_trace_is_its_child_span);
    tcase_add_test(tc, failures_open_the_breaker_then_calls_fail_fast_and_recover);
    tcase_add_test(tc, a_hanging_upstream_times_out);
    tcase_add_test(tc, non_idempotent_calls_retry_only_with_a_key);
    tcase_add_test(tc, a_full_bulkhead_refuses_at_once);
    tcase_add_test(tc, slow_down_is_retried_but_does_not_trip);
    tcase_add_test(tc, limits_and_bad_input);
    tcase_add_test(tc, an_unreachable_upstream_is_unavailable);
    tcase_add_test(tc, defaults_and_opts_init);
    tcase_add_test(tc, a_passed_deadline_times_out);
    tcase_add_test(tc, retry_waits_advance_the_fake_clock);
    tcase_add_test(tc, a_spent_retry_budget_is_busy);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(upstream_suite());
}
