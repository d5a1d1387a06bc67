/* The OpenAPI 3.1 document of the route table (bk_http_openapi,
 * bk_http_mount_openapi): each route's operation from what the route is (its
 * template's parameters, its schemas, its auth, the guards it has and the error
 * answers they give) and from its bk_http_operation_t (what only its author
 * knows). The routes' schemas go under components/schemas as they are, in the
 * document's default dialect (JSON Schema 2020-12 with the OpenAPI vocabulary);
 * only their local "#..." references are rewritten, since inside the document
 * "#" is the document's root and no longer the schema's.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/abi_int.h"
#include "core/error_int.h"
#include "core/json_int.h"
#include "core/jsonptr_int.h"
#include "core/utf8_int.h"
#include "http/http_int.h"

BK__ASSERT_ABI_SIZE(bk_http_response_doc_t, 64);
BK__ASSERT_ABI_SIZE(bk_http_operation_t, 120);
BK__ASSERT_ABI_SIZE(bk_http_openapi_info_t, 160);

#define COMPONENT_SCHEMAS "#/components/schemas"
#define URI_DRAFT_7 "http://json-schema.org/draft-07/schema#"

/* ------------------------------------------------------------------ route metadata */
/* Sets obj[key] to the string s when s is not NULL: BK_EINVAL when s is not UTF-8. */
static int set_str(json_t *obj, const char *key, const char *s)
{
    if (s == NULL)
        return BK_OK;
    if (!bk__utf8_valid(s, strlen(s)))
        return BK_EINVAL;
    return json_object_set_new(obj, key, json_string(s)) == 0 ? BK_OK : BK_ENOMEM;
}

static int response_doc(json_t *list, const bk_http_response_doc_t *d)
{
    if (d->status != 0 && (d->status < 100 || d->status > 599))
        return BK_EINVAL;
    size_t i;
    json_t *prev;
    json_array_foreach(list, i, prev)
        if (json_integer_value(json_object_get(prev, "status")) == d->status)
            return BK_EINVAL; /* one answer per status */
    json_t *o = json_pack("{s:i}", "status", d->status);
    if (o == NULL || json_array_append_new(list, o) != 0)
        return BK_ENOMEM;
    int rc = set_str(o, "description", d->description);
    if (rc == BK_OK)
        rc = set_str(o, "content_type", d->content_type);
    /* Referenced, not copied (the page says so): a schema shared by routes stays
     * one component, found by its address. */
    if (rc == BK_OK && d->schema != NULL &&
        json_object_set(o, "schema", (json_t *)d->schema) != 0)
        rc = BK_ENOMEM;
    return rc;
}

int bk__route_doc(struct route *r, const bk_http_operation_t *op)
{
    if (op == NULL)
        return BK_OK;
    if (op->nresponses > 0 && op->responses == NULL)
        return BK_EINVAL;
    r->hidden = op->hidden;
    json_t *d = json_object(), *tags = json_array(), *responses = json_array();
    int rc = d && tags && responses ? BK_OK : BK_ENOMEM;
    if (rc == BK_OK)
        rc = set_str(d, "summary", op->summary);
    if (rc == BK_OK)
        rc = set_str(d, "description", op->description);
    if (rc == BK_OK)
        rc = set_str(d, "operationId", op->operation_id);
    for (size_t i = 0; rc == BK_OK && op->tags != NULL && op->tags[i] != NULL; i++) {
        if (!bk__utf8_valid(op->tags[i], strlen(op->tags[i])))
            rc = BK_EINVAL;
        else if (json_array_append_new(tags, json_string(op->tags[i])) != 0)
            rc = BK_ENOMEM;
    }
    for (size_t i = 0; rc == BK_OK && i < op->nresponses; i++)
        rc = response_doc(responses, &op->responses[i]);
    if (rc == BK_OK && (json_object_set(d, "tags", tags) != 0 ||
                        json_object_set(d, "responses", responses) != 0 ||
                        (op->deprecated && json_object_set_new(d, "deprecated", json_true()) != 0)))
        rc = BK_ENOMEM;
    json_decref(tags);
    json_decref(responses);
    if (rc != BK_OK) {
        json_decref(d);
        return rc;
    }
    r->doc = d;
    return BK_OK;
}

/* ------------------------------------------------------------------ info */
static int bad_info(bk_error_t *err, const char *why)
{
    return bk__error(err, BK_EINVAL, "openapi info: %s", why);
}

/* The document's head: openapi, info, servers. */
static int head_json(const bk_http_openapi_info_t *in, json_t **out, bk_error_t *err)
{
    *out = NULL;
    if (in == NULL || in->title == NULL || in->version == NULL)
        return bad_info(err, "a title and a version are required");
    bool license = in->license_name || in->license_identifier || in->license_url;
    if (license && in->license_name == NULL)
        return bad_info(err, "a license needs its name");
    if (in->license_identifier && in->license_url)
        return bad_info(err, "a license has an identifier or a URL, not both");
    json_t *head = json_pack("{s:s}", "openapi", "3.1.0");
    json_t *info = json_object(), *contact = json_object(), *lic = json_object();
    json_t *servers = json_array();
    int rc = head && info && contact && lic && servers ? BK_OK : BK_ENOMEM;
    const struct { json_t *obj; const char *key, *val; } fields[] = {
        {info, "title", in->title},
        {info, "summary", in->summary},
        {info, "description", in->description},
        {info, "termsOfService", in->terms_of_service},
        {info, "version", in->version},
        {contact, "name", in->contact_name},
        {contact, "url", in->contact_url},
        {contact, "email", in->contact_email},
        {lic, "name", in->license_name},
        {lic, "identifier", in->license_identifier},
        {lic, "url", in->license_url},
    };
    for (size_t i = 0; rc == BK_OK && i < sizeof fields / sizeof *fields; i++)
        if ((rc = set_str(fields[i].obj, fields[i].key, fields[i].val)) == BK_EINVAL)
            bk__error(err, rc, "openapi info: %s is not UTF-8", fields[i].key);
    for (size_t i = 0; rc == BK_OK && in->servers != NULL && in->servers[i] != NULL; i++) {
        json_t *s = json_object();
        if (s == NULL || json_array_append_new(servers, s) != 0)
            rc = BK_ENOMEM;
        else if ((rc = set_str(s, "url", in->servers[i])) == BK_EINVAL)
            bk__error(err, rc, "openapi info: server %zu is not UTF-8", i);
    }
    if (rc == BK_OK && json_object_size(contact) > 0 && json_object_set(info, "contact", contact) != 0)
        rc = BK_ENOMEM;
    if (rc == BK_OK && license && json_object_set(info, "license", lic) != 0)
        rc = BK_ENOMEM;
    if (rc == BK_OK && (json_object_set(head, "info", info) != 0 ||
                        (json_array_size(servers) > 0 && json_object_set(head, "servers", servers) != 0)))
        rc = BK_ENOMEM;
    json_decref(info);
    json_decref(contact);
    json_decref(lic);
    json_decref(servers);
    if (rc != BK_OK) {
        json_decref(head);
        return err && err->code != BK_OK ? rc : bk__error(err, rc, "openapi info: out of memory");
    }
    *out = head;
    return BK_OK;
}

/* ------------------------------------------------------------------ rendering */
typedef struct render {
    json_t *paths;
    json_t *schemas;   /* components/schemas */
    json_t *responses; /* components/responses: the shared error answers used */
    json_t *names;     /* a schema's address ("%p") -> its component's name */
    json_t *op_ids;    /* operationId -> true */
    json_t *tags;      /* the tags, in the order of first use */
    bool bearer;       /* a route has auth: components/securitySchemes/bearerAuth */
    bk_error_t *err;
} render_t;

/* A component name ([A-Za-z0-9._-]+, OpenAPI's rule) made from hint, not yet in taken. */
static char *unique_name(const json_t *taken, const char *hint)
{
    size_t len = strlen(hint);
    char *name = malloc(len + 24);
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        char c = hint[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        name[i] = ok ? c : '_';
    }
    if (len == 0)
        name[len++] = '_';
    name[len] = '\0';
    for (unsigned n = 2; json_object_get(taken, name) != NULL; n++)
        snprintf(name + len, 24, "_%u", n);
    return name;
}

/* The keywords whose values hold subschemas, by shape (2020-12 and draft-07). */
static const char *const SCHEMA_MAPS[] = {"properties", "patternProperties", "$defs", "definitions",
                                          "dependentSchemas", "dependencies", NULL};
static const char *const SCHEMA_LISTS[] = {"prefixItems", "allOf", "anyOf", "oneOf", "items", NULL};
static const char *const SCHEMA_ONE[] = {"items", "additionalItems", "additionalProperties",
                                         "unevaluatedItems", "unevaluatedProperties", "not", "if",
                                         "then", "else", "contains", "propertyNames", "contentSchema",
                                         NULL};

static bool listed(const char *const *list, const char *key)
{
    for (; *list; list++)
        if (strcmp(*list, key) == 0)
            return true;
    return false;
}

/* base + "/" + tok escaped (RFC 6901): a JSON pointer one step deeper; NULL on ENOMEM. */
static char *ptr_append(const char *base, const char *tok)
{
    size_t blen = strlen(base), tlen = strlen(tok);
    char *p = malloc(blen + 2 + bk__jsonptr_escape(NULL, tok, tlen));
    if (p != NULL) {
        memcpy(p, base, blen);
        p[blen] = '/';
        p[blen + 1 + bk__jsonptr_escape(p + blen + 1, tok, tlen)] = '\0';
    }
    return p;
}

/* Rewrites the "#"-relative $refs of schema s (a copy) to point under prefix,
 * counting them in *moved, walking only schema positions (never into const, enum,
 * default or examples, which are data), and stopping at a subschema with its own
 * $id, whose "#" is its own. */
static int relocate(json_t *s, const char *prefix, bool root, size_t *moved)
{
    if (!json_is_object(s) || (!root && json_object_get(s, "$id") != NULL))
        return BK_OK;
    const char *ref = json_string_value(json_object_get(s, "$ref"));
    if (ref != NULL && ref[0] == '#' && (ref[1] == '\0' || ref[1] == '/')) {
        json_t *to = json_sprintf("%s%s", prefix, ref + 1);
        if (to == NULL || json_object_set_new(s, "$ref", to) != 0)
            return BK_ENOMEM;
        (*moved)++;
    }
    const char *key;
    json_t *v;
    json_object_foreach(s, key, v) {
        int rc = BK_OK;
        if (json_is_object(v) && listed(SCHEMA_MAPS, key)) {
            const char *k;
            json_t *sub;
            json_object_foreach(v, k, sub)
                if (rc == BK_OK)
                    rc = relocate(sub, prefix, false, moved);
        } else if (json_is_array(v) && listed(SCHEMA_LISTS, key)) {
            size_t i;
            json_t *sub;
            json_array_foreach(v, i, sub)
                if (rc == BK_OK)
                    rc = relocate(sub, prefix, false, moved);
        } else if (listed(SCHEMA_ONE, key)) {
            rc = relocate(v, prefix, false, moved);
        }
        if (rc != BK_OK)
            return rc;
    }
    return BK_OK;
}

/* The copy of schema that goes at ref (the component's pointer): its local
 * references moved under ref (counted in *moved), unless it has an $id of its own
 * (then it is a resource whose "#" is itself), and a draft-07 schema marked as
 * one, the document's dialect being 2020-12's. NULL on ENOMEM. */
static json_t *component_copy(const json_t *schema, int draft, const char *ref, size_t *moved)
{
    json_t *copy = json_deep_copy(schema);
    *moved = 0;
    if (copy == NULL)
        return NULL;
    int rc = json_object_get(copy, "$id") == NULL ? relocate(copy, ref, true, moved) : BK_OK;
    if (rc == BK_OK && draft == BK_SCHEMA_DRAFT_7 && json_is_object(copy) &&
        json_object_get(copy, "$schema") == NULL &&
        json_object_set_new(copy, "$schema", json_string(URI_DRAFT_7)) != 0)
        rc = BK_ENOMEM;
    if (rc != BK_OK) {
        json_decref(copy);
        return NULL;
    }
    return copy;
}

/* The "#/components/schemas/NAME" of schema (added on first use), or NULL on
 * ENOMEM. A schema used by several routes (the same address) is one component,
 * named by its title when it has one. */
static char *schema_ref(render_t *x, const json_t *schema, int draft, const char *hint)
{
    char key[32];
    snprintf(key, sizeof key, "%p", (const void *)schema);
    const char *name = json_string_value(json_object_get(x->names, key));
    if (name != NULL)
        return ptr_append(COMPONENT_SCHEMAS, name);
    const char *title = json_string_value(json_object_get(schema, "title"));
    char *made = unique_name(x->schemas, title ? title : hint);
    char *ref = made ? ptr_append(COMPONENT_SCHEMAS, made) : NULL;
    size_t moved;
    json_t *copy = ref ? component_copy(schema, draft, ref, &moved) : NULL;
    if (copy == NULL || json_object_set_new(x->schemas, made, copy) != 0 ||
        json_object_set_new(x->names, key, json_string(made)) != 0) {
        free(ref);
        ref = NULL;
    }
    free(made);
    return ref;
}

/* {"$ref": ref}, taking ref. */
static json_t *ref_obj(char *ref)
{
    json_t *o = ref ? json_pack("{s:s}", "$ref", ref) : NULL;
    free(ref);
    return o;
}

/* The error answers the guards give, shared as components/responses. */
enum { G_400, G_401, G_403, G_404, G_413, G_415, G_422, G_429, G_503, NGUARDS };
static const struct {
    const char *status, *name, *description, *headers;
} GUARD_ANSWERS[NGUARDS] = {
    [G_400] = {"400", "BadRequest", "The request is malformed: a body that is not JSON, a "
                                    "parameter that is not UTF-8.", NULL},
    [G_401] = {"401", "Unauthorized", "The bearer token is missing or invalid (RFC 6750).",
               "WWW-Authenticate"},
    [G_403] = {"403", "Forbidden", "The caller's roles and scopes do not allow this.", NULL},
    [G_404] = {"404", "NotFound", "No such resource, or one the caller may not see.", NULL},
    [G_413] = {"413", "ContentTooLarge", "The body is over the server's limit.", NULL},
    [G_415] = {"415", "UnsupportedMediaType", "The body is not application/json.", NULL},
    [G_422] = {"422", "ValidationFailed", "The body or the query does not match its schema; "
                                          "errors lists every failure.", NULL},
    [G_429] = {"429", "TooManyRequests", "Over the rate limit: try again after Retry-After seconds.",
               "Retry-After RateLimit RateLimit-Policy"},
    [G_503] = {"503", "ServiceUnavailable", "Overloaded or shutting down: try again after "
                                            "Retry-After seconds.", "Retry-After"},
};

static json_t *problem_schema(void)
{
    return json_pack("{s:s, s:s, s:[s,s,s], s:{s:{s:s, s:s}, s:{s:s}, s:{s:s, s:i, s:i}, s:{s:s}, "
                     "s:{s:s}, s:{s:s, s:s}, s:{s:s, s:s}}}",
                     "type", "object", "description", "An error, as RFC 9457 problem details.",
                     "required", "type", "title", "status",
                     "properties",
                     "type", "type", "string", "format", "uri-reference",
                     "title", "type", "string",
                     "status", "type", "integer", "minimum", 400, "maximum", 599,
                     "detail", "type", "string",
                     "instance", "type", "string",
                     "request_id", "type", "string", "description", "The request's X-Request-ID.",
                     "code", "type", "string", "description", "The library's BK_E* name of the error.");
}

static json_t *validation_problem_schema(void)
{
    return json_pack("{s:s, s:[{s:s}], s:[s], s:{s:{s:s, s:{s:s, s:[s,s,s], s:{s:{s:s, s:s}, "
                     "s:{s:s}, s:{s:s, s:s}}}}}}",
                     "description", "A 422 problem: every place where the request does not match its schema.",
                     "allOf", "$ref", COMPONENT_SCHEMAS "/Problem",
                     "required", "errors",
                     "properties", "errors", "type", "array", "items",
                     "type", "object", "required", "loc", "msg", "type",
                     "properties",
                     "loc", "type", "string", "description",
                     "The JSON pointer into the body (\"/items/0/qty\") or query.<name>.",
                     "msg", "type", "string",
                     "type", "type", "string", "description", "The failing keyword.");
}

/* A reference to the shared answer g, added to components/responses on first use. */
static json_t *guard_ref(render_t *x, int g)
{
    const char *name = GUARD_ANSWERS[g].name;
    if (json_object_get(x->responses, name) == NULL) {
        bool validation = g == G_422;
        const char *schema = validation ? "ValidationProblem" : "Problem";
        json_t *resp = json_pack("{s:s, s:{s:{s:{s:s+}}}}", "description", GUARD_ANSWERS[g].description,
                                 "content", "application/problem+json", "schema", "$ref",
                                 COMPONENT_SCHEMAS "/", schema);
        if (resp == NULL || json_object_set_new(x->responses, name, resp) != 0)
            return NULL;
        if (GUARD_ANSWERS[g].headers != NULL) {
            json_t *headers = json_object();
            if (headers == NULL || json_object_set_new(resp, "headers", headers) != 0)
                return NULL;
            char list[64];
            snprintf(list, sizeof list, "%s", GUARD_ANSWERS[g].headers);
            for (char *save, *h = strtok_r(list, " ", &save); h; h = strtok_r(NULL, " ", &save))
                if (json_object_set_new(headers, h, json_pack("{s:{s:s}}", "schema", "type", "string")) != 0)
                    return NULL;
        }
        if (json_object_get(x->schemas, schema) == NULL &&
            json_object_set_new(x->schemas, schema, validation ? validation_problem_schema() : problem_schema()) != 0)
            return NULL;
        if (validation && json_object_get(x->schemas, "Problem") == NULL &&
            json_object_set_new(x->schemas, "Problem", problem_schema()) != 0)
            return NULL;
    }
    return json_pack("{s:s+}", "$ref", "#/components/responses/", name);
}

/* "get_users_id" from GET /users/{id}: unique among the document's operationIds. */
static char *made_op_id(const render_t *x, const struct route *r)
{
    size_t cap = strlen(r->method) + strlen(r->template) + 2;
    char *id = malloc(cap), *o = id;
    if (id == NULL)
        return NULL;
    for (const char *m = r->method; *m; m++)
        *o++ = (char)(*m >= 'A' && *m <= 'Z' ? *m + 32 : *m);
    for (const char *p = r->template; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (ok)
            *o++ = c;
        else if (o[-1] != '_')
            *o++ = '_';
    }
    while (o > id && o[-1] == '_')
        o--;
    *o = '\0';
    char *unique = unique_name(x->op_ids, id);
    free(id);
    return unique;
}

static const char *const OPENAPI_METHODS[] = {"GET", "PUT", "POST", "DELETE", "OPTIONS",
                                              "HEAD", "PATCH", "TRACE", NULL};

/* The path template as OpenAPI writes it: a tail "{name...}" becomes "{name}". */
static char *openapi_path(const char *tmpl)
{
    char *p = strdup(tmpl);
    if (p == NULL)
        return NULL;
    char *dots = strstr(p, "...}");
    if (dots != NULL)
        memmove(dots, dots + 3, strlen(dots + 3) + 1);
    return p;
}

static int add_parameters(render_t *x, const struct route *r, json_t *op, const char *op_id)
{
    json_t *params = json_array();
    if (params == NULL || json_object_set_new(op, "parameters", params) != 0)
        return BK_ENOMEM;
    bool tail = strstr(r->template, "...}") != NULL;
    for (size_t i = 0; i < r->nparams; i++) {
        json_t *p = json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", r->param_names[i], "in", "path",
                              "required", 1, "schema", "type", "string");
        if (p != NULL && tail && i + 1 == r->nparams &&
            json_object_set_new(p, "description", json_string("The rest of the path, slashes included.")) != 0)
            p = (json_decref(p), NULL);
        if (p == NULL || json_array_append_new(params, p) != 0)
            return BK_ENOMEM;
    }
    /* The query's parameters: the properties of its schema, each with its own
     * schema; or, when they refer to other places of the query's schema (or it is
     * a draft-07 one, or a resource with an $id), each referring to its place in
     * the schema's component. */
    const json_t *qs = bk_schema_document(r->query_schema);
    if (!json_is_object(json_object_get(qs, "properties")))
        qs = NULL;
    int draft = bk_schema_draft(r->query_schema);
    size_t moved = 0;
    json_t *copy = qs ? component_copy(qs, draft, "#", &moved) : NULL;
    bool shared = moved > 0 || draft == BK_SCHEMA_DRAFT_7 || json_object_get(qs, "$id") != NULL;
    char *ref = NULL;
    if (copy != NULL && shared) {
        char hint[160];
        snprintf(hint, sizeof hint, "%s_query", op_id);
        ref = schema_ref(x, qs, draft, hint);
    }
    int rc = qs == NULL || (copy != NULL && (ref != NULL || !shared)) ? BK_OK : BK_ENOMEM;
    const json_t *required = json_object_get(qs, "required");
    const char *name;
    json_t *sub;
    json_object_foreach(json_object_get(copy, "properties"), name, sub) {
        if (rc != BK_OK)
            break;
        bool req = false;
        size_t i;
        const json_t *rn;
        json_array_foreach(required, i, rn)
            req = req || (json_is_string(rn) && strcmp(json_string_value(rn), name) == 0);
        char *props = ref ? ptr_append(ref, "properties") : NULL;
        json_t *schema = ref ? ref_obj(props ? ptr_append(props, name) : NULL) : json_incref(sub);
        free(props);
        json_t *p = json_pack("{s:s, s:s, s:b}", "name", name, "in", "query", "required", req);
        const char *desc = json_string_value(json_object_get(sub, "description"));
        if (p == NULL || schema == NULL ||
            (desc != NULL && json_object_set_new(p, "description", json_string(desc)) != 0) ||
            json_object_set(p, "schema", schema) != 0 || json_array_append(params, p) != 0)
            rc = BK_ENOMEM;
        json_decref(p);
        json_decref(schema);
    }
    json_decref(copy);
    free(ref);
    if (rc != BK_OK)
        return rc;
    if (json_array_size(params) == 0)
        json_object_del(op, "parameters");
    return BK_OK;
}

static int add_body(render_t *x, const struct route *r, json_t *op, const char *op_id)
{
    json_t *media;
    if (r->body_schema != NULL) {
        char hint[160];
        snprintf(hint, sizeof hint, "%s_body", op_id);
        media = json_pack("{s:o*}", "schema",
                          ref_obj(schema_ref(x, bk_schema_document(r->body_schema),
                                             bk_schema_draft(r->body_schema), hint)));
    } else if (r->flags & BK_HTTP_JSON) {
        media = json_object(); /* JSON, of any shape */
    } else {
        return BK_OK;
    }
    json_t *body = json_pack("{s:b, s:{s:o*}}", "required", r->body_schema != NULL, "content",
                             "application/json", media);
    return body && json_object_size(media) == (r->body_schema != NULL) &&
                   json_object_set_new(op, "requestBody", body) == 0
               ? BK_OK
               : BK_ENOMEM;
}

static int add_responses(render_t *x, const struct route *r, json_t *op, const char *op_id)
{
    json_t *out = json_object();
    if (out == NULL || json_object_set_new(op, "responses", out) != 0)
        return BK_ENOMEM;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(r->doc, "responses"), i, d) {
        int status = (int)json_integer_value(json_object_get(d, "status"));
        char key[16];
        snprintf(key, sizeof key, status ? "%d" : "default", status);
        const char *desc = json_string_value(json_object_get(d, "description"));
        json_t *resp = json_pack("{s:s}", "description",
                                 desc ? desc : status ? bk_http_reason(status) : "Any other answer.");
        if (resp == NULL || json_object_set_new(out, key, resp) != 0)
            return BK_ENOMEM;
        const json_t *schema = json_object_get(d, "schema");
        if (schema != NULL) {
            char hint[160];
            snprintf(hint, sizeof hint, "%s_%s", op_id, key);
            const char *ctype = json_string_value(json_object_get(d, "content_type"));
            json_t *ref = ref_obj(schema_ref(x, schema, BK_SCHEMA_DRAFT_2020_12, hint));
            if (ref == NULL || json_object_set_new(resp, "content", json_pack("{s:{s:o}}", ctype ? ctype :
                                                   "application/json", "schema", ref)) != 0)
                return BK_ENOMEM;
        }
    }
    if (json_object_size(out) == 0 &&
        json_object_set_new(out, "200", json_pack("{s:s}", "description", "OK")) != 0)
        return BK_ENOMEM;
    bool body = r->body_schema != NULL || (r->flags & BK_HTTP_JSON);
    bool params = (r->nparams > 0 || r->query_schema != NULL) && !(r->flags & BK_HTTP_RAW_PARAMS);
    const bool has[NGUARDS] = {
        [G_400] = body || params,
        [G_401] = r->auth != NULL,
        [G_403] = r->permission != NULL,
        [G_404] = r->owner != NULL,
        [G_413] = body,
        [G_415] = body,
        [G_422] = r->body_schema != NULL || r->query_schema != NULL,
        [G_429] = r->ratelimit != NULL,
        [G_503] = body || (r->flags & BK_HTTP_BLOCKING),
    };
    for (int g = 0; g < NGUARDS; g++) {
        if (!has[g] || json_object_get(out, GUARD_ANSWERS[g].status) != NULL)
            continue; /* the route's own description of that status wins */
        json_t *ref = guard_ref(x, g);
        if (ref == NULL || json_object_set_new(out, GUARD_ANSWERS[g].status, ref) != 0)
            return BK_ENOMEM;
    }
    return BK_OK;
}

static int add_tags(render_t *x, const json_t *tags)
{
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t) {
        size_t j;
        json_t *seen;
        bool found = false;
        json_array_foreach(x->tags, j, seen)
            found = found || json_equal(json_object_get(seen, "name"), t);
        if (!found && json_array_append_new(x->tags, json_pack("{s:O}", "name", t)) != 0)
            return BK_ENOMEM;
    }
    return BK_OK;
}

static int render_route(render_t *x, const struct route *r)
{
    char lower[16];
    size_t m = 0;
    for (; OPENAPI_METHODS[m] && strcmp(OPENAPI_METHODS[m], r->method) != 0; m++)
        ;
    if (OPENAPI_METHODS[m] == NULL)
        return BK_OK; /* a method OpenAPI 3.1 has no field for */
    for (size_t i = 0; i <= strlen(r->method); i++)
        lower[i] = (char)(r->method[i] >= 'A' && r->method[i] <= 'Z' ? r->method[i] + 32 : r->method[i]);
    char *path = openapi_path(r->template);
    if (path == NULL)
        return BK_ENOMEM;
    json_t *item = json_object_get(x->paths, path);
    if (item == NULL && json_object_set_new(x->paths, path, item = json_object()) != 0) {
        free(path);
        return BK_ENOMEM;
    }
    if (json_object_get(item, lower) != NULL) {
        int rc = bk__error(x->err, BK_EINVAL, "openapi: %s %s is the path of another route of that "
                                              "method in OpenAPI's terms", r->method, r->template);
        free(path);
        return rc;
    }
    json_t *op = json_object();
    if (op == NULL || json_object_set_new(item, lower, op) != 0) {
        free(path);
        return BK_ENOMEM;
    }
    const json_t *tags = json_object_get(r->doc, "tags");
    const char *summary = json_string_value(json_object_get(r->doc, "summary"));
    const char *desc = json_string_value(json_object_get(r->doc, "description"));
    const char *given = json_string_value(json_object_get(r->doc, "operationId"));
    char *op_id = given ? strdup(given) : made_op_id(x, r);
    int rc = op_id ? BK_OK : BK_ENOMEM;
    if (rc == BK_OK && ((!given && json_object_set_new(x->op_ids, op_id, json_true()) != 0) ||
                        (json_array_size(tags) > 0 && json_object_set(op, "tags", (json_t *)tags) != 0) ||
                        json_object_set_new(op, "summary", summary ? json_string(summary)
                                                                   : json_sprintf("%s %s", r->method, path)) != 0 ||
                        (desc && json_object_set_new(op, "description", json_string(desc)) != 0) ||
                        json_object_set_new(op, "operationId", json_string(op_id)) != 0))
        rc = BK_ENOMEM;
    if (rc == BK_OK)
        rc = add_tags(x, tags);
    if (rc == BK_OK)
        rc = add_parameters(x, r, op, op_id);
    if (rc == BK_OK)
        rc = add_body(x, r, op, op_id);
    if (rc == BK_OK)
        rc = add_responses(x, r, op, op_id);
    if (rc == BK_OK && json_is_true(json_object_get(r->doc, "deprecated")) &&
        json_object_set_new(op, "deprecated", json_true()) != 0)
        rc = BK_ENOMEM;
    /* Said either way: an empty list is "no authentication", not "not said". */
    x->bearer = x->bearer || r->auth != NULL;
    if (rc == BK_OK && (json_object_set_new(op, "security", r->auth ? json_pack("[{s:[]}]", "bearerAuth")
                                                                    : json_array()) != 0 ||
                        (r->permission && json_object_set_new(op, "x-permission", json_string(r->permission)) != 0)))
        rc = BK_ENOMEM;
    free(op_id);
    free(path);
    return rc;
}

static bool documented(const struct route *r)
{
    return !r->internal && !r->hidden;
}

static int render(const bk_http_server_t *srv, const json_t *head, json_t **out, bk_error_t *err)
{
    render_t x = {.paths = json_object(), .schemas = json_object(), .responses = json_object(),
                  .names = json_object(), .op_ids = json_object(), .tags = json_array(), .err = err};
    json_t *doc = json_deep_copy(head);
    int rc = x.paths && x.schemas && x.responses && x.names && x.op_ids && x.tags && doc ? BK_OK
                                                                                         : BK_ENOMEM;
    /* The operationIds the routes were given come first: a made one never takes
     * one of theirs, and two routes given the same one are a mistake to report. */
    for (const struct route *r = srv->routes; rc == BK_OK && r != NULL; r = r->reg_next) {
        const char *id = json_string_value(json_object_get(r->doc, "operationId"));
        if (id == NULL || !documented(r))
            continue;
        if (json_object_get(x.op_ids, id) != NULL)
            rc = bk__error(err, BK_EINVAL, "openapi: the operationId %s is given to two routes", id);
        else if (json_object_set_new(x.op_ids, id, json_true()) != 0)
            rc = BK_ENOMEM;
    }
    for (const struct route *r = srv->routes; rc == BK_OK && r != NULL; r = r->reg_next) {
        if (documented(r))
            rc = render_route(&x, r);
    }
    if (rc == BK_OK && json_object_set(doc, "paths", x.paths) != 0)
        rc = BK_ENOMEM;
    if (rc == BK_OK && (json_object_size(x.schemas) || json_object_size(x.responses) || x.bearer)) {
        json_t *c = json_object();
        if (c == NULL || json_object_set_new(doc, "components", c) != 0 ||
            (json_object_size(x.schemas) && json_object_set(c, "schemas", x.schemas) != 0) ||
            (json_object_size(x.responses) && json_object_set(c, "responses", x.responses) != 0) ||
            (x.bearer && json_object_set_new(c, "securitySchemes",
                                             json_pack("{s:{s:s, s:s, s:s}}", "bearerAuth", "type", "http",
                                                       "scheme", "bearer", "bearerFormat", "JWT")) != 0))
            rc = BK_ENOMEM;
    }
    if (rc == BK_OK && json_array_size(x.tags) > 0 && json_object_set(doc, "tags", x.tags) != 0)
        rc = BK_ENOMEM;
    json_decref(x.paths);
    json_decref(x.schemas);
    json_decref(x.responses);
    json_decref(x.names);
    json_decref(x.op_ids);
    json_decref(x.tags);
    if (rc != BK_OK) {
        json_decref(doc);
        return err && err->code != BK_OK ? rc : bk__error(err, rc, "openapi: out of memory");
    }
    *out = doc;
    return BK_OK;
}

int bk_http_openapi(const bk_http_server_t *srv, const bk_http_openapi_info_t *info, json_t **out,
                    bk_error_t *err)
{
    bk__error_clear(err);
    if (out != NULL)
        *out = NULL;
    if (srv == NULL || out == NULL)
        return bk__error(err, BK_EINVAL, "srv and out are required");
    json_t *head;
    int rc = head_json(info, &head, err);
    if (rc == BK_OK)
        rc = render(srv, head, out, err);
    json_decref(head);
    return rc;
}

/* ------------------------------------------------------------------ the mount */
static void openapi_handler(bk_req_t *req, void *ud)
{
    const bk_http_server_t *srv = ud;
    bk_res_bytes(req, 200, "application/json", srv->openapi_text, srv->openapi_len);
}

int bk_http_mount_openapi(bk_http_server_t *srv, const char *path, const bk_http_openapi_info_t *info)
{
    if (srv == NULL || path == NULL)
        return BK_EINVAL;
    if (srv->started)
        return BK_EBUSY;
    if (srv->openapi_head != NULL)
        return BK_EEXIST;
    json_t *head;
    int rc = head_json(info, &head, NULL);
    if (rc != BK_OK)
        return rc;
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.doc = &(bk_http_operation_t){.hidden = true};
    if ((rc = bk_http_route(srv, "GET", path, openapi_handler, srv, &ro)) != BK_OK) {
        json_decref(head);
        return rc;
    }
    srv->openapi_head = head;
    return BK_OK;
}

int bk__openapi_render(bk_http_server_t *srv, bk_error_t *err)
{
    if (srv->openapi_head == NULL)
        return BK_OK;
    json_t *doc;
    int rc = render(srv, srv->openapi_head, &doc, err);
    if (rc != BK_OK)
        return rc;
    srv->openapi_text = bk__json_dump(doc, JSON_COMPACT);
    json_decref(doc);
    if (srv->openapi_text == NULL)
        return bk__error(err, BK_ENOMEM, "openapi: out of memory");
    srv->openapi_len = strlen(srv->openapi_text);
    return BK_OK;
}

void bk__openapi_free(bk_http_server_t *srv)
{
    json_decref(srv->openapi_head);
    bk__json_free(srv->openapi_text);
}
