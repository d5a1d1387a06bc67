/* A raw-socket HTTP/1.1 test client for the HTTP suites: blocking sockets to
 * 127.0.0.1, every receive and send bounded by BKT_TIMEOUT_MS so that a test never
 * hangs on a wedged server.
 *
 * It reads byte-exactly: a response's head is found with recv(MSG_PEEK) and only
 * the bytes that belong to it are consumed, so pipelined responses can be read one
 * after another from the same socket without a per-fd buffer.
 *
 *   struct bkt_response r;
 *   if (bkt_request(port, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n", 31, &r) == 0)
 *       ... r.status, r.body, bkt_header(&r, "Content-Type", buf, sizeof buf) ...
 *   bkt_response_free(&r);
 *
 * Header-only: every function is static inline, so a suite that uses only some
 * of them still compiles clean with -Wall -Werror.
 * SPDX-License-Identifier: MIT */
#ifndef BK_TESTS_HTTP_CLIENT_H
#define BK_TESTS_HTTP_CLIENT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

/* Every blocking receive or send gives up after this long. */
#define BKT_TIMEOUT_MS 5000
/* A response head longer than this is treated as a broken response. */
#define BKT_MAX_HEAD (1024u * 1024u)
/* A body longer than this is treated as a broken response. */
#define BKT_MAX_BODY (256u * 1024u * 1024u)

#ifdef MSG_NOSIGNAL
#define BKT_MSG_NOSIGNAL MSG_NOSIGNAL
#else
#define BKT_MSG_NOSIGNAL 0
#endif

struct bkt_response {
    int status;      /* 100..999 */
    char *head;      /* status line + headers + the empty line, NUL-terminated */
    char *body;      /* never NULL after success; NUL-terminated beyond body_len */
    size_t body_len;
};

/* A TCP connection to 127.0.0.1:port with the receive and send timeouts set and
 * Nagle off (each send goes out at once); -1 on failure. */
static inline int bkt_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {BKT_TIMEOUT_MS / 1000, (BKT_TIMEOUT_MS % 1000) * 1000};
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        close(fd);
        return -1;
    }
#ifdef SO_NOSIGPIPE
    (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (const struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends all len bytes (no SIGPIPE); 0, or -1 when the peer is gone or the send
 * timed out. */
static inline int bkt_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, BKT_MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* recv() retried on EINTR. */
static inline ssize_t bkt__recv(int fd, void *buf, size_t len, int flags)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, flags);
        if (n >= 0 || errno != EINTR)
            return n;
    }
}

/* Receives exactly len bytes; -1 on EOF, error or timeout. */
static inline int bkt__recv_exact(int fd, char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = bkt__recv(fd, buf, len, 0);
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Consumes bytes up to and including the first occurrence of delim (never more),
 * into a new NUL-terminated buffer (*out, length *outlen without the NUL). -1 on
 * EOF, error, timeout, or more than max bytes without delim. */
static inline int bkt__read_until(int fd, const char *delim, size_t dlen, size_t max,
                                  char **out, size_t *outlen)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char peek[4096];
    for (;;) {
        ssize_t n = bkt__recv(fd, peek, sizeof peek, MSG_PEEK);
        if (n <= 0)
            goto fail;
        if (len + (size_t)n + 1 > cap) {
            size_t ncap = cap ? cap : 256;
            while (ncap < len + (size_t)n + 1)
                ncap *= 2;
            char *nbuf = realloc(buf, ncap);
            if (nbuf == NULL)
                goto fail;
            buf = nbuf;
            cap = ncap;
        }
        memcpy(buf + len, peek, (size_t)n);
        /* Search the new bytes, plus the tail of the old ones the delimiter may
         * straddle. */
        size_t from = len >= dlen - 1 ? len - (dlen - 1) : 0;
        size_t end = len + (size_t)n, take = (size_t)n;
        bool found = false;
        for (size_t i = from; i + dlen <= end; i++) {
            if (memcmp(buf + i, delim, dlen) == 0) {
                take = i + dlen - len;
                found = true;
                break;
            }
        }
        /* Consume only what was peeked and belongs to us: it is all queued. */
        if (bkt__recv_exact(fd, buf + len, take) != 0)
            goto fail;
        len += take;
        buf[len] = '\0';
        if (found) {
            *out = buf;
            *outlen = len;
            return 0;
        }
        if (len > max)
            goto fail;
    }
fail:
    free(buf);
    return -1;
}

/* The value of the first header called name (case-insensitive) in r's head,
 * without surrounding whitespace, copied into buf (cut to bufsz - 1 bytes);
 * NULL when absent. */
static inline const char *bkt_header(const struct bkt_response *r, const char *name, char *buf,
                                     size_t bufsz)
{
    if (r == NULL || r->head == NULL || name == NULL || buf == NULL || bufsz == 0)
        return NULL;
    size_t nlen = strlen(name);
    const char *line = strstr(r->head, "\r\n");
    while (line != NULL) {
        line += 2;
        const char *eol = strstr(line, "\r\n");
        if (eol == NULL || eol == line)
            break; /* the empty line ends the head */
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon != NULL && (size_t)(colon - line) == nlen && strncasecmp(line, name, nlen) == 0) {
            const char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t vlen = (size_t)(ve - v);
            if (vlen > bufsz - 1)
                vlen = bufsz - 1;
            memcpy(buf, v, vlen);
            buf[vlen] = '\0';
            return buf;
        }
        line = eol;
    }
    return NULL;
}

static inline void bkt_response_free(struct bkt_response *r)
{
    if (r == NULL)
        return;
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Appends len bytes read from fd to *body; -1 on EOF, error or timeout. */
static inline int bkt__body_append(int fd, char **body, size_t *blen, size_t len)
{
    if (len > BKT_MAX_BODY || *blen > BKT_MAX_BODY - len)
        return -1;
    char *nb = realloc(*body, *blen + len + 1);
    if (nb == NULL)
        return -1;
    *body = nb;
    if (bkt__recv_exact(fd, nb + *blen, len) != 0)
        return -1;
    *blen += len;
    nb[*blen] = '\0';
    return 0;
}

/* A chunked body: chunk-size lines (extensions ignored), data, trailers. */
static inline int bkt__read_chunked(int fd, char **body, size_t *blen)
{
    for (;;) {
        char *line;
        size_t llen;
        if (bkt__read_until(fd, "\r\n", 2, 4096, &line, &llen) != 0)
            return -1;
        char *end;
        errno = 0;
        unsigned long long size = strtoull(line, &end, 16);
        bool ok = errno == 0 && end != line && (*end == '\r' || *end == ';' || *end == ' ');
        free(line);
        if (!ok)
            return -1;
        if (size == 0)
            break;
        if (size > BKT_MAX_BODY || bkt__body_append(fd, body, blen, (size_t)size) != 0)
            return -1;
        char crlf[2];
        if (bkt__recv_exact(fd, crlf, 2) != 0 || crlf[0] != '\r' || crlf[1] != '\n')
            return -1;
    }
    for (;;) { /* trailer lines, up to the empty line */
        char *line;
        size_t llen;
        if (bkt__read_until(fd, "\r\n", 2, BKT_MAX_HEAD, &line, &llen) != 0)
            return -1;
        free(line);
        if (llen == 2)
            return 0;
    }
}

/* Reads to EOF (a response framed by the close). */
static inline int bkt__read_to_eof(int fd, char **body, size_t *blen)
{
    char tmp[16384];
    for (;;) {
        ssize_t n = bkt__recv(fd, tmp, sizeof tmp, 0);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (*blen > BKT_MAX_BODY)
            return -1;
        char *nb = realloc(*body, *blen + (size_t)n + 1);
        if (nb == NULL)
            return -1;
        *body = nb;
        memcpy(nb + *blen, tmp, (size_t)n);
        *blen += (size_t)n;
        nb[*blen] = '\0';
    }
}

/*
 * Reads exactly one response: the status line and headers up to CRLFCRLF, then
 * the body: none for a HEAD request or a 1xx, 204 or 304 status; a chunked body;
 * Content-Length bytes; or else everything up to EOF. Nothing after the response
 * is consumed. 0, or -1 (r zeroed) on timeout, EOF or a malformed response.
 */
static inline int bkt_read_response(int fd, struct bkt_response *r, bool head_request)
{
    memset(r, 0, sizeof *r);
    size_t hlen;
    if (bkt__read_until(fd, "\r\n\r\n", 4, BKT_MAX_HEAD, &r->head, &hlen) != 0)
        goto fail;
    /* "HTTP/1.1 200 Reason\r\n" */
    const char *h = r->head;
    if (strncmp(h, "HTTP/", 5) != 0 || h[5] < '0' || h[5] > '9' || h[6] != '.' ||
        h[7] < '0' || h[7] > '9' || h[8] != ' ')
        goto fail;
    for (int i = 9; i < 12; i++)
        if (h[i] < '0' || h[i] > '9')
            goto fail;
    if (h[12] != ' ' && h[12] != '\r')
        goto fail;
    r->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    if (r->status < 100)
        goto fail;

    r->body = calloc(1, 1);
    if (r->body == NULL)
        goto fail;
    if (head_request || r->status < 200 || r->status == 204 || r->status == 304)
        return 0;
    char v[256];
    if (bkt_header(r, "Transfer-Encoding", v, sizeof v) != NULL) {
        size_t vl = strlen(v);
        if (vl < 7 || strcasecmp(v + vl - 7, "chunked") != 0) {
            if (bkt__read_to_eof(fd, &r->body, &r->body_len) != 0)
                goto fail;
        } else if (bkt__read_chunked(fd, &r->body, &r->body_len) != 0) {
            goto fail;
        }
        return 0;
    }
    if (bkt_header(r, "Content-Length", v, sizeof v) != NULL) {
        char *end;
        errno = 0;
        unsigned long long cl = strtoull(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || v[0] < '0' || v[0] > '9')
            goto fail;
        if (cl > 0 && bkt__body_append(fd, &r->body, &r->body_len, (size_t)cl) != 0)
            goto fail;
        return 0;
    }
    if (bkt__read_to_eof(fd, &r->body, &r->body_len) != 0)
        goto fail;
    return 0;
fail:
    bkt_response_free(r);
    return -1;
}

static inline int64_t bkt__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for the peer to close (recv returns 0 or ECONNRESET), discarding what it
 * sends meanwhile; *drained (may be NULL) counts the discarded bytes. false when
 * BKT_TIMEOUT_MS passes first (or on another error). */
static inline bool bkt_drain_closed(int fd, size_t *drained)
{
    char tmp[4096];
    size_t total = 0;
    int64_t deadline = bkt__now_ms() + BKT_TIMEOUT_MS;
    bool closed = false;
    for (;;) {
        ssize_t n = bkt__recv(fd, tmp, sizeof tmp, 0);
        if (n > 0) {
            total += (size_t)n;
            if (bkt__now_ms() >= deadline)
                break;
            continue;
        }
        closed = n == 0 || errno == ECONNRESET;
        break;
    }
    if (drained != NULL)
        *drained = total;
    return closed;
}

/* true if the peer closes the connection before the timeout (draining any bytes). */
static inline bool bkt_wait_closed(int fd)
{
    return bkt_drain_closed(fd, NULL);
}

/* Connects, sends the raw request, reads one response (a HEAD request when raw
 * starts with "HEAD "), closes. 0 or -1 (r zeroed). A send that fails half-way
 * (the server answered early and closed) still reads the answer. */
static inline int bkt_request(uint16_t port, const void *raw, size_t len, struct bkt_response *r)
{
    memset(r, 0, sizeof *r);
    int fd = bkt_connect(port);
    if (fd < 0)
        return -1;
    (void)bkt_send_all(fd, raw, len);
    bool head = len >= 5 && memcmp(raw, "HEAD ", 5) == 0;
    int rc = bkt_read_response(fd, r, head);
    close(fd);
    return rc;
}

#endif
