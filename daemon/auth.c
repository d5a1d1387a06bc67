/* Accounts and sessions: register, login (Argon2id, a limit on failures per
 * address and per email shared through the cache), refresh (opaque single-use
 * tokens kept as their SHA-256, a reused one revoking its whole family) and
 * logout. Every route here is blocking: Argon2 and the database.
 * SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define USER_COLUMNS "id, email, name, role, created_at"

/* ------------------------------------------------------------------ tokens */
/* 32 random bytes as 64 hex digits. */
static int new_refresh_token(char out[65])
{
    unsigned char b[32];
    int rc = bk_random_bytes(b, sizeof b);
    for (size_t i = 0; rc == BK_OK && i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return rc;
}

/* The answer of a login or a refresh: a new access token for user (a row with id
 * and role) and the refresh token given. */
static void answer_tokens(struct app *app, bk_req_t *req, const json_t *user, const char *refresh)
{
    char sub[32];
    snprintf(sub, sizeof sub, "%lld", (long long)json_integer_value(json_object_get(user, "id")));
    bk_jwt_issue_opts_t io;
    bk_jwt_issue_opts_init(&io);
    io.iss = app->conf.jwt_issuer;
    io.aud = app->conf.jwt_audience;
    io.sub = sub;
    io.ttl_ns = app->conf.access_token_ttl_ns;
    json_t *claims = json_pack("{s:[O]}", "roles", json_object_get(user, "role"));
    char *token = NULL;
    bk_error_t err;
    int rc = claims ? bk_jwt_issue(app->keys, &io, claims, &token, &err) : BK_ENOMEM;
    json_decref(claims);
    if (rc != BK_OK) {
        app_fail(app, req, rc, &err, "issuing a token");
        return;
    }
    bk_res_json(req, 200, json_pack("{s:s, s:s, s:s, s:I}", "access_token", token, "refresh_token", refresh,
                                    "token_type", "Bearer", "expires_in",
                                    (json_int_t)(app->conf.access_token_ttl_ns / BK_NSEC_PER_SEC)));
    free(token);
}

/* A new refresh token of family (0: a new family) for user_id, stored hashed. */
static int store_refresh(struct app *app, bk_db_conn_t *c, long long user_id, long long family, char token[65],
                         bk_error_t *err)
{
    int rc = new_refresh_token(token);
    if (rc != BK_OK)
        return rc;
    char uid[32], fam[32], ttl[32];
    snprintf(uid, sizeof uid, "%lld", user_id);
    snprintf(fam, sizeof fam, "%lld", family);
    snprintf(ttl, sizeof ttl, "%lld", (long long)(app->conf.refresh_token_ttl_ns / BK_NSEC_PER_SEC));
    return bk_db_query(c,
                       "INSERT INTO backendd.refresh_tokens (hash, family, user_id, expires_at)"
                       " VALUES (sha256(convert_to($1, 'UTF8')),"
                       "  CASE WHEN $2::bigint = 0 THEN nextval('backendd.refresh_families') ELSE $2::bigint END,"
                       "  $3, now() + make_interval(secs => $4::bigint))",
                       (bk_db_param_t[]){BK_DB_TEXT(token), BK_DB_TEXT(fam), BK_DB_TEXT(uid), BK_DB_TEXT(ttl)},
                       4, NULL, err);
}

/* ------------------------------------------------------------------ register */
static void h_register(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    json_t *body;
    if (bk_req_json(req, &body) != BK_OK)
        return;
    const char *email = json_string_value(json_object_get(body, "email"));
    const char *password = json_string_value(json_object_get(body, "password"));
    const char *name = json_string_value(json_object_get(body, "name"));
    /* The schema counts characters; the hash's limit is in bytes. */
    if (strlen(password) > app->password.max_password_len) {
        bk_res_problem(req, 422, "the request does not match its schema",
                       json_pack("[{s:s, s:s, s:s}]", "loc", "/password", "msg", "must be at most 1024 bytes",
                                 "type", "maxLength"));
        json_decref(body);
        return;
    }
    char hash[BK_PASSWORD_HASH_MAX];
    bk_error_t err;
    int rc = bk_password_hash(&app->password, password, strlen(password), hash, sizeof hash, &err);
    json_t *rows = NULL;
    if (rc == BK_OK)
        rc = app_query(app,
                       "INSERT INTO backendd.users (email, name, password_hash) VALUES ($1, $2, $3)"
                       " RETURNING " USER_COLUMNS,
                       (bk_db_param_t[]){BK_DB_TEXT(email), BK_DB_TEXT(name), BK_DB_TEXT(hash)}, 3, &rows, &err);
    json_decref(body);
    if (rc == BK_ECONFLICT)
        bk_res_error(req, BK_ECONFLICT, "an account with that email exists");
    else if (rc != BK_OK)
        app_fail(app, req, rc, &err, "registering");
    else
        bk_res_json(req, 201, json_incref(json_array_get(rows, 0)));
    json_decref(rows);
}

/* ------------------------------------------------------------------ login */
/* 429 when either limit is spent; otherwise false and nothing is answered. */
static bool login_limited(struct app *app, bk_req_t *req, const char *email_key, const char *addr_key)
{
    bk_ratelimit_result_t r;
    const struct { bk_ratelimit_t *rl; const char *key; } limits[] = {
        {app->login_address, addr_key}, {app->login_email, email_key}};
    for (size_t i = 0; i < 2; i++) {
        /* A store that fails lets the attempt through: the password still decides. */
        if (bk_ratelimit_check(limits[i].rl, limits[i].key, BK_RATELIMIT_PEEK, &r) != BK_OK || r.allowed)
            continue;
        char policy[64], limit[64], retry[64];
        bk_ratelimit_headers(limits[i].rl, &r, policy, limit, retry, sizeof policy);
        bk_res_header(req, "Retry-After", retry);
        bk_res_header(req, "RateLimit-Policy", policy);
        bk_res_header(req, "RateLimit", limit);
        bk_res_problem(req, 429, "too many failed logins: try again later", NULL);
        return true;
    }
    return false;
}

static void h_login(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    json_t *body;
    if (bk_req_json(req, &body) != BK_OK)
        return;
    const char *email = json_string_value(json_object_get(body, "email"));
    const char *password = json_string_value(json_object_get(body, "password"));
    char email_key[300], addr_key[128];
    size_t n = 0;
    for (; email[n] && n < 254; n++)
        email_key[6 + n] = (char)tolower((unsigned char)email[n]);
    memcpy(email_key, "login:", 6);
    email_key[6 + n] = '\0';
    snprintf(addr_key, sizeof addr_key, "login:%s", bk_req_client(req));
    if (login_limited(app, req, email_key, addr_key)) {
        json_decref(body);
        return;
    }
    bk_error_t err;
    json_t *rows;
    int rc = app_query(app,
                       "SELECT " USER_COLUMNS ", password_hash FROM backendd.users WHERE lower(email) = lower($1)",
                       (bk_db_param_t[]){BK_DB_TEXT(email)}, 1, &rows, &err);
    if (rc != BK_OK) {
        json_decref(body);
        app_fail(app, req, rc, &err, "login");
        return;
    }
    json_t *user = json_array_get(rows, 0);
    const char *hash = json_string_value(json_object_get(user, "password_hash"));
    if (hash == NULL) /* an unknown email costs what a wrong password costs */
        hash = app->dummy_hash;
    rc = bk_password_verify(&app->password, password, strlen(password), hash, NULL);
    if (rc != BK_OK || user == NULL) {
        bk_ratelimit_result_t r;
        bk_ratelimit_check(app->login_email, email_key, 0, &r);
        bk_ratelimit_check(app->login_address, addr_key, 0, &r);
        bk_res_header(req, "WWW-Authenticate", "Bearer");
        bk_res_error(req, BK_EMISMATCH, "the email or the password is wrong");
        json_decref(body);
        json_decref(rows);
        return;
    }
    long long id = json_integer_value(json_object_get(user, "id"));
    if (bk_password_needs_rehash(&app->password, hash)) {
        char fresh[BK_PASSWORD_HASH_MAX];
        char uid[32];
        snprintf(uid, sizeof uid, "%lld", id);
        if (bk_password_hash(&app->password, password, strlen(password), fresh, sizeof fresh, NULL) == BK_OK)
            app_query(app, "UPDATE backendd.users SET password_hash = $1, updated_at = now() WHERE id = $2",
                      (bk_db_param_t[]){BK_DB_TEXT(fresh), BK_DB_TEXT(uid)}, 2, NULL, NULL);
    }
    json_decref(body);
    char refresh[65];
    bk_db_conn_t *c;
    rc = bk_db_acquire(app->db, &c, &err);
    if (rc == BK_OK) {
        rc = store_refresh(app, c, id, 0, refresh, &err);
        /* Each login also forgets a few tokens expired for longer than the
         * retention: a used token is kept while it could still come back.
         * ORDER BY keeps it on refresh_tokens_expires: without it the planner
         * takes LIMIT 100 of a table scan, which reads every token when none
         * has expired (7 ms a login at 4,700 tokens, growing with each). */
        char keep[32];
        snprintf(keep, sizeof keep, "%lld", (long long)(app->conf.refresh_retention_ns / BK_NSEC_PER_SEC));
        if (rc == BK_OK)
            bk_db_query(c, "DELETE FROM backendd.refresh_tokens WHERE hash IN (SELECT hash FROM"
                           " backendd.refresh_tokens WHERE expires_at < now() - make_interval(secs => $1::bigint)"
                           " ORDER BY expires_at LIMIT 100)",
                        (bk_db_param_t[]){BK_DB_TEXT(keep)}, 1, NULL, NULL);
        bk_db_release(c);
    }
    if (rc != BK_OK)
        app_fail(app, req, rc, &err, "storing a refresh token");
    else
        answer_tokens(app, req, user, refresh);
    json_decref(rows);
}

/* ------------------------------------------------------------------ refresh */
struct refresh {
    struct app *app;
    const char *token;
    char next[65];
    json_t *user;  /* the token's user, when it was good */
    bool reused;   /* a used token came back: its family is revoked */
};

static int refresh_tx(bk_db_conn_t *c, void *ud)
{
    struct refresh *x = ud;
    bk_db_result_t *res;
    int rc = bk_db_query(c,
                         "SELECT t.family, t.used_at IS NOT NULL, u.id, u.role FROM backendd.refresh_tokens t"
                         " JOIN backendd.users u ON u.id = t.user_id"
                         " WHERE t.hash = sha256(convert_to($1, 'UTF8')) AND t.revoked_at IS NULL"
                         " AND t.expires_at > now() FOR UPDATE OF t",
                         (bk_db_param_t[]){BK_DB_TEXT(x->token)}, 1, &res, NULL);
    if (rc != BK_OK)
        return rc;
    if (bk_db_rows(res) == 0) {
        bk_db_result_free(res);
        return BK_OK; /* unknown, revoked or expired */
    }
    const char *family = bk_db_value(res, 0, 0);
    if (strcmp(bk_db_value(res, 0, 1), "t") == 0) {
        x->reused = true;
        rc = bk_db_query(c, "UPDATE backendd.refresh_tokens SET revoked_at = now() WHERE family = $1",
                         (bk_db_param_t[]){BK_DB_TEXT(family)}, 1, NULL, NULL);
        bk_db_result_free(res);
        return rc;
    }
    long long user_id = strtoll(bk_db_value(res, 0, 2), NULL, 10);
    x->user = json_pack("{s:I, s:s}", "id", (json_int_t)user_id, "role", bk_db_value(res, 0, 3));
    rc = bk_db_query(c, "UPDATE backendd.refresh_tokens SET used_at = now() WHERE hash = sha256(convert_to($1, 'UTF8'))",
                     (bk_db_param_t[]){BK_DB_TEXT(x->token)}, 1, NULL, NULL);
    if (rc == BK_OK)
        rc = store_refresh(x->app, c, user_id, strtoll(family, NULL, 10), x->next, NULL);
    bk_db_result_free(res);
    return rc;
}

static void h_refresh(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    json_t *body;
    if (bk_req_json(req, &body) != BK_OK)
        return;
    struct refresh x = {.app = app, .token = json_string_value(json_object_get(body, "refresh_token"))};
    bk_error_t err;
    int rc = bk_db_tx(app->db, BK_DB_READ_COMMITTED, NULL, refresh_tx, &x, &err);
    if (rc != BK_OK) {
        json_decref(x.user);
        x.user = NULL;
        app_fail(app, req, rc, &err, "refreshing");
    } else if (x.user == NULL) {
        if (x.reused)
            bk_req_log(req, app->log, BK_LOG_WARN, NULL, "a used refresh token came back: its family is revoked");
        bk_res_header(req, "WWW-Authenticate", "Bearer");
        bk_res_error(req, BK_EMISMATCH, "the refresh token is not valid");
    } else {
        answer_tokens(app, req, x.user, x.next);
    }
    json_decref(x.user);
    json_decref(body);
}

static void h_logout(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    json_t *body;
    if (bk_req_json(req, &body) != BK_OK)
        return;
    bk_error_t err;
    int rc = app_query(app,
                       "UPDATE backendd.refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND family ="
                       " (SELECT family FROM backendd.refresh_tokens WHERE hash = sha256(convert_to($1, 'UTF8')))",
                       (bk_db_param_t[]){BK_DB_TEXT(json_string_value(json_object_get(body, "refresh_token")))}, 1,
                       NULL, &err);
    json_decref(body);
    if (rc != BK_OK)
        app_fail(app, req, rc, &err, "logout");
    else
        bk_res_bytes(req, 204, NULL, NULL, 0);
}

/* GET /.well-known/jwks.json: the public keys, for the services that verify our
 * tokens (an HMAC key has none to give). Verifiers cache it for a minute, so a new
 * key is best added a minute before it becomes the signing one. */
static void h_jwks(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    json_t *jwks;
    if (bk_jwt_keys_jwks(app->keys, &jwks) != BK_OK) {
        bk_res_error(req, BK_ENOMEM, NULL);
        return;
    }
    bk_res_header(req, "Cache-Control", "public, max-age=60");
    bk_res_json(req, 200, jwks);
}

/* ------------------------------------------------------------------ routes */
int auth_routes(struct app *app, bk_http_server_t *srv)
{
    static const bk_http_response_doc_t tokens[] = {
        {.status = 200, .description = "An access token (a JWT) and a refresh token."},
        {.status = 401, .description = "The credentials are wrong."},
    };
    const struct {
        const char *path, *summary;
        bk_http_handler_fn fn;
        const bk_schema_t *schema;
        bk_http_response_doc_t responses[2];
        size_t nresponses;
    } routes[] = {
        {"/api/v1/auth/register", "Create an account", h_register, app->register_schema,
         {{.status = 201, .description = "The account."}, {.status = 409, .description = "The email is taken."}}, 2},
        {"/api/v1/auth/login", "Log in", h_login, app->login_schema, {tokens[0], tokens[1]}, 2},
        {"/api/v1/auth/refresh", "A new token pair for a refresh token (once)", h_refresh, app->refresh_schema,
         {tokens[0], {.status = 401, .description = "The refresh token is unknown, used, revoked or expired."}}, 2},
        {"/api/v1/auth/logout", "Revoke a refresh token's family", h_logout, app->refresh_schema,
         {{.status = 204, .description = "Revoked (or not known)."}}, 1},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        bk_http_route_opts_t ro;
        bk_http_route_opts_init(&ro);
        ro.flags = BK_HTTP_BLOCKING | BK_HTTP_JSON;
        ro.body_schema = routes[i].schema;
        ro.doc = &(bk_http_operation_t){.summary = routes[i].summary,
                                        .tags = (const char *const[]){"auth", NULL},
                                        .responses = routes[i].responses,
                                        .nresponses = routes[i].nresponses};
        int rc = bk_http_route(srv, "POST", routes[i].path, routes[i].fn, app, &ro);
        if (rc != BK_OK)
            return rc;
    }
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.doc = &(bk_http_operation_t){
        .summary = "The public keys that verify the access tokens (a JWK Set)",
        .operation_id = "jwks",
        .tags = (const char *const[]){"auth", NULL},
        .responses = (const bk_http_response_doc_t[]){{.status = 200, .description = "RFC 7517 JWK Set."}},
        .nresponses = 1};
    return bk_http_route(srv, "GET", "/.well-known/jwks.json", h_jwks, app, &ro);
}
