/* Role-based access control: a policy of roles, each with permissions and the
 * roles it inherits, resolved once at load into one effective permission set per
 * role (a hash set of exact permissions, a hash set of wildcard prefixes, an "all"
 * flag), so that a check is a few hash lookups per role and never a scan.
 * Inheritance is walked with an explicit stack: a chain of any depth loads
 * without recursion. A role whose permissions add nothing to one of its parents'
 * shares that parent's set, so a long chain that grants its permissions near the
 * root costs one set, not one per role.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backend/auth.h>

#include "core/arena_int.h"
#include "core/error_int.h"
#include "core/jsonptr_int.h"
#include "core/map_int.h"

/* A permission of a set, kept while loading for the roles that inherit it. */
struct entry {
    const char *s; /* in the arena; for a prefix, "orders:*" with len 7: "orders:" */
    size_t len;
    bool prefix;
};

/* What a role may do, inherited permissions included. */
struct permset {
    bk__map_t exact;    /* "orders:create" -> itself */
    bk__map_t prefixes; /* "orders:" (from "orders:*") -> itself */
    bool all;           /* "*" */
    /* Loading only: the entries of the two maps, which the maps cannot list. */
    struct entry *list;
    size_t n, cap;
};

struct role {
    const char *name;         /* the policy's key, in the arena */
    const json_t *inherits;   /* loading only: the policy's array (borrowed), or NULL */
    struct role **parents;    /* in the arena */
    size_t nparents;
    struct entry *own;        /* its own permissions, in the arena */
    size_t nown;
    bool own_all;             /* "*" among them */
    struct permset *set;      /* effective; its own, a parent's, or a shared one */
    bool owns_set;
    unsigned char state;      /* loading: UNSEEN, ON_PATH (being resolved), DONE */
};

enum { UNSEEN, ON_PATH, DONE };

struct bk_rbac {
    bk__arena_t arena; /* names, permissions, roles, parent arrays, sets */
    bk__map_t roles;   /* name -> struct role * */
    struct role *role;
    size_t nroles;
    struct permset all, none; /* the sets of roles that may do everything, or nothing */
};

typedef struct loader {
    bk_rbac_t *r;
    bk_error_t *err;
    char ptr[sizeof ((bk_error_t *)0)->pointer]; /* where the next failure is: at() sets it */
    int rc;
} loader_t;

/* ------------------------------------------------------------------ errors */

/* Points the next failure at /roles/<role>/<member>/<idx> (each part when given:
 * role NULL for the policy's own members, idx < 0 for none). Returns l. */
static loader_t *at(loader_t *l, const char *role, const char *member, long idx)
{
    if (l->rc != BK_OK)
        return l; /* the first failure is the one reported */
    l->ptr[0] = '\0';
    bool ok = !role || (bk__jsonptr_append(l->ptr, sizeof l->ptr, "roles", 5) &&
                        bk__jsonptr_append(l->ptr, sizeof l->ptr, role, strlen(role)));
    ok = ok && (!member || bk__jsonptr_append(l->ptr, sizeof l->ptr, member, strlen(member)));
    if (ok && idx >= 0)
        bk__jsonptr_append_index(l->ptr, sizeof l->ptr, (size_t)idx);
    return l;
}

static int fail(loader_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(loader_t *l, const char *fmt, ...)
{
    if (l->rc == BK_OK) {
        l->rc = BK_EINVAL;
        if (l->err) {
            char msg[sizeof l->err->message];
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(msg, sizeof msg, fmt, ap);
            va_end(ap);
            bk__error(l->err, BK_EINVAL, "%s", msg);
            bk__error_field(l->err->pointer, sizeof l->err->pointer, l->ptr);
        }
    }
    return l->rc;
}

static int oom(loader_t *l)
{
    if (l->rc == BK_OK)
        l->rc = bk__error(l->err, BK_ENOMEM, NULL);
    return l->rc;
}

/* ------------------------------------------------------------------ matching */

/* Whether set covers p[0..len) by a wildcard: all, or a prefix up to and
 * including one of its colons (p itself, for a wildcard prefix ending in ':'). */
static bool set_covers_prefix(const struct permset *set, const char *p, size_t len)
{
    if (set->all)
        return true;
    if (set->prefixes.len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (p[i] == ':' && bk__map_get(&set->prefixes, p, i + 1))
            return true;
    return false;
}

/* Whether set allows the concrete permission p[0..len): the exact name, or a
 * wildcard that covers it. */
static bool set_allows(const struct permset *set, const char *p, size_t len)
{
    return bk__map_get(&set->exact, p, len) || set_covers_prefix(set, p, len);
}

static bool set_covers(const struct permset *set, const struct entry *e)
{
    return e->prefix ? set_covers_prefix(set, e->s, e->len) : set_allows(set, e->s, e->len);
}

/* Whether the permission a caller asks about is concrete: non-empty segments, no
 * wildcard. Anything else is allowed by nobody. */
static bool concrete(const char *p, size_t *len)
{
    size_t i = 0;
    bool seg_empty = true;
    for (; p[i]; i++) {
        if (p[i] == '*')
            return false;
        if (p[i] == ':') {
            if (seg_empty)
                return false;
            seg_empty = true;
        } else {
            seg_empty = false;
        }
    }
    *len = i;
    return !seg_empty;
}

/* Whether scope (from a token: not precomputed, same rules) covers the concrete
 * permission p[0..len). */
static bool scope_allows(const char *scope, const char *p, size_t len)
{
    size_t n = strlen(scope);
    if (n == 1 && scope[0] == '*')
        return true;
    if (n >= 2 && scope[n - 1] == '*' && scope[n - 2] == ':')
        return len > n - 1 && memcmp(scope, p, n - 1) == 0;
    return n == len && memcmp(scope, p, len) == 0;
}

bool bk_rbac_allows(const bk_rbac_t *rbac, const char *const *roles, const char *const *scopes,
                    const char *permission)
{
    size_t len;
    if (!rbac || !roles || !permission || !concrete(permission, &len))
        return false;
    if (scopes) {
        size_t i = 0;
        while (scopes[i] && !scope_allows(scopes[i], permission, len))
            i++;
        if (!scopes[i])
            return false;
    }
    for (size_t i = 0; roles[i]; i++) {
        const struct role *role = bk__map_get(&rbac->roles, roles[i], strlen(roles[i]));
        if (role && set_allows(role->set, permission, len))
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------ parsing */

/* Parses one permission of role into *e: non-empty segments separated by ':',
 * "*" alone or as the whole last segment. */
static int parse_permission(loader_t *l, struct role *role, size_t index, const json_t *v, struct entry *e,
                            bool *all)
{
    *all = false;
    if (!json_is_string(v))
        return fail(at(l, role->name, "permissions", (long)index), "role \"%s\": permission %zu is not a string",
                    role->name, index);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0)
        return fail(at(l, role->name, "permissions", (long)index), "role \"%s\": permission %zu is empty",
                    role->name, index);
    if (strlen(s) != len)
        return fail(at(l, role->name, "permissions", (long)index),
                    "role \"%s\": permission %zu contains a NUL character", role->name, index);
    if (len == 1 && s[0] == '*') {
        *all = true;
        return BK_OK;
    }
    bool prefix = len >= 2 && s[len - 1] == '*' && s[len - 2] == ':';
    size_t body = prefix ? len - 1 : len; /* "orders:" of "orders:*" */
    size_t seg = 0;                       /* length of the current segment */
    for (size_t i = 0; i < body; i++) {
        if (s[i] == '*')
            return fail(at(l, role->name, "permissions", (long)index),
                        "role \"%s\": permission \"%s\": '*' may only be the whole permission or its "
                        "whole last segment",
                        role->name, s);
        if (s[i] == ':') {
            if (seg == 0)
                return fail(at(l, role->name, "permissions", (long)index),
                            "role \"%s\": permission \"%s\" has an empty segment", role->name, s);
            seg = 0;
        } else {
            seg++;
        }
    }
    if (!prefix && seg == 0)
        return fail(at(l, role->name, "permissions", (long)index),
                    "role \"%s\": permission \"%s\" has an empty segment", role->name, s);
    char *copy = bk__arena_strndup(&l->r->arena, s, len);
    if (!copy)
        return oom(l);
    *e = (struct entry){copy, body, prefix};
    return BK_OK;
}

static int parse_role(loader_t *l, struct role *role, const json_t *def)
{
    if (!json_is_object(def))
        return fail(at(l, role->name, NULL, -1), "role \"%s\": not an object", role->name);
    const json_t *perms = NULL;
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)def, key, v) {
        if (strcmp(key, "inherits") == 0)
            role->inherits = v;
        else if (strcmp(key, "permissions") == 0)
            perms = v;
        else
            return fail(at(l, role->name, key, -1),
                        "role \"%s\": unknown member \"%s\" (\"inherits\" and \"permissions\" are known)",
                        role->name, key);
    }
    if (role->inherits) {
        if (!json_is_array(role->inherits))
            return fail(at(l, role->name, "inherits", -1), "role \"%s\": \"inherits\" is not an array", role->name);
        for (size_t i = 0; i < json_array_size(role->inherits); i++)
            if (!json_is_string(json_array_get(role->inherits, i)))
                return fail(at(l, role->name, "inherits", (long)i), "role \"%s\": inherited role %zu is not a string",
                            role->name, i);
    }
    if (!perms)
        return BK_OK;
    if (!json_is_array(perms))
        return fail(at(l, role->name, "permissions", -1), "role \"%s\": \"permissions\" is not an array",
                    role->name);
    size_t n = json_array_size(perms);
    if (n && !(role->own = bk__arena_alloc(&l->r->arena, n * sizeof *role->own)))
        return oom(l);
    for (size_t i = 0; i < n; i++) {
        bool all;
        if (parse_permission(l, role, i, json_array_get(perms, i), &role->own[role->nown], &all))
            return l->rc;
        if (all)
            role->own_all = true;
        else
            role->nown++;
    }
    return BK_OK;
}

/* Resolves the names of role's "inherits" to the roles. */
static int link_parents(loader_t *l, struct role *role)
{
    size_t n = role->inherits ? json_array_size(role->inherits) : 0;
    if (n == 0)
        return BK_OK;
    if (!(role->parents = bk__arena_alloc(&l->r->arena, n * sizeof *role->parents)))
        return oom(l);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(role->inherits, i);
        const char *name = json_string_value(v);
        struct role *parent = bk__map_get(&l->r->roles, name, json_string_length(v));
        if (!parent)
            return fail(at(l, role->name, "inherits", (long)i), "role \"%s\" inherits unknown role \"%s\"",
                        role->name, name);
        role->parents[role->nparents++] = parent;
    }
    return BK_OK;
}

/* ------------------------------------------------------------------ effective sets */

static int set_add(loader_t *l, struct permset *set, const struct entry *e)
{
    if (set_covers(set, e))
        return BK_OK;
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 8;
        struct entry *list = realloc(set->list, cap * sizeof *list);
        if (!list)
            return oom(l);
        set->list = list;
        set->cap = cap;
    }
    bk__map_t *m = e->prefix ? &set->prefixes : &set->exact;
    if (bk__map_put(m, e->s, e->len, (void *)e->s))
        return oom(l);
    set->list[set->n++] = *e;
    return BK_OK;
}

/* Adds the entries of list (prefixes when prefixes, else exact permissions). */
static int set_add_all(loader_t *l, struct permset *set, const struct entry *list, size_t n, bool prefixes)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].prefix == prefixes && set_add(l, set, &list[i]))
            return l->rc;
    return BK_OK;
}

static size_t set_size(const struct permset *set)
{
    return set->exact.len + set->prefixes.len;
}

/* Whether set covers every entry of list. */
static bool covers_all(const struct permset *set, const struct entry *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!set_covers(set, &list[i]))
            return false;
    return true;
}

/* Computes role's effective set; its parents' are done. */
static int resolve(loader_t *l, struct role *role)
{
    bk_rbac_t *r = l->r;
    bool all = role->own_all;
    struct role *widest = NULL; /* the parent with the largest set */
    for (size_t i = 0; i < role->nparents && !all; i++) {
        struct role *p = role->parents[i];
        all = p->set->all;
        if (!widest || set_size(p->set) > set_size(widest->set))
            widest = p;
    }
    if (all) {
        role->set = &r->all;
        return BK_OK;
    }
    if (!widest && role->nown == 0) {
        role->set = &r->none;
        return BK_OK;
    }
    /* Share the widest parent's set when the rest adds nothing to it. */
    if (widest && covers_all(widest->set, role->own, role->nown)) {
        size_t i = 0;
        while (i < role->nparents && (role->parents[i]->set == widest->set ||
                                      covers_all(widest->set, role->parents[i]->set->list,
                                                 role->parents[i]->set->n)))
            i++;
        if (i == role->nparents) {
            role->set = widest->set;
            return BK_OK;
        }
    }
    struct permset *set = bk__arena_zalloc(&r->arena, sizeof *set);
    if (!set)
        return oom(l);
    role->set = set;
    role->owns_set = true;
    /* Prefixes first, so that exact permissions they cover are left out. */
    for (int pass = 1; pass >= 0; pass--) {
        if (set_add_all(l, set, role->own, role->nown, pass))
            return l->rc;
        for (size_t i = 0; i < role->nparents; i++)
            if (set_add_all(l, set, role->parents[i]->set->list, role->parents[i]->set->n, pass))
                return l->rc;
    }
    return BK_OK;
}

/* A role being resolved, on the explicit stack of resolve_all. */
struct frame {
    struct role *role;
    size_t next; /* the next parent to visit */
};

/* Reports the cycle that closes at role: the path from its place on the stack,
 * pointing at the inherits entry of the top frame that names role. */
static int cycle(loader_t *l, const struct frame *stack, size_t depth, const struct role *role)
{
    size_t from = 0;
    while (stack[from].role != role)
        from++;
    char path[sizeof ((bk_error_t *)0)->message] = "";
    size_t used = 0;
    for (size_t i = from; i <= depth && used + 1 < sizeof path; i++) {
        const char *name = i < depth ? stack[i].role->name : role->name;
        int n = snprintf(path + used, sizeof path - used, "%s%s", i > from ? " -> " : "", name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    const struct frame *top = &stack[depth - 1];
    return fail(at(l, top->role->name, "inherits", (long)top->next - 1), "role inheritance cycle: %s", path);
}

/* Resolves every role after its parents, depth first with an explicit stack (a
 * chain of any length needs no recursion); a parent met on the current path
 * closes a cycle. */
static int resolve_all(loader_t *l)
{
    bk_rbac_t *r = l->r;
    struct frame *stack = malloc((r->nroles ? r->nroles : 1) * sizeof *stack);
    if (!stack)
        return oom(l);
    for (size_t start = 0; start < r->nroles && !l->rc; start++) {
        if (r->role[start].state != UNSEEN)
            continue;
        size_t depth = 0;
        stack[depth++] = (struct frame){&r->role[start], 0};
        r->role[start].state = ON_PATH;
        while (depth && !l->rc) {
            struct frame *f = &stack[depth - 1];
            if (f->next < f->role->nparents) {
                struct role *p = f->role->parents[f->next++];
                if (p->state == ON_PATH) {
                    cycle(l, stack, depth, p);
                } else if (p->state == UNSEEN) {
                    p->state = ON_PATH;
                    stack[depth++] = (struct frame){p, 0};
                }
            } else if (resolve(l, f->role) == BK_OK) {
                f->role->state = DONE;
                depth--;
            }
        }
    }
    free(stack);
    return l->rc;
}

/* ------------------------------------------------------------------ load and free */

void bk_rbac_free(bk_rbac_t *rbac)
{
    if (!rbac)
        return;
    for (size_t i = 0; i < rbac->nroles; i++) {
        struct role *role = &rbac->role[i];
        if (role->owns_set) {
            bk__map_free(&role->set->exact);
            bk__map_free(&role->set->prefixes);
            free(role->set->list);
        }
    }
    bk__map_free(&rbac->roles);
    bk__arena_free(&rbac->arena);
    free(rbac);
}

static int load(loader_t *l, const json_t *policy)
{
    bk_rbac_t *r = l->r;
    if (!json_is_object(policy))
        return fail(at(l, NULL, NULL, -1), "policy: not an object");
    const json_t *roles = NULL;
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)policy, key, v) {
        if (strcmp(key, "roles") != 0)
            return fail(at(l, NULL, key, -1), "policy: unknown member \"%s\" (\"roles\" is known)", key);
        roles = v;
    }
    if (!roles)
        return fail(at(l, NULL, NULL, -1), "policy: no \"roles\"");
    if (!json_is_object(roles))
        return fail(at(l, NULL, "roles", -1), "policy: \"roles\" is not an object");
    size_t n = json_object_size(roles);
    if (n && !(r->role = bk__arena_zalloc(&r->arena, n * sizeof *r->role)))
        return oom(l);
    json_object_foreach ((json_t *)roles, key, v) {
        size_t len = strlen(key);
        if (len == 0)
            return fail(at(l, "", NULL, -1), "policy: a role has an empty name");
        if (bk__map_get(&r->roles, key, len))
            return fail(at(l, key, NULL, -1), "policy: role \"%s\" is defined twice", key);
        struct role *role = &r->role[r->nroles];
        if (!(role->name = bk__arena_strndup(&r->arena, key, len)))
            return oom(l);
        r->nroles++;
        if (bk__map_put(&r->roles, role->name, len, role))
            return oom(l);
        if (parse_role(l, role, v))
            return l->rc;
    }
    for (size_t i = 0; i < r->nroles; i++)
        if (link_parents(l, &r->role[i]))
            return l->rc;
    return resolve_all(l);
}

int bk_rbac_load(const json_t *policy, bk_rbac_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    loader_t l = {.err = err};
    if (!out)
        return fail(&l, "invalid arguments: out is NULL");
    *out = NULL;
    if (!policy)
        return fail(&l, "invalid arguments: policy is NULL");
    if (!(l.r = calloc(1, sizeof *l.r)))
        return oom(&l);
    l.r->all.all = true;
    if (load(&l, policy)) {
        bk_rbac_free(l.r);
        return l.rc;
    }
    /* The lists served loading only; the policy is borrowed no longer. */
    for (size_t i = 0; i < l.r->nroles; i++) {
        struct role *role = &l.r->role[i];
        if (role->owns_set) {
            free(role->set->list);
            role->set->list = NULL;
            role->set->n = role->set->cap = 0;
        }
        role->inherits = NULL;
    }
    *out = l.r;
    return BK_OK;
}
