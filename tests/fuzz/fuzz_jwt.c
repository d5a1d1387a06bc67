/* libFuzzer target: JWT verification, against a key set of HS256, RS256 and
 * ES256 keys made at start (in memory, new each run). The target issues one
 * token with each key at start; the property checked on every input is that
 * nothing verifies but those tokens: an input that verifies must have the
 * header and payload of one of them, and its signature, or for ES256 the
 * (r, n - s) twin of it, which verifies by design (bk_jwt_verify(3)). Anything
 * else that verifies is a forgery, and the target aborts.
 *
 * The issued tokens are the seeds that matter: with BK_FUZZ_JWT_CORPUS set to
 * a directory (tests/fuzz/run.sh sets it to the run's corpus), the target
 * writes them there at start, before libFuzzer reads it.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <backend/auth.h>

#include "fuzz.h"

#define T0 ((int64_t)1700000000 * BK_NSEC_PER_SEC)

static const char *const ALGS[] = {"HS256", "RS256", "ES256"};
#define NALGS 3
static bk_jwt_keys_t *verify_set;
static bk_clock_t *clock_;
static char *issued[NALGS];
static char *twin; /* the ES256 token with (r, n - s) */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_jwt: %s\n", what);
    abort();
}

/* A PEM private key made now: RSA 2048 or P-256. */
static char *pem_key(const char *alg, size_t *len)
{
    EVP_PKEY *k = strcmp(alg, "RS256") == 0 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    BIO *b = BIO_new(BIO_s_mem());
    if (!k || !b || !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
        die("cannot make a key");
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *out = malloc((size_t)n + 1);
    memcpy(out, p, (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    BIO_free(b);
    EVP_PKEY_free(k);
    return out;
}

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_val(char c)
{
    const char *p = strchr(B64URL, c);
    return c && p ? (int)(p - B64URL) : -1;
}

/* token's ES256 signature (r || s, 64 bytes) with s replaced by n - s. */
static char *make_twin(const char *token)
{
    const char *sig = strrchr(token, '.') + 1;
    unsigned char raw[64];
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (const char *p = sig; *p && n < sizeof raw; p++) {
        acc = (acc << 6) | (unsigned)b64url_val(*p);
        if ((bits += 6) >= 8) {
            bits -= 8;
            raw[n++] = (unsigned char)(acc >> bits);
        }
    }
    if (n != 64)
        die("an ES256 signature that is not 64 bytes");
    BIGNUM *order = NULL, *s = BN_bin2bn(raw + 32, 32, NULL);
    BN_hex2bn(&order, "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
    BN_sub(s, order, s);
    BN_bn2binpad(s, raw + 32, 32);
    BN_free(s);
    BN_free(order);
    size_t head = (size_t)(sig - token);
    char *out = malloc(head + 87);
    memcpy(out, token, head);
    char *w = out + head;
    for (size_t i = 0; i < 64; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (i + 1 < 64 ? (unsigned)raw[i + 1] << 8 : 0) |
                     (i + 2 < 64 ? raw[i + 2] : 0);
        *w++ = B64URL[v >> 18 & 63];
        *w++ = B64URL[v >> 12 & 63];
        if (i + 1 < 64)
            *w++ = B64URL[v >> 6 & 63];
        if (i + 2 < 64)
            *w++ = B64URL[v & 63];
    }
    *w = '\0';
    return out;
}

static void save_seed(const char *dir, size_t i, const char *token)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/issued-%zu", dir, i);
    FILE *f = fopen(path, "w");
    if (!f || fputs(token, f) == EOF || fclose(f) != 0)
        die("cannot write a seed to BK_FUZZ_JWT_CORPUS");
}

BK_FUZZ_INIT
{
    if (bk_clock_fake_new(T0, &clock_) != BK_OK || bk_jwt_keys_new(&verify_set) != BK_OK)
        die("out of memory");
    const char *corpus = getenv("BK_FUZZ_JWT_CORPUS");
    for (size_t i = 0; i < NALGS; i++) {
        char kid[8];
        snprintf(kid, sizeof kid, "k%zu", i);
        size_t len = 32;
        unsigned char secret[32];
        char *pem = NULL;
        const void *key = secret;
        if (i == 0) {
            if (bk_random_bytes(secret, sizeof secret) != BK_OK)
                die("no random bytes");
        } else {
            key = pem = pem_key(ALGS[i], &len);
        }
        bk_jwt_keys_t *one;
        bk_error_t err;
        if (bk_jwt_keys_new(&one) != BK_OK || bk_jwt_keys_add(one, kid, ALGS[i], key, len, true, &err) != BK_OK ||
            bk_jwt_keys_add(verify_set, kid, ALGS[i], key, len, false, &err) != BK_OK)
            die(err.message);
        bk_jwt_issue_opts_t o;
        bk_jwt_issue_opts_init(&o);
        o.iss = "fuzz";
        o.aud = "fuzzers";
        o.sub = "u1";
        o.clock = clock_;
        json_t *claims = json_pack("{s:[s,s]}", "roles", "admin", "viewer");
        if (bk_jwt_issue(one, &o, claims, &issued[i], &err) != BK_OK)
            die(err.message);
        json_decref(claims);
        bk_jwt_keys_free(one);
        free(pem);
        if (corpus)
            save_seed(corpus, i, issued[i]);
    }
    twin = make_twin(issued[2]);
    /* The property means something only if the issued tokens do verify. */
    bk_jwt_verify_opts_t vo;
    bk_jwt_verify_opts_init(&vo);
    vo.clock = clock_;
    for (size_t i = 0; i < NALGS; i++)
        if (bk_jwt_verify(verify_set, &vo, issued[i], strlen(issued[i]), NULL) != BK_OK)
            die("an issued token does not verify");
    if (corpus)
        save_seed(corpus, NALGS, twin);
}

/* Whether token[0..len) is one of the issued tokens, or the ES256 twin. */
static bool ours(const char *token, size_t len)
{
    for (size_t i = 0; i < NALGS; i++)
        if (strlen(issued[i]) == len && memcmp(issued[i], token, len) == 0)
            return true;
    return strlen(twin) == len && memcmp(twin, token, len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bk_jwt_verify_opts_t o;
    bk_jwt_verify_opts_init(&o);
    o.clock = clock_;
    json_t *claims = NULL;
    int rc = bk_jwt_verify(verify_set, &o, (const char *)data, size, &claims);
    if (rc == BK_OK && !ours((const char *)data, size)) {
        fprintf(stderr, "fuzz_jwt: a token the target never issued verifies: %.*s\n", (int)size, (const char *)data);
        abort();
    }
    if ((rc == BK_OK) != (claims != NULL))
        abort(); /* claims exactly when it verifies */
    json_decref(claims);
    return 0;
}
