/* The server: options, route registration, the loops and their threads, binding
 * with SO_REUSEPORT, start, graceful stop, wait and free.
 * SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/thread.h>

#include "core/abi_int.h"
#include "core/error_int.h"
#include "http/http_int.h"

BK__ASSERT_ABI_SIZE(bk_http_opts_t, 312); /* gzip_*, tls_* taken from the tail */
BK__ASSERT_ABI_SIZE(bk_http_route_opts_t, 160); /* doc taken from the tail */
BK__ASSERT_ABI_SIZE(bk_http_auth_t, 104);
BK__ASSERT_ABI_SIZE(bk_http_middleware_t, 96);

void bk_http_opts_init(bk_http_opts_t *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o); /* the reserved_ tail too */
    o->host = "127.0.0.1";
    o->port = 8080;
    o->backlog = 1024;
    o->max_header_bytes = 16 * 1024;
    o->max_body_bytes = 1024 * 1024;
    o->max_buffered_body_bytes = 64 * 1024 * 1024;
    o->max_connections = 10000;
    o->header_timeout_ns = 10 * BK_NSEC_PER_SEC;
    o->body_timeout_ns = 30 * BK_NSEC_PER_SEC;
    o->idle_timeout_ns = 60 * BK_NSEC_PER_SEC;
    o->write_timeout_ns = 30 * BK_NSEC_PER_SEC;
    o->request_timeout_ns = 30 * BK_NSEC_PER_SEC;
    o->shutdown_timeout_ns = 10 * BK_NSEC_PER_SEC;
    o->security_headers = true;
    o->cors_headers = "Content-Type, Authorization, X-Request-ID";
    o->cors_max_age_ns = 600 * BK_NSEC_PER_SEC;
    o->handle_signals = true;
    o->admin_max_connections = 16;
}

void bk_http_route_opts_init(bk_http_route_opts_t *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o); /* every default is zero: inline, no limit, no auth */
    o->flags = BK_HTTP_INLINE;
}

struct timeval bk__http_timeval(int64_t ns)
{
    if (ns <= 0)
        return (struct timeval){0, 0};
    /* Rounded up to the microsecond: a non-zero duration never becomes 0. */
    int64_t us = ns / BK_NSEC_PER_USEC + (ns % BK_NSEC_PER_USEC != 0);
    return (struct timeval){(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
}

static char *dup_opt(const char *s, bool *fail)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *fail = true;
    return d;
}

static int copy_origins(bk_http_server_t *srv, const char *const *origins, bk_error_t *err)
{
    size_t n = 0;
    while (origins[n] != NULL)
        n++;
    if (n == 0)
        return bk__error(err, BK_EINVAL, "cors_origins is empty");
    if ((srv->cors_origins = calloc(n + 1, sizeof(char *))) == NULL)
        return bk__error(err, BK_ENOMEM, NULL);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(origins[i], "*") == 0)
            srv->cors_any = true;
        for (const char *c = origins[i]; *c; c++)
            if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == ',') /* echoed in a header */
                return bk__error(err, BK_EINVAL,
                                 "cors_origins[%zu] has a space, a control character or a comma", i);
        if ((srv->cors_origins[i] = strdup(origins[i])) == NULL)
            return bk__error(err, BK_ENOMEM, NULL);
    }
    /* "*" with credentials is forbidden by the Fetch standard: browsers ignore it,
     * and echoing any origin with credentials would hand out the user's cookies. */
    if (srv->cors_any && srv->o.cors_credentials)
        return bk__error(err, BK_EINVAL, "cors_origins \"*\" with cors_credentials");
    return BK_OK;
}

/* The first option that is out of range, named; NULL when all are fine. */
static const char *bad_option(const bk_http_opts_t *o)
{
    const size_t sun_max = sizeof(((struct sockaddr_un *)0)->sun_path);
    if (o->unix_path == NULL && o->host == NULL)
        return "host and unix_path are both NULL";
    if (o->max_header_bytes < 256)
        return "max_header_bytes is under 256";
    if (o->max_connections == 0)
        return "max_connections is 0";
    if (o->header_timeout_ns <= 0)
        return "header_timeout_ns is not positive";
    if (o->body_timeout_ns <= 0)
        return "body_timeout_ns is not positive";
    if (o->idle_timeout_ns <= 0)
        return "idle_timeout_ns is not positive";
    if (o->write_timeout_ns <= 0)
        return "write_timeout_ns is not positive";
    if (o->request_timeout_ns <= 0)
        return "request_timeout_ns is not positive";
    if (o->shutdown_timeout_ns < 0)
        return "shutdown_timeout_ns is negative";
    if (o->shutdown_delay_ns < 0)
        return "shutdown_delay_ns is negative";
    if (o->hsts_max_age_ns < 0)
        return "hsts_max_age_ns is negative";
    if (o->cors_max_age_ns < 0)
        return "cors_max_age_ns is negative";
    if (o->unix_path != NULL && strlen(o->unix_path) >= sun_max)
        return "unix_path is too long for a unix socket";
    if (o->admin_unix_path != NULL && strlen(o->admin_unix_path) >= sun_max)
        return "admin_unix_path is too long for a unix socket";
    if (o->max_buffered_body_bytes != 0 && o->max_buffered_body_bytes < o->max_body_bytes)
        return "max_buffered_body_bytes is under max_body_bytes";
    if (o->cors_headers != NULL && strpbrk(o->cors_headers, "\r\n") != NULL)
        return "cors_headers has a CR or LF";
    return NULL;
}

int bk_http_server_new(const bk_http_opts_t *opts, bk_http_server_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (out == NULL)
        return bk__error(err, BK_EINVAL, "out is NULL");
    *out = NULL;
    bk_http_opts_t defaults;
    if (opts == NULL) {
        bk_http_opts_init(&defaults);
        opts = &defaults;
    }
    const bk_http_opts_t *o = opts;
    const char *bad = bad_option(o);
    if (bad != NULL)
        return bk__error(err, BK_EINVAL, "%s", bad);
    /* Loops are woken from other threads (stop, worker completions). */
    if (evthread_use_pthreads() != 0)
        return bk__error(err, BK_ESYS, "evthread_use_pthreads failed");

    bk_http_server_t *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return bk__error(err, BK_ENOMEM, NULL);
    srv->o = *o;
    srv->unix_fd = -1;
    srv->admin_unix_fd = -1;
    if (srv->o.max_buffered_body_bytes == 0) {
        size_t dflt = 64 * 1024 * 1024;
        srv->o.max_buffered_body_bytes = o->max_body_bytes > dflt ? o->max_body_bytes : dflt;
    }
    if (srv->o.admin_max_connections == 0)
        srv->o.admin_max_connections = 16;
    pthread_mutex_init(&srv->mu, NULL);
    bool fail = false;
    srv->host = dup_opt(o->host, &fail);
    srv->unix_path = dup_opt(o->unix_path, &fail);
    srv->cors_headers = dup_opt(o->cors_headers ? o->cors_headers : "", &fail);
    srv->admin_host = dup_opt(o->admin_host, &fail);
    srv->admin_unix_path = dup_opt(o->admin_unix_path, &fail);
    srv->tls_cert_file = dup_opt(o->tls_cert_file, &fail);
    srv->tls_key_file = dup_opt(o->tls_key_file, &fail);
    srv->o.tls_cert_file = srv->tls_cert_file;
    srv->o.tls_key_file = srv->tls_key_file;
    pthread_mutex_init(&srv->tls_mu, NULL);
    srv->o.host = srv->host;
    srv->o.unix_path = srv->unix_path;
    srv->o.admin_host = srv->admin_host;
    srv->o.admin_unix_path = srv->admin_unix_path;
    srv->o.cors_headers = srv->cors_headers;
    srv->o.cors_origins = NULL;
    if (srv->o.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        srv->o.threads = n > 0 ? (unsigned)n : 1;
    }
    int rc = fail ? bk__error(err, BK_ENOMEM, NULL) : BK_OK;
    if (rc == BK_OK && o->cors_origins != NULL)
        rc = copy_origins(srv, o->cors_origins, err);
    if (rc == BK_OK)
        rc = bk__tls_init(srv, err);
    srv->routes_tail = &srv->routes;
    if (rc == BK_OK && (srv->root = bk__rnode_new()) == NULL)
        rc = BK_ENOMEM;
    if (rc == BK_OK) {
        srv->metrics = o->metrics;
        if (srv->metrics == NULL) {
            rc = bk_metrics_new(&srv->metrics);
            srv->own_metrics = rc == BK_OK;
        }
    }
    bk_metric_t *fam;
    if (rc == BK_OK)
        rc = bk_metrics_counter(srv->metrics, "http_requests_total", "HTTP requests answered.",
                                (const char *[]){"method", "route", "status", NULL},
                                &srv->requests_total);
    if (rc == BK_OK)
        rc = bk_metrics_histogram(srv->metrics, "http_request_duration_seconds",
                                  "Time from a request's head to its answer.",
                                  (const char *[]){"route", NULL}, NULL, 0, &srv->duration);
    if (rc == BK_OK)
        rc = bk_metric_histogram(srv->duration, (const char *[]){"unmatched", NULL},
                                 &srv->unmatched_duration);
    if (rc == BK_OK)
        rc = bk_metrics_gauge(srv->metrics, "http_requests_in_flight",
                              "Requests being handled now.", NULL, &fam);
    if (rc == BK_OK)
        rc = bk_metric_gauge(fam, NULL, &srv->in_flight);
    if (rc == BK_OK)
        rc = bk_metrics_gauge(srv->metrics, "http_worker_queue_depth",
                              "Jobs waiting for a worker thread.", NULL, &fam);
    if (rc == BK_OK)
        rc = bk_metric_gauge(fam, NULL, &srv->queue_depth);
    if (rc == BK_OK)
        rc = bk_metrics_gauge(srv->metrics, "http_buffered_body_bytes",
                              "Request body bytes held in memory now.", NULL, &fam);
    if (rc == BK_OK)
        rc = bk_metric_gauge(fam, NULL, &srv->body_gauge);
    if (rc != BK_OK) {
        bk_http_server_free(srv);
        if (err != NULL && err->code == BK_OK)
            bk__error(err, rc, NULL);
        return rc;
    }
    srv->workers = o->workers;
    *out = srv;
    return BK_OK;
}

/* ------------------------------------------------------------------ routes */
static bool method_ok(const char *m)
{
    size_t n = 0;
    for (; m[n]; n++)
        if (!bk__is_tchar((unsigned char)m[n]) || (m[n] >= 'a' && m[n] <= 'z'))
            return false;
    return n > 0 && n <= 32;
}

static int copy_mw(bk_http_middleware_t *dst, const bk_http_middleware_t *src)
{
    *dst = *src;
    dst->name = src->name ? strdup(src->name) : NULL;
    return src->name && dst->name == NULL ? BK_ENOMEM : BK_OK;
}

static int add_route(bk_http_server_t *srv, const char *method, const char *path,
                     bk_http_handler_fn fn, void *ud, const bk_http_route_opts_t *opts,
                     bool internal)
{
    if (srv == NULL || method == NULL || path == NULL || fn == NULL || !method_ok(method) ||
        (opts != NULL && opts->nmiddleware > 0 && opts->middleware == NULL))
        return BK_EINVAL;
    /* A permission or an ownership check means nothing without a verified caller,
     * and a permission nothing without a policy. */
    if (opts != NULL && ((opts->auth != NULL && opts->auth->keys == NULL) ||
                         ((opts->permission != NULL || opts->owner != NULL) && opts->auth == NULL) ||
                         (opts->permission != NULL && opts->auth->rbac == NULL)))
        return BK_EINVAL;
    /* Flags known, and an offload only from the loop (a blocking route is away). */
    unsigned known = BK_HTTP_BLOCKING | BK_HTTP_JSON | BK_HTTP_RAW_PARAMS | BK_HTTP_OFFLOAD;
    if (opts != NULL && ((opts->flags & ~known) != 0 ||
                         (opts->flags & (BK_HTTP_BLOCKING | BK_HTTP_OFFLOAD)) == (BK_HTTP_BLOCKING | BK_HTTP_OFFLOAD)))
        return BK_EINVAL;
    if (srv->started)
        return BK_EBUSY;
    struct route *r = calloc(1, sizeof *r);
    if (r == NULL)
        return BK_ENOMEM;
    r->fn = fn;
    r->ud = ud;
    r->internal = internal;
    r->flags = opts ? opts->flags : 0;
    if (opts != NULL) {
        /* The built-in guards, in the chain's order (chain.c). */
        if (opts->ratelimit != NULL)
            r->guard[r->nguard++] = bk__mw_ratelimit(r);
        if (opts->auth != NULL)
            r->guard[r->nguard++] = bk__mw_auth(r);
        if (opts->permission != NULL)
            r->guard[r->nguard++] = bk__mw_permission(r);
        r->nguard_pre = r->nguard; /* the user's middleware goes here */
        if (opts->body_schema != NULL || opts->query_schema != NULL)
            r->guard[r->nguard++] = bk__mw_validate(r);
        if (opts->owner != NULL)
            r->guard[r->nguard++] = bk__mw_owner(r);
        r->ratelimit = opts->ratelimit;
        r->ratelimit_key = opts->ratelimit_key;
        r->ratelimit_ud = opts->ratelimit_ud;
        r->body_schema = opts->body_schema;
        r->query_schema = opts->query_schema;
        r->auth = opts->auth;
        r->owner = opts->owner;
        r->owner_ud = opts->owner_ud;
    }
    int rc = opts != NULL ? bk__route_doc(r, opts->doc) : BK_OK;
    if (rc == BK_OK && ((r->method = strdup(method)) == NULL || (r->template = strdup(path)) == NULL ||
        (opts != NULL && opts->permission != NULL && (r->permission = strdup(opts->permission)) == NULL)))
        rc = BK_ENOMEM;
    if (rc == BK_OK && opts != NULL && opts->nmiddleware > 0) {
        if ((r->mw = calloc(opts->nmiddleware, sizeof *r->mw)) == NULL)
            rc = BK_ENOMEM;
        for (size_t i = 0; rc == BK_OK && i < opts->nmiddleware; i++, r->nmw++)
            rc = copy_mw(&r->mw[i], &opts->middleware[i]);
    }
    if (rc == BK_OK)
        rc = bk_metric_histogram(srv->duration, (const char *[]){path, NULL}, &r->duration);
    if (rc == BK_OK)
        rc = bk__router_add(srv->root, r);
    if (rc != BK_OK) {
        bk__route_free(r);
        return rc;
    }
    if (r->flags & (BK_HTTP_BLOCKING | BK_HTTP_OFFLOAD))
        srv->has_blocking = true; /* the server needs a worker pool */
    *srv->routes_tail = r;
    srv->routes_tail = &r->reg_next;
    return BK_OK;
}

int bk_http_route(bk_http_server_t *srv, const char *method, const char *path,
                  bk_http_handler_fn fn, void *ud, const bk_http_route_opts_t *opts)
{
    return add_route(srv, method, path, fn, ud, opts, false);
}

/* Internal routes (health, metrics) skip user middleware. */
int bk__http_route_internal(bk_http_server_t *srv, const char *path, bk_http_handler_fn fn)
{
    return add_route(srv, "GET", path, fn, srv, NULL, true);
}

int bk_http_use(bk_http_server_t *srv, const bk_http_middleware_t *mw)
{
    if (srv == NULL || mw == NULL)
        return BK_EINVAL;
    if (srv->started)
        return BK_EBUSY;
    bk_http_middleware_t *n = realloc(srv->mw, (srv->nmw + 1) * sizeof *n);
    if (n == NULL)
        return BK_ENOMEM;
    srv->mw = n;
    int rc = copy_mw(&srv->mw[srv->nmw], mw);
    if (rc == BK_OK)
        srv->nmw++;
    return rc;
}

bk_metrics_t *bk_http_server_metrics(bk_http_server_t *srv)
{
    return srv ? srv->metrics : NULL;
}

uint16_t bk_http_server_port(const bk_http_server_t *srv)
{
    return srv ? srv->port : 0;
}

uint16_t bk_http_server_admin_port(const bk_http_server_t *srv)
{
    return srv ? srv->admin_port : 0;
}

/* ------------------------------------------------------------------ loops */
static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)l;
    bk__conn_accept(arg, fd, sa, salen, false);
}

static void on_admin_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    (void)l;
    bk__conn_accept(arg, fd, sa, salen, true);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct loop *loop = arg;
    if (loop->listener != NULL)
        evconnlistener_enable(loop->listener);
    if (loop->admin_listener != NULL)
        evconnlistener_enable(loop->admin_listener);
}

static void arm_ns(struct event *ev, int64_t ns)
{
    struct timeval tv = bk__http_timeval(ns);
    evtimer_add(ev, &tv);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct loop *loop = arg;
    int err = EVUTIL_SOCKET_ERROR();
    bk_log(loop->srv->o.log, BK_LOG_WARN, json_pack("{s:s}", "error", strerror(err)),
           "accept failed");
    /* Out of descriptors (EMFILE) leaves the socket readable: pause accepting for
     * a moment instead of spinning on it. */
    evconnlistener_disable(l);
    arm_ns(loop->accept_resume_ev, 100 * BK_NSEC_PER_MSEC);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct loop *loop = arg;
    bk__loop_stop_conns(loop, true);
    bk__loop_maybe_exit(loop);
}


/* The second step of a stop: no more connections; idle ones close now, busy ones
 * after their answer or at the deadline. */
static void on_close_listener(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct loop *loop = arg;
    loop->closed = true;
    if (loop->listener != NULL) {
        evconnlistener_free(loop->listener);
        loop->listener = NULL;
    }
    if (loop->admin_listener != NULL) {
        evconnlistener_free(loop->admin_listener);
        loop->admin_listener = NULL;
    }
    arm_ns(loop->deadline_ev, loop->srv->o.shutdown_timeout_ns);
    bk__loop_stop_conns(loop, false);
    bk__loop_maybe_exit(loop);
}

/* Runs on the loop's thread once bk_http_server_stop() has been called. Readiness
 * already answers 503; for shutdown_delay_ns the loop goes on accepting (a load
 * balancer may still send) and every answer closes its connection. */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct loop *loop = arg;
    if (loop->stopping)
        return;
    loop->stopping = true;
    if (loop->srv->o.shutdown_delay_ns > 0) {
        arm_ns(loop->delay_ev, loop->srv->o.shutdown_delay_ns);
        bk__loop_stop_conns(loop, false); /* idle keep-alive connections */
    } else {
        on_close_listener(-1, 0, loop);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    bk_http_server_t *srv = arg;
    bk_log(srv->o.log, BK_LOG_INFO, json_pack("{s:i}", "signal", (int)sig), "stopping");
    bk_http_server_stop(srv);
}

static void *loop_main(void *arg)
{
    struct loop *loop = arg;
    char name[16];
    snprintf(name, sizeof name, "bk-http-%u", loop->index);
    pthread_setname_np(pthread_self(), name);
    event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int make_loop(bk_http_server_t *srv, struct loop *loop, unsigned index)
{
    loop->srv = srv;
    loop->index = index;
    unsigned char rnd[8];
    if (bk_random_bytes(rnd, sizeof rnd) != BK_OK)
        return BK_ESYS;
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(loop->id_prefix + 2 * i, 3, "%02x", rnd[i]);
    /* With the change list, a loop's changes to its events are made in one go
     * before it waits, and those that cancel out are never made: a request
     * answered in the callback that read it (stop reading, write, read again)
     * costs no epoll_ctl, where it cost four. The list's known trap, a file
     * descriptor dup()ed into two, is not one the server makes. */
    struct event_config *cfg = event_config_new();
    if (cfg == NULL || event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) != 0) {
        event_config_free(cfg);
        return BK_ENOMEM;
    }
    loop->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (loop->base == NULL ||
        (loop->stop_ev = event_new(loop->base, -1, 0, on_stop, loop)) == NULL ||
        (loop->deadline_ev = evtimer_new(loop->base, on_deadline, loop)) == NULL ||
        (loop->delay_ev = evtimer_new(loop->base, on_close_listener, loop)) == NULL ||
        (loop->accept_resume_ev = evtimer_new(loop->base, on_accept_resume, loop)) == NULL)
        return BK_ENOMEM;
    return BK_OK;
}

/* ------------------------------------------------------------------ binding */
/* A listening unix socket at path in *fd. A stale socket left by a crash is
 * replaced; never any other kind of file, and never a socket some process still
 * answers on. */
static int listen_unix(const char *path, int backlog, int *fd_out, bk_error_t *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return bk__error(err, BK_EEXIST, "%s: exists and is not a socket", path);
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0)
            close(probe);
        if (live)
            return bk__error(err, BK_EEXIST, "%s: another server answers on it", path);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return bk__error(err, BK_ESYS, "%s: %s", path, strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        return bk__error(err, BK_ESYS, "%s: %s", path, strerror(e));
    }
    *fd_out = fd;
    return BK_OK;
}

/* A listener on loop for an already listening socket (a duplicate of fd); what
 * names the socket in err. */
static int listener_on_fd(struct loop *loop, evconnlistener_cb cb, int fd, const char *what,
                          struct evconnlistener **out, bk_error_t *err)
{
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0)
        return bk__error(err, BK_ESYS, "%s: %s", what, strerror(errno));
    /* backlog 0: the socket already listens. */
    *out = evconnlistener_new(loop->base, cb, loop, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                              0, dfd);
    if (*out == NULL) {
        close(dfd);
        return bk__error(err, BK_ESYS, "%s: cannot make a listener", what);
    }
    evconnlistener_set_error_cb(*out, on_accept_error);
    return BK_OK;
}

static int bind_unix(bk_http_server_t *srv, bk_error_t *err)
{
    int rc = listen_unix(srv->unix_path, srv->o.backlog, &srv->unix_fd, err);
    for (unsigned i = 0; rc == BK_OK && i < srv->nloops; i++)
        rc = listener_on_fd(&srv->loops[i], on_accept, srv->unix_fd, srv->unix_path,
                            &srv->loops[i].listener, err);
    return rc;
}

static uint16_t bound_port(struct evconnlistener *l)
{
    struct sockaddr_storage b;
    socklen_t blen = sizeof b;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&b, &blen);
    return ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
                                         : ((struct sockaddr_in *)&b)->sin_port);
}

/* A TCP listener on loop for host:port (flags: LEV_OPT_REUSEABLE_PORT or 0). A
 * failure names the address: "127.0.0.1:8080: address in use". */
static int listen_tcp(struct loop *loop, evconnlistener_cb cb, const char *host, uint16_t port,
                      unsigned flags, struct evconnlistener **out, bk_error_t *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    /* An IPv6 literal is bracketed, so that the port stands apart. */
    const char *lb = strchr(host, ':') ? "[" : "", *rb = *lb ? "]" : "";
    int gai = getaddrinfo(host, service, &hints, &ai);
    if (gai != 0)
        return bk__error(err, BK_EINVAL, "%s%s%s:%u: %s", lb, host, rb, (unsigned)port,
                         gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
    *out = evconnlistener_new_bind(loop->base, cb, loop,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
                                       LEV_OPT_REUSEABLE | flags,
                                   loop->srv->o.backlog, ai->ai_addr, (int)ai->ai_addrlen);
    int e = errno;
    freeaddrinfo(ai);
    if (*out == NULL)
        return e == EADDRINUSE
                   ? bk__error(err, BK_EEXIST, "%s%s%s:%u: address in use", lb, host, rb, (unsigned)port)
                   : bk__error(err, BK_ESYS, "%s%s%s:%u: %s", lb, host, rb, (unsigned)port, strerror(e));
    evconnlistener_set_error_cb(*out, on_accept_error);
    return BK_OK;
}

static int bind_tcp(bk_http_server_t *srv, bk_error_t *err)
{
    /* Port 0: the kernel chooses one for loop 0; the other loops bind that same port. */
    uint16_t port = srv->o.port;
    for (unsigned i = 0; i < srv->nloops; i++) {
        struct loop *loop = &srv->loops[i];
        int rc = listen_tcp(loop, on_accept, srv->host, port, LEV_OPT_REUSEABLE_PORT,
                            &loop->listener, err);
        if (rc != BK_OK)
            return rc;
        if (i == 0)
            srv->port = port = bound_port(loop->listener);
    }
    return BK_OK;
}

/* The admin listener, on loop 0 (it answers only cheap internal routes). */
static int bind_admin(bk_http_server_t *srv, bk_error_t *err)
{
    struct loop *l0 = &srv->loops[0];
    if (srv->admin_unix_path != NULL) {
        int rc = listen_unix(srv->admin_unix_path, srv->o.backlog, &srv->admin_unix_fd, err);
        return rc == BK_OK ? listener_on_fd(l0, on_admin_accept, srv->admin_unix_fd,
                                            srv->admin_unix_path, &l0->admin_listener, err)
                           : rc;
    }
    if (srv->admin_host == NULL)
        return BK_OK;
    int rc = listen_tcp(l0, on_admin_accept, srv->admin_host, srv->o.admin_port, 0,
                        &l0->admin_listener, err);
    if (rc == BK_OK)
        srv->admin_port = bound_port(l0->admin_listener);
    return rc;
}


int bk_http_server_start(bk_http_server_t *srv, bk_error_t *err)
{
    bk__error_clear(err);
    if (srv == NULL)
        return bk__error(err, BK_EINVAL, "srv is NULL");
    if (srv->started)
        return bk__error(err, BK_EBUSY, "the server has started already");
    if (atomic_load(&srv->stopping)) /* stopped before it started: nothing would stop it again */
        return bk__error(err, BK_ECLOSED, "the server was stopped before it started");
    /* A write to a connection the client has closed raises SIGPIPE (libevent's
     * writev, OpenSSL's write), which by default ends the process: ignored,
     * unless the host has chosen a handler of its own. */
    struct sigaction pipe_sa;
    if (sigaction(SIGPIPE, NULL, &pipe_sa) == 0 && pipe_sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    int rc = bk__openapi_render(srv, err);
    if (rc != BK_OK)
        return rc; /* nothing has started yet */
    rc = bk__router_finish(srv->root, srv);
    if (rc == BK_OK)
        rc = bk__chain_build_server(srv);
    if (rc == BK_OK && srv->workers == NULL && (srv->has_blocking || srv->nchecks > 0)) {
        bk_workers_opts_t wo;
        bk_workers_opts_init(&wo);
        wo.name = "bk-http-w";
        rc = bk_workers_new(&wo, &srv->workers);
        srv->own_workers = rc == BK_OK;
    }
    if (rc == BK_OK && (srv->loops = calloc(srv->o.threads, sizeof *srv->loops)) == NULL)
        rc = BK_ENOMEM;
    for (unsigned i = 0; rc == BK_OK && i < srv->o.threads; i++, srv->nloops++)
        rc = make_loop(srv, &srv->loops[i], i);
    if (rc == BK_OK)
        rc = srv->unix_path ? bind_unix(srv, err) : bind_tcp(srv, err);
    if (rc == BK_OK)
        rc = bind_admin(srv, err);
    if (rc == BK_OK && srv->o.handle_signals) {
        struct loop *l0 = &srv->loops[0];
        int sigs[2] = {SIGINT, SIGTERM};
        for (int i = 0; i < 2 && rc == BK_OK; i++)
            if ((l0->signal_ev[i] = evsignal_new(l0->base, sigs[i], on_signal, srv)) == NULL ||
                event_add(l0->signal_ev[i], NULL) != 0)
                rc = BK_ESYS;
    }
    srv->started = true; /* from here on free() tears down the loops */
    /* Loop threads take no signals: they reach the process's other threads (and
     * libevent's handler, which wakes loop 0). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; rc == BK_OK && i < srv->nloops; i++) {
        if (pthread_create(&srv->loops[i].thread, NULL, loop_main, &srv->loops[i]) != 0)
            rc = BK_ESYS;
        else
            srv->loops[i].thread_started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != BK_OK) {
        bk_http_server_stop(srv);
        bk_http_server_wait(srv);
        if (err != NULL && err->code == BK_OK) /* the steps that say no more than their code */
            bk__error(err, rc, NULL);
        return rc;
    }
    if (srv->unix_path)
        bk_log(srv->o.log, BK_LOG_INFO, json_pack("{s:s, s:i}", "unix", srv->unix_path,
                                                  "threads", (int)srv->nloops), "listening");
    else
        bk_log(srv->o.log, BK_LOG_INFO, json_pack("{s:s, s:i, s:i}", "host", srv->host, "port",
                                                  (int)srv->port, "threads", (int)srv->nloops),
               "listening");
    if (srv->admin_unix_path)
        bk_log(srv->o.log, BK_LOG_INFO, json_pack("{s:s}", "unix", srv->admin_unix_path),
               "admin listening");
    else if (srv->admin_host)
        bk_log(srv->o.log, BK_LOG_INFO,
               json_pack("{s:s, s:i}", "host", srv->admin_host, "port", (int)srv->admin_port),
               "admin listening");
    return BK_OK;
}

void bk_http_server_stop(bk_http_server_t *srv)
{
    if (srv == NULL || atomic_exchange(&srv->stopping, true))
        return;
    for (unsigned i = 0; i < srv->nloops; i++)
        event_active(srv->loops[i].stop_ev, 0, 0);
}

int bk_http_server_wait(bk_http_server_t *srv)
{
    if (srv == NULL)
        return BK_EINVAL;
    pthread_mutex_lock(&srv->mu);
    for (unsigned i = 0; i < srv->nloops; i++) {
        if (srv->loops[i].thread_started) {
            pthread_join(srv->loops[i].thread, NULL);
            srv->loops[i].thread_started = false;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return BK_OK;
}

void bk_http_server_free(bk_http_server_t *srv)
{
    if (srv == NULL)
        return;
    bk_http_server_stop(srv);
    bk_http_server_wait(srv);
    /* Threads are joined: what is left on each base (connections of a loop that
     * never ran) is freed here. */
    for (unsigned i = 0; i < srv->nloops; i++) {
        struct loop *loop = &srv->loops[i];
        while (loop->conns != NULL)
            bk__conn_free(loop->conns);
        bk__loop_free_reqs(loop);
        if (loop->listener)
            evconnlistener_free(loop->listener);
        if (loop->admin_listener)
            evconnlistener_free(loop->admin_listener);
        for (int s = 0; s < 2; s++)
            if (loop->signal_ev[s])
                event_free(loop->signal_ev[s]);
        if (loop->stop_ev)
            event_free(loop->stop_ev);
        if (loop->deadline_ev)
            event_free(loop->deadline_ev);
        if (loop->delay_ev)
            event_free(loop->delay_ev);
        if (loop->accept_resume_ev)
            event_free(loop->accept_resume_ev);
        bk__gzip_free(loop);
    }
    if (srv->own_workers)
        bk_workers_free(srv->workers);
    for (unsigned i = 0; i < srv->nloops; i++)
        if (srv->loops[i].base)
            event_base_free(srv->loops[i].base);
    free(srv->loops);
    if (srv->unix_fd >= 0) {
        close(srv->unix_fd);
        unlink(srv->unix_path);
    }
    if (srv->admin_unix_fd >= 0) {
        close(srv->admin_unix_fd);
        unlink(srv->admin_unix_path);
    }
    bk__rnode_free(srv->root);
    bk__openapi_free(srv);
    bk__static_free(srv->static_mounts);
    for (size_t i = 0; i < srv->nmw; i++)
        free((char *)srv->mw[i].name);
    free(srv->mw);
    for (size_t i = 0; i < srv->nchecks; i++)
        free(srv->checks[i].name);
    free(srv->checks);
    for (size_t i = 0; i < srv->nreports; i++)
        free(srv->reports[i].name);
    free(srv->reports);
    if (srv->cors_origins)
        for (char **o = srv->cors_origins; *o; o++)
            free(*o);
    free(srv->cors_origins);
    free(srv->host);
    free(srv->unix_path);
    free(srv->admin_host);
    free(srv->admin_unix_path);
    free(srv->cors_headers);
    free(srv->static_headers);
    bk__tls_free(srv);
    free(srv->tls_cert_file);
    free(srv->tls_key_file);
    pthread_mutex_destroy(&srv->tls_mu);
    if (srv->own_metrics)
        bk_metrics_free(srv->metrics);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}
