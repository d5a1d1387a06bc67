/* A host that replaces jansson's allocator (json_set_alloc_funcs) before anything
 * else: every piece of JSON text and every JSON value the library makes must be
 * freed through that allocator, never with free(3). The allocator below counts
 * its blocks and marks them with a header, so a block of ours freed by free(3)
 * (ASan: a bad free), or a foreign block freed through us (the magic word is
 * missing), is caught, and a leak shows as allocs != frees.
 * SPDX-License-Identifier: MIT */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include <backend/backend.h>

#include "check_main.h"
#include "http/client.h"

#define MAGIC 0x6a736f6e616c6c63ULL /* "jsonallc" */

typedef union header {
    struct {
        uint64_t magic;
        size_t size;
    } h;
    max_align_t align_;
} header_t;

static atomic_size_t allocs, frees, bad_frees;

static void *counting_malloc(size_t n)
{
    header_t *h = malloc(sizeof *h + n);
    if (h == NULL)
        return NULL;
    h->h.magic = MAGIC;
    h->h.size = n;
    atomic_fetch_add(&allocs, 1);
    return h + 1;
}

static void counting_free(void *p)
{
    if (p == NULL)
        return;
    header_t *h = (header_t *)p - 1;
    if (h->h.magic != MAGIC) {
        atomic_fetch_add(&bad_frees, 1);
        fprintf(stderr, "test_json_alloc: a block not from this allocator was freed through it\n");
        abort();
    }
    h->h.magic = 0; /* a second free of the same block is caught too */
    atomic_fetch_add(&frees, 1);
    free(h);
}

/* ------------------------------------------------------------------ modules */

static size_t lines_seen;

static void sink(bk_log_level_t level, const char *line, size_t len, void *ud)
{
    (void)level;
    (void)ud;
    ck_assert_uint_gt(len, 1);
    ck_assert_int_eq(line[len - 1], '\n');
    char *copy = strndup(line, len);
    ck_assert_ptr_nonnull(strstr(copy, "\"msg\":\"hello 42\""));
    free(copy);
    lines_seen++;
}

static void exercise_log(void)
{
    bk_log_opts_t o;
    bk_log_opts_init(&o);
    o.sink = sink;
    bk_log_t *log = NULL;
    ck_assert_int_eq(bk_log_new(&o, &log, NULL), BK_OK);
    bk_log(log, BK_LOG_INFO, json_pack("{s:s, s:i}", "user", "ann", "n", 3), "hello %d", 42);
    /* a key smuggled in as invalid UTF-8: the slow path (repaired copy) */
    json_t *f = json_object();
    json_object_set_new_nocheck(f, "bad\xff", json_stringn_nocheck("v\xfe", 2));
    bk_log(log, BK_LOG_INFO, f, "hello %d", 42);
    bk_log_free(log);
    ck_assert_uint_eq(lines_seen, 2);
}

static void exercise_jwt(void)
{
    bk_jwt_keys_t *ks = NULL;
    ck_assert_int_eq(bk_jwt_keys_new(&ks), BK_OK);
    static const char key[] = "0123456789abcdef0123456789abcdef";
    ck_assert_int_eq(bk_jwt_keys_add(ks, "k1", "HS256", key, sizeof key - 1, true, NULL), BK_OK);
    bk_jwt_issue_opts_t io;
    bk_jwt_issue_opts_init(&io);
    io.iss = "me";
    io.sub = "ann";
    json_t *claims = json_pack("{s:[s,s]}", "roles", "reader", "writer");
    char *tok = NULL;
    ck_assert_int_eq(bk_jwt_issue(ks, &io, claims, &tok, NULL), BK_OK);
    json_decref(claims);
    bk_jwt_verify_opts_t vo;
    bk_jwt_verify_opts_init(&vo);
    vo.iss = "me";
    json_t *got = NULL;
    ck_assert_int_eq(bk_jwt_verify(ks, &vo, tok, strlen(tok), &got), BK_OK);
    ck_assert_str_eq(json_string_value(json_object_get(got, "sub")), "ann");
    json_decref(got);
    vo.iss = "someone else"; /* a refusal takes its own paths */
    got = NULL;
    ck_assert_int_ne(bk_jwt_verify(ks, &vo, tok, strlen(tok), &got), BK_OK);
    json_decref(got);
    free(tok); /* the token is the library's malloc'ed text (bk_jwt_issue(3)) */
    bk_jwt_keys_free(ks);
}

static void exercise_schema(void)
{
    json_t *schema = json_loads("{\"type\":\"object\",\"properties\":{\"a/b~\":{\"type\":\"string\",\"maxLength\":2},"
                                "\"n\":{\"enum\":[1,{\"x\":[1,2,3]}]}},\"required\":[\"z\"],"
                                "\"$defs\":{\"d\":{\"minimum\":3}},\"additionalProperties\":{\"$ref\":\"#/$defs/d\"}}",
                                0, NULL);
    ck_assert_ptr_nonnull(schema);
    bk_schema_t *s = NULL;
    ck_assert_int_eq(bk_schema_compile(schema, NULL, &s, NULL), BK_OK);
    json_t *inst = json_loads("{\"a/b~\":\"\xc3\xa9t\xc3\xa9\",\"n\":{\"x\":[1]},\"q\":1}", 0, NULL);
    ck_assert_ptr_nonnull(inst);
    bk_schema_errors_t *errs = NULL;
    ck_assert_int_eq(bk_schema_validate(s, inst, BK_SCHEMA_ALL_ERRORS, &errs), BK_EINVAL);
    ck_assert_uint_ge(bk_schema_errors_count(errs), 3);
    json_t *ej = bk_schema_errors_json(errs);
    ck_assert_ptr_nonnull(ej);
    char *text = json_dumps(ej, JSON_COMPACT); /* the host's own dump, freed its way */
    ck_assert_ptr_nonnull(strstr(text, "/a~1b~0"));
    counting_free(text);
    json_decref(ej);
    bk_schema_errors_free(errs);
    json_decref(inst);
    bk_schema_free(s);
    json_decref(schema);
}

static int loader(const char *key, json_t **value, void *ud)
{
    (void)key;
    (void)ud;
    *value = json_pack("{s:s, s:[i,i]}", "from", "origin", "v", 1, 2);
    return *value ? BK_OK : BK_ENOMEM;
}

static void exercise_cache(void)
{
    bk_cache_t *c = NULL;
    ck_assert_int_eq(bk_cache_memory_new(NULL, &c), BK_OK);
    static const bk_cache_ttl_t ttl = {.fresh_ns = 60 * BK_NSEC_PER_SEC, .stale_ns = 0};
    json_t *v = json_pack("{s:i}", "a", 1);
    ck_assert_int_eq(bk_cache_set_json(c, "k", v, &ttl), BK_OK);
    json_decref(v);
    json_t *got = NULL;
    ck_assert_int_eq(bk_cache_fetch_json(c, "k", &ttl, loader, NULL, &got), BK_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(got, "a")), 1);
    json_decref(got);
    got = NULL;
    ck_assert_int_eq(bk_cache_fetch_json(c, "missing", &ttl, loader, NULL, &got), BK_OK); /* loads */
    ck_assert_str_eq(json_string_value(json_object_get(got, "from")), "origin");
    json_decref(got);
    bk_cache_free(c);
}

static void exercise_rbac(void)
{
    json_t *policy = json_loads("{\"roles\":{\"reader\":{\"permissions\":[\"doc:read\"]},"
                                "\"writer\":{\"inherits\":[\"reader\"],\"permissions\":[\"doc:write\"]}}}",
                                0, NULL);
    ck_assert_ptr_nonnull(policy);
    bk_rbac_t *r = NULL;
    ck_assert_int_eq(bk_rbac_load(policy, &r, NULL), BK_OK);
    const char *roles[] = {"writer", NULL};
    ck_assert(bk_rbac_allows(r, roles, NULL, "doc:read"));
    bk_rbac_free(r);
    json_decref(policy);
    /* a refused policy: its error paths (err->pointer) */
    policy = json_pack("{s:{s:{s:[s]}}}", "roles", "a/b", "inherits", "missing");
    bk_error_t err;
    r = NULL;
    ck_assert_int_ne(bk_rbac_load(policy, &r, &err), BK_OK);
    json_decref(policy);
}

static void hello(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{s:s, s:[i]}", "hello", "world", "n", 1));
}

/* The HTTP module's JSON answers, on the loopback interface: a handler's JSON, a
 * 422 with the schema's errors (query and body), a 404 problem. */
static void exercise_http(void)
{
    json_t *sj = json_loads("{\"type\":\"object\",\"properties\":{\"a~b\":{\"type\":\"integer\"}},"
                            "\"required\":[\"id\"]}",
                            0, NULL);
    bk_schema_t *schema = NULL;
    ck_assert_int_eq(bk_schema_compile(sj, NULL, &schema, NULL), BK_OK);
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    bk_http_server_t *srv = NULL;
    ck_assert_int_eq(bk_http_server_new(&o, &srv, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/hello", hello, NULL, NULL), BK_OK);
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.body_schema = schema;
    ck_assert_int_eq(bk_http_route(srv, "POST", "/hello", hello, NULL, &ro), BK_OK);
    ck_assert_int_eq(bk_http_server_start(srv, NULL), BK_OK);
    uint16_t port = bk_http_server_port(srv);
    const char *reqs[][2] = {
        {"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", "\"hello\":\"world\""},
        {"POST /hello HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n"
         "{\"a~b\":1}",
         "\"loc\""},
        {"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n", "\"status\":404"},
    };
    const int want[] = {200, 422, 404};
    for (size_t i = 0; i < 3; i++) {
        struct bkt_response r;
        ck_assert_int_eq(bkt_request(port, reqs[i][0], strlen(reqs[i][0]), &r), 0);
        ck_assert_int_eq(r.status, want[i]);
        ck_assert_msg(strstr(r.body, reqs[i][1]) != NULL, "%s", r.body);
        bkt_response_free(&r);
    }
    bk_http_server_free(srv);
    bk_schema_free(schema);
    json_decref(sj);
}

START_TEST(every_module_frees_through_janssons_allocator)
{
    exercise_log();
    exercise_jwt();
    exercise_schema();
    exercise_cache();
    exercise_rbac();
    exercise_http();
    size_t a = atomic_load(&allocs), f = atomic_load(&frees);
    ck_assert_msg(a > 0, "the counting allocator was never used");
    ck_assert_uint_eq(atomic_load(&bad_frees), 0);
    ck_assert_msg(a == f, "%zu blocks allocated through jansson's allocator, %zu freed through it", a, f);
}
END_TEST

static Suite *json_alloc_suite(void)
{
    Suite *s = suite_create("json_alloc");
    TCase *tc = tcase_create("json_alloc");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, every_module_frees_through_janssons_allocator);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Before any jansson allocation in the process (jansson requires it). */
    json_set_alloc_funcs(counting_malloc, counting_free);
    return bk_test_run(json_alloc_suite());
}
