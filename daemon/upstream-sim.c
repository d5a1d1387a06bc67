/*
 * upstream-sim: the three remote services an order of backendd(8) calls
 * (payment, shipping, notifications), played on one port for its saga tests,
 * its benchmark and `make run`. Built on libbackend's public API only.
 *
 *   upstream-sim [--host ADDR] [--port N] [--verbose] [--help]
 *
 * ADDR defaults to 127.0.0.1; N to $SIM_PORT, else 0 (a free port); --port
 * wins over SIM_PORT. Once listening it prints exactly one line to stdout,
 * flushed at once, naming the real port (an IPv6 address in brackets):
 *
 *   upstream-sim listening on 127.0.0.1:PORT
 *
 * SIGTERM or SIGINT stop it gracefully: exit 0. A bad command line exits 2, a
 * failure to start 1 (its reason on stderr). Quiet by default; --verbose logs
 * server events and one access line per request to stderr (JSON lines).
 *
 * The services (JSON bodies; errors are RFC 9457 problem+json):
 *   POST /payments {"amount": integer > 0, "currency": 3 letters, "order": any (optional)}
 *        201 {"id":"pay_N","amount":A,"currency":C,"status":"captured"}; 422 for a bad body
 *   POST /payments/{id}/refund
 *        200 {"id":"pay_N","status":"refunded","amount":A}; 404 for an unknown id;
 *        a refunded payment answers the same again and is not counted again
 *   POST /shipments {"order": any, "items": array (optional)}
 *        201 {"id":"shp_N","status":"scheduled"}; 422 for a bad body
 *   DELETE /shipments/{id}
 *        200 {"id":"shp_N","status":"cancelled"}; 404; a cancelled one answers the
 *        same again and is not counted again
 *   POST /notifications {any object}
 *        202 {"id":"ntf_N","status":"sent"}; 422 for anything but an object
 *
 * Idempotency-Key: the scope of a key is (operation, key), the operations being
 * charge, refund, ship, cancel and notify, so a refund under its charge's key
 * is another operation (a saga keys a step and its compensation alike). A key
 * seen before answers its first answer (same status, same body bytes), does
 * nothing and counts in duplicate_keys. Only an answer that took effect (2xx)
 * is remembered: after a 4xx, a 500 or a 503 the same key may try again. A
 * request without the header takes effect each time.
 *
 * Each service has settings, at first fail_rate 0, latency_ms 0, down false.
 * A service down answers 503 (Retry-After: 1) at once, with no effect. Else it
 * waits latency_ms, then answers 500 with no effect with probability fail_rate,
 * else does the operation (or answers a remembered one).
 *   POST /_control {"service": "payment"|"shipping"|"notifications",
 *                   "fail_rate": number 0..1, "latency_ms": integer 0..600000, "down": bool}
 *        changes only the fields given; 200 {"service","fail_rate","latency_ms","down"};
 *        422 and nothing changed for an unknown service or field, a wrong type or
 *        a value out of range
 *   GET /_stats   200 {"requests": {"payment":N,"shipping":N,"notifications":N},
 *                      "charges":N, "refunds":N, "shipments":N, "cancellations":N,
 *                      "notifications":N, "duplicate_keys":N}
 *        requests: every request a service received, refused ones (down,
 *        failed, 4xx, duplicates) too; the next five: the distinct operations
 *        that took effect; duplicate_keys: repeats answered from memory
 *   POST /_reset  200 {"status":"reset"}: settings, counters and records as at start
 *
 * Limits: at most 1,000,000 payments, shipments and remembered keys each;
 * beyond, a request that would add one is answered 503 with no effect, so the
 * process never grows without bound.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backend/backend.h>

enum service { PAYMENT, SHIPPING, NOTIFICATIONS, NSERVICES };
static const char *const SERVICE[NSERVICES] = {"payment", "shipping", "notifications"};
enum op { CHARGE, REFUND, SHIP, CANCEL, NOTIFY, NOPS }; /* each with its own keys */
static const enum service SERVICE_OF[NOPS] = {PAYMENT, PAYMENT, SHIPPING, SHIPPING, NOTIFICATIONS};

#define MAX_RECORDS 1000000 /* payments, shipments and remembered answers, each */
#define MAX_LATENCY_MS 600000
#define BUCKETS 65536 /* a fixed table: chains of ~15 at the bound, no rehash under the lock */

struct settings {
    double fail_rate;
    long latency_ms;
    bool down;
};

/* An answer remembered under (operation, key); the body is the bytes sent. */
struct answer {
    struct answer *next;
    enum op op;
    int status;
    char *key;
    char *body;
};

struct payment {
    json_int_t amount;
    bool refunded;
};

/* Everything, under one lock: the sections are short, the waits outside it. */
static struct {
    pthread_mutex_t mu;
    struct settings set[NSERVICES];
    unsigned long requests[NSERVICES];
    unsigned long done[NOPS]; /* operations that took effect */
    unsigned long duplicates;
    struct answer *answers[BUCKETS];
    size_t nanswers;
    struct payment *payments; /* pay_N is payments[N - 1] */
    size_t npayments, payments_cap;
    bool *cancelled; /* shp_N is cancelled[N - 1] */
    size_t nshipments, shipments_cap;
    unsigned seed; /* rand_r's state: a fixed start, so a test run draws alike each time */
} st = {.mu = PTHREAD_MUTEX_INITIALIZER, .seed = 1};

/* ------------------------------------------------------------------ records */
/* FNV-1a: the keys come from our own tests, so flooding is no concern here. */
static size_t bucket(enum op op, const char *key)
{
    uint32_t h = 2166136261u ^ (uint32_t)op;
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

static void answer_free(struct answer *a)
{
    if (a != NULL) {
        free(a->key);
        free(a->body);
        free(a);
    }
}

/* Drops every record and count and restores the settings (under the lock). */
static void reset_locked(void)
{
    for (size_t b = 0; b < BUCKETS; b++)
        for (struct answer *a = st.answers[b], *next; a; a = next) {
            next = a->next;
            answer_free(a);
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
    st.duplicates = 0;
}

/* Room for one more of n elements of size in *items; false when at the bound
 * or out of memory. */
static bool room(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    if (n >= MAX_RECORDS)
        return false;
    size_t want = *cap ? *cap * 2 : 256;
    if (want > MAX_RECORDS)
        want = MAX_RECORDS;
    void *p = realloc(*items, want * size);
    if (p == NULL)
        return false;
    *items = p;
    *cap = want;
    return true;
}

/* "pay_12" -> 12 when the prefix matches and 1 <= 12 <= n; else 0. */
static size_t id_of(const char *s, const char *prefix, size_t n)
{
    size_t len = strlen(prefix);
    if (s == NULL || strncmp(s, prefix, len) != 0 || s[len] < '1' || s[len] > '9')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s + len, &end, 10);
    return *end == '\0' && errno == 0 && v <= n ? (size_t)v : 0;
}

/* The compact text of doc (taken), in memory of our own malloc (freed with
 * free, whatever allocator jansson was given); NULL when out of memory. */
static char *dump(json_t *doc)
{
    size_t n = doc ? json_dumpb(doc, NULL, 0, JSON_COMPACT) : 0;
    char *s = n ? malloc(n + 1) : NULL;
    if (s != NULL) {
        json_dumpb(doc, s, n, JSON_COMPACT);
        s[n] = '\0';
    }
    json_decref(doc);
    return s;
}

/* ------------------------------------------------------------------ the operations */
/* What an operation answers: a body (2xx), or a code and detail for an error
 * (status 422, which no BK_ code maps to, is answered as a problem). */
struct outcome {
    int status;
    char *body;
    int code;
    const char *detail;
};

#define REFUSED(st_, code_, detail_) ((struct outcome){.status = (st_), .code = (code_), .detail = (detail_)})
#define FULL REFUSED(503, BK_EBUSY, "the simulator holds as many records as it may")

/* A 2xx whose body could not be made still took effect: said so, not hidden. */
static struct outcome done(int status, json_t *doc)
{
    char *body = dump(doc);
    if (body == NULL)
        return REFUSED(500, BK_ENOMEM, "out of memory after the operation took effect");
    return (struct outcome){.status = status, .body = body};
}

static bool currency_ok(const char *c)
{
    if (c == NULL || strlen(c) != 3)
        return false;
    for (int i = 0; i < 3; i++)
        if (!((c[i] >= 'A' && c[i] <= 'Z') || (c[i] >= 'a' && c[i] <= 'z')))
            return false;
    return true;
}

static struct outcome charge(const json_t *in)
{
    const json_t *amount = json_object_get(in, "amount");
    const char *currency = json_string_value(json_object_get(in, "currency"));
    if (!json_is_integer(amount) || json_integer_value(amount) <= 0 || !currency_ok(currency))
        return REFUSED(422, 0, "amount (an integer above 0) and currency (3 letters) are required");
    if (!room((void **)&st.payments, &st.payments_cap, st.npayments, sizeof *st.payments))
        return FULL;
    struct payment *p = &st.payments[st.npayments++];
    *p = (struct payment){.amount = json_integer_value(amount)};
    st.done[CHARGE]++;
    char id[32];
    snprintf(id, sizeof id, "pay_%zu", st.npayments);
    return done(201, json_pack("{s:s, s:I, s:s, s:s}", "id", id, "amount", p->amount, "currency", currency, "status",
                               "captured"));
}

static struct outcome refund(const char *id)
{
    size_t n = id_of(id, "pay_", st.npayments);
    if (n == 0)
        return REFUSED(404, BK_ENOTFOUND, "no such payment");
    struct payment *p = &st.payments[n - 1];
    if (!p->refunded) /* a second refund answers alike but is no second effect */
        st.done[REFUND]++;
    p->refunded = true;
    return done(200, json_pack("{s:s, s:s, s:I}", "id", id, "status", "refunded", "amount", p->amount));
}

static struct outcome ship(const json_t *in)
{
    const json_t *items = json_object_get(in, "items");
    if (json_object_get(in, "order") == NULL || (items != NULL && !json_is_array(items)))
        return REFUSED(422, 0, "order is required and items, when given, is an array");
    if (!room((void **)&st.cancelled, &st.shipments_cap, st.nshipments, sizeof *st.cancelled))
        return FULL;
    st.cancelled[st.nshipments++] = false;
    st.done[SHIP]++;
    char id[32];
    snprintf(id, sizeof id, "shp_%zu", st.nshipments);
    return done(201, json_pack("{s:s, s:s}", "id", id, "status", "scheduled"));
}

static struct outcome cancel(const char *id)
{
    size_t n = id_of(id, "shp_", st.nshipments);
    if (n == 0)
        return REFUSED(404, BK_ENOTFOUND, "no such shipment");
    if (!st.cancelled[n - 1])
        st.done[CANCEL]++;
    st.cancelled[n - 1] = true;
    return done(200, json_pack("{s:s, s:s}", "id", id, "status", "cancelled"));
}

static struct outcome notify(void)
{
    char id[32];
    snprintf(id, sizeof id, "ntf_%lu", ++st.done[NOTIFY]);
    return done(202, json_pack("{s:s, s:s}", "id", id, "status", "sent"));
}

static struct outcome run(enum op op, const json_t *in, const char *id)
{
    switch (op) {
    case CHARGE: return charge(in);
    case REFUND: return refund(id);
    case SHIP: return ship(in);
    case CANCEL: return cancel(id);
    default: return notify();
    }
}

/* The answer to op under key (NULL: none), under the lock. A keyed operation
 * gets its record allocated before it runs, so that an operation that took
 * effect is always remembered (never done twice for want of memory). */
static struct outcome perform(enum op op, const char *key, const json_t *in, const char *id)
{
    struct answer *first = key ? remembered(op, key) : NULL;
    if (first != NULL) {
        st.duplicates++;
        char *body = strdup(first->body);
        return body ? (struct outcome){.status = first->status, .body = body}
                    : REFUSED(500, BK_ENOMEM, "out of memory");
    }
    struct answer *a = NULL;
    if (key != NULL) {
        if (st.nanswers >= MAX_RECORDS)
            return FULL;
        if ((a = calloc(1, sizeof *a)) == NULL || (a->key = strdup(key)) == NULL) {
            answer_free(a);
            return REFUSED(500, BK_ENOMEM, "out of memory");
        }
    }
    struct outcome o = run(op, in, id);
    if (a != NULL && o.body != NULL && (a->body = strdup(o.body)) != NULL) {
        a->op = op;
        a->status = o.status;
        size_t b = bucket(op, key);
        a->next = st.answers[b];
        st.answers[b] = a;
        st.nanswers++;
    } else {
        answer_free(a); /* a 4xx or 5xx: the key may try again */
    }
    return o;
}

/* ------------------------------------------------------------------ the routes */
/* Counts the request and decides, under the lock, what the settings make of
 * it: true when it was answered (down, or an injected failure). */
static bool refused(bk_req_t *req, enum service svc)
{
    pthread_mutex_lock(&st.mu);
    st.requests[svc]++;
    struct settings set = st.set[svc];
    /* [0, 1): fail_rate 1 fails every time, 0 never. */
    bool fail = set.fail_rate > 0 && rand_r(&st.seed) / ((double)RAND_MAX + 1.0) < set.fail_rate;
    pthread_mutex_unlock(&st.mu);
    if (set.down) {
        bk_res_error(req, BK_EUNAVAIL, "the service is down (/_control)"); /* Retry-After: 1 */
        return true;
    }
    if (set.latency_ms > 0) /* on a worker (BLOCKING routes), never on the loop */
        bk_clock_sleep_ns(NULL, (int64_t)set.latency_ms * BK_NSEC_PER_MSEC);
    if (fail) {
        bk_res_problem(req, 500, "an injected failure (/_control fail_rate)", NULL);
        return true;
    }
    return false;
}

/* The body of a charge, a shipment or a notification: a JSON object, or the
 * request is answered (415, 400, 422) and NULL returned. */
static json_t *object_body(bk_req_t *req)
{
    json_t *in;
    if (bk_req_json(req, &in) != BK_OK)
        return NULL;
    if (!json_is_object(in)) {
        json_decref(in);
        bk_res_problem(req, 422, "the body must be a JSON object", NULL);
        return NULL;
    }
    return in;
}

/* Every service route: ud is its operation. */
static void serve(bk_req_t *req, void *ud)
{
    enum op op = (enum op)(intptr_t)ud;
    if (refused(req, SERVICE_OF[op]))
        return;
    json_t *in = NULL;
    if ((op == CHARGE || op == SHIP || op == NOTIFY) && (in = object_body(req)) == NULL)
        return;
    pthread_mutex_lock(&st.mu);
    struct outcome o = perform(op, bk_req_header(req, "Idempotency-Key"), in, bk_req_param(req, "id"));
    pthread_mutex_unlock(&st.mu);
    json_decref(in);
    if (o.body != NULL)
        bk_res_bytes(req, o.status, "application/json", o.body, strlen(o.body));
    else if (o.status == 422)
        bk_res_problem(req, 422, o.detail, NULL);
    else
        bk_res_error(req, o.code, o.detail);
    free(o.body);
}

/* What is wrong with a /_control body (NULL: nothing); *svc its service. */
static const char *control_problem(const json_t *in, int *svc)
{
    const char *name = json_string_value(json_object_get(in, "service"));
    *svc = -1;
    for (int i = 0; name && i < NSERVICES; i++)
        if (strcmp(name, SERVICE[i]) == 0)
            *svc = i;
    if (*svc < 0)
        return "service: payment, shipping or notifications";
    const json_t *rate = json_object_get(in, "fail_rate"), *lat = json_object_get(in, "latency_ms"),
                 *down = json_object_get(in, "down");
    if (rate && (!json_is_number(rate) || json_number_value(rate) < 0 || json_number_value(rate) > 1))
        return "fail_rate: a number from 0 to 1";
    if (lat && (!json_is_integer(lat) || json_integer_value(lat) < 0 || json_integer_value(lat) > MAX_LATENCY_MS))
        return "latency_ms: an integer from 0 to 600000";
    if (down && !json_is_boolean(down))
        return "down: true or false";
    if (json_object_size(in) != 1u + (rate != NULL) + (lat != NULL) + (down != NULL))
        return "only service, fail_rate, latency_ms and down";
    return NULL;
}

static void control(bk_req_t *req, void *ud)
{
    (void)ud;
    json_t *in;
    if (bk_req_json(req, &in) != BK_OK)
        return;
    int s;
    const char *bad = control_problem(in, &s);
    if (bad != NULL) {
        json_decref(in);
        bk_res_problem(req, 422, bad, NULL);
        return;
    }
    const json_t *rate = json_object_get(in, "fail_rate"), *lat = json_object_get(in, "latency_ms"),
                 *down = json_object_get(in, "down");
    pthread_mutex_lock(&st.mu);
    struct settings *set = &st.set[s];
    if (rate)
        set->fail_rate = json_number_value(rate);
    if (lat)
        set->latency_ms = (long)json_integer_value(lat);
    if (down)
        set->down = json_is_true(down);
    json_t *out = json_pack("{s:s, s:f, s:I, s:b}", "service", SERVICE[s], "fail_rate", set->fail_rate, "latency_ms",
                            (json_int_t)set->latency_ms, "down", set->down);
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

static int add_routes(bk_http_server_t *srv)
{
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.flags = BK_HTTP_BLOCKING; /* latency_ms sleeps on a worker, never on the loop */
    const struct {
        const char *method, *path;
        enum op op;
    } routes[] = {
        {"POST", "/payments", CHARGE}, {"POST", "/payments/{id}/refund", REFUND}, {"POST", "/shipments", SHIP},
        {"DELETE", "/shipments/{id}", CANCEL}, {"POST", "/notifications", NOTIFY},
    };
    int rc = BK_OK;
    for (size_t i = 0; rc == BK_OK && i < sizeof routes / sizeof *routes; i++)
        rc = bk_http_route(srv, routes[i].method, routes[i].path, serve, (void *)(intptr_t)routes[i].op, &ro);
    /* The controls take the lock for a moment only: inline. */
    if (rc == BK_OK)
        rc = bk_http_route(srv, "POST", "/_control", control, NULL, NULL);
    if (rc == BK_OK)
        rc = bk_http_route(srv, "GET", "/_stats", stats, NULL, NULL);
    if (rc == BK_OK)
        rc = bk_http_route(srv, "POST", "/_reset", reset, NULL, NULL);
    return rc;
}

/* ------------------------------------------------------------------ main */
static int usage(FILE *out, int status)
{
    fprintf(out, "usage: upstream-sim [--host ADDR] [--port N] [--verbose] [--help]\n"
                 "  --host ADDR  where to listen (default 127.0.0.1)\n"
                 "  --port N     the port, 0 for a free one (default $SIM_PORT, else 0)\n"
                 "  --verbose    server events and an access line per request on stderr\n"
                 "Prints \"upstream-sim listening on HOST:PORT\" once listening.\n");
    return status;
}

/* A port 0..65535, all digits; false otherwise. */
static bool parse_port(const char *s, uint16_t *port)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* Reads the command line into o and *verbose; -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, bk_http_opts_t *o, bool *verbose)
{
    const char *env = getenv("SIM_PORT");
    if (env != NULL && env[0] != '\0' && !parse_port(env, &o->port)) {
        fprintf(stderr, "upstream-sim: SIM_PORT=%s is not a port\n", env);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            o->host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc && parse_port(argv[i + 1], &o->port))
            i++;
        else if (strcmp(argv[i], "--verbose") == 0)
            *verbose = true;
        else if (strcmp(argv[i], "--help") == 0)
            return usage(stdout, 0);
        else
            return usage(stderr, 2);
    }
    return -1;
}

/* Serves until SIGTERM or SIGINT (the server's own handlers). */
static int serve_until_stopped(bk_http_opts_t *o, bool verbose)
{
    bk_error_t err = {0};
    bk_log_t *log = NULL;
    bk_workers_t *workers = NULL;
    bk_http_server_t *srv = NULL;
    int rc = verbose ? bk_log_new(NULL, &log, &err) : BK_OK; /* NULL options: stderr */
    bk_workers_opts_t wo;
    bk_workers_opts_init(&wo);
    wo.threads = 64; /* that many slow answers (latency_ms) at once */
    wo.name = "sim-w";
    if (rc == BK_OK)
        rc = bk_workers_new(&wo, &workers);
    o->log = log;
    o->access_log = log;
    o->workers = workers;
    if (rc == BK_OK)
        rc = bk_http_server_new(o, &srv, &err);
    if (rc == BK_OK)
        rc = add_routes(srv);
    if (rc == BK_OK)
        rc = bk_http_server_start(srv, &err);
    if (rc != BK_OK) {
        fprintf(stderr, "upstream-sim: %s\n", err.code == rc && err.message[0] ? err.message : bk_strerror(rc));
    } else {
        bool v6 = strchr(o->host, ':') != NULL;
        printf("upstream-sim listening on %s%s%s:%u\n", v6 ? "[" : "", o->host, v6 ? "]" : "",
               (unsigned)bk_http_server_port(srv));
        fflush(stdout); /* scripts wait for this line */
        bk_http_server_wait(srv);
    }
    bk_http_server_free(srv); /* before the pool its blocking routes run on */
    if (workers != NULL) {
        bk_workers_shutdown(workers, BK_WORKERS_DRAIN);
        bk_workers_free(workers);
    }
    bk_log_free(log);
    return rc == BK_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    o.host = "127.0.0.1";
    o.port = 0;
    bool verbose = false;
    int status = parse_args(argc, argv, &o, &verbose);
    if (status >= 0)
        return status;
    status = serve_until_stopped(&o, verbose);
    pthread_mutex_lock(&st.mu);
    reset_locked(); /* every record freed: a leak check sees none */
    pthread_mutex_unlock(&st.mu);
    return status;
}
