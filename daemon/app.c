/* Opening backendd's parts from its configuration, in the order each needs the
 * one before: logs, keys and policy (files the operator wrote: refused with the
 * file's name), the database (migrated), the cache, the limits, the schemas.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

extern char **environ;

/* The roles of the built-in policy (rbac_policy_file unset). */
static const char DEFAULT_POLICY[] =
    "{\"roles\":{"
    "\"customer\":{\"permissions\":[\"orders:create\",\"orders:read:own\"]},"
    "\"editor\":{\"inherits\":[\"customer\"],\"permissions\":[\"products:write\"]},"
    "\"admin\":{\"permissions\":[\"*\"]}}}";

bk_schema_t *app_schema(const char *text)
{
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    bk_schema_t *s = NULL;
    bk_error_t err;
    if (doc == NULL || bk_schema_compile(doc, NULL, &s, &err) != BK_OK) {
        /* The program's own constant: a mistake here is the developer's, found at once. */
        fprintf(stderr, "backendd: a built-in schema does not compile: %s\n", doc ? err.message : je.text);
        abort();
    }
    json_decref(doc);
    return s;
}

long long app_user_id(const json_t *claims)
{
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    return sub ? strtoll(sub, NULL, 10) : 0;
}

int app_error(bk_error_t *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return err->code = code;
}

int app_query_on(bk_db_conn_t *c, const char *sql, const bk_db_param_t *params, size_t n, json_t **rows,
                 bk_error_t *err)
{
    if (rows != NULL)
        *rows = NULL;
    bk_db_result_t *res = NULL;
    int rc = bk_db_query(c, sql, params, n, rows ? &res : NULL, err);
    if (rc == BK_OK && rows != NULL && (*rows = bk_db_result_json(res, 0)) == NULL)
        rc = BK_ENOMEM;
    bk_db_result_free(res);
    return rc;
}

static int query(struct app *app, bool read, const char *sql, const bk_db_param_t *params, size_t n,
                 json_t **rows, bk_error_t *err)
{
    if (rows != NULL)
        *rows = NULL;
    bk_db_conn_t *c;
    int rc = read ? bk_db_acquire_read(app->db, &c, err) : bk_db_acquire(app->db, &c, err);
    if (rc != BK_OK)
        return rc;
    rc = app_query_on(c, sql, params, n, rows, err);
    bk_db_release(c);
    return rc;
}

int app_query(struct app *app, const char *sql, const bk_db_param_t *params, size_t n, json_t **rows,
              bk_error_t *err)
{
    return query(app, false, sql, params, n, rows, err);
}

int app_query_read(struct app *app, const char *sql, const bk_db_param_t *params, size_t n, json_t **rows,
                   bk_error_t *err)
{
    return query(app, true, sql, params, n, rows, err);
}

void app_fail(struct app *app, bk_req_t *req, int rc, const bk_error_t *err, const char *what)
{
    bk_req_log(req, app->log, BK_LOG_ERROR,
               json_pack("{s:s, s:s}", "code", bk_err_name(rc), "error",
                         err && err->message[0] ? err->message : bk_strerror(rc)),
               "%s failed", what);
    /* The client learns the kind of failure, never the server's words. */
    bk_res_error(req, rc == BK_ETIMEDOUT || rc == BK_EUNAVAIL || rc == BK_EBUSY ? rc : BK_EIO, NULL);
}

static int open_logs(struct app *app, bk_error_t *err)
{
    const struct conf *c = &app->conf;
    bk_log_level_t level;
    bk_log_level_parse(c->log_level, &level); /* checked by the configuration */
    bk_log_opts_t lo;
    bk_log_opts_init(&lo);
    lo.level = level;
    lo.path = c->log_file;
    int rc = bk_log_new(&lo, &app->log, err);
    if (rc != BK_OK || (c->access_log_file != NULL && strcmp(c->access_log_file, "off") == 0))
        return rc;
    bk_log_opts_init(&lo);
    lo.path = c->access_log_file;
    return bk_log_new(&lo, &app->access_log, err);
}

/* The key set a configuration names (and, in --dev without one, the
 * development key): at start, and again for a reload. */
static int build_keys(const struct app *app, const struct conf *c, bk_jwt_keys_t **out, bk_error_t *err)
{
    bk_jwt_keys_t *keys;
    int rc = bk_jwt_keys_new(&keys);
    if (rc != BK_OK)
        return rc;
    const char *signing = c->jwt_signing_kid ? c->jwt_signing_kid
                          : c->njwt_keys       ? c->jwt_keys[c->njwt_keys - 1].kid
                                               : NULL;
    for (size_t i = 0; rc == BK_OK && i < c->njwt_keys; i++) {
        const struct conf_jwt_key *k = &c->jwt_keys[i];
        rc = bk_jwt_keys_add_file(keys, k->kid, k->alg, k->file, strcmp(k->kid, signing) == 0, err);
    }
    if (rc == BK_OK && c->njwt_keys == 0 && app->dev)
        rc = dev_key(app, keys, err);
    if (rc != BK_OK) {
        bk_jwt_keys_free(keys);
        return rc;
    }
    *out = keys;
    return BK_OK;
}

int app_reload_keys(struct app *app, bk_error_t *err)
{
    struct conf c;
    struct conf_problems problems;
    size_t n = conf_load(&c, app->conf.file, environ, app->dev, &problems);
    for (size_t i = 0; i < n; i++)
        bk_log(app->log, BK_LOG_ERROR, json_pack("{s:s}", "where", problems.items[i].where), "%s",
               problems.items[i].message);
    conf_problems_free(&problems);
    bk_jwt_keys_t *keys = NULL;
    int rc = n > 0 ? app_error(err, BK_EINVAL, "the configuration has %zu problem%s", n, n > 1 ? "s" : "")
                   : build_keys(app, &c, &keys, err);
    conf_free(&c);
    if (rc != BK_OK)
        return rc;
    /* The routes hold app->keys: its contents change, the pointer stays. */
    bk_jwt_keys_swap(app->keys, keys);
    bk_jwt_keys_free(keys);
    return BK_OK;
}

static int open_policy(struct app *app, bk_error_t *err)
{
    const char *file = app->conf.rbac_policy_file;
    json_error_t je;
    json_t *policy = file ? json_load_file(file, 0, &je) : json_loads(DEFAULT_POLICY, 0, &je);
    if (policy == NULL)
        return app_error(err, BK_EINVAL, "%s:%d: %s", file ? file : "built-in policy", je.line, je.text);
    int rc = bk_rbac_load(policy, &app->rbac, err);
    json_decref(policy);
    if (rc != BK_OK && file != NULL) {
        char msg[sizeof err->message];
        memcpy(msg, err->message, sizeof msg);
        app_error(err, rc, "%s: %s", file, msg);
    }
    return rc;
}

static int open_db(struct app *app, bk_error_t *err)
{
    const struct conf *c = &app->conf;
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.read_conninfo = c->database_read_url;
    o.max_conns = c->database_pool_size;
    o.transaction_pooling = c->database_transaction_pooling;
    o.application_name = "backendd";
    o.metrics = app->metrics;
    int rc = bk_db_new(c->database_url, &o, &app->db, err);
    if (rc != BK_OK && err && !c->database_transaction_pooling && strstr(err->message, "transaction_pooling")) {
        /* The library names its option; an operator needs the key. */
        char msg[sizeof err->message];
        memcpy(msg, err->message, sizeof msg);
        app_error(err, rc, "%s; in backendd.conf: database_transaction_pooling = on", msg);
    }
    return rc;
}

static int open_cache(struct app *app, bk_error_t *err)
{
    const char *servers = app->conf.memcached_servers;
    bk_cache_opts_t co;
    bk_cache_opts_init(&co);
    co.metrics = app->metrics; /* hits, stale, misses, loads, coalesced */
    if (servers == NULL)
        return bk_cache_memory_new(&co, &app->cache);
    bk_cache_memcached_opts_t mo;
    bk_cache_memcached_opts_init(&mo);
    mo.prefix = app->conf.memcached_prefix ? app->conf.memcached_prefix : "";
    mo.metrics = app->metrics; /* memcached's operations */
    mo.near_ttl_ns = app->conf.memcached_near_ttl_ns;
    return bk_cache_memcached_new(servers, &co, &mo, &app->cache, err);
}

/* The login limits: in memcached when there is one, so that every instance counts
 * the same failures; in process memory otherwise. */
static int open_limits(struct app *app)
{
    const struct conf *c = &app->conf;
    const struct { const struct conf_rate *rate; const char *name; bk_ratelimit_t **out; } limits[] = {
        {&c->login_rate_email, "login_email", &app->login_email},
        {&c->login_rate_address, "login_address", &app->login_address},
    };
    for (size_t i = 0; i < 2; i++) {
        bk_ratelimit_store_t st;
        int rc = c->memcached_servers ? bk_cache_ratelimit_store(app->cache, &st)
                                      : bk_ratelimit_memory_store(100000, &st);
        if (rc != BK_OK)
            return rc;
        bk_ratelimit_opts_t ro;
        bk_ratelimit_opts_init(&ro);
        ro.period_ns = limits[i].rate->period_ns;
        ro.burst = limits[i].rate->count;
        ro.name = limits[i].name;
        ro.metrics = app->metrics;
        /* The burst is the whole allowance; it refills over the period. */
        if ((rc = bk_ratelimit_new(limits[i].rate->count, &st, &ro, limits[i].out)) != BK_OK)
            return rc;
    }
    return BK_OK;
}

static void open_schemas(struct app *app)
{
    app->register_schema = app_schema(
        "{\"type\":\"object\",\"required\":[\"email\",\"password\",\"name\"],\"additionalProperties\":false,"
        "\"properties\":{"
        "\"email\":{\"type\":\"string\",\"maxLength\":254,"
        "\"pattern\":\"^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$\"},"
        "\"password\":{\"type\":\"string\",\"minLength\":12},"
        "\"name\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":100}}}");
    app->login_schema = app_schema(
        "{\"type\":\"object\",\"required\":[\"email\",\"password\"],"
        "\"properties\":{\"email\":{\"type\":\"string\",\"maxLength\":254},"
        "\"password\":{\"type\":\"string\"}}}");
    app->refresh_schema = app_schema(
        "{\"type\":\"object\",\"required\":[\"refresh_token\"],"
        "\"properties\":{\"refresh_token\":{\"type\":\"string\",\"maxLength\":200}}}");
    app->page_query_schema = app_schema(
        "{\"type\":\"object\",\"properties\":{"
        "\"page\":{\"type\":\"integer\",\"minimum\":1,\"default\":1},"
        "\"per_page\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100,\"default\":20}}}");
    app->role_schema = app_schema(
        "{\"type\":\"object\",\"required\":[\"role\"],\"additionalProperties\":false,"
        "\"properties\":{\"role\":{\"enum\":[\"customer\",\"editor\",\"admin\"]}}}");
}

int app_open(struct app *app, bk_error_t *err)
{
    const struct conf *c = &app->conf;
    int rc = open_logs(app, err);
    if (rc == BK_OK)
        rc = bk_metrics_new(&app->metrics);
    if (rc == BK_OK)
        rc = build_keys(app, c, &app->keys, err);
    if (rc == BK_OK)
        rc = open_policy(app, err);
    if (rc != BK_OK)
        return rc;
    bk_jwt_verify_opts_init(&app->verify);
    app->verify.iss = c->jwt_issuer;
    app->verify.aud = c->jwt_audience;
    app->verify.leeway_ns = 5 * BK_NSEC_PER_SEC;
    app->auth = (bk_http_auth_t){.keys = app->keys, .verify = &app->verify, .rbac = app->rbac};
    bk_password_policy_init(&app->password);
    app->password.memory_kib = c->argon2_memory_kib;
    app->password.iterations = c->argon2_iterations;
    app->password.parallelism = c->argon2_parallelism;
    /* The hash an unknown email is verified against, made now: it proves the
     * Argon2 parameters are ones the library takes, before anyone registers. */
    if ((rc = bk_password_hash(&app->password, "not a password", 14, app->dummy_hash, sizeof app->dummy_hash,
                               err)) != BK_OK) {
        char msg[sizeof err->message];
        memcpy(msg, err->message, sizeof msg);
        return app_error(err, rc, "argon2_memory_kib, argon2_iterations, argon2_parallelism: %s", msg);
    }
    open_schemas(app);
    if ((rc = open_db(app, err)) == BK_OK)
        rc = app_migrate(app, err);
    if (rc == BK_OK)
        rc = open_cache(app, err);
    if (rc == BK_OK)
        rc = open_limits(app);
    if (rc == BK_OK) /* the job and saga tables migrated too */
        rc = orders_open(app, err);
    if (rc == BK_OK)
        atomic_store(&app->migrated, true);
    return rc;
}

void app_close(struct app *app)
{
    for (size_t i = 0; i < app->nservers; i++)
        bk_http_server_free(app->servers[i]);
    orders_close(app); /* its steps use the database and the cache */
    bk_ratelimit_free(app->login_email);
    bk_ratelimit_free(app->login_address);
    bk_cache_free(app->cache);
    bk_db_free(app->db);
    bk_schema_t *schemas[] = {app->register_schema, app->login_schema, app->refresh_schema, app->product_schema,
                              app->product_patch_schema, app->product_query_schema, app->page_query_schema,
                              app->role_schema};
    for (size_t i = 0; i < sizeof schemas / sizeof *schemas; i++)
        bk_schema_free(schemas[i]);
    bk_rbac_free(app->rbac);
    bk_jwt_keys_free(app->keys);
    bk_metrics_free(app->metrics);
    bk_log_free(app->access_log);
    bk_log_free(app->log);
    conf_free(&app->conf);
}

void app_list(struct app *app, bk_req_t *req, const char *sql, const char *count_sql, const bk_db_param_t *extra,
              size_t n, const char *what)
{
    json_t *q = bk_req_query_json(req); /* borrowed: coerced, defaults filled */
    json_int_t page = json_integer_value(json_object_get(q, "page"));
    json_int_t per_page = json_integer_value(json_object_get(q, "per_page"));
    char limit[24], offset[24], doing[64];
    snprintf(limit, sizeof limit, "%lld", (long long)per_page);
    snprintf(offset, sizeof offset, "%lld", (long long)((page - 1) * per_page));
    snprintf(doing, sizeof doing, "listing %s", what);
    bk_db_param_t p[8] = {BK_DB_TEXT(limit), BK_DB_TEXT(offset)};
    for (size_t i = 0; i < n && i < 6; i++)
        p[2 + i] = extra[i];
    json_t *rows;
    bk_error_t err;
    int rc = app_query_read(app, sql, p, 2 + n, &rows, &err);
    if (rc != BK_OK) {
        app_fail(app, req, rc, &err, doing);
        return;
    }
    json_int_t total = json_integer_value(json_object_get(json_array_get(rows, 0), "list_total"));
    if (json_array_size(rows) == 0 && page > 1) { /* past the end: the window counted nothing */
        json_t *count;
        if ((rc = app_query_read(app, count_sql, extra, n, &count, &err)) != BK_OK) {
            json_decref(rows);
            app_fail(app, req, rc, &err, doing);
            return;
        }
        total = json_integer_value(json_object_get(json_array_get(count, 0), "n"));
        json_decref(count);
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
        json_object_del(row, "list_total");
    bk_res_json(req, 200, json_pack("{s:o, s:I, s:I, s:I, s:I}", "items", rows, "total", total, "page", page,
                                    "per_page", per_page, "total_pages", (total + per_page - 1) / per_page));
}
