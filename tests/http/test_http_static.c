/* Static files (bk_http_mount_static) over real sockets: content types,
 * validators and 304, byte ranges, index files and redirects, and hostile paths
 * (encoded "..", NUL, overlong UTF-8, symbolic links, dotfiles, FIFOs) that
 * must never reach a file outside the directory.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include <backend/backend.h>

#include "check_main.h"
#include "http/client.h"

#define OUTSIDE "OUTSIDE-SECRET"

static char top[64], root[96];
static bk_http_server_t *srv;
static uint16_t port;
static char *big; /* 1 MiB of a pattern */
enum { BIG = 1 << 20 };

static void put_file(const char *rel, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

#define PUT(rel, text) put_file(rel, text, strlen(text))

static void setup(void)
{
    snprintf(top, sizeof top, "/tmp/bk-static-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(top));
    snprintf(root, sizeof root, "%s/root", top);
    ck_assert_int_eq(mkdir(root, 0755), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/outside.txt", top);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(OUTSIDE, f);
    fclose(f);
    PUT("index.html", "<h1>home</h1>");
    PUT("a.txt", "hello world\n");
    PUT("style.css", "body{}");
    PUT("empty.txt", "");
    PUT(".secret", "hidden");
    big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)('a' + i % 26);
    put_file("data.bin", big, BIG);
    snprintf(path, sizeof path, "%s/sub", root);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    PUT("sub/index.html", "<p>sub</p>");
    PUT("sub/b.json", "{}");
    snprintf(path, sizeof path, "%s/noindex", root);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/escape", root);
    ck_assert_int_eq(symlink("../outside.txt", path), 0);
    snprintf(path, sizeof path, "%s/inside", root);
    ck_assert_int_eq(symlink("a.txt", path), 0);
    snprintf(path, sizeof path, "%s/updir", root);
    ck_assert_int_eq(symlink("..", path), 0);
    snprintf(path, sizeof path, "%s/fifo", root);
    ck_assert_int_eq(mkfifo(path, 0644), 0);

    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    ck_assert_int_eq(bk_http_server_new(&o, &srv, NULL), BK_OK);
    bk_error_t err;
    ck_assert_int_eq(bk_http_mount_static(srv, "/static", root, NULL, &err), BK_OK);
    bk_http_static_opts_t so;
    bk_http_static_opts_init(&so);
    so.dotfiles = true;
    so.index = NULL;
    so.cache_control = "public, max-age=60";
    ck_assert_int_eq(bk_http_mount_static(srv, "/dot/", root, &so, &err), BK_OK);
    ck_assert_int_eq(bk_http_server_start(srv, NULL), BK_OK);
    port = bk_http_server_port(srv);
}

static void teardown(void)
{
    bk_http_server_free(srv);
    free(big);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    ck_assert_int_eq(system(cmd), 0);
}

/* METHOD target with header lines (each ending in \r\n, or NULL). */
static struct bkt_response ask(const char *method, const char *target, const char *headers)
{
    char raw[2048];
    int n = snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n", method, target, headers ? headers : "");
    struct bkt_response r;
    ck_assert_int_eq(bkt_request(port, raw, (size_t)n, &r), 0);
    return r;
}

static const char *hdr(const struct bkt_response *r, const char *name)
{
    static char buf[4][512];
    static int next;
    char *b = buf[next++ % 4];
    return bkt_header(r, name, b, sizeof buf[0]) ? b : "";
}

static void ck_body(const char *target, const char *headers, int status, const char *body)
{
    struct bkt_response r = ask("GET", target, headers);
    ck_assert_msg(r.status == status, "%s: %d, want %d", target, r.status, status);
    ck_assert_uint_eq(r.body_len, strlen(body));
    ck_assert(memcmp(r.body, body, r.body_len) == 0);
    bkt_response_free(&r);
}

START_TEST(a_file_is_served_with_its_type_and_validators)
{
    struct bkt_response r = ask("GET", "/static/a.txt", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "hello world\n");
    ck_assert_str_eq(hdr(&r, "Content-Type"), "text/plain; charset=utf-8");
    ck_assert_str_eq(hdr(&r, "Content-Length"), "12");
    ck_assert_str_eq(hdr(&r, "Accept-Ranges"), "bytes");
    ck_assert_str_eq(hdr(&r, "Cache-Control"), "no-cache");
    char etag[128], modified[64];
    snprintf(etag, sizeof etag, "%s", hdr(&r, "ETag"));
    snprintf(modified, sizeof modified, "%s", hdr(&r, "Last-Modified"));
    ck_assert_int_eq(etag[0], '"');
    ck_assert_uint_eq(strlen(modified), 29);
    ck_assert_ptr_nonnull(strstr(modified, " GMT"));
    bkt_response_free(&r);
    /* HEAD: the same head, no body. */
    r = ask("HEAD", "/static/a.txt", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(hdr(&r, "Content-Length"), "12");
    ck_assert_str_eq(hdr(&r, "ETag"), etag);
    ck_assert_uint_eq(r.body_len, 0);
    bkt_response_free(&r);
    /* Revalidation: by tag, by date; the tag wins when both come. */
    char h[256];
    snprintf(h, sizeof h, "If-None-Match: %s\r\n", etag);
    r = ask("GET", "/static/a.txt", h);
    ck_assert_int_eq(r.status, 304);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_str_eq(hdr(&r, "ETag"), etag);
    bkt_response_free(&r);
    snprintf(h, sizeof h, "If-Modified-Since: %s\r\n", modified);
    r = ask("GET", "/static/a.txt", h);
    ck_assert_int_eq(r.status, 304);
    bkt_response_free(&r);
    ck_body("/static/a.txt", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n", 200, "hello world\n");
    snprintf(h, sizeof h, "If-None-Match: \"other\"\r\nIf-Modified-Since: %s\r\n", modified);
    ck_body("/static/a.txt", h, 200, "hello world\n");
    ck_body("/static/a.txt", "If-Modified-Since: yesterday\r\n", 200, "hello world\n");
    /* Types by extension. */
    static const char *const types[][2] = {
        {"/static/style.css", "text/css; charset=utf-8"},
        {"/static/sub/b.json", "application/json"},
        {"/static/data.bin", "application/octet-stream"},
        {"/static/", "text/html; charset=utf-8"},
    };
    for (size_t i = 0; i < 4; i++) {
        r = ask("HEAD", types[i][0], NULL);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(hdr(&r, "Content-Type"), types[i][1]);
        bkt_response_free(&r);
    }
    ck_body("/static/empty.txt", NULL, 200, "");
    /* Only GET and HEAD. */
    r = ask("DELETE", "/static/a.txt", NULL);
    ck_assert_int_eq(r.status, 405);
    bkt_response_free(&r);
}
END_TEST

START_TEST(a_large_file_arrives_whole)
{
    struct bkt_response r = ask("GET", "/static/data.bin", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, BIG);
    ck_assert(memcmp(r.body, big, BIG) == 0);
    bkt_response_free(&r);
    r = ask("GET", "/static/data.bin", "Range: bytes=1000000-\r\n");
    ck_assert_int_eq(r.status, 206);
    ck_assert_uint_eq(r.body_len, BIG - 1000000);
    ck_assert(memcmp(r.body, big + 1000000, r.body_len) == 0);
    bkt_response_free(&r);
}
END_TEST

START_TEST(ranges_answer_206_or_416_or_the_whole_file)
{
    struct bkt_response r = ask("GET", "/static/a.txt", "Range: bytes=0-4\r\n");
    ck_assert_int_eq(r.status, 206);
    ck_assert_str_eq(r.body, "hello");
    ck_assert_str_eq(hdr(&r, "Content-Range"), "bytes 0-4/12");
    ck_assert_str_eq(hdr(&r, "Content-Length"), "5");
    char etag[128];
    snprintf(etag, sizeof etag, "%s", hdr(&r, "ETag"));
    bkt_response_free(&r);
    ck_body("/static/a.txt", "Range: bytes=6-\r\n", 206, "world\n");
    ck_body("/static/a.txt", "Range: bytes=-3\r\n", 206, "ld\n");
    ck_body("/static/a.txt", "Range: bytes=-100\r\n", 206, "hello world\n");
    ck_body("/static/a.txt", "Range: bytes=10-100\r\n", 206, "d\n");
    r = ask("GET", "/static/a.txt", "Range: bytes=12-\r\n");
    ck_assert_int_eq(r.status, 416);
    ck_assert_str_eq(hdr(&r, "Content-Range"), "bytes */12");
    bkt_response_free(&r);
    r = ask("GET", "/static/a.txt", "Range: bytes=-0\r\n");
    ck_assert_int_eq(r.status, 416);
    bkt_response_free(&r);
    /* Ignored: several ranges, a backwards one, another unit, junk. */
    ck_body("/static/a.txt", "Range: bytes=0-1,3-4\r\n", 200, "hello world\n");
    ck_body("/static/a.txt", "Range: bytes=5-2\r\n", 200, "hello world\n");
    ck_body("/static/a.txt", "Range: items=0-1\r\n", 200, "hello world\n");
    ck_body("/static/a.txt", "Range: bytes=x-1\r\n", 200, "hello world\n");
    ck_body("/static/a.txt", "Range: bytes=99999999999999999999999-\r\n", 200, "hello world\n");
    /* If-Range: the range only for the same representation. */
    char h[256];
    snprintf(h, sizeof h, "Range: bytes=0-4\r\nIf-Range: %s\r\n", etag);
    ck_body("/static/a.txt", h, 206, "hello");
    ck_body("/static/a.txt", "Range: bytes=0-4\r\nIf-Range: \"old\"\r\n", 200, "hello world\n");
}
END_TEST

START_TEST(directories_answer_their_index_or_a_redirect)
{
    ck_body("/static/", NULL, 200, "<h1>home</h1>");
    ck_body("/static/sub/", NULL, 200, "<p>sub</p>");
    ck_body("/static/sub//", NULL, 200, "<p>sub</p>");
    static const char *const redirects[][2] = {
        {"/static", "/static/"}, {"/static/sub", "/static/sub/"}, {"/static/sub?x=1", "/static/sub/?x=1"}};
    for (size_t i = 0; i < 3; i++) {
        struct bkt_response r = ask("GET", redirects[i][0], NULL);
        ck_assert_int_eq(r.status, 301);
        ck_assert_str_eq(hdr(&r, "Location"), redirects[i][1]);
        bkt_response_free(&r);
    }
    struct bkt_response r = ask("GET", "/static/noindex/", NULL);
    ck_assert_int_eq(r.status, 404); /* never a listing */
    bkt_response_free(&r);
    r = ask("GET", "/static/a.txt/", NULL);
    ck_assert_int_eq(r.status, 404);
    bkt_response_free(&r);
    /* A mount without an index, with dotfiles and its own Cache-Control. */
    r = ask("GET", "/dot/", NULL);
    ck_assert_int_eq(r.status, 404);
    bkt_response_free(&r);
    ck_body("/dot/.secret", NULL, 200, "hidden");
    r = ask("GET", "/dot/a.txt", NULL);
    ck_assert_str_eq(hdr(&r, "Cache-Control"), "public, max-age=60");
    bkt_response_free(&r);
}
END_TEST

START_TEST(hostile_paths_never_leave_the_directory)
{
    static const char *const paths[] = {
        "/static/../outside.txt",
        "/static/%2e%2e/outside.txt",
        "/static/%2E%2E/outside.txt",
        "/static/%2e%2e%2foutside.txt",
        "/static/..%2foutside.txt",
        "/static/sub/%2e%2e/%2e%2e/outside.txt",
        "/static/sub/..%2F..%2Foutside.txt",
        "/static/%252e%252e/outside.txt",
        "/static/..%5coutside.txt",
        "/static/%c0%ae%c0%ae/outside.txt",
        "/static/%c0%af..%c0%afoutside.txt",
        "/static/%e0%80%ae%e0%80%ae/outside.txt",
        "/static/a.txt%00.png",
        "/static/%00",
        "/static/%zz",
        "/static/%",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/escape",
        "/static/updir/outside.txt",
        "/static/inside",
        "/static/.secret",
        "/static/sub/../.secret",
        "/static/./a.txt",
        "/static/fifo",
        "/dot/../outside.txt",
        "/dot/%2e%2e/outside.txt",
        "/dot/updir/outside.txt",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct bkt_response r = ask("GET", paths[i], NULL);
        ck_assert_msg(r.status == 404 || r.status == 400, "%s: %d", paths[i], r.status);
        ck_assert_msg(strstr(r.body, OUTSIDE) == NULL && strstr(r.body, "hidden") == NULL &&
                          strstr(r.body, "root:") == NULL,
                      "%s: %s", paths[i], r.body);
        bkt_response_free(&r);
    }
    /* NUL, bad escapes and what is not UTF-8 are the client's error. */
    static const char *const bad[] = {"/static/a.txt%00.png", "/static/%zz", "/static/%c0%ae%c0%ae/outside.txt"};
    for (size_t i = 0; i < 3; i++) {
        struct bkt_response r = ask("GET", bad[i], NULL);
        ck_assert_msg(r.status == 400, "%s: %d", bad[i], r.status);
        bkt_response_free(&r);
    }
    /* The server is still well. */
    ck_body("/static/a.txt", NULL, 200, "hello world\n");
}
END_TEST

START_TEST(a_mount_is_checked_before_the_server_starts)
{
    bk_http_server_t *s;
    ck_assert_int_eq(bk_http_server_new(NULL, &s, NULL), BK_OK);
    bk_error_t err;
    ck_assert_int_eq(bk_http_mount_static(s, "/x", "/nonexistent/dir", NULL, &err), BK_ESYS);
    ck_assert_ptr_nonnull(strstr(err.message, "/nonexistent/dir"));
    ck_assert_int_eq(bk_http_mount_static(s, "x", root, NULL, &err), BK_EINVAL);
    bk_http_static_opts_t o;
    bk_http_static_opts_init(&o);
    o.index = "../index.html";
    ck_assert_int_eq(bk_http_mount_static(s, "/x", root, &o, &err), BK_EINVAL);
    bk_http_static_opts_init(&o);
    o.cache_control = "max-age=1\r\nX-Evil: 1";
    ck_assert_int_eq(bk_http_mount_static(s, "/x", root, &o, &err), BK_EINVAL);
    char file[256];
    snprintf(file, sizeof file, "%s/a.txt", root);
    ck_assert_int_eq(bk_http_mount_static(s, "/x", file, NULL, &err), BK_ESYS); /* not a directory */
    ck_assert_int_eq(bk_http_mount_static(NULL, "/x", root, NULL, NULL), BK_EINVAL);
    bk_http_server_free(s);
    ck_assert_int_eq(bk_http_mount_static(srv, "/late", root, NULL, &err), BK_EBUSY);
}
END_TEST

static Suite *static_suite(void)
{
    Suite *s = suite_create("http_static");
    TCase *tc = tcase_create("static");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_file_is_served_with_its_type_and_validators);
    tcase_add_test(tc, a_large_file_arrives_whole);
    tcase_add_test(tc, ranges_answer_206_or_416_or_the_whole_file);
    tcase_add_test(tc, directories_answer_their_index_or_a_redirect);
    tcase_add_test(tc, hostile_paths_never_leave_the_directory);
    tcase_add_test(tc, a_mount_is_checked_before_the_server_starts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(static_suite());
}
