/*
 * libbackend upstream: outbound HTTP calls for blocking contexts (a worker
 * thread, a saga step), guarded by a circuit breaker, a bulkhead, retries with
 * backoff and a deadline, with metrics per upstream.
 *
 *   bk_upstream_t *pay;
 *   bk_error_t err;
 *   if (bk_upstream_new("payments", "http://127.0.0.1:9000", NULL, &pay, &err) != BK_OK)
 *       ... err.message ...
 *
 *   bk_upstream_request_t rq = {.method = "POST", .path = "/charges",
 *                               .body = json, .body_len = len,
 *                               .idempotency_key = order_id};
 *   bk_upstream_response_t rs;
 *   int rc = bk_upstream_call(pay, &rq, &rs, &err);   (blocks)
 *   ... rs.status, rs.body; on failure bk_http_status_of(rc), err.message ...
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
    int64_t connect_timeout_ns;  /* per attempt; default 1 s */
    int64_t timeout_ns;          /* per attempt, whole exchange; default 5 s */
    int64_t deadline_ns;         /* per call, every attempt and wait; default 15 s */
    size_t max_response_bytes;   /* a larger body fails the call (BK_EUPSTREAM); default 8 MiB */
    unsigned max_concurrent;     /* the bulkhead; default 64 */
    int64_t max_wait_ns;         /* how long a call waits for a bulkhead slot; default 0 */
    const bk_breaker_opts_t *breaker; /* NULL = bk_breaker_opts_init defaults; copied
                                         (its name, clock and metrics are the upstream's) */
    const bk_retry_opts_t *retry;     /* NULL = bk_retry_opts_init defaults; copied. Its
                                         retryable (NULL: the first three) sees an
                                         attempt's BK_EUNAVAIL, BK_ETIMEDOUT,
                                         BK_EUPSTREAM, or BK_ERANGE (answer too large) */
    bk_metrics_t *metrics;       /* NULL = none; borrowed */
    bk_clock_t *clock;           /* breaker, retry schedule, deadline; NULL = system; borrowed */
    uint64_t reserved_[8];       /* zeroed by bk_upstream_opts_init: room to grow (HACKING.md) */
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
    /* The span this call is made from (bk_req_trace(req) in a handler): the
     * call is a child span of it, sent as traceparent (and tracestate when it
     * has one); its headers must then carry neither. NULL: none sent. Borrowed
     * for the call. */
    const bk_trace_t *trace;
    uint64_t reserved_[7];       /* zero (a designated initializer): room to grow (HACKING.md) */
} bk_upstream_request_t;

typedef struct bk_upstream_response {
    int status;          /* the last HTTP status received; 0 if none */
    char *body;          /* NUL-terminated; free with bk_upstream_response_free */
    size_t body_len;
    unsigned attempts;   /* attempts made (0 when refused before any) */
    unsigned connects;   /* new connections opened (0 when all were reused) */
    unsigned unanswered; /* attempts sent that got no answer (a timeout or a lost
                            connection once connected): the service may have acted
                            on them, so a failed call's effect is unknown */
    unsigned reserved_u_;  /* zero */
    uint64_t reserved_[7]; /* zeroed by bk_upstream_call (the caller allocates it) */
} bk_upstream_response_t;

BK_EXPORT void bk_upstream_opts_init(bk_upstream_opts_t *opts);
/*
 * name: the metrics label and breaker name (copied); base_url: "http://host:port"
 * or "https://...", which the request paths follow (copied). opts NULL: the
 * defaults. BK_EINVAL (err says which input is wrong), BK_ENOMEM, BK_ESYS, BK_EEXIST.
 */
BK_EXPORT int bk_upstream_new(const char *name, const char *base_url, const bk_upstream_opts_t *opts,
                              bk_upstream_t **out, bk_error_t *err);
BK_EXPORT void bk_upstream_free(bk_upstream_t *u);

/*
 * Makes the call, blocking: breaker (fail fast when open) -> bulkhead -> attempts
 * with retries. A 5xx answer, a 429, a connection failure or a timeout is a
 * failed attempt (retried when allowed); a 429 does not count against the
 * breaker. *res is always filled; free it with bk_upstream_response_free().
 *
 * Each code is what bk_http_status_of turns into the right answer for the caller's
 * own client:
 * BK_OK: an answer below 500 other than 429 (4xx included: check res->status).
 * BK_EUNAVAIL (503): the breaker is open, or the upstream could not be reached
 * (no connection; err->detail has libcurl's text). BK_EUPSTREAM (502): the
 * upstream answered, but with an error (a 5xx or a 429 after the retries; an
 * answer over max_response_bytes); res->status has the last status.
 * BK_ETIMEDOUT (504): an attempt timed out last, or the deadline passed.
 * BK_EBUSY (503): the bulkhead is full or the retry budget is spent.
 * BK_EINVAL: a bad request (never sent). err (NULL allowed) says which, in a
 * sentence naming the upstream.
 */
BK_EXPORT int bk_upstream_call(bk_upstream_t *u, const bk_upstream_request_t *req,
                               bk_upstream_response_t *res, bk_error_t *err);
BK_EXPORT void bk_upstream_response_free(bk_upstream_response_t *res);
/* The upstream's breaker (for its state, or an operator's force). */
BK_EXPORT bk_breaker_t *bk_upstream_breaker(bk_upstream_t *u);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_UPSTREAM_H */
