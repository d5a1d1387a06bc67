/* libFuzzer target: the HTTP/1.1 server's connection code (the head parser,
 * header limits, Content-Length and chunked bodies, pipelining, keep-alive)
 * fed the bytes of a real TCP connection to a server in this process, written
 * in pieces whose sizes come from the input, so that every parser state meets
 * a split. The splits are exact: the server being in this process, the target
 * finds its end of the connection and writes a piece only once the server has
 * read the one before (its receive queue empty), so that TCP cannot merge
 * them; unless the server stops reading (an answer to write first), which
 * it may.
 *
 * The server has JSON routes, a body route (Content-Length and chunked), a
 * query string validated and coerced by a schema, the health probes, and
 * static files under /static/ from a directory made at start, beside which a
 * file holds a canary of raw control bytes, with a symbolic link to it inside
 * the directory.
 *
 * Input: byte 0 seeds the sizes of the pieces; the rest is what the client
 * sends. The client then half-closes and reads until the server closes.
 * Findings (abort): a server that neither answers nor closes within 10 s, an
 * answer that does not begin with a status line, and an answer that holds the
 * canary (a file from outside the static directory).
 * SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <backend/backend.h>

#include "fuzz.h"

static bk_http_server_t *srv;
static uint16_t port;
static bk_schema_t *query_schema;
static char dir[64]; /* dir/secret.txt holds CANARY; dir/root is served */
/* Raw control bytes: no request can carry them into an answer (a request line
 * and headers refuse them, and every JSON answer escapes them), so only the
 * file itself can. */
#define CANARY "\x01\x02" "canary" "\x03\x04" "outside" "\x05\x06" "the-root" "\x07"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) == EOF || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static void remove_dir(void)
{
    static const char *const files[] = {"root/sub/b.json", "root/.hidden", "root/a.txt", "root/index.html",
                                        "root/link", "root/sub", "root", "secret.txt"};
    char p[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (unlink(p) != 0)
            rmdir(p);
    }
    rmdir(dir);
}

/* The static directory, and the canary beside it. */
static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/bk-fuzz-http.XXXXXX");
    char p[128];
    if (!mkdtemp(dir))
        abort();
    atexit(remove_dir);
    snprintf(p, sizeof p, "%s/secret.txt", dir);
    write_file(p, CANARY "\n");
    snprintf(p, sizeof p, "%s/root", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/root/sub", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/root/index.html", dir);
    write_file(p, "<p>index</p>\n");
    snprintf(p, sizeof p, "%s/root/a.txt", dir);
    write_file(p, "0123456789abcdefghijklmnopqrstuvwxyz\n");
    snprintf(p, sizeof p, "%s/root/.hidden", dir);
    write_file(p, "dotfile\n");
    snprintf(p, sizeof p, "%s/root/sub/b.json", dir);
    write_file(p, "{\"b\":1}\n");
    snprintf(p, sizeof p, "%s/root/link", dir);
    if (symlink("../secret.txt", p) != 0)
        abort();
}

static void get_json(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{s:s}", "message", "Hello, World!"));
}

/* The body as JSON (Content-Length or chunked), echoed. */
static void post_echo(bk_req_t *req, void *ud)
{
    (void)ud;
    json_t *doc;
    if (bk_req_json(req, &doc) != BK_OK)
        return; /* answered 400/413/415 by bk_req_json */
    bk_res_json(req, 200, doc);
}

static void get_item(bk_req_t *req, void *ud)
{
    (void)ud;
    const char *q = bk_req_query(req, "q");
    bk_res_json(req, 200, json_pack("{s:s, s:s?}", "id", bk_req_param(req, "id"), "q", q));
}

/* The query, validated and coerced by the route's schema. */
static void get_search(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{s:s?, s:s?}", "page", bk_req_query(req, "page"), "q", bk_req_query(req, "q")));
}

static void start(void)
{
    signal(SIGPIPE, SIG_IGN);
    make_dir();
    json_t *qs = json_pack("{s:s, s:{s:{s:s, s:i, s:i}, s:{s:s, s:i}, s:{s:s, s:{s:s}}, s:{s:s}}, s:b}", "type",
                           "object", "properties", "page", "type", "integer", "minimum", 1, "default", 1, "q", "type",
                           "string", "maxLength", 16, "tags", "type", "array", "items", "type", "string", "on", "type",
                           "boolean", "additionalProperties", 0);
    bk_error_t serr;
    if (!qs || bk_schema_compile(qs, NULL, &query_schema, &serr) != BK_OK)
        abort();
    json_decref(qs);
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.query_schema = query_schema;
    char root[128];
    snprintf(root, sizeof root, "%s/root", dir);
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    o.max_body_bytes = 64 * 1024;
    bk_error_t err;
    if (bk_http_server_new(&o, &srv, &err) != BK_OK || bk_http_route(srv, "GET", "/json", get_json, NULL, NULL) ||
        bk_http_route(srv, "POST", "/echo", post_echo, NULL, NULL) ||
        bk_http_route(srv, "GET", "/items/{id}", get_item, NULL, NULL) ||
        bk_http_route(srv, "GET", "/search", get_search, NULL, &ro) || bk_http_mount_health(srv) ||
        bk_http_mount_static(srv, "/static/", root, NULL, &err) != BK_OK || bk_http_server_start(srv, &err) != BK_OK) {
        fprintf(stderr, "fuzz_http: the server did not start: %s\n", err.message);
        abort();
    }
    bk_http_server_set_started(srv, true);
    port = bk_http_server_port(srv);
}

BK_FUZZ_INIT
{
    start();
}

/* Writes all of buf, failing only when the server has closed (it may, on bad input). */
static bool send_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* A connection to the server. libFuzzer's timer (SIGALRM) may interrupt
 * connect(2), which then goes on by itself: wait for it to finish. */
static int connect_to_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&a, sizeof a);
    if (rc != 0 && fd >= 0 && errno == EINTR) {
        struct pollfd p = {fd, POLLOUT, 0};
        while (poll(&p, 1, 10000) < 0 && errno == EINTR)
            ;
        int e = 0;
        socklen_t len = sizeof e;
        rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e == 0 && (p.revents & POLLOUT) ? 0 : -1;
    }
    if (rc != 0) {
        perror("fuzz_http: connect");
        abort();
    }
    return fd;
}

/* The server's end of the connection fd (a descriptor of this process whose
 * peer is fd's own address), once the server has accepted it; -1 when it has
 * not within a second. */
static int server_end(int fd)
{
    struct sockaddr_in mine;
    socklen_t len = sizeof mine;
    if (getsockname(fd, (struct sockaddr *)&mine, &len) != 0)
        return -1;
    for (int tries = 0; tries < 1000; tries++) {
        for (int s = 3; s < fd + 64; s++) { /* accepted after fd was made: near it */
            struct sockaddr_in peer;
            socklen_t plen = sizeof peer;
            if (s != fd && getpeername(s, (struct sockaddr *)&peer, &plen) == 0 && plen == sizeof peer &&
                peer.sin_family == AF_INET && peer.sin_port == mine.sin_port &&
                peer.sin_addr.s_addr == mine.sin_addr.s_addr)
                return s;
        }
        usleep(1000);
    }
    return -1;
}

/* Until the server has read everything sent (its receive queue empty), for at
 * most 20 ms: it stops reading while an answer waits to be written, and its
 * descriptor may be closed (then another's: only asked, never changed). */
static void until_read(int server_fd)
{
    for (int i = 0; i < 2000; i++) {
        int queued = 0;
        if (server_fd < 0 || ioctl(server_fd, FIONREAD, &queued) != 0 || queued == 0)
            return;
        usleep(10);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t rng = data[0] * 2654435761u + 1;
    data++, size--;
    int fd = connect_to_server();
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int server_fd = server_end(fd);
    bool open = true;
    for (size_t off = 0; open && off < size;) {
        rng = rng * 1103515245u + 12345u;
        size_t piece = 1 + (rng >> 16) % 64;
        if (piece > size - off)
            piece = size - off;
        open = send_all(fd, data + off, piece);
        off += piece;
        until_read(server_fd);
    }
    shutdown(fd, SHUT_WR);
    static char got[1 << 20];
    size_t have = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, 10000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            fprintf(stderr, "fuzz_http: the server neither answered nor closed in 10 s\n");
            abort();
        }
        char buf[4096];
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* closed (or reset after a refusal) */
        size_t take = (size_t)r < sizeof got - have ? (size_t)r : sizeof got - have;
        memcpy(got + have, buf, take);
        have += take;
    }
    close(fd);
    if (have >= 9 && memcmp(got, "HTTP/1.1 ", 9) != 0) {
        fprintf(stderr, "fuzz_http: an answer that is no status line: %.*s\n", (int)(have > 64 ? 64 : have), got);
        abort();
    }
    if (memmem(got, have, CANARY, sizeof CANARY - 1)) {
        fprintf(stderr, "fuzz_http: a file from outside the static directory was served\n");
        abort();
    }
    return 0;
}
