/* Orders: POST places one through its saga (order_saga.c), exactly once per
 * Idempotency-Key of its user, and answers the outcome; GET reads one (its
 * owner, or orders:read:any) or a page of them (the caller's own; all of them
 * for orders:read:any).
 *
 * The order row is made first, with the key and the request's hash, so that
 * a repeated request finds it (the same body: the first answer again, once
 * the saga has one; another body: 422), and a failure has an order to name.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define ORDER_COLUMNS "id, user_id, status, items, total, currency, saga_id, created_at, updated_at"

/* An Idempotency-Key: 1 to 200 visible ASCII characters. */
static bool key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return false;
    return n >= 1 && n <= 200;
}

/* The code whose name bk_err_name gives (order_saga.c writes it in a failed
 * step's error: "STEP [BK_CODE]: detail"). Without one the step failed for a
 * reason of the engine's (its worker died, the saga was cancelled):
 * BK_EUNAVAIL, worth another order soon. */
static int code_of(const char *error, const char **detail)
{
    const char *open = error ? strchr(error, '[') : NULL;
    const char *close = open ? strstr(open, "]: ") : NULL;
    *detail = close ? close + 3 : error ? error : "the order failed";
    if (close == NULL)
        return BK_EUNAVAIL;
    for (int code = -1; code > -256; code--) {
        const char *name = bk_err_name(code);
        if (strlen(name) == (size_t)(close - open - 1) && strncmp(name, open + 1, (size_t)(close - open - 1)) == 0)
            return code;
    }
    return BK_EUNAVAIL;
}

/* The saga's steps as an order shows them: [{name, status, attempts}]. */
static json_t *order_steps(const json_t *saga)
{
    json_t *out = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(saga, "steps"), i, s)
        json_array_append_new(out, json_pack("{s:O, s:O, s:O}", "name", json_object_get(s, "name"), "status",
                                             json_object_get(s, "status"), "attempts",
                                             json_object_get(s, "attempts")));
    return out;
}

/* The name of the step that failed, or null (a stuck compensation): the step
 * whose status is failed or, in a compensated saga, the one its error names
 * ("STEP [BK_CODE]: ..."). A step whose action may have taken effect (a call
 * that timed out: bk_saga_maybe_applied) is compensated too, and its status
 * then says so instead. */
static json_t *failed_step(const json_t *saga)
{
    const char *error = json_string_value(json_object_get(saga, "error"));
    if (strcmp(json_string_value(json_object_get(saga, "status")), "compensated") != 0)
        error = NULL;
    json_t *named = NULL;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(saga, "steps"), i, s) {
        json_t *name = json_object_get(s, "name");
        if (strcmp(json_string_value(json_object_get(s, "status")), "failed") == 0)
            return json_incref(name);
        size_t n = strlen(json_string_value(name));
        if (error != NULL && strncmp(error, json_string_value(name), n) == 0 && strncmp(error + n, " [", 2) == 0)
            named = name;
    }
    return named ? json_incref(named) : json_null();
}

/* An order as it is shown: its row (saga_id left out) with the saga's steps. */
static json_t *order_view(json_t *row, const json_t *saga)
{
    json_t *o = json_deep_copy(row);
    json_object_del(o, "saga_id");
    json_object_set_new(o, "steps", saga ? order_steps(saga) : json_array());
    return o;
}

/* Answers the order of row with its saga's outcome: 201 with the order when
 * completed; problem+json with step and order_id when it compensated (the
 * status of the code that failed it) or is stuck (500). */
static void answer(bk_req_t *req, json_t *row, const json_t *saga)
{
    const char *status = json_string_value(json_object_get(saga, "status"));
    json_int_t id = json_integer_value(json_object_get(row, "id"));
    if (strcmp(status, "completed") == 0) {
        char location[64];
        snprintf(location, sizeof location, "/api/v1/orders/%lld", (long long)id);
        bk_res_header(req, "Location", location);
        json_t *o = order_view(row, saga);
        json_object_set_new(o, "status", json_string("completed"));
        json_object_del(o, "updated_at"); /* of the row as read first: a replay answers the same */
        bk_res_json(req, 201, o);
        return;
    }
    const char *detail = "the order could not be undone whole: an operator will settle it";
    int code = BK_EIO;
    if (strcmp(status, "stuck") != 0)
        code = code_of(json_string_value(json_object_get(saga, "error")), &detail);
    json_t *step = failed_step(saga);
    json_t *members = json_pack("{s:o, s:I, s:s}", "step", step, "order_id", id, "order_status", status);
    const char *service = order_step_service(json_string_value(step));
    if (service != NULL && members != NULL) /* the upstream that failed it, for 502, 503 and 504 */
        json_object_set_new(members, "service", json_string(service));
    bk_res_error_ext(req, code, detail, members);
}

/* ------------------------------------------------------------------ place */
/* An order placed in one transaction: its row and its saga, or neither (an
 * outage between the two would leave an order pending that nothing runs). */
struct placed {
    struct app *app;
    const char *user, *key, *body; /* the request's */
    json_t *row;      /* the order's row */
    bool fresh;       /* made by this request */
    bool same;        /* the request's body is the one that made it */
    int64_t saga_id;  /* its saga's, when same */
    bk_error_t *err;
};

/* The order of (user, key) on c: made now with its items priced, or the one
 * that exists. A key past its retention is forgotten first (the periodic job
 * forgets the others), so that it places a new order. BK_ENOTFOUND: none, and
 * none made (an item names no product, or the items' currencies differ). */
static int find_or_make(bk_db_conn_t *c, struct placed *p)
{
    static const char sql[] =
        "WITH expired AS (UPDATE backendd.orders SET idempotency_key = NULL, request_hash = NULL"
        "  WHERE user_id = $1 AND idempotency_key = $2 AND created_at < now() - $4::bigint * interval '1 second'"
        "  RETURNING id),"
        " want AS (SELECT (e->>'product_id')::bigint AS product_id, (e->>'quantity')::int AS quantity, ord"
        " FROM jsonb_array_elements($3::jsonb->'items') WITH ORDINALITY AS t(e, ord)),"
        " priced AS (SELECT w.*, p.price, p.currency FROM want w JOIN backendd.products p ON p.id = w.product_id),"
        " ins AS (INSERT INTO backendd.orders (user_id, idempotency_key, request_hash, items, total, currency)"
        "  SELECT $1, $2, md5($3::jsonb::text), jsonb_agg(jsonb_build_object('product_id', product_id, 'quantity', quantity,"
        "  'price', price) ORDER BY ord), sum(price * quantity)::bigint, min(currency) FROM priced"
        "  HAVING count(*) = (SELECT count(*) FROM want) AND count(DISTINCT currency) = 1"
        "  ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING " ORDER_COLUMNS ")"
        " SELECT " ORDER_COLUMNS ", true AS fresh, true AS same FROM ins"
        " UNION ALL SELECT " ORDER_COLUMNS ", false, request_hash = md5($3::jsonb::text) FROM backendd.orders"
        " WHERE user_id = $1 AND idempotency_key = $2 AND id NOT IN (SELECT id FROM expired)"
        " AND NOT EXISTS (SELECT 1 FROM ins)";
    char retention[24];
    snprintf(retention, sizeof retention, "%lld",
             (long long)(p->app->conf.idempotency_retention_ns / BK_NSEC_PER_SEC));
    json_t *rows = NULL;
    int rc = BK_OK;
    /* Twice: a first request with the key that commits while this statement
     * runs is seen by neither branch of it, but by the next statement. */
    for (int i = 0; i < 2 && rc == BK_OK && json_array_size(rows) == 0; i++) {
        json_decref(rows);
        rc = app_query_on(c, sql,
                          (bk_db_param_t[]){BK_DB_TEXT(p->user), BK_DB_TEXT(p->key), BK_DB_TEXT(p->body),
                                            BK_DB_TEXT(retention)},
                          4, &rows, p->err);
    }
    if (rc != BK_OK)
        return rc;
    json_t *row = json_array_get(rows, 0);
    if (row == NULL) {
        json_decref(rows);
        return BK_ENOTFOUND;
    }
    p->fresh = json_is_true(json_object_get(row, "fresh"));
    p->same = json_is_true(json_object_get(row, "same"));
    json_object_del(row, "fresh");
    json_object_del(row, "same");
    p->row = json_incref(row);
    json_decref(rows);
    return BK_OK;
}

/* The order's saga on c: started now (its key the order's id, so that a
 * second start finds the first), and its id kept with the order. */
static int start_saga(bk_db_conn_t *c, struct app *app, json_t *row, int64_t *saga_id, bk_error_t *err)
{
    json_t *sid = json_object_get(row, "saga_id");
    if (json_is_integer(sid)) {
        *saga_id = json_integer_value(sid);
        return BK_OK;
    }
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(row, "id")));
    json_t *ctx = json_pack("{s:O, s:O, s:O, s:O, s:O}", "order_id", json_object_get(row, "id"), "user_id",
                            json_object_get(row, "user_id"), "items", json_object_get(row, "items"), "total",
                            json_object_get(row, "total"), "currency", json_object_get(row, "currency"));
    int rc = bk_saga_start_in(app->sagas, c, app->order_saga, id, ctx, saga_id, err);
    json_decref(ctx);
    if (rc != BK_OK && rc != BK_EEXIST)
        return rc;
    char sids[24];
    snprintf(sids, sizeof sids, "%lld", (long long)*saga_id);
    return app_query_on(c, "UPDATE backendd.orders SET saga_id = $2 WHERE id = $1 AND saga_id IS NULL",
                        (bk_db_param_t[]){BK_DB_TEXT(id), BK_DB_TEXT(sids)}, 2, NULL, err);
}

static int place_tx(bk_db_conn_t *c, void *ud)
{
    struct placed *p = ud;
    json_decref(p->row); /* a conflict runs it again */
    p->row = NULL;
    int rc = find_or_make(c, p);
    return rc == BK_OK && p->same ? start_saga(c, p->app, p->row, &p->saga_id, p->err) : rc;
}

static void h_place(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    const char *key = bk_req_header(req, "Idempotency-Key");
    if (!key_ok(key)) {
        bk_res_error(req, BK_EINVAL, "the Idempotency-Key header is required: 1 to 200 visible characters");
        return;
    }
    json_t *body;
    if (bk_req_json(req, &body) != BK_OK)
        return;
    char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS); /* one text per body, for its hash */
    json_decref(body);
    char user[24];
    snprintf(user, sizeof user, "%lld", app_user_id(bk_req_claims(req)));
    bk_error_t err;
    struct placed p = {.app = app, .user = user, .key = key, .body = text, .err = &err};
    int rc = text ? bk_db_tx(app->db, BK_DB_READ_COMMITTED, NULL, place_tx, &p, &err) : BK_ENOMEM;
    free(text);
    if (rc != BK_OK) { /* rolled back: nothing was made */
        json_decref(p.row);
        if (rc == BK_ENOTFOUND)
            bk_res_problem(req, 422, "an item names no product, or the items' currencies differ", NULL);
        else
            app_fail(app, req, rc, &err, "placing an order");
        return;
    }
    if (!p.same) {
        bk_res_problem(req, 422, "this Idempotency-Key was used with another body", NULL);
        json_decref(p.row);
        return;
    }
    json_t *saga = NULL;
    /* With every waiting slot taken, it is only looked at (202 unless over). */
    bool wait = bk_bulkhead_enter(app->order_waits) == BK_OK;
    rc = bk_saga_wait(app->sagas, p.saga_id, bk_clock_mono_ns(NULL) + (wait ? app->conf.order_wait_ns : 0), &saga,
                      &err);
    if (wait)
        bk_bulkhead_leave(app->order_waits);
    if (rc == BK_ETIMEDOUT && p.fresh) { /* still running: where to look */
        char location[64];
        snprintf(location, sizeof location, "/api/v1/orders/%lld", (long long)json_integer_value(json_object_get(p.row, "id")));
        bk_res_header(req, "Location", location);
        bk_res_json(req, 202, order_view(p.row, saga));
    } else if (rc == BK_ETIMEDOUT) {
        bk_res_header(req, "Retry-After", "1");
        bk_res_problem(req, 409, "the order of this Idempotency-Key is still being placed", NULL);
    } else if (rc != BK_OK) {
        app_fail(app, req, rc, &err, "placing an order");
    } else {
        answer(req, p.row, saga);
    }
    json_decref(saga);
    json_decref(p.row);
}

/* ------------------------------------------------------------------ read */
static void h_get(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    const char *id = bk_req_param(req, "id");
    size_t n = strlen(id);
    if (n == 0 || n > 18 || strspn(id, "0123456789") != n) {
        bk_res_error(req, BK_ENOTFOUND, "no such order");
        return;
    }
    char user[24];
    snprintf(user, sizeof user, "%lld", app_user_id(bk_req_claims(req)));
    json_t *rows;
    bk_error_t err;
    /* Another user's order is not even said to exist. */
    int rc = app_query(app, "SELECT " ORDER_COLUMNS " FROM backendd.orders WHERE id = $1 AND (user_id = $2 OR $3)",
                       (bk_db_param_t[]){BK_DB_TEXT(id), BK_DB_TEXT(user),
                                         BK_DB_TEXT(bk_req_allows(req, "orders:read:any") ? "true" : "false")},
                       3, &rows, &err);
    if (rc != BK_OK) {
        app_fail(app, req, rc, &err, "reading an order");
        return;
    }
    json_t *row = json_array_get(rows, 0);
    json_t *saga = NULL;
    if (row != NULL && json_is_integer(json_object_get(row, "saga_id")))
        bk_saga_get(app->sagas, json_integer_value(json_object_get(row, "saga_id")), &saga, NULL);
    if (row == NULL)
        bk_res_error(req, BK_ENOTFOUND, "no such order");
    else
        bk_res_json(req, 200, order_view(row, saga)); /* a pruned saga: no steps */
    json_decref(saga);
    json_decref(rows);
}

static void h_list(bk_req_t *req, void *ud)
{
    char user[24];
    snprintf(user, sizeof user, "%lld", app_user_id(bk_req_claims(req)));
    /* Everyone's for orders:read:any; the text, never the client's. */
    const bk_db_param_t who[] = {BK_DB_TEXT(user), BK_DB_TEXT(bk_req_allows(req, "orders:read:any") ? "true" : "false")};
    app_list(ud, req,
             "SELECT id, user_id, status, items, total, currency, created_at, updated_at,"
             " count(*) OVER () AS list_total FROM backendd.orders WHERE user_id = $3 OR $4 ORDER BY id DESC LIMIT $1 OFFSET $2",
             "SELECT count(*) AS n FROM backendd.orders WHERE user_id = $1 OR $2", who, 2, "the orders");
}

/* ------------------------------------------------------------------ routes */
int orders_routes(struct app *app, bk_http_server_t *srv)
{
    if (app->sagas == NULL)
        return BK_OK; /* no services configured: no orders */
    if (app->order_schema == NULL)
        app->order_schema = app_schema(
            "{\"title\":\"NewOrder\",\"type\":\"object\",\"required\":[\"items\"],\"additionalProperties\":false,"
            "\"properties\":{\"items\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":50,\"items\":{"
            "\"type\":\"object\",\"required\":[\"product_id\",\"quantity\"],\"additionalProperties\":false,"
            "\"properties\":{\"product_id\":{\"type\":\"integer\",\"minimum\":1},"
            "\"quantity\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100}}}}}}");
    const char *const tags[] = {"orders", NULL};
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.flags = BK_HTTP_BLOCKING | BK_HTTP_JSON;
    ro.auth = &app->auth;
    ro.permission = "orders:create";
    ro.body_schema = app->order_schema;
    ro.doc = &(bk_http_operation_t){
        .summary = "Place an order (Idempotency-Key required)", .tags = tags,
        .responses = (const bk_http_response_doc_t[]){
            {.status = 201, .description = "Placed: the order, its steps and Location."},
            {.status = 202, .description = "Still being placed: the order as it is, and Location."},
            {.status = 400, .description = "No Idempotency-Key."},
            {.status = 409, .description = "Out of stock (step, order_id), or the key's order is still being placed (Retry-After)."},
            {.status = 422, .description = "An unknown product, or the key was used with another body."},
            {.status = 502, .description = "A service answered an error (step, service, order_id); compensated."},
            {.status = 503, .description = "A service is unreachable or its breaker is open (Retry-After; step, service, order_id); compensated."},
            {.status = 504, .description = "A service timed out (step, service, order_id); compensated."}},
        .nresponses = 8};
    int rc = bk_http_route(srv, "POST", "/api/v1/orders", h_place, app, &ro);
    bk_http_route_opts_init(&ro);
    ro.flags = BK_HTTP_BLOCKING;
    ro.auth = &app->auth;
    ro.permission = "orders:read:own";
    ro.doc = &(bk_http_operation_t){.summary = "An order and its saga's steps (its owner, or orders:read:any)",
                                    .tags = tags};
    if (rc == BK_OK)
        rc = bk_http_route(srv, "GET", "/api/v1/orders/{id}", h_get, app, &ro);
    ro.query_schema = app->page_query_schema;
    ro.doc = &(bk_http_operation_t){.summary = "The caller's orders (everyone's for orders:read:any), newest first",
                                    .tags = tags};
    if (rc == BK_OK)
        rc = bk_http_route(srv, "GET", "/api/v1/orders", h_list, app, &ro);
    return rc;
}
