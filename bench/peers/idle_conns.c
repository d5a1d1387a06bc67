/* idle_conns: holds many idle HTTP/1.1 keep-alive connections open against a server,
 * for bench/peers.sh to measure what each one costs the server while it sits idle.
 *
 *   idle_conns --port N --count N [--host 127.0.0.1] [--path /json]
 *              [--timeout SECONDS] [--batch N]     (timeout default 30, batch 500)
 *
 * 1. Raises its RLIMIT_NOFILE soft limit to the hard one (and the hard one to
 *    count + 100 when it is lower and the process may, as root may).
 * 2. Opens count non-blocking TCP connections with epoll, at most batch of them
 *    connecting or awaiting their answer at a time, so the server's accept backlog
 *    is not flooded. On each it sends one "GET PATH HTTP/1.1" with a Host header and
 *    reads the whole answer (Content-Length or chunked); one complete 200 answer makes
 *    the connection "held", after which it stays idle, watched for the server
 *    closing it. Nothing is retried: a connection that fails is counted once.
 * 3. After --timeout seconds in all (or when every connection is done, or on a
 *    signal) it stops opening, and prints on stderr
 *      idle_conns: held H of COUNT (failed F: connect C, closed X, bad answer B,
 *      unfinished U)
 *    and "held H" on stdout. "connect" counts the connects that failed (refused,
 *    timed out, no local port); "closed" the connections the server closed or reset
 *    before its answer was complete, those whose answer said "Connection: close",
 *    and held ones it closed before this line; "bad answer" one that was not a
 *    well-formed 200 with a length (or chunked), or had bytes after its end;
 *    "unfinished" those still connecting or awaiting their answer at the deadline,
 *    and those not yet started.
 * 4. Holds them until stdin reaches EOF or SIGINT/SIGTERM arrives (stdin /dev/null or
 *    a regular file is at EOF at once: feed it a pipe to hold), counting connections
 *    the server closes meanwhile, then prints "idle_conns: still held S" on stderr
 *    and "still S" on stdout, and closes them all.
 *
 * Exit status: 0 when all count were held, 1 when fewer were (both lines are still
 * printed), 2 on a usage error or a failure of its own (rlimit, epoll, stdout).
 *
 * Memory: one small struct per connection in one flat array, one shared receive
 * buffer, one shared request; answers are parsed as they stream in, keeping only the
 * start of the current line (64 bytes, enough for the lines that matter).
 *
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROG "idle_conns"
#define HOST_MAX 255
#define PATH_MAX_LEN 2048
#define LINE_MAX_KEPT 64
#define HEAD_MAX (64 * 1024) /* line bytes one answer may have: its head, chunk lines */
#define KEY_SIGNAL UINT64_MAX
#define KEY_STDIN (UINT64_MAX - 1)

enum state {
    ST_IDLE,       /* not opened yet */
    ST_CONNECTING, /* connect() in progress */
    ST_SENDING,    /* part of the request written */
    ST_STATUS,     /* reading the status line */
    ST_HEADERS,
    ST_BODY, /* left = body bytes to go */
    ST_CHUNK_SIZE,
    ST_CHUNK_DATA, /* left = chunk bytes to go */
    ST_CHUNK_END,  /* the CRLF after a chunk's data */
    ST_TRAILER,
    ST_DONE, /* answer complete (parser's verdict, before it is counted) */
    ST_HELD,
    ST_GONE, /* failed or closed: fd is -1 */
};

enum outcome { OUT_HELD, OUT_CONNECT, OUT_CLOSED, OUT_BAD, OUT_UNFINISHED };

#define F_TRUNC 1   /* the current line was longer than line[] */
#define F_LENGTH 2  /* Content-Length seen (in left) */
#define F_CHUNKED 4 /* Transfer-Encoding: chunked seen */
#define F_CLOSE 8   /* Connection: close seen: the server will not keep it */

struct conn {
    int fd;
    uint8_t state;
    uint8_t flags;
    uint8_t line_len;
    uint32_t n;    /* ST_SENDING: request bytes sent; after: line bytes read */
    uint64_t left; /* body or chunk bytes still to read; Content-Length in the head */
    char line[LINE_MAX_KEPT];
};

struct opts {
    const char *host;
    const char *path;
    long port, count, timeout, batch;
};

struct run {
    struct opts o;
    struct conn *c;
    int ep, sfd;
    char req[HOST_MAX + PATH_MAX_LEN + 64];
    size_t req_len;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    uint32_t next, inflight, resolved;
    uint32_t held, n_connect, n_closed, n_bad, n_unfinished;
    int first_connect_errno;
    bool stop;
    char buf[16384];
};

/* ---- arguments ---- */

static void usage(void)
{
    fprintf(stderr, "usage: " PROG " --port N --count N [--host 127.0.0.1] [--path /json]"
                    " [--timeout SECONDS] [--batch N]\n");
    exit(2);
}

static long parse_long(const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
        usage();
    return v;
}

/* The strings go verbatim into the request: no room for a second line in them. */
static bool plain_text(const char *s, size_t max)
{
    return *s != '\0' && strlen(s) <= max && strpbrk(s, " \t\r\n") == NULL;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},    {"count", required_argument, NULL, 'c'},
        {"host", required_argument, NULL, 'h'},    {"path", required_argument, NULL, 'P'},
        {"timeout", required_argument, NULL, 't'}, {"batch", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0}};
    *o = (struct opts){.host = "127.0.0.1", .path = "/json", .timeout = 30, .batch = 500};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'p': o->port = parse_long(optarg, 1, 65535); break;
        case 'c': o->count = parse_long(optarg, 1, 10000000); break;
        case 'h': o->host = optarg; break;
        case 'P': o->path = optarg; break;
        case 't': o->timeout = parse_long(optarg, 1, 86400); break;
        case 'b': o->batch = parse_long(optarg, 1, 1000000); break;
        default: usage();
        }
    }
    if (optind != argc || o->port == 0 || o->count == 0 || !plain_text(o->host, HOST_MAX) ||
        !plain_text(o->path, PATH_MAX_LEN) || o->path[0] != '/')
        usage();
}

/* ---- setup ---- */

/* A closed stdin, stdout or stderr would be the first socket's number, and then the
 * socket would be read as stdin or written to as stdout: /dev/null holds the place
 * (a closed stdin so becomes one at EOF). */
static int reserve_stdio(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int got = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (got != fd) {
            if (got >= 0)
                close(got);
            return -1; /* stderr may be the one missing: nothing to say it on */
        }
    }
    return 0;
}

/* Every connection is a descriptor; the few more are stdio, epoll, signalfd. */
static int raise_nofile(long count)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)count + 10, want = (rlim_t)count + 100;
    int hard_err = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(stderr, PROG ": getrlimit(RLIMIT_NOFILE): %s\n", strerror(errno));
        return -1;
    }
    if (rl.rlim_max < want) {
        /* Only with CAP_SYS_RESOURCE; without it the hard limit stands. */
        struct rlimit more = {want, want};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0)
            rl = more;
        else
            hard_err = errno;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(stderr, PROG ": setrlimit(RLIMIT_NOFILE, %llu): %s\n",
                (unsigned long long)rl.rlim_cur, strerror(errno));
        return -1;
    }
    if (rl.rlim_cur < need) {
        fprintf(stderr, PROG ": %ld connections need %llu descriptors; the hard limit is %llu"
                        " and raising it failed: %s\n",
                count, (unsigned long long)need, (unsigned long long)rl.rlim_cur,
                strerror(hard_err));
        return -1;
    }
    return 0;
}

static int resolve(struct run *r)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    char port[8];
    snprintf(port, sizeof port, "%ld", r->o.port);
    int rc = getaddrinfo(r->o.host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, PROG ": %s: %s\n", r->o.host, gai_strerror(rc));
        return -1;
    }
    memcpy(&r->addr, res->ai_addr, res->ai_addrlen);
    r->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* The same request for every connection: built once (host and path are bounded by
 * parse_args, so it always fits). An IPv6 literal goes in brackets. */
static int build_request(struct run *r)
{
    int len;
    if (strchr(r->o.host, ':') != NULL)
        len = snprintf(r->req, sizeof r->req, "GET %s HTTP/1.1\r\nHost: [%s]:%ld\r\n\r\n",
                       r->o.path, r->o.host, r->o.port);
    else
        len = snprintf(r->req, sizeof r->req, "GET %s HTTP/1.1\r\nHost: %s:%ld\r\n\r\n",
                       r->o.path, r->o.host, r->o.port);
    if (len < 0 || (size_t)len >= sizeof r->req) {
        fprintf(stderr, PROG ": request too long\n");
        return -1;
    }
    r->req_len = (size_t)len;
    return 0;
}

/* SIGINT/SIGTERM arrive as a readable descriptor in the same epoll as the sockets. */
static int setup_events(struct run *r)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
        (r->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
        (r->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        fprintf(stderr, PROG ": signalfd/epoll: %s\n", strerror(errno));
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = KEY_SIGNAL};
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, r->sfd, &ev) != 0) {
        fprintf(stderr, PROG ": epoll_ctl: %s\n", strerror(errno));
        return -1;
    }
    /* A reader of stdout that goes away must not kill us before we report on stderr. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &ign, NULL);
    return 0;
}

/* ---- answer parser: fed the bytes as they arrive ---- */

static bool parse_status(const struct conn *c)
{
    const char *l = c->line;
    return c->line_len >= 12 && strncmp(l, "HTTP/1.", 7) == 0 && l[8] == ' ' &&
           strncmp(l + 9, "200", 3) == 0 && (l[12] == ' ' || l[12] == '\0');
}

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Digits only, then optional whitespace; a second Content-Length must agree. */
static bool parse_length(struct conn *c, const char *v)
{
    char *end;
    v = skip_ows(v);
    if (*v < '0' || *v > '9')
        return false;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || *skip_ows(end) != '\0')
        return false;
    if ((c->flags & F_LENGTH) && c->left != n)
        return false;
    c->flags |= F_LENGTH;
    c->left = n;
    return true;
}

/* The blank line ends the head: chunked wins over a length (RFC 9112 6.3). */
static int end_of_head(struct conn *c)
{
    if (c->flags & F_CHUNKED) {
        c->state = ST_CHUNK_SIZE;
    } else if (c->flags & F_LENGTH) {
        c->state = c->left == 0 ? ST_DONE : ST_BODY;
    } else {
        return -1; /* a body up to close: not something one can keep alive */
    }
    return 0;
}

/* Enough for the token lists of these headers: "gzip, chunked", "keep-alive, close". */
static bool contains_ci(const char *s, const char *word)
{
    size_t n = strlen(word);
    for (; *s != '\0'; s++)
        if (strncasecmp(s, word, n) == 0)
            return true;
    return false;
}

static int header_line(struct conn *c)
{
    if (c->line_len == 0 && !(c->flags & F_TRUNC))
        return end_of_head(c);
    bool is_len = strncasecmp(c->line, "content-length:", 15) == 0;
    bool is_te = strncasecmp(c->line, "transfer-encoding:", 18) == 0;
    if ((is_len || is_te) && (c->flags & F_TRUNC))
        return -1; /* a value we could not keep whole */
    if (is_len)
        return parse_length(c, c->line + 15) ? 0 : -1;
    if (is_te && contains_ci(c->line + 18, "chunked"))
        c->flags |= F_CHUNKED;
    if (strncasecmp(c->line, "connection:", 11) == 0 && contains_ci(c->line + 11, "close"))
        c->flags |= F_CLOSE;
    return 0;
}

static int chunk_size_line(struct conn *c)
{
    char *end;
    const char *s = c->line;
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
        return -1;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 16);
    const char *rest = skip_ows(end);
    if (errno != 0 || (*rest != '\0' && *rest != ';'))
        return -1;
    c->left = n;
    c->state = n == 0 ? ST_TRAILER : ST_CHUNK_DATA;
    return 0;
}

static int handle_line(struct conn *c)
{
    bool empty = c->line_len == 0 && !(c->flags & F_TRUNC);
    switch (c->state) {
    case ST_STATUS:
        if (!parse_status(c))
            return -1;
        c->state = ST_HEADERS;
        return 0;
    case ST_HEADERS: return header_line(c);
    case ST_CHUNK_SIZE: return chunk_size_line(c);
    case ST_CHUNK_END:
        c->state = ST_CHUNK_SIZE;
        return empty ? 0 : -1;
    case ST_TRAILER:
        if (empty)
            c->state = ST_DONE;
        return 0;
    default: return -1;
    }
}

/* One byte of a line: kept while it fits, the rest only counted. */
static int line_byte(struct conn *c, char ch)
{
    if (++c->n > HEAD_MAX)
        return -1;
    if (ch != '\n') {
        if (c->line_len < LINE_MAX_KEPT - 1)
            c->line[c->line_len++] = ch;
        else
            c->flags |= F_TRUNC;
        return 0;
    }
    if (c->line_len > 0 && c->line[c->line_len - 1] == '\r')
        c->line_len--;
    c->line[c->line_len] = '\0';
    int rc = handle_line(c);
    c->line_len = 0;
    c->flags &= (uint8_t)~F_TRUNC;
    return rc;
}

/* Returns 1 when the answer is complete, 0 for more, -1 for a bad answer. Bytes past
 * the end of the answer are bad too: nothing else was asked for. */
static int feed(struct conn *c, const char *p, size_t len)
{
    while (len > 0) {
        if (c->state == ST_DONE)
            return -1;
        if (c->state == ST_BODY || c->state == ST_CHUNK_DATA) {
            size_t k = c->left < len ? (size_t)c->left : len;
            p += k;
            len -= k;
            c->left -= k;
            if (c->left == 0)
                c->state = c->state == ST_BODY ? ST_DONE : ST_CHUNK_END;
            continue;
        }
        if (line_byte(c, *p) != 0)
            return -1;
        p++;
        len--;
    }
    return c->state == ST_DONE ? 1 : 0;
}

/* ---- connections ---- */

static void close_conn(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = ST_GONE;
}

/* Counts a connection that is through with opening: held, or failed and closed. */
static void settle(struct run *r, uint32_t i, enum outcome out)
{
    struct conn *c = &r->c[i];
    r->inflight--;
    r->resolved++;
    switch (out) {
    case OUT_HELD: r->held++; c->state = ST_HELD; return;
    case OUT_CONNECT: r->n_connect++; break;
    case OUT_CLOSED: r->n_closed++; break;
    case OUT_BAD: r->n_bad++; break;
    case OUT_UNFINISHED: r->n_unfinished++; break;
    }
    close_conn(c);
}

static void note_connect_error(struct run *r, int err)
{
    if (r->first_connect_errno == 0)
        r->first_connect_errno = err;
}

static int watch(struct run *r, uint32_t i, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u64 = i};
    if (epoll_ctl(r->ep, op, r->c[i].fd, &ev) != 0) {
        fprintf(stderr, PROG ": epoll_ctl: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/* Starts one connect; the answer to it comes as EPOLLOUT (or an error) on the socket.
 * Returns -1 only for a failure of our own. */
static int open_one(struct run *r, uint32_t i)
{
    struct conn *c = &r->c[i];
    r->inflight++;
    c->fd = socket(r->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        note_connect_error(r, errno);
        settle(r, i, OUT_CONNECT);
        return 0;
    }
    /* Loopback may answer at once: 0, or a refusal; EADDRNOTAVAIL or EAGAIN here mean no
     * local port was left. All of them are counted, not retried. */
    if (connect(c->fd, (struct sockaddr *)&r->addr, r->addr_len) != 0 && errno != EINPROGRESS) {
        note_connect_error(r, errno);
        settle(r, i, OUT_CONNECT);
        return 0;
    }
    c->state = ST_CONNECTING;
    return watch(r, i, EPOLL_CTL_ADD, EPOLLOUT);
}

/* Keeps batch connections in progress while there are more to open. */
static int top_up(struct run *r)
{
    while (!r->stop && r->inflight < (uint32_t)r->o.batch && r->next < (uint32_t)r->o.count) {
        if (open_one(r, r->next++) != 0)
            return -1;
    }
    return 0;
}

static int send_request(struct run *r, uint32_t i)
{
    struct conn *c = &r->c[i];
    ssize_t n = send(c->fd, r->req + c->n, r->req_len - c->n, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0; /* EPOLLOUT again when there is room */
        settle(r, i, OUT_CLOSED);
        return 0;
    }
    c->n += (uint32_t)n;
    if (c->n < r->req_len)
        return 0;
    c->n = 0;
    c->state = ST_STATUS;
    return watch(r, i, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP);
}

static int on_connecting(struct run *r, uint32_t i)
{
    struct conn *c = &r->c[i];
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        note_connect_error(r, err); /* ECONNREFUSED, ETIMEDOUT, ...: counted, not retried */
        settle(r, i, OUT_CONNECT);
        return 0;
    }
    c->state = ST_SENDING;
    c->n = 0;
    return send_request(r, i);
}

/* One recv per event: level-triggered epoll reports what is left. */
static void on_answer(struct run *r, uint32_t i)
{
    struct conn *c = &r->c[i];
    ssize_t n = recv(c->fd, r->buf, sizeof r->buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        settle(r, i, OUT_CLOSED);
        return;
    }
    int rc = feed(c, r->buf, (size_t)n);
    if (rc < 0)
        settle(r, i, OUT_BAD);
    else if (rc > 0) /* an answer with Connection: close is as good as closed */
        settle(r, i, (c->flags & F_CLOSE) ? OUT_CLOSED : OUT_HELD);
}

/* A held connection is idle: anything on it is the server's doing. Returns true when
 * the server has closed it (it is then closed here too). */
static bool held_event(struct run *r, uint32_t i)
{
    ssize_t n = recv(r->c[i].fd, r->buf, sizeof r->buf, 0);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
        return false; /* e.g. a 408 before a close: the close comes as its own event */
    close_conn(&r->c[i]);
    return true;
}

static int on_conn_event(struct run *r, uint32_t i)
{
    switch (r->c[i].state) {
    case ST_CONNECTING: return on_connecting(r, i);
    case ST_SENDING: return send_request(r, i);
    case ST_HELD:
        if (held_event(r, i)) {
            r->held--; /* lost before the count was printed: it was not held after all */
            r->n_closed++;
        }
        return 0;
    case ST_GONE: return 0;
    default: on_answer(r, i); return 0;
    }
}

/* ---- phases ---- */

static void on_signal(struct run *r)
{
    struct signalfd_siginfo si;
    if (read(r->sfd, &si, sizeof si) == (ssize_t)sizeof si)
        r->stop = true;
}

static long ms_until(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : ms;
}

static int epoll_wait_retry(struct run *r, struct epoll_event *ev, int max, long ms)
{
    int n;
    while ((n = epoll_wait(r->ep, ev, max, (int)ms)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        fprintf(stderr, PROG ": epoll_wait: %s\n", strerror(errno));
    return n;
}

/* What the deadline (or a signal) leaves unanswered is closed and counted. */
static void close_unfinished(struct run *r)
{
    for (uint32_t i = 0; i < (uint32_t)r->o.count; i++) {
        enum state s = r->c[i].state;
        if (s == ST_IDLE) {
            r->n_unfinished++;
            r->c[i].state = ST_GONE;
        } else if (s != ST_HELD && s != ST_GONE) {
            settle(r, i, OUT_UNFINISHED);
        }
    }
}

static int open_phase(struct run *r)
{
    struct timespec deadline;
    struct epoll_event ev[512];
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += r->o.timeout;
    if (top_up(r) != 0)
        return -1;
    while (!r->stop && r->resolved < (uint32_t)r->o.count) {
        long ms = ms_until(&deadline);
        if (ms == 0)
            break;
        int n = epoll_wait_retry(r, ev, 512, ms);
        if (n < 0)
            return -1;
        for (int k = 0; k < n; k++) {
            if (ev[k].data.u64 == KEY_SIGNAL)
                on_signal(r);
            else if (on_conn_event(r, (uint32_t)ev[k].data.u64) != 0)
                return -1;
        }
        if (top_up(r) != 0)
            return -1;
    }
    close_unfinished(r);
    return 0;
}

/* Returns true at EOF (or when stdin cannot be read at all: nothing will come). */
static bool stdin_ended(struct run *r)
{
    ssize_t n = read(STDIN_FILENO, r->buf, sizeof r->buf);
    return !(n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN)));
}

/* stdin in the epoll; a file or /dev/null cannot be (EPERM) and is read to its end.
 * Returns 1 when stdin has ended already. */
static int watch_stdin(struct run *r)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = KEY_STDIN};
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev) == 0)
        return 0;
    if (errno != EPERM) {
        fprintf(stderr, PROG ": epoll_ctl(stdin): %s\n", strerror(errno));
        return -1;
    }
    while (!stdin_ended(r))
        ;
    return 1;
}

static int hold_phase(struct run *r, uint32_t *still)
{
    struct epoll_event ev[512];
    *still = r->held;
    int rc = r->stop ? 1 : watch_stdin(r);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    while (!r->stop) {
        int n = epoll_wait_retry(r, ev, 512, -1);
        if (n < 0)
            return -1;
        for (int k = 0; k < n; k++) {
            uint64_t key = ev[k].data.u64;
            if (key == KEY_SIGNAL)
                on_signal(r);
            else if (key == KEY_STDIN)
                r->stop = stdin_ended(r) || r->stop;
            else if (held_event(r, (uint32_t)key))
                (*still)--;
        }
    }
    return 0;
}

/* ---- output and main ---- */

static int print_held(const struct run *r)
{
    uint32_t failed = r->n_connect + r->n_closed + r->n_bad + r->n_unfinished;
    if (r->n_connect > 0 && r->first_connect_errno != 0)
        fprintf(stderr, PROG ": first connect error: %s\n", strerror(r->first_connect_errno));
    fprintf(stderr,
            PROG ": held %u of %ld (failed %u: connect %u, closed %u, bad answer %u, "
                 "unfinished %u)\n",
            r->held, r->o.count, failed, r->n_connect, r->n_closed, r->n_bad, r->n_unfinished);
    printf("held %u\n", r->held);
    if (fflush(stdout) != 0) {
        fprintf(stderr, PROG ": stdout: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int print_still(uint32_t still)
{
    fprintf(stderr, PROG ": still held %u\n", still);
    printf("still %u\n", still);
    if (fflush(stdout) != 0) {
        fprintf(stderr, PROG ": stdout: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static void cleanup(struct run *r)
{
    if (r->c != NULL) {
        for (long i = 0; i < r->o.count; i++)
            if (r->c[i].fd >= 0)
                close(r->c[i].fd);
    }
    free(r->c);
    if (r->ep >= 0)
        close(r->ep);
    if (r->sfd >= 0)
        close(r->sfd);
    free(r);
}

static int setup(struct run *r)
{
    if (raise_nofile(r->o.count) != 0 || resolve(r) != 0 || build_request(r) != 0 ||
        setup_events(r) != 0)
        return -1;
    r->c = calloc((size_t)r->o.count, sizeof *r->c);
    if (r->c == NULL) {
        fprintf(stderr, PROG ": out of memory for %ld connections\n", r->o.count);
        return -1;
    }
    for (long i = 0; i < r->o.count; i++)
        r->c[i].fd = -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (reserve_stdio() != 0)
        return 2;
    struct opts o;
    parse_args(argc, argv, &o);
    /* On the heap: the shared receive buffer is no business of the stack. */
    struct run *r = calloc(1, sizeof *r);
    if (r == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        return 2;
    }
    r->o = o;
    r->ep = r->sfd = -1;

    uint32_t still = 0;
    int rc = 2;
    if (setup(r) == 0 && open_phase(r) == 0 && print_held(r) == 0 &&
        hold_phase(r, &still) == 0 && print_still(still) == 0)
        rc = r->held == (uint32_t)r->o.count ? 0 : 1;
    cleanup(r);
    return rc;
}
