/* libFuzzer target: RBAC policies. The input, when it is JSON, is loaded as a
 * policy (roles, inherits, permissions: cycles, unknown roles, malformed
 * entries must be refused with BK_EINVAL and a pointer), and a policy that
 * loads is asked about every role it names and some permissions, with and
 * without scopes.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include <backend/auth.h>

#include "fuzz.h"

BK_FUZZ_INIT
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, &je);
    if (!doc)
        return 0;
    bk_rbac_t *rbac;
    bk_error_t err;
    int rc = bk_rbac_load(doc, &rbac, &err);
    if (rc != BK_OK) {
        if (rc != BK_EINVAL && rc != BK_ENOMEM)
            abort(); /* no other code is documented */
        json_decref(doc);
        return 0;
    }
    static const char *const perms[] = {"orders:read", "orders:items:read", "a", "admin:users:delete", NULL};
    const char *scopes[] = {"orders:read", NULL};
    const char *key;
    json_t *role;
    json_object_foreach(json_object_get(doc, "roles"), key, role) {
        const char *roles[] = {key, "no-such-role", NULL};
        for (size_t i = 0; perms[i]; i++) {
            bool all = bk_rbac_allows(rbac, roles, NULL, perms[i]);
            bool scoped = bk_rbac_allows(rbac, roles, scopes, perms[i]);
            if (scoped && !all)
                abort(); /* scopes narrow what the roles allow, never widen it */
        }
    }
    bk_rbac_free(rbac);
    json_decref(doc);
    return 0;
}
