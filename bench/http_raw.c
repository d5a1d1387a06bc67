/* http_raw: the baseline for bench/http_json.sh. A bare libevent evhttp server in the
 * same shape as ours (N threads, each with its own event_base, evhttp and listening
 * socket on one address/port with SO_REUSEPORT, so the kernel spreads connections),
 * without any of libbackend.
 *
 *   http_raw --port N [--threads N] [--access-log=off]   (threads default: nproc;
 *                                                        --access-log is ignored)
 *
 *   GET /json  200 {"message":"Hello, World!"}  (serialised with jansson per request)
 *
 * Listens on 127.0.0.1, prints "listening <port>" on stdout once bound and serves
 * until SIGINT or SIGTERM.
 *
 * SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <jansson.h>

struct worker {
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
};

static void on_json(struct evhttp_request *req, void *arg)
{
    (void)arg;
    json_t *doc = json_pack("{s:s}", "message", "Hello, World!");
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
    free(text);
    evhttp_send_reply(req, HTTP_OK, "OK", NULL);
}

static void *run(void *arg)
{
    struct worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

/* One event_base + evhttp with its own SO_REUSEPORT listener on 127.0.0.1:port. */
static int worker_init(struct worker *w, int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *lev;
    if ((w->base = event_base_new()) == NULL || (w->http = evhttp_new(w->base)) == NULL)
        return -1;
    lev = evconnlistener_new_bind(w->base, NULL, NULL,
                                  LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT |
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                  1024, (struct sockaddr *)&sin, sizeof sin);
    if (lev == NULL || evhttp_bind_listener(w->http, lev) == NULL)
        return -1;
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET);
    evhttp_set_cb(w->http, "/json", on_json, NULL);
    return 0;
}

static void usage(const char *prog)
{
    fprintf(stderr, "usage: %s --port N [--threads N] [--access-log=off]\n", prog);
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"port", required_argument, NULL, 'p'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"access-log", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    long port = 0, threads = sysconf(_SC_NPROCESSORS_ONLN);
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        if (c == 'p' || c == 't') {
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0')
                usage(argv[0]);
            *(c == 'p' ? &port : &threads) = v;
        } else if (c != 'a') {
            usage(argv[0]);
        }
    }
    if (optind != argc || port < 1 || port > 65535 || threads < 1 || threads > 1024)
        usage(argv[0]);

    /* Signals go to sigwait() below, never to the loops; a closed peer is not fatal. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &ign, NULL);

    struct worker *w = calloc((size_t)threads, sizeof *w);
    if (w == NULL || evthread_use_pthreads() != 0) {
        fprintf(stderr, "http_raw: setup failed\n");
        return 1;
    }
    for (long i = 0; i < threads; i++) {
        if (worker_init(&w[i], (int)port) != 0) {
            fprintf(stderr, "http_raw: cannot listen on 127.0.0.1:%ld\n", port);
            return 1;
        }
    }
    for (long i = 0; i < threads; i++) {
        if (pthread_create(&w[i].thread, NULL, run, &w[i]) != 0) {
            fprintf(stderr, "http_raw: cannot start thread\n");
            return 1;
        }
    }
    printf("listening %ld\n", port);
    fflush(stdout);

    int sig;
    sigwait(&stop, &sig);
    for (long i = 0; i < threads; i++)
        event_base_loopbreak(w[i].base);
    for (long i = 0; i < threads; i++) {
        pthread_join(w[i].thread, NULL);
        evhttp_free(w[i].http);
        event_base_free(w[i].base);
    }
    free(w);
    return 0;
}
