/* One client connection: reads a request head and body off a bufferevent under
 * the server's limits, hands the request to dispatch, writes the answer, and then
 * waits for the next request (keep-alive, pipelining) or closes.
 *
 * Each state has one timer, set when the state is entered and never pushed back
 * by incoming bytes, so a client trickling a byte at a time (slowloris) is cut
 * off when the header or body deadline passes, not kept alive by its trickle.
 * An answer that ends the connection is followed by a lingering close (write
 * side shut, input read and dropped for a moment) so the client sees the answer
 * instead of a reset caused by the bytes it was still sending.
 * SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h> /* ev_write (conn_finish) */
#include <openssl/ssl.h>

#include "http/http_int.h"

#define CHUNK_LINE_MAX 1024 /* a chunk-size line with its extensions */
#define LINGER_NS (2 * BK_NSEC_PER_SEC)
/* Requests a loop keeps for reuse: as many as a busy loop has in flight at
 * once, so that under load none is allocated, while idle connections, however
 * many, hold none. A spare keeps a head buffer of at most SPARE_HEAD_MAX. */
#define SPARE_REQS 64
#define SPARE_HEAD_MAX 4096

static void process(struct conn *c);
static const struct bk__conn_ops conn_ops;

static void arm(struct conn *c, int64_t ns)
{
    struct timeval tv = bk__http_timeval(ns);
    evtimer_add(c->timer, &tv);
}

static void req_release(struct bk_req *req)
{
    bk__arena_free(&req->arena);
    json_decref(req->body_json);
    json_decref(req->query_json);
    json_decref(req->claims);
    free(req->head);
    free(req->query_params);
    bk__body_release(req);
    if (req->res_body)
        evbuffer_free(req->res_body);
    if (req->res_headers)
        evbuffer_free(req->res_headers);
}

/* A request for c, from the loop's spares or new; NULL when out of memory. */
static struct bk_req *req_take(struct conn *c)
{
    struct loop *loop = c->loop;
    struct bk_req *req = loop->spare_reqs;
    if (req != NULL) {
        loop->spare_reqs = req->next_spare;
        loop->nspare_reqs--;
        req->next_spare = NULL;
    } else {
        req = calloc(1, sizeof *req);
        if (req == NULL)
            return NULL;
        req->ops = &conn_ops;
        req->srv = loop->srv;
        req->loop = loop;
        req->res_body = evbuffer_new();
        req->res_headers = evbuffer_new();
        if (req->res_body == NULL || req->res_headers == NULL) {
            req_release(req);
            free(req);
            return NULL;
        }
    }
    req->conn = c;
    req->admin = c->admin;
    return req;
}

/* Gives back c's request, if any: kept as a spare (reset) or freed. */
static void req_give(struct conn *c)
{
    struct bk_req *req = c->req;
    if (req == NULL)
        return;
    c->req = NULL;
    struct loop *loop = c->loop;
    if (loop->nspare_reqs >= SPARE_REQS) {
        req_release(req);
        free(req);
        return;
    }
    bk__req_reset(req);
    bk__body_release(req);
    if (req->head_cap > SPARE_HEAD_MAX) { /* one large head does not stay */
        free(req->head);
        req->head = NULL;
        req->head_cap = 0;
    }
    req->conn = NULL;
    req->next_spare = loop->spare_reqs;
    loop->spare_reqs = req;
    loop->nspare_reqs++;
}

void bk__loop_free_reqs(struct loop *loop)
{
    while (loop->spare_reqs != NULL) {
        struct bk_req *req = loop->spare_reqs;
        loop->spare_reqs = req->next_spare;
        req_release(req);
        free(req);
    }
    loop->nspare_reqs = 0;
}

/* Closes the socket now. A connection whose request is on the worker pool stays
 * allocated (dead) until the pool hands the request back. */
static void drop_socket(struct conn *c)
{
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
        atomic_fetch_sub(c->admin ? &c->loop->srv->admin_nconns : &c->loop->srv->nconns, 1);
    }
    evtimer_del(c->timer);
}

void bk__conn_free(struct conn *c)
{
    struct loop *loop = c->loop;
    drop_socket(c);
    event_free(c->timer);
    req_give(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        loop->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    loop->nconns--;
    free(c);
    bk__loop_maybe_exit(loop);
}

/* Closes the connection. One whose request is away (on the worker pool, or a
 * readiness answer waiting for its checks) stays allocated, dead, until that
 * request comes back: only dispatched requests can be seen here, since inline
 * ones complete before the loop runs anything else. */
static void conn_close(struct conn *c)
{
    if (c->state == C_DISPATCHED) {
        c->dead = true;
        drop_socket(c);
        return;
    }
    bk__conn_free(c);
}

/* The request is read (or cannot be): no more input until it is answered.
 * Reading is turned off only when more input comes meanwhile (process): most
 * answers are written before any does, and turning it off and on again costs a
 * system call (epoll_ctl) per request. */
static void stop_reading(struct conn *c)
{
    evtimer_del(c->timer);
    c->state = C_DISPATCHED;
}

static void fail(struct conn *c, int status, const char *detail)
{
    stop_reading(c);
    bk__dispatch_error(c->req, status, detail);
}

/* As fail, for a library code: the answer is bk_res_error's. */
static void fail_code(struct conn *c, int code, const char *detail)
{
    stop_reading(c);
    bk__dispatch_error_code(c->req, code, detail);
}

/* ------------------------------------------------------------------ framing */
/* Content-Length: 1*DIGIT. -1 when malformed, -2 when too large to represent. */
static int64_t parse_length(const char *v)
{
    if (*v == '\0')
        return -1;
    int64_t n = 0;
    for (; *v; v++) {
        if (*v < '0' || *v > '9')
            return -1;
        if (n > (INT64_MAX - 9) / 10)
            return -2;
        n = n * 10 + (*v - '0');
    }
    return n;
}

static bool has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t len = strcspn(p, ",");
        size_t t = len;
        while (t > 0 && (p[t - 1] == ' ' || p[t - 1] == '\t'))
            t--;
        if (t == tlen && strncasecmp(p, token, tlen) == 0)
            return true;
        p += len;
    }
    return false;
}

/* Decides how the body is framed and whether the connection stays open; 0 or an
 * error status. c->remaining gets the Content-Length. */
static int framing(struct conn *c, const char **detail)
{
    struct bk_req *req = c->req;
    const bk_http_opts_t *o = &c->loop->srv->o;
    int hosts = 0;
    int64_t length = -1;
    const char *te = NULL;
    bool close = false, keep = false;
    for (size_t i = 0; i < req->nhdrs; i++) {
        const struct hdr *h = &req->hdrs[i];
        if (h->nlen == 4 && strcasecmp(h->name, "Host") == 0) {
            if (!bk__host_ok(h->value)) {
                *detail = "invalid Host header";
                return 400;
            }
            hosts++;
        } else if (h->nlen == 14 && strcasecmp(h->name, "Content-Length") == 0) {
            int64_t n = parse_length(h->value);
            if (n == -2) {
                *detail = "Content-Length is too large";
                return 413;
            }
            if (n < 0 || (length >= 0 && n != length)) {
                *detail = "invalid or conflicting Content-Length";
                return 400;
            }
            length = n;
        } else if (h->nlen == 17 && strcasecmp(h->name, "Transfer-Encoding") == 0) {
            if (te != NULL) {
                *detail = "more than one Transfer-Encoding header";
                return 400;
            }
            te = h->value;
        } else if (h->nlen == 10 && strcasecmp(h->name, "Connection") == 0) {
            if (has_token(h->value, "close"))
                close = true;
            if (has_token(h->value, "keep-alive"))
                keep = true;
        } else if (h->nlen == 6 && strcasecmp(h->name, "Expect") == 0) {
            if (strcasecmp(h->value, "100-continue") != 0) {
                *detail = "only Expect: 100-continue is supported";
                return 417;
            }
            req->expect_continue = req->minor >= 1;
        }
    }
    if (hosts > 1 || (req->minor >= 1 && hosts == 0)) {
        *detail = "exactly one Host header is required";
        return 400;
    }
    if (te != NULL) {
        /* Both framings at once is how requests are smuggled past proxies. */
        if (length >= 0 || req->minor == 0) {
            *detail = "Transfer-Encoding with Content-Length or in HTTP/1.0";
            return 400;
        }
        if (strcasecmp(te, "chunked") != 0) {
            /* RFC 9112 6.3: without chunked last the body's end is unknowable (400);
             * chunked after codings we do not implement is 501. */
            size_t len = strlen(te);
            bool chunked_last = len > 7 && strcasecmp(te + len - 7, "chunked") == 0 &&
                                (te[len - 8] == ',' || te[len - 8] == ' ' || te[len - 8] == '\t');
            *detail = chunked_last ? "only the chunked transfer coding is supported"
                                   : "the final transfer coding must be chunked";
            return chunked_last ? 501 : 400;
        }
        req->chunked = true;
    }
    if (length > 0 && (uint64_t)length > o->max_body_bytes) {
        *detail = "the body is larger than the server accepts";
        return 413;
    }
    c->remaining = length > 0 ? (uint64_t)length : 0;
    /* HTTP/1.0 closes unless the client asks for keep-alive (RFC 9112 9.3). */
    req->keep_alive = req->minor >= 1 ? !close : keep && !close;
    return 0;
}

/* ------------------------------------------------------------------ reading */
static void start_request(struct conn *c)
{
    stop_reading(c); /* pipelined requests wait in the buffer */
    bk__dispatch(c->req);
}

static char byte_at(struct evbuffer *in, size_t pos)
{
    struct evbuffer_ptr p;
    char b = 0;
    if (evbuffer_ptr_set(in, &p, pos, EVBUFFER_PTR_SET) == 0)
        evbuffer_copyout_from(in, &p, &b, 1);
    return b;
}

/* True when the bytes of in from offset from on hold a LF not preceded by CR: a
 * client ending lines with bare LF would otherwise wait for the header timeout
 * instead of hearing why. Searches only the new bytes, copying nothing. */
static bool bare_lf(struct evbuffer *in, size_t from)
{
    struct evbuffer_ptr p;
    if (evbuffer_ptr_set(in, &p, from, EVBUFFER_PTR_SET) != 0)
        return false;
    for (;;) {
        p = evbuffer_search(in, "\n", 1, &p);
        if (p.pos < 0)
            return false;
        if (p.pos == 0 || byte_at(in, (size_t)p.pos - 1) != '\r')
            return true;
        if (evbuffer_ptr_set(in, &p, 1, EVBUFFER_PTR_ADD) != 0)
            return false;
    }
}

/* Reads the head; true when the caller should go on (body or dispatch). */
static bool read_head(struct conn *c, struct evbuffer *in)
{
    const bk_http_opts_t *o = &c->loop->srv->o;
    struct bk_req *req = c->req;
    size_t len = evbuffer_get_length(in);
    struct evbuffer_ptr from;
    evbuffer_ptr_set(in, &from, c->scanned > 3 ? c->scanned - 3 : 0, EVBUFFER_PTR_SET);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, &from);
    size_t head_len = end.pos < 0 ? len : (size_t)end.pos + 4;
    if (head_len > o->max_header_bytes) {
        /* No line end within the limit: the request line alone is too long. */
        struct evbuffer_ptr eol = evbuffer_search(in, "\r\n", 2, NULL);
        bool uri = eol.pos < 0 || (size_t)eol.pos >= o->max_header_bytes;
        fail(c, uri ? 414 : 431, uri ? "the request line is too long" : "the headers are too large");
        return false;
    }
    if (end.pos < 0) {
        if (bare_lf(in, c->scanned)) {
            fail(c, 400, "lines must end with CRLF");
            return false;
        }
        c->scanned = len;
        return false;
    }
    if (req->head_cap < head_len + 1) {
        char *h = realloc(req->head, head_len + 1);
        if (h == NULL) {
            fail_code(c, BK_ENOMEM, NULL);
            return false;
        }
        req->head = h;
        req->head_cap = head_len + 1;
    }
    evbuffer_remove(in, req->head, head_len);
    req->head[head_len] = '\0';
    const char *detail = "malformed request";
    int st = bk__http_parse_head(req, head_len);
    if (st == 431)
        detail = "too many header fields";
    else if (st == 505)
        detail = "only HTTP/1.0 and HTTP/1.1 are served";
    if (st == 0)
        st = framing(c, &detail);
    if (st != 0) {
        fail(c, st, detail);
        return false;
    }
    if (req->chunked || c->remaining > 0) {
        if (req->expect_continue)
            evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
        c->state = req->chunked ? C_CHUNK_SIZE : C_BODY;
        evtimer_del(c->timer);
        arm(c, o->body_timeout_ns);
        return true;
    }
    start_request(c);
    return false;
}

enum line_rc { LINE_OK, LINE_MORE, LINE_BARE_LF, LINE_TOO_LONG };

/* Takes the next line off in into *out (without its CRLF, NUL-terminated, *len
 * bytes; the caller frees it). A line must end in CRLF and be at most max bytes
 * without it; what is in it is the caller's grammar to check. */
static enum line_rc read_line(struct evbuffer *in, size_t max, char **out, size_t *len)
{
    size_t n;
    char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
    if (line == NULL)
        return evbuffer_get_length(in) > max + 1 ? LINE_TOO_LONG : LINE_MORE;
    enum line_rc rc = n == 0 || line[n - 1] != '\r' ? LINE_BARE_LF
                      : n - 1 > max                 ? LINE_TOO_LONG
                                                    : LINE_OK;
    if (rc != LINE_OK) {
        free(line);
        return rc;
    }
    line[--n] = '\0';
    *out = line;
    *len = n;
    return LINE_OK;
}

/* Moves n bytes of in into the body; false when the request was failed. */
static bool take_body(struct conn *c, struct evbuffer *in, size_t n, size_t hint)
{
    int rc = bk__body_take(c->req, in, n, hint);
    if (rc != BK_OK) /* BK_EBUSY: 503 with Retry-After; BK_ENOMEM: 500 */
        fail_code(c, rc, rc == BK_EBUSY ? "the server holds too many request bodies; try again"
                                        : NULL);
    return rc == BK_OK;
}

/* One trailer field line (RFC 9112 7.1.2): the grammar and limits of a header
 * field; trailers are then dropped. False when the request was failed. */
static bool take_trailer(struct conn *c, char *line, size_t len)
{
    const bk_http_opts_t *o = &c->loop->srv->o;
    c->trailer_bytes += len + 2;
    if (c->trailer_bytes > o->max_header_bytes || ++c->ntrailers > BK_HTTP_MAX_HEADERS) {
        fail(c, 431, "trailer fields too large");
        return false;
    }
    struct hdr h;
    if (bk__http_parse_field(line, line + len, &h) != 0) {
        fail(c, 400, "malformed trailer field");
        return false;
    }
    return true;
}

static void process(struct conn *c)
{
    const bk_http_opts_t *o = &c->loop->srv->o;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        struct bk_req *req = c->req; /* NULL in C_IDLE and C_LINGER */
        switch (c->state) {
        case C_IDLE: {
            /* RFC 9112: ignore empty lines before a request line. */
            unsigned char *p;
            while ((p = evbuffer_pullup(in, 2)) != NULL && p[0] == '\r' && p[1] == '\n')
                evbuffer_drain(in, 2);
            if (evbuffer_get_length(in) == 0)
                return;
            if ((c->req = req_take(c)) == NULL) {
                conn_close(c); /* out of memory: nothing to answer with */
                return;
            }
            c->state = C_HEAD;
            c->scanned = 0;
            c->body_total = 0;
            c->ext_bytes = c->trailer_bytes = c->ntrailers = 0;
            evtimer_del(c->timer);
            arm(c, o->header_timeout_ns);
            break;
        }
        case C_HEAD:
            if (!read_head(c, in))
                return;
            break;
        case C_BODY: {
            size_t avail = evbuffer_get_length(in);
            size_t n = avail < c->remaining ? avail : (size_t)c->remaining;
            if (n == 0)
                return;
            if (!take_body(c, in, n, req->body.len + (size_t)c->remaining + 1))
                return;
            c->remaining -= n;
            if (c->remaining > 0)
                return;
            start_request(c);
            return;
        }
        case C_CHUNK_SIZE: {
            char *line;
            size_t len, ext;
            enum line_rc lr = read_line(in, CHUNK_LINE_MAX, &line, &len);
            if (lr != LINE_OK) {
                if (lr != LINE_MORE)
                    fail(c, 400, lr == LINE_TOO_LONG ? "chunk-size line too long"
                                                     : "lines must end with CRLF");
                return;
            }
            int64_t n = bk__http_parse_chunk_line(line, len, &ext);
            free(line);
            if (n < 0) {
                fail(c, 400, "malformed chunk size or extension");
                return;
            }
            /* Extensions are read and dropped: bound what a body may carry of them. */
            if ((c->ext_bytes += ext) > o->max_header_bytes) {
                fail(c, 400, "chunk extensions too long");
                return;
            }
            if ((uint64_t)n > o->max_body_bytes - c->body_total) {
                fail(c, 413, "the body is larger than the server accepts");
                return;
            }
            c->body_total += (uint64_t)n;
            c->remaining = (uint64_t)n;
            c->state = n == 0 ? C_TRAILERS : C_CHUNK_DATA;
            break;
        }
        case C_CHUNK_DATA: {
            size_t avail = evbuffer_get_length(in);
            if (c->remaining > 0) {
                size_t n = avail < c->remaining ? avail : (size_t)c->remaining;
                if (n == 0)
                    return;
                if (!take_body(c, in, n, 0))
                    return;
                c->remaining -= n;
                if (c->remaining > 0)
                    return;
            }
            unsigned char *crlf = evbuffer_pullup(in, 2);
            if (crlf == NULL)
                return;
            if (crlf[0] != '\r' || crlf[1] != '\n') {
                fail(c, 400, "chunk data not followed by CRLF");
                return;
            }
            evbuffer_drain(in, 2);
            c->state = C_CHUNK_SIZE;
            break;
        }
        case C_TRAILERS: {
            char *line;
            size_t len;
            enum line_rc lr = read_line(in, o->max_header_bytes, &line, &len);
            if (lr != LINE_OK) {
                if (lr != LINE_MORE)
                    fail(c, lr == LINE_TOO_LONG ? 431 : 400,
                         lr == LINE_TOO_LONG ? "trailer fields too large" : "lines must end with CRLF");
                return;
            }
            bool ok = len == 0 || take_trailer(c, line, len);
            free(line);
            if (!ok)
                return;
            if (len == 0) {
                start_request(c);
                return;
            }
            break;
        }
        case C_LINGER:
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        case C_DISPATCHED:
        case C_WRITING:
            /* A pipelined request, or more: it waits in the buffer, and the
             * kernel's, until this answer is written (on_write reads on). */
            bufferevent_disable(c->bev, EV_READ);
            return;
        }
    }
}

/* ------------------------------------------------------------------ writing */
static void conn_finish(struct bk_req *req)
{
    struct conn *c = req->conn;
    struct loop *loop = c->loop;
    if (loop->stopping)
        req->keep_alive = false;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    bk__res_serialize(req, out);
    /* TLS writes a record per chunk of the buffer: the head, the headers and
     * the body in one chunk (up to a record's 16 KiB) go in one record and one
     * write, where apart they took three. */
    if (c->tls)
        evbuffer_pullup(out, (ev_ssize_t)(evbuffer_get_length(out) < 16384 ? evbuffer_get_length(out) : 16384));
    bk__body_release(req); /* the handler is done with it: a kept-alive idle
                              connection holds no body memory */
    c->close_after = c->close_after || !req->keep_alive; /* set when the client half-closed */
    c->state = C_WRITING;
    evtimer_del(c->timer);
    arm(c, loop->srv->o.write_timeout_ns);
    bufferevent_enable(c->bev, EV_WRITE);
    /* A socket bufferevent (TLS's too) writes when the loop next finds the
     * socket writable: a wait and two changes of its events for every answer,
     * though the socket can almost always take it now. Its write event made
     * active writes now, in this pass of the loop; with the change list the
     * changes cancel out, and an answer costs no system call but its write. */
    if (event_pending(&c->bev->ev_write, EV_WRITE, NULL))
        event_active(&c->bev->ev_write, EV_WRITE, 1);
}

static bool conn_gone(struct bk_req *req)
{
    struct conn *c = req->conn;
    if (!c->dead)
        return false;
    bk__conn_free(c);
    return true;
}

/* How dispatch reaches this connection (http_int.h, struct bk__conn_ops). */
static const struct bk__conn_ops conn_ops = {.finish = conn_finish, .gone = conn_gone};

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (c->state != C_WRITING)
        return;
    evtimer_del(c->timer);
    if (c->close_after) {
        /* Lingering close: our FIN goes out, the client's leftovers are dropped. */
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
        c->state = C_LINGER;
        req_give(c);
        evbuffer_drain(bufferevent_get_input(c->bev),
                       evbuffer_get_length(bufferevent_get_input(c->bev)));
        bufferevent_enable(c->bev, EV_READ);
        arm(c, LINGER_NS);
        return;
    }
    c->state = C_IDLE;
    req_give(c);
    if (c->loop->stopping) {
        bk__conn_free(c);
        return;
    }
    arm(c, c->loop->srv->o.idle_timeout_ns);
    bufferevent_enable(c->bev, EV_READ);
    process(c); /* a pipelined request may be waiting in the buffer */
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (what & BEV_EVENT_CONNECTED)
        return; /* a TLS handshake done: the request comes as on plain TCP */
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) &&
        (c->state == C_DISPATCHED || c->state == C_WRITING)) {
        /* The client half-closed after its request: answer, then close. */
        c->close_after = true;
        return;
    }
    conn_close(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    conn_close(c);
}

/* ------------------------------------------------------------------ accepting */
static void refuse(struct loop *loop, evutil_socket_t fd)
{
    char body[256], msg[512];
    int blen = snprintf(body, sizeof body,
                        "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,"
                        "\"detail\":\"too many connections\",\"instance\":\"\","
                        "\"request_id\":\"%s-%08llx\"}",
                        loop->id_prefix, (unsigned long long)++loop->id_seq);
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
                     "Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
                     blen, body);
    /* Best effort on a fresh socket whose send buffer is empty. */
    ssize_t w = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    evutil_closesocket(fd);
}

static void client_text(struct conn *c, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->client, sizeof c->client);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->client,
                  sizeof c->client);
    else
        strcpy(c->client, "unix");
}

void bk__conn_accept(struct loop *loop, evutil_socket_t fd, struct sockaddr *sa, int salen,
                     bool admin)
{
    (void)salen;
    bk_http_server_t *srv = loop->srv;
    /* The admin listener counts its own connections: a flood of the main one
     * does not keep probes and scrapes out. */
    atomic_uint *nconns = admin ? &srv->admin_nconns : &srv->nconns;
    unsigned limit = admin ? srv->o.admin_max_connections : srv->o.max_connections;
    if (atomic_fetch_add(nconns, 1) >= limit) {
        atomic_fetch_sub(nconns, 1);
        refuse(loop, fd);
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c != NULL) {
        c->loop = loop;
        c->admin = admin;
        c->timer = evtimer_new(loop->base, on_timer, c);
        if (srv->tls_ctx != NULL && !admin) {
            /* The handshake runs under the header timeout armed below; a
             * client that speaks plain HTTP fails it and is closed. */
            SSL *ssl = bk__tls_ssl(srv);
            c->bev = ssl ? bufferevent_openssl_socket_new(loop->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                          BEV_OPT_CLOSE_ON_FREE)
                         : NULL;
            if (c->bev != NULL) {
                bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
                c->tls = true;
            }
            else if (ssl != NULL)
                SSL_free(ssl);
        } else {
            c->bev = bufferevent_socket_new(loop->base, fd, BEV_OPT_CLOSE_ON_FREE);
        }
    }
    if (c == NULL || c->timer == NULL || c->bev == NULL) {
        if (c != NULL) {
            if (c->bev != NULL)
                bufferevent_free(c->bev);
            else
                evutil_closesocket(fd);
            if (c->timer)
                event_free(c->timer);
            free(c);
        } else {
            evutil_closesocket(fd);
        }
        atomic_fetch_sub(nconns, 1);
        return;
    }
    if (sa->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    client_text(c, sa);
    c->next = loop->conns;
    if (loop->conns)
        loop->conns->prev = c;
    loop->conns = c;
    loop->nconns++;
    c->state = C_IDLE;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_enable(c->bev, EV_READ);
    /* A connection that sends nothing is a slow header, not an idle keep-alive. */
    arm(c, srv->o.header_timeout_ns);
}

/* Graceful stop on this loop: idle connections close now, the others close after
 * their answer (keep_alive is cleared in conn_finish). */
void bk__loop_stop_conns(struct loop *loop, bool force)
{
    for (struct conn *c = loop->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (force || (c->state == C_IDLE && c->bev != NULL &&
                      evbuffer_get_length(bufferevent_get_input(c->bev)) == 0))
            conn_close(c);
        else if (c->state == C_LINGER)
            conn_close(c);
    }
}
