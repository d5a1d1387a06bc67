/* The permission guard (bk_http_route_opts_t.permission): the verified
 * caller's roles, narrowed by its scopes, must allow the route's permission
 * (bk_rbac_allows), 403 otherwise. Runs after the auth guard.
 * SPDX-License-Identifier: MIT */
#include <string.h>

#include "http/http_int.h"

/* The strings of a claim that is a string (split at spaces when split) or an
 * array of strings, NULL-terminated in the request's arena; NULL when absent. */
static const char **claim_list(struct bk_req *req, const char *name, bool split)
{
    const json_t *v = json_object_get(req->claims, name);
    size_t n = 0, cap = json_is_array(v) ? json_array_size(v) : 0;
    if (json_is_string(v))
        cap = split ? json_string_length(v) / 2 + 1 : 1;
    else if (!json_is_array(v))
        return NULL;
    const char **list = bk__arena_alloc(&req->arena, (cap + 1) * sizeof *list);
    if (list == NULL)
        return NULL;
    if (json_is_string(v) && split) {
        char *s = bk__arena_strndup(&req->arena, json_string_value(v), json_string_length(v));
        for (char *save = NULL, *tok = s ? strtok_r(s, " ", &save) : NULL; tok; tok = strtok_r(NULL, " ", &save))
            list[n++] = tok;
    } else if (json_is_string(v)) {
        list[n++] = json_string_value(v);
    } else {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
            if (json_is_string(e))
                list[n++] = json_string_value(e);
    }
    list[n] = NULL;
    return list;
}

/* Whether the verified caller's roles, narrowed by its scopes, allow permission. */
static bool allows(bk_req_t *req, const bk_http_auth_t *a, const char *permission)
{
    const char **roles = claim_list(req, a->roles_claim ? a->roles_claim : "roles", false);
    const char **scopes = claim_list(req, a->scope_claim ? a->scope_claim : "scope", true);
    static const char *const none[] = {NULL};
    return bk_rbac_allows(a->rbac, roles ? roles : none, scopes, permission);
}

bool bk_req_allows(bk_req_t *req, const char *permission)
{
    if (req == NULL || permission == NULL || req->claims == NULL || req->route == NULL || req->route->auth == NULL ||
        req->route->auth->rbac == NULL)
        return false;
    return allows(req, req->route->auth, permission);
}

static int permission_before(bk_req_t *req, void *ud)
{
    const struct route *r = ud;
    if (!allows(req, r->auth, r->permission)) {
        bk_res_error(req, BK_EFORBIDDEN, "the token does not allow this");
        return BK_HTTP_DONE;
    }
    return BK_HTTP_NEXT;
}

bk_http_middleware_t bk__mw_permission(struct route *r)
{
    return (bk_http_middleware_t){.name = "permission", .before = permission_before, .ud = r};
}
