/*
 * hello_json: the smallest service on libbackend's HTTP front. Routes are declared
 * once; the server brings request ids, security headers, metrics, health probes,
 * problem+json errors and a graceful stop on SIGTERM.
 *
 *   hello_json [--host ADDR] [--port N] [--threads N] [--max-connections N]
 *              [--access-log=off|stderr|FILE] [--tls-cert FILE --tls-key FILE]
 *
 *   GET /json             {"message":"Hello, World!"}
 *   GET /hello/{name}     {"hello":NAME,"version":"0.1.0"}
 *   GET /metrics          Prometheus text exposition
 *   GET /health/live, /health/ready, /health/startup
 *
 * Port 0 picks a free port; the "listening" log line names it. With a certificate
 * chain and its key (PEM) it speaks HTTPS. --max-connections raises (or lowers)
 * the server's limit of open connections, 10000 by default; each also needs a
 * descriptor (ulimit -n).
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backend/backend.h>

static void hello_json(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{s:s}", "message", "Hello, World!"));
}

static void hello_name(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200,
                json_pack("{s:s, s:s}", "hello", bk_req_param(req, "name"), "version", bk_version()));
}

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--host ADDR] [--port N] [--threads N] [--max-connections N]\n"
            "       [--access-log=off|stderr|FILE] [--tls-cert FILE --tls-key FILE]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    const char *access = "stderr";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            o.host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            o.port = (uint16_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            o.threads = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--max-connections") == 0 && i + 1 < argc)
            o.max_connections = (unsigned)atoi(argv[++i]);
        else if (strncmp(argv[i], "--access-log=", 13) == 0)
            access = argv[i] + 13;
        else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc)
            o.tls_cert_file = argv[++i];
        else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc)
            o.tls_key_file = argv[++i];
        else
            return usage(argv[0]);
    }

    /* What a failed call has to say beyond its code ("127.0.0.1:8080: address in use"). */
    bk_error_t err;
    bk_log_t *log = NULL, *access_log = NULL;
    int rc = bk_log_new(NULL, &log, &err); /* NULL options: stderr, info */
    if (rc == BK_OK && strcmp(access, "off") != 0) {
        bk_log_opts_t lo;
        bk_log_opts_init(&lo);
        if (strcmp(access, "stderr") != 0)
            lo.path = access;
        rc = bk_log_new(&lo, &access_log, &err);
    }
    o.log = log;
    o.access_log = access_log;

    bk_http_server_t *srv = NULL;
    if (rc == BK_OK)
        rc = bk_http_server_new(&o, &srv, &err);
    if (rc == BK_OK)
        rc = bk_http_route(srv, "GET", "/json", hello_json, NULL, NULL);
    if (rc == BK_OK)
        rc = bk_http_route(srv, "GET", "/hello/{name}", hello_name, NULL, NULL);
    if (rc == BK_OK)
        rc = bk_http_mount_metrics(srv, "/metrics");
    if (rc == BK_OK)
        rc = bk_http_mount_health(srv);
    if (rc == BK_OK)
        rc = bk_http_server_start(srv, &err);
    if (rc != BK_OK) {
        /* The calls that take no bk_error_t (routes, mounts) have their code to say. */
        const char *why = err.code == rc ? err.message : bk_strerror(rc);
        if (log != NULL)
            bk_log(log, BK_LOG_ERROR, json_pack("{s:s}", "error", why), "cannot start");
        else
            fprintf(stderr, "hello_json: %s\n", why);
        bk_http_server_free(srv);
        bk_log_free(access_log);
        bk_log_free(log);
        return 1;
    }
    bk_http_server_set_started(srv, true);
    bk_http_server_wait(srv); /* until SIGINT or SIGTERM */
    bk_log(log, BK_LOG_INFO, NULL, "stopped");
    bk_http_server_free(srv);
    bk_log_free(access_log);
    bk_log_free(log);
    return 0;
}
