/* Hostile input against a real HTTP server on 127.0.0.1: malformed and oversized
 * requests, smuggling shapes, stalls, pipelining, garbage. After every case the
 * server must still answer GET /ping.
 *
 * Most cases are data files, one per input, in tests/http/hostile/NAME.req (a new
 * hostile input is one more file, not new code). A file starts with directives:
 *
 *   expect: 400            the status (several allowed: "expect: 200 400"), or
 *   expect: close          no response at all: the server closes the connection, or
 *   expect: none           anything, as long as it is one complete response or a close
 *   header: Allow: GET     optional, repeatable: the response has that header and its
 *                          value contains the text after "Name: "
 *   body: {"a":1}          optional, repeatable: the body contains this text (literal)
 *   eof: yes|no            half-close after sending; default yes for "close", else no
 *   after: close           after its response the server closes the connection
 *   after: open            the connection stays usable: GET /ping on it answers 200
 *   # ...                  a comment (only among the directives)
 *
 * The first line that is none of these starts the raw request. In it real newlines
 * (and CRs) are ignored, and the escapes \r \n \0 \t \\ and \xHH give the bytes, so
 * a request is laid out one header per line with explicit \r\n.
 *
 * Each case is sent on a fresh connection. Every 4xx/5xx answer must be an RFC 9457
 * application/problem+json object whose "status" is the code and with "title" and
 * "request_id" strings (the request id also in X-Request-ID when that is sent).
 *
 * The cases that are easier to generate than to write (floods, stalls, pipelining,
 * 1 MB of noise, request ids) are C tests below.
 *
 * The server is started per test (a checked fixture): in fork mode it lives in the
 * test's child, with CK_FORK=no (valgrind) every test starts and frees its own.
 *
 * With BK_HOSTILE_TLS=1 (tests/http/hostile_tls.sh) the same suite runs over TLS:
 * the server gets a certificate and the cases go through tests/http/tls_relay.h.
 * SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "check_main.h"
#include "http/client.h"
#include "http/tls_relay.h"

#include <backend/http.h>

/* A server that closes a stalled connection (header/body timeout 300 ms) must have
 * done so within this long; generous for valgrind, far below BKT_TIMEOUT_MS. */
#ifndef CLOSE_WITHIN_MS
#define CLOSE_WITHIN_MS 1500
#endif
/* "after: close": the close follows the response at once, well before the idle
 * timeout (2000 ms) could be what closes the connection. */
#define AFTER_CLOSE_WITHIN_MS 1000
/* ... and not before this: a slow client is not cut off at its first pause. */
#define CLOSE_NOT_BEFORE_MS 200

#define EXPECT_CLOSE (-1)
#define EXPECT_NONE (-2)
#define AFTER_CLOSE 1
#define AFTER_OPEN 2
#define MAX_EXPECT 4
#define MAX_CHECKS 8

/* ------------------------------------------------------------------ the server */

static bk_http_server_t *srv;
static uint16_t port;
static struct bkt_relay relay;
static char tls_dir[64], tls_cert[128], tls_key[128];

/* BK_HOSTILE_TLS: a self-signed certificate, made once per process. */
static bool over_tls(void)
{
    const char *v = getenv("BK_HOSTILE_TLS");
    if (v == NULL || strcmp(v, "1") != 0)
        return false;
    if (tls_dir[0] == '\0') {
        snprintf(tls_dir, sizeof tls_dir, "/tmp/bk-hostile-tls-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tls_dir));
        snprintf(tls_cert, sizeof tls_cert, "%s/cert.pem", tls_dir);
        snprintf(tls_key, sizeof tls_key, "%s/key.pem", tls_dir);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                                  "-keyout '%s' -out '%s' -days 2 -subj /CN=localhost >/dev/null 2>&1",
                 tls_key, tls_cert);
        ck_assert_msg(system(cmd) == 0, "openssl req failed");
    }
    return true;
}

static void h_ping(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{s:b}", "ok", 1));
}

/* {"<key>": the parameter}, written as a handler naturally would: it relies on the
 * server to refuse parameters that are not UTF-8 (json_pack fails on them, and an
 * unanswered request is a 500). */
static void answer_param(bk_req_t *req, const char *key)
{
    bk_res_json(req, 200, json_pack("{s:s?}", key, bk_req_param(req, key)));
}

static void h_user(bk_req_t *req, void *ud)
{
    (void)ud;
    answer_param(req, "id");
}

static void h_files(bk_req_t *req, void *ud)
{
    (void)ud;
    answer_param(req, "path");
}

static void h_echo(bk_req_t *req, void *ud)
{
    (void)ud;
    json_t *doc = NULL;
    if (bk_req_json(req, &doc) != BK_OK)
        return; /* answered: 415 or 400 */
    bk_res_json(req, 200, doc);
}

static void srv_setup(void)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    o.max_header_bytes = 4096;
    o.max_body_bytes = 1024;
    o.header_timeout_ns = 300 * BK_NSEC_PER_MSEC;
    o.body_timeout_ns = 300 * BK_NSEC_PER_MSEC;
    o.idle_timeout_ns = 2 * BK_NSEC_PER_SEC;
    bool tls = over_tls();
    if (tls) {
        o.tls_cert_file = tls_cert;
        o.tls_key_file = tls_key;
    }
    srv = NULL;
    ck_assert_int_eq(bk_http_server_new(&o, &srv, NULL), BK_OK);
    ck_assert_ptr_nonnull(srv);
    bk_http_route_opts_t json_route = {.flags = BK_HTTP_JSON};
    ck_assert_int_eq(bk_http_route(srv, "GET", "/ping", h_ping, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/users/{id}", h_user, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "POST", "/echo", h_echo, NULL, &json_route), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/files/{path...}", h_files, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(srv, NULL), BK_OK);
    port = bk_http_server_port(srv);
    ck_assert_uint_ne(port, 0);
    if (tls) {
        ck_assert_int_eq(bkt_relay_start(&relay, port), 0);
        port = relay.port;
    }
}

static void srv_teardown(void)
{
    if (srv == NULL)
        return;
    if (over_tls())
        bkt_relay_stop(&relay);
    bk_http_server_stop(srv);
    bk_http_server_wait(srv);
    bk_http_server_free(srv);
    srv = NULL;
    port = 0;
}

/* ------------------------------------------------------------------ helpers */

/* Checks write their reason into why and return false, so that the caller can
 * free what it holds before asserting (valgrind stays clean even on failure). */
static bool why_fail(char *why, size_t wsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool why_fail(char *why, size_t wsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, wsz, fmt, ap);
    va_end(ap);
    return false;
}

/* Up to 200 bytes of s, non-printable bytes as \xHH, for failure messages. */
static const char *excerpt(const char *s, size_t len, char *out, size_t outsz)
{
    size_t o = 0;
    if (s == NULL) {
        snprintf(out, outsz, "(none)");
        return out;
    }
    for (size_t i = 0; i < len && i < 200 && o + 5 < outsz; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", c);
    }
    if (len > 200 && o + 4 < outsz) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* What the server answered, for failure messages: "status 404, body {...}". */
static const char *describe(const struct bkt_response *r, char *out, size_t outsz)
{
    char ex[1024];
    snprintf(out, outsz, "status %d, body %s", r->status,
             excerpt(r->body, r->body_len, ex, sizeof ex));
    return out;
}

/* A 4xx/5xx answer: application/problem+json, an object with "status" equal to
 * the code and "title" and "request_id" strings; the request id matches the
 * X-Request-ID header when the server sends one. The answer to HEAD has no body:
 * only its Content-Type is checked. */
static bool check_problem_head(const struct bkt_response *r, bool head, char *why, size_t wsz)
{
    char ct[256], rid[512], d[1400];
    if (bkt_header(r, "Content-Type", ct, sizeof ct) == NULL)
        return why_fail(why, wsz, "no Content-Type on a %d (%s)", r->status,
                        describe(r, d, sizeof d));
    size_t n = strlen("application/problem+json");
    if (strncasecmp(ct, "application/problem+json", n) != 0 ||
        (ct[n] != '\0' && ct[n] != ';' && ct[n] != ' '))
        return why_fail(why, wsz, "Content-Type \"%s\" on a %d, want application/problem+json (%s)",
                        ct, r->status, describe(r, d, sizeof d));
    if (head)
        return r->body_len == 0 ||
               why_fail(why, wsz, "a body on the answer to HEAD: %s", describe(r, d, sizeof d));
    json_error_t err;
    json_t *doc = json_loadb(r->body, r->body_len, 0, &err);
    if (doc == NULL)
        return why_fail(why, wsz, "problem body is not JSON (%s): %s", err.text,
                        describe(r, d, sizeof d));
    bool ok = false;
    json_t *st = json_object_get(doc, "status");
    json_t *title = json_object_get(doc, "title");
    json_t *id = json_object_get(doc, "request_id");
    if (!json_is_object(doc))
        why_fail(why, wsz, "problem body is not an object: %s", describe(r, d, sizeof d));
    else if (!json_is_integer(st) || json_integer_value(st) != r->status)
        why_fail(why, wsz, "problem \"status\" is not %d: %s", r->status, describe(r, d, sizeof d));
    else if (!json_is_string(title))
        why_fail(why, wsz, "problem has no \"title\" string: %s", describe(r, d, sizeof d));
    else if (!json_is_string(id) || json_string_length(id) == 0)
        why_fail(why, wsz, "problem has no \"request_id\" string: %s", describe(r, d, sizeof d));
    else if (bkt_header(r, "X-Request-ID", rid, sizeof rid) != NULL &&
             strcmp(rid, json_string_value(id)) != 0)
        why_fail(why, wsz, "problem request_id \"%s\" differs from X-Request-ID \"%s\"",
                 json_string_value(id), rid);
    else
        ok = true;
    json_decref(doc);
    return ok;
}

static bool check_problem(const struct bkt_response *r, char *why, size_t wsz)
{
    return check_problem_head(r, false, why, wsz);
}

/* The server is alive: GET /ping on a new connection answers 200 {"ok":true}. */
static bool ping_ok(char *why, size_t wsz)
{
    static const char req[] = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";
    struct bkt_response r;
    if (bkt_request(port, req, sizeof req - 1, &r) != 0)
        return why_fail(why, wsz, "GET /ping afterwards: no response (server crashed or wedged)");
    char d[1400];
    bool ok = r.status == 200 && strstr(r.body, "\"ok\"") != NULL;
    if (!ok)
        why_fail(why, wsz, "GET /ping afterwards: %s", describe(&r, d, sizeof d));
    bkt_response_free(&r);
    return ok;
}

#define ASSERT_PING_OK()                                                                           \
    do {                                                                                           \
        char why_[2048] = "";                                                                      \
        bool ok_ = ping_ok(why_, sizeof why_);                                                     \
        ck_assert_msg(ok_, "%s", why_);                                                            \
    } while (0)

/* Sends raw on a new connection and reads one response; fails the test (after
 * freeing) when none comes. what names the case in messages. */
static void request_or_fail(const char *what, const void *raw, size_t len, struct bkt_response *r)
{
    int rc = bkt_request(port, raw, len, r);
    ck_assert_msg(rc == 0, "%s: no complete response (timeout or close)", what);
}

/* ------------------------------------------------------------------ case files */

struct hcase {
    int expect[MAX_EXPECT]; /* statuses, or EXPECT_CLOSE / EXPECT_NONE */
    size_t nexpect;
    bool eof;
    int after; /* 0: not checked, AFTER_CLOSE, AFTER_OPEN */
    char *hdr_name[MAX_CHECKS], *hdr_want[MAX_CHECKS];
    size_t nhdr;
    char *body_want[MAX_CHECKS];
    size_t nbody;
    char *raw;
    size_t rawlen;
};

static char *case_dir;    /* $top_srcdir/tests/http/hostile */
static char **case_names; /* sorted *.req names */
static size_t ncases;

static void hcase_free(struct hcase *c)
{
    for (size_t i = 0; i < c->nhdr; i++) {
        free(c->hdr_name[i]);
        free(c->hdr_want[i]);
    }
    for (size_t i = 0; i < c->nbody; i++)
        free(c->body_want[i]);
    free(c->raw);
    memset(c, 0, sizeof *c);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The raw request from s[0..len): newlines dropped, escapes decoded. */
static bool unescape(struct hcase *c, const char *s, size_t len, char *why, size_t wsz)
{
    c->raw = malloc(len + 1);
    if (c->raw == NULL)
        return why_fail(why, wsz, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '\n' || ch == '\r')
            continue;
        if (ch != '\\') {
            c->raw[o++] = ch;
            continue;
        }
        if (++i >= len)
            return why_fail(why, wsz, "a lone backslash at the end");
        switch (s[i]) {
        case 'r': c->raw[o++] = '\r'; break;
        case 'n': c->raw[o++] = '\n'; break;
        case 't': c->raw[o++] = '\t'; break;
        case '0': c->raw[o++] = '\0'; break;
        case '\\': c->raw[o++] = '\\'; break;
        case 'x': {
            int hi = i + 1 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return why_fail(why, wsz, "bad \\x escape at offset %zu", i - 1);
            c->raw[o++] = (char)(hi * 16 + lo);
            i += 2;
            break;
        }
        default: return why_fail(why, wsz, "unknown escape \\%c at offset %zu", s[i], i - 1);
        }
    }
    c->rawlen = o;
    return true;
}

static bool starts_with(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

/* A directive's value: after the prefix, leading blanks skipped, to the end of line. */
static char *directive_value(const char *line, size_t len, const char *prefix)
{
    size_t i = strlen(prefix);
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    size_t e = len;
    while (e > i && (line[e - 1] == '\r' || line[e - 1] == ' ' || line[e - 1] == '\t'))
        e--;
    return strndup(line + i, e - i);
}

static bool parse_directive(struct hcase *c, const char *line, size_t len, char *why, size_t wsz)
{
    if (starts_with(line, len, "#"))
        return true;
    if (starts_with(line, len, "expect:")) {
        char *v = directive_value(line, len, "expect:");
        bool ok = true;
        if (v == NULL)
            return why_fail(why, wsz, "out of memory");
        if (strcmp(v, "close") == 0) {
            c->expect[c->nexpect++] = EXPECT_CLOSE;
            c->eof = true;
        } else if (strcmp(v, "none") == 0) {
            c->expect[c->nexpect++] = EXPECT_NONE;
        } else {
            char *p = v, *end;
            while (*p != '\0' && ok) {
                long st = strtol(p, &end, 10);
                if (end == p || st < 100 || st > 599 || c->nexpect == MAX_EXPECT)
                    ok = why_fail(why, wsz, "bad expect line \"%s\"", v);
                else
                    c->expect[c->nexpect++] = (int)st;
                p = end;
                while (*p == ' ' || *p == ',')
                    p++;
            }
        }
        free(v);
        return ok;
    }
    if (starts_with(line, len, "header:")) {
        if (c->nhdr == MAX_CHECKS)
            return why_fail(why, wsz, "too many header lines");
        char *v = directive_value(line, len, "header:");
        char *colon = v != NULL ? strchr(v, ':') : NULL;
        if (colon == NULL || colon == v) {
            free(v);
            return why_fail(why, wsz, "a header line needs \"Name: text\"");
        }
        *colon = '\0';
        const char *want = colon + 1;
        while (*want == ' ')
            want++;
        c->hdr_name[c->nhdr] = strdup(v);
        c->hdr_want[c->nhdr] = strdup(want);
        c->nhdr++;
        free(v);
        return true;
    }
    if (starts_with(line, len, "body:")) {
        if (c->nbody == MAX_CHECKS)
            return why_fail(why, wsz, "too many body lines");
        c->body_want[c->nbody++] = directive_value(line, len, "body:");
        return true;
    }
    if (starts_with(line, len, "eof:")) {
        char *v = directive_value(line, len, "eof:");
        bool yes = v != NULL && strcmp(v, "yes") == 0;
        bool no = v != NULL && strcmp(v, "no") == 0;
        free(v);
        if (!yes && !no)
            return why_fail(why, wsz, "eof: wants yes or no");
        c->eof = yes;
        return true;
    }
    if (starts_with(line, len, "after:")) {
        char *v = directive_value(line, len, "after:");
        c->after = v == NULL                 ? 0
                   : strcmp(v, "close") == 0 ? AFTER_CLOSE
                   : strcmp(v, "open") == 0  ? AFTER_OPEN
                                             : 0;
        free(v);
        if (c->after == 0)
            return why_fail(why, wsz, "after: wants close or open");
        return true;
    }
    return why_fail(why, wsz, "not a directive");
}

static bool is_directive(const char *line, size_t len)
{
    return starts_with(line, len, "#") || starts_with(line, len, "expect:") ||
           starts_with(line, len, "header:") || starts_with(line, len, "body:") ||
           starts_with(line, len, "eof:") || starts_with(line, len, "after:");
}

static bool load_case(const char *name, struct hcase *c, char *why, size_t wsz)
{
    memset(c, 0, sizeof *c);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", case_dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return why_fail(why, wsz, "cannot open %s: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (len + n > cap) {
            cap = (len + n) * 2;
            char *nt = realloc(text, cap);
            if (nt == NULL) {
                free(text);
                fclose(f);
                return why_fail(why, wsz, "out of memory");
            }
            text = nt;
        }
        memcpy(text + len, tmp, n);
        len += n;
    }
    fclose(f);

    bool ok = true;
    size_t pos = 0, lineno = 0;
    while (ok && pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;
        lineno++;
        if (lineno == 1 && !starts_with(line, llen, "expect:")) {
            ok = why_fail(why, wsz, "the first line must be \"expect: ...\"");
            break;
        }
        if (!is_directive(line, llen))
            break;
        char inner[512];
        if (!parse_directive(c, line, llen, inner, sizeof inner)) {
            ok = why_fail(why, wsz, "line %zu: %s", lineno, inner);
            break;
        }
        pos += llen + (nl != NULL ? 1 : 0);
    }
    if (ok && c->nexpect == 0)
        ok = why_fail(why, wsz, "no expect line");
    if (ok)
        ok = unescape(c, text + pos, len - pos, why, wsz);
    if (ok && c->rawlen == 0)
        ok = why_fail(why, wsz, "no request after the directives");
    free(text);
    if (!ok)
        hcase_free(c);
    return ok;
}

static bool expected(const struct hcase *c, int status)
{
    for (size_t i = 0; i < c->nexpect; i++)
        if (c->expect[i] == status || c->expect[i] == EXPECT_NONE)
            return true;
    return false;
}

static const char *expect_text(const struct hcase *c, char *out, size_t outsz)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->nexpect && o < outsz; i++) {
        int e = c->expect[i];
        o += (size_t)snprintf(out + o, outsz - o, "%s%s", i ? " or " : "",
                              e == EXPECT_CLOSE  ? "close"
                              : e == EXPECT_NONE ? "anything"
                                                 : "");
        if (e >= 0 && o < outsz)
            o += (size_t)snprintf(out + o, outsz - o, "%d", e);
    }
    return out;
}

/* Runs one loaded case against the server; the reason in why when it fails. */
static bool run_case(const struct hcase *c, char *why, size_t wsz)
{
    char d[1400], want[64];
    int fd = bkt_connect(port);
    if (fd < 0)
        return why_fail(why, wsz, "cannot connect");
    /* A send may fail when the server answers early and closes: read anyway. */
    (void)bkt_send_all(fd, c->raw, c->rawlen);
    if (c->eof)
        shutdown(fd, SHUT_WR);

    if (c->expect[0] == EXPECT_CLOSE) {
        size_t drained = 0;
        bool closed = bkt_drain_closed(fd, &drained);
        close(fd);
        if (!closed)
            return why_fail(why, wsz,
                            "expected a close without a response; the connection "
                            "stayed open %d ms (%zu bytes received)",
                            BKT_TIMEOUT_MS, drained);
        if (drained > 0)
            return why_fail(why, wsz, "expected a close without a response; got %zu bytes first",
                            drained);
        return true;
    }

    struct bkt_response r;
    bool head = c->rawlen >= 5 && memcmp(c->raw, "HEAD ", 5) == 0;
    int rc = bkt_read_response(fd, &r, head);
    if (rc != 0) {
        /* No complete response: acceptable for "none" only if the server closed. */
        bool closed = bkt_wait_closed(fd);
        close(fd);
        if (c->expect[0] == EXPECT_NONE && closed)
            return true;
        return why_fail(why, wsz, "expected %s; got no complete response (%s)",
                        expect_text(c, want, sizeof want),
                        closed ? "the connection closed" : "timed out");
    }
    bool ok = true;
    if (!expected(c, r.status))
        ok = why_fail(why, wsz, "expected %s; got %s", expect_text(c, want, sizeof want),
                      describe(&r, d, sizeof d));
    else if (r.status >= 400 && !check_problem_head(&r, head, why, wsz))
        ok = false;
    for (size_t i = 0; ok && i < c->nhdr; i++) {
        char v[1024];
        if (bkt_header(&r, c->hdr_name[i], v, sizeof v) == NULL)
            ok = why_fail(why, wsz, "no %s header in the %d response", c->hdr_name[i], r.status);
        else if (strstr(v, c->hdr_want[i]) == NULL)
            ok = why_fail(why, wsz, "%s: \"%s\" does not contain \"%s\"", c->hdr_name[i], v,
                          c->hdr_want[i]);
    }
    for (size_t i = 0; ok && i < c->nbody; i++)
        if (strstr(r.body, c->body_want[i]) == NULL)
            ok = why_fail(why, wsz, "the body does not contain %s: %s", c->body_want[i],
                          describe(&r, d, sizeof d));
    int status = r.status;
    bkt_response_free(&r);
    if (ok && c->after == AFTER_CLOSE) {
        size_t drained = 0;
        int64_t t0 = bkt__now_ms();
        bool closed = bkt_drain_closed(fd, &drained);
        int64_t ms = bkt__now_ms() - t0;
        if (!closed || ms > AFTER_CLOSE_WITHIN_MS)
            ok = why_fail(why, wsz, "the connection stayed open after the %d (%s after %lld ms)",
                          status, closed ? "closed only" : "still open", (long long)ms);
        else if (drained > 0)
            ok = why_fail(why, wsz, "%zu more bytes after the %d response", drained, status);
    } else if (ok && c->after == AFTER_OPEN) {
        static const char ping[] = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";
        if (bkt_send_all(fd, ping, sizeof ping - 1) != 0 || bkt_read_response(fd, &r, false) != 0)
            ok = why_fail(why, wsz, "GET /ping on the same connection after the %d: no response",
                          status);
        else if (r.status != 200 || strstr(r.body, "\"ok\"") == NULL)
            ok = why_fail(why, wsz, "GET /ping on the same connection after the %d: %s", status,
                          describe(&r, d, sizeof d));
        bkt_response_free(&r);
    }
    close(fd);
    return ok;
}

/* One file: load, run, then the server must still answer /ping. */
static bool run_file(const char *name, char *why, size_t wsz)
{
    struct hcase c;
    char inner[2048];
    if (!load_case(name, &c, inner, sizeof inner))
        return why_fail(why, wsz, "%s: bad case file: %s", name, inner);
    bool ok = run_case(&c, inner, sizeof inner);
    hcase_free(&c);
    if (!ok)
        return why_fail(why, wsz, "%s: %s", name, inner);
    if (!ping_ok(inner, sizeof inner))
        return why_fail(why, wsz, "%s: %s", name, inner);
    return true;
}

START_TEST(hostile_file)
{
    ck_assert_msg(ncases > 0, "no *.req cases in %s", case_dir);
    char why[4096] = "";
    bool ok = run_file(case_names[_i], why, sizeof why);
    ck_assert_msg(ok, "%s", why);
}
END_TEST

/* Every file again, one after the other against the same server: a case must not
 * leave it in a state that breaks a later one. Reports every failing file. */
START_TEST(hostile_files_one_server)
{
    ck_assert_msg(ncases > 0, "no *.req cases in %s", case_dir);
    char report[8192] = "";
    size_t o = 0, nfailed = 0;
    for (size_t i = 0; i < ncases; i++) {
        char why[2048] = "";
        if (run_file(case_names[i], why, sizeof why))
            continue;
        nfailed++;
        if (o < sizeof report)
            o += (size_t)snprintf(report + o, sizeof report - o, "\n  %s", why);
    }
    ck_assert_msg(nfailed == 0, "%zu of %zu cases failed:%s", nfailed, ncases, report);
}
END_TEST

/* ------------------------------------------------------------------ generated cases */

/* Asserts an answer with status want and a valid problem body; frees r. */
static void assert_problem_status(const char *what, struct bkt_response *r, int want)
{
    char why[2048] = "", d[1400];
    bool ok = r->status == want;
    if (!ok)
        snprintf(why, sizeof why, "expected %d; got %s", want, describe(r, d, sizeof d));
    else
        ok = check_problem(r, why, sizeof why);
    bkt_response_free(r);
    ck_assert_msg(ok, "%s: %s", what, why);
}

/* Builds a request into a malloc'd buffer. */
struct buf {
    char *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 1024;
        while (ncap < b->len + len + 1)
            ncap *= 2;
        b->p = realloc(b->p, ncap);
        ck_assert_ptr_nonnull(b->p);
        b->cap = ncap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_fill(struct buf *b, char c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_add(b, &c, 1);
}

/* 200 small header lines: over the header count limit, under the byte limit. */
START_TEST(header_flood)
{
    struct buf b = {0};
    buf_str(&b, "GET /ping HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 200; i++) {
        char line[32];
        snprintf(line, sizeof line, "X-%d: v\r\n", i);
        buf_str(&b, line);
    }
    buf_str(&b, "\r\n");
    struct bkt_response r;
    int rc = bkt_request(port, b.p, b.len, &r);
    free(b.p);
    ck_assert_msg(rc == 0, "header flood: no complete response (timeout or close)");
    assert_problem_status("header flood (200 headers)", &r, 431);
    ASSERT_PING_OK();
}
END_TEST

/* One 5000-byte header value: the head is over max_header_bytes (4096). */
START_TEST(header_value_too_long)
{
    struct buf b = {0};
    buf_str(&b, "GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: ");
    buf_fill(&b, 'a', 5000);
    buf_str(&b, "\r\n\r\n");
    struct bkt_response r;
    int rc = bkt_request(port, b.p, b.len, &r);
    free(b.p);
    ck_assert_msg(rc == 0, "5000-byte header: no complete response (timeout or close)");
    assert_problem_status("5000-byte header value", &r, 431);
    ASSERT_PING_OK();
}
END_TEST

/* Just under the limits, requests go through: the limits are not stricter than
 * configured. A 3700-byte header value (the head stays under 4096 bytes). */
START_TEST(header_under_limit_ok)
{
    struct buf b = {0};
    buf_str(&b, "GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: ");
    buf_fill(&b, 'a', 3700);
    buf_str(&b, "\r\n\r\n");
    struct bkt_response r;
    int rc = bkt_request(port, b.p, b.len, &r);
    free(b.p);
    ck_assert_msg(rc == 0, "3700-byte header: no complete response (timeout or close)");
    char d[1400];
    describe(&r, d, sizeof d);
    int status = r.status;
    bkt_response_free(&r);
    ck_assert_msg(status == 200, "3700-byte header value (head under 4096): expected 200; got %s",
                  d);
}
END_TEST

/* POST /echo of a JSON body of exactly len bytes, by Content-Length or in chunks. */
static void post_json_of_len(size_t len, bool chunked, struct bkt_response *r)
{
    ck_assert_uint_ge(len, 8);
    struct buf body = {0}, b = {0};
    buf_str(&body, "{\"a\":\"");
    buf_fill(&body, 'x', len - 8);
    buf_str(&body, "\"}");
    buf_str(&b, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n");
    char line[64];
    if (chunked) {
        /* two chunks: the total is what counts */
        size_t half = len / 2;
        buf_str(&b, "Transfer-Encoding: chunked\r\n\r\n");
        snprintf(line, sizeof line, "%zx\r\n", half);
        buf_str(&b, line);
        buf_add(&b, body.p, half);
        snprintf(line, sizeof line, "\r\n%zx\r\n", len - half);
        buf_str(&b, line);
        buf_add(&b, body.p + half, len - half);
        buf_str(&b, "\r\n0\r\n\r\n");
    } else {
        snprintf(line, sizeof line, "Content-Length: %zu\r\n\r\n", len);
        buf_str(&b, line);
        buf_add(&b, body.p, len);
    }
    free(body.p);
    int rc = bkt_request(port, b.p, b.len, r);
    free(b.p);
    ck_assert_msg(rc == 0, "%zu-byte %s body: no complete response", len,
                  chunked ? "chunked" : "Content-Length");
}

/* max_body_bytes is 1024: 1024 bytes pass, 1025 get a 413, both framings. */
START_TEST(body_limit_boundary)
{
    for (int chunked = 0; chunked <= 1; chunked++) {
        struct bkt_response r;
        char d[1400];
        post_json_of_len(1024, chunked, &r);
        describe(&r, d, sizeof d);
        bool ok = r.status == 200 && r.body_len == 1024;
        bkt_response_free(&r);
        ck_assert_msg(ok, "a 1024-byte %s body (the limit): expected the 200 echo; got %s",
                      chunked ? "chunked" : "Content-Length", d);
        post_json_of_len(1025, chunked, &r);
        assert_problem_status(chunked ? "a 1025-byte chunked body" : "a 1025-byte body", &r, 413);
    }
    ASSERT_PING_OK();
}
END_TEST

/* A 5000-byte URI and no CRLF yet: 414 without waiting for the rest. */
START_TEST(uri_too_long)
{
    struct buf b = {0};
    buf_str(&b, "GET /");
    buf_fill(&b, 'a', 5000);
    struct bkt_response r;
    int rc = bkt_request(port, b.p, b.len, &r);
    free(b.p);
    ck_assert_msg(rc == 0, "5000-byte URI: no complete response (timeout or close)");
    assert_problem_status("5000-byte URI without CRLF", &r, 414);
    ASSERT_PING_OK();
}
END_TEST

/* Reads n pipelined responses from fd; each must be 200. With ids, the i-th body
 * must carry {"id":"i"} (answers in request order). */
static void read_pipelined(int fd, int n, bool ids)
{
    for (int i = 0; i < n; i++) {
        struct bkt_response r;
        int rc = bkt_read_response(fd, &r, false);
        if (rc != 0)
            close(fd);
        ck_assert_msg(rc == 0, "pipelined response %d of %d: none (timeout or close)", i + 1, n);
        char d[1400] = "", want[32];
        snprintf(want, sizeof want, "\"id\":\"%d\"", i);
        bool ok = r.status == 200 &&
                  (ids ? strstr(r.body, want) != NULL : strstr(r.body, "\"ok\"") != NULL);
        if (!ok) {
            describe(&r, d, sizeof d);
            bkt_response_free(&r);
            close(fd);
        } else {
            bkt_response_free(&r);
        }
        ck_assert_msg(ok, "pipelined response %d of %d: expected 200 %s; got %s", i + 1, n,
                      ids ? want : "{\"ok\":true}", d);
    }
}

START_TEST(pipelined_ping)
{
    struct buf b = {0};
    for (int i = 0; i < 20; i++)
        buf_str(&b, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
    int fd = bkt_connect(port);
    ck_assert_int_ge(fd, 0);
    int rc = bkt_send_all(fd, b.p, b.len); /* one write */
    free(b.p);
    ck_assert_int_eq(rc, 0);
    read_pipelined(fd, 20, false);
    close(fd);
    ASSERT_PING_OK();
}
END_TEST

/* Same, with distinct requests: the answers come back in request order. */
START_TEST(pipelined_order)
{
    struct buf b = {0};
    for (int i = 0; i < 20; i++) {
        char line[64];
        snprintf(line, sizeof line, "GET /users/%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        buf_str(&b, line);
    }
    int fd = bkt_connect(port);
    ck_assert_int_ge(fd, 0);
    int rc = bkt_send_all(fd, b.p, b.len);
    free(b.p);
    ck_assert_int_eq(rc, 0);
    read_pipelined(fd, 20, true);
    close(fd);
    ASSERT_PING_OK();
}
END_TEST

/* Bodies framed by Content-Length and by chunks, then more requests in the same
 * write: each body ends exactly where its framing says (a body byte read as a
 * request, or a request swallowed into a body, is request smuggling). */
START_TEST(pipelined_after_bodies)
{
    static const char reqs[] =
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 10\r\n\r\n{\"id\":\"0\"}"
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n4\r\n{\"id\r\n5;x=y\r\n\":\"1\"\r\n1\r\n}\r\n"
        "0\r\nX-Trailer: GET /users/666 HTTP/1.1\r\n\r\n"
        "GET /users/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        "GET /users/3 HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = bkt_connect(port);
    ck_assert_int_ge(fd, 0);
    int rc = bkt_send_all(fd, reqs, sizeof reqs - 1);
    ck_assert_int_eq(rc, 0);
    read_pipelined(fd, 4, true);
    close(fd);
    ASSERT_PING_OK();
}
END_TEST

/* Sends raw and then nothing: the server must close within CLOSE_WITHIN_MS. */
static void assert_closed_soon(const char *what, const char *raw)
{
    int fd = bkt_connect(port);
    ck_assert_int_ge(fd, 0);
    int64_t t0 = bkt__now_ms();
    int rc = bkt_send_all(fd, raw, strlen(raw));
    size_t drained = 0;
    bool closed = rc == 0 && bkt_drain_closed(fd, &drained);
    int64_t ms = bkt__now_ms() - t0;
    close(fd);
    ck_assert_msg(rc == 0, "%s: send failed", what);
    ck_assert_msg(closed, "%s: the connection was not closed within %d ms", what, BKT_TIMEOUT_MS);
    ck_assert_msg(ms <= CLOSE_WITHIN_MS, "%s: closed only after %lld ms (want <= %d ms)", what,
                  (long long)ms, CLOSE_WITHIN_MS);
    ck_assert_msg(ms >= CLOSE_NOT_BEFORE_MS,
                  "%s: closed after %lld ms, before the 300 ms timeout could expire", what,
                  (long long)ms);
}

/* Slowloris: half a head, then silence; header_timeout_ns is 300 ms. */
START_TEST(slowloris_header_timeout)
{
    assert_closed_soon("slowloris (headers never end)", "GET /ping HTTP/1.1\r\nHost: x\r\n");
    ASSERT_PING_OK();
}
END_TEST

/* A body that stalls: 3 of 10 bytes, then silence; body_timeout_ns is 300 ms. */
START_TEST(body_stall_timeout)
{
    assert_closed_soon("stalled body (3 of 10 bytes)",
                       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 10\r\n\r\n{\"a");
    ASSERT_PING_OK();
}
END_TEST

/* 1 MB of noise: a 4xx answer or a close, and the server lives on. */
START_TEST(random_megabyte)
{
    enum { N = 1 << 20 };
    char *noise = malloc(N);
    ck_assert_ptr_nonnull(noise);
    uint64_t x = 0x9e3779b97f4a7c15ull; /* xorshift64*, fixed seed: reproducible */
    for (size_t i = 0; i < N; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        noise[i] = (char)((x * 0x2545f4914f6cdd1dull) >> 56);
    }
    int fd = bkt_connect(port);
    if (fd < 0)
        free(noise);
    ck_assert_int_ge(fd, 0);
    (void)bkt_send_all(fd, noise, N); /* fails once the server answers and closes */
    free(noise);
    struct bkt_response r;
    char why[2048] = "", d[1400];
    bool ok = true;
    if (bkt_read_response(fd, &r, false) == 0) {
        if (r.status < 400 || r.status > 499)
            ok = why_fail(why, sizeof why, "1 MB of noise: expected a 4xx or a close; got %s",
                          describe(&r, d, sizeof d));
        else
            ok = check_problem(&r, why, sizeof why);
        bkt_response_free(&r);
    } else if (!bkt_wait_closed(fd)) {
        ok = why_fail(why, sizeof why, "1 MB of noise: neither an answer nor a close");
    }
    close(fd);
    ck_assert_msg(ok, "%s", why);
    ASSERT_PING_OK();
}
END_TEST

/* ------------------------------------------------------------------ request ids */

/* GET /ping with the given X-Request-ID; *out gets the response's X-Request-ID. */
static void ping_with_id(const char *id, char *out, size_t outsz)
{
    struct buf b = {0};
    buf_str(&b, "GET /ping HTTP/1.1\r\nHost: x\r\nX-Request-ID: ");
    buf_str(&b, id);
    buf_str(&b, "\r\n\r\n");
    struct bkt_response r;
    int rc = bkt_request(port, b.p, b.len, &r);
    free(b.p);
    ck_assert_msg(rc == 0, "GET /ping with X-Request-ID: no complete response");
    const char *v = bkt_header(&r, "X-Request-ID", out, outsz);
    int status = r.status;
    bkt_response_free(&r);
    ck_assert_int_eq(status, 200);
    ck_assert_msg(v != NULL, "no X-Request-ID in the response");
}

START_TEST(request_id_echoed)
{
    char got[512];
    ping_with_id("abc-123", got, sizeof got);
    ck_assert_str_eq(got, "abc-123");
}
END_TEST

/* Not sane: 300 characters, a space, a quote. Each gets a fresh generated id. */
START_TEST(request_id_hostile_replaced)
{
    char longid[301];
    memset(longid, 'a', 300);
    longid[300] = '\0';
    const char *bad[] = {longid, "abc 123", "abc\"123", "\"abc-123\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char got[512];
        ping_with_id(bad[i], got, sizeof got);
        ck_assert_msg(got[0] != '\0', "X-Request-ID \"%.40s\": the response id is empty", bad[i]);
        ck_assert_msg(strcmp(got, bad[i]) != 0,
                      "X-Request-ID \"%.40s\" was echoed instead of being replaced", bad[i]);
    }
    ASSERT_PING_OK();
}
END_TEST

/* An error answer carries the client's id in the problem body as well. */
START_TEST(request_id_in_problem)
{
    static const char req[] = "GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc-123\r\n\r\n";
    struct bkt_response r;
    request_or_fail("GET /nope with X-Request-ID", req, sizeof req - 1, &r);
    char id[512] = "", why[2048] = "";
    bool ok = r.status == 404 && check_problem(&r, why, sizeof why) &&
              bkt_header(&r, "X-Request-ID", id, sizeof id) != NULL;
    int status = r.status;
    bkt_response_free(&r);
    ck_assert_msg(ok, "GET /nope: status %d %s", status, why);
    ck_assert_str_eq(id, "abc-123");
}
END_TEST

/* ------------------------------------------------------------------ suite */

static int is_req(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 4 && strcmp(d->d_name + n - 4, ".req") == 0;
}

static void load_case_list(void)
{
    const char *top = getenv("top_srcdir");
    if (top == NULL || *top == '\0')
        top = ".";
    size_t n = strlen(top) + sizeof "/tests/http/hostile";
    case_dir = malloc(n);
    if (case_dir == NULL)
        abort();
    snprintf(case_dir, n, "%s/tests/http/hostile", top);
    struct dirent **list = NULL;
    int k = scandir(case_dir, &list, is_req, alphasort);
    if (k <= 0) {
        free(list);
        return;
    }
    case_names = calloc((size_t)k, sizeof *case_names);
    if (case_names == NULL)
        abort();
    for (int i = 0; i < k; i++) {
        case_names[i] = strdup(list[i]->d_name);
        free(list[i]);
    }
    free(list);
    ncases = (size_t)k;
}

static void free_case_list(void)
{
    for (size_t i = 0; i < ncases; i++)
        free(case_names[i]);
    free(case_names);
    free(case_dir);
}

/* A test case whose tests each get a fresh server (srv_setup, srv_teardown). */
static TCase *server_tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, srv_setup, srv_teardown);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *http_hostile_suite(void)
{
    Suite *s = suite_create("http_hostile");

    TCase *files = server_tcase(s, "files");
    /* With no files one iteration still runs, and fails saying so. */
    tcase_add_loop_test(files, hostile_file, 0, ncases > 0 ? (int)ncases : 1);
    tcase_add_test(files, hostile_files_one_server);

    TCase *limits = server_tcase(s, "limits");
    tcase_add_test(limits, header_flood);
    tcase_add_test(limits, header_value_too_long);
    tcase_add_test(limits, uri_too_long);
    tcase_add_test(limits, header_under_limit_ok);
    tcase_add_test(limits, body_limit_boundary);
    tcase_add_test(limits, random_megabyte);

    TCase *pipe = server_tcase(s, "pipelining");
    tcase_add_test(pipe, pipelined_ping);
    tcase_add_test(pipe, pipelined_order);
    tcase_add_test(pipe, pipelined_after_bodies);

    TCase *timeouts = server_tcase(s, "timeouts");
    tcase_add_test(timeouts, slowloris_header_timeout);
    tcase_add_test(timeouts, body_stall_timeout);

    TCase *ids = server_tcase(s, "request_id");
    tcase_add_test(ids, request_id_echoed);
    tcase_add_test(ids, request_id_hostile_replaced);
    tcase_add_test(ids, request_id_in_problem);
    return s;
}

int main(void)
{
    load_case_list();
    int rc = bk_test_run(http_hostile_suite());
    free_case_list();
    if (tls_dir[0] != '\0') {
        unlink(tls_cert);
        unlink(tls_key);
        rmdir(tls_dir);
    }
    return rc;
}
