/* Guarded outbound HTTP: libcurl easy handles from a pool (each keeps its
 * connections alive between calls), each attempt under the breaker, the call
 * under the bulkhead, attempts repeated on the retry schedule within the deadline.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include <backend/upstream.h>

enum { O_SUCCESS, O_FAILURE, O_TIMEOUT, O_REJECTED, O_BUSY, O_COUNT };
static const char *const outcome_names[O_COUNT] = {"success", "failure", "timeout", "rejected",
                                                   "busy"};

struct bk_upstream {
    bk_upstream_opts_t o;
    char *name, *base_url;
    bk_breaker_t *breaker;
    bk_bulkhead_t *bulkhead;
    bk_retry_opts_t retry;
    pthread_mutex_t mu; /* the handle pool */
    CURL **idle;
    size_t nidle;
    bk_counter_t *calls[O_COUNT];
    bk_histogram_t *duration;
};

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

/* Transport errors and timeouts are worth another attempt; an oversized answer
 * or a bad request is not. */
static bool upstream_retryable(void *ud, int status)
{
    (void)ud;
    return status == BK_EUNAVAIL || status == BK_ETIMEDOUT;
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

int bk_upstream_new(const bk_upstream_opts_t *opts, bk_upstream_t **out)
{
    if (out == NULL)
        return BK_EINVAL;
    *out = NULL;
    const bk_upstream_opts_t *o = opts;
    if (o == NULL || o->name == NULL || *o->name == '\0' || o->base_url == NULL ||
        (strncmp(o->base_url, "http://", 7) != 0 && strncmp(o->base_url, "https://", 8) != 0) ||
        o->connect_timeout_ns <= 0 || o->timeout_ns <= 0 || o->deadline_ns <= 0 ||
        o->max_response_bytes == 0 || o->max_concurrent == 0 || o->max_wait_ns < 0)
        return BK_EINVAL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return BK_ESYS;

    bk_upstream_t *u = calloc(1, sizeof *u);
    if (u == NULL)
        return BK_ENOMEM;
    u->o = *o;
    pthread_mutex_init(&u->mu, NULL);
    u->name = strdup(o->name);
    u->base_url = strdup(o->base_url);
    u->idle = calloc(o->max_concurrent, sizeof *u->idle);
    int rc = u->name && u->base_url && u->idle ? BK_OK : BK_ENOMEM;

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
    if (rc == BK_OK)
        rc = bk_bulkhead_new(o->max_concurrent, o->max_wait_ns, &u->bulkhead);
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
        return rc;
    }
    u->o.name = u->name;
    u->o.base_url = u->base_url;
    *out = u;
    return BK_OK;
}

void bk_upstream_free(bk_upstream_t *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < u->nidle; i++)
        curl_easy_cleanup(u->idle[i]);
    free(u->idle);
    bk_breaker_free(u->breaker);
    bk_bulkhead_free(u->bulkhead);
    pthread_mutex_destroy(&u->mu);
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

/* ------------------------------------------------------------------ handles */
/* A handle from the pool (its connections still open), or a new one. The pool
 * never holds more than max_concurrent: the bulkhead bounds the handles in use. */
static CURL *handle_get(bk_upstream_t *u)
{
    pthread_mutex_lock(&u->mu);
    CURL *h = u->nidle > 0 ? u->idle[--u->nidle] : NULL;
    pthread_mutex_unlock(&u->mu);
    return h ? h : curl_easy_init();
}

static void handle_put(bk_upstream_t *u, CURL *h)
{
    pthread_mutex_lock(&u->mu);
    if (u->nidle < u->o.max_concurrent) {
        u->idle[u->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&u->mu);
    if (h != NULL)
        curl_easy_cleanup(h);
}

/* ------------------------------------------------------------------ one attempt */
struct sink {
    char *buf;
    size_t len, cap, max;
    bool too_big, no_memory;
    int64_t retry_after_ns;
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
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    res->connects += (unsigned)connects;
    res->attempts++;
    if (code != 0)
        res->status = (int)code; /* the last status received, kept over a later failure */
    if (sink->no_memory || cc == CURLE_OUT_OF_MEMORY) {
        *outcome = BK_OUTCOME_IGNORED; /* our shortage, not the upstream's fault */
        return BK_ENOMEM;
    }
    if (sink->too_big) {
        *outcome = BK_OUTCOME_SUCCESS; /* the upstream answered; the answer is ours to refuse */
        return BK_ERANGE;
    }
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        *outcome = BK_OUTCOME_FAILURE;
        return BK_ETIMEDOUT;
    }
    if (cc != CURLE_OK) {
        *outcome = BK_OUTCOME_FAILURE;
        return BK_EUNAVAIL;
    }
    if (code == 429) {
        *outcome = BK_OUTCOME_IGNORED; /* asked to slow down: not broken */
        return BK_EUNAVAIL;
    }
    if (code >= 500) {
        *outcome = BK_OUTCOME_FAILURE;
        return BK_EUNAVAIL;
    }
    *outcome = BK_OUTCOME_SUCCESS;
    return BK_OK;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / BK_NSEC_PER_SEC), (long)(ns % BK_NSEC_PER_SEC)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void count(bk_upstream_t *u, int which)
{
    if (u->calls[which] != NULL)
        bk_counter_inc(u->calls[which]);
}

/* Request headers: the caller's, Idempotency-Key, and no "Expect: 100-continue"
 * (one more round trip for nothing on a trusted upstream). */
static int build_headers(const bk_upstream_request_t *rq, const char *key, struct curl_slist **out)
{
    struct curl_slist *l = curl_slist_append(NULL, "Expect:");
    for (const char *const *h = rq->headers; l != NULL && h != NULL && *h != NULL; h++) {
        if (strpbrk(*h, "\r\n") != NULL) {
            curl_slist_free_all(l);
            return BK_EINVAL; /* no header injection through a value */
        }
        struct curl_slist *n = curl_slist_append(l, *h);
        if (n == NULL) {
            curl_slist_free_all(l);
            return BK_ENOMEM;
        }
        l = n;
    }
    if (l != NULL && key != NULL) {
        char line[512];
        int n = snprintf(line, sizeof line, "Idempotency-Key: %s", key);
        if (strpbrk(key, "\r\n") != NULL || n < 0 || (size_t)n >= sizeof line) {
            curl_slist_free_all(l);
            return BK_EINVAL; /* no header injection, no truncated key */
        }
        struct curl_slist *nl = curl_slist_append(l, line);
        if (nl == NULL) {
            curl_slist_free_all(l);
            return BK_ENOMEM;
        }
        l = nl;
    }
    *out = l;
    return l ? BK_OK : BK_ENOMEM;
}

/* The request is checked whole before anything else: bad input is the caller's
 * error, never counted against the upstream. */
static int check_request(const bk_upstream_request_t *rq, const char *method, const char *path)
{
    if (*method == '\0' || strpbrk(method, " \r\n") != NULL || *path != '/' ||
        strpbrk(path, " \r\n") != NULL || (rq->body == NULL && rq->body_len > 0))
        return BK_EINVAL;
    return BK_OK;
}

/* Every response has a body string, empty when nothing was received. */
static int finish(bk_upstream_response_t *res, struct sink *sink, int rc)
{
    res->body = sink->buf ? sink->buf : calloc(1, 1);
    res->body_len = sink->buf ? sink->len : 0;
    return res->body == NULL && rc == BK_OK ? BK_ENOMEM : rc;
}

int bk_upstream_call(bk_upstream_t *u, const bk_upstream_request_t *rq, bk_upstream_response_t *res)
{
    if (res != NULL)
        memset(res, 0, sizeof *res);
    if (u == NULL || rq == NULL || res == NULL)
        return BK_EINVAL;
    struct sink sink = {.max = u->o.max_response_bytes};
    const char *method = rq->method ? rq->method : "GET";
    const char *path = rq->path ? rq->path : "/";
    /* An empty key would be dropped by libcurl: a POST retried with no key at all. */
    const char *key = rq->idempotency_key && *rq->idempotency_key ? rq->idempotency_key : NULL;
    struct curl_slist *hdrs = NULL;
    char *url = NULL;
    int rc = check_request(rq, method, path);
    if (rc == BK_OK)
        rc = build_headers(rq, key, &hdrs);
    if (rc == BK_OK && (url = malloc(strlen(u->base_url) + strlen(path) + 1)) == NULL)
        rc = BK_ENOMEM;
    if (rc != BK_OK) {
        curl_slist_free_all(hdrs);
        return finish(res, &sink, rc);
    }
    strcpy(url, u->base_url);
    strcat(url, path);

    /* The deadline and the retry schedule start now, bulkhead wait included. */
    int64_t t0 = bk_clock_mono_ns(u->o.clock);
    bk_retry_t retry;
    rc = bk_retry_begin(&retry, &u->retry, method_idempotent(method) || key != NULL, 0);
    /* The breaker first: while it is open a call costs no request and no slot. */
    bk_breaker_permit_t permit;
    if (rc == BK_OK && bk_breaker_acquire(u->breaker, &permit) != BK_OK) {
        count(u, O_REJECTED);
        rc = BK_EUNAVAIL;
    } else if (rc == BK_OK && bk_bulkhead_enter(u->bulkhead) != BK_OK) {
        bk_breaker_record(u->breaker, &permit, BK_OUTCOME_IGNORED, 0);
        count(u, O_BUSY);
        rc = BK_EBUSY;
    } else if (rc == BK_OK) {
        CURL *h = handle_get(u);
        rc = h ? BK_OK : BK_ENOMEM;
        if (h == NULL)
            bk_breaker_record(u->breaker, &permit, BK_OUTCOME_IGNORED, 0);
        while (h != NULL) {
            int64_t start = bk_clock_mono_ns(u->o.clock);
            int64_t left = t0 + u->o.deadline_ns - start;
            if (left < BK_NSEC_PER_MSEC) {
                bk_breaker_record(u->breaker, &permit, BK_OUTCOME_IGNORED, 0);
                rc = BK_ETIMEDOUT; /* no time left for an attempt */
                break;
            }
            int64_t timeout = u->o.timeout_ns < left ? u->o.timeout_ns : left;
            bk_outcome_t outcome;
            rc = attempt(u, h, rq, hdrs, url, timeout, res, &sink, &outcome);
            bk_breaker_record(u->breaker, &permit, outcome, bk_clock_mono_ns(u->o.clock) - start);
            int64_t delay;
            if (!bk_retry_next(&retry, &rc, sink.retry_after_ns, &delay))
                break;
            sleep_ns(delay);
            /* Each attempt asks the breaker again: one that opened meanwhile ends it. */
            if (bk_breaker_acquire(u->breaker, &permit) != BK_OK) {
                rc = BK_EUNAVAIL;
                break;
            }
        }
        if (h != NULL)
            handle_put(u, h);
        bk_bulkhead_leave(u->bulkhead);
        if (rc == BK_ETIMEDOUT)
            count(u, O_TIMEOUT);
        else
            count(u, rc == BK_OK ? O_SUCCESS : rc == BK_EBUSY ? O_BUSY : O_FAILURE);
        if (u->duration != NULL)
            bk_histogram_observe(u->duration, (double)(bk_clock_mono_ns(u->o.clock) - t0) / 1e9);
    }
    curl_slist_free_all(hdrs);
    free(url);
    return finish(res, &sink, rc);
}
