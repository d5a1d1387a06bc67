/* JWT (RFC 7519) in JWS compact form (RFC 7515), signed and verified here on
 * OpenSSL. Every check is ours and explicit, in this order, so that nothing about
 * an unsigned token's claims is believed before its signature:
 *   length, three segments, strict base64url, header JSON (no duplicate keys, no
 *   "crit"), the key (by kid, or the only key), alg equal to that key's alg
 *   ("none" never matches a key), the signature, then payload JSON and claims.
 * Keys never come from the token (jku, x5u, jwk headers are ignored).
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "backend/auth.h"
#include "core/abi_int.h"
#include "core/base64_int.h"
#include "core/error_int.h"
#include "core/json_int.h"
#include "core/jsonptr_int.h"
#include "core/utf8_int.h"

#define KID_MAX 256
#define KEY_FILE_MAX (64 * 1024)
/* jansson's parser takes 2048 levels of nesting: deeper claims would make a token
 * bk_jwt_verify refuses as malformed. */
#define CLAIMS_DEPTH_MAX 2048
#define DEFAULT_TTL_S 900
#define TTL_MAX_S (10 * 366 * 86400) /* a lifetime over ten years is a mistake, and would overflow exp */
#define LEEWAY_MAX_S 86400           /* over a day hides a broken clock */
#define DEFAULT_MAX_LEN 8192

typedef enum kind { KIND_HMAC, KIND_RSA, KIND_EC } kind_t;

static const struct alg {
    const char *name;
    kind_t kind;
    const char *digest; /* OpenSSL digest name */
    size_t size;        /* HMAC: digest bytes (the minimum key size); EC: bytes of r and of s */
    const char *curve;  /* EC: the group the key must be on */
} ALGS[] = {
    {"HS256", KIND_HMAC, "SHA256", 32, NULL},       {"HS384", KIND_HMAC, "SHA384", 48, NULL},
    {"HS512", KIND_HMAC, "SHA512", 64, NULL},       {"RS256", KIND_RSA, "SHA256", 0, NULL},
    {"RS384", KIND_RSA, "SHA384", 0, NULL},         {"RS512", KIND_RSA, "SHA512", 0, NULL},
    {"ES256", KIND_EC, "SHA256", 32, "prime256v1"}, {"ES384", KIND_EC, "SHA384", 48, "secp384r1"},
};
#define NALGS (sizeof ALGS / sizeof ALGS[0])

struct key {
    char *kid; /* NULL only in a set of one */
    const struct alg *alg;
    EVP_MAC_CTX *mac;  /* HMAC: keyed once; each use works on a copy */
    EVP_PKEY *pkey;    /* RSA, EC */
    BIGNUM *order;     /* EC keys that sign: the group order n, to fold s into the low half */
    bool can_sign;
};

struct bk_jwt_keys {
    /* Read-locked by every issue and verify for as long as they use a key, write-
     * locked by a change: bk_jwt_keys_swap replaces the keys under running calls. */
    pthread_rwlock_t lock;
    struct key *v;
    size_t n, cap;
    const struct key *current;
};

/* The lock is the set's mutable part: issue and verify take a const set. */
static void read_lock(const bk_jwt_keys_t *keys)
{
    pthread_rwlock_rdlock((pthread_rwlock_t *)&keys->lock);
}

static void unlock(const bk_jwt_keys_t *keys)
{
    pthread_rwlock_unlock((pthread_rwlock_t *)&keys->lock);
}

static const struct alg *alg_named(const char *name, size_t len)
{
    for (size_t i = 0; i < NALGS; i++)
        if (strlen(ALGS[i].name) == len && memcmp(ALGS[i].name, name, len) == 0)
            return &ALGS[i];
    return NULL;
}

/* ------------------------------------------------------------------ keys */

int bk_jwt_keys_new(bk_jwt_keys_t **out)
{
    if (!out)
        return BK_EINVAL;
    *out = calloc(1, sizeof **out);
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
#if defined(__GLIBC__)
    /* Verifies overlap without end on a busy server: a swap waiting behind
     * readers that keep coming would never run. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    int failed = *out ? pthread_rwlock_init(&(*out)->lock, &attr) : 0;
    pthread_rwlockattr_destroy(&attr);
    if (failed) {
        free(*out);
        *out = NULL;
    }
    return *out ? BK_OK : BK_ENOMEM;
}

static void key_clear(struct key *k)
{
    free(k->kid);
    EVP_MAC_CTX_free(k->mac);
    EVP_PKEY_free(k->pkey);
    BN_free(k->order);
}

void bk_jwt_keys_free(bk_jwt_keys_t *keys)
{
    if (!keys)
        return;
    for (size_t i = 0; i < keys->n; i++)
        key_clear(&keys->v[i]);
    free(keys->v);
    pthread_rwlock_destroy(&keys->lock);
    free(keys);
}

int bk_jwt_keys_swap(bk_jwt_keys_t *keys, bk_jwt_keys_t *other)
{
    if (!keys || !other || keys == other)
        return BK_EINVAL;
    /* Both locks, always in the same order: two swaps of one pair never deadlock. */
    bk_jwt_keys_t *first = keys < other ? keys : other, *second = keys < other ? other : keys;
    pthread_rwlock_wrlock(&first->lock);
    pthread_rwlock_wrlock(&second->lock);
    struct key *v = keys->v;
    size_t n = keys->n, cap = keys->cap;
    const struct key *current = keys->current;
    keys->v = other->v, keys->n = other->n, keys->cap = other->cap, keys->current = other->current;
    other->v = v, other->n = n, other->cap = cap, other->current = current;
    pthread_rwlock_unlock(&second->lock);
    pthread_rwlock_unlock(&first->lock);
    return BK_OK;
}

static EVP_MAC_CTX *hmac_ctx(const struct alg *alg, const void *secret, size_t len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context keeps its own reference */
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)alg->digest, 0),
                           OSSL_PARAM_construct_end()};
    if (ctx && EVP_MAC_init(ctx, secret, len, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* Keys are given, never asked for: without a callback OpenSSL's default one
 * prompts for an encrypted key's passphrase on the terminal, or reads stdin. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* A PEM private key (can sign) or public key (verifies only) of alg's kind; NULL
 * with err filled when it is not one. */
static EVP_PKEY *pem_key(const struct alg *alg, const void *pem, size_t len, bool *is_private, bk_error_t *err)
{
    if (len > INT32_MAX) {
        bk__error(err, BK_EINVAL, "the %s key is larger than 2 GiB", alg->name);
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    *is_private = pkey != NULL;
    if (!pkey && bio && BIO_reset(bio) == 1)
        pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL); /* it decrypts private keys too */
    BIO_free(bio);
    ERR_clear_error(); /* the failed private-key attempt queued errors */
    if (!pkey) {
        bk__error(err, BK_EINVAL,
                  "the %s key is not a PEM private or public key (or is encrypted: no passphrase is asked)",
                  alg->name);
        return NULL;
    }
    if (alg->kind == KIND_RSA) {
        /* RFC 7518 section 3.3: 2048 bits or more. */
        if (!EVP_PKEY_is_a(pkey, "RSA"))
            bk__error(err, BK_EINVAL, "%s needs an RSA key", alg->name);
        else if (EVP_PKEY_get_bits(pkey) < 2048)
            bk__error(err, BK_EINVAL, "%s needs an RSA key of 2048 bits or more, not %d", alg->name,
                      EVP_PKEY_get_bits(pkey));
        else
            return pkey;
    } else {
        char group[64] = "";
        if (!EVP_PKEY_is_a(pkey, "EC"))
            bk__error(err, BK_EINVAL, "%s needs an EC key", alg->name);
        else if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) != 1 ||
                 strcmp(group, alg->curve) != 0)
            bk__error(err, BK_EINVAL, "%s needs a key on %s, not on %s", alg->name, alg->curve,
                      group[0] ? group : "an unnamed curve");
        else
            return pkey;
    }
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    return NULL;
}

/* The kid goes into every token's header as a JSON string, which must be UTF-8
 * (RFC 8259 section 8.1): refused here, at the call that was given it, rather
 * than failing each bk_jwt_issue later. */
static bool kid_ok(const char *kid)
{
    size_t n = strlen(kid);
    if (n == 0 || n > KID_MAX || !bk__utf8_valid(kid, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)kid[i] < 0x20 || kid[i] == 0x7f)
            return false;
    return true;
}

static int keys_add(bk_jwt_keys_t *keys, const char *kid, const char *alg_name, const void *key, size_t len,
                    bool current, bk_error_t *err)
{
    bk__error_clear(err);
    if (!keys || !alg_name || !key)
        return bk__error(err, BK_EINVAL, "keys, alg and key are required");
    if (kid && !kid_ok(kid))
        return bk__error(err, BK_EINVAL,
                         "the kid must be 1 to %d bytes of UTF-8 without control characters", KID_MAX);
    const struct alg *alg = alg_named(alg_name, strlen(alg_name));
    if (!alg)
        return bk__error(err, BK_EINVAL, "unknown alg \"%s\" (HS256, HS384, HS512, RS256, RS384, RS512, ES256, "
                                         "ES384)", alg_name);
    /* Without kids a token could not say which key it means: only a set of one
     * may leave kid out. */
    if (keys->n > 0 && (!kid || !keys->v[0].kid))
        return bk__error(err, BK_EINVAL, "only a set of one key may have a key without kid");
    for (size_t i = 0; i < keys->n; i++)
        if (kid && strcmp(keys->v[i].kid, kid) == 0)
            return bk__error(err, BK_EEXIST, "the set already has a key \"%s\"", kid);
    struct key k = {.alg = alg};
    if (alg->kind == KIND_HMAC) {
        /* RFC 7518 section 3.2: a key at least as long as the hash output. */
        if (len < alg->size)
            return bk__error(err, BK_EINVAL, "an %s secret needs %zu bytes or more, not %zu", alg->name, alg->size,
                             len);
        k.mac = hmac_ctx(alg, key, len);
        k.can_sign = k.mac != NULL;
        if (!k.mac) {
            ERR_clear_error();
            return bk__error(err, BK_EIO, "OpenSSL could not key HMAC-%s", alg->digest);
        }
    } else if (!(k.pkey = pem_key(alg, key, len, &k.can_sign, err))) {
        return BK_EINVAL;
    } else if (alg->kind == KIND_EC && k.can_sign &&
               EVP_PKEY_get_bn_param(k.pkey, OSSL_PKEY_PARAM_EC_ORDER, &k.order) != 1) {
        key_clear(&k);
        ERR_clear_error();
        /* read once here, so that signing cannot fail on it later */
        return bk__error(err, BK_EIO, "OpenSSL could not read the curve order of the %s key", alg->name);
    }
    if (current && !k.can_sign) {
        key_clear(&k);
        return bk__error(err, BK_EINVAL, "a public key cannot sign: it cannot be current");
    }
    if (kid && !(k.kid = strdup(kid))) {
        key_clear(&k);
        return bk__error(err, BK_ENOMEM, NULL);
    }
    if (keys->n == keys->cap) {
        size_t cap = keys->cap ? keys->cap * 2 : 4;
        struct key *v = realloc(keys->v, cap * sizeof *v);
        if (!v) {
            key_clear(&k);
            return bk__error(err, BK_ENOMEM, NULL);
        }
        /* current points into v: keep it pointing at the same entry. */
        if (keys->current)
            keys->current = v + (keys->current - keys->v);
        keys->v = v;
        keys->cap = cap;
    }
    keys->v[keys->n] = k;
    if (current)
        keys->current = &keys->v[keys->n];
    keys->n++;
    return BK_OK;
}

int bk_jwt_keys_add_file(bk_jwt_keys_t *keys, const char *kid, const char *alg, const char *path, bool current,
                         bk_error_t *err)
{
    bk__error_clear(err);
    if (!path)
        return bk__error(err, BK_EINVAL, "path is required");
    int rc;
    FILE *f = fopen(path, "rb");
    unsigned char *buf = f ? malloc(KEY_FILE_MAX + 1) : NULL;
    if (!f) {
        rc = bk__error(err, BK_ENOTFOUND, "cannot open the key file: %s", strerror(errno));
    } else if (!buf) {
        rc = bk__error(err, BK_ENOMEM, NULL);
    } else {
        /* One byte more than the maximum tells a file at the limit from a longer one. */
        size_t n = fread(buf, 1, KEY_FILE_MAX + 1, f);
        if (ferror(f))
            rc = bk__error(err, BK_EINVAL, "cannot read the key file: %s", strerror(errno));
        else if (n > KEY_FILE_MAX)
            rc = bk__error(err, BK_EINVAL, "the key file is larger than %d KiB", KEY_FILE_MAX / 1024);
        else
            rc = bk_jwt_keys_add(keys, kid, alg, buf, n, current, err);
        OPENSSL_cleanse(buf, KEY_FILE_MAX + 1);
    }
    if (f)
        fclose(f);
    free(buf);
    if (rc != BK_OK && err)
        bk__error_field(err->file, sizeof err->file, path);
    return rc;
}

/* ------------------------------------------------------------------ signatures */

static bool hmac(const struct key *k, const char *data, size_t n, unsigned char *out, size_t *outlen)
{
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(k->mac);
    bool ok = ctx && EVP_MAC_update(ctx, (const unsigned char *)data, n) == 1 &&
              EVP_MAC_final(ctx, out, outlen, EVP_MAX_MD_SIZE) == 1;
    EVP_MAC_CTX_free(ctx);
    return ok;
}

/* ECDSA in JWS is r || s, each fixed-width big-endian (RFC 7518 section 3.4);
 * OpenSSL speaks DER. */
static unsigned char *ec_raw_to_der(const unsigned char *raw, size_t half, size_t *derlen)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)half, NULL), *s = BN_bin2bn(raw + half, (int)half, NULL);
    unsigned char *der = NULL;
    if (sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL; /* owned by sig now */
        int n = i2d_ECDSA_SIG(sig, &der);
        *derlen = n > 0 ? (size_t)n : 0;
        if (n <= 0)
            der = NULL;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return der;
}

static bool ec_der_to_raw(const unsigned char *der, size_t derlen, size_t half, unsigned char *raw)
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    bool ok = sig && BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, (int)half) == (int)half &&
              BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + half, (int)half) == (int)half;
    ECDSA_SIG_free(sig);
    return ok;
}

static bool verify_signature(const struct key *k, const char *data, size_t n, const unsigned char *sig,
                             size_t siglen)
{
    if (k->alg->kind == KIND_HMAC) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t maclen = 0;
        return hmac(k, data, n, mac, &maclen) && siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
    }
    unsigned char *der = NULL;
    if (k->alg->kind == KIND_EC) {
        if (siglen != 2 * k->alg->size)
            return false;
        if (!(der = ec_raw_to_der(sig, k->alg->size, &siglen)))
            return false;
        sig = der;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestVerifyInit_ex(md, NULL, k->alg->digest, NULL, NULL, k->pkey, NULL) == 1 &&
              EVP_DigestVerify(md, sig, siglen, (const unsigned char *)data, n) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    if (!ok)
        ERR_clear_error(); /* a forged token must not leave errors for the next caller */
    return ok;
}

/* An ECDSA signature (r, s) has a twin, (r, n - s), that verifies as well, so a
 * token string has two valid forms. We sign with the low one, s <= n / 2 (n is
 * odd: s <= n >> 1), so every token we make has one canonical form; verify still
 * takes both, since other issuers may send either (OpenSSL does not fold s).
 * s is the second half of raw r || s, half bytes, changed in place. */
static bool ec_low_s(const BIGNUM *order, unsigned char *s, size_t half)
{
    BIGNUM *v = BN_bin2bn(s, (int)half, NULL), *lim = BN_new();
    bool ok = v && lim && BN_rshift1(lim, order) == 1;
    if (ok && BN_cmp(v, lim) > 0)
        ok = BN_sub(v, order, v) == 1 && BN_bn2binpad(v, s, (int)half) == (int)half;
    BN_free(v);
    BN_free(lim);
    return ok;
}

/* Signs data; out has room for 1024 bytes (RSA up to 8192 bits). */
static bool sign(const struct key *k, const char *data, size_t n, unsigned char *out, size_t *outlen)
{
    if (k->alg->kind == KIND_HMAC)
        return hmac(k, data, n, out, outlen);
    unsigned char der[1024];
    size_t derlen = sizeof der;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestSignInit_ex(md, NULL, k->alg->digest, NULL, NULL, k->pkey, NULL) == 1 &&
              EVP_DigestSign(md, der, &derlen, (const unsigned char *)data, n) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return false;
    if (k->alg->kind == KIND_RSA) {
        memcpy(out, der, derlen);
        *outlen = derlen;
        return true;
    }
    *outlen = 2 * k->alg->size;
    return ec_der_to_raw(der, derlen, k->alg->size, out) && ec_low_s(k->order, out + k->alg->size, k->alg->size);
}

/* ------------------------------------------------------------------ issue */

BK__ASSERT_ABI_SIZE(bk_jwt_issue_opts_t, 112);

void bk_jwt_issue_opts_init(bk_jwt_issue_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->ttl_ns = DEFAULT_TTL_S * BK_NSEC_PER_SEC;
}

static const char *const REGISTERED[] = {"iat", "exp", "nbf", "iss", "aud", "sub", "jti", NULL};

/* The path from the claims object down to the value being walked: each frame is
 * a value and how its container reaches it (a member name, or an index). */
struct ancestor {
    const json_t *v;
    const struct ancestor *up; /* NULL: the claims object */
    const char *key;           /* NULL: an array item */
    size_t klen, idx;
};

/* Writes at's JSON pointer into buf; false when it does not fit (buf then holds
 * an ancestor's). */
static bool path_write(char *buf, size_t size, const struct ancestor *at)
{
    if (!at->up)
        return true;
    return path_write(buf, size, at->up) && (at->key ? bk__jsonptr_append(buf, size, at->key, at->klen)
                                                      : bk__jsonptr_append_index(buf, size, at->idx));
}

/* BK_EINVAL, with err saying what is wrong with the claim at at. */
static int claim_fail(bk_error_t *err, const struct ancestor *at, const char *what)
{
    if (!err)
        return BK_EINVAL;
    char ptr[sizeof err->pointer] = "";
    path_write(ptr, sizeof ptr, at);
    bk__error(err, BK_EINVAL, "claims: %s at \"%s\"", what, ptr);
    bk__error_field(err->pointer, sizeof err->pointer, ptr);
    return BK_EINVAL;
}

/* Whether at->v, depth levels down (the claims object is 1), can go into a token
 * as it is: every member name and string UTF-8 (RFC 8259 section 8.1), no deeper
 * than CLAIMS_DEPTH_MAX, and no cycle (which would also make this walk endless).
 * jansson's *_nocheck setters take any bytes, and then json_dumps fails on such a
 * string, which looked like BK_ENOMEM, or writes such a name as it is, into a
 * token verify refuses: checked here, the caller gets BK_EINVAL. By length, not
 * strlen: jansson's strings and names may hold NUL bytes. Neither may here: the
 * parser refuses one, and json_object_update cuts it at the NUL, so "exp\0"
 * would slip past the REGISTERED check and then replace exp. */
static int claims_text_ok(const struct ancestor *at, size_t depth, bk_error_t *err)
{
    const json_t *v = at->v;
    if (json_is_string(v)) { /* a NUL inside: a token verify refuses (and strcmp misreads) */
        if (!bk__utf8_valid(json_string_value(v), json_string_length(v)))
            return claim_fail(err, at, "a string that is not UTF-8");
        if (memchr(json_string_value(v), '\0', json_string_length(v)))
            return claim_fail(err, at, "a string that holds a NUL byte");
        return BK_OK;
    }
    if (!json_is_object(v) && !json_is_array(v))
        return BK_OK;
    if (depth > CLAIMS_DEPTH_MAX)
        return claim_fail(err, at, "nesting deeper than 2048 levels");
    for (const struct ancestor *a = at->up; a; a = a->up)
        if (a->v == v)
            return claim_fail(err, at, "a cycle (a container inside itself)");
    const char *name;
    size_t i, len;
    json_t *m;
    int rc = BK_OK;
    if (json_is_object(v)) {
        json_object_keylen_foreach((json_t *)v, name, len, m) {
            const struct ancestor child = {m, at, name, len, 0};
            if (!bk__utf8_valid(name, len))
                rc = claim_fail(err, &child, "a member name that is not UTF-8");
            else if (memchr(name, '\0', len))
                rc = claim_fail(err, &child, "a member name that holds a NUL byte");
            else
                rc = claims_text_ok(&child, depth + 1, err);
            if (rc)
                return rc;
        }
    } else {
        json_array_foreach(v, i, m) {
            const struct ancestor child = {m, at, NULL, 0, i};
            if ((rc = claims_text_ok(&child, depth + 1, err)))
                return rc;
        }
    }
    return BK_OK;
}

static int issue(const bk_jwt_keys_t *keys, const bk_jwt_issue_opts_t *opts, const json_t *claims, char **token,
                 bk_error_t *err)
{
    bk__error_clear(err);
    bk_jwt_issue_opts_t defaults;
    if (!opts) {
        bk_jwt_issue_opts_init(&defaults);
        opts = &defaults;
    }
    if (token)
        *token = NULL;
    if (!keys || !token)
        return bk__error(err, BK_EINVAL, "keys and token are required");
    if (claims && !json_is_object(claims))
        return bk__error(err, BK_EINVAL, "claims must be an object (or NULL)");
    /* Tokens carry whole seconds: a ttl_ns between seconds is rounded down. */
    int64_t ttl_s = opts->ttl_ns == 0 ? DEFAULT_TTL_S : opts->ttl_ns / BK_NSEC_PER_SEC;
    if (ttl_s < 1 || ttl_s > TTL_MAX_S)
        return bk__error(err, BK_EINVAL, "ttl_ns must be 1 s to ten years, not %" PRId64 " ns", opts->ttl_ns);
    const struct key *k = keys->current;
    if (!k)
        return bk__error(err, BK_ENOTFOUND, "the key set has no current key to sign with");
    for (size_t i = 0; claims && REGISTERED[i]; i++) {
        if (json_object_get(claims, REGISTERED[i])) {
            bk__error(err, BK_EINVAL, "claims may not set the registered claim \"%s\": it comes from the options",
                      REGISTERED[i]);
            if (err)
                bk__jsonptr_append(err->pointer, sizeof err->pointer, REGISTERED[i], strlen(REGISTERED[i]));
            return BK_EINVAL;
        }
    }
    /* iss, aud and sub become JSON strings, which must be UTF-8. */
    const char *texts[][2] = {{"iss", opts->iss}, {"aud", opts->aud}, {"sub", opts->sub}};
    for (size_t i = 0; i < 3; i++) {
        if (texts[i][1] && !bk__utf8_valid(texts[i][1], strlen(texts[i][1]))) {
            bk__error(err, BK_EINVAL, "the %s option is not UTF-8", texts[i][0]);
            if (err)
                bk__jsonptr_append(err->pointer, sizeof err->pointer, texts[i][0], 3);
            return BK_EINVAL;
        }
    }
    const struct ancestor root = {claims, NULL, NULL, 0, 0};
    int rc;
    if (claims && (rc = claims_text_ok(&root, 1, err)))
        return rc;
    unsigned char rnd[16];
    char jti[32];
    if ((rc = bk_random_bytes(rnd, sizeof rnd)))
        return bk__error(err, rc, "no random bytes for the jti");
    jti[bk__b64_encode(rnd, sizeof rnd, jti, true)] = '\0';
    json_int_t now = (json_int_t)(bk_clock_wall_ns(opts->clock) / BK_NSEC_PER_SEC);
    json_t *header = json_pack("{s:s, s:s}", "alg", k->alg->name, "typ", "JWT");
    json_t *body = json_pack("{s:I, s:I}", "iat", now, "exp", now + (json_int_t)ttl_s);
    rc = header && body ? BK_OK : BK_ENOMEM;
    if (rc == BK_OK && k->kid && json_object_set_new(header, "kid", json_string(k->kid)))
        rc = BK_ENOMEM;
    if (rc == BK_OK && opts->nbf && json_object_set_new(body, "nbf", json_integer(now)))
        rc = BK_ENOMEM;
    const char *strs[][2] = {{"iss", opts->iss}, {"aud", opts->aud}, {"sub", opts->sub}, {"jti", jti}};
    for (size_t i = 0; rc == BK_OK && i < 4; i++) {
        json_t *s = strs[i][1] ? json_string(strs[i][1]) : NULL;
        if (strs[i][1] && (!s || json_object_set_new(body, strs[i][0], s)))
            rc = BK_ENOMEM; /* the text was checked above: only memory is left to fail */
    }
    /* json_object_update only increfs the caller's values into body: claims is
     * read, never changed. */
    if (rc == BK_OK && claims && json_object_update(body, (json_t *)claims))
        rc = BK_ENOMEM;
    char *h = rc == BK_OK ? bk__json_dump(header, JSON_COMPACT) : NULL;
    char *b = rc == BK_OK ? bk__json_dump(body, JSON_COMPACT) : NULL;
    json_decref(header);
    json_decref(body);
    if (rc == BK_OK && (!h || !b))
        rc = BK_ENOMEM;
    char *out = NULL;
    if (rc == BK_OK) {
        size_t hl = strlen(h), bl = strlen(b);
        out = malloc(bk__b64_encoded_len(hl) + bk__b64_encoded_len(bl) + bk__b64_encoded_len(1024) + 3);
        rc = out ? BK_OK : BK_ENOMEM;
        if (out) {
            char *o = out + bk__b64_encode((const unsigned char *)h, hl, out, true);
            *o++ = '.';
            o += bk__b64_encode((const unsigned char *)b, bl, o, true);
            unsigned char sig[1024];
            size_t siglen = 0;
            if (!sign(k, out, (size_t)(o - out), sig, &siglen)) {
                ERR_clear_error();
                rc = bk__error(err, BK_EIO, "OpenSSL could not sign with the %s key", k->alg->name);
            } else {
                *o++ = '.';
                o += bk__b64_encode(sig, siglen, o, true);
                *o = '\0';
            }
        }
    }
    bk__json_free(h);
    bk__json_free(b);
    if (rc) {
        free(out);
        return rc == BK_ENOMEM ? bk__error(err, rc, NULL) : rc;
    }
    *token = out;
    return BK_OK;
}

/* ------------------------------------------------------------------ verify */

BK__ASSERT_ABI_SIZE(bk_jwt_verify_opts_t, 144);

void bk_jwt_verify_opts_init(bk_jwt_verify_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->max_len = DEFAULT_MAX_LEN;
}

/* Decodes a base64url segment into a JSON object; NULL when it is not one.
 * Duplicate keys are refused: two parsers could read them differently. */
static json_t *segment_json(const char *seg, size_t n, unsigned char *buf)
{
    long len = bk__b64_decode(seg, n, buf, true);
    if (len <= 0)
        return NULL;
    json_t *v = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* The key a token's header names, or a code. */
static int choose_key(const bk_jwt_keys_t *keys, const json_t *header, const struct key **out)
{
    const json_t *alg = json_object_get(header, "alg"), *kid = json_object_get(header, "kid");
    if (!json_is_string(alg) || (kid && !json_is_string(kid)) || json_object_get(header, "crit"))
        return BK_EJWT_MALFORMED; /* we understand no critical extension (RFC 7515 section 4.1.11) */
    const struct key *k = NULL;
    if (kid) {
        for (size_t i = 0; i < keys->n && !k; i++)
            if (keys->v[i].kid && strlen(keys->v[i].kid) == json_string_length(kid) &&
                strcmp(keys->v[i].kid, json_string_value(kid)) == 0)
                k = &keys->v[i];
    } else if (keys->n == 1) {
        k = &keys->v[0];
    }
    if (!k)
        return BK_EJWT_UNKNOWN_KEY;
    /* The token does not get to pick the algorithm: it must be the key's own, so
     * an HS256 token is never checked against an RSA public key used as a secret,
     * and "none" never verifies. */
    if (json_string_length(alg) != strlen(k->alg->name) || strcmp(json_string_value(alg), k->alg->name) != 0)
        return BK_EJWT_ALGORITHM;
    *out = k;
    return BK_OK;
}

/* A NumericDate claim: absent is fine, present must be a number. */
static int numeric_date(const json_t *claims, const char *name, bool *present, double *value)
{
    const json_t *v = json_object_get(claims, name);
    *present = v != NULL;
    if (!v)
        return BK_OK;
    if (!json_is_number(v))
        return BK_EJWT_MALFORMED;
    *value = json_number_value(v);
    return BK_OK;
}

static bool audience_has(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    const json_t *a;
    json_array_foreach(aud, i, a)
        if (json_is_string(a) && strcmp(json_string_value(a), want) == 0)
            return true;
    return false;
}

/* leeway is in whole seconds, as the claims are. */
static int check_claims(const bk_jwt_verify_opts_t *o, const json_t *header, const json_t *claims, double leeway)
{
    double now = (double)(bk_clock_wall_ns(o->clock) / BK_NSEC_PER_SEC);
    bool has_exp, has_nbf, has_iat;
    double exp = 0, nbf = 0, iat = 0;
    int rc;
    if ((rc = numeric_date(claims, "exp", &has_exp, &exp)) || (rc = numeric_date(claims, "nbf", &has_nbf, &nbf)) ||
        (rc = numeric_date(claims, "iat", &has_iat, &iat)))
        return rc;
    if (!has_exp && !o->allow_no_exp)
        return BK_EJWT_CLAIMS;
    if (has_exp && now >= exp + leeway)
        return BK_EJWT_EXPIRED;
    if ((has_nbf && now + leeway < nbf) || (has_iat && now + leeway < iat))
        return BK_EJWT_NOT_YET_VALID;
    if (o->iss) {
        const json_t *iss = json_object_get(claims, "iss");
        if (!json_is_string(iss) || strcmp(json_string_value(iss), o->iss) != 0)
            return BK_EJWT_ISSUER;
    }
    if (o->aud && !audience_has(json_object_get(claims, "aud"), o->aud))
        return BK_EJWT_AUDIENCE;
    for (size_t i = 0; o->required && o->required[i]; i++)
        if (!json_object_get(claims, o->required[i]))
            return BK_EJWT_CLAIMS;
    if (o->typ) {
        const json_t *typ = json_object_get(header, "typ");
        if (!json_is_string(typ) || strcasecmp(json_string_value(typ), o->typ) != 0)
            return BK_EJWT_CLAIMS;
    }
    if (o->revoked) {
        const json_t *jti = json_object_get(claims, "jti");
        if (!json_is_string(jti))
            return BK_EJWT_CLAIMS; /* revocation goes by jti: a token without one cannot be cleared */
        return o->revoked(json_string_value(jti), o->revoked_ud);
    }
    return BK_OK;
}

static int verify(const bk_jwt_keys_t *keys, const bk_jwt_verify_opts_t *opts, const char *token, size_t len,
                  json_t **claims)
{
    bk_jwt_verify_opts_t defaults;
    if (!opts) {
        bk_jwt_verify_opts_init(&defaults);
        opts = &defaults;
    }
    if (claims)
        *claims = NULL;
    /* A negative leeway would shorten tokens; over a day hides a broken clock.
     * Claims are whole seconds: a leeway between seconds is rounded down. */
    if (!keys || !token || opts->leeway_ns < 0 || opts->leeway_ns / BK_NSEC_PER_SEC > LEEWAY_MAX_S)
        return BK_EINVAL;
    size_t max_len = opts->max_len ? opts->max_len : DEFAULT_MAX_LEN;
    if (len == 0 || len > max_len)
        return BK_EJWT_MALFORMED;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return BK_EJWT_MALFORMED; /* exactly three segments */
    size_t hlen = (size_t)(dot1 - token), plen = (size_t)(dot2 - dot1 - 1), slen = len - (size_t)(dot2 + 1 - token);
    if (hlen == 0 || plen == 0 || slen == 0)
        return BK_EJWT_MALFORMED;
    unsigned char *buf = malloc(len); /* decoded bytes are always fewer than encoded */
    if (!buf)
        return BK_ENOMEM;
    json_t *header = segment_json(token, hlen, buf), *body = NULL;
    const struct key *k = NULL;
    int rc = header ? choose_key(keys, header, &k) : BK_EJWT_MALFORMED;
    if (rc == BK_OK) {
        long siglen = bk__b64_decode(dot2 + 1, slen, buf, true);
        if (siglen <= 0)
            rc = BK_EJWT_MALFORMED;
        else if (!verify_signature(k, token, (size_t)(dot2 - token), buf, (size_t)siglen))
            rc = BK_EJWT_SIGNATURE;
    }
    if (rc == BK_OK && !(body = segment_json(dot1 + 1, plen, buf)))
        rc = BK_EJWT_MALFORMED;
    if (rc == BK_OK)
        rc = check_claims(opts, header, body, (double)(opts->leeway_ns / BK_NSEC_PER_SEC));
    free(buf);
    json_decref(header);
    if (rc == BK_OK && claims)
        *claims = body;
    else
        json_decref(body);
    return rc;
}

/* ------------------------------------------------------------------ locked entry points */
int bk_jwt_keys_add(bk_jwt_keys_t *keys, const char *kid, const char *alg, const void *key, size_t len, bool current,
                    bk_error_t *err)
{
    if (!keys)
        return keys_add(keys, kid, alg, key, len, current, err);
    pthread_rwlock_wrlock(&keys->lock);
    int rc = keys_add(keys, kid, alg, key, len, current, err);
    unlock(keys);
    return rc;
}

int bk_jwt_issue(const bk_jwt_keys_t *keys, const bk_jwt_issue_opts_t *opts, const json_t *claims, char **token,
                 bk_error_t *err)
{
    if (!keys)
        return issue(keys, opts, claims, token, err);
    read_lock(keys);
    int rc = issue(keys, opts, claims, token, err);
    unlock(keys);
    return rc;
}

int bk_jwt_verify(const bk_jwt_keys_t *keys, const bk_jwt_verify_opts_t *opts, const char *token, size_t len,
                  json_t **claims)
{
    if (!keys)
        return verify(keys, opts, token, len, claims);
    read_lock(keys);
    int rc = verify(keys, opts, token, len, claims);
    unlock(keys);
    return rc;
}

/* ------------------------------------------------------------------ JWKS */
/* The big-endian bytes of pkey's BIGNUM param, left-padded to pad bytes (0: none),
 * as base64url without padding. NULL on failure. */
static json_t *b64_param(const EVP_PKEY *pkey, const char *param, size_t pad)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1)
        return NULL;
    size_t n = pad ? pad : (size_t)BN_num_bytes(bn);
    unsigned char *bytes = malloc(n ? n : 1);
    char *text = malloc(bk__b64_encoded_len(n) + 1);
    json_t *out = NULL;
    if (bytes && text && BN_bn2binpad(bn, bytes, (int)n) == (int)n) {
        text[bk__b64_encode(bytes, n, text, true)] = '\0';
        out = json_string(text);
    }
    free(bytes);
    free(text);
    BN_free(bn);
    return out;
}

static json_t *jwk(const struct key *k)
{
    json_t *j = json_pack("{s:s?, s:s, s:s}", "kid", k->kid, "alg", k->alg->name, "use", "sig");
    int bad = j == NULL;
    if (!bad && k->alg->kind == KIND_RSA)
        bad = json_object_set_new(j, "kty", json_string("RSA")) ||
              json_object_set_new(j, "n", b64_param(k->pkey, OSSL_PKEY_PARAM_RSA_N, 0)) ||
              json_object_set_new(j, "e", b64_param(k->pkey, OSSL_PKEY_PARAM_RSA_E, 0));
    else if (!bad)
        bad = json_object_set_new(j, "kty", json_string("EC")) ||
              json_object_set_new(j, "crv", json_string(k->alg->size == 32 ? "P-256" : "P-384")) ||
              json_object_set_new(j, "x", b64_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, k->alg->size)) ||
              json_object_set_new(j, "y", b64_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, k->alg->size));
    if (bad) {
        json_decref(j);
        ERR_clear_error();
        return NULL;
    }
    return j;
}

int bk_jwt_keys_jwks(const bk_jwt_keys_t *keys, json_t **out)
{
    if (out)
        *out = NULL;
    if (!keys || !out)
        return BK_EINVAL;
    json_t *list = json_array();
    int rc = list ? BK_OK : BK_ENOMEM;
    read_lock(keys);
    for (size_t i = 0; rc == BK_OK && i < keys->n; i++) {
        if (keys->v[i].alg->kind == KIND_HMAC)
            continue; /* a shared secret is never published */
        json_t *j = jwk(&keys->v[i]);
        if (!j || json_array_append_new(list, j) != 0)
            rc = BK_ENOMEM;
    }
    unlock(keys);
    if (rc == BK_OK && !(*out = json_pack("{s:o}", "keys", list)))
        rc = BK_ENOMEM;
    else if (rc != BK_OK)
        json_decref(list);
    return rc;
}
