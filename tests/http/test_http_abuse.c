/* The server under clients that abuse their connections: many held idle,
 * large answers read slowly, requests written faster than their answers are
 * read, a head sent one byte a second (slowloris). Through each, another
 * client's pings keep being answered (a thread pings all along), and the
 * abuser's connection is closed at the documented limit: idle_timeout_ns,
 * write_timeout_ns (the whole answer must be written within it) and
 * header_timeout_ns, here 6 s, 300 ms and 2.5 s on the real clock, as the
 * server's own timers run. The tests assert outcomes (held at once, closed,
 * answered, cut short), never how long things took.
 *
 * The idle test holds BK_ABUSE_IDLE connections (default 2000; 10,000 in
 * make soak) at once: their client ends are in a child process, so each
 * process needs one descriptor per connection; the open-file limit is raised
 * to its hard limit, and the count lowered to fit.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include <backend/http.h>

#include "check_main.h"
#include "http/client.h"

#define BIG_BYTES (8u << 20) /* an answer far larger than the socket buffers */
/* Longer than opening the idle connections takes (1.4 s for 2,000 under
 * valgrind, 1.2 s for 10,000 on the plain build), so all are held at once. */
#define IDLE_TIMEOUT_S 6

static bk_http_server_t *srv;
static uint16_t port;
static char *big;

static void h_ping(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static void h_big(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{s:s}", "big", big));
}

/* One server for every test, with the limits the header names. */
static void server_start(void)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    o.header_timeout_ns = 2500 * BK_NSEC_PER_MSEC;
    o.write_timeout_ns = 300 * BK_NSEC_PER_MSEC;
    o.idle_timeout_ns = IDLE_TIMEOUT_S * BK_NSEC_PER_SEC;
    o.max_connections = 20000;
    ck_assert_int_eq(bk_http_server_new(&o, &srv, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/ping", h_ping, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/big", h_big, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(srv, NULL), BK_OK);
    port = bk_http_server_port(srv);
}

static void server_stop(void)
{
    bk_http_server_stop(srv);
    bk_http_server_wait(srv);
    bk_http_server_free(srv);
    srv = NULL;
}

static void setup(void)
{
    big = malloc(BIG_BYTES + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', BIG_BYTES);
    big[BIG_BYTES] = '\0';
    server_start();
}

static void teardown(void)
{
    server_stop();
    free(big);
    big = NULL;
}

/* ------------------------------------------------------------------ the other client */

struct pinger {
    pthread_t th;
    atomic_bool stop;
    atomic_long ok, failed;
};

static void *ping_main(void *arg)
{
    struct pinger *p = arg;
    static const char req[] = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";
    while (!atomic_load(&p->stop)) {
        struct bkt_response r;
        if (bkt_request(port, req, sizeof req - 1, &r) == 0 && r.status == 200)
            atomic_fetch_add(&p->ok, 1);
        else
            atomic_fetch_add(&p->failed, 1);
        bkt_response_free(&r);
        usleep(5000);
    }
    return NULL;
}

static void pinger_start(struct pinger *p)
{
    atomic_init(&p->stop, false);
    atomic_init(&p->ok, 0);
    atomic_init(&p->failed, 0);
    ck_assert_int_eq(pthread_create(&p->th, NULL, ping_main, p), 0);
}

/* Stops the pinger once it has been answered at least once more; every ping
 * must have been answered. */
static void pinger_stop(struct pinger *p, const char *during)
{
    long before = atomic_load(&p->ok);
    for (int i = 0; i < 1000 && atomic_load(&p->ok) == before && atomic_load(&p->failed) == 0; i++)
        usleep(5000);
    atomic_store(&p->stop, true);
    pthread_join(p->th, NULL);
    long ok = atomic_load(&p->ok), failed = atomic_load(&p->failed);
    ck_assert_msg(failed == 0 && ok > before, "during %s: %ld pings answered, %ld not", during, ok, failed);
}

/* ------------------------------------------------------------------ cases */

/* The idle connections' client ends live in a child process, forked before the
 * server starts (while this process has one thread), so that each process
 * holds one end of each: 10,000 of them fit in the open-file limit. The child
 * opens them, each answered once, reports how many it opened and how many of
 * them the server had already closed (none may be: idle_timeout_ns is longer
 * than the opening takes, so they are all held at once), then waits for each to
 * be closed and reports how many were not. */
struct idle_report {
    long opened, closed_early, still_open;
    int failed_errno; /* why opening stopped short, or 0 */
};

/* Whether the server closes fd within ms (0: has closed; nothing more is sent on it). */
static bool closed_within(int fd, int ms)
{
    struct pollfd pf = {fd, POLLIN, 0};
    char b;
    return poll(&pf, 1, ms) > 0 && recv(fd, &b, 1, 0) <= 0;
}

static bool write_report(int fd, const struct idle_report *r)
{
    return write(fd, r, sizeof *r) == (ssize_t)sizeof *r;
}

static bool read_report(int fd, struct idle_report *r)
{
    return read(fd, r, sizeof *r) == (ssize_t)sizeof *r;
}

static void idle_child(int port_in, int report_out, long n)
{
    struct idle_report r = {0};
    int *fds = malloc((size_t)n * sizeof *fds);
    uint16_t p;
    if (fds == NULL || read(port_in, &p, sizeof p) != (ssize_t)sizeof p)
        _exit(2);
    static const char req[] = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";
    for (; r.opened < n; r.opened++) {
        int fd = bkt_connect(p);
        struct bkt_response res;
        bool ok = fd >= 0 && bkt_send_all(fd, req, sizeof req - 1) == 0 &&
                  bkt_read_response(fd, &res, false) == 0 && res.status == 200;
        if (fd >= 0 && ok)
            bkt_response_free(&res); /* each answers once, then idles */
        if (!ok) {
            r.failed_errno = errno ? errno : EPROTO;
            if (fd >= 0)
                close(fd);
            break;
        }
        fds[r.opened] = fd;
    }
    for (long i = 0; i < r.opened; i++)
        r.closed_early += closed_within(fds[i], 0);
    if (!write_report(report_out, &r))
        _exit(2);
    /* idle_timeout_ns closes every one of them. */
    for (long i = 0; i < r.opened; i++) {
        r.still_open += !closed_within(fds[i], 2 * IDLE_TIMEOUT_S * 1000);
        close(fds[i]);
    }
    free(fds);
    _exit(write_report(report_out, &r) ? 0 : 2);
}

START_TEST(idle_connections_do_not_starve_others_and_time_out)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    const char *v = getenv("BK_ABUSE_IDLE");
    long n = v && *v ? atol(v) : 2000;
    long fit = (long)rl.rlim_cur - 200; /* room for the rest of each process */
    if (n > fit)
        n = fit;
    ck_assert_int_ge(n, 100);
    int port_pipe[2], report_pipe[2];
    ck_assert_int_eq(pipe(port_pipe), 0);
    ck_assert_int_eq(pipe(report_pipe), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(port_pipe[1]);
        close(report_pipe[0]);
        idle_child(port_pipe[0], report_pipe[1], n);
    }
    close(port_pipe[0]);
    close(report_pipe[1]);

    server_start();
    struct pinger p;
    pinger_start(&p);
    ck_assert_int_eq(write(port_pipe[1], &port, sizeof port), (ssize_t)sizeof port);
    close(port_pipe[1]);

    struct idle_report held, end;
    bool got_held = read_report(report_pipe[0], &held);
    pinger_stop(&p, "the idle connections"); /* answered with all of them held */
    bool got_end = got_held && read_report(report_pipe[0], &end);
    close(report_pipe[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    server_stop();

    ck_assert_msg(got_held && got_end && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the idle connections' process failed (status %d)", status);
    printf("idle: %ld connections held at once, each answered once; pings answered meanwhile: %ld\n", held.opened,
           atomic_load(&p.ok));
    ck_assert_msg(held.opened == n, "opened %ld of %ld idle connections: %s", held.opened, n,
                  strerror(held.failed_errno));
    ck_assert_msg(held.closed_early == 0, "%ld of %ld idle connections closed before the last one opened",
                  held.closed_early, n);
    ck_assert_msg(end.still_open == 0, "%ld of %ld idle connections still open past idle_timeout_ns",
                  end.still_open, n);
}
END_TEST

START_TEST(a_slow_reader_of_a_large_answer_is_cut_off)
{
    struct pinger p;
    pinger_start(&p);
    int fd = bkt_connect(port);
    ck_assert_int_ge(fd, 0);
    static const char req[] = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(bkt_send_all(fd, req, sizeof req - 1), 0);
    /* 64 KiB every 20 ms: 8 MiB would take 2.6 s; write_timeout_ns is 300 ms. */
    size_t got = 0;
    bool eof = false;
    for (int i = 0; i < 5000 && !eof; i++) {
        static char buf[64 * 1024];
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r > 0)
            got += (size_t)r;
        else
            eof = r == 0 || errno == ECONNRESET;
        usleep(20000);
    }
    close(fd);
    pinger_stop(&p, "the slow reader");
    printf("slow reader: cut off after %zu of %u bytes; pings answered meanwhile: %ld\n", got, BIG_BYTES,
           atomic_load(&p.ok));
    ck_assert_msg(eof, "the slow reader's connection was not closed");
    ck_assert_msg(got < BIG_BYTES, "the slow reader got the whole answer (%zu bytes)", got);
}
END_TEST

START_TEST(a_client_that_writes_and_never_reads_is_closed)
{
    struct pinger p;
    pinger_start(&p);
    int fd = bkt_connect(port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    static const char req[] = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
    /* Requests as fast as the socket takes them, answers never read: the first
     * answer is never written whole, and write_timeout_ns closes the
     * connection; until then the server stops reading (its input is not
     * buffered without bound) and our sends stall. */
    bool gone = false;
    size_t sent = 0;
    for (int64_t until = bkt__now_ms() + 10 * BKT_TIMEOUT_MS; !gone && bkt__now_ms() < until;) {
        ssize_t n = send(fd, req, sizeof req - 1, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            gone = true; /* EPIPE or ECONNRESET: closed */
            break;
        }
        struct pollfd pf = {fd, POLLOUT, 0};
        poll(&pf, 1, 10);
        if (pf.revents & (POLLERR | POLLHUP))
            gone = true;
    }
    close(fd);
    pinger_stop(&p, "the client that never reads");
    printf("never reads: closed after %zu bytes of requests; pings answered meanwhile: %ld\n", sent,
           atomic_load(&p.ok));
    ck_assert_msg(gone, "a client that never read its answers (%zu bytes of requests sent) was not closed", sent);
}
END_TEST

START_TEST(a_head_a_byte_at_a_time_is_cut_off)
{
    struct pinger p;
    pinger_start(&p);
    int fd = bkt_connect(port);
    ck_assert_int_ge(fd, 0);
    static const char head[] = "GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    /* One byte a second: the head would take minutes; header_timeout_ns is 2.5 s. */
    size_t sent = 0;
    bool cut = false;
    for (; sent < sizeof head - 1 && !cut; sent++) {
        if (send(fd, head + sent, 1, MSG_NOSIGNAL) != 1) {
            cut = true;
            break;
        }
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 1000) > 0) { /* the server answered (408) or closed */
            sent++;
            cut = bkt_wait_closed(fd);
            break;
        }
    }
    close(fd);
    pinger_stop(&p, "the byte-at-a-time head");
    printf("a byte at a time: cut off after %zu of %zu bytes\n", sent, sizeof head - 1);
    ck_assert_msg(cut, "a head sent a byte at a time was not cut off (%zu of %zu bytes sent)", sent,
                  sizeof head - 1);
    ck_assert_uint_lt(sent, sizeof head - 1);
}
END_TEST

static Suite *abuse_suite(void)
{
    Suite *s = suite_create("http_abuse");
    /* First, and without a fixture: it forks, which wants this process to
     * have no other thread yet (the valgrind pass runs every test in one). */
    TCase *idle = tcase_create("idle");
    tcase_set_timeout(idle, 120);
    tcase_add_test(idle, idle_connections_do_not_starve_others_and_time_out);
    suite_add_tcase(s, idle);
    TCase *tc = tcase_create("abuse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, a_slow_reader_of_a_large_answer_is_cut_off);
    tcase_add_test(tc, a_client_that_writes_and_never_reads_is_closed);
    tcase_add_test(tc, a_head_a_byte_at_a_time_is_cut_off);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(abuse_suite());
}
