/* Conditional requests (bk_req_if_match, bk_req_if_none_match) over real
 * sockets: 304 for a cached representation, 412 for a lost update, strong and
 * weak comparison, lists, "*", quoted commas and invalid fields (RFC 9110).
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include <backend/backend.h>

#include "check_main.h"
#include "http/client.h"

static bk_http_server_t *srv;
static uint16_t port;

/* The document's entity tag is the route's user data; "none" stands for a
 * resource that does not exist yet. */
static void h_doc(bk_req_t *req, void *ud)
{
    const char *etag = strcmp(ud, "none") == 0 ? NULL : ud;
    bool write = strcmp(bk_req_method(req), "GET") != 0 && strcmp(bk_req_method(req), "HEAD") != 0;
    if (write && bk_req_if_match(req, etag))
        return;
    if (bk_req_if_none_match(req, etag))
        return;
    bk_res_json(req, write ? 201 : 200, json_pack("{s:s}", "doc", "body"));
}

static void setup(void)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    ck_assert_int_eq(bk_http_server_new(&o, &srv, NULL), BK_OK);
    static const char *const methods[] = {"GET", "HEAD", "PUT", "DELETE"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(bk_http_route(srv, methods[i], "/doc", h_doc, "\"v2\"", NULL), BK_OK);
        ck_assert_int_eq(bk_http_route(srv, methods[i], "/weak", h_doc, "W/\"v3\"", NULL), BK_OK);
        ck_assert_int_eq(bk_http_route(srv, methods[i], "/new", h_doc, "none", NULL), BK_OK);
        ck_assert_int_eq(bk_http_route(srv, methods[i], "/bad", h_doc, "v2", NULL), BK_OK);
    }
    ck_assert_int_eq(bk_http_server_start(srv, NULL), BK_OK);
    port = bk_http_server_port(srv);
}

static void teardown(void) { bk_http_server_free(srv); }

/* METHOD path with one header line (NULL: none); the status, and the
 * answer's ETag into etag (when not NULL; "" when absent). */
static int ask(const char *method, const char *path, const char *header, char *etag, size_t *body_len)
{
    char raw[2048];
    int n = snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: t\r\n%s%s%s\r\n", method, path,
                     header ? header : "", header ? "\r\n" : "",
                     strcmp(method, "PUT") == 0 ? "Content-Length: 0\r\n" : "");
    struct bkt_response r;
    ck_assert_int_eq(bkt_request(port, raw, (size_t)n, &r), 0);
    if (etag != NULL && bkt_header(&r, "ETag", etag, 128) == NULL)
        etag[0] = '\0';
    if (body_len != NULL)
        *body_len = r.body_len;
    int status = r.status;
    bkt_response_free(&r);
    return status;
}

static int status_of(const char *method, const char *path, const char *header)
{
    return ask(method, path, header, NULL, NULL);
}

START_TEST(if_none_match_answers_304_to_a_read_of_what_the_client_has)
{
    char etag[128];
    size_t len;
    ck_assert_int_eq(ask("GET", "/doc", NULL, etag, &len), 200);
    ck_assert_str_eq(etag, "\"v2\"");
    ck_assert_uint_gt(len, 0);
    ck_assert_int_eq(ask("GET", "/doc", "If-None-Match: \"v2\"", etag, &len), 304);
    ck_assert_str_eq(etag, "\"v2\""); /* a 304 names what it confirms */
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(status_of("HEAD", "/doc", "If-None-Match: \"v2\""), 304);
    /* The weak comparison: W/ on either side still matches. */
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: W/\"v2\""), 304);
    ck_assert_int_eq(status_of("GET", "/weak", "If-None-Match: \"v3\""), 304);
    ck_assert_int_eq(status_of("GET", "/weak", "If-None-Match: W/\"v3\""), 304);
    /* Lists, several lines, "*", empty members. */
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: \"v1\", \"v2\""), 304);
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: ,\t\"v0\",,\"v2\" ,"), 304);
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: \"a\"\r\nIf-None-Match: \"v2\""), 304);
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: *"), 304);
    /* A comma is part of a quoted tag. */
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: \"x,y\", \"v2\""), 304);
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: \"v2,x\""), 200);
    /* Other tags, and fields that are not lists of tags: the full answer. */
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: \"v1\""), 200);
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: \"V2\""), 200);
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: v2"), 200);
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: \"v2"), 200);
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: \"v2\" junk"), 200);
    ck_assert_int_eq(status_of("GET", "/doc", "If-None-Match: w/\"v2\""), 200);
    /* Nothing to match: "*" too goes on. */
    ck_assert_int_eq(ask("GET", "/new", "If-None-Match: *", etag, NULL), 200);
    ck_assert_str_eq(etag, "");
}
END_TEST

START_TEST(if_none_match_on_a_write_is_412_and_star_guards_a_create)
{
    ck_assert_int_eq(status_of("PUT", "/doc", "If-None-Match: \"v2\""), 412);
    ck_assert_int_eq(status_of("PUT", "/doc", "If-None-Match: *"), 412); /* exists already */
    ck_assert_int_eq(status_of("PUT", "/new", "If-None-Match: *"), 201); /* create only if absent */
    ck_assert_int_eq(status_of("PUT", "/doc", "If-None-Match: \"v1\""), 201);
}
END_TEST

START_TEST(if_match_lets_a_write_through_only_on_a_strong_match)
{
    ck_assert_int_eq(status_of("PUT", "/doc", NULL), 201);
    ck_assert_int_eq(status_of("PUT", "/doc", "If-Match: \"v2\""), 201);
    ck_assert_int_eq(status_of("PUT", "/doc", "If-Match: \"v1\", \"v2\""), 201);
    ck_assert_int_eq(status_of("DELETE", "/doc", "If-Match: *"), 201);
    /* The lost update it exists for. */
    ck_assert_int_eq(status_of("PUT", "/doc", "If-Match: \"v1\""), 412);
    /* Strong comparison: a weak tag on either side never matches. */
    ck_assert_int_eq(status_of("PUT", "/doc", "If-Match: W/\"v2\""), 412);
    ck_assert_int_eq(status_of("PUT", "/weak", "If-Match: W/\"v3\""), 412);
    ck_assert_int_eq(status_of("PUT", "/weak", "If-Match: \"v3\""), 412);
    /* "*" needs a current representation; a field that is not a list of tags
     * is not a guess a write goes ahead on. */
    ck_assert_int_eq(status_of("PUT", "/new", "If-Match: *"), 412);
    ck_assert_int_eq(status_of("PUT", "/doc", "If-Match: v2"), 412);
    ck_assert_int_eq(status_of("PUT", "/doc", "If-Match: \"v2\" \"v1\""), 412);
    /* Both: If-Match first, then If-None-Match. */
    ck_assert_int_eq(status_of("PUT", "/doc", "If-Match: \"v2\"\r\nIf-None-Match: \"v2\""), 412);
    ck_assert_int_eq(status_of("PUT", "/doc", "If-Match: \"v2\"\r\nIf-None-Match: \"v9\""), 201);
}
END_TEST

START_TEST(a_handler_tag_that_is_not_an_entity_tag_is_a_500)
{
    ck_assert_int_eq(status_of("GET", "/bad", NULL), 500);
    ck_assert_int_eq(status_of("PUT", "/bad", "If-Match: \"v2\""), 500);
}
END_TEST

static Suite *conditional_suite(void)
{
    Suite *s = suite_create("http_conditional");
    TCase *tc = tcase_create("conditional");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, if_none_match_answers_304_to_a_read_of_what_the_client_has);
    tcase_add_test(tc, if_none_match_on_a_write_is_412_and_star_guards_a_create);
    tcase_add_test(tc, if_match_lets_a_write_through_only_on_a_strong_match);
    tcase_add_test(tc, a_handler_tag_that_is_not_an_entity_tag_is_a_500);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(conditional_suite());
}
