/* TLS on the HTTP server (bk_http_opts_t.tls_cert_file, tls_key_file,
 * bk_http_server_reload_tls), checked with curl, openssl s_client and an
 * OpenSSL client in the test: TLS 1.3 and ALPN http/1.1, TLS 1.0 and 1.1
 * refused, plain HTTP closed, bad files refused at start, a reload that keeps
 * open connections and serves the new certificate to new ones.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <backend/backend.h>

#include "check_main.h"
#include "http/client.h"

static char dir[64], cert[128], key[128];
static bk_http_server_t *srv;
static uint16_t port;

/* A self-signed P-256 certificate for 127.0.0.1 with the serial given, into
 * cert_path and key_path. */
static void make_cert(const char *cert_path, const char *key_path, const char *serial)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '%s' -out '%s' "
             "-days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost -set_serial %s "
             ">/dev/null 2>&1",
             key_path, cert_path, serial);
    ck_assert_msg(system(cmd) == 0, "openssl req failed: %s", cmd);
}

static void h_hello(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_bytes(req, 200, "text/plain", "hi", 2);
}

static int server_new(const char *c, const char *k, bk_http_server_t **out, bk_error_t *err)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    o.header_timeout_ns = 2 * BK_NSEC_PER_SEC;
    o.tls_cert_file = c;
    o.tls_key_file = k;
    return bk_http_server_new(&o, out, err);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/bk-tls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    make_cert(cert, key, "0x1001");
    bk_error_t err;
    ck_assert_msg(server_new(cert, key, &srv, &err) == BK_OK, "%s", err.message);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/hello", h_hello, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(srv, NULL), BK_OK);
    port = bk_http_server_port(srv);
}

static void teardown(void)
{
    bk_http_server_free(srv);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* cmd's standard output (and error), into a static buffer; *status its exit. */
static const char *run(const char *cmd, int *status)
{
    static char out[16384];
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

START_TEST(curl_and_s_client_get_tls_1_3_and_http_1_1)
{
    char cmd[512];
    int st;
    snprintf(cmd, sizeof cmd, "curl -sS --cacert '%s' -w ' %%{http_code} %%{http_version}' https://127.0.0.1:%u/hello 2>&1",
             cert, port);
    ck_assert_str_eq(run(cmd, &st), "hi 200 1.1");
    ck_assert_int_eq(st, 0);
    /* TLS 1.2 still works, with the server's cipher choice. */
    snprintf(cmd, sizeof cmd, "curl -sS --cacert '%s' --tls-max 1.2 https://127.0.0.1:%u/hello 2>&1", cert, port);
    ck_assert_str_eq(run(cmd, &st), "hi");
    snprintf(cmd, sizeof cmd,
             "openssl s_client -connect 127.0.0.1:%u -alpn h2,http/1.1 -CAfile '%s' -verify_return_error "
             "</dev/null 2>&1",
             port, cert);
    const char *out = run(cmd, &st);
    ck_assert_msg(strstr(out, "ALPN protocol: http/1.1") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "TLSv1.3") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "Verify return code: 0 (ok)") != NULL, "%s", out);
}
END_TEST

START_TEST(tls_1_0_and_1_1_are_refused)
{
    char cmd[512];
    int st;
    static const char *const versions[] = {"-tls1", "-tls1_1"};
    for (int i = 0; i < 2; i++) {
        /* The client's own floor lowered, so that only the server refuses. */
        snprintf(cmd, sizeof cmd, "openssl s_client -connect 127.0.0.1:%u %s -cipher 'DEFAULT:@SECLEVEL=0' </dev/null 2>&1",
                 port, versions[i]);
        const char *out = run(cmd, &st);
        ck_assert_msg(st != 0, "%s was accepted: %s", versions[i], out);
        ck_assert_msg(strstr(out, "Cipher is (NONE)") != NULL || strstr(out, "alert") != NULL ||
                          strstr(out, "no protocols available") != NULL,
                      "%s: %s", versions[i], out);
    }
    snprintf(cmd, sizeof cmd, "curl -sS -k --tlsv1.0 --tls-max 1.1 https://127.0.0.1:%u/hello 2>&1", port);
    run(cmd, &st);
    ck_assert_int_ne(st, 0);
}
END_TEST

START_TEST(plain_http_on_the_tls_port_is_closed)
{
    int fd = bkt_connect(port);
    ck_assert_int_ge(fd, 0);
    const char *req = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    ck_assert_int_eq(bkt_send_all(fd, req, strlen(req)), 0);
    char buf[4096];
    size_t got = 0;
    ssize_t n;
    while ((n = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    /* Closed (a FIN, or a reset for the request left unread), not timed out. */
    ck_assert_msg(n == 0 || errno == ECONNRESET, "recv: %s", strerror(errno));
    ck_assert_ptr_null(strstr(buf, "HTTP/1.1"));
    ck_assert_ptr_null(strstr(buf, "hi"));
    close(fd);
    /* And the server goes on. */
    char cmd[512];
    int st;
    snprintf(cmd, sizeof cmd, "curl -sS --cacert '%s' https://127.0.0.1:%u/hello 2>&1", cert, port);
    ck_assert_str_eq(run(cmd, &st), "hi");
}
END_TEST

START_TEST(bad_files_are_refused_at_start)
{
    bk_http_server_t *s;
    bk_error_t err;
    ck_assert_int_eq(server_new("/nonexistent/cert.pem", key, &s, &err), BK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "/nonexistent/cert.pem"));
    ck_assert_int_eq(server_new(cert, "/nonexistent/key.pem", &s, &err), BK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "/nonexistent/key.pem"));
    char cert2[128], key2[128];
    snprintf(cert2, sizeof cert2, "%s/cert2.pem", dir);
    snprintf(key2, sizeof key2, "%s/key2.pem", dir);
    make_cert(cert2, key2, "0x3003");
    ck_assert_int_eq(server_new(cert, key2, &s, &err), BK_EINVAL); /* another certificate's key */
    ck_assert_msg(strstr(err.message, key2) != NULL && strstr(err.message, "mismatch") != NULL, "%s", err.message);
    ck_assert_int_eq(server_new(cert, NULL, &s, &err), BK_EINVAL);
    ck_assert_int_eq(server_new(key, key, &s, &err), BK_EINVAL); /* a key is no certificate */
    /* Without TLS, there is nothing to reload. */
    ck_assert_int_eq(server_new(NULL, NULL, &s, &err), BK_OK);
    ck_assert_int_eq(bk_http_server_reload_tls(s, &err), BK_EINVAL);
    bk_http_server_free(s);
}
END_TEST

/* ------------------------------------------------------------------ reload */
struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
};

static void client_open(struct client *c)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(c->ctx);
    c->fd = bkt_connect(port);
    ck_assert_int_ge(c->fd, 0);
    c->ssl = SSL_new(c->ctx);
    SSL_set_fd(c->ssl, c->fd);
    ck_assert_int_eq(SSL_connect(c->ssl), 1);
}

/* GET /hello on the connection: true when "hi" came back. */
static bool client_get(struct client *c)
{
    const char *req = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    if (SSL_write(c->ssl, req, (int)strlen(req)) != (int)strlen(req))
        return false;
    char buf[2048];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        int n = SSL_read(c->ssl, buf + got, (int)(sizeof buf - 1 - got));
        if (n <= 0)
            return false;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\nhi") != NULL)
            return strncmp(buf, "HTTP/1.1 200", 12) == 0;
    }
    return false;
}

static long client_serial(struct client *c)
{
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    ck_assert_ptr_nonnull(x);
    long v = ASN1_INTEGER_get(X509_get_serialNumber(x));
    X509_free(x);
    return v;
}

static void client_close(struct client *c)
{
    SSL_free(c->ssl);
    close(c->fd);
    SSL_CTX_free(c->ctx);
}

START_TEST(a_reload_serves_the_new_certificate_and_keeps_open_connections)
{
    struct client old, fresh;
    client_open(&old);
    ck_assert(client_get(&old));
    ck_assert_int_eq(client_serial(&old), 0x1001);
    /* New files in place, then the reload. */
    make_cert(cert, key, "0x2002");
    bk_error_t err;
    ck_assert_msg(bk_http_server_reload_tls(srv, &err) == BK_OK, "%s", err.message);
    ck_assert(client_get(&old)); /* not dropped */
    client_open(&fresh);
    ck_assert_int_eq(client_serial(&fresh), 0x2002);
    ck_assert(client_get(&fresh));
    client_close(&fresh);
    /* Broken files: refused, and the last good certificate goes on. */
    FILE *f = fopen(cert, "w");
    ck_assert_ptr_nonnull(f);
    fputs("not a certificate\n", f);
    fclose(f);
    ck_assert_int_eq(bk_http_server_reload_tls(srv, &err), BK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, cert));
    client_open(&fresh);
    ck_assert_int_eq(client_serial(&fresh), 0x2002);
    ck_assert(client_get(&fresh));
    client_close(&fresh);
    ck_assert(client_get(&old));
    client_close(&old);
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("http_tls");
    TCase *tc = tcase_create("tls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, curl_and_s_client_get_tls_1_3_and_http_1_1);
    tcase_add_test(tc, tls_1_0_and_1_1_are_refused);
    tcase_add_test(tc, plain_http_on_the_tls_port_is_closed);
    tcase_add_test(tc, bad_files_are_refused_at_start);
    tcase_add_test(tc, a_reload_serves_the_new_certificate_and_keeps_open_connections);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(tls_suite());
}
