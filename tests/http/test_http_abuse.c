/* The server under clients that abuse their connections: many held idle,
 * large answers read slowly, requests written faster than their answers are
 * read, a head sent a byte at a time. Through each, another client's pings keep
 * being answered (a thread pings all along), and the abuser's connection is
 * closed at the documented limit: idle_timeout_ns, write_timeout_ns (the whole
 * answer must be written within it) and header_timeout_ns, here 1 s, 300 ms
 * and 300 ms on the real clock, as the server's own timers run. The tests
 * assert outcomes (closed, answered, cut short), never how long things took.
 *
 * The idle test holds BK_ABUSE_IDLE connections (default 2000; both ends are in
 * this process, so 10,000 needs 20,000 descriptors: the open-file limit is
 * raised to its hard limit, and the count lowered to fit).
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
#include <unistd.h>

#include <check.h>

#include <backend/http.h>

#include "check_main.h"
#include "http/client.h"

#define BIG_BYTES (8u << 20) /* an answer far larger than the socket buffers */

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

static void setup(void)
{
    big = malloc(BIG_BYTES + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', BIG_BYTES);
    big[BIG_BYTES] = '\0';
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.port = 0;
    o.threads = 1;
    o.handle_signals = false;
    o.header_timeout_ns = 300 * BK_NSEC_PER_MSEC;
    o.write_timeout_ns = 300 * BK_NSEC_PER_MSEC;
    o.idle_timeout_ns = BK_NSEC_PER_SEC;
    o.max_connections = 20000;
    ck_assert_int_eq(bk_http_server_new(&o, &srv, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/ping", h_ping, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_route(srv, "GET", "/big", h_big, NULL, NULL), BK_OK);
    ck_assert_int_eq(bk_http_server_start(srv, NULL), BK_OK);
    port = bk_http_server_port(srv);
}

static void teardown(void)
{
    bk_http_server_stop(srv);
    bk_http_server_wait(srv);
    bk_http_server_free(srv);
    srv = NULL;
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

START_TEST(idle_connections_do_not_starve_others_and_time_out)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    const char *v = getenv("BK_ABUSE_IDLE");
    long n = v && *v ? atol(v) : 2000;
    long fit = ((long)rl.rlim_cur - 200) / 2; /* both ends here, and room for the rest */
    if (n > fit)
        n = fit;
    ck_assert_int_ge(n, 100);
    int *fds = malloc((size_t)n * sizeof *fds);
    ck_assert_ptr_nonnull(fds);
    static const char req[] = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";
    for (long i = 0; i < n; i++) {
        fds[i] = bkt_connect(port);
        ck_assert_msg(fds[i] >= 0, "connection %ld of %ld: %s", i, n, strerror(errno));
        struct bkt_response r;
        ck_assert_int_eq(bkt_send_all(fds[i], req, sizeof req - 1), 0);
        ck_assert_int_eq(bkt_read_response(fds[i], &r, false), 0); /* each answers once, then idles */
        ck_assert_int_eq(r.status, 200);
        bkt_response_free(&r);
    }
    struct pinger p;
    pinger_start(&p);
    pinger_stop(&p, "the idle connections");
    /* idle_timeout_ns closes every one of them. */
    long open = 0;
    for (long i = 0; i < n; i++) {
        if (!bkt_wait_closed(fds[i]))
            open++;
        close(fds[i]);
    }
    free(fds);
    printf("idle: %ld connections held, each answered once; pings answered meanwhile: %ld\n", n, atomic_load(&p.ok));
    ck_assert_msg(open == 0, "%ld of %ld idle connections still open past idle_timeout_ns", open, n);
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
    /* One byte every 50 ms: the head would take 7 s; header_timeout_ns is 300 ms. */
    size_t sent = 0;
    bool cut = false;
    for (; sent < sizeof head - 1 && !cut; sent++) {
        if (send(fd, head + sent, 1, MSG_NOSIGNAL) != 1) {
            cut = true;
            break;
        }
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 50) > 0) { /* the server answered (408) or closed */
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
    TCase *tc = tcase_create("abuse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, idle_connections_do_not_starve_others_and_time_out);
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
