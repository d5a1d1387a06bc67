/*
 * hello_json: the smallest service on libbackend's core layer. A libevent HTTP
 * server answers JSON, writes one structured log line per request and exposes
 * its request counters to Prometheus.
 *
 *   hello_json [--host ADDR] [--port N]     (port 0 picks a free one; it is logged)
 *
 *   GET /         {"hello":"world","version":"0.1.0"}
 *   GET /metrics  Prometheus text exposition
 *
 * SPDX-License-Identifier: MIT
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <jansson.h>

#include <backend/backend.h>

struct app {
    bk_log_t *log;
    bk_metrics_t *metrics;
    bk_metric_t *requests; /* http_requests_total{path,status} */
};

static void reply(struct app *app, struct evhttp_request *req, int status, const char *type,
                  const char *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, body, len);
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Not Found", buf);
    evbuffer_free(buf);

    const char *path = evhttp_request_get_uri(req);
    char code[4];
    snprintf(code, sizeof code, "%d", status);
    /* Unknown paths share one label value, so a scanner cannot grow the series set. */
    const char *label = status == 200 ? path : "other";
    bk_counter_t *c;
    if (bk_metric_counter(app->requests, (const char *[]){label, code, NULL}, &c) == BK_OK)
        bk_counter_inc(c);
    bk_log(app->log, BK_LOG_INFO, json_pack("{s:s, s:i}", "path", path, "status", status),
           "request");
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct app *app = arg;
    const char *path = evhttp_request_get_uri(req);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        static const char body[] = "{\"error\":\"method not allowed\"}";
        reply(app, req, 405, "application/json", body, sizeof body - 1);
    } else if (strcmp(path, "/") == 0) {
        json_t *doc = json_pack("{s:s, s:s}", "hello", "world", "version", bk_version());
        char *text = json_dumps(doc, JSON_COMPACT);
        reply(app, req, 200, "application/json", text, strlen(text));
        free(text);
        json_decref(doc);
    } else if (strcmp(path, "/metrics") == 0) {
        char *text;
        size_t len;
        if (bk_metrics_render(app->metrics, &text, &len) == BK_OK) {
            reply(app, req, 200, "text/plain; version=0.0.4", text, len);
            free(text);
        }
    } else {
        static const char body[] = "{\"error\":\"not found\"}";
        reply(app, req, 404, "application/json", body, sizeof body - 1);
    }
}

static void on_signal(evutil_socket_t sig, short events, void *arg)
{
    (void)sig;
    (void)events;
    event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8080;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--host ADDR] [--port N]\n", argv[0]);
            return 2;
        }
    }

    struct app app = {0};
    bk_log_opts_t lo;
    bk_log_opts_init(&lo);
    int rc = bk_log_new(&lo, &app.log);
    if (rc == BK_OK)
        rc = bk_metrics_new(&app.metrics);
    if (rc == BK_OK)
        rc = bk_metrics_counter(app.metrics, "http_requests_total", "HTTP requests answered.",
                                (const char *[]){"path", "status", NULL}, &app.requests);
    if (rc != BK_OK) {
        fprintf(stderr, "hello_json: %s\n", bk_strerror(rc));
        return 1;
    }

    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    evhttp_set_gencb(http, on_request, &app);
    struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (sock == NULL) {
        bk_log(app.log, BK_LOG_ERROR, json_pack("{s:s, s:i}", "host", host, "port", port),
               "cannot listen");
        return 1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl);
    int bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);

    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);

    bk_log(app.log, BK_LOG_INFO,
           json_pack("{s:s, s:i, s:s}", "host", host, "port", bound, "version", bk_version()),
           "listening");
    event_base_dispatch(base);
    bk_log(app.log, BK_LOG_INFO, NULL, "stopped");

    event_free(sigint);
    event_free(sigterm);
    evhttp_free(http);
    event_base_free(base);
    bk_metrics_free(app.metrics);
    bk_log_free(app.log);
    return 0;
}
