/*
 * libbackend upstream: outbound HTTP calls for blocking contexts (a worker
 * thread, a saga step), guarded by a circuit breaker, a bulkhead, retries with
 * backoff and a deadline, with metrics per upstream.
 *
 *   bk_upstream_opts_t o;
 *   bk_upstream_opts_init(&o);
 *   o.name = "payments";
 *   o.base_url = "http://127.0.0.1:9000";
 *   bk_upstream_t *pay;
 *   bk_upstream_new(&o, &pay);
 *
 *   bk_upstream_request_t rq = {.method = "POST", .path = "/charges",
 *                               .body = json, .body_len = len,
 *                               .idempotency_key = order_id};
 *   bk_upstream_response_t rs;
 *   int rc = bk_upstream_call(pay, &rq, &rs);   (blocks)
 *   ... rs.status, rs.body ...
 *   bk_upstream_response_free(&rs);
 *
 * Layer 2 (libcurl, resilience). One upstream is thread-safe: calls from many
 * threads share its breaker, bulkhead and a pool of connections.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_UPSTREAM_H
#define BACKEND_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <backend/core.h>
#include <backend/metrics.h>
#include <backend/resilience.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bk_upstream bk_upstream_t;

typedef struct bk_upstream_opts {
    const char *name;            /* metrics label and breaker name; required */
    const char *base_url;        /* "http://host:port" the request paths follow; required */
    int64_t connect_timeout_ns;  /* per attempt; default 1 s */
    int64_t timeout_ns;          /* per attempt, whole exchange; default 5 s */
    int64_t deadline_ns;         /* per call, every attempt and wait; default 15 s */
    size_t max_response_bytes;   /* a larger body fails the call (BK_ERANGE); default 8 MiB */
    unsigned max_concurrent;     /* the bulkhead; default 64 */
    int64_t max_wait_ns;         /* how long a call waits for a bulkhead slot; default 0 */
    const bk_breaker_opts_t *breaker; /* NULL = bk_breaker_opts_init defaults; copied
                                         (its name, clock and metrics are the upstream's) */
    const bk_retry_opts_t *retry;     /* NULL = bk_retry_opts_init defaults; copied */
    bk_metrics_t *metrics;       /* NULL = none; borrowed */
    bk_clock_t *clock;           /* breaker, retry schedule, deadline; NULL = system */
} bk_upstream_opts_t;

typedef struct bk_upstream_request {
    const char *method;          /* "GET" when NULL */
    const char *path;            /* appended to base_url; "/" when NULL */
    const char *const *headers;  /* NULL-terminated "Name: value" lines; may be NULL */
    const void *body;
    size_t body_len;
    /* A key that makes a non-idempotent call (POST, PATCH) safe to retry; sent as
     * Idempotency-Key. GET, HEAD, PUT, DELETE and OPTIONS are retried anyway. */
    const char *idempotency_key;
} bk_upstream_request_t;

typedef struct bk_upstream_response {
    int status;          /* the last HTTP status received; 0 if none */
    char *body;          /* NUL-terminated; free with bk_upstream_response_free */
    size_t body_len;
    unsigned attempts;   /* attempts made (0 when refused before any) */
    unsigned connects;   /* new connections opened (0 when all were reused) */
} bk_upstream_response_t;

BK_EXPORT void bk_upstream_opts_init(bk_upstream_opts_t *opts);
BK_EXPORT int bk_upstream_new(const bk_upstream_opts_t *opts, bk_upstream_t **out);
BK_EXPORT void bk_upstream_free(bk_upstream_t *u);

/*
 * Makes the call, blocking: breaker (fail fast when open) -> bulkhead -> attempts
 * with retries. A 5xx answer, a 429, a connection failure or a timeout is a
 * failed attempt (retried when allowed); a 429 does not count against the
 * breaker. *res is always filled; free it with bk_upstream_response_free().
 *
 * BK_OK: an answer below 500 other than 429 (4xx included: check res->status).
 * BK_EUNAVAIL: the breaker is open, or the upstream kept failing (res->status
 * has its last answer, 0 if it never answered). BK_ETIMEDOUT: an attempt timed
 * out last, or the deadline passed. BK_EBUSY: the bulkhead is full or the retry
 * budget is spent. BK_ERANGE: the answer was over max_response_bytes.
 */
BK_EXPORT int bk_upstream_call(bk_upstream_t *u, const bk_upstream_request_t *req,
                               bk_upstream_response_t *res);
BK_EXPORT void bk_upstream_response_free(bk_upstream_response_t *res);
/* The upstream's breaker (for its state, or an operator's force). */
BK_EXPORT bk_breaker_t *bk_upstream_breaker(bk_upstream_t *u);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_UPSTREAM_H */
