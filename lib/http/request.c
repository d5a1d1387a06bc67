/* The request accessors: method, path, parameters, query, headers, body, JSON.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/utf8_int.h"
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

const struct hdr *bk__req_header_next(const bk_req_t *req, const char *name, size_t *i)
{
    size_t len = strlen(name);
    for (; *i < req->nhdrs; (*i)++)
        if (req->hdrs[*i].nlen == len && strncasecmp(req->hdrs[*i].name, name, len) == 0)
            return &req->hdrs[(*i)++];
    return NULL;
}

const char *bk_req_header(const bk_req_t *req, const char *name)
{
    if (req == NULL || name == NULL)
        return NULL;
    size_t i = 0;
    const struct hdr *h = bk__req_header_next(req, name, &i);
    return h ? h->value : NULL;
}

const char *bk_req_body(const bk_req_t *req, size_t *len)
{
    if (len != NULL)
        *len = req ? req->body.len : 0;
    return req && req->body.p ? req->body.p : "";
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
    if (req->body_json != NULL) { /* parsed already (route validation) */
        *out = json_incref(req->body_json);
        return BK_OK;
    }
    json_error_t err;
    json_t *doc = json_loadb(bk_req_body(req, NULL), req->body.len,
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
    req->body_json = doc;
    *out = json_incref(doc);
    return BK_OK;
}

const json_t *bk_req_claims(const bk_req_t *req)
{
    return req ? req->claims : NULL;
}

json_t *bk_req_query_json(bk_req_t *req)
{
    if (req == NULL)
        return NULL;
    if (req->query_json != NULL)
        return req->query_json;
    json_t *q = json_object();
    for (size_t i = 0; q != NULL && i < req->nquery; i++) {
        const struct qparam *p = &req->query_params[i];
        /* JSON strings are UTF-8: ill-formed bytes (%FF) become U+FFFD. */
        char *name = bk__utf8_repair(p->name, strlen(p->name), NULL);
        char *text = bk__utf8_repair(p->value, strlen(p->value), NULL);
        json_t *v = text ? json_string(text) : NULL, *prev = name ? json_object_get(q, name) : NULL;
        free(text);
        int rc = -1;
        if (name == NULL) {
            json_decref(v);
        } else if (prev == NULL) {
            rc = json_object_set_new(q, name, v);
        } else if (json_is_array(prev)) {
            rc = json_array_append_new(prev, v);
        } else { /* a repeated name: its values become an array */
            json_t *arr = json_pack("[OO]", prev, v);
            json_decref(v);
            rc = arr ? json_object_set_new(q, name, arr) : -1;
        }
        free(name);
        if (rc != 0) {
            json_decref(q);
            q = NULL;
        }
    }
    if (q != NULL && req->route != NULL && req->route->query_schema != NULL) {
        json_t *coerced = NULL; /* a new document, NULL on failure */
        bk_schema_coerce(req->route->query_schema, q, BK_SCHEMA_COERCE_STRINGS | BK_SCHEMA_FILL_DEFAULTS, &coerced);
        json_decref(q);
        q = coerced;
    }
    req->query_json = q;
    return q;
}

const char *bk_req_client(const bk_req_t *req)
{
    return req && req->conn ? req->conn->client : NULL;
}

const char *bk_req_id(const bk_req_t *req)
{
    return req ? req->id : NULL;
}

const bk_trace_t *bk_req_trace(const bk_req_t *req)
{
    return req ? &req->trace : NULL;
}

const char *bk_req_trace_id(const bk_req_t *req)
{
    return req ? req->trace.trace_id : NULL;
}

const char *bk_req_span_id(const bk_req_t *req)
{
    return req ? req->trace.span_id : NULL;
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
