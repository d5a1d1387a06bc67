/* backendd: libbackend's own service, on the public API only (backendd(8)).
 *
 *   backendd [-c FILE] [--check-config] [--migrate-only] [--dev] [--version] [--help]
 *
 * The main thread reads the configuration, opens the parts (app.c), starts one
 * HTTP server per listen address, all with the same routes and one worker pool,
 * and then only waits for signals: SIGTERM and SIGINT stop every server
 * gracefully, SIGHUP reopens the log files and reloads the TLS certificates and
 * the JWT keys.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"

#ifndef BACKENDD_CONF
#define BACKENDD_CONF "/etc/backendd/backendd.conf"
#endif

extern char **environ;

static void usage(FILE *out)
{
    fprintf(out, "usage: backendd [-c FILE] [--check-config] [--migrate-only] [--dev] [--version] [--help]\n"
                 "  -c FILE          the configuration (default " BACKENDD_CONF " when it exists;\n"
                 "                   every key may also come from BACKENDD_<KEY>)\n"
                 "  --check-config   report every problem of the configuration, one a line, and exit\n"
                 "  --migrate-only   apply the database migrations and exit\n"
                 "  --dev            development: a generated signing key, sample data, an admin account\n"
                 "  --version        print the versions and exit\n"
                 "See backendd(8) and backendd.conf(5).\n");
}

static int check_db(void *ud)
{
    struct app *app = ud;
    return app_query(app, "SELECT 1", NULL, 0, NULL, NULL);
}

static int check_migrations(void *ud)
{
    struct app *app = ud;
    return atomic_load(&app->migrated) ? BK_OK : BK_EUNAVAIL;
}

static const char *breaker_state(void *ud)
{
    return bk_breaker_state_name(bk_breaker_state(ud));
}

/* /health/ready's reports: each service's breaker, and each memcached server's
 * ("memcached", then "memcached-1", ...). Reports, not checks: without them
 * the instance still answers (cache reads go to the database, orders fail
 * fast), and as every instance shares them, failing readiness for them
 * would take all of them out of service at once. */
static int add_reports(struct app *app, bk_http_server_t *srv)
{
    bk_upstream_t *const services[] = {app->payment, app->shipping, app->notify};
    const char *const names[] = {"payment", "shipping", "notify"};
    int rc = BK_OK;
    for (size_t i = 0; rc == BK_OK && i < 3; i++)
        if (services[i] != NULL)
            rc = bk_http_health_report(srv, names[i], breaker_state, bk_upstream_breaker(services[i]));
    bk_breaker_t *b;
    for (size_t i = 0; rc == BK_OK && (b = bk_cache_breaker(app->cache, i)) != NULL; i++) {
        char name[32];
        snprintf(name, sizeof name, i ? "memcached-%zu" : "memcached", i);
        rc = bk_http_health_report(srv, name, breaker_state, b);
    }
    return rc;
}

/* "host:port" or "[v6]:port" into host (brackets dropped) and port. */
static void split_listen(const char *s, char *host, size_t size, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    size_t n = (size_t)(colon - s);
    if (s[0] == '[')
        snprintf(host, size, "%.*s", (int)(n - 2), s + 1);
    else
        snprintf(host, size, "%.*s", (int)n, s);
    *port = (uint16_t)atoi(colon + 1);
}

static int add_server(struct app *app, const char *listen, bk_workers_t *workers, bk_error_t *err)
{
    const struct conf *c = &app->conf;
    char host[256];
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    split_listen(listen, host, sizeof host, &o.port);
    o.host = host;
    o.threads = c->io_threads;
    o.access_log = app->access_log;
    o.log = app->log;
    o.metrics = app->metrics;
    o.workers = workers;
    o.handle_signals = false; /* the main thread waits for them, for every server */
    o.tls_cert_file = c->tls_cert_file;
    o.tls_key_file = c->tls_key_file;
    const char *origins[CONF_MAX_LIST + 1] = {NULL};
    for (size_t i = 0; i < c->ncors_origins; i++)
        origins[i] = c->cors_origins[i];
    o.cors_origins = c->ncors_origins ? origins : NULL;
    if (app->nservers == 0 && c->admin_listen != NULL) { /* probes and metrics of their own */
        static char admin_host[256];
        split_listen(c->admin_listen, admin_host, sizeof admin_host, &o.admin_port);
        o.admin_host = admin_host;
    }
    bk_http_server_t *srv;
    int rc = bk_http_server_new(&o, &srv, err);
    if (rc != BK_OK)
        return rc;
    app->servers[app->nservers++] = srv;
    const char *step = "the auth routes";
    if ((rc = auth_routes(app, srv)) != BK_OK || (step = "the users routes", rc = users_routes(app, srv)) != BK_OK ||
        (step = "the products routes", rc = products_routes(app, srv)) != BK_OK ||
        (step = "the orders routes", rc = orders_routes(app, srv)) != BK_OK ||
        (step = "the health probes", rc = bk_http_mount_health(srv)) != BK_OK ||
        (rc = bk_http_health_check(srv, "database", check_db, app, 2 * BK_NSEC_PER_SEC)) != BK_OK ||
        (rc = bk_http_health_check(srv, "migrations", check_migrations, app, BK_NSEC_PER_SEC)) != BK_OK ||
        (rc = add_reports(app, srv)) != BK_OK ||
        (step = "the metrics", rc = bk_http_mount_metrics(srv, "/metrics")) != BK_OK)
        return app_error(err, rc, "%s: cannot add %s: %s", listen, step, bk_strerror(rc));
    rc = bk_http_mount_openapi(srv, "/openapi.json",
                               &(bk_http_openapi_info_t){
                                   .title = "backendd",
                                   .version = bk_version(),
                                   .description = "libbackend's own service: accounts, sessions and a catalogue.",
                                   .license_name = "MIT",
                                   .license_identifier = "MIT",
                               });
    if (rc != BK_OK)
        return app_error(err, rc, "%s: cannot add /openapi.json: %s", listen, bk_strerror(rc));
    struct stat st;
    if (c->docs && c->docs_dir != NULL && stat(c->docs_dir, &st) == 0)
        rc = bk_http_mount_static(srv, "/docs", c->docs_dir, NULL, err);
    else if (c->docs && app->nservers == 1)
        bk_log(app->log, BK_LOG_WARN, json_pack("{s:s?}", "docs_dir", c->docs_dir),
               "no /docs: the docs directory is not there");
    return rc;
}

/* Waits for the signals the servers do not take, until SIGTERM or SIGINT. */
static void serve(struct app *app, const sigset_t *sigs)
{
    for (;;) {
        int sig;
        if (sigwait(sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            bk_error_t err;
            if (bk_log_reopen(app->log, &err) != BK_OK || (app->access_log && bk_log_reopen(app->access_log, &err) != BK_OK))
                fprintf(stderr, "backendd: reopening a log: %s\n", err.message);
            for (size_t i = 0; app->conf.tls_cert_file && i < app->nservers; i++)
                if (bk_http_server_reload_tls(app->servers[i], &err) != BK_OK)
                    bk_log(app->log, BK_LOG_ERROR, json_pack("{s:s}", "error", err.message),
                           "the TLS certificate was not reloaded");
            if (app_reload_keys(app, &err) != BK_OK)
                bk_log(app->log, BK_LOG_ERROR, json_pack("{s:s}", "error", err.message),
                       "the JWT keys were not reloaded: the ones before stay");
            bk_log(app->log, BK_LOG_INFO, NULL, "reloaded (SIGHUP)");
            continue;
        }
        bk_log(app->log, BK_LOG_INFO, json_pack("{s:s}", "signal", strsignal(sig)), "stopping");
        for (size_t i = 0; i < app->nservers; i++)
            bk_http_server_stop(app->servers[i]);
        for (size_t i = 0; i < app->nservers; i++)
            bk_http_server_wait(app->servers[i]);
        return;
    }
}

int main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        {"check-config", no_argument, NULL, 'k'}, {"migrate-only", no_argument, NULL, 'm'},
        {"dev", no_argument, NULL, 'd'},          {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *file = NULL;
    bool check = false, migrate_only = false, dev = false;
    for (int ch; (ch = getopt_long(argc, argv, "c:", long_opts, NULL)) != -1;) {
        switch (ch) {
        case 'c': file = optarg; break;
        case 'k': check = true; break;
        case 'm': migrate_only = true; break;
        case 'd': dev = true; break;
        case 'V': printf("backendd %s (libbackend %s)\n", BACKENDD_VERSION, bk_version()); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (file == NULL && access(BACKENDD_CONF, F_OK) == 0)
        file = BACKENDD_CONF;

    static struct app app;
    app.dev = dev;
    struct conf_problems problems;
    size_t n = conf_load(&app.conf, file, environ, dev, &problems);
    for (size_t i = 0; i < n; i++)
        fprintf(check ? stdout : stderr, "%s: %s\n", problems.items[i].where, problems.items[i].message);
    conf_problems_free(&problems);
    if (check || n > 0) {
        if (check && n == 0)
            printf("%s: ok\n", file ? file : "the environment");
        conf_free(&app.conf);
        return n > 0;
    }
    if (dev && mkdir(app.conf.state_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "backendd: %s: %s (state_dir)\n", app.conf.state_dir, strerror(errno));
        return 1;
    }

    /* Every thread made from here on inherits the mask: the signals reach
     * sigwait in serve() alone. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    bk_error_t err = {0};
    int rc = app_open(&app, &err);
    if (rc == BK_OK && dev && !migrate_only)
        rc = dev_seed(&app, &err);
    bk_workers_t *workers = NULL;
    if (rc == BK_OK && !migrate_only) {
        bk_workers_opts_t wo;
        bk_workers_opts_init(&wo);
        if (app.conf.worker_threads > 0) /* else the pool's default: one per CPU */
            wo.threads = app.conf.worker_threads;
        wo.queue_max = app.conf.worker_queue;
        wo.name = "backendd-w";
        if ((rc = bk_workers_new(&wo, &workers)) != BK_OK)
            app_error(&err, rc, "the worker pool: %s", bk_strerror(rc));
    }
    for (size_t i = 0; rc == BK_OK && !migrate_only && i < app.conf.nlisten; i++)
        rc = add_server(&app, app.conf.listen[i], workers, &err);
    if (rc == BK_OK && !migrate_only) { /* sagas and confirmations, this instance's and any other's */
        bk_workers_stats_t ws;
        bk_workers_stats(workers, &ws);
        rc = orders_start(&app, ws.threads, &err);
    }
    for (size_t i = 0; rc == BK_OK && i < app.nservers; i++) {
        if ((rc = bk_http_server_start(app.servers[i], &err)) == BK_OK) {
            bk_http_server_set_started(app.servers[i], true);
            bk_log(app.log, BK_LOG_INFO,
                   json_pack("{s:s, s:i}", "listen", app.conf.listen[i], "port",
                             (int)bk_http_server_port(app.servers[i])),
                   "serving");
        }
    }
    if (rc != BK_OK)
        fprintf(stderr, "backendd: %s\n", err.message[0] ? err.message : bk_strerror(rc));
    else if (!migrate_only)
        serve(&app, &sigs);
    app_close(&app);
    if (workers != NULL) {
        bk_workers_shutdown(workers, BK_WORKERS_DRAIN);
        bk_workers_free(workers);
    }
    return rc == BK_OK ? 0 : 1;
}
