/* http_body_rss: the resident memory of an HTTP server while many clients hold
 * large request bodies half sent, and after they close.
 *
 *   http_body_rss [CONNS [BODY_KIB]]      (defaults 300 and 1024)
 *
 * CONNS clients each send the head of a POST with a Content-Length of BODY_KIB
 * KiB and all of its body but the last byte, then wait; later they all close. The
 * server runs in a process of its own, measured from /proc/PID/statm: before the
 * load, under it (once the server has read what it will read), and one second
 * after the clients have closed. It runs twice in the same run: with the default
 * body budget (max_buffered_body_bytes, 64 MiB) and, as the baseline, with no
 * budget to speak of (every body is held). Ends with:
 *   BENCH http_body_rss_load ours=<MB over idle> base=<MB over idle> unit=MB ratio=...
 *   BENCH http_body_rss_after ours=<MB over idle> base=<MB over idle> unit=MB ratio=...
 * Figures from a plain build only: the sanitizers' quarantine holds freed memory.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <backend/backend.h>

static void h_sink(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{}"));
}

static double rss_mb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    long pages = 0, resident = 0;
    if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    if (f)
        fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1e6;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* The clients: each connection sends its head and body less one byte (errors
 * are refusals, ignored), then a byte on done, a wait for go, close. */
static void clients(uint16_t port, int conns, size_t body, int done, int go)
{
    int *fds = calloc((size_t)conns, sizeof *fds);
    char *buf = malloc(body);
    if (fds == NULL || buf == NULL)
        _exit(1);
    memset(buf, 'x', body);
    char head[160];
    int hl = snprintf(head, sizeof head, "POST /sink HTTP/1.1\r\nHost: b\r\nContent-Length: %zu\r\n\r\n",
                      body);
    for (int i = 0; i < conns; i++) {
        fds[i] = connect_to(port);
        if (fds[i] < 0)
            continue;
        if (send(fds[i], head, (size_t)hl, MSG_NOSIGNAL) != hl)
            continue;
        for (size_t off = 0; off < body - 1;) {
            ssize_t n = send(fds[i], buf + off, body - 1 - off, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
    }
    char c = 1;
    if (write(done, &c, 1) != 1 || read(go, &c, 1) != 1)
        _exit(1);
    for (int i = 0; i < conns; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    free(buf);
    _exit(0);
}

/* The server process: prints "idle load after" figures (MB) on out. */
static void server(size_t budget, int conns, size_t body, int out)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.port = 0;
    o.threads = 2;
    o.handle_signals = false;
    o.max_body_bytes = body;
    o.max_connections = (unsigned)conns + 16;
    o.max_buffered_body_bytes = budget;
    bk_http_server_t *srv;
    if (bk_http_server_new(&o, &srv, NULL) != BK_OK ||
        bk_http_route(srv, "POST", "/sink", h_sink, NULL, NULL) != BK_OK ||
        bk_http_server_start(srv, NULL) != BK_OK)
        _exit(1);
    uint16_t port = bk_http_server_port(srv);
    sleep_ms(200);
    double idle = rss_mb(getpid());
    int done[2], go[2];
    if (pipe(done) != 0 || pipe(go) != 0)
        _exit(1);
    pid_t pid = fork();
    if (pid == 0)
        clients(port, conns, body, done[1], go[0]);
    char c;
    if (read(done[0], &c, 1) != 1)
        _exit(1);
    /* Under load: the peak once reading has settled. */
    double load = 0;
    for (int i = 0; i < 20; i++) {
        double r = rss_mb(getpid());
        if (r > load)
            load = r;
        sleep_ms(50);
    }
    if (write(go[1], &c, 1) != 1)
        _exit(1);
    waitpid(pid, NULL, 0);
    sleep_ms(1000);
    double after = rss_mb(getpid());
    dprintf(out, "%.1f %.1f %.1f\n", idle, load, after);
    bk_http_server_free(srv);
    _exit(0);
}

static int measure(size_t budget, int conns, size_t body, double fig[3])
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        server(budget, conns, body, p[1]);
    }
    close(p[1]);
    char line[128] = "";
    ssize_t n = read(p[0], line, sizeof line - 1);
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    if (n <= 0 || sscanf(line, "%lf %lf %lf", &fig[0], &fig[1], &fig[2]) != 3)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    int conns = argc > 1 ? atoi(argv[1]) : 300;
    size_t body = (argc > 2 ? (size_t)atoi(argv[2]) : 1024) * 1024;
    double ours[3], base[3];
    if (conns <= 0 || body < 2 || measure(0, conns, body, ours) != 0 ||
        measure((size_t)conns * body * 2, conns, body, base) != 0) {
        fprintf(stderr, "http_body_rss: a run failed\n");
        return 1;
    }
    printf("%d connections, %zu KiB bodies less a byte; RSS in MB: idle, under load, 1 s after close\n",
           conns, body / 1024);
    printf("  budget 64 MiB (default): %.1f %.1f %.1f\n", ours[0], ours[1], ours[2]);
    printf("  no budget (baseline):    %.1f %.1f %.1f\n", base[0], base[1], base[2]);
    double ol = ours[1] - ours[0], bl = base[1] - base[0];
    double oa = ours[2] - ours[0], ba = base[2] - base[0];
    printf("BENCH http_body_rss_load ours=%.1f base=%.1f unit=MB ratio=%.3f\n", ol, bl, bl > 0 ? ol / bl : 0);
    printf("BENCH http_body_rss_after ours=%.1f base=%.1f unit=MB ratio=%.3f\n", oa, ba,
           ba > 0 ? oa / ba : 0);
    return 0;
}
