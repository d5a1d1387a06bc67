/* The caller's account, and the accounts for admins: list (paginated) and role
 * changes.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define USER_COLUMNS "id, email, name, role, created_at"

static void h_me(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    char id[32];
    snprintf(id, sizeof id, "%lld", app_user_id(bk_req_claims(req)));
    json_t *rows;
    bk_error_t err;
    int rc = app_query(app, "SELECT " USER_COLUMNS " FROM backendd.users WHERE id = $1",
                       (bk_db_param_t[]){BK_DB_TEXT(id)}, 1, &rows, &err);
    if (rc != BK_OK)
        app_fail(app, req, rc, &err, "reading the account");
    else if (json_array_size(rows) == 0) /* deleted since the token was issued */
        bk_res_error(req, BK_ENOTFOUND, "the account does not exist any more");
    else
        bk_res_json(req, 200, json_incref(json_array_get(rows, 0)));
    json_decref(rows);
}

static void h_list(bk_req_t *req, void *ud)
{
    app_list(ud, req,
             "SELECT " USER_COLUMNS ", count(*) OVER () AS list_total FROM backendd.users"
             " ORDER BY id LIMIT $1 OFFSET $2",
             "SELECT count(*) AS n FROM backendd.users", NULL, 0, "the accounts");
}

static void h_set_role(bk_req_t *req, void *ud)
{
    struct app *app = ud;
    const char *id = bk_req_param(req, "id");
    json_t *body;
    if (bk_req_json(req, &body) != BK_OK)
        return;
    json_t *rows;
    bk_error_t err;
    int rc = strspn(id, "0123456789") == strlen(id) && strlen(id) <= 18
                 ? app_query(app,
                             "UPDATE backendd.users SET role = $1, updated_at = now() WHERE id = $2"
                             " RETURNING " USER_COLUMNS,
                             (bk_db_param_t[]){BK_DB_TEXT(json_string_value(json_object_get(body, "role"))),
                                               BK_DB_TEXT(id)},
                             2, &rows, &err)
                 : BK_ENOTFOUND;
    json_decref(body);
    if (rc == BK_ENOTFOUND || (rc == BK_OK && json_array_size(rows) == 0))
        bk_res_error(req, BK_ENOTFOUND, "no such account");
    else if (rc != BK_OK)
        app_fail(app, req, rc, &err, "changing a role");
    else
        bk_res_json(req, 200, json_incref(json_array_get(rows, 0)));
    if (rc == BK_OK)
        json_decref(rows);
}

int users_routes(struct app *app, bk_http_server_t *srv)
{
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.flags = BK_HTTP_BLOCKING;
    ro.auth = &app->auth;
    ro.doc = &(bk_http_operation_t){.summary = "The caller's account", .tags = (const char *const[]){"users", NULL}};
    int rc = bk_http_route(srv, "GET", "/api/v1/users/me", h_me, app, &ro);
    ro.permission = "users:admin";
    ro.query_schema = app->page_query_schema;
    ro.doc = &(bk_http_operation_t){.summary = "Every account (admins)", .tags = (const char *const[]){"users", NULL}};
    if (rc == BK_OK)
        rc = bk_http_route(srv, "GET", "/api/v1/users", h_list, app, &ro);
    ro.query_schema = NULL;
    ro.flags |= BK_HTTP_JSON;
    ro.body_schema = app->role_schema;
    ro.doc = &(bk_http_operation_t){.summary = "Change an account's role (admins)",
                                    .tags = (const char *const[]){"users", NULL},
                                    .responses = (const bk_http_response_doc_t[]){
                                        {.status = 200, .description = "The account."},
                                        {.status = 404, .description = "No such account."}},
                                    .nresponses = 2};
    if (rc == BK_OK)
        rc = bk_http_route(srv, "PATCH", "/api/v1/users/{id}", h_set_role, app, &ro);
    return rc;
}
