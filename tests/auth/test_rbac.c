/* RBAC: inheritance (multi-level, diamond), wildcards, the superuser, scopes,
 * every refusal of a malformed policy with its message, cycles, policies of
 * thousands of roles, and 8 threads asking one policy at once.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include <backend/auth.h>

#include "check_main.h"

#define R(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

static bk_error_t err;

/* Loads a policy written as JSON text; fails the test when it is refused. */
static bk_rbac_t *load(const char *text)
{
    json_error_t jerr;
    json_t *policy = json_loads(text, 0, &jerr);
    ck_assert_msg(policy != NULL, "bad JSON in test: %s", jerr.text);
    bk_rbac_t *rbac = NULL;
    memset(&err, 0x5a, sizeof err); /* cleared on entry */
    int rc = bk_rbac_load(policy, &rbac, &err);
    json_decref(policy); /* the policy is not borrowed beyond the load */
    ck_assert_msg(rc == BK_OK, "refused (%d): %s", rc, err.message);
    ck_assert_ptr_nonnull(rbac);
    ck_assert_int_eq(err.code, BK_OK);
    ck_assert_str_eq(err.message, "");
    ck_assert_str_eq(err.pointer, "");
    return rbac;
}

/* Loads a policy that must be refused with BK_EINVAL, a message containing want
 * and err.pointer equal to pointer. */
static void refused(const char *text, const char *want, const char *pointer)
{
    json_error_t jerr;
    json_t *policy = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    ck_assert_msg(policy != NULL, "bad JSON in test: %s", jerr.text);
    static char sentinel;
    bk_rbac_t *rbac = (bk_rbac_t *)&sentinel; /* must be reset to NULL */
    memset(&err, 0x5a, sizeof err);
    int rc = bk_rbac_load(policy, &rbac, &err);
    json_decref(policy);
    ck_assert_msg(rc == BK_EINVAL, "%s: rc %d, want BK_EINVAL", text, rc);
    ck_assert_ptr_null(rbac);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_msg(strstr(err.message, want) != NULL, "%s: message \"%s\", want \"%s\"", text, err.message, want);
    ck_assert_msg(strcmp(err.pointer, pointer) == 0, "%s: pointer \"%s\", want \"%s\"", text, err.pointer,
                  pointer);
    ck_assert_str_eq(err.file, "");
}


static bool can(const bk_rbac_t *rbac, const char *role, const char *perm)
{
    return bk_rbac_allows(rbac, R(role), NULL, perm);
}

/* ------------------------------------------------------------------ inheritance */

START_TEST(inheritance_multi_level)
{
    bk_rbac_t *r = load("{\"roles\": {"
                        " \"admin\":  {\"inherits\": [\"editor\"], \"permissions\": [\"users:delete\"]},"
                        " \"editor\": {\"inherits\": [\"viewer\"], \"permissions\": [\"orders:create\"]},"
                        " \"viewer\": {\"permissions\": [\"orders:read\"]}}}");
    ck_assert(can(r, "viewer", "orders:read"));
    ck_assert(!can(r, "viewer", "orders:create"));
    ck_assert(!can(r, "viewer", "users:delete"));
    ck_assert(can(r, "editor", "orders:read"));
    ck_assert(can(r, "editor", "orders:create"));
    ck_assert(!can(r, "editor", "users:delete"));
    ck_assert(can(r, "admin", "orders:read"));
    ck_assert(can(r, "admin", "orders:create"));
    ck_assert(can(r, "admin", "users:delete"));
    ck_assert(!can(r, "admin", "users:create"));
    /* Several roles: any one of them allowing is enough. */
    ck_assert(!bk_rbac_allows(r, R("viewer"), NULL, "orders:create"));
    ck_assert(bk_rbac_allows(r, R("viewer", "editor"), NULL, "orders:create"));
    ck_assert(bk_rbac_allows(r, R("nobody", "editor"), NULL, "orders:create"));
    bk_rbac_free(r);
}
END_TEST

START_TEST(inheritance_diamond)
{
    /* top inherits left and right, both inherit base: base's permissions arrive
     * twice and count once; each side's own ones arrive too. */
    bk_rbac_t *r = load("{\"roles\": {"
                        " \"top\":   {\"inherits\": [\"left\", \"right\"], \"permissions\": [\"t:x\"]},"
                        " \"left\":  {\"inherits\": [\"base\"], \"permissions\": [\"l:x\"]},"
                        " \"right\": {\"inherits\": [\"base\"], \"permissions\": [\"r:x\", \"b:*\"]},"
                        " \"base\":  {\"permissions\": [\"b:x\", \"b:y\"]}}}");
    const char *perms[] = {"t:x", "l:x", "r:x", "b:x", "b:y", "b:z"};
    const bool top[] = {1, 1, 1, 1, 1, 1}, left[] = {0, 1, 0, 1, 1, 0}, right[] = {0, 0, 1, 1, 1, 1},
               base[] = {0, 0, 0, 1, 1, 0};
    for (int i = 0; i < 6; i++) {
        ck_assert_msg(can(r, "top", perms[i]) == top[i], "top %s", perms[i]);
        ck_assert_msg(can(r, "left", perms[i]) == left[i], "left %s", perms[i]);
        ck_assert_msg(can(r, "right", perms[i]) == right[i], "right %s", perms[i]);
        ck_assert_msg(can(r, "base", perms[i]) == base[i], "base %s", perms[i]);
    }
    bk_rbac_free(r);
}
END_TEST

START_TEST(inheritance_only_roles_and_empty_roles)
{
    /* A role with no permissions of its own has exactly its parents'; a role with
     * nothing at all has nothing; an empty policy loads. */
    bk_rbac_t *r = load("{\"roles\": {"
                        " \"alias\": {\"inherits\": [\"base\"]},"
                        " \"both\":  {\"inherits\": [\"base\", \"alias\", \"base\"], \"permissions\": [\"a:b\"]},"
                        " \"base\":  {\"permissions\": [\"a:b\", \"c:*\"]},"
                        " \"empty\": {},"
                        " \"none\":  {\"inherits\": [], \"permissions\": []}}}");
    ck_assert(can(r, "alias", "a:b"));
    ck_assert(can(r, "alias", "c:d"));
    ck_assert(!can(r, "alias", "a:c"));
    ck_assert(can(r, "both", "c:d:e"));
    ck_assert(!can(r, "both", "d:e"));
    ck_assert(!can(r, "empty", "a:b"));
    ck_assert(!can(r, "none", "a:b"));
    bk_rbac_free(r);
    r = load("{\"roles\": {}}");
    ck_assert(!can(r, "admin", "a:b"));
    bk_rbac_free(r);
}
END_TEST

/* ------------------------------------------------------------------ wildcards */

START_TEST(wildcard_prefix)
{
    bk_rbac_t *r = load("{\"roles\": {\"clerk\": {\"permissions\": [\"orders:*\", \"users:profile:*\"]}}}");
    ck_assert(can(r, "clerk", "orders:create"));
    ck_assert(can(r, "clerk", "orders:items:read"));
    ck_assert(!can(r, "clerk", "ordersx:read"));
    ck_assert(!can(r, "clerk", "orders"));
    ck_assert(!can(r, "clerk", "order:create"));
    ck_assert(can(r, "clerk", "users:profile:read"));
    ck_assert(can(r, "clerk", "users:profile:photo:delete"));
    ck_assert(!can(r, "clerk", "users:profile"));
    ck_assert(!can(r, "clerk", "users:read"));
    ck_assert(!can(r, "clerk", "users"));
    bk_rbac_free(r);
}
END_TEST

START_TEST(wildcard_superuser)
{
    bk_rbac_t *r = load("{\"roles\": {"
                        " \"root\": {\"permissions\": [\"*\"]},"
                        " \"heir\": {\"inherits\": [\"root\"], \"permissions\": [\"x:y\"]},"
                        " \"user\": {\"permissions\": [\"x:y\"]}}}");
    const char *perms[] = {"orders:create", "a", "a:b:c:d:e", "users:delete"};
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(can(r, "root", perms[i]), "root %s", perms[i]);
        ck_assert_msg(can(r, "heir", perms[i]), "heir %s", perms[i]);
        ck_assert_msg(!can(r, "user", perms[i]), "user %s", perms[i]);
    }
    bk_rbac_free(r);
}
END_TEST

START_TEST(wildcard_in_the_question_never_matches)
{
    /* Callers ask about concrete actions: a '*' (or an empty segment) in the
     * permission asked about is allowed by nobody, the superuser included. */
    bk_rbac_t *r = load("{\"roles\": {"
                        " \"root\": {\"permissions\": [\"*\"]},"
                        " \"clerk\": {\"permissions\": [\"orders:*\"]}}}");
    const char *bad[] = {"*", "orders:*", "orders:cre*", "*:read", "", "orders:", ":read", "orders::read"};
    for (int i = 0; i < 8; i++) {
        ck_assert_msg(!can(r, "root", bad[i]), "root \"%s\"", bad[i]);
        ck_assert_msg(!can(r, "clerk", bad[i]), "clerk \"%s\"", bad[i]);
        ck_assert_msg(!bk_rbac_allows(r, R("root"), R("*"), bad[i]), "root with scope * \"%s\"", bad[i]);
    }
    bk_rbac_free(r);
}
END_TEST

START_TEST(unknown_role_and_null_arguments)
{
    bk_rbac_t *r = load("{\"roles\": {\"viewer\": {\"permissions\": [\"orders:read\", \"*\"]}}}");
    ck_assert(can(r, "viewer", "orders:read"));
    ck_assert(!can(r, "Viewer", "orders:read")); /* names are exact */
    ck_assert(!can(r, "viewe", "orders:read"));
    ck_assert(!can(r, "", "orders:read"));
    ck_assert(!bk_rbac_allows(r, NONE, NULL, "orders:read"));
    ck_assert(!bk_rbac_allows(r, NULL, NULL, "orders:read"));
    ck_assert(!bk_rbac_allows(r, R("viewer"), NULL, NULL));
    ck_assert(!bk_rbac_allows(NULL, R("viewer"), NULL, "orders:read"));
    bk_rbac_free(r);
    bk_rbac_free(NULL);

    json_t *policy = json_loads("{\"roles\": {}}", 0, NULL);
    ck_assert_int_eq(bk_rbac_load(policy, NULL, &err), BK_EINVAL);
    ck_assert_int_eq(bk_rbac_load(NULL, &r, &err), BK_EINVAL);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(bk_rbac_load(policy, &r, NULL), BK_OK); /* err may be NULL */
    bk_rbac_free(r);
    json_decref(policy);
}
END_TEST

/* ------------------------------------------------------------------ scopes */

START_TEST(scopes_narrow_the_roles)
{
    bk_rbac_t *r = load("{\"roles\": {"
                        " \"clerk\": {\"permissions\": [\"orders:*\", \"users:read\"]}}}");
    const char *const *clerk = R("clerk");
    /* NULL: the roles decide. */
    ck_assert(bk_rbac_allows(r, clerk, NULL, "orders:create"));
    ck_assert(bk_rbac_allows(r, clerk, NULL, "users:read"));
    /* An exact scope: only that. */
    ck_assert(!bk_rbac_allows(r, clerk, R("orders:read"), "orders:create"));
    ck_assert(bk_rbac_allows(r, clerk, R("orders:read"), "orders:read"));
    ck_assert(!bk_rbac_allows(r, clerk, R("orders:read"), "orders:read:all"));
    /* An empty list: nothing. */
    ck_assert(!bk_rbac_allows(r, clerk, NONE, "orders:read"));
    ck_assert(!bk_rbac_allows(r, clerk, NONE, "users:read"));
    /* Scope wildcards, same rules as the policy's. */
    ck_assert(bk_rbac_allows(r, clerk, R("orders:*"), "orders:items:read"));
    ck_assert(!bk_rbac_allows(r, clerk, R("orders:*"), "users:read"));
    ck_assert(!bk_rbac_allows(r, clerk, R("orders:*"), "orders"));
    ck_assert(!bk_rbac_allows(r, clerk, R("order:*"), "orders:read"));
    ck_assert(!bk_rbac_allows(r, clerk, R("orders*"), "orders:read"));
    ck_assert(!bk_rbac_allows(r, clerk, R("orders:"), "orders:read"));
    ck_assert(bk_rbac_allows(r, clerk, R("*"), "users:read"));
    /* Any one scope is enough; scopes never grant what the roles do not. */
    ck_assert(bk_rbac_allows(r, clerk, R("billing:*", "users:read"), "users:read"));
    ck_assert(!bk_rbac_allows(r, clerk, R("*"), "users:delete"));
    ck_assert(!bk_rbac_allows(r, clerk, R("users:delete"), "users:delete"));
    ck_assert(!bk_rbac_allows(r, R("nobody"), R("*"), "orders:read"));
    bk_rbac_free(r);
}
END_TEST

/* ------------------------------------------------------------------ refusals */

START_TEST(cycles_refused_with_the_path)
{
    /* The pointer names the inherits entry that closes the cycle. */
    refused("{\"roles\": {\"a\": {\"inherits\": [\"a\"]}}}", "role inheritance cycle: a -> a",
            "/roles/a/inherits/0");
    ck_assert_str_eq(err.message, "role inheritance cycle: a -> a");
    refused("{\"roles\": {"
            " \"a\": {\"inherits\": [\"b\"]},"
            " \"b\": {\"inherits\": [\"c\"], \"permissions\": [\"x:y\"]},"
            " \"c\": {\"inherits\": [\"a\"]}}}",
            "", "/roles/c/inherits/0");
    ck_assert_str_eq(err.message, "role inheritance cycle: a -> b -> c -> a");
    /* The path starts where the cycle closes, not at the role the walk began at. */
    refused("{\"roles\": {"
            " \"top\": {\"inherits\": [\"ok\", \"x\"]},"
            " \"ok\":  {\"permissions\": [\"a:b\"]},"
            " \"x\":   {\"inherits\": [\"ok\", \"y\"]},"
            " \"y\":   {\"inherits\": [\"x\"]}}}",
            "", "/roles/y/inherits/0");
    ck_assert_str_eq(err.message, "role inheritance cycle: x -> y -> x");
}
END_TEST

START_TEST(unknown_inherited_role_refused)
{
    refused("{\"roles\": {\"editor\": {\"inherits\": [\"viewr\"]}, \"viewer\": {}}}",
            "role \"editor\" inherits unknown role \"viewr\"", "/roles/editor/inherits/0");
    /* Role names are escaped in the pointer as RFC 6901 says (~ as ~0, / as ~1). */
    refused("{\"roles\": {\"ops/admin~2\": {\"inherits\": [\"ok\", \"nope\"]}, \"ok\": {}}}",
            "inherits unknown role \"nope\"", "/roles/ops~1admin~02/inherits/1");
}
END_TEST

START_TEST(malformed_policies_refused)
{
    static const struct {
        const char *policy, *message, *pointer;
    } cases[] = {
        {"[]", "policy: not an object", ""},
        {"\"roles\"", "policy: not an object", ""},
        {"{}", "policy: no \"roles\"", ""},
        {"{\"roles\": []}", "\"roles\" is not an object", "/roles"},
        {"{\"roles\": {}, \"version\": 1}", "policy: unknown member \"version\"", "/version"},
        {"{\"roles\": {\"a\": []}}", "role \"a\": not an object", "/roles/a"},
        {"{\"roles\": {\"a\": null}}", "role \"a\": not an object", "/roles/a"},
        {"{\"roles\": {\"\": {}}}", "empty name", "/roles/"},
        {"{\"roles\": {\"a\": {\"permission\": [\"x:y\"]}}}", "role \"a\": unknown member \"permission\"",
         "/roles/a/permission"},
        {"{\"roles\": {\"a\": {\"inherit\": []}}}", "role \"a\": unknown member \"inherit\"", "/roles/a/inherit"},
        {"{\"roles\": {\"a\": {\"inherits\": \"b\"}, \"b\": {}}}", "role \"a\": \"inherits\" is not an array",
         "/roles/a/inherits"},
        {"{\"roles\": {\"a\": {\"inherits\": [1]}}}", "role \"a\": inherited role 0 is not a string",
         "/roles/a/inherits/0"},
        {"{\"roles\": {\"a\": {\"permissions\": \"x:y\"}}}", "role \"a\": \"permissions\" is not an array",
         "/roles/a/permissions"},
        {"{\"roles\": {\"a\": {\"permissions\": {}}}}", "\"permissions\" is not an array", "/roles/a/permissions"},
        {"{\"roles\": {\"a\": {\"permissions\": [\"x\", 2]}}}", "role \"a\": permission 1 is not a string",
         "/roles/a/permissions/1"},
        {"{\"roles\": {\"a\": {\"permissions\": [null]}}}", "permission 0 is not a string", "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\"\"]}}}", "role \"a\": permission 0 is empty",
         "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\"x\\u0000y\"]}}}", "NUL", "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\"orders*\"]}}}", "\"orders*\": '*' may only be",
         "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\"*:read\"]}}}", "\"*:read\": '*' may only be",
         "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\"orders:*:read\"]}}}", "'*' may only be", "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\"orders:cre*\"]}}}", "'*' may only be", "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\"**\"]}}}", "'*' may only be", "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\"orders:**\"]}}}", "'*' may only be", "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\"orders:\"]}}}", "\"orders:\" has an empty segment",
         "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\":read\"]}}}", "has an empty segment", "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\"a::b\"]}}}", "has an empty segment", "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\":*\"]}}}", "has an empty segment", "/roles/a/permissions/0"},
        {"{\"roles\": {\"a\": {\"permissions\": [\"x::*\"]}}}", "has an empty segment", "/roles/a/permissions/0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused(cases[i].policy, cases[i].message, cases[i].pointer);
}
END_TEST

START_TEST(error_detail_in_the_caller_struct)
{
    json_t *policy = json_loads("{\"roles\": {\"a-rather-long-role-name\": {\"inherits\": "
                                "[\"a-rather-long-role-name\"]}}}",
                                0, NULL);
    bk_rbac_t *r;
    memset(&err, 0x5a, sizeof err);
    ck_assert_int_eq(bk_rbac_load(policy, &r, &err), BK_EINVAL);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_str_eq(err.message, "role inheritance cycle: a-rather-long-role-name -> a-rather-long-role-name");
    ck_assert_str_eq(err.pointer, "/roles/a-rather-long-role-name/inherits/0");
    ck_assert_str_eq(err.detail, ""); /* the fields the call does not have are cleared */
    ck_assert_str_eq(err.file, "");
    ck_assert_uint_eq(err.line, 0);
    ck_assert_int_eq(bk_rbac_load(policy, &r, NULL), BK_EINVAL); /* err may be NULL */
    json_decref(policy);

    /* A role name too long for the field: the pointer stops at an ancestor. */
    char name[400];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    policy = json_pack("{s:{s:{s:[s]}}}", "roles", name, "inherits", "missing");
    ck_assert_int_eq(bk_rbac_load(policy, &r, &err), BK_EINVAL);
    ck_assert_str_eq(err.pointer, "/roles");
    json_decref(policy);

    /* Out of arguments, still a message. */
    ck_assert_int_eq(bk_rbac_load(NULL, &r, &err), BK_EINVAL);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "policy is NULL"));
}
END_TEST

/* ------------------------------------------------------------------ large policies */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A chain r0 <- r1 <- ... <- r(n-1): ri inherits r(i-1); ri has the permission
 * "pi:read" when every is 0 or divides i. Listed from the top down when reversed,
 * so the walk goes as deep as the chain. */
static json_t *chain(int n, int every, bool reversed)
{
    json_t *roles = json_object();
    for (int k = 0; k < n; k++) {
        int i = reversed ? n - 1 - k : k;
        char name[32], perm[32];
        snprintf(name, sizeof name, "r%d", i);
        json_t *role = json_object();
        if (i > 0) {
            char parent[32];
            snprintf(parent, sizeof parent, "r%d", i - 1);
            json_object_set_new(role, "inherits", json_pack("[s]", parent));
        }
        if (every == 0 || i % every == 0) {
            snprintf(perm, sizeof perm, "p%d:read", i);
            json_object_set_new(role, "permissions", json_pack("[s]", perm));
        }
        json_object_set_new(roles, name, role);
    }
    return json_pack("{s:o}", "roles", roles);
}

START_TEST(large_chain_every_role_its_own_permission)
{
    /* 1000 roles, each with a permission, each inheriting the one below: the top
     * one has 1000 permissions, 500,500 in all. */
    json_t *policy = chain(1000, 0, true);
    bk_rbac_t *r;
    double t0 = now_s();
    ck_assert_int_eq(bk_rbac_load(policy, &r, &err), BK_OK);
    double took = now_s() - t0;
    json_decref(policy);
    fprintf(stderr, "rbac: 1000-role chain loaded in %.3f s\n", took);
    ck_assert_msg(took < 30, "took %.3f s", took); /* generous: valgrind runs this too */
    char role[32], perm[32];
    for (int i = 0; i < 1000; i += 37) {
        snprintf(role, sizeof role, "r%d", i);
        for (int j = 0; j < 1000; j += 29) {
            snprintf(perm, sizeof perm, "p%d:read", j);
            ck_assert_msg(can(r, role, perm) == (j <= i), "%s %s", role, perm);
        }
        snprintf(perm, sizeof perm, "p%d:write", i);
        ck_assert(!can(r, role, perm));
    }
    ck_assert(can(r, "r999", "p0:read"));
    ck_assert(can(r, "r999", "p999:read"));
    ck_assert(!can(r, "r998", "p999:read"));
    ck_assert(!can(r, "r0", "p1:read"));
    bk_rbac_free(r);
}
END_TEST

START_TEST(deep_chain_no_recursion)
{
    /* 10,000 levels, permissions every 1000: loaded with an explicit stack. */
    json_t *policy = chain(10000, 1000, true);
    bk_rbac_t *r;
    double t0 = now_s();
    ck_assert_int_eq(bk_rbac_load(policy, &r, &err), BK_OK);
    double took = now_s() - t0;
    json_decref(policy);
    fprintf(stderr, "rbac: 10000-role chain loaded in %.3f s\n", took);
    ck_assert_msg(took < 30, "took %.3f s", took);
    ck_assert(can(r, "r9999", "p0:read"));
    ck_assert(can(r, "r9999", "p9000:read"));
    ck_assert(!can(r, "r9999", "p9999:read"));
    ck_assert(can(r, "r5000", "p5000:read"));
    ck_assert(can(r, "r5999", "p5000:read"));
    ck_assert(!can(r, "r4999", "p5000:read"));
    ck_assert(can(r, "r1", "p0:read"));
    bk_rbac_free(r);

    /* The same chain closed into a cycle: found without recursion, its 10,001-name
     * path cut to the buffer. */
    policy = chain(10000, 1000, false);
    json_object_set_new(json_object_get(json_object_get(policy, "roles"), "r0"), "inherits",
                        json_pack("[s]", "r9999"));
    ck_assert_int_eq(bk_rbac_load(policy, &r, &err), BK_EINVAL);
    ck_assert_ptr_null(r);
    const char *want = "role inheritance cycle: r0 -> r9999 -> r9998 -> r9997 -> ";
    ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0, "%s", err.message);
    ck_assert_uint_eq(strlen(err.message), sizeof err.message - 1);
    ck_assert_str_eq(err.pointer, "/roles/r1/inherits/0");
    json_decref(policy);
}
END_TEST

/* ------------------------------------------------------------------ threads */

#define THREADS 8

struct shared {
    const bk_rbac_t *rbac;
    atomic_int wrong;
    pthread_barrier_t start;
};

static const struct question {
    const char *role, *scope, *perm;
    bool want;
} questions[] = {
    {"admin", NULL, "billing:refund", true},
    {"admin", "orders:*", "billing:refund", false},
    {"editor", NULL, "orders:create", true},
    {"editor", NULL, "orders:items:read", true},
    {"editor", "orders:read", "orders:create", false},
    {"editor", "orders:read", "orders:read", true},
    {"editor", NULL, "ordersx:read", false},
    {"viewer", NULL, "orders:read", true},
    {"viewer", NULL, "orders:create", false},
    {"ghost", NULL, "orders:read", false},
};

static void *asker(void *arg)
{
    struct shared *s = arg;
    pthread_barrier_wait(&s->start);
    const size_t n = sizeof questions / sizeof questions[0];
    for (int k = 0; k < 20000; k++) {
        const struct question *q = &questions[(size_t)k % n];
        const char *const roles[] = {q->role, NULL}, *const scopes[] = {q->scope, NULL};
        if (bk_rbac_allows(s->rbac, roles, q->scope ? scopes : NULL, q->perm) != q->want)
            atomic_fetch_add(&s->wrong, 1);
    }
    return NULL;
}

START_TEST(eight_threads_ask_at_once)
{
    bk_rbac_t *r = load("{\"roles\": {"
                        " \"admin\":  {\"inherits\": [\"editor\"], \"permissions\": [\"*\"]},"
                        " \"editor\": {\"inherits\": [\"viewer\"], \"permissions\": [\"orders:*\"]},"
                        " \"viewer\": {\"permissions\": [\"orders:read\"]}}}");
    struct shared s = {.rbac = r};
    atomic_init(&s.wrong, 0);
    pthread_barrier_init(&s.start, NULL, THREADS);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, asker, &s), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&s.start);
    ck_assert_int_eq(atomic_load(&s.wrong), 0);
    bk_rbac_free(r);
}
END_TEST

static Suite *rbac_suite(void)
{
    Suite *s = suite_create("rbac");
    TCase *tc = tcase_create("policy");
    tcase_add_test(tc, inheritance_multi_level);
    tcase_add_test(tc, inheritance_diamond);
    tcase_add_test(tc, inheritance_only_roles_and_empty_roles);
    tcase_add_test(tc, wildcard_prefix);
    tcase_add_test(tc, wildcard_superuser);
    tcase_add_test(tc, wildcard_in_the_question_never_matches);
    tcase_add_test(tc, unknown_role_and_null_arguments);
    tcase_add_test(tc, scopes_narrow_the_roles);
    tcase_add_test(tc, cycles_refused_with_the_path);
    tcase_add_test(tc, unknown_inherited_role_refused);
    tcase_add_test(tc, malformed_policies_refused);
    tcase_add_test(tc, error_detail_in_the_caller_struct);
    suite_add_tcase(s, tc);
    TCase *big = tcase_create("large");
    tcase_set_timeout(big, 300);
    tcase_add_test(big, large_chain_every_role_its_own_permission);
    tcase_add_test(big, deep_chain_no_recursion);
    tcase_add_test(big, eight_threads_ask_at_once);
    suite_add_tcase(s, big);
    return s;
}

int main(void)
{
    return bk_test_run(rbac_suite());
}
