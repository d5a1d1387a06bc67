/* An order's saga: reserve_stock -> charge_payment -> create_order ->
 * schedule_shipping, durable on the job queue in the service's PostgreSQL, so
 * that any instance goes on with the sagas of one that died. Each remote call
 * goes through bk_upstream (breaker, retries, timeout) with the step's
 * idempotency key, so that an action run again (a retry, a rescue) takes
 * effect once. The saga's finish hook gives the order its status in the very
 * transaction that records the outcome, and enqueues the confirmation there:
 * one notification per completed order, whatever crashes.
 *
 * A failed step's error reads "STEP [BK_CODE]: detail", so that the answer
 * (orders.c) can give the client the status of the code that failed it.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define CONFIRMATION "order-confirmation" /* the job's kind */
#define FORGET_KEYS "order-forget-keys"   /* the periodic job's kind */

/* Fills err with the failure of step: "STEP [BK_CODE]: detail"; returns code. */
static int step_failed(bk_error_t *err, const char *step, int code, const char *detail)
{
    return app_error(err, code, "%s [%s]: %s", step, bk_err_name(code), detail);
}

static long long ctx_int(const json_t *ctx, const char *name)
{
    return (long long)json_integer_value(json_object_get(ctx, name));
}

/* ------------------------------------------------------------------ remote calls */
/* One call: BK_OK with a 2xx answer, its body parsed in *body (body may be
 * NULL). Any other answer is BK_EUPSTREAM (the service refused what we sent),
 * except a 404 when gone_ok (nothing there: nothing to undo), BK_OK too.
 * Within a saga step (call not NULL), a failed call one of whose attempts got
 * no answer may have been carried out: the step says so, so that a charge or
 * a shipment that timed out is undone too should the step fail for good. */
static int remote(bk_upstream_t *u, const char *method, const char *path, const json_t *doc,
                  const bk_saga_call_t *call, const char *key, bool gone_ok, json_t **body, bk_error_t *err)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    static const char *const json_headers[] = {"Content-Type: application/json", NULL};
    bk_upstream_request_t rq = {.method = method, .path = path, .headers = text ? json_headers : NULL,
                                .body = text, .body_len = text ? strlen(text) : 0, .idempotency_key = key};
    bk_upstream_response_t rs;
    int rc = bk_upstream_call(u, &rq, &rs, err);
    free(text);
    if (body != NULL)
        *body = NULL;
    bool gone = gone_ok && rs.status == 404;
    if (rc == BK_OK && (rs.status < 200 || rs.status > 299) && !gone)
        rc = app_error(err, BK_EUPSTREAM, "%s %s answered HTTP %d", method, path, rs.status);
    if (rc == BK_OK && body != NULL && !gone)
        *body = json_loadb(rs.body ? rs.body : "", rs.body_len, 0, NULL);
    if (rc != BK_OK && rs.unanswered > 0 && call != NULL)
        bk_saga_maybe_applied(call);
    bk_upstream_response_free(&rs);
    return rc;
}

/* The id a service gave in its answer ({"id": "..."}), copied into out.
 * Without one the step fails, though the service carried it out (a 2xx). */
static int answer_id(const bk_saga_call_t *call, json_t *body, char *out, size_t size, bk_error_t *err)
{
    const char *id = json_string_value(json_object_get(body, "id"));
    if (id == NULL || strlen(id) >= size) {
        bk_saga_maybe_applied(call);
        json_decref(body);
        return app_error(err, BK_EUPSTREAM, "the answer has no id");
    }
    snprintf(out, size, "%s", id);
    json_decref(body);
    return BK_OK;
}

/* ------------------------------------------------------------------ reserve_stock */
struct reserve {
    long long order_id;
    const char *items; /* the context's items, as JSON text */
    char (*products)[24]; /* the products touched, for the invalidations */
    size_t nproducts;
    bool short_of_stock;
};

/* Takes what the order wants from stock into reserved, all or nothing, once:
 * an order's reservations exist already when the step runs again. */
static int reserve_tx(bk_db_conn_t *c, void *ud)
{
    struct reserve *r = ud;
    char id[24];
    snprintf(id, sizeof id, "%lld", r->order_id);
    r->nproducts = 0;
    r->short_of_stock = false;
    bk_db_result_t *res;
    int rc = bk_db_query(c,
                         "INSERT INTO backendd.reservations (order_id, product_id, quantity)"
                         " SELECT $1, (e->>'product_id')::bigint, sum((e->>'quantity')::int)"
                         " FROM jsonb_array_elements($2::jsonb) e GROUP BY 2 ORDER BY 2"
                         " ON CONFLICT DO NOTHING RETURNING product_id",
                         (bk_db_param_t[]){BK_DB_TEXT(id), BK_DB_TEXT(r->items)}, 2, &res, NULL);
    if (rc != BK_OK)
        return rc;
    size_t n = bk_db_rows(res);
    bk_db_result_free(res);
    if (n == 0)
        return BK_OK; /* reserved by an earlier attempt */
    /* The rows locked in the order of their ids, as every order locks them:
     * two orders of the same products never wait for each other in a cycle. */
    rc = bk_db_query(c,
                     "WITH locked AS (SELECT p.id FROM backendd.products p JOIN backendd.reservations r"
                     " ON r.product_id = p.id AND r.order_id = $1 ORDER BY p.id FOR UPDATE OF p)"
                     " UPDATE backendd.products p SET stock = p.stock - r.quantity, reserved = p.reserved + r.quantity,"
                     " version = p.version + 1, updated_at = now()"
                     " FROM backendd.reservations r WHERE r.order_id = $1 AND r.product_id = p.id"
                     " AND p.id IN (SELECT id FROM locked) AND p.stock >= r.quantity RETURNING p.id",
                     (bk_db_param_t[]){BK_DB_TEXT(id)}, 1, &res, NULL);
    if (rc != BK_OK)
        return rc;
    size_t moved = bk_db_rows(res);
    free(r->products);
    r->products = calloc(moved ? moved : 1, sizeof *r->products);
    for (size_t i = 0; r->products && i < moved; i++)
        snprintf(r->products[i], sizeof r->products[i], "%s", bk_db_value(res, i, 0));
    r->nproducts = r->products ? moved : 0;
    bk_db_result_free(res);
    if (moved < n) { /* a product short (or gone): nothing of this order is kept */
        r->short_of_stock = true;
        r->nproducts = 0;
        return BK_ECONFLICT;
    }
    return BK_OK;
}

static int reserve_stock(const bk_saga_call_t *call, json_t **out, bk_error_t *err, void *ud)
{
    (void)out;
    struct app *app = ud;
    char *items = json_dumps(json_object_get(call->context, "items"), JSON_COMPACT);
    struct reserve r = {.order_id = ctx_int(call->context, "order_id"), .items = items};
    bk_error_t dberr;
    int rc = items ? bk_db_tx(app->db, BK_DB_READ_COMMITTED, NULL, reserve_tx, &r, &dberr) : BK_ENOMEM;
    free(items);
    for (size_t i = 0; rc == BK_OK && i < r.nproducts; i++)
        product_invalidate(app, NULL, r.products[i]); /* its stock changed */
    free(r.products);
    if (r.short_of_stock)
        return step_failed(err, call->step, BK_ECONFLICT, "not enough stock for the order");
    if (rc != BK_OK)
        return step_failed(err, call->step, rc, rc == BK_ENOMEM ? "out of memory" : dberr.message);
    return BK_OK;
}

/* Gives back what the order reserved, once. */
static int release_stock(const bk_saga_call_t *call, bk_error_t *err, void *ud)
{
    struct app *app = ud;
    char id[24];
    snprintf(id, sizeof id, "%lld", ctx_int(call->context, "order_id"));
    json_t *rows;
    int rc = app_query(app,
                       "WITH r AS (UPDATE backendd.reservations SET released = true"
                       " WHERE order_id = $1 AND NOT released RETURNING product_id, quantity)"
                       " UPDATE backendd.products p SET stock = p.stock + r.quantity, reserved = p.reserved - r.quantity,"
                       " version = p.version + 1, updated_at = now() FROM r WHERE p.id = r.product_id"
                       " RETURNING p.id::text AS id",
                       (bk_db_param_t[]){BK_DB_TEXT(id)}, 1, &rows, err);
    if (rc != BK_OK)
        return rc;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
        product_invalidate(app, NULL, json_string_value(json_object_get(row, "id")));
    json_decref(rows);
    return BK_OK;
}

/* ------------------------------------------------------------------ charge_payment */
static int charge(struct app *app, const bk_saga_call_t *call, char *payment, size_t size, bk_error_t *err)
{
    json_t *doc = json_pack("{s:I, s:s, s:I}", "amount", (json_int_t)ctx_int(call->context, "total"), "currency",
                            json_string_value(json_object_get(call->context, "currency")), "order",
                            (json_int_t)ctx_int(call->context, "order_id"));
    json_t *body;
    int rc = remote(app->payment, "POST", "/payments", doc, call, call->idempotency_key, false, &body, err);
    json_decref(doc);
    return rc == BK_OK ? answer_id(call, body, payment, size, err) : rc;
}

/* The failure of a call (err filled by it) as the step's: "STEP [BK_CODE]: ...". */
static int step_call_failed(bk_error_t *err, const char *step, int rc)
{
    char detail[sizeof err->message];
    snprintf(detail, sizeof detail, "%s", err->message);
    return step_failed(err, step, rc, detail);
}

/* What an action makes at a service (a charge, a shipment): its id in id. */
typedef int (*make_fn)(struct app *app, const bk_saga_call_t *call, char *id, size_t size, bk_error_t *err);

/* An action that makes something at a service, its id kept in the context as name. */
static int make_step(struct app *app, const bk_saga_call_t *call, make_fn make, const char *name, json_t **out,
                     bk_error_t *err)
{
    char id[128];
    int rc = make(app, call, id, sizeof id, err);
    if (rc != BK_OK)
        return step_call_failed(err, call->step, rc);
    *out = json_pack("{s:s}", name, id);
    return BK_OK;
}

/* Its compensation: METHOD prefix + id + suffix, with the step's key (a 404:
 * nothing to undo). Without the id (the action's worker died before recording
 * it) the action is asked again with its key: the service answers the first
 * one if it took effect (or makes it now), and that is undone. */
static int undo_step(struct app *app, const bk_saga_call_t *call, make_fn make, const char *name, bk_upstream_t *u,
                     const char *method, const char *prefix, const char *suffix, bk_error_t *err)
{
    char id[128], path[192];
    const char *known = json_string_value(json_object_get(call->context, name));
    int rc = BK_OK;
    if (known != NULL)
        snprintf(id, sizeof id, "%s", known);
    else
        rc = make(app, call, id, sizeof id, err);
    if (rc != BK_OK)
        return rc;
    snprintf(path, sizeof path, "%s%s%s", prefix, id, suffix);
    return remote(u, method, path, NULL, call, call->idempotency_key, true, NULL, err);
}

static int charge_payment(const bk_saga_call_t *call, json_t **out, bk_error_t *err, void *ud)
{
    return make_step(ud, call, charge, "payment_id", out, err);
}

static int refund_payment(const bk_saga_call_t *call, bk_error_t *err, void *ud)
{
    struct app *app = ud;
    return undo_step(app, call, charge, "payment_id", app->payment, "POST", "/payments/", "/refund", err);
}

/* ------------------------------------------------------------------ create_order */
static int create_order(const bk_saga_call_t *call, json_t **out, bk_error_t *err, void *ud)
{
    (void)out;
    char id[24];
    snprintf(id, sizeof id, "%lld", ctx_int(call->context, "order_id"));
    int rc = app_query(ud,
                       "UPDATE backendd.orders SET status = 'placed', payment_id = $2, updated_at = now()"
                       " WHERE id = $1 AND status = 'pending'",
                       (bk_db_param_t[]){BK_DB_TEXT(id),
                                         BK_DB_TEXT(json_string_value(json_object_get(call->context, "payment_id")))},
                       2, NULL, err);
    return rc == BK_OK ? BK_OK : step_call_failed(err, call->step, rc);
}

/* ------------------------------------------------------------------ schedule_shipping */
static int ship(struct app *app, const bk_saga_call_t *call, char *shipment, size_t size, bk_error_t *err)
{
    json_t *doc = json_pack("{s:I, s:O}", "order", (json_int_t)ctx_int(call->context, "order_id"), "items",
                            json_object_get(call->context, "items"));
    json_t *body;
    int rc = remote(app->shipping, "POST", "/shipments", doc, call, call->idempotency_key, false, &body, err);
    json_decref(doc);
    return rc == BK_OK ? answer_id(call, body, shipment, size, err) : rc;
}

static int schedule_shipping(const bk_saga_call_t *call, json_t **out, bk_error_t *err, void *ud)
{
    return make_step(ud, call, ship, "shipment_id", out, err);
}

static int cancel_shipment(const bk_saga_call_t *call, bk_error_t *err, void *ud)
{
    struct app *app = ud;
    return undo_step(app, call, ship, "shipment_id", app->shipping, "DELETE", "/shipments/", "", err);
}

/* ------------------------------------------------------------------ the outcome */
/* In the transaction of the saga's outcome: the order's status, and for a
 * completed order its confirmation, enqueued once (its unique key). */
static int order_finished(const bk_saga_outcome_t *o, bk_db_conn_t *conn, bk_error_t *err, void *ud)
{
    struct app *app = ud;
    long long order = ctx_int(o->context, "order_id");
    char id[24];
    snprintf(id, sizeof id, "%lld", order);
    int rc = bk_db_query(conn,
                         "UPDATE backendd.orders SET status = $2, payment_id = coalesce($3, payment_id),"
                         " shipment_id = coalesce($4, shipment_id), updated_at = now() WHERE id = $1",
                         (bk_db_param_t[]){BK_DB_TEXT(id), BK_DB_TEXT(o->status),
                                           BK_DB_TEXT(json_string_value(json_object_get(o->context, "payment_id"))),
                                           BK_DB_TEXT(json_string_value(json_object_get(o->context, "shipment_id")))},
                         4, NULL, err);
    if (rc != BK_OK || strcmp(o->status, "completed") != 0)
        return rc;
    char unique[64];
    snprintf(unique, sizeof unique, CONFIRMATION ":%lld", order);
    bk_jobs_enqueue_opts_t eo;
    bk_jobs_enqueue_opts_init(&eo);
    eo.queue = "notify";
    eo.unique_key = unique;
    json_t *args = json_pack("{s:I, s:I}", "order_id", (json_int_t)order, "user_id",
                             (json_int_t)ctx_int(o->context, "user_id"));
    rc = bk_jobs_enqueue(app->jobs, conn, CONFIRMATION, args, &eo, NULL, err);
    json_decref(args);
    return rc == BK_EEXIST ? BK_OK : rc;
}

/* The confirmation: one notification per order, its key the order's. */
static int send_confirmation(bk_job_t *job, void *ud)
{
    struct app *app = ud;
    const json_t *args = bk_job_args(job);
    long long order = ctx_int(args, "order_id");
    char key[64];
    snprintf(key, sizeof key, "order-%lld/confirmation", order);
    json_t *doc = json_pack("{s:s, s:I, s:I}", "template", CONFIRMATION, "order", (json_int_t)order, "user",
                            (json_int_t)ctx_int(args, "user_id"));
    bk_error_t err;
    int rc = remote(app->notify, "POST", "/notifications", doc, NULL, key, false, NULL, &err);
    json_decref(doc);
    if (rc != BK_OK)
        bk_job_error(job, err.message);
    return rc;
}

/* Forgets the Idempotency-Keys past their retention: a key then places a new order. */
static int forget_keys(bk_job_t *job, void *ud)
{
    struct app *app = ud;
    char secs[32];
    snprintf(secs, sizeof secs, "%lld", (long long)(app->conf.idempotency_retention_ns / BK_NSEC_PER_SEC));
    bk_error_t err;
    int rc = app_query(app,
                       "UPDATE backendd.orders SET idempotency_key = NULL, request_hash = NULL"
                       " WHERE idempotency_key IS NOT NULL AND created_at < now() - $1::bigint * interval '1 second'",
                       (bk_db_param_t[]){BK_DB_TEXT(secs)}, 1, NULL, &err);
    if (rc != BK_OK)
        bk_job_error(job, err.message);
    return rc;
}

/* ------------------------------------------------------------------ open, start, close */
static int open_upstream(struct app *app, const char *name, const char *url, bk_upstream_t **out, bk_error_t *err)
{
    const struct conf *c = &app->conf;
    bk_breaker_opts_t bo;
    bk_breaker_opts_init(&bo);
    /* Open within ten failed calls in a row: half of a window of 20 fails,
     * once 10 calls are in it. */
    bo.window_size = 20;
    bo.min_calls = 10;
    bo.failure_threshold = 0.5;
    bo.open_ns = c->upstream_breaker_open_ns;
    bo.slow_call_ns = c->upstream_timeout_ns;
    bk_retry_opts_t ro;
    bk_retry_opts_init(&ro);
    ro.max_attempts = 3;
    ro.base_ns = 50 * BK_NSEC_PER_MSEC;
    ro.cap_ns = 500 * BK_NSEC_PER_MSEC;
    bk_upstream_opts_t uo;
    bk_upstream_opts_init(&uo);
    uo.timeout_ns = c->upstream_timeout_ns;
    uo.connect_timeout_ns = c->upstream_timeout_ns;
    uo.deadline_ns = 3 * c->upstream_timeout_ns + BK_NSEC_PER_SEC;
    uo.breaker = &bo;
    uo.retry = &ro;
    uo.metrics = app->metrics;
    int rc = bk_upstream_new(name, url, &uo, out, err);
    if (rc != BK_OK) {
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err->message);
        return app_error(err, rc, "%s_url: %s", name, msg);
    }
    return BK_OK;
}

/* The saga's steps, in order, and the service each calls (NULL: the database). */
static const struct {
    const char *name;
    bk_saga_action_fn action;
    bk_saga_compensate_fn compensate;
    unsigned attempts;
    const char *service;
} STEPS[] = {
    {"reserve_stock", reserve_stock, release_stock, 1, NULL}, /* short of stock stays short */
    {"charge_payment", charge_payment, refund_payment, 2, "payment"},
    {"create_order", create_order, NULL, 3, NULL},
    {"schedule_shipping", schedule_shipping, cancel_shipment, 2, "shipping"},
};

const char *order_step_service(const char *step)
{
    for (size_t i = 0; step != NULL && i < sizeof STEPS / sizeof *STEPS; i++)
        if (strcmp(STEPS[i].name, step) == 0)
            return STEPS[i].service;
    return NULL;
}

static int define_saga(struct app *app, bk_error_t *err)
{
    bk_retry_opts_t retry;
    bk_retry_opts_init(&retry);
    /* An action's one retry comes soon (the client waits); a compensation's
     * grow to 30 s apart, minutes in all, to outlast a service's outage. */
    retry.base_ns = 200 * BK_NSEC_PER_MSEC;
    retry.cap_ns = 30 * BK_NSEC_PER_SEC;
    int rc = bk_saga_def_new("order", 1, &app->order_saga, err);
    for (size_t i = 0; rc == BK_OK && i < sizeof STEPS / sizeof *STEPS; i++) {
        bk_saga_step_opts_t so;
        bk_saga_step_opts_init(&so);
        so.max_attempts = STEPS[i].attempts;
        so.compensate_attempts = 20;
        so.retry = &retry;
        rc = bk_saga_def_step(app->order_saga, STEPS[i].name, STEPS[i].action, STEPS[i].compensate, &so, app);
    }
    if (rc == BK_OK)
        rc = bk_saga_def_on_finish(app->order_saga, order_finished, app);
    return rc == BK_OK ? BK_OK : app_error(err, rc, "the order saga: %s", bk_strerror(rc));
}

int orders_open(struct app *app, bk_error_t *err)
{
    const struct conf *c = &app->conf;
    if (c->payment_url == NULL) {
        bk_log(app->log, BK_LOG_INFO, NULL, "no orders: payment_url, shipping_url and notify_url are not set");
        return BK_OK;
    }
    int rc = open_upstream(app, "payment", c->payment_url, &app->payment, err);
    if (rc == BK_OK)
        rc = open_upstream(app, "shipping", c->shipping_url, &app->shipping, err);
    if (rc == BK_OK)
        rc = open_upstream(app, "notify", c->notify_url, &app->notify, err);
    if (rc != BK_OK)
        return rc;
    bk_retry_opts_t jr;
    bk_retry_opts_init(&jr);
    jr.base_ns = BK_NSEC_PER_SEC;
    jr.cap_ns = 60 * BK_NSEC_PER_SEC;
    bk_jobs_opts_t jo;
    bk_jobs_opts_init(&jo);
    jo.log = app->log;
    jo.metrics = app->metrics;
    jo.retry = &jr;
    jo.lease_ns = c->job_lease_ns;
    if ((rc = bk_jobs_new(app->db, &jo, &app->jobs, err)) != BK_OK)
        return rc;
    bk_saga_opts_t so;
    bk_saga_opts_init(&so);
    so.threads = c->saga_threads;
    so.log = app->log;
    so.metrics = app->metrics;
    if ((rc = define_saga(app, err)) != BK_OK || (rc = bk_saga_engine_new(app->jobs, &so, &app->sagas, err)) != BK_OK ||
        (rc = bk_saga_register(app->sagas, app->order_saga, err)) != BK_OK)
        return rc;
    bk_jobs_worker_opts_t wo;
    bk_jobs_worker_opts_init(&wo);
    wo.queue = "notify";
    wo.threads = 2;
    if ((rc = bk_jobs_worker_new(app->jobs, &wo, &app->notifier, err)) != BK_OK)
        return rc;
    if ((rc = bk_jobs_handle(app->notifier, CONFIRMATION, send_confirmation, app)) != BK_OK ||
        (rc = bk_jobs_handle(app->notifier, FORGET_KEYS, forget_keys, app)) != BK_OK ||
        (rc = bk_jobs_periodic(app->notifier, "backendd:" FORGET_KEYS, "@every 15m", FORGET_KEYS, NULL, NULL, err)) !=
            BK_OK)
        return app_error(err, rc, "the confirmation worker: %s", bk_strerror(rc));
    return BK_OK;
}

int orders_start(struct app *app, unsigned workers, bk_error_t *err)
{
    if (app->sagas == NULL)
        return BK_OK;
    /* A request waiting for its order holds a worker: were all of them held
     * (a slow or failing service), reads, logins and readiness would wait
     * behind them. Orders beyond half the workers are answered 202 at once. */
    int rc = bk_bulkhead_new(workers > 1 ? workers / 2 : 1, NULL, &app->order_waits);
    if (rc != BK_OK)
        return app_error(err, rc, "the order waits: %s", bk_strerror(rc));
    rc = bk_saga_engine_start(app->sagas, err);
    return rc == BK_OK ? bk_jobs_worker_start(app->notifier, err) : rc;
}

void orders_close(struct app *app)
{
    /* Steps cut short run again elsewhere, or here after a restart (the same keys). */
    if (app->sagas != NULL)
        bk_saga_engine_stop(app->sagas, bk_clock_mono_ns(NULL) + 10 * BK_NSEC_PER_SEC);
    if (app->notifier != NULL)
        bk_jobs_worker_stop(app->notifier, bk_clock_mono_ns(NULL) + 10 * BK_NSEC_PER_SEC);
    bk_saga_engine_free(app->sagas);
    bk_jobs_worker_free(app->notifier);
    bk_saga_def_free(app->order_saga);
    bk_jobs_free(app->jobs);
    bk_upstream_free(app->payment);
    bk_upstream_free(app->shipping);
    bk_upstream_free(app->notify);
    bk_schema_free(app->order_schema);
    bk_bulkhead_free(app->order_waits);
}
