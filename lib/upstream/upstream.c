/* Guarded outbound HTTP: libcurl easy handles from a pool (each keeps its
 * connections alive between calls), each attempt under the breaker, the call
 * under the bulkhead, attempts repeated on the retry schedule within the deadline.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include <backend/upstream.h>

#include "core/abi_int.h"
#include "core/error_int.h"
#include "core/slotpool_int.h"

enum { O_SUCCESS, O_FAILURE, O_TIMEOUT, O_REJECTED, O_BUSY, O_COUNT };
static const char *const outcome_names[O_COUNT] = {"success", "failure", "timeout", "rejected",
                                                   "busy"};

struct bk_upstream {
    bk_upstream_opts_t o;
    char *name, *base_url;
    bk_breaker_t *breaker;
    /* The bulkhead and the handle pool in one: max_concurrent slots, each a curl
     * handle (created on first use, kept with its connections), waited for up to
     * max_wait_ns of real time as the bulkhead did. */
    bk__slotpool_t *handles;
    bk_retry_opts_t retry;
    bk_counter_t *calls[O_COUNT];
    bk_histogram_t *duration;
};

/* The handle pool's callbacks: a slot's resource is a curl easy handle. */
static int handle_create(void **res, void *ud, bk_error_t *err)
{
    (void)ud;
    (void)err;
    *res = curl_easy_init();
    return *res != NULL ? BK_OK : BK_ENOMEM;
}

static void handle_close(void *res, void *ud)
{
    (void)ud;
    curl_easy_cleanup(res);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void bk_upstream_opts_init(bk_upstream_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->connect_timeout_ns = 1 * BK_NSEC_PER_SEC;
    o->timeout_ns = 5 * BK_NSEC_PER_SEC;
    o->deadline_ns = 15 * BK_NSEC_PER_SEC;
    o->max_response_bytes = 8u << 20;
    o->max_concurrent = 64;
}
BK__ASSERT_ABI_SIZE(bk_upstream_opts_t, 144);
BK__ASSERT_ABI_SIZE(bk_upstream_request_t, 112);
BK__ASSERT_ABI_SIZE(bk_upstream_response_t, 96);

/* Transport errors, timeouts and error answers are worth another attempt; an
 * oversized answer (BK_ERANGE until the call ends) or a bad request is not. */
static bool upstream_retryable(int status, void *ud)
{
    (void)ud;
    return status == BK_EUNAVAIL || status == BK_ETIMEDOUT || status == BK_EUPSTREAM;
}

static int metrics_init(bk_upstream_t *u)
{
    bk_metric_t *fam;
    int rc = bk_metrics_counter(u->o.metrics, "upstream_calls_total",
                                "Outbound calls by upstream and outcome.",
                                (const char *[]){"name", "outcome", NULL}, &fam);
    for (int i = 0; rc == BK_OK && i < O_COUNT; i++)
        rc = bk_metric_counter(fam, (const char *[]){u->name, outcome_names[i], NULL}, &u->calls[i]);
    if (rc == BK_OK)
        rc = bk_metrics_histogram(u->o.metrics, "upstream_call_duration_seconds",
                                  "Outbound call time, retries and waits included.",
                                  (const char *[]){"name", NULL}, NULL, 0, &fam);
    if (rc == BK_OK)
        rc = bk_metric_histogram(fam, (const char *[]){u->name, NULL}, &u->duration);
    return rc;
}

/* Why base_url cannot be used, or NULL. libcurl parses it as it will parse the
 * request URLs; the URL itself is never quoted back (it may carry a password). */
static const char *base_url_problem(const char *base_url)
{
    if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0)
        return "its scheme is not http:// or https://";
    CURLU *url = curl_url();
    if (url == NULL)
        return "out of memory";
    CURLUcode uc = curl_url_set(url, CURLUPART_URL, base_url, 0);
    char *query = NULL;
    if (uc == CURLUE_OK && curl_url_get(url, CURLUPART_QUERY, &query, 0) == CURLUE_OK) {
        curl_free(query);
        curl_url_cleanup(url);
        return "it has a query, which the request paths would follow";
    }
    curl_url_cleanup(url);
    if (uc != CURLUE_OK)
        return curl_url_strerror(uc);
    if (strpbrk(base_url, " \r\n#") != NULL)
        return "it has a space, a line break or a fragment";
    return NULL;
}

static int check_opts(const char *name, const char *base_url, const bk_upstream_opts_t *o,
                      bk_error_t *err)
{
    if (name == NULL || *name == '\0')
        return bk__error(err, BK_EINVAL, "an upstream needs a name");
    if (base_url == NULL)
        return bk__error(err, BK_EINVAL, "upstream %s: no base URL", name);
    const char *why = base_url_problem(base_url);
    if (why != NULL)
        return bk__error(err, BK_EINVAL, "upstream %s: bad base URL: %s", name, why);
    const char *bad = o->connect_timeout_ns <= 0 ? "connect_timeout_ns"
                      : o->timeout_ns <= 0       ? "timeout_ns"
                      : o->deadline_ns <= 0      ? "deadline_ns"
                      : o->max_response_bytes == 0 ? "max_response_bytes"
                      : o->max_concurrent == 0   ? "max_concurrent"
                      : o->max_wait_ns < 0       ? "max_wait_ns"
                                                 : NULL;
    if (bad != NULL)
        return bk__error(err, BK_EINVAL, "upstream %s: option %s out of range", name, bad);
    return BK_OK;
}

int bk_upstream_new(const char *name, const char *base_url, const bk_upstream_opts_t *opts,
                    bk_upstream_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (out == NULL)
        return bk__error(err, BK_EINVAL, "no place for the upstream (out is NULL)");
    *out = NULL;
    bk_upstream_opts_t defaults;
    if (opts == NULL) {
        bk_upstream_opts_init(&defaults);
        opts = &defaults;
    }
    const bk_upstream_opts_t *o = opts;
    int rc = check_opts(name, base_url, o, err);
    if (rc != BK_OK)
        return rc;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return bk__error(err, BK_ESYS, "curl_global_init: %s", curl_easy_strerror(curl_init_rc));

    bk_upstream_t *u = calloc(1, sizeof *u);
    if (u == NULL)
        return bk__error(err, BK_ENOMEM, NULL);
    u->o = *o;
    u->name = strdup(name);
    u->base_url = strdup(base_url);
    rc = u->name && u->base_url ? BK_OK : BK_ENOMEM;

    bk_breaker_opts_t bo;
    if (o->breaker != NULL)
        bo = *o->breaker;
    else
        bk_breaker_opts_init(&bo);
    bo.name = u->name;
    bo.clock = o->clock;
    bo.metrics = o->metrics;
    if (rc == BK_OK)
        rc = bk_breaker_new(&bo, &u->breaker);
    bk__slotpool_opts_t po = {.size = o->max_concurrent};
    bk__slotpool_ops_t ops = {.create = handle_create, .close = handle_close};
    if (rc == BK_OK)
        rc = bk__slotpool_new(&po, &ops, &u->handles, NULL);
    if (o->retry != NULL)
        u->retry = *o->retry;
    else
        bk_retry_opts_init(&u->retry);
    u->retry.clock = o->clock;
    u->retry.deadline_ns = o->deadline_ns;
    if (u->retry.retryable == NULL)
        u->retry.retryable = upstream_retryable;
    bk_retry_t probe; /* bad retry options fail here, not on every call */
    if (rc == BK_OK)
        rc = bk_retry_begin(&probe, &u->retry, true, 1);
    if (rc == BK_OK && o->metrics != NULL)
        rc = metrics_init(u);
    if (rc != BK_OK) {
        bk_upstream_free(u);
        return rc == BK_EINVAL ? bk__error(err, rc, "upstream %s: bad breaker or retry options", name)
                               : bk__error(err, rc, "upstream %s: %s", name, bk_strerror(rc));
    }
    *out = u;
    return BK_OK;
}

void bk_upstream_free(bk_upstream_t *u)
{
    if (u == NULL)
        return;
    bk__slotpool_free(u->handles);
    bk_breaker_free(u->breaker);
    free(u->name);
    free(u->base_url);
    free(u);
}

bk_breaker_t *bk_upstream_breaker(bk_upstream_t *u)
{
    return u ? u->breaker : NULL;
}

void bk_upstream_response_free(bk_upstream_response_t *res)
{
    if (res == NULL)
        return;
    free(res->body);
    res->body = NULL;
    res->body_len = 0;
}

/* ------------------------------------------------------------------ one attempt */
struct sink {
    char *buf;
    size_t len, cap, max;
    bool too_big, no_memory;
    int64_t retry_after_ns;
    char errbuf[CURL_ERROR_SIZE]; /* libcurl's words on the last attempt's failure */
};

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t len = size * n;
    if (len > s->max - s->len) {
        s->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (s->len + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->len + len + 1)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (b == NULL) {
            s->no_memory = true;
            return 0;
        }
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    s->buf[s->len] = '\0';
    return len;
}

/* Retry-After in seconds (the HTTP-date form is left to the schedule). */
static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t len = size * n;
    if (len > 12 && strncasecmp(line, "Retry-After:", 12) == 0) {
        long long secs = 0;
        size_t i = 12;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        size_t digits = 0;
        for (; i < len && line[i] >= '0' && line[i] <= '9' && digits < 9; i++, digits++)
            secs = secs * 10 + (line[i] - '0');
        if (digits > 0)
            s->retry_after_ns = (int64_t)secs * BK_NSEC_PER_SEC;
    }
    return len;
}

static bool method_idempotent(const char *m)
{
    static const char *const safe[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        if (strcmp(m, safe[i]) == 0)
            return true;
    return false;
}

/* One exchange. Returns the attempt's status and how the breaker should see it. */
static int attempt(bk_upstream_t *u, CURL *h, const bk_upstream_request_t *rq,
                   struct curl_slist *hdrs, const char *url, int64_t timeout_ns,
                   bk_upstream_response_t *res, struct sink *sink, bk_outcome_t *outcome)
{
    const char *method = rq->method ? rq->method : "GET";
    curl_easy_reset(h); /* options only: live connections stay */
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    long ms = (long)((timeout_ns + BK_NSEC_PER_MSEC - 1) / BK_NSEC_PER_MSEC);
    long cms = (long)((u->o.connect_timeout_ns + BK_NSEC_PER_MSEC - 1) / BK_NSEC_PER_MSEC);
    if (ms < 1)
        ms = 1;
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, cms < ms ? cms : ms);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, sink);
    sink->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, sink->errbuf);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (rq->body != NULL || strcmp(method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? (const char *)rq->body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        }
    }
    sink->len = 0; /* each attempt's answer replaces the previous one */
    if (sink->buf != NULL)
        sink->buf[0] = '\0';
    sink->too_big = sink->no_memory = false;
    sink->retry_after_ns = 0;
    CURLcode cc = curl_easy_perform(h);
    long connects = 0, code = 0;
    curl_off_t pretransfer = 0;
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(h, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
    res->connects += (unsigned)connects;
    res->attempts++;
    /* Connected, then no whole answer: the request may have been read and
     * acted on (a failure to connect sent nothing). */
    if (cc != CURLE_OK && !sink->too_big && pretransfer > 0)
        res->unanswered++;
    if (code != 0)
        res->status = (int)code; /* the last status received, kept over a later failure */
    if (sink->no_memory || cc == CURLE_OUT_OF_MEMORY) {
        *outcome = BK_OUTCOME_IGNORED; /* our shortage, not the upstream's fault */
        return BK_ENOMEM;
    }
    if (sink->too_big) {
        /* The upstream answered; the answer is ours to refuse. BK_ERANGE, not
         * retried, until the call ends: then BK_EUPSTREAM, an upstream's bad answer. */
        *outcome = BK_OUTCOME_SUCCESS;
        return BK_ERANGE;
    }
    if (cc != CURLE_OK && sink->errbuf[0] == '\0')
        snprintf(sink->errbuf, sizeof sink->errbuf, "%s", curl_easy_strerror(cc));
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        *outcome = BK_OUTCOME_FAILURE;
        return BK_ETIMEDOUT;
    }
    if (cc != CURLE_OK) {
        *outcome = BK_OUTCOME_FAILURE;
        return BK_EUNAVAIL; /* never reached it, or lost it: unreachable */
    }
    if (code == 429) {
        *outcome = BK_OUTCOME_IGNORED; /* asked to slow down: not broken */
        return BK_EUPSTREAM;
    }
    if (code >= 500) {
        *outcome = BK_OUTCOME_FAILURE;
        return BK_EUPSTREAM;
    }
    *outcome = BK_OUTCOME_SUCCESS;
    return BK_OK;
}

static void count(bk_upstream_t *u, int which)
{
    if (u->calls[which] != NULL)
        bk_counter_inc(u->calls[which]);
}

/* Appends "name: value" to *l; false on ENOMEM (then *l is freed). The
 * callers' lines are short: an idempotency key's at most 511 bytes, a
 * tracestate's at most BK_TRACESTATE_MAX + 12. */
static bool append_header(struct curl_slist **l, const char *name, const char *value)
{
    char line[1024];
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *n = curl_slist_append(*l, line);
    if (n == NULL) {
        curl_slist_free_all(*l);
        *l = NULL;
        return false;
    }
    *l = n;
    return true;
}

/* The call as a child span of rq->trace: traceparent and tracestate. */
static int trace_headers(const bk_upstream_request_t *rq, struct curl_slist **l, bk_error_t *err)
{
    bk_trace_t child;
    char parent[BK_TRACEPARENT_LEN + 1];
    const char *st = rq->trace->state;
    size_t n = strnlen(st, sizeof rq->trace->state);
    bool printable = n < sizeof rq->trace->state;
    for (size_t i = 0; printable && i < n; i++)
        printable = st[i] >= 0x20 && st[i] <= 0x7e;
    if (!printable || bk_trace_child(rq->trace, &child) != BK_OK ||
        bk_trace_format(&child, parent, sizeof parent) != BK_OK) {
        curl_slist_free_all(*l);
        *l = NULL;
        return bk__error(err, BK_EINVAL, "the request's trace is not a valid one");
    }
    if (!append_header(l, "traceparent", parent) || (child.state[0] && !append_header(l, "tracestate", child.state)))
        return bk__error(err, BK_ENOMEM, NULL);
    return BK_OK;
}

static bool names_trace(const char *h)
{
    return strncasecmp(h, "traceparent:", 12) == 0 || strncasecmp(h, "tracestate:", 11) == 0;
}

/* Request headers: the caller's, the trace's, Idempotency-Key, and no "Expect:
 * 100-continue" (one more round trip for nothing on a trusted upstream). */
static int build_headers(const bk_upstream_request_t *rq, const char *key, struct curl_slist **out,
                         bk_error_t *err)
{
    struct curl_slist *l = curl_slist_append(NULL, "Expect:");
    for (const char *const *h = rq->headers; l != NULL && h != NULL && *h != NULL; h++) {
        if (strpbrk(*h, "\r\n") != NULL) {
            curl_slist_free_all(l);
            /* no header injection through a value */
            return bk__error(err, BK_EINVAL, "request header %u has a line break",
                             (unsigned)(h - rq->headers));
        }
        if (rq->trace != NULL && names_trace(*h)) {
            curl_slist_free_all(l);
            return bk__error(err, BK_EINVAL, "request header %u is a trace header, and the request has a trace",
                             (unsigned)(h - rq->headers));
        }
        struct curl_slist *n = curl_slist_append(l, *h);
        if (n == NULL) {
            curl_slist_free_all(l);
            return BK_ENOMEM;
        }
        l = n;
    }
    if (l != NULL && rq->trace != NULL) {
        int rc = trace_headers(rq, &l, err);
        if (rc != BK_OK)
            return rc;
    }
    if (l != NULL && key != NULL) {
        /* no header injection, no truncated key: the line within 511 bytes */
        if (strpbrk(key, "\r\n") != NULL || strlen("Idempotency-Key: ") + strlen(key) > 511) {
            curl_slist_free_all(l);
            return bk__error(err, BK_EINVAL, "the idempotency key is too long or has a line break");
        }
        if (!append_header(&l, "Idempotency-Key", key))
            return BK_ENOMEM;
    }
    *out = l;
    return l ? BK_OK : bk__error(err, BK_ENOMEM, NULL);
}

/* The request is checked whole before anything else: bad input is the caller's
 * error, never counted against the upstream. */
static int check_request(const bk_upstream_request_t *rq, const char *method, const char *path,
                         bk_error_t *err)
{
    if (*method == '\0' || strpbrk(method, " \r\n") != NULL)
        return bk__error(err, BK_EINVAL, "the request method is empty or has a space");
    if (*path != '/' || strpbrk(path, " \r\n") != NULL)
        return bk__error(err, BK_EINVAL, "the request path does not start with / or has a space");
    if (rq->body == NULL && rq->body_len > 0)
        return bk__error(err, BK_EINVAL, "the request has a body length but no body");
    return BK_OK;
}

/* What a failed call has to say: which upstream, what happened, after how many
 * attempts; libcurl's text for a transport failure (message and detail). */
static int explain(const bk_upstream_t *u, int rc, const bk_upstream_response_t *res,
                   const struct sink *sink, bool breaker_open, bk_error_t *err)
{
    const char *n = u->name;
    unsigned a = res->attempts;
    switch (rc) {
    case BK_EUNAVAIL:
        if (breaker_open)
            return bk__error(err, rc, "upstream %s: circuit breaker %s after %u attempts", n,
                             bk_breaker_state_name(bk_breaker_state(u->breaker)), a);
        bk__error(err, rc, "upstream %s unreachable after %u attempts: %s", n, a, sink->errbuf);
        break;
    case BK_EUPSTREAM:
        if (sink->too_big)
            return bk__error(err, rc, "upstream %s answered more than %zu bytes", n,
                             u->o.max_response_bytes);
        return bk__error(err, rc, "upstream %s answered HTTP %d after %u attempts", n, res->status, a);
    case BK_ETIMEDOUT:
        if (sink->errbuf[0] == '\0')
            return bk__error(err, rc, "upstream %s: the call's deadline of %lld ms passed after %u attempts",
                             n, (long long)(u->o.deadline_ns / BK_NSEC_PER_MSEC), a);
        bk__error(err, rc, "upstream %s: attempt %u timed out: %s", n, a, sink->errbuf);
        break;
    case BK_EBUSY:
        if (a == 0)
            return bk__error(err, rc, "upstream %s: all %u slots in use", n, u->o.max_concurrent);
        return bk__error(err, rc, "upstream %s: retry budget spent after %u attempts", n, a);
    default:
        return bk__error(err, rc, "upstream %s: %s", n, bk_strerror(rc));
    }
    if (err != NULL)
        bk__error_field(err->detail, sizeof err->detail, sink->errbuf);
    return rc;
}

/* Every response has a body string, empty when nothing was received. */
static int finish(bk_upstream_response_t *res, struct sink *sink, int rc, bk_error_t *err)
{
    res->body = sink->buf ? sink->buf : calloc(1, 1);
    res->body_len = sink->buf ? sink->len : 0;
    return res->body == NULL && rc == BK_OK ? bk__error(err, BK_ENOMEM, NULL) : rc;
}

int bk_upstream_call(bk_upstream_t *u, const bk_upstream_request_t *rq, bk_upstream_response_t *res,
                     bk_error_t *err)
{
    bk__error_clear(err);
    if (res != NULL)
        memset(res, 0, sizeof *res);
    if (u == NULL || rq == NULL || res == NULL)
        return bk__error(err, BK_EINVAL, "no upstream, request or response");
    struct sink sink = {.max = u->o.max_response_bytes};
    const char *method = rq->method ? rq->method : "GET";
    const char *path = rq->path ? rq->path : "/";
    /* An empty key would be dropped by libcurl: a POST retried with no key at all. */
    const char *key = rq->idempotency_key && *rq->idempotency_key ? rq->idempotency_key : NULL;
    struct curl_slist *hdrs = NULL;
    char *url = NULL;
    int rc = check_request(rq, method, path, err);
    if (rc == BK_OK)
        rc = build_headers(rq, key, &hdrs, err);
    if (rc == BK_OK && (url = malloc(strlen(u->base_url) + strlen(path) + 1)) == NULL)
        rc = bk__error(err, BK_ENOMEM, NULL);
    if (rc != BK_OK) {
        curl_slist_free_all(hdrs);
        return finish(res, &sink, rc, err);
    }
    strcpy(url, u->base_url);
    strcat(url, path);

    /* The deadline and the retry schedule start now, bulkhead wait included. */
    int64_t t0 = bk_clock_mono_ns(u->o.clock);
    bk_retry_t retry;
    rc = bk_retry_begin(&retry, &u->retry, method_idempotent(method) || key != NULL, 0);
    /* The breaker first: while it is open a call costs no request and no slot. */
    bk_breaker_permit_t permit;
    unsigned slot;
    void *handle = NULL;
    int pooled = BK_OK;
    bool refused = false; /* by the breaker */
    if (rc == BK_OK && bk_breaker_acquire(u->breaker, &permit) != BK_OK) {
        count(u, O_REJECTED);
        rc = BK_EUNAVAIL;
        refused = true;
    } else if (rc == BK_OK &&
               (pooled = bk__slotpool_acquire(u->handles, u->o.max_wait_ns, &slot, &handle, NULL)) != BK_OK &&
               pooled != BK_ENOMEM) {
        bk_breaker_record(u->breaker, &permit, BK_OUTCOME_IGNORED, 0);
        count(u, O_BUSY);
        rc = BK_EBUSY; /* full for max_wait_ns: as the bulkhead said */
    } else if (rc == BK_OK) {
        /* BK_ENOMEM: a slot, but no memory for its new handle (the slot went back). */
        rc = pooled;
        CURL *h = handle;
        if (h == NULL)
            bk_breaker_record(u->breaker, &permit, BK_OUTCOME_IGNORED, 0);
        while (h != NULL) {
            int64_t start = bk_clock_mono_ns(u->o.clock);
            int64_t left = t0 + u->o.deadline_ns - start;
            if (left < BK_NSEC_PER_MSEC) {
                bk_breaker_record(u->breaker, &permit, BK_OUTCOME_IGNORED, 0);
                rc = BK_ETIMEDOUT; /* no time left for an attempt */
                sink.errbuf[0] = '\0'; /* the deadline, not an attempt, ended it */
                break;
            }
            int64_t timeout = u->o.timeout_ns < left ? u->o.timeout_ns : left;
            bk_outcome_t outcome;
            rc = attempt(u, h, rq, hdrs, url, timeout, res, &sink, &outcome);
            bk_breaker_record(u->breaker, &permit, outcome, bk_clock_mono_ns(u->o.clock) - start);
            int64_t delay;
            int attempt_rc = rc;
            if (!bk_retry_next(&retry, &rc, sink.retry_after_ns, &delay)) {
                if (rc == BK_ETIMEDOUT && attempt_rc != BK_ETIMEDOUT)
                    sink.errbuf[0] = '\0'; /* the deadline, not an attempt, ended it */
                break;
            }
            bk_clock_sleep_ns(u->o.clock, delay);
            /* Each attempt asks the breaker again: one that opened meanwhile ends it. */
            if (bk_breaker_acquire(u->breaker, &permit) != BK_OK) {
                rc = BK_EUNAVAIL;
                refused = true;
                break;
            }
        }
        if (rc == BK_ERANGE && sink.too_big)
            rc = BK_EUPSTREAM; /* an answer over max_response_bytes: a bad answer */
        if (h != NULL)
            bk__slotpool_release(u->handles, slot, false);
        if (rc == BK_ETIMEDOUT)
            count(u, O_TIMEOUT);
        else
            count(u, rc == BK_OK ? O_SUCCESS : rc == BK_EBUSY ? O_BUSY : O_FAILURE);
        if (u->duration != NULL)
            bk_histogram_observe(u->duration, (double)(bk_clock_mono_ns(u->o.clock) - t0) / 1e9);
    }
    curl_slist_free_all(hdrs);
    free(url);
    if (rc != BK_OK)
        explain(u, rc, res, &sink, refused, err);
    return finish(res, &sink, rc, err);
}
