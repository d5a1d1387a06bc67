/*
 * libbackend auth: Argon2id password hashing, JWT issue and verify with key sets,
 * role-based access control.
 *
 * Layer 1 (primitives): computation only, no I/O beyond reading key files.
 * Every check a token must pass is made here, not assumed from a library: the
 * algorithm must be the key's own ("none" never), the signature, exp/nbf/iat with
 * leeway on the injectable clock, iss, aud, required claims, typ, length, strict
 * base64url and JSON. Each failure has its own code (BK_EJWT_*, core.h), so the
 * HTTP layer can answer 401 with a precise WWW-Authenticate.
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_AUTH_H
#define BACKEND_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <backend/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ passwords */
/*
 * Argon2id (RFC 9106) through the reference library. Hashing and verifying take
 * tens of milliseconds and ~19 MiB by design: call them off the event loop (a
 * BK_HTTP_BLOCKING route, or the worker pool). All functions are thread-safe.
 */
#define BK_PASSWORD_HASH_MAX 256 /* room for any PHC string bk_password_hash makes */

typedef struct bk_password_policy {
    uint32_t memory_kib;    /* m; 0: the default, 19456 (19 MiB, OWASP) */
    uint32_t iterations;    /* t; 0: the default, 2 */
    uint32_t parallelism;   /* p; 0: the default, 1 */
    /* A server secret: the password is replaced by HMAC-SHA256(pepper, password)
     * before hashing and verifying. Borrowed; NULL (default) for none. Hashes made
     * with a pepper verify only with the same pepper. */
    const void *pepper;
    size_t pepper_len;
    size_t max_password_len; /* longer passwords are refused (BK_ERANGE); 0: the default, 1024 */
    uint64_t reserved_[8];   /* room to grow (HACKING.md); zeroed by bk_password_policy_init */
} bk_password_policy_t;

/* Clears *policy and sets the defaults. A field left 0 (a policy cleared by other
 * means) also means its default. */
BK_EXPORT void bk_password_policy_init(bk_password_policy_t *policy);
/*
 * Hashes password[0..len) with a random 16-byte salt into out as a PHC string
 * ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>"), NUL-terminated; outsz of at
 * least BK_PASSWORD_HASH_MAX. policy may be NULL for the defaults (borrowed for
 * the call). BK_ERANGE (too long), BK_EINVAL (a policy outside Argon2's limits or
 * our caps, an empty pepper, out too small), BK_ENOMEM, BK_EIO; err (NULL
 * allowed) says which, never quoting the password or the pepper.
 */
BK_EXPORT int bk_password_hash(const bk_password_policy_t *policy, const char *password, size_t len, char *out,
                               size_t outsz, bk_error_t *err);
/*
 * Checks password against a PHC string of any Argon2 variant (argon2id, argon2i,
 * argon2d) and any parameters, in constant time. BK_OK when it matches,
 * BK_EMISMATCH when not, BK_EINVAL for a malformed hash or one whose cost is
 * beyond the caps (and for an empty pepper), BK_ERANGE for a password over the
 * policy's maximum, BK_ENOMEM. err (NULL allowed) tells a malformed stored hash
 * from one over the caps, for the operator; it never quotes the hash, the
 * password or the pepper. A mismatch is the answer, not an error: err->code is
 * BK_EMISMATCH with the code's own message.
 */
BK_EXPORT int bk_password_verify(const bk_password_policy_t *policy, const char *password, size_t len,
                                 const char *phc, bk_error_t *err);
/* True when phc was not made by the policy (another variant, version or
 * parameters, or malformed): rehash it at the next successful login. */
BK_EXPORT bool bk_password_needs_rehash(const bk_password_policy_t *policy, const char *phc);

/* ------------------------------------------------------------------ JWT */
typedef struct bk_jwt_keys bk_jwt_keys_t;

/* A key set: {kid, alg, key} entries; one is current for signing, all verify.
 * Shareable by any number of threads; its keys change at once with
 * bk_jwt_keys_swap (or bk_jwt_keys_add, which is safe beside them too). */
BK_EXPORT int bk_jwt_keys_new(bk_jwt_keys_t **out);
BK_EXPORT void bk_jwt_keys_free(bk_jwt_keys_t *keys);
/*
 * Adds a key. alg: "HS256", "HS384", "HS512" (key: the raw secret bytes, at
 * least as many as the hash: 32, 48, 64), "RS256", "RS384", "RS512" (PEM, RSA of
 * 2048 bits or more), "ES256", "ES384" (PEM, P-256 / P-384). A PEM private key
 * can sign and verify; a public key only verifies. kid may be NULL only in a set
 * of one key. current makes it the signing key. The key is copied; wipe your
 * copy. BK_EEXIST for a kid already present, BK_EINVAL for a bad alg, key or kid
 * (a kid must be 1 to 256 bytes of UTF-8 without control characters),
 * BK_EIO when OpenSSL fails. err (NULL allowed) says why a key is refused: not
 * PEM, RSA under 2048 bits, a curve that is not the alg's, an HMAC secret too
 * short, a kid not UTF-8, a public key made current. It never quotes the key.
 */
BK_EXPORT int bk_jwt_keys_add(bk_jwt_keys_t *keys, const char *kid, const char *alg, const void *key, size_t len,
                              bool current, bk_error_t *err);
/* Gives keys the keys of other and other the keys of keys, at once for every
 * thread: an issue or verify running meanwhile finishes with the set it began
 * with, the next ones use the new. For a reload (SIGHUP): fill a new set, swap it
 * in, free what comes back. Any thread; BK_EINVAL for NULL or the same set. */
BK_EXPORT int bk_jwt_keys_swap(bk_jwt_keys_t *keys, bk_jwt_keys_t *other);
/* The public keys of the set as a JWK Set (RFC 7517), {"keys": [...]}: RSA (kty,
 * n, e) and EC (kty, crv, x, y) keys, each with kid, alg and "use": "sig"; never
 * an HMAC secret and never a private part. *out is a new reference. BK_EINVAL,
 * BK_ENOMEM. Any thread. */
BK_EXPORT int bk_jwt_keys_jwks(const bk_jwt_keys_t *keys, json_t **out);
/* The same with the key read from a file (raw bytes for HS*, PEM otherwise; at
 * most 64 KiB). BK_ENOTFOUND when it cannot be opened. On failure err->file
 * names path. */
BK_EXPORT int bk_jwt_keys_add_file(bk_jwt_keys_t *keys, const char *kid, const char *alg, const char *path,
                                   bool current, bk_error_t *err);

typedef struct bk_jwt_issue_opts {
    const char *iss;     /* NULL: no iss; borrowed for the call */
    const char *aud;     /* NULL: no aud; borrowed for the call */
    const char *sub;     /* NULL: no sub; borrowed for the call */
    /* exp = iat + ttl_ns. Tokens carry whole seconds: rounded down to a whole
     * second; under one second (or negative) is BK_EINVAL, over ten years too.
     * 0: the default, 15 minutes. */
    int64_t ttl_ns;
    bool nbf;            /* add nbf = iat; default false */
    bk_clock_t *clock;   /* wall time of iat; NULL = system; borrowed */
    uint64_t reserved_[8]; /* room to grow (HACKING.md); zeroed by bk_jwt_issue_opts_init */
} bk_jwt_issue_opts_t;

/* Clears *opts and sets the defaults. */
BK_EXPORT void bk_jwt_issue_opts_init(bk_jwt_issue_opts_t *opts);
/*
 * Signs a token with the set's current key: header {"alg", "typ":"JWT", "kid"},
 * claims iat, exp, nbf (when asked), iss, aud, sub, jti (128 random bits,
 * base64url), then the caller's claims (an object or NULL; borrowed, read and
 * never changed; they may not set the registered ones above: BK_EINVAL). opts
 * NULL means the defaults. *token is malloc'ed, the caller frees it.
 * BK_ENOTFOUND when the set has no current key. BK_EINVAL also when iss, aud or
 * sub, or any member name or string in claims (nested objects and arrays
 * included), is not UTF-8, when a member name or string holds a NUL byte, or when
 * claims nest deeper than 2048 levels or hold a cycle. err (NULL allowed) says
 * which; err->pointer names the claim at fault ("/exp" for a registered claim the
 * caller set, "/a/0" for a string in an array that is not UTF-8, "/iss" for the
 * option). ES256/ES384 signatures are made low-S (s <= n/2).
 */
BK_EXPORT int bk_jwt_issue(const bk_jwt_keys_t *keys, const bk_jwt_issue_opts_t *opts, const json_t *claims,
                           char **token, bk_error_t *err);

typedef struct bk_jwt_verify_opts {
    const char *iss;              /* the iss required; NULL: not checked */
    const char *aud;              /* an aud required (aud a string or an array holding it); NULL: not checked */
    /* Clock skew allowed on exp, nbf, iat, 0 (default) to 86400 s; rounded down to
     * a whole second (claims are whole seconds); out of range is BK_EINVAL. */
    int64_t leeway_ns;
    const char *const *required;  /* claims that must be present (NULL-terminated); NULL: none beyond exp */
    bool allow_no_exp;            /* accept tokens without exp; default false */
    const char *typ;              /* header typ required (case-insensitive); NULL: not checked */
    size_t max_len;               /* longer tokens are malformed; 0: the default, 8192 */
    /* Revocation: BK_OK when jti is good, BK_EJWT_REVOKED when revoked, another
     * code when the lookup failed (the token is refused with it). NULL: none.
     * Revocation and replay caches must key on jti, never on the token string:
     * an ES256/ES384 token has a second valid encoding, its (r, n - s) twin, that
     * verifies with the same claims. bk_jwt_issue emits low-S signatures only;
     * other issuers may not, and verify accepts both forms. */
    int (*revoked)(const char *jti, void *ud);
    void *revoked_ud;
    bk_clock_t *clock;            /* NULL = system; borrowed */
    uint64_t reserved_[8];        /* room to grow (HACKING.md); zeroed by bk_jwt_verify_opts_init */
} bk_jwt_verify_opts_t;

/* Clears *opts and sets the defaults. */
BK_EXPORT void bk_jwt_verify_opts_init(bk_jwt_verify_opts_t *opts);
/*
 * Verifies token[0..len) and gives its claims in *claims (a new reference; may be
 * NULL to only check). opts NULL means the defaults. No bk_error_t: each failure
 * has its own code, which is the whole answer (and detail on why a token failed
 * belongs in the server's log, not in the 401). The key is the one its kid names, or the only key when the
 * set has one and the token no kid; the token's alg must equal that key's. Then
 * the signature, then the claims: exp (required unless allow_no_exp), nbf, iat
 * (not in the future), iss, aud, required, typ, revocation. Codes: BK_OK,
 * BK_EJWT_MALFORMED, BK_EJWT_UNKNOWN_KEY, BK_EJWT_ALGORITHM, BK_EJWT_SIGNATURE,
 * BK_EJWT_EXPIRED, BK_EJWT_NOT_YET_VALID, BK_EJWT_ISSUER, BK_EJWT_AUDIENCE,
 * BK_EJWT_CLAIMS, BK_EJWT_REVOKED, BK_EINVAL, BK_ENOMEM.
 */
BK_EXPORT int bk_jwt_verify(const bk_jwt_keys_t *keys, const bk_jwt_verify_opts_t *opts, const char *token,
                            size_t len, json_t **claims);

/* ------------------------------------------------------------------ RBAC */
typedef struct bk_rbac bk_rbac_t;

/*
 * Loads a policy:
 *   {"roles": {"admin":  {"inherits": ["editor"], "permissions": ["*"]},
 *              "editor": {"inherits": ["viewer"], "permissions": ["orders:*"]},
 *              "viewer": {"permissions": ["orders:read"]}}}
 * Permissions are colon-separated names; a final "*" segment matches any rest
 * ("orders:*" allows "orders:create" and "orders:items:read"), "*" everything.
 * Inheritance must form a DAG: a cycle, an unknown role or a malformed entry is
 * BK_EINVAL. err (NULL allowed) gets the message and, in err->pointer, the JSON
 * pointer of the entry at fault ("/roles/admin/inherits/0"; for a cycle, the
 * inherits entry that closes it). policy is borrowed for the call, read and never
 * changed: nothing of it is kept. Each role's effective permissions are computed
 * here, once.
 */
BK_EXPORT int bk_rbac_load(const json_t *policy, bk_rbac_t **out, bk_error_t *err);
BK_EXPORT void bk_rbac_free(bk_rbac_t *rbac);
/*
 * Whether a subject with roles (NULL-terminated; unknown roles grant nothing) may
 * do permission (an exact name, no wildcard). scopes, when not NULL, narrows it:
 * the permission must also match one of these (NULL-terminated, same wildcard
 * rules), as an OAuth token's scopes narrow its user's roles. A few hash lookups
 * per role, no scan. Thread-safe.
 */
BK_EXPORT bool bk_rbac_allows(const bk_rbac_t *rbac, const char *const *roles, const char *const *scopes,
                              const char *permission);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_AUTH_H */
