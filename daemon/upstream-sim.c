/*
 * upstream-sim: the three services an order of backendd(8) calls, on one port,
 * for its tests, its benchmark and `make run`. Built on libbackend's public API.
 *
 *   upstream-sim [--host ADDR] [--port N] [--verbose]      (SIM_PORT: the port)
 *
 * Once listening it prints one line, "upstream-sim listening on HOST:PORT".
 *
 *   payment        POST /payments {amount (> 0), currency}   201 {id, amount, currency, status}
 *                  POST /payments/{id}/refund                200 {id, amount, status}; 404
 *   shipping       POST /shipments {order, items}             201 {id, status}
 *                  DELETE /shipments/{id}                     200 {id, status}; 404
 *   notifications  POST /notifications {...}                  202 {id, status}
 *
 * Each takes an Idempotency-Key: a repeated key of one operation (charge,
 * refund, ship, cancel, notify: a refund under its charge's key is another
 * operation) answers the first answer again and does nothing; only an answer
 * that took effect (2xx) is remembered. Refunding a refunded payment, or
 * cancelling a cancelled shipment, answers as the first time and counts once.
 *
 *   POST /_control {"service": "payment"|"shipping"|"notifications",
 *                   "fail_rate": 0..1, "latency_ms": N, "down": bool}
 *        changes the fields given, answers the service's settings; 422 and no
 *        change for anything else. A service down answers 503 at once; else it
 *        waits latency_ms, then fails (500, no effect) at fail_rate.
 *   GET /_stats    {requests: {payment, shipping, notifications} (every request,
 *                  refused ones too), charges, refunds, shipments, cancellations,
 *                  notifications (operations that took effect), duplicate_keys}
 *   POST /_reset   settings and counts back to the start
 *
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <backend/backend.h>

enum service { PAYMENT, SHIPPING, NOTIFICATIONS, NSERVICES };
static const char *const SERVICE[NSERVICES] = {"payment", "shipping", "notifications"};
enum op { CHARGE, REFUND, SHIP, CANCEL, NOTIFY, NOPS }; /* each with its own keys */
static const enum service SERVICE_OF[NOPS] = {PAYMENT, PAYMENT, SHIPPING, SHIPPING, NOTIFICATIONS};

#define MAX_RECORDS 1000000 /* payments, shipments and remembered answers, each */
#define BUCKETS 65536

struct settings {
    double fail_rate;
    long latency_ms;
    bool down;
};

/* An answer remembered under (operation, key). */
struct answer {
    struct answer *next;
    enum op op;
    char *key;
    int status;
    char *body;
};

struct payment {
    json_int_t amount;
    char currency[4];
    bool refunded;
};

/* Everything, under one lock: the calls are short, the waits outside it. */
static struct {
    pthread_mutex_t mu;
    struct settings set[NSERVICES];
    unsigned long requests[NSERVICES];
    unsigned long done[NOPS]; /* operations that took effect */
    unsigned long duplicates;
    struct answer *answers[BUCKETS];
    size_t nanswers;
    struct payment *payments;
    size_t npayments, payments_cap;
    bool *cancelled; /* per shipment */
    size_t nshipments, shipments_cap;
    unsigned long notified;
    unsigned seed;
} st = {.mu = PTHREAD_MUTEX_INITIALIZER, .seed = 1};

static size_t bucket(enum op op, const char *key)
{
    size_t h = 2166136261u ^ (size_t)op;
    for (const unsigned char *s = (const unsigned char *)key; *s; s++)
        h = (h ^ *s) * 16777619u;
    return h % BUCKETS;
}

static struct answer *remembered(enum op op, const char *key)
{
    for (struct answer *a = st.answers[bucket(op, key)]; a; a = a->next)
        if (a->op == op && strcmp(a->key, key) == 0)
            return a;
    return NULL;
}

static void remember(enum op op, const char *key, int status, const char *body)
{
    struct answer *a = calloc(1, sizeof *a);
    if (a == NULL || (a->key = strdup(key)) == NULL || (a->body = strdup(body)) == NULL) {
        if (a)
            free(a->key);
        free(a);
        return; /* not remembered: a repeat would act again, as without a key */
    }
    a->op = op;
    a->status = status;
    size_t b = bucket(op, key);
    a->next = st.answers[b];
    st.answers[b] = a;
    st.nanswers++;
}

/* Drops every record and count (under the lock). */
static void reset_locked(void)
{
    for (size_t b = 0; b < BUCKETS; b++)
        for (struct answer *a = st.answers[b], *next; a; a = next) {
            next = a->next;
            free(a->key);
            free(a->body);
            free(a);
        }
    memset(st.answers, 0, sizeof st.answers);
    free(st.payments);
    free(st.cancelled);
    st.payments = NULL;
    st.cancelled = NULL;
    st.nanswers = st.npayments = st.payments_cap = st.nshipments = st.shipments_cap = 0;
    memset(st.set, 0, sizeof st.set);
    memset(st.requests, 0, sizeof st.requests);
    memset(st.done, 0, sizeof st.done);
    st.duplicates = st.notified = 0;
}

/* Grows an array of n elements of size to hold one more; false when full. */
static bool room(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    if (n >= MAX_RECORDS)
        return false;
    size_t want = *cap ? *cap * 2 : 256;
    void *p = realloc(*items, want * size);
    if (p == NULL)
        return false;
    *items = p;
    *cap = want;
    return true;
}

/* "pay_12" -> 12 when prefix matches and 1 <= 12 <= n; else 0. */
static size_t id_of(const char *s, const char *prefix, size_t n)
{
    size_t len = strlen(prefix);
    if (s == NULL || strncmp(s, prefix, len) != 0 || s[len] < '1' || s[len] > '9')
        return 0;
    char *end;
    unsigned long long v = strtoull(s + len, &end, 10);
    return *end == '\0' && v <= n ? (size_t)v : 0;
}

/* ------------------------------------------------------------------ the operations */
/* Each runs under the lock and fills status and body (a new reference). */
struct outcome {
    int status;
    json_t *body;
};

static struct outcome charge(const json_t *in)
{
    const json_t *amount = json_object_get(in, "amount");
    const char *currency = json_string_value(json_object_get(in, "currency"));
    if (!json_is_integer(amount) || json_integer_value(amount) <= 0 || currency == NULL || strlen(currency) != 3)
        return (struct outcome){422, NULL};
    if (!room((void **)&st.payments, &st.payments_cap, st.npayments, sizeof *st.payments))
        return (struct outcome){507, NULL};
    struct payment *p = &st.payments[st.npayments++];
    p->amount = json_integer_value(amount);
    snprintf(p->currency, sizeof p->currency, "%s", currency);
    p->refunded = false;
    st.done[CHARGE]++;
    char id[32];
    snprintf(id, sizeof id, "pay_%zu", st.npayments);
    return (struct outcome){201, json_pack("{s:s, s:I, s:s, s:s}", "id", id, "amount", p->amount, "currency",
                                           p->currency, "status", "captured")};
}

static struct outcome refund(const char *id)
{
    size_t n = id_of(id, "pay_", st.npayments);
    if (n == 0)
        return (struct outcome){404, NULL};
    struct payment *p = &st.payments[n - 1];
    if (!p->refunded)
        st.done[REFUND]++;
    p->refunded = true;
    return (struct outcome){200, json_pack("{s:s, s:I, s:s}", "id", id, "amount", p->amount, "status", "refunded")};
}

static struct outcome ship(void)
{
    if (!room((void **)&st.cancelled, &st.shipments_cap, st.nshipments, sizeof *st.cancelled))
        return (struct outcome){507, NULL};
    st.cancelled[st.nshipments++] = false;
    st.done[SHIP]++;
    char id[32];
    snprintf(id, sizeof id, "shp_%zu", st.nshipments);
    return (struct outcome){201, json_pack("{s:s, s:s}", "id", id, "status", "scheduled")};
}

static struct outcome cancel(const char *id)
{
    size_t n = id_of(id, "shp_", st.nshipments);
    if (n == 0)
        return (struct outcome){404, NULL};
    if (!st.cancelled[n - 1])
        st.done[CANCEL]++;
    st.cancelled[n - 1] = true;
    return (struct outcome){200, json_pack("{s:s, s:s}", "id", id, "status", "cancelled")};
}

static struct outcome notify(void)
{
    st.done[NOTIFY]++;
    char id[32];
    snprintf(id, sizeof id, "ntf_%lu", ++st.notified);
    return (struct outcome){202, json_pack("{s:s, s:s}", "id", id, "status", "sent")};
}

static struct outcome run(enum op op, const json_t *in, const char *id)
{
    switch (op) {
    case CHARGE: return charge(in);
    case REFUND: return refund(id);
    case SHIP: return ship();
    case CANCEL: return cancel(id);
    default: return notify();
    }
}

/* ------------------------------------------------------------------ the routes */
static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Every service route: counted, then down, latency, injected failure, the
 * key's first answer, or the operation. */
static void serve(bk_req_t *req, void *ud)
{
    enum op op = (enum op)(intptr_t)ud;
    enum service svc = SERVICE_OF[op];
    pthread_mutex_lock(&st.mu);
    st.requests[svc]++;
    struct settings set = st.set[svc];
    bool fail = set.fail_rate > 0 && (double)rand_r(&st.seed) / RAND_MAX < set.fail_rate;
    pthread_mutex_unlock(&st.mu);
    if (set.down) {
        bk_res_error(req, BK_EUNAVAIL, "the service is down (/_control)");
        return;
    }
    if (set.latency_ms > 0)
        sleep_ms(set.latency_ms);
    if (fail) {
        bk_res_problem(req, 500, "an injected failure (/_control fail_rate)", NULL);
        return;
    }
    json_t *in = NULL;
    if ((op == CHARGE || op == SHIP || op == NOTIFY) && bk_req_json(req, &in) != BK_OK)
        return; /* answered: not JSON */
    if (in != NULL && !json_is_object(in)) {
        json_decref(in);
        bk_res_problem(req, 422, "the body must be a JSON object", NULL);
        return;
    }
    const char *key = bk_req_header(req, "Idempotency-Key");
    pthread_mutex_lock(&st.mu);
    struct answer *first = key ? remembered(op, key) : NULL;
    int status;
    char *body = NULL;
    if (first != NULL) {
        st.duplicates++;
        status = first->status;
        body = strdup(first->body);
    } else {
        struct outcome o = run(op, in, bk_req_param(req, "id"));
        status = o.status;
        body = o.body ? json_dumps(o.body, JSON_COMPACT) : NULL;
        json_decref(o.body);
        if (body != NULL && key != NULL && status < 300 && st.nanswers < MAX_RECORDS)
            remember(op, key, status, body);
    }
    pthread_mutex_unlock(&st.mu);
    json_decref(in);
    if (body != NULL)
        bk_res_bytes(req, status, "application/json", body, strlen(body));
    else if (status == 404)
        bk_res_error(req, BK_ENOTFOUND, "no such record");
    else if (status == 422)
        bk_res_problem(req, 422, "amount (an integer above 0) and currency (3 letters) are required", NULL);
    else
        bk_res_problem(req, status == 507 ? 507 : 500, "the simulator is full or out of memory", NULL);
    free(body);
}

static json_t *settings_json(enum service s)
{
    return json_pack("{s:s, s:f, s:I, s:b}", "service", SERVICE[s], "fail_rate", st.set[s].fail_rate, "latency_ms",
                     (json_int_t)st.set[s].latency_ms, "down", st.set[s].down);
}

static void control(bk_req_t *req, void *ud)
{
    (void)ud;
    json_t *in;
    if (bk_req_json(req, &in) != BK_OK)
        return;
    const char *name = json_string_value(json_object_get(in, "service"));
    int s = -1;
    for (int i = 0; name && i < NSERVICES; i++)
        if (strcmp(name, SERVICE[i]) == 0)
            s = i;
    const json_t *rate = json_object_get(in, "fail_rate"), *lat = json_object_get(in, "latency_ms"),
                 *down = json_object_get(in, "down");
    const char *bad = s < 0 ? "service: payment, shipping or notifications"
                    : rate && (!json_is_number(rate) || json_number_value(rate) < 0 || json_number_value(rate) > 1)
                        ? "fail_rate: a number from 0 to 1"
                    : lat && (!json_is_integer(lat) || json_integer_value(lat) < 0 || json_integer_value(lat) > 600000)
                        ? "latency_ms: an integer from 0 to 600000"
                    : down && !json_is_boolean(down) ? "down: true or false"
                    : json_object_size(in) != 1u + (rate != NULL) + (lat != NULL) + (down != NULL)
                        ? "only service, fail_rate, latency_ms and down"
                        : NULL;
    if (bad != NULL) {
        json_decref(in);
        bk_res_problem(req, 422, bad, NULL);
        return;
    }
    pthread_mutex_lock(&st.mu);
    if (rate)
        st.set[s].fail_rate = json_number_value(rate);
    if (lat)
        st.set[s].latency_ms = (long)json_integer_value(lat);
    if (down)
        st.set[s].down = json_is_true(down);
    json_t *out = settings_json((enum service)s);
    pthread_mutex_unlock(&st.mu);
    json_decref(in);
    bk_res_json(req, 200, out);
}

static void stats(bk_req_t *req, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&st.mu);
    json_t *out = json_pack("{s:{s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:I, s:I}", "requests", "payment",
                            (json_int_t)st.requests[PAYMENT], "shipping", (json_int_t)st.requests[SHIPPING],
                            "notifications", (json_int_t)st.requests[NOTIFICATIONS], "charges",
                            (json_int_t)st.done[CHARGE], "refunds", (json_int_t)st.done[REFUND], "shipments",
                            (json_int_t)st.done[SHIP], "cancellations", (json_int_t)st.done[CANCEL],
                            "notifications", (json_int_t)st.done[NOTIFY], "duplicate_keys",
                            (json_int_t)st.duplicates);
    pthread_mutex_unlock(&st.mu);
    bk_res_json(req, 200, out);
}

static void reset(bk_req_t *req, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&st.mu);
    reset_locked();
    pthread_mutex_unlock(&st.mu);
    bk_res_json(req, 200, json_pack("{s:s}", "status", "reset"));
}

/* ------------------------------------------------------------------ main */
static int add_routes(bk_http_server_t *srv)
{
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.flags = BK_HTTP_BLOCKING; /* latency_ms sleeps on a worker, never on the loop */
    const struct { const char *method, *path; enum op op; } routes[] = {
        {"POST", "/payments", CHARGE},      {"POST", "/payments/{id}/refund", REFUND},
        {"POST", "/shipments", SHIP},       {"DELETE", "/shipments/{id}", CANCEL},
        {"POST", "/notifications", NOTIFY},
    };
    int rc = BK_OK;
    for (size_t i = 0; rc == BK_OK && i < sizeof routes / sizeof *routes; i++)
        rc = bk_http_route(srv, routes[i].method, routes[i].path, serve, (void *)(intptr_t)routes[i].op, &ro);
    if (rc == BK_OK)
        rc = bk_http_route(srv, "POST", "/_control", control, NULL, NULL);
    if (rc == BK_OK)
        rc = bk_http_route(srv, "GET", "/_stats", stats, NULL, NULL);
    if (rc == BK_OK)
        rc = bk_http_route(srv, "POST", "/_reset", reset, NULL, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.host = "127.0.0.1";
    const char *env_port = getenv("SIM_PORT");
    o.port = (uint16_t)(env_port ? atoi(env_port) : 0);
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            o.host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            o.port = (uint16_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = true;
        else {
            fprintf(stderr, "usage: upstream-sim [--host ADDR] [--port N] [--verbose]\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    bk_error_t err = {0};
    bk_log_t *log = NULL;
    bk_workers_t *workers = NULL;
    bk_http_server_t *srv = NULL;
    int rc = verbose ? bk_log_new(NULL, &log, &err) : BK_OK;
    bk_workers_opts_t wo;
    bk_workers_opts_init(&wo);
    wo.threads = 64; /* slow answers (latency_ms) in parallel */
    wo.name = "sim-w";
    if (rc == BK_OK)
        rc = bk_workers_new(&wo, &workers);
    o.log = log;
    o.access_log = log;
    o.workers = workers;
    if (rc == BK_OK)
        rc = bk_http_server_new(&o, &srv, &err);
    if (rc == BK_OK)
        rc = add_routes(srv);
    if (rc == BK_OK)
        rc = bk_http_server_start(srv, &err);
    if (rc != BK_OK) {
        fprintf(stderr, "upstream-sim: %s\n", err.code == rc && err.message[0] ? err.message : bk_strerror(rc));
    } else {
        printf("upstream-sim listening on %s:%u\n", o.host, (unsigned)bk_http_server_port(srv));
        fflush(stdout);
        bk_http_server_wait(srv); /* until SIGTERM or SIGINT */
    }
    bk_http_server_free(srv);
    if (workers != NULL) {
        bk_workers_shutdown(workers, BK_WORKERS_DRAIN);
        bk_workers_free(workers);
    }
    bk_log_free(log);
    pthread_mutex_lock(&st.mu);
    reset_locked();
    pthread_mutex_unlock(&st.mu);
    return rc == BK_OK ? 0 : 1;
}
