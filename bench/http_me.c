/* The server of bench/peers.sh's JWT figure: GET /api/v1/me on libbackend, a
 * route with auth (a Bearer HS256 token verified: signature, iss, aud, exp) and
 * a permission (profile:read, from the roles claim through an RBAC policy),
 * answered from the claims: {"sub": ..., "roles": [...]}. The peers
 * (bench/peers/fastapi, bench/peers/fastify) serve the same route with the same
 * policy.
 *
 *   http_me --port N --key-file F --iss X --aud Y [--threads N]
 *
 * F holds the HS256 secret, all its bytes. GET /json answers too (the
 * benchmark's readiness check). Exit status: 0 stopped by SIGTERM or SIGINT;
 * 1 it could not start; 2 a usage error.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backend/backend.h>

static const char POLICY[] =
    "{\"roles\":{"
    "\"customer\":{\"permissions\":[\"orders:create\",\"orders:read:own\",\"profile:read\"]},"
    "\"editor\":{\"inherits\":[\"customer\"],\"permissions\":[\"products:write\"]},"
    "\"admin\":{\"permissions\":[\"*\"]}}}";

static void h_me(bk_req_t *req, void *ud)
{
    (void)ud;
    const json_t *claims = bk_req_claims(req);
    bk_res_json(req, 200, json_pack("{s:O, s:O}", "sub", json_object_get(claims, "sub"), "roles",
                                    json_object_get(claims, "roles")));
}

static void h_json(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{s:s}", "message", "Hello, World!"));
}

int main(int argc, char **argv)
{
    bk_http_opts_t o;
    bk_http_opts_init(&o);
    bk_jwt_verify_opts_t verify;
    bk_jwt_verify_opts_init(&verify);
    const char *key_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            o.port = (uint16_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            o.threads = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--key-file") == 0 && i + 1 < argc)
            key_file = argv[++i];
        else if (strcmp(argv[i], "--iss") == 0 && i + 1 < argc)
            verify.iss = argv[++i];
        else if (strcmp(argv[i], "--aud") == 0 && i + 1 < argc)
            verify.aud = argv[++i];
        else
            key_file = NULL, i = argc; /* a usage error */
    }
    if (key_file == NULL || verify.iss == NULL || verify.aud == NULL) {
        fprintf(stderr, "usage: %s --port N --key-file F --iss X --aud Y [--threads N]\n", argv[0]);
        return 2;
    }
    bk_error_t err = {0};
    bk_jwt_keys_t *keys = NULL;
    bk_rbac_t *rbac = NULL;
    bk_http_server_t *srv = NULL;
    json_t *policy = json_loads(POLICY, 0, NULL);
    int rc = bk_jwt_keys_new(&keys);
    if (rc == BK_OK)
        rc = bk_jwt_keys_add_file(keys, NULL, "HS256", key_file, false, &err);
    if (rc == BK_OK)
        rc = bk_rbac_load(policy, &rbac, &err);
    json_decref(policy);
    if (rc == BK_OK)
        rc = bk_http_server_new(&o, &srv, &err);
    bk_http_route_opts_t ro;
    bk_http_route_opts_init(&ro);
    ro.auth = &(bk_http_auth_t){.keys = keys, .verify = &verify, .rbac = rbac};
    ro.permission = "profile:read";
    if (rc == BK_OK)
        rc = bk_http_route(srv, "GET", "/api/v1/me", h_me, NULL, &ro);
    if (rc == BK_OK)
        rc = bk_http_route(srv, "GET", "/json", h_json, NULL, NULL);
    if (rc == BK_OK)
        rc = bk_http_server_start(srv, &err);
    if (rc == BK_OK)
        bk_http_server_wait(srv); /* until SIGINT or SIGTERM */
    else
        fprintf(stderr, "http_me: %s\n", err.code == rc ? err.message : bk_strerror(rc));
    bk_http_server_free(srv);
    bk_rbac_free(rbac);
    bk_jwt_keys_free(keys);
    return rc == BK_OK ? 0 : 1;
}
