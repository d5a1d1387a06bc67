/* bk_req_offload: an inline route answers what it can on the loop and hands the
 * rest to the worker pool; the route's after hooks follow the handoff, a full or
 * closed pool answers 503, misuse is refused, a client gone meanwhile leaks
 * nothing.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>

#include <backend/backend.h>

#include "check_main.h"
#include "gate.h"
#include "http/client.h"

static bk_http_server_t *srv;
static bk_workers_t *pool; /* the test's own, when it gives one */
static uint16_t port;

/* What ran, in order: B (route middleware before), H (handler), F (the
 * offloaded continuation), ~ (after). One request at a time writes it. */
static pthread_mutex_t trace_mu = PTHREAD_MUTEX_INITIALIZER;
static char trace[64];
static pthread_t handler_thread, fn_thread;
static atomic_int afters;

static void note(const char *what)
{
    pthread_mutex_lock(&trace_mu);
    strncat(trace, what, sizeof trace - strlen(trace) - 1);
    pthread_mutex_unlock(&trace_mu);
}

static void trace_reset(void)
{
    pthread_mutex_lock(&trace_mu);
    trace[0] = '\0';
    pthread_mutex_unlock(&trace_mu);
}

static int mw_before(bk_req_t *req, void *ud)
{
    (void)req, (void)ud;
    note("B");
    return BK_HTTP_NEXT;
}

static void mw_after(bk_req_t *req, void *ud)
{
    (void)req, (void)ud;
    note("~");
    atomic_fetch_add(&afters, 1);
}

static void fn_answer(bk_req_t *req, void *ud)
{
    fn_thread = pthread_self();
    note("F");
    if (ud != NULL) /* "gate": wait for the test */
        gate_pass();
    bk_res_json(req, 200, json_pack("{s:s}", "from", "worker"));
}

static void fn_silent(bk_req_t *req, void *ud)
{
    (void)req, (void)ud;
    note("F");
}

/* /p/here answers on the loop; anything else goes to fn_answer. */
static void h_maybe(bk_req_t *req, void *ud)
{
    handler_thread = pthread_self();
    note("H");
    if (strcmp(bk_req_param(req, "mode"), "here") == 0) {
        bk_res_json(req, 200, json_pack("{s:s}", "from", "loop"));
        return;
    }
    int rc = bk_req_offload(req, strcmp(bk_req_param(req, "mode"), "silent") == 0 ? fn_silent : fn_answer, ud);
    ck_assert(rc == BK_OK || bk_res_status(req) == 503);
}

/* The handler's misuses, each answered with the code bk_req_offload returned. */
static void h_misuse(bk_req_t *req, void *ud)
{
    (void)ud;
    const char *how = bk_req_param(req, "how");
    int rc;
    if (strcmp(how, "null") == 0) {
        rc = bk_req_offload(req, NULL, NULL);
        ck_assert_int_eq(bk_req_offload(NULL, fn_answer, NULL), BK_EINVAL);
    } else if (strcmp(how, "answered") == 0) {
        bk_res_json(req, 200, json_pack("{s:s}", "from", "loop"));
        ck_assert_int_eq(bk_req_offload(req, fn_answer, NULL), BK_EINVAL);
        return; /* the answer stands */
    } else if (strcmp(how, "twice") == 0) {
        ck_assert_int_eq(bk_req_offload(req, fn_answer, NULL), BK_OK);
        ck_assert_int_eq(bk_req_offload(req, fn_silent, NULL), BK_EINVAL);
        return; /* the first offload answers */
    } else { /* a route without the flag, or a blocking one */
        rc = bk_req_offload(req, fn_answer, NULL);
    }
    ck_assert_int_eq(bk_res_status(req), 0); /* nothing was done */
    bk_res_json(req, 200, json_pack("{s:s}", "rc", bk_err_name(rc)));
}

static void start(bk_workers_t *workers)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    o.workers = workers;
    ck_assert_int_eq(bk_http_server_new(&o, &srv, NULL), BK_OK);
    bk_http_middleware_t mw = {.name = "t", .before = mw_before, .after = mw_after};
    bk_http_route_opts_t ro = {.flags = BK_HTTP_OFFLOAD, .middleware = &mw, .nmiddleware = 1};
    ck_assert_int_eq(bk_http_route(srv, "GET", "/p/{mode}", h_maybe, NULL, &ro), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/gated/{mode}", h_maybe, "gate", &ro), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/misuse/{how}", h_misuse, NULL, &ro), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/inline/{how}", h_misuse, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/blocking/{how}", h_misuse, NULL,
                                   &(bk_http_route_opts_t){.flags = BK_HTTP_BLOCKING}),
                     BK_OK);
    ck_assert_int_eq(bk_http_server_start(srv, NULL), BK_OK);
    port = bk_http_server_port(srv);
}

static void setup(void)
{
    trace_reset();
    atomic_store(&afters, 0);
    gate_reset();
    srv = NULL;
    pool = NULL;
}

static void teardown(void)
{
    gate_release();
    bk_http_server_free(srv);
    bk_workers_free(pool);
}

static struct bkt_response get(const char *path)
{
    char raw[512];
    int n = snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    struct bkt_response r;
    ck_assert_int_eq(bkt_request(port, raw, (size_t)n, &r), 0);
    return r;
}

/* The member name of r's JSON body, which must be there. */
static char *member(const struct bkt_response *r, const char *name)
{
    json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
    ck_assert_msg(doc != NULL, "not JSON: %s", r->body);
    const char *v = json_string_value(json_object_get(doc, name));
    ck_assert_msg(v != NULL, "no %s in %s", name, r->body);
    char *copy = strdup(v);
    json_decref(doc);
    return copy;
}

static void assert_member(const struct bkt_response *r, const char *name, const char *want)
{
    char *got = member(r, name);
    ck_assert_str_eq(got, want);
    free(got);
}

START_TEST(the_loop_answers_hits_a_worker_the_rest)
{
    start(NULL); /* the OFFLOAD route alone makes the server create its pool */
    int fd = bkt_connect(port);
    /* Keep-alive: loop, worker, loop again on one connection. */
    const char *three = "GET /p/here HTTP/1.1\r\nHost: t\r\n\r\nGET /p/away HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /p/here HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(bkt_send_all(fd, three, strlen(three)), 0);
    const char *from[] = {"loop", "worker", "loop"};
    for (int i = 0; i < 3; i++) {
        struct bkt_response r;
        ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
        ck_assert_int_eq(r.status, 200);
        assert_member(&r, "from", from[i]);
        bkt_response_free(&r);
    }
    close(fd);
    /* The after hook runs once per request, after the continuation. */
    ck_assert_str_eq(trace, "BH~BHF~BH~");
    ck_assert(!pthread_equal(handler_thread, fn_thread));
}
END_TEST

START_TEST(misuse_is_refused_and_changes_nothing)
{
    start(NULL);
    static const char *const refused[] = {"/misuse/null", "/inline/plain", "/blocking/plain"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        struct bkt_response r = get(refused[i]);
        ck_assert_int_eq(r.status, 200);
        assert_member(&r, "rc", "BK_EINVAL");
        bkt_response_free(&r);
    }
    struct bkt_response r = get("/misuse/answered");
    ck_assert_int_eq(r.status, 200);
    assert_member(&r, "from", "loop");
    bkt_response_free(&r);
    r = get("/misuse/twice");
    ck_assert_int_eq(r.status, 200);
    assert_member(&r, "from", "worker");
    bkt_response_free(&r);
    ck_assert_int_eq(atomic_load(&afters), 3); /* once each on the route with middleware */
}
END_TEST

START_TEST(route_flags_checked)
{
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(NULL, &s, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(s, "GET", "/a", h_maybe, NULL,
                                   &(bk_http_route_opts_t){.flags = BK_HTTP_OFFLOAD | BK_HTTP_BLOCKING}),
                     BK_EINVAL);
    ck_assert_int_eq(bk_http_route(s, "GET", "/b", h_maybe, NULL, &(bk_http_route_opts_t){.flags = 1u << 10}),
                     BK_EINVAL);
    ck_assert_int_eq(bk_http_route(s, "GET", "/c", h_maybe, NULL,
                                   &(bk_http_route_opts_t){.flags = BK_HTTP_OFFLOAD | BK_HTTP_JSON}),
                     BK_OK);
    bk_http_server_free(s);
}
END_TEST

START_TEST(a_continuation_that_does_not_answer_gets_500)
{
    start(NULL);
    struct bkt_response r = get("/p/silent");
    ck_assert_int_eq(r.status, 500);
    bkt_response_free(&r);
    ck_assert_str_eq(trace, "BHF~");
}
END_TEST

START_TEST(a_full_queue_answers_503)
{
    bk_workers_opts_t wo;
    bk_workers_opts_init(&wo);
    wo.threads = 1;
    wo.queue_max = 1;
    ck_assert_int_eq(bk_workers_new(&wo, &pool), BK_OK);
    start(pool);
    const char *req = "GET /gated/away HTTP/1.1\r\nHost: t\r\n\r\n";
    int running = bkt_connect(port), queued = bkt_connect(port);
    ck_assert_int_eq(bkt_send_all(running, req, strlen(req)), 0);
    gate_wait_for(1); /* the one worker is at the gate */
    ck_assert_int_eq(bkt_send_all(queued, req, strlen(req)), 0);
    bk_workers_stats_t st;
    do /* the loop has queued the second: poll the pool's count, no sleep */
        bk_workers_stats(pool, &st);
    while (st.queued < 1);

    struct bkt_response r;
    ck_assert_int_eq(bkt_request(port, req, strlen(req), &r), 0);
    ck_assert_int_eq(r.status, 503);
    assert_member(&r, "code", "BK_EBUSY");
    char buf[16];
    ck_assert_str_eq(bkt_header(&r, "Retry-After", buf, sizeof buf), "1");
    bkt_response_free(&r);
    ck_assert_int_eq(atomic_load(&afters), 1); /* the refused one's, on the loop */

    gate_release();
    for (int *fd = (int[]){running, queued, -1}; *fd >= 0; fd++) {
        ck_assert_int_eq(bkt_read_response(*fd, &r, false), 0);
        ck_assert_int_eq(r.status, 200);
        assert_member(&r, "from", "worker");
        bkt_response_free(&r);
        close(*fd);
    }
    ck_assert_int_eq(atomic_load(&afters), 3);
}
END_TEST

START_TEST(a_closed_pool_answers_503)
{
    ck_assert_int_eq(bk_workers_new(NULL, &pool), BK_OK);
    ck_assert_int_eq(bk_workers_shutdown(pool, BK_WORKERS_DRAIN), BK_OK);
    start(pool);
    struct bkt_response r = get("/p/away");
    ck_assert_int_eq(r.status, 503);
    assert_member(&r, "code", "BK_ECLOSED");
    bkt_response_free(&r);
    r = get("/p/here"); /* what the loop answers needs no pool */
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
}
END_TEST

START_TEST(a_client_gone_meanwhile_leaks_nothing)
{
    start(NULL);
    const char *req = "GET /gated/away HTTP/1.1\r\nHost: t\r\n\r\n";
    int fd = bkt_connect(port);
    ck_assert_int_eq(bkt_send_all(fd, req, strlen(req)), 0);
    gate_wait_for(1);
    close(fd); /* gone while its continuation runs */
    gate_release();
    while (atomic_load(&afters) < 1) /* the after hook still runs */
        sched_yield();
    /* The server goes on serving; valgrind and ASan see that nothing leaked. */
    struct bkt_response r = get("/p/here");
    ck_assert_int_eq(r.status, 200);
    bkt_response_free(&r);
}
END_TEST

/* A client that half-closes after its request (shutdown of its write side)
 * still gets the answer of a request that is away, then the close. */
START_TEST(a_half_closed_client_gets_its_answer)
{
    start(NULL);
    const char *req = "GET /gated/away HTTP/1.1\r\nHost: t\r\n\r\n";
    int fd = bkt_connect(port);
    ck_assert_int_eq(bkt_send_all(fd, req, strlen(req)), 0);
    gate_wait_for(1);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0); /* the server reads EOF while it is away */
    gate_release();
    struct bkt_response r;
    ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
    ck_assert_int_eq(r.status, 200);
    char *from = member(&r, "from");
    ck_assert_str_eq(from, "worker");
    free(from);
    bkt_response_free(&r);
    ck_assert(bkt_wait_closed(fd));
    close(fd);
}
END_TEST

/* A request pipelined behind one that is away waits for it: the answers come
 * in order, on the same connection. */
START_TEST(a_pipelined_request_waits_for_the_one_away)
{
    start(NULL);
    const char *first = "GET /gated/away HTTP/1.1\r\nHost: t\r\n\r\n";
    const char *second = "GET /p/here HTTP/1.1\r\nHost: t\r\n\r\n";
    int fd = bkt_connect(port);
    ck_assert_int_eq(bkt_send_all(fd, first, strlen(first)), 0);
    gate_wait_for(1);
    ck_assert_int_eq(bkt_send_all(fd, second, strlen(second)), 0);
    gate_release();
    const char *want[] = {"worker", "loop"};
    for (int i = 0; i < 2; i++) {
        struct bkt_response r;
        ck_assert_int_eq(bkt_read_response(fd, &r, false), 0);
        ck_assert_int_eq(r.status, 200);
        char *from = member(&r, "from");
        ck_assert_str_eq(from, want[i]);
        free(from);
        bkt_response_free(&r);
    }
    close(fd);
}
END_TEST

static Suite *offload_suite(void)
{
    Suite *s = suite_create("http_offload");
    TCase *tc = tcase_create("offload");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, the_loop_answers_hits_a_worker_the_rest);
    tcase_add_test(tc, misuse_is_refused_and_changes_nothing);
    tcase_add_test(tc, route_flags_checked);
    tcase_add_test(tc, a_continuation_that_does_not_answer_gets_500);
    tcase_add_test(tc, a_full_queue_answers_503);
    tcase_add_test(tc, a_closed_pool_answers_503);
    tcase_add_test(tc, a_client_gone_meanwhile_leaks_nothing);
    tcase_add_test(tc, a_half_closed_client_gets_its_answer);
    tcase_add_test(tc, a_pipelined_request_waits_for_the_one_away);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(offload_suite());
}
