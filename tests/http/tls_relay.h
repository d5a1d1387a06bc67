/* A TLS client relay for tests: a plain TCP port on 127.0.0.1 whose every
 * connection is carried over TLS to a server's port, byte for byte, half-closes
 * included (the client's FIN becomes a close_notify, the server's end our FIN),
 * so that a suite written for plain sockets runs unchanged over TLS.
 * Header-only; one thread per connection, each joined (and its sockets
 * closed) by bkt_relay_stop, so that nothing of it outlives the test. The
 * server's certificate is not verified: the suite tests the server, not the
 * client.
 * SPDX-License-Identifier: MIT */
#ifndef BK_TESTS_TLS_RELAY_H
#define BK_TESTS_TLS_RELAY_H

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#define BKT_RELAY_CONNS 512

struct bkt_relay;

struct bkt__relay_conn {
    struct bkt_relay *r;
    int a, b; /* the suite's plain connection, and ours to the server (-1: none yet) */
    pthread_t th;
};

struct bkt_relay {
    int lfd;
    uint16_t port;   /* where the suite connects */
    uint16_t target; /* the TLS server */
    SSL_CTX *ctx;
    pthread_t th;
    pthread_mutex_t mu; /* conns, n */
    struct bkt__relay_conn conns[BKT_RELAY_CONNS];
    size_t n;
};

static inline int bkt__relay_dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static inline void *bkt__relay_pipe(void *arg)
{
    struct bkt__relay_conn *c = arg;
    int a = c->a, b = bkt__relay_dial(c->r->target);
    pthread_mutex_lock(&c->r->mu);
    c->b = b;
    pthread_mutex_unlock(&c->r->mu);
    SSL *ssl = b >= 0 ? SSL_new(c->r->ctx) : NULL;
    bool a_open = true, b_open = true;
    if (ssl == NULL || SSL_set_fd(ssl, b) != 1 || SSL_connect(ssl) != 1)
        a_open = b_open = false;
    char buf[16384];
    while (a_open || b_open) {
        if (b_open && SSL_pending(ssl) == 0) {
            struct pollfd p[2] = {{a, a_open ? POLLIN : 0, 0}, {b, POLLIN, 0}};
            if (poll(p, 2, -1) < 0)
                break;
            if (a_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t n = recv(a, buf, sizeof buf, 0);
                if (n > 0) {
                    if (SSL_write(ssl, buf, (int)n) != (int)n)
                        break;
                } else if (n == 0) {
                    a_open = false;
                    SSL_shutdown(ssl); /* the client's half-close, as TLS says it */
                } else {
                    break; /* reset */
                }
            }
            if (!(p[1].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
        } else if (!b_open) {
            /* The server is done; the suite's side drains until it closes. */
            ssize_t n = recv(a, buf, sizeof buf, 0);
            if (n <= 0)
                break;
            continue;
        }
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n > 0) {
            if (send(a, buf, (size_t)n, MSG_NOSIGNAL) != n)
                break;
        } else {
            int e = SSL_get_error(ssl, n);
            if (e == SSL_ERROR_WANT_READ)
                continue;
            b_open = false;
            shutdown(a, SHUT_WR); /* the server's end, as TCP says it */
            if (!a_open)
                break;
        }
    }
    /* The sockets stay open until bkt_relay_stop, which closes them once this
     * thread is joined: a number is never reused while the stop may shut it. */
    shutdown(a, SHUT_RDWR);
    if (ssl != NULL)
        SSL_free(ssl);
    return NULL;
}

static inline void *bkt__relay_accept(void *arg)
{
    struct bkt_relay *r = arg;
    for (;;) {
        int a = accept(r->lfd, NULL, NULL);
        if (a < 0)
            return NULL; /* bkt_relay_stop shut the listener */
        int one = 1;
        setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_mutex_lock(&r->mu);
        struct bkt__relay_conn *c = r->n < BKT_RELAY_CONNS ? &r->conns[r->n] : NULL;
        if (c != NULL) {
            c->r = r;
            c->a = a;
            c->b = -1;
            if (pthread_create(&c->th, NULL, bkt__relay_pipe, c) == 0)
                r->n++;
            else
                c = NULL;
        }
        pthread_mutex_unlock(&r->mu);
        if (c == NULL)
            close(a);
    }
}

/* 0, or -1. */
static inline int bkt_relay_start(struct bkt_relay *r, uint16_t target)
{
    memset(r, 0, sizeof *r);
    r->target = target;
    pthread_mutex_init(&r->mu, NULL);
    /* OpenSSL writes with write(2): a server that closed first must not kill
     * the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    r->ctx = SSL_CTX_new(TLS_client_method());
    /* A read that meets a record with no data (TLS 1.3 session tickets) must
     * come back, not block for data the server will only send once the rest
     * of the request, still on our side, has gone out. */
    if (r->ctx != NULL)
        SSL_CTX_clear_mode(r->ctx, SSL_MODE_AUTO_RETRY);
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (r->ctx == NULL || r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(r->lfd, 128) != 0 || getsockname(r->lfd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    r->port = ntohs(sa.sin_port);
    return pthread_create(&r->th, NULL, bkt__relay_accept, r) == 0 ? 0 : -1;
}

/* Stops accepting, ends every connection still carried, joins the threads and
 * frees everything. */
static inline void bkt_relay_stop(struct bkt_relay *r)
{
    shutdown(r->lfd, SHUT_RDWR);
    pthread_join(r->th, NULL);
    close(r->lfd);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        shutdown(r->conns[i].a, SHUT_RDWR);
        if (r->conns[i].b >= 0)
            shutdown(r->conns[i].b, SHUT_RDWR);
    }
    size_t n = r->n;
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        pthread_join(r->conns[i].th, NULL);
        close(r->conns[i].a);
        if (r->conns[i].b >= 0)
            close(r->conns[i].b);
    }
    SSL_CTX_free(r->ctx);
    pthread_mutex_destroy(&r->mu);
}

#endif
