/* gzip of answers (bk_http_opts_t.gzip_min_bytes) over real sockets: what
 * Accept-Encoding allows, what is too small or compressed already, Vary, the
 * weak ETag of a gzipped answer, HEAD, and that the bytes inflate back.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <zlib.h>

#include <backend/backend.h>

#include "check_main.h"
#include "http/client.h"

static bk_http_server_t *srv;
static uint16_t port;
static char *doc;      /* a 20 KB JSON document, as text */
static char dir[64];

static void h_big(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_bytes(req, 200, "application/json", doc, strlen(doc));
}

static void h_small(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{s:s}", "small", "yes"));
}

static void h_png(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_bytes(req, 200, "image/png", doc, strlen(doc));
}

static void h_tagged(bk_req_t *req, void *ud)
{
    (void)ud;
    if (bk_req_if_none_match(req, "\"e1\""))
        return;
    bk_res_bytes(req, 200, "text/plain; charset=utf-8", doc, strlen(doc));
}

static void h_encoded(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_header(req, "Content-Encoding", "br");
    bk_res_bytes(req, 200, "application/json", doc, strlen(doc));
}

static void start(size_t min_bytes)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    o.gzip_min_bytes = min_bytes;
    ck_assert_int_eq(bk_http_server_new(&o, &srv, NULL), BK_OK);
    static const char *const methods[] = {"GET", "HEAD"};
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(bk_http_route(srv, methods[i], "/big", h_big, NULL, NULL), BK_OK);
        ck_assert_int_eq(bk_http_route(srv, methods[i], "/small", h_small, NULL, NULL), BK_OK);
    }
    ck_assert_int_eq(bk_http_route(srv, "GET", "/png", h_png, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/tagged", h_tagged, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/encoded", h_encoded, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_mount_static(srv, "/files", dir, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(srv, NULL), BK_OK);
    port = bk_http_server_port(srv);
}

static void setup(void)
{
    json_t *items = json_array();
    for (int i = 0; i < 420; i++)
        json_array_append_new(items, json_pack("{s:i, s:s, s:b}", "id", i, "name", "a product name", "stock", i % 2));
    doc = json_dumps(items, JSON_COMPACT);
    json_decref(items);
    ck_assert_uint_gt(strlen(doc), 20000);
    snprintf(dir, sizeof dir, "/tmp/bk-gzip-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/doc.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(doc, f);
    fclose(f);
}

static void teardown(void)
{
    bk_http_server_free(srv);
    srv = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s/doc.json", dir);
    unlink(path);
    rmdir(dir);
    free(doc);
}

/* METHOD path, with Accept-Encoding: accept (and any header lines after it)
 * when accept is not NULL. */
static struct bkt_response ask(const char *method, const char *path, const char *accept)
{
    char raw[1024];
    int n = snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: t\r\n%s%s%s\r\n", method, path,
                     accept ? "Accept-Encoding: " : "", accept ? accept : "", accept ? "\r\n" : "");
    struct bkt_response r;
    ck_assert_int_eq(bkt_request(port, raw, (size_t)n, &r), 0);
    return r;
}

static const char *hdr(const struct bkt_response *r, const char *name)
{
    static char buf[4][256];
    static int next;
    char *b = buf[next++ % 4];
    return bkt_header(r, name, b, sizeof buf[0]) ? b : "";
}

/* The gzip member in body, inflated (the caller frees). */
static char *gunzip(const char *body, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(inflateInit2(&z, 15 + 16), Z_OK);
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    z.next_in = (Bytef *)body;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(inflate(&z, Z_FINISH), Z_STREAM_END);
    ck_assert_uint_eq(z.avail_in, 0); /* one member, nothing after it */
    *out_len = cap - z.avail_out;
    inflateEnd(&z);
    return out;
}

static bool gzipped(const char *path, const char *accept)
{
    struct bkt_response r = ask("GET", path, accept);
    ck_assert_int_eq(r.status, 200);
    bool yes = strcmp(hdr(&r, "Content-Encoding"), "gzip") == 0;
    bkt_response_free(&r);
    return yes;
}

START_TEST(a_large_json_answer_is_gzipped_for_a_client_that_accepts_it)
{
    start(1024);
    struct bkt_response r = ask("GET", "/big", "gzip, deflate, br");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(hdr(&r, "Content-Encoding"), "gzip");
    ck_assert_str_eq(hdr(&r, "Vary"), "Accept-Encoding");
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", r.body_len);
    ck_assert_str_eq(hdr(&r, "Content-Length"), cl);
    ck_assert_uint_lt(r.body_len, strlen(doc) / 4);
    size_t n;
    char *plain = gunzip(r.body, r.body_len, &n);
    ck_assert_uint_eq(n, strlen(doc));
    ck_assert(memcmp(plain, doc, n) == 0);
    free(plain);
    size_t get_len = r.body_len;
    bkt_response_free(&r);
    /* HEAD: the head the GET has. */
    r = ask("HEAD", "/big", "gzip");
    ck_assert_str_eq(hdr(&r, "Content-Encoding"), "gzip");
    snprintf(cl, sizeof cl, "%zu", get_len);
    ck_assert_str_eq(hdr(&r, "Content-Length"), cl);
    ck_assert_uint_eq(r.body_len, 0);
    bkt_response_free(&r);
    /* Without Accept-Encoding: the same bytes, and Vary all the same. */
    r = ask("GET", "/big", NULL);
    ck_assert_str_eq(hdr(&r, "Content-Encoding"), "");
    ck_assert_str_eq(hdr(&r, "Vary"), "Accept-Encoding");
    ck_assert_uint_eq(r.body_len, strlen(doc));
    bkt_response_free(&r);
}
END_TEST

START_TEST(accept_encoding_is_read_with_its_weights)
{
    start(1024);
    static const struct {
        const char *accept;
        bool gzip;
    } cases[] = {
        {"gzip", true},          {"GZIP", true},           {"x-gzip", true},
        {"*", true},             {"br;q=1, gzip;q=0.5", true}, {"gzip;q=0.001", true},
        {"gzip ; q=1.0", true},  {"gzip;q=0", false},      {"gzip;q=0.000", false},
        {"*;q=0", false},        {"identity", false},      {"gzip;q=0, *", false},
        {"br, deflate", false},  {"gzipx", false},         {"", false},
        {"gzip;q=", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(gzipped("/big", cases[i].accept) == cases[i].gzip, "Accept-Encoding: %s", cases[i].accept);
}
END_TEST

START_TEST(small_compressed_already_and_file_answers_go_as_they_are)
{
    start(1024);
    struct bkt_response r = ask("GET", "/small", "gzip");
    ck_assert_str_eq(hdr(&r, "Content-Encoding"), "");
    ck_assert_str_eq(hdr(&r, "Vary"), ""); /* it never varies */
    bkt_response_free(&r);
    r = ask("GET", "/png", "gzip");
    ck_assert_str_eq(hdr(&r, "Content-Encoding"), "");
    ck_assert_str_eq(hdr(&r, "Vary"), "");
    bkt_response_free(&r);
    r = ask("GET", "/encoded", "gzip");
    ck_assert_str_eq(hdr(&r, "Content-Encoding"), "br"); /* the handler's own, not twice */
    ck_assert_uint_eq(r.body_len, strlen(doc));
    bkt_response_free(&r);
    r = ask("GET", "/files/doc.json", "gzip");
    ck_assert_str_eq(hdr(&r, "Content-Encoding"), ""); /* sent from the file */
    ck_assert_uint_eq(r.body_len, strlen(doc));
    bkt_response_free(&r);
}
END_TEST

START_TEST(a_gzipped_answer_has_a_weak_etag_that_still_revalidates)
{
    start(1024);
    struct bkt_response r = ask("GET", "/tagged", "gzip");
    ck_assert_str_eq(hdr(&r, "Content-Encoding"), "gzip");
    ck_assert_str_eq(hdr(&r, "ETag"), "W/\"e1\"");
    bkt_response_free(&r);
    r = ask("GET", "/tagged", NULL);
    ck_assert_str_eq(hdr(&r, "ETag"), "\"e1\""); /* the identity bytes keep the strong tag */
    bkt_response_free(&r);
    r = ask("GET", "/tagged", "gzip\r\nIf-None-Match: W/\"e1\"");
    ck_assert_int_eq(r.status, 304);
    bkt_response_free(&r);
}
END_TEST

START_TEST(off_by_default)
{
    start(0);
    struct bkt_response r = ask("GET", "/big", "gzip");
    ck_assert_str_eq(hdr(&r, "Content-Encoding"), "");
    ck_assert_str_eq(hdr(&r, "Vary"), "");
    ck_assert_uint_eq(r.body_len, strlen(doc));
    bkt_response_free(&r);
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    ck_assert_uint_eq(o.gzip_min_bytes, 0);
}
END_TEST

static Suite *gzip_suite(void)
{
    Suite *s = suite_create("http_gzip");
    TCase *tc = tcase_create("gzip");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_large_json_answer_is_gzipped_for_a_client_that_accepts_it);
    tcase_add_test(tc, accept_encoding_is_read_with_its_weights);
    tcase_add_test(tc, small_compressed_already_and_file_answers_go_as_they_are);
    tcase_add_test(tc, a_gzipped_answer_has_a_weak_etag_that_still_revalidates);
    tcase_add_test(tc, off_by_default);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(gzip_suite());
}
