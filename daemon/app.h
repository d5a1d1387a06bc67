/* backendd's parts, opened from its configuration (app.c), and the routes each
 * file adds (auth.c, users.c, products.c). Public API of libbackend only.
 * SPDX-License-Identifier: MIT */
#ifndef BACKENDD_APP_H
#define BACKENDD_APP_H

#include <stdatomic.h>
#include <stdbool.h>

#include <backend/backend.h>

#include "conf.h"

struct app {
    struct conf conf;
    bool dev;
    bk_log_t *log, *access_log;
    bk_db_t *db;
    bk_cache_t *cache;
    bk_jwt_keys_t *keys;
    bk_jwt_verify_opts_t verify;
    bk_rbac_t *rbac;
    bk_password_policy_t password;
    char dummy_hash[BK_PASSWORD_HASH_MAX]; /* verified when an email is unknown (auth.c) */
    bk_ratelimit_t *login_email, *login_address;
    bk_http_auth_t auth;
    bk_schema_t *register_schema, *login_schema, *refresh_schema;
    bk_schema_t *product_schema, *product_patch_schema, *product_query_schema, *page_query_schema,
        *role_schema;
    bk_metrics_t *metrics;
    /* Orders (order_saga.c), when the three services are configured. */
    bk_upstream_t *payment, *shipping, *notify;
    bk_jobs_t *jobs;
    bk_jobs_worker_t *notifier;
    bk_saga_engine_t *sagas;
    bk_saga_def_t *order_saga;
    bk_schema_t *order_schema;
    bk_bulkhead_t *order_waits; /* the workers that may wait for an order's outcome */
    bk_http_server_t *servers[CONF_MAX_LIST];
    size_t nservers;
    atomic_bool migrated;
};

/* Opens everything the configuration names: logs, keys, policy, database (and
 * migrates it), cache, limits, schemas. Messages go to the log (or stderr). */
int app_open(struct app *app, bk_error_t *err);
void app_close(struct app *app);
/* SIGHUP: reads the configuration file and the environment again and, when they
 * have no problem, gives app->keys the key set they name, at once for every
 * request (a new current key signs; the others verify until removed). On a
 * problem (logged, one line each) or a key refused, the keys stay as they were.
 * Only the keys: the other settings take effect at the next start. */
int app_reload_keys(struct app *app, bk_error_t *err);
/* The migrations of the service's tables (schema.c). */
int app_migrate(struct app *app, bk_error_t *err);
/* --dev: the signing key in the state directory (made once), sample products and
 * an admin account, whose credentials are printed once (dev.c). */
int dev_key(const struct app *app, bk_jwt_keys_t *keys, bk_error_t *err);
int dev_seed(struct app *app, bk_error_t *err);

/* Orders (order_saga.c): the services, the job queue, the saga engine and the
 * confirmation worker, made and migrated (nothing runs yet); BK_OK and nothing
 * made without the three service URLs. orders_start starts the engine and the
 * worker (not for --migrate-only), and lets half the route workers (at least
 * one) wait for orders' outcomes; orders_close stops and frees them. */
int orders_open(struct app *app, bk_error_t *err);
int orders_start(struct app *app, unsigned workers, bk_error_t *err);
void orders_close(struct app *app);
/* The service a step of the order saga calls ("payment", "shipping"), or NULL
 * for a step of the database's or an unknown one. */
const char *order_step_service(const char *step);
/* Removes the cached answer of product id (products.c), after a write or a
 * stock change; a failure is logged, with the request's ids when req is not
 * NULL (a saga step has none). */
void product_invalidate(struct app *app, bk_req_t *req, const char *id);

/* The routes: each file's own. */
int auth_routes(struct app *app, bk_http_server_t *srv);
int users_routes(struct app *app, bk_http_server_t *srv);
int products_routes(struct app *app, bk_http_server_t *srv);
int orders_routes(struct app *app, bk_http_server_t *srv);

/* Shared by the route files (app.c). */
/* A compiled schema from its JSON text (a constant of the program). */
bk_schema_t *app_schema(const char *text);
/* The claims' user id ("sub" as an integer), 0 when absent. */
long long app_user_id(const json_t *claims);
/* Fills *err (code and message, printf-style) and returns code. */
int app_error(bk_error_t *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Answers a database or cache failure (logged with the request's ids). */
void app_fail(struct app *app, bk_req_t *req, int rc, const bk_error_t *err, const char *what);
/* One statement on a pooled connection (acquired and released here); its rows
 * as JSON objects in *rows (NULL to drop them). */
int app_query(struct app *app, const char *sql, const bk_db_param_t *params, size_t n, json_t **rows,
              bk_error_t *err);
/* The same on c (a transaction's connection). */
int app_query_on(bk_db_conn_t *c, const char *sql, const bk_db_param_t *params, size_t n, json_t **rows,
                 bk_error_t *err);
/* Answers a page of a list (a route whose query has page and per_page, coerced
 * and defaulted): sql selects the rows with "count(*) OVER () AS list_total",
 * "LIMIT $1 OFFSET $2", and extra[0..n) (n <= 6) as $3...; count_sql counts
 * them all, with extra as $1... (a page past the end, where the window counts
 * nothing). 200 {items, total, page, per_page, total_pages}, or the failure
 * ("listing WHAT"). On the replica. */
void app_list(struct app *app, bk_req_t *req, const char *sql, const char *count_sql, const bk_db_param_t *extra,
              size_t n, const char *what);
/* The same on a replica (database_read_url; the primary without one): for lists,
 * which may lag a write by the replica's delay, never for a read-back. */
int app_query_read(struct app *app, const char *sql, const bk_db_param_t *params, size_t n, json_t **rows,
                   bk_error_t *err);

#endif
