/* ulfius: the Ulfius peer for bench/peers.sh. GET /json written the way Ulfius's
 * documentation shows it (ulfius_init_instance, ulfius_add_endpoint_by_val, a callback
 * that sets a jansson object with ulfius_set_json_body_response); any other request
 * gets Ulfius's own 404.
 *
 *   ulfius --port N [--threads N]        (threads default: 2)
 *
 *   GET /json  200 {"message":"Hello, World!"}  Content-Type: application/json
 *
 * Listens on 127.0.0.1 only. Started with ulfius_start_framework_with_mhd_options:
 * libmicrohttpd's epoll with a pool of --threads threads, so that it gets the same
 * CPUs' worth of workers as the other servers, room for well over 12,000 connections
 * and no idle timeout (the benchmark holds idle keep-alive connections). Built with
 * -DULFIUS_PLAIN_START it uses plain ulfius_start_framework instead (libmicrohttpd's
 * thread per connection with select), to compare; --threads is then ignored.
 *
 * Prints "ulfius listening on 127.0.0.1:PORT" on stdout once started and serves until
 * SIGINT or SIGTERM.
 *
 * Exit status: 0 after a clean stop on a signal, 1 when it cannot start (bad
 * address, port taken, Ulfius or libmicrohttpd failing), 2 on a usage error.
 *
 * Build:
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror bench/peers/ulfius.c \
 *       -o ulfius $(pkg-config --cflags --libs libulfius jansson)
 *
 * SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <jansson.h>
#include <ulfius.h>

#define PROG "ulfius"

/* libmicrohttpd splits MHD_OPTION_CONNECTION_LIMIT evenly over the pool's threads and
 * the pool's threads accept from one shared socket, so the split is not even: give
 * each thread room for every benchmark connection (12,000) and some to spare. */
#define CONNS_PER_THREAD 16384

/* Both MHD names for "epoll in MHD's own threads"; 0.9.75 has the newer one. */
#ifdef MHD_USE_EPOLL_INTERNAL_THREAD
#define PEER_MHD_FLAGS (MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG)
#else
#define PEER_MHD_FLAGS (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG)
#endif

static int callback_json(const struct _u_request *request, struct _u_response *response,
                         void *user_data)
{
    (void)request;
    (void)user_data;
    json_t *body = json_pack("{s:s}", "message", "Hello, World!");
    if (body == NULL)
        return U_CALLBACK_ERROR;
    /* ulfius_set_json_body_response serialises a copy; the object stays ours. */
    int rc = ulfius_set_json_body_response(response, 200, body);
    json_decref(body);
    return rc == U_OK ? U_CALLBACK_COMPLETE : U_CALLBACK_ERROR;
}

static void usage(void)
{
    fprintf(stderr, "usage: " PROG " --port N [--threads N]\n");
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

static void parse_args(int argc, char **argv, long *port, long *threads)
{
    static const struct option opts[] = {{"port", required_argument, NULL, 'p'},
                                         {"threads", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'p')
            *port = parse_long(optarg, 1, 65535);
        else if (c == 't')
            *threads = parse_long(optarg, 1, 256);
        else
            usage();
    }
    if (optind != argc || *port == 0)
        usage();
}

/* Each held connection is a descriptor: take all the hard limit allows, and say so
 * when that is less than the benchmark needs (the run then shows refused connects). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(stderr, PROG ": getrlimit(RLIMIT_NOFILE): %s\n", strerror(errno));
        return;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        fprintf(stderr, PROG ": setrlimit(RLIMIT_NOFILE): %s\n", strerror(errno));
    else if (rl.rlim_cur < 12100)
        fprintf(stderr, PROG ": warning: only %llu descriptors allowed\n",
                (unsigned long long)rl.rlim_cur);
}

#ifndef ULFIUS_PLAIN_START
/* The list has the structure of Ulfius's own (ulfius_run_mhd_daemon in src/ulfius.c):
 * the two callbacks Ulfius needs to build and free its request, the bind address, then
 * ours. MHD_OPTION_SOCK_ADDR is needed because MHD binds to 0.0.0.0 without it; the
 * address already carries the port. */
static int start(struct _u_instance *instance, long threads)
{
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)mhd_request_completed, NULL},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)ulfius_uri_logger, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, instance->bind_address},
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)threads, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)(threads * CONNS_PER_THREAD), NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    /* MHD copies what it needs from the array while starting, so a local is fine. */
    return ulfius_start_framework_with_mhd_options(instance, PEER_MHD_FLAGS, ops);
}
#else
static int start(struct _u_instance *instance, long threads)
{
    (void)threads;
    return ulfius_start_framework(instance);
}
#endif

/* Signals go to sigwait() in main, never to MHD's threads, which inherit this mask. */
static void block_signals(sigset_t *stop)
{
    sigemptyset(stop);
    sigaddset(stop, SIGINT);
    sigaddset(stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, stop, NULL);
    /* A client that goes away mid-answer must not end the server. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &ign, NULL);
}

int main(int argc, char **argv)
{
    long port = 0, threads = 2;
    parse_args(argc, argv, &port, &threads);
    raise_nofile();

    sigset_t stop;
    block_signals(&stop);

    /* Ulfius borrows the address: it must live as long as the instance. */
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    struct _u_instance instance;
    if (ulfius_init_instance(&instance, (unsigned int)port, &addr, NULL) != U_OK) {
        fprintf(stderr, PROG ": ulfius_init_instance failed\n");
        return 1;
    }
    if (ulfius_add_endpoint_by_val(&instance, "GET", "/json", NULL, 0, &callback_json,
                                   NULL) != U_OK) {
        fprintf(stderr, PROG ": ulfius_add_endpoint_by_val failed\n");
        ulfius_clean_instance(&instance);
        return 1;
    }
    if (start(&instance, threads) != U_OK) {
        fprintf(stderr, PROG ": cannot start on 127.0.0.1:%ld (see libmicrohttpd's "
                        "message above)\n", port);
        ulfius_clean_instance(&instance);
        return 1;
    }
    printf(PROG " listening on 127.0.0.1:%ld\n", port);
    fflush(stdout);

    int sig;
    int rc = sigwait(&stop, &sig);
    if (rc != 0)
        fprintf(stderr, PROG ": sigwait: %s\n", strerror(rc));
    ulfius_stop_framework(&instance);
    ulfius_clean_instance(&instance);
    return rc == 0 ? 0 : 1;
}
