/* W3C Trace Context on the HTTP server: a request continues a valid incoming
 * trace or begins one, has a span of its own, and its ids reach the access
 * line and the handler's lines (bk_req_log); nothing invalid is echoed.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include <backend/backend.h>

#include "check_main.h"
#include "http/client.h"

#define PARENT "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static bk_http_server_t *srv;
static bk_log_t *log_;
static uint16_t port;

/* Every line the server's logs wrote, in order. */
static pthread_mutex_t lines_mu = PTHREAD_MUTEX_INITIALIZER;
static char lines[64 * 1024];
static size_t nlines;

static void sink(bk_log_level_t level, const char *line, size_t len, void *ud)
{
    (void)level, (void)ud;
    pthread_mutex_lock(&lines_mu);
    if (nlines + len < sizeof lines) {
        memcpy(lines + nlines, line, len);
        nlines += len;
        lines[nlines] = '\0';
    }
    pthread_mutex_unlock(&lines_mu);
}

/* The last line whose "msg" is msg, parsed (the caller decrefs); fails the
 * test when there is none. */
static json_t *last_line(const char *msg)
{
    json_t *found = NULL;
    pthread_mutex_lock(&lines_mu);
    for (char *p = lines; *p;) {
        char *nl = strchr(p, '\n');
        json_t *doc = json_loadb(p, (size_t)(nl - p), 0, NULL);
        if (doc && strcmp(json_string_value(json_object_get(doc, "msg")), msg) == 0) {
            json_decref(found);
            found = doc;
        } else {
            json_decref(doc);
        }
        p = nl + 1;
    }
    pthread_mutex_unlock(&lines_mu);
    ck_assert_msg(found != NULL, "no \"%s\" line in:\n%s", msg, lines);
    return found;
}

/* Answers the request's span and logs a line of its own. */
static void h_traced(bk_req_t *req, void *ud)
{
    (void)ud;
    const bk_trace_t *t = bk_req_trace(req);
    ck_assert_str_eq(bk_req_trace_id(req), t->trace_id);
    ck_assert_str_eq(bk_req_span_id(req), t->span_id);
    bk_req_log(req, NULL, BK_LOG_INFO, json_pack("{s:s, s:s}", "order", "o-1", "trace_id", "forged"),
               "handled %s", "it");
    bk_res_json(req, 200,
                json_pack("{s:s, s:s, s:s, s:s, s:i}", "trace_id", t->trace_id, "span_id", t->span_id, "parent_id",
                          t->parent_id, "state", t->state, "flags", t->flags));
}

static void setup(void)
{
    nlines = 0;
    lines[0] = '\0';
    bk_log_opts_t lo;
    bk_log_opts_init(&lo);
    lo.sink = sink;
    ck_assert_int_eq(bk_log_new(&lo, &log_, NULL), BK_OK);
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    o.access_log = log_;
    o.log = log_;
    ck_assert_int_eq(bk_http_server_new(&o, &srv, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/traced/{id}", h_traced, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(srv, NULL), BK_OK);
    port = bk_http_server_port(srv);
}

static void teardown(void)
{
    bk_http_server_free(srv);
    bk_log_free(log_);
}

/* GET /traced/1 with the given header lines; its JSON body into *doc. */
static void get(const char *headers, struct bkt_response *r, json_t **doc)
{
    char raw[4096];
    int n = snprintf(raw, sizeof raw, "GET /traced/1 HTTP/1.1\r\nHost: t\r\n%s\r\n", headers);
    ck_assert_int_eq(bkt_request(port, raw, (size_t)n, r), 0);
    ck_assert_int_eq(r->status, 200);
    *doc = json_loadb(r->body, r->body_len, 0, NULL);
    ck_assert_ptr_nonnull(*doc);
}

static const char *str(const json_t *doc, const char *key) { return json_string_value(json_object_get(doc, key)); }

static bool is_hex(const char *s, size_t n) { return s && strlen(s) == n && strspn(s, "0123456789abcdef") == n; }

START_TEST(a_valid_traceparent_is_continued_and_logged)
{
    struct bkt_response r;
    json_t *doc;
    get("traceparent: " PARENT "\r\ntracestate: rojo=00f067aa0ba902b7, congo=t61rcWkgMzE\r\n", &r, &doc);
    ck_assert_str_eq(str(doc, "trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert_str_eq(str(doc, "parent_id"), "00f067aa0ba902b7");
    ck_assert(is_hex(str(doc, "span_id"), 16));
    ck_assert_str_ne(str(doc, "span_id"), "00f067aa0ba902b7");
    ck_assert_str_eq(str(doc, "state"), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "flags")), 1);
    char rid[256];
    ck_assert_ptr_nonnull(bkt_header(&r, "X-Request-ID", rid, sizeof rid));
    /* The access line and the handler's line name the same request and span. */
    json_t *access = last_line("request"), *mine = last_line("handled it");
    for (json_t *line = access; line; line = line == access ? mine : NULL) {
        ck_assert_str_eq(str(line, "trace_id"), str(doc, "trace_id"));
        ck_assert_str_eq(str(line, "span_id"), str(doc, "span_id"));
        ck_assert_str_eq(str(line, "request_id"), rid);
        ck_assert_str_eq(str(line, "route"), "/traced/{id}");
    }
    ck_assert_str_eq(str(mine, "order"), "o-1"); /* the caller's fields, but not over the request's ids */
    ck_assert_str_eq(str(mine, "level"), "info");
    json_decref(access);
    json_decref(mine);
    json_decref(doc);
    bkt_response_free(&r);
}
END_TEST

START_TEST(without_a_valid_traceparent_a_trace_begins_here)
{
    static const char *const headers[] = {
        "",
        "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01\r\n",
        "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\ntracestate: a=1\r\n",
        "traceparent: <script>alert(1)</script>\r\n",
        /* two traceparents: which one? neither */
        "traceparent: " PARENT "\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n",
    };
    char seen[8][33];
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        struct bkt_response r;
        json_t *doc;
        get(headers[i], &r, &doc);
        ck_assert(is_hex(str(doc, "trace_id"), 32));
        ck_assert_str_ne(str(doc, "trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
        ck_assert_str_ne(str(doc, "trace_id"), "0af7651916cd43dd8448eb211c80319c");
        ck_assert(is_hex(str(doc, "span_id"), 16));
        ck_assert_str_eq(str(doc, "parent_id"), "");
        ck_assert_str_eq(str(doc, "state"), ""); /* a tracestate belongs to its traceparent */
        for (size_t k = 0; k < i; k++)
            ck_assert_str_ne(seen[k], str(doc, "trace_id"));
        snprintf(seen[i], sizeof seen[i], "%s", str(doc, "trace_id"));
        /* Never echoed: not in the answer's headers, and not in the log. */
        ck_assert_ptr_null(strstr(r.head, "script"));
        ck_assert_ptr_null(strstr(r.head, "4BF92F"));
        json_decref(doc);
        bkt_response_free(&r);
    }
    pthread_mutex_lock(&lines_mu);
    ck_assert_ptr_null(strstr(lines, "script"));
    ck_assert_ptr_null(strstr(lines, "4BF92F"));
    pthread_mutex_unlock(&lines_mu);
}
END_TEST

START_TEST(tracestate_headers_are_joined_and_a_bad_one_dropped)
{
    struct bkt_response r;
    json_t *doc;
    get("traceparent: " PARENT "\r\ntracestate: a=1\r\ntracestate: b=2\r\n", &r, &doc);
    ck_assert_str_eq(str(doc, "state"), "a=1,b=2");
    json_decref(doc);
    bkt_response_free(&r);
    /* A bad tracestate goes; its traceparent stays. */
    get("traceparent: " PARENT "\r\ntracestate: a=1\r\ntracestate: A=2\r\n", &r, &doc);
    ck_assert_str_eq(str(doc, "state"), "");
    ck_assert_str_eq(str(doc, "trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    json_decref(doc);
    bkt_response_free(&r);
}
END_TEST

/* The access line's members, in their order, for a routed request and for a path
 * no route has (route null). */
START_TEST(the_access_line_names_the_request)
{
    static const char *const names[] = {"ts", "level", "msg", "method", "path", "route", "status", "bytes",
                                        "duration_us", "request_id", "trace_id", "span_id", "client"};
    struct bkt_response r;
    json_t *doc;
    get("", &r, &doc);
    json_t *line = last_line("request");
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(line, key, v) {
        ck_assert_uint_lt(i, sizeof names / sizeof *names);
        ck_assert_str_eq(key, names[i++]);
    }
    ck_assert_uint_eq(i, sizeof names / sizeof *names); /* no "user": nobody signed in */
    ck_assert_str_eq(str(line, "method"), "GET");
    ck_assert_str_eq(str(line, "path"), "/traced/1");
    ck_assert_int_eq(json_integer_value(json_object_get(line, "status")), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(line, "bytes")), (json_int_t)r.body_len);
    ck_assert(json_is_integer(json_object_get(line, "duration_us")));
    ck_assert_int_ge(json_integer_value(json_object_get(line, "duration_us")), 0);
    ck_assert_str_eq(str(line, "client"), "127.0.0.1");
    json_decref(line);
    json_decref(doc);
    bkt_response_free(&r);

    const char raw[] = "GET /nowhere?q=%22 HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(bkt_request(port, raw, sizeof raw - 1, &r), 0);
    ck_assert_int_eq(r.status, 404);
    line = last_line("request"); /* the writer's escaping: test_log's the_writer_agrees_with_jansson */
    ck_assert(json_is_null(json_object_get(line, "route")));
    ck_assert_int_eq(json_integer_value(json_object_get(line, "status")), 404);
    ck_assert_str_eq(str(line, "path"), "/nowhere");
    json_decref(line);
    bkt_response_free(&r);
}
END_TEST

static Suite *trace_suite(void)
{
    Suite *s = suite_create("http_trace");
    TCase *tc = tcase_create("trace");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_valid_traceparent_is_continued_and_logged);
    tcase_add_test(tc, without_a_valid_traceparent_a_trace_begins_here);
    tcase_add_test(tc, tracestate_headers_are_joined_and_a_bad_one_dropped);
    tcase_add_test(tc, the_access_line_names_the_request);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(trace_suite());
}
