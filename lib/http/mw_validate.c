/* The validation guard (bk_http_route_opts_t.body_schema, query_schema): 422
 * problem+json listing every failure, 415/400 for a body that is not JSON.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "core/jsonptr_int.h"
#include "http/http_int.h"

/* Appends the errors of validating v against s to out as {loc, msg, type}; loc
 * is the JSON pointer into the body, or "query.<name>" for query parameters. */
static int schema_errors(const bk_schema_t *s, const json_t *v, bool query, json_t *out)
{
    bk_schema_errors_t *errs = NULL;
    int rc = bk_schema_validate(s, v, BK_SCHEMA_ALL_ERRORS, &errs);
    for (size_t i = 0; rc == BK_EINVAL && i < bk_schema_errors_count(errs); i++) {
        const bk_schema_error_t *e = bk_schema_errors_get(errs, i);
        char loc[512];
        if (query) { /* "/ids/1" -> "query.ids.1", with ~1 and ~0 unescaped */
            size_t o = (size_t)snprintf(loc, sizeof loc, "query");
            for (const char *p = e->instance_location; *p == '/';) {
                size_t tlen = strcspn(p + 1, "/"), n;
                if (o + 1 + tlen >= sizeof loc)
                    break; /* cut short at a token: still names an ancestor */
                loc[o++] = '.';
                if (!bk__jsonptr_unescape(loc + o, p + 1, tlen, &n))
                    memcpy(loc + o, p + 1, n = tlen); /* never from the validator: kept as is */
                o += n;
                p += 1 + tlen;
            }
            loc[o] = '\0';
        }
        json_t *item = json_pack("{s:s, s:s, s:s}", "loc", query ? loc : e->instance_location, "msg",
                                 e->message, "type", e->keyword);
        if (item == NULL || json_array_append_new(out, item) != 0)
            rc = BK_ENOMEM;
    }
    bk_schema_errors_free(errs);
    return rc == BK_EINVAL ? BK_OK : rc;
}

static int validate_before(bk_req_t *req, void *ud)
{
    const struct route *r = ud;
    json_t *errors = json_array(), *query = NULL, *body = NULL;
    int rc = errors ? BK_OK : BK_ENOMEM;
    if (rc == BK_OK && r->query_schema != NULL) {
        query = bk_req_query_json(req);
        rc = query ? schema_errors(r->query_schema, query, true, errors) : BK_ENOMEM;
    }
    if (rc == BK_OK && r->body_schema != NULL) {
        if (bk_req_json(req, &body) != BK_OK) {
            json_decref(errors);
            return BK_HTTP_DONE; /* answered */
        }
        rc = schema_errors(r->body_schema, body, false, errors);
        json_decref(body);
    }
    if (rc != BK_OK) {
        json_decref(errors);
        bk_res_error(req, rc, "out of memory while validating the request");
        return BK_HTTP_DONE;
    }
    if (json_array_size(errors) == 0) {
        json_decref(errors);
        return BK_HTTP_NEXT;
    }
    bk_res_problem(req, 422, "the request does not match its schema", errors);
    return BK_HTTP_DONE;
}

bk_http_middleware_t bk__mw_validate(struct route *r)
{
    return (bk_http_middleware_t){.name = "validate", .before = validate_before, .ud = r};
}
