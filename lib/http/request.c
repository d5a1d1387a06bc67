/* The request accessors: method, path, parameters, query, headers, body, JSON.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/http_int.h"

const char *bk_req_method(const bk_req_t *req)
{
    return req ? req->method : NULL;
}

const char *bk_req_path(const bk_req_t *req)
{
    return req ? req->path : NULL;
}

const char *bk_req_route(const bk_req_t *req)
{
    return req && req->route ? req->route->template : NULL;
}

const char *bk_req_param(const bk_req_t *req, const char *name)
{
    if (req == NULL || req->route == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < req->route->nparams; i++)
        if (strcmp(req->route->param_names[i], name) == 0)
            return req->params[i];
    return NULL;
}

const char *bk_req_query(const bk_req_t *req, const char *name)
{
    if (req == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < req->nquery; i++)
        if (strcmp(req->query_params[i].name, name) == 0)
            return req->query_params[i].value;
    return NULL;
}

const char *bk_req_header(const bk_req_t *req, const char *name)
{
    if (req == NULL || name == NULL)
        return NULL;
    size_t len = strlen(name);
    for (size_t i = 0; i < req->nhdrs; i++)
        if (req->hdrs[i].nlen == len && strncasecmp(req->hdrs[i].name, name, len) == 0)
            return req->hdrs[i].value;
    return NULL;
}

const char *bk_req_body(const bk_req_t *req, size_t *len)
{
    if (len != NULL)
        *len = req ? req->body_len : 0;
    return req && req->body ? req->body : "";
}

int bk_req_json(bk_req_t *req, json_t **out)
{
    if (req == NULL || out == NULL)
        return BK_EINVAL;
    *out = NULL;
    if (!bk__is_json_type(bk_req_header(req, "Content-Type"))) {
        if (req->status == 0)
            bk_res_problem(req, 415, "the body must be application/json", NULL);
        return BK_EINVAL;
    }
    json_error_t err;
    json_t *doc = json_loadb(bk_req_body(req, NULL), req->body_len,
                             JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (doc == NULL) {
        if (req->status == 0) {
            char detail[256];
            snprintf(detail, sizeof detail, "malformed JSON at line %d, column %d: %s", err.line,
                     err.column, err.text);
            bk_res_problem(req, 400, detail, NULL);
        }
        return BK_EINVAL;
    }
    *out = doc;
    return BK_OK;
}

const char *bk_req_client(const bk_req_t *req)
{
    return req && req->conn ? req->conn->client : NULL;
}

const char *bk_req_id(const bk_req_t *req)
{
    return req ? req->id : NULL;
}

int64_t bk_req_deadline_ns(const bk_req_t *req)
{
    return req ? req->deadline_ns : 0;
}

void bk_req_set_data(bk_req_t *req, void *data)
{
    if (req != NULL)
        req->data = data;
}

void *bk_req_data(const bk_req_t *req)
{
    return req ? req->data : NULL;
}
