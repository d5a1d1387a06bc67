/* JWT security suite: the RFC 7515 A.1 example, round trips for every algorithm,
 * interop both ways with PyJWT (Debian's python3-jwt) and libjwt 1.10, and the
 * attack catalogue: alg "none" and algorithm confusion, kid tricks, time claims
 * and leeway, iss/aud/required/typ, tampering, segment count, strict base64url,
 * size limits, duplicate JSON keys, crit, ECDSA signature encoding, low-S issuing
 * and the (r, n - s) twin, revocation, and what issue and the key set refuse
 * (text that is not UTF-8 among them). Every forged token is signed here with
 * OpenSSL directly (HMAC(), EVP_DigestSign) over the exact bytes sent, so each
 * case isolates one defect. Time is the fake clock's; nothing sleeps.
 * SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include <backend/auth.h>

#include "check_main.h"

#define SEC BK_NSEC_PER_SEC
#define T0 1700000000LL /* the fake clock's wall time, in seconds */
#define ISS "https://issuer.example"
#define AUD "api.example"
#define PYTHON "/usr/bin/python3" /* Debian's interpreter: the one that has python3-jwt */

/* ------------------------------------------------------------------ keys, made once */
/* RSA-2048, P-256 and P-384 keys are generated in main(), before the runner forks,
 * so each is made once per run (RSA key generation is slow under valgrind). */
static struct {
    EVP_PKEY *rsa, *p256, *p384;
    char *rsa_priv, *rsa_pub, *p256_priv, *p256_pub, *p384_priv, *p384_pub;
} K;
static unsigned char SECRET[64]; /* the HS* secret: 64 bytes, enough for HS512 */

static char *pem_of(EVP_PKEY *pk, bool priv)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int ok = bio && (priv ? PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL)
                          : PEM_write_bio_PUBKEY(bio, pk));
    char *data = NULL;
    long n = ok ? BIO_get_mem_data(bio, &data) : 0;
    char *out = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (out) {
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
    }
    BIO_free(bio);
    return out;
}

static int keys_make(void)
{
    for (size_t i = 0; i < sizeof SECRET; i++)
        SECRET[i] = (unsigned char)(i * 37 + 11);
    K.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    K.p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    K.p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    if (!K.rsa || !K.p256 || !K.p384)
        return -1;
    K.rsa_priv = pem_of(K.rsa, true), K.rsa_pub = pem_of(K.rsa, false);
    K.p256_priv = pem_of(K.p256, true), K.p256_pub = pem_of(K.p256, false);
    K.p384_priv = pem_of(K.p384, true), K.p384_pub = pem_of(K.p384, false);
    return K.rsa_priv && K.rsa_pub && K.p256_priv && K.p256_pub && K.p384_priv && K.p384_pub ? 0 : -1;
}

static void keys_drop(void)
{
    EVP_PKEY_free(K.rsa);
    EVP_PKEY_free(K.p256);
    EVP_PKEY_free(K.p384);
    free(K.rsa_priv), free(K.rsa_pub), free(K.p256_priv), free(K.p256_pub), free(K.p384_priv), free(K.p384_pub);
}

/* ------------------------------------------------------------------ per-test arena */
/* Everything a test allocates is released in teardown, so a case reads as a list
 * of checks and still leaves nothing behind for ASan or valgrind. */
#define GC_MAX 8192
static struct {
    void *p;
    void (*free)(void *);
} gc_v[GC_MAX];
static size_t gc_n;

static void *gc_with(void *p, void (*f)(void *))
{
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_lt(gc_n, GC_MAX);
    gc_v[gc_n].p = p;
    gc_v[gc_n++].free = f;
    return p;
}

static void *gc(void *p)
{
    return gc_with(p, free);
}

static void json_free_(void *p)
{
    json_decref(p);
}

static json_t *gcj(json_t *j)
{
    return gc_with(j, json_free_);
}

static void keys_free_(void *p)
{
    bk_jwt_keys_free(p);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    char *s = gc(malloc((size_t)n + 1));
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fmt("(no %s)", path);
    char *buf = gc(calloc(1, 8192));
    size_t n = fread(buf, 1, 8191, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ------------------------------------------------------------------ fixture */
static bk_clock_t *clk;
static bk_jwt_verify_opts_t VO; /* reset for each test: fake clock, defaults otherwise */
static bk_jwt_issue_opts_t IO;  /* iss, aud, sub "alice", ttl 600, fake clock */

static void setup(void)
{
    ck_assert_int_eq(bk_clock_fake_new(T0 * SEC, &clk), BK_OK);
    bk_jwt_verify_opts_init(&VO);
    VO.clock = clk;
    bk_jwt_issue_opts_init(&IO);
    IO.iss = ISS;
    IO.aud = AUD;
    IO.sub = "alice";
    IO.ttl_ns = 600 * SEC;
    IO.clock = clk;
}

static void teardown(void)
{
    while (gc_n > 0) {
        gc_n--;
        gc_v[gc_n].free(gc_v[gc_n].p);
    }
    bk_clock_free(clk);
    clk = NULL;
}

/* ------------------------------------------------------------------ base64url, ours */
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64u(const void *data, size_t n)
{
    const unsigned char *in = data;
    char *out = gc(malloc(n / 3 * 4 + 5));
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = B64[v >> 18], out[o++] = B64[v >> 12 & 63], out[o++] = B64[v >> 6 & 63], out[o++] = B64[v & 63];
    }
    if (n - i >= 1) {
        uint32_t v = (uint32_t)in[i] << 16 | (n - i == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = B64[v >> 18], out[o++] = B64[v >> 12 & 63];
        if (n - i == 2)
            out[o++] = B64[v >> 6 & 63];
    }
    out[o] = '\0';
    return out;
}

static char *b64s(const char *text)
{
    return b64u(text, strlen(text));
}

static int b64v(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

/* Lenient on purpose (ignores the unused low bits of the last character): shows
 * what a permissive decoder would read. NUL-terminated for JSON. */
static unsigned char *unb64u(const char *s, size_t n, size_t *outn)
{
    unsigned char *out = gc(malloc(n * 3 / 4 + 2));
    uint32_t acc = 0;
    size_t o = 0, bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64v(s[i]);
        ck_assert_int_ge(v, 0);
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    out[o] = '\0';
    if (outn)
        *outn = o;
    return out;
}

/* ------------------------------------------------------------------ tokens, forged here */
static char *tok3(const char *h, const char *p, const char *s)
{
    return fmt("%s.%s.%s", h, p, s);
}

/* Segment i (0 header, 1 payload, 2 signature) of a compact token, a copy. */
static char *seg(const char *tok, int i)
{
    const char *b = tok;
    for (; i > 0; i--) {
        b = strchr(b, '.');
        ck_assert_ptr_nonnull(b);
        b++;
    }
    const char *e = strchr(b, '.');
    return fmt("%.*s", (int)(e ? (size_t)(e - b) : strlen(b)), b);
}

static json_t *seg_json(const char *tok, int i)
{
    const char *s = seg(tok, i);
    const char *text = (const char *)unb64u(s, strlen(s), NULL);
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    ck_assert_msg(j != NULL, "segment %d is not JSON: %s", i, err.text);
    return gcj(j);
}

static const EVP_MD *md_for(const char *alg)
{
    const char *bits = alg + 2;
    return strcmp(bits, "256") == 0 ? EVP_sha256() : strcmp(bits, "384") == 0 ? EVP_sha384() : EVP_sha512();
}

static char *sign_hmac(const char *alg, const void *key, size_t keylen, const char *input)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    ck_assert_ptr_nonnull(
        HMAC(md_for(alg), key, (int)keylen, (const unsigned char *)input, strlen(input), mac, &maclen));
    return b64u(mac, maclen);
}

static unsigned char *der_sign(EVP_PKEY *pk, const EVP_MD *md, const char *input, size_t *len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, md, NULL, pk), 1);
    ck_assert_int_eq(EVP_DigestSign(ctx, NULL, len, (const unsigned char *)input, strlen(input)), 1);
    unsigned char *sig = gc(malloc(*len));
    ck_assert_int_eq(EVP_DigestSign(ctx, sig, len, (const unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    return sig;
}

/* DER ECDSA-Sig-Value to JWS r || s, each half bytes. */
static unsigned char *der_to_raw(const unsigned char *der, size_t len, size_t half)
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    ck_assert_ptr_nonnull(sig);
    unsigned char *raw = gc(malloc(2 * half));
    ck_assert_int_eq(BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, (int)half), (int)half);
    ck_assert_int_eq(BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + half, (int)half), (int)half);
    ECDSA_SIG_free(sig);
    return raw;
}

/* The JWS signature of input by alg with the suite's key for it, base64url. */
static char *sign_b64(const char *alg, const char *input)
{
    if (alg[0] == 'H')
        return sign_hmac(alg, SECRET, sizeof SECRET, input);
    EVP_PKEY *pk = alg[0] == 'R' ? K.rsa : strcmp(alg, "ES256") == 0 ? K.p256 : K.p384;
    size_t len;
    unsigned char *der = der_sign(pk, md_for(alg), input, &len);
    if (alg[0] == 'R')
        return b64u(der, len);
    size_t half = strcmp(alg, "ES256") == 0 ? 32 : 48;
    return b64u(der_to_raw(der, len, half), 2 * half);
}

/* A token from encoded segments, signed by sign_alg over "h.p" as given. */
static char *forge_segs(const char *sign_alg, const char *h, const char *p)
{
    return tok3(h, p, sign_b64(sign_alg, fmt("%s.%s", h, p)));
}

/* A token whose header and payload are these JSON texts, byte for byte. */
static char *forge(const char *sign_alg, const char *header, const char *payload)
{
    return forge_segs(sign_alg, b64s(header), b64s(payload));
}

/* A JSON object text: prefix (an object without its closing brace) plus a filler
 * member so that its length % 3 == mod, fixing its base64url length % 4. */
static char *json_mod3(const char *prefix, size_t mod)
{
    for (int k = 0;; k++) {
        char *s = fmt("%s,\"pad\":\"%.*s\"}", prefix, k, "xxxxxxxx");
        if (strlen(s) % 3 == mod)
            return s;
    }
}

static char *exp_payload(long long exp)
{
    return fmt("{\"exp\":%lld,\"sub\":\"alice\"}", exp);
}

/* ------------------------------------------------------------------ key sets */
enum { PRIV, PUB };

static void material(const char *alg, int which, const void **key, size_t *len)
{
    const char *pem;
    if (alg[0] == 'H') {
        *key = SECRET, *len = sizeof SECRET;
        return;
    }
    if (alg[0] == 'R')
        pem = which == PRIV ? K.rsa_priv : K.rsa_pub;
    else if (strcmp(alg, "ES256") == 0)
        pem = which == PRIV ? K.p256_priv : K.p256_pub;
    else
        pem = which == PRIV ? K.p384_priv : K.p384_pub;
    *key = pem, *len = strlen(pem);
}

static bk_jwt_keys_t *keyset(void)
{
    bk_jwt_keys_t *ks = NULL;
    ck_assert_int_eq(bk_jwt_keys_new(&ks), BK_OK);
    return gc_with(ks, keys_free_);
}

static int add(bk_jwt_keys_t *ks, const char *kid, const char *alg, int which, bool current)
{
    const void *key;
    size_t len;
    material(alg, which, &key, &len);
    return bk_jwt_keys_add(ks, kid, alg, key, len, current, NULL);
}

/* A set of one key; a private one is current. */
static bk_jwt_keys_t *set_of(const char *kid, const char *alg, int which)
{
    bk_jwt_keys_t *ks = keyset();
    ck_assert_int_eq(add(ks, kid, alg, which, which == PRIV), BK_OK);
    return ks;
}

static char *issue(const bk_jwt_keys_t *ks, const char *claims)
{
    json_t *c = NULL;
    if (claims) {
        json_error_t err;
        c = json_loads(claims, 0, &err);
        ck_assert_msg(c != NULL, "%s", err.text);
    }
    char *tok = NULL;
    int rc = bk_jwt_issue(ks, &IO, c, &tok, NULL);
    json_decref(c);
    ck_assert_msg(rc == BK_OK, "bk_jwt_issue: %s", bk_err_name(rc));
    return gc(tok);
}

static int V(const bk_jwt_keys_t *ks, const char *tok)
{
    return bk_jwt_verify(ks, &VO, tok, strlen(tok), NULL);
}

/* Verifies, asserts the code by name, and gives the claims (NULL unless BK_OK). */
static json_t *VC(const bk_jwt_keys_t *ks, const char *tok, int want)
{
    json_t *claims = (json_t *)&claims; /* must be overwritten */
    int rc = bk_jwt_verify(ks, &VO, tok, strlen(tok), &claims);
    ck_assert_msg(rc == want, "verify: got %s, want %s", bk_err_name(rc), bk_err_name(want));
    if (want != BK_OK) {
        ck_assert_ptr_null(claims);
        return NULL;
    }
    ck_assert_ptr_nonnull(claims);
    return gcj(claims);
}

#define ck_assert_code(got, want)                                                                              \
    do {                                                                                                       \
        int got_ = (got), want_ = (want);                                                                      \
        ck_assert_msg(got_ == want_, "%s: got %s, want %s", #got, bk_err_name(got_), bk_err_name(want_));      \
    } while (0)

static const char *json_str(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    ck_assert_msg(json_is_string(v), "%s is not a string", k);
    return json_string_value(v);
}

static long long json_int(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    ck_assert_msg(json_is_integer(v), "%s is not an integer", k);
    return (long long)json_integer_value(v);
}

static const char *const ALGS[] = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384"};
#define NALGS (sizeof ALGS / sizeof ALGS[0])

/* ================================================================== RFC 7515 A.1 */
START_TEST(rfc7515_a1_hs256_example)
{
    static const char jwk_k[] = /* the JWK's "k" */
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    static const char tok[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    size_t klen;
    unsigned char *key = unb64u(jwk_k, strlen(jwk_k), &klen);
    ck_assert_uint_eq(klen, 64);
    bk_jwt_keys_t *ks = keyset();
    ck_assert_int_eq(bk_jwt_keys_add(ks, NULL, "HS256", key, klen, false, NULL), BK_OK);

    /* The header is signed as sent, CR LF and all: nothing is re-serialised. */
    ck_assert_str_eq((const char *)unb64u(tok, strlen(seg(tok, 0)), NULL), "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}");
    ck_assert_str_eq(sign_hmac("HS256", key, klen, fmt("%s.%s", seg(tok, 0), seg(tok, 1))), seg(tok, 2));

    ck_assert_int_eq(bk_clock_fake_set_wall(clk, (1300819380LL - 1) * SEC), BK_OK);
    json_t *c = VC(ks, tok, BK_OK);
    ck_assert_str_eq(json_str(c, "iss"), "joe");
    ck_assert_ptr_eq(json_object_get(c, "http://example.com/is_root"), json_true());
    ck_assert_int_eq(json_int(c, "exp"), 1300819380);
    VO.typ = "jwt"; /* typ compares case-insensitively */
    VC(ks, tok, BK_OK);

    /* At exp the token is expired (RFC 7519 4.1.4: valid only before it). */
    ck_assert_int_eq(bk_clock_fake_advance(clk, 1 * SEC), BK_OK);
    VC(ks, tok, BK_EJWT_EXPIRED);
    VO.leeway_ns = 1 * SEC;
    VC(ks, tok, BK_OK);

    /* One bit of the key changed: the same token no longer verifies. */
    key[63] ^= 1;
    bk_jwt_keys_t *other = keyset();
    ck_assert_int_eq(bk_jwt_keys_add(other, NULL, "HS256", key, klen, false, NULL), BK_OK);
    VC(other, tok, BK_EJWT_SIGNATURE);
}
END_TEST

/* ================================================================== round trips */
START_TEST(round_trip_every_alg_private_and_public_sets)
{
    static const size_t siglen[NALGS] = {32, 48, 64, 256, 256, 256, 64, 96};
    bk_jwt_keys_t *all = keyset(); /* every key, verify-only where it can be */
    char *toks[NALGS];
    IO.nbf = true;
    for (size_t i = 0; i < NALGS; i++) {
        const char *alg = ALGS[i], *kid = fmt("k-%s", alg);
        ck_assert_int_eq(add(all, kid, alg, alg[0] == 'H' ? PRIV : PUB, false), BK_OK);
        bk_jwt_keys_t *ks = set_of(kid, alg, PRIV);
        char *tok = toks[i] = issue(ks, "{\"role\":\"admin\",\"n\":42,\"tags\":[\"a\",\"b\"]}");

        json_t *h = seg_json(tok, 0);
        ck_assert_uint_eq(json_object_size(h), 3);
        ck_assert_str_eq(json_str(h, "alg"), alg);
        ck_assert_str_eq(json_str(h, "typ"), "JWT");
        ck_assert_str_eq(json_str(h, "kid"), kid);
        size_t n;
        const char *s = seg(tok, 2);
        unb64u(s, strlen(s), &n);
        ck_assert_msg(n == siglen[i], "%s: signature of %zu bytes", alg, n);

        VO.iss = ISS, VO.aud = AUD, VO.typ = "JWT";
        static const char *const req[] = {"sub", "jti", "role", NULL};
        VO.required = req;
        json_t *c = VC(ks, tok, BK_OK);
        ck_assert_int_eq(json_int(c, "iat"), T0);
        ck_assert_int_eq(json_int(c, "nbf"), T0);
        ck_assert_int_eq(json_int(c, "exp"), T0 + 600);
        ck_assert_str_eq(json_str(c, "iss"), ISS);
        ck_assert_str_eq(json_str(c, "aud"), AUD);
        ck_assert_str_eq(json_str(c, "sub"), "alice");
        ck_assert_str_eq(json_str(c, "role"), "admin");
        ck_assert_int_eq(json_int(c, "n"), 42);
        ck_assert_uint_eq(json_array_size(json_object_get(c, "tags")), 2);
        const char *jti = json_str(c, "jti"); /* 128 random bits, base64url */
        ck_assert_uint_eq(strlen(jti), 22);
        ck_assert_uint_eq(strspn(jti, B64), 22);

        if (alg[0] != 'H') /* a public-only set verifies what the private one issued */
            VC(set_of(kid, alg, PUB), tok, BK_OK);
        ck_assert_str_ne(json_str(c, "jti"), json_str(VC(ks, issue(ks, "{\"role\":\"x\"}"), BK_OK), "jti"));
        /* Another alg's set, same kid: refused on the alg, not tried. */
        VC(set_of(kid, ALGS[(i + 3) % NALGS], PRIV), tok, BK_EJWT_ALGORITHM);
    }
    for (size_t i = 0; i < NALGS; i++)
        VC(all, toks[i], BK_OK);
}
END_TEST

START_TEST(public_key_cannot_be_current_nor_issue)
{
    for (size_t i = 3; i < NALGS; i++) {
        bk_jwt_keys_t *ks = keyset();
        ck_assert_code(add(ks, "pub", ALGS[i], PUB, true), BK_EINVAL);
        ck_assert_code(add(ks, "pub", ALGS[i], PUB, false), BK_OK);
        char *tok = (char *)"untouched";
        ck_assert_code(bk_jwt_issue(ks, &IO, NULL, &tok, NULL), BK_ENOTFOUND);
        ck_assert_ptr_null(tok);
    }
    char *tok = NULL;
    ck_assert_code(bk_jwt_issue(keyset(), &IO, NULL, &tok, NULL), BK_ENOTFOUND); /* empty set */
}
END_TEST

START_TEST(key_must_fit_its_alg)
{
    bk_jwt_keys_t *ks = keyset();
    ck_assert_code(bk_jwt_keys_add(ks, "a", "ES256", K.rsa_pub, strlen(K.rsa_pub), false, NULL), BK_EINVAL);
    ck_assert_code(bk_jwt_keys_add(ks, "a", "ES256", K.p384_pub, strlen(K.p384_pub), false, NULL), BK_EINVAL);
    ck_assert_code(bk_jwt_keys_add(ks, "a", "ES384", K.p256_priv, strlen(K.p256_priv), true, NULL), BK_EINVAL);
    ck_assert_code(bk_jwt_keys_add(ks, "a", "RS256", K.p256_pub, strlen(K.p256_pub), false, NULL), BK_EINVAL);
    static const char junk_pem[] = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    ck_assert_code(bk_jwt_keys_add(ks, "a", "RS256", junk_pem, strlen(junk_pem), false, NULL), BK_EINVAL);
    ck_assert_code(bk_jwt_keys_add(ks, "a", "RS256", SECRET, sizeof SECRET, false, NULL), BK_EINVAL);
    static const char *const bad_algs[] = {"none", "None", "hs256", "HS1024", "PS256", "ES512", "EdDSA", "", "HS256 "};
    for (size_t i = 0; i < sizeof bad_algs / sizeof bad_algs[0]; i++)
        ck_assert_code(bk_jwt_keys_add(ks, "a", bad_algs[i], SECRET, sizeof SECRET, true, NULL), BK_EINVAL);
    ck_assert_code(bk_jwt_keys_add(ks, "a", NULL, SECRET, sizeof SECRET, true, NULL), BK_EINVAL);
    ck_assert_code(bk_jwt_keys_add(ks, "a", "HS256", NULL, 32, true, NULL), BK_EINVAL);
    ck_assert_code(bk_jwt_keys_add(NULL, "a", "HS256", SECRET, 32, true, NULL), BK_EINVAL);
    /* Nothing was added by the refusals: the first good key may still be the only kid-less one. */
    ck_assert_code(bk_jwt_keys_add(ks, NULL, "ES256", K.p256_priv, strlen(K.p256_priv), true, NULL), BK_OK);
    VC(ks, issue(ks, NULL), BK_OK);
}
END_TEST

START_TEST(encrypted_pem_is_refused_without_prompting)
{
    /* A passphrase-protected key is refused (EINVAL) at once. OpenSSL's default
     * passphrase callback would prompt on the terminal, or without one read
     * stdin: a server would hang at start. The add runs in a child with no
     * terminal and a stdin that never ends; an alarm ends it if it blocks. */
    BIO *bio = BIO_new(BIO_s_mem());
    ck_assert_int_eq(PEM_write_bio_PrivateKey(bio, K.p256, EVP_aes_128_cbc(), NULL, 0, NULL, (void *)"passphrase"), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    ck_assert_ptr_nonnull(strstr(fmt("%.*s", (int)n, data), "ENCRYPTED"));
    char out[] = "/tmp/bk-jwt-pem-XXXXXX";
    int fd = mkstemp(out), in[2];
    ck_assert_int_ge(fd, 0);
    unlink(out); /* the child writes to fd; nothing is left behind, whatever happens */
    ck_assert_int_eq(pipe(in), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setsid(); /* no controlling terminal: /dev/tty cannot be opened */
        dup2(in[0], 0), dup2(fd, 1), dup2(fd, 2);
        alarm(20);
        bk_jwt_keys_t *ks = NULL;
        int rc = bk_jwt_keys_new(&ks) ? -1 : bk_jwt_keys_add(ks, "e", "ES256", data, (size_t)n, true, NULL);
        bk_jwt_keys_free(ks);
        BIO_free(bio); /* the child is checked for leaks too, under valgrind */
        _exit(rc == BK_EINVAL ? 0 : 1);
    }
    close(in[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    close(in[1]);
    char said[256] = "";
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    ssize_t got = read(fd, said, sizeof said - 1);
    said[got > 0 ? got : 0] = '\0';
    close(fd);
    BIO_free(bio);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %d, output \"%s\"", status, said);
    ck_assert_msg(said[0] == '\0', "asked for a passphrase: \"%s\"", said);
}
END_TEST

START_TEST(key_rotation_and_key_files)
{
    bk_jwt_keys_t *old = set_of("2023", "HS256", PRIV);
    char *old_tok = issue(old, NULL);
    bk_jwt_keys_t *ks = keyset();
    ck_assert_code(add(ks, "2023", "HS256", PRIV, false), BK_OK);
    ck_assert_code(add(ks, "2024", "ES256", PRIV, true), BK_OK);
    VC(ks, old_tok, BK_OK);
    char *tok = issue(ks, NULL);
    ck_assert_str_eq(json_str(seg_json(tok, 0), "kid"), "2024");
    ck_assert_str_eq(json_str(seg_json(tok, 0), "alg"), "ES256");
    VC(ks, tok, BK_OK);
    VC(old, tok, BK_EJWT_UNKNOWN_KEY);
    /* A later current key takes over; the set grows past its first allocation. */
    for (int i = 0; i < 9; i++)
        ck_assert_code(add(ks, fmt("more-%d", i), "RS256", PUB, false), BK_OK);
    ck_assert_code(add(ks, "2025", "ES384", PRIV, true), BK_OK);
    ck_assert_str_eq(json_str(seg_json(issue(ks, NULL), 0), "kid"), "2025");
    VC(ks, tok, BK_OK);

    /* Files: raw bytes for HS*, PEM otherwise. */
    char dir[] = "/tmp/bk-jwt-keys-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *hs = fmt("%s/hs.key", dir), *pem = fmt("%s/es.pem", dir);
    FILE *f = fopen(hs, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(SECRET, 1, sizeof SECRET, f), sizeof SECRET);
    fclose(f);
    ck_assert_ptr_nonnull(f = fopen(pem, "wb"));
    fputs(K.p256_priv, f);
    fclose(f);
    bk_jwt_keys_t *fk = keyset();
    int rc1 = bk_jwt_keys_add_file(fk, "2023", "HS256", hs, false, NULL);
    int rc2 = bk_jwt_keys_add_file(fk, "2024", "ES256", pem, true, NULL);
    unlink(hs);
    unlink(pem);
    rmdir(dir);
    ck_assert_code(rc1, BK_OK);
    ck_assert_code(rc2, BK_OK);
    ck_assert_code(bk_jwt_keys_add_file(fk, "x", "ES256", pem, false, NULL), BK_ENOTFOUND); /* gone */
    VC(fk, old_tok, BK_OK);
    VC(fk, tok, BK_OK);
    VC(ks, issue(fk, NULL), BK_OK);
}
END_TEST

/* ================================================================== interop: PyJWT */
static const char PY_SCRIPT[] =
    "import json, os, sys\n"
    "import jwt\n"
    "d = sys.argv[1]\n"
    "def rd(name):\n"
    "    with open(os.path.join(d, name), 'rb') as f:\n"
    "        return f.read()\n"
    "cfg = json.loads(rd('config.json'))\n"
    "now, iss, aud = cfg['now'], cfg['iss'], cfg['aud']\n"
    "res = {'version': jwt.__version__, 'decoded': {}, 'headers': {}, 'refused': {}, 'encoded': {}}\n"
    "for alg, priv, pub in (('HS256', 'hs.key', 'hs.key'), ('RS256', 'rs.pem', 'rs.pub'),\n"
    "                       ('ES256', 'es.pem', 'es.pub')):\n"
    "    tok = rd('ours_' + alg + '.jwt').decode('ascii')\n"
    "    res['decoded'][alg] = jwt.decode(tok, rd(pub), algorithms=[alg], audience=aud, issuer=iss,\n"
    "        options={'require': ['exp', 'iat', 'nbf', 'iss', 'aud', 'sub', 'jti']})\n"
    "    res['headers'][alg] = jwt.get_unverified_header(tok)\n"
    "    refused = []\n"
    "    h, p, s = tok.split('.')\n"
    "    for t, kw in ((tok, {'audience': 'other', 'issuer': iss}), (tok, {'audience': aud, 'issuer': 'other'}),\n"
    "                  (h + '.X' + p[1:] + '.' + s, {'audience': aud, 'issuer': iss})):\n"
    "        try:\n"
    "            jwt.decode(t, rd(pub), algorithms=[alg], **kw)\n"
    "            refused.append('accepted')\n"
    "        except jwt.InvalidTokenError as e:\n"
    "            refused.append(type(e).__name__)\n"
    "    res['refused'][alg] = refused\n"
    "    claims = {'iss': iss, 'aud': aud, 'sub': 'py-' + alg, 'iat': now, 'exp': now + 600,\n"
    "              'jti': 'py-jti-' + alg, 'scope': ['read', 'write'], 'n': 7}\n"
    "    res['encoded'][alg] = jwt.encode(claims, rd(priv), algorithm=alg, headers={'kid': 'k-' + alg})\n"
    "with open(os.path.join(d, 'result.json'), 'w') as f:\n"
    "    json.dump(res, f)\n";

static void put_file(const char *dir, const char *name, const void *data, size_t n)
{
    char *path = fmt("%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_msg(fd >= 0, "cannot create %s", path);
    ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
    close(fd);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlink(fmt("%s/%s", dir, e->d_name));
        closedir(d);
    }
    rmdir(dir);
}

/* Runs PYTHON -I script dir, no shell; stdout and stderr go to dir/py.out. */
static int run_python(const char *dir, const char *script)
{
    char *out = fmt("%s/py.out", dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY), fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in >= 0)
            dup2(in, 0);
        if (fd >= 0)
            dup2(fd, 1), dup2(fd, 2);
        execl(PYTHON, "python3", "-I", script, dir, (char *)NULL);
        dprintf(2, "cannot run %s\n", PYTHON);
        _exit(127);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The JWK Set of a set: public RSA and EC keys only, as PyJWT reads them: it
 * verifies our tokens with nothing but the published keys. */
static const char PY_JWKS[] =
    "import json, os, sys\n"
    "import jwt\n"
    "d = sys.argv[1]\n"
    "text = open(os.path.join(d, 'jwks.json')).read()\n"
    "algs = {k['kid']: k['alg'] for k in json.loads(text)['keys']}\n"
    "keys = {k.key_id: k for k in jwt.PyJWKSet.from_json(text).keys}\n"
    "ok = 0\n"
    "for name in sorted(os.listdir(d)):\n"
    "    if not name.endswith('.jwt'):\n"
    "        continue\n"
    "    tok = open(os.path.join(d, name)).read()\n"
    "    h = jwt.get_unverified_header(tok)\n"
    "    k = keys[h['kid']]\n"
    "    assert h['alg'] == algs[h['kid']]\n"
    "    jwt.decode(tok, k.key, algorithms=[algs[h['kid']]], audience=" "'" AUD "'" ", issuer=" "'" ISS "')\n"
    "    ok += 1\n"
    "print('verified', ok)\n";

START_TEST(jwks_publishes_public_keys_that_pyjwt_verifies_with)
{
    long long now = (long long)(bk_clock_wall_ns(NULL) / SEC);
    ck_assert_int_eq(bk_clock_fake_set_wall(clk, now * SEC), BK_OK);
    static const struct { const char *kid, *alg; int which; } KEYS[] = {
        {"h", "HS256", PRIV}, {"r", "RS256", PRIV}, {"e2", "ES256", PRIV}, {"e3", "ES384", PRIV},
    };
    bk_jwt_keys_t *all = keyset();
    char dir[] = "/tmp/bk-jwks-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(add(all, KEYS[i].kid, KEYS[i].alg, KEYS[i].which, false), BK_OK);
        if (KEYS[i].alg[0] == 'H')
            continue;
        char *tok = issue(set_of(KEYS[i].kid, KEYS[i].alg, PRIV), "{\"n\":42}");
        put_file(dir, fmt("%s.jwt", KEYS[i].kid), tok, strlen(tok));
    }
    /* A public key alone is published too. */
    ck_assert_int_eq(add(all, "e2-old", "ES256", PUB, false), BK_OK);
    json_t *jwks = (json_t *)1;
    ck_assert_int_eq(bk_jwt_keys_jwks(all, &jwks), BK_OK);
    gcj(jwks);
    json_t *list = json_object_get(jwks, "keys");
    ck_assert_uint_eq(json_array_size(list), 4); /* never the HMAC secret */
    size_t i;
    json_t *k;
    json_array_foreach(list, i, k) {
        const char *kty = json_str(k, "kty");
        ck_assert_str_eq(json_str(k, "use"), "sig");
        ck_assert_ptr_null(json_object_get(k, "d")); /* no private part */
        ck_assert_ptr_null(json_object_get(k, "k"));
        if (strcmp(kty, "RSA") == 0) {
            ck_assert_str_eq(json_str(k, "alg"), "RS256");
            ck_assert_str_eq(json_str(k, "e"), "AQAB");
            ck_assert_uint_eq(strlen(json_str(k, "n")), 342); /* 256 bytes */
        } else {
            ck_assert_str_eq(kty, "EC");
            bool p256 = strcmp(json_str(k, "crv"), "P-256") == 0;
            ck_assert_str_eq(json_str(k, "alg"), p256 ? "ES256" : "ES384");
            /* Coordinates at the field's full size, leading zero bytes kept. */
            ck_assert_uint_eq(strlen(json_str(k, "x")), p256 ? 43 : 64);
            ck_assert_uint_eq(strlen(json_str(k, "y")), p256 ? 43 : 64);
        }
    }
    char *text = json_dumps(jwks, JSON_COMPACT);
    put_file(dir, "jwks.json", text, strlen(text));
    free(text);
    put_file(dir, "check.py", PY_JWKS, strlen(PY_JWKS));
    int rc = run_python(dir, fmt("%s/check.py", dir));
    FILE *f = fopen(fmt("%s/py.out", dir), "r");
    char out[4096] = "";
    if (f) {
        size_t n = fread(out, 1, sizeof out - 1, f);
        out[n] = '\0';
        fclose(f);
    }
    remove_dir(dir);
    ck_assert_msg(rc == 0, "PyJWT: %s", out);
    ck_assert_str_eq(out, "verified 3\n");
    ck_assert_int_eq(bk_jwt_keys_jwks(NULL, &jwks), BK_EINVAL);
}
END_TEST

struct swapper {
    bk_jwt_keys_t *ks;
    const char *tok;
    atomic_int ok, unknown, other;
    atomic_bool stop;
};

static void *verify_loop(void *arg)
{
    struct swapper *w = arg;
    while (!atomic_load(&w->stop)) {
        int rc = bk_jwt_verify(w->ks, &VO, w->tok, strlen(w->tok), NULL);
        atomic_fetch_add(rc == BK_OK ? &w->ok : rc == BK_EJWT_UNKNOWN_KEY ? &w->unknown : &w->other, 1);
    }
    return NULL;
}

START_TEST(swap_replaces_the_keys_at_once_under_running_verifies)
{
    bk_jwt_keys_t *a = set_of("a", "ES256", PRIV), *b = set_of("b", "HS256", PRIV);
    char *tok_a = issue(a, NULL);
    ck_assert_code(V(a, tok_a), BK_OK);
    ck_assert_int_eq(bk_jwt_keys_swap(a, b), BK_OK);
    /* a now holds b's key and signs with it; b holds the old one. */
    ck_assert_code(V(a, tok_a), BK_EJWT_UNKNOWN_KEY);
    ck_assert_code(V(b, tok_a), BK_OK);
    char *tok_b = issue(a, NULL);
    ck_assert_code(V(a, tok_b), BK_OK);
    ck_assert_code(V(b, tok_b), BK_EJWT_UNKNOWN_KEY);
    ck_assert_int_eq(bk_jwt_keys_swap(a, a), BK_EINVAL);
    ck_assert_int_eq(bk_jwt_keys_swap(a, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_jwt_keys_swap(NULL, b), BK_EINVAL);
    /* Verifies on two threads while the keys change under them: each answer is
     * the old set's or the new one's, never anything else. */
    struct swapper w = {.ks = a, .tok = tok_a};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, verify_loop, &w), 0);
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(bk_jwt_keys_swap(a, b), BK_OK);
        sched_yield();
    }
    atomic_store(&w.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(atomic_load(&w.other), 0);
    ck_assert_int_gt(atomic_load(&w.ok) + atomic_load(&w.unknown), 0);
    /* 200 swaps from "a holds b's": back where it was. */
    ck_assert_code(V(a, tok_a), BK_EJWT_UNKNOWN_KEY);
}
END_TEST

START_TEST(interop_pyjwt_both_ways)
{
    static const char *const py_algs[] = {"HS256", "RS256", "ES256"};
    /* PyJWT checks exp, nbf and iat against the real clock: the fake clock starts
     * at the real time (read once), then moves only by hand. */
    long long now = (long long)(bk_clock_wall_ns(NULL) / SEC);
    ck_assert_int_eq(bk_clock_fake_set_wall(clk, now * SEC), BK_OK);
    char dir[] = "/tmp/bk-jwt-py-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    put_file(dir, "interop.py", PY_SCRIPT, strlen(PY_SCRIPT));
    char *cfg = fmt("{\"now\": %lld, \"iss\": \"%s\", \"aud\": \"%s\"}", now, ISS, AUD);
    put_file(dir, "config.json", cfg, strlen(cfg));
    put_file(dir, "hs.key", SECRET, sizeof SECRET);
    put_file(dir, "rs.pem", K.rsa_priv, strlen(K.rsa_priv));
    put_file(dir, "rs.pub", K.rsa_pub, strlen(K.rsa_pub));
    put_file(dir, "es.pem", K.p256_priv, strlen(K.p256_priv));
    put_file(dir, "es.pub", K.p256_pub, strlen(K.p256_pub));
    bk_jwt_keys_t *priv[3], *pub[3];
    json_t *ours[3];
    IO.nbf = true;
    VO.iss = ISS, VO.aud = AUD, VO.typ = "JWT";
    for (int i = 0; i < 3; i++) {
        const char *alg = py_algs[i], *kid = fmt("k-%s", alg);
        priv[i] = set_of(kid, alg, PRIV);
        pub[i] = alg[0] == 'H' ? priv[i] : set_of(kid, alg, PUB);
        IO.sub = fmt("ours-%s", alg);
        char *tok = issue(priv[i], "{\"scope\":[\"read\",\"write\"],\"n\":7}");
        ours[i] = VC(pub[i], tok, BK_OK);
        put_file(dir, fmt("ours_%s.jwt", alg), tok, strlen(tok));
    }

    int rc = run_python(dir, fmt("%s/interop.py", dir));
    char *said = slurp(fmt("%s/py.out", dir));
    json_error_t err;
    json_t *res = json_load_file(fmt("%s/result.json", dir), 0, &err);
    remove_dir(dir);
    /* No python3, no PyJWT: a failure, not a skip. */
    ck_assert_msg(rc == 0, "%s (PyJWT, package python3-jwt) failed with %d:\n%s", PYTHON, rc, said);
    ck_assert_msg(res != NULL, "result.json: %s", err.text);
    gcj(res);
    ck_assert_msg(strncmp(json_str(res, "version"), "2.", 2) == 0, "PyJWT %s", json_str(res, "version"));

    static const char *const req[] = {"jti", "scope", "n", NULL};
    VO.required = req;
    for (int i = 0; i < 3; i++) {
        const char *alg = py_algs[i];
        /* Ours, decoded and verified by PyJWT (audience, issuer, required claims):
         * the very claims we read back ourselves. */
        json_t *dec = json_object_get(json_object_get(res, "decoded"), alg);
        ck_assert_msg(json_equal(dec, ours[i]), "%s: PyJWT read %s", alg,
                      (char *)gc(json_dumps(dec, JSON_COMPACT | JSON_SORT_KEYS)));
        json_t *hdr = json_object_get(json_object_get(res, "headers"), alg);
        ck_assert_str_eq(json_str(hdr, "alg"), alg);
        ck_assert_str_eq(json_str(hdr, "kid"), fmt("k-%s", alg));
        ck_assert_str_eq(json_str(hdr, "typ"), "JWT");
        /* PyJWT did verify: a wrong audience, a wrong issuer, a changed payload refused. */
        json_t *refused = json_object_get(json_object_get(res, "refused"), alg);
        ck_assert_uint_eq(json_array_size(refused), 3);
        ck_assert_str_eq(json_string_value(json_array_get(refused, 0)), "InvalidAudienceError");
        ck_assert_str_eq(json_string_value(json_array_get(refused, 1)), "InvalidIssuerError");
        ck_assert_str_eq(json_string_value(json_array_get(refused, 2)), "InvalidSignatureError");

        /* PyJWT's, verified by us with the public key. */
        const char *tok = json_string_value(json_object_get(json_object_get(res, "encoded"), alg));
        ck_assert_ptr_nonnull(tok);
        json_t *c = VC(pub[i], tok, BK_OK);
        ck_assert_str_eq(json_str(c, "sub"), fmt("py-%s", alg));
        ck_assert_str_eq(json_str(c, "jti"), fmt("py-jti-%s", alg));
        ck_assert_int_eq(json_int(c, "n"), 7);
        ck_assert_int_eq(json_int(c, "exp"), now + 600);
        ck_assert_str_eq(json_string_value(json_array_get(json_object_get(c, "scope"), 1)), "write");
        ck_assert_str_eq(json_str(seg_json(tok, 0), "kid"), fmt("k-%s", alg));
    }
    /* Their exp is the one we enforce. */
    ck_assert_int_eq(bk_clock_fake_advance(clk, 600 * SEC), BK_OK);
    for (int i = 0; i < 3; i++)
        VC(pub[i], json_string_value(json_object_get(json_object_get(res, "encoded"), py_algs[i])),
           BK_EJWT_EXPIRED);
}
END_TEST

/* ================================================================== interop: libjwt */
static char *libjwt_encode(jwt_alg_t alg, const void *key, size_t len, const char *kid)
{
    jwt_t *j = NULL;
    ck_assert_int_eq(jwt_new(&j), 0);
    ck_assert_int_eq(jwt_set_alg(j, alg, key, (int)len), 0);
    ck_assert_int_eq(jwt_add_header(j, "kid", kid), 0);
    ck_assert_int_eq(jwt_add_grant(j, "iss", ISS), 0);
    ck_assert_int_eq(jwt_add_grant(j, "aud", AUD), 0);
    ck_assert_int_eq(jwt_add_grant(j, "sub", "libjwt"), 0);
    ck_assert_int_eq(jwt_add_grant(j, "jti", "lj-1"), 0);
    ck_assert_int_eq(jwt_add_grant_int(j, "iat", T0), 0);
    ck_assert_int_eq(jwt_add_grant_int(j, "exp", T0 + 300), 0);
    ck_assert_int_eq(jwt_add_grant_bool(j, "admin", 1), 0);
    char *tok = jwt_encode_str(j);
    jwt_free(j);
    return gc(tok);
}

static void libjwt_decodes(const char *tok, jwt_alg_t alg, const void *key, size_t len)
{
    jwt_t *j = NULL;
    ck_assert_int_eq(jwt_decode(&j, tok, key, (int)len), 0);
    ck_assert_int_eq(jwt_get_alg(j), alg);
    ck_assert_str_eq(jwt_get_grant(j, "iss"), ISS);
    ck_assert_str_eq(jwt_get_grant(j, "aud"), AUD);
    ck_assert_str_eq(jwt_get_grant(j, "sub"), "alice");
    ck_assert_str_eq(jwt_get_grant(j, "role"), "ops");
    ck_assert_int_eq(jwt_get_grant_int(j, "exp"), T0 + 600);
    ck_assert_int_eq(jwt_get_grant_int(j, "iat"), T0);
    ck_assert_str_eq(jwt_get_header(j, "typ"), "JWT");
    jwt_free(j);
}

START_TEST(interop_libjwt_both_ways)
{
    VO.iss = ISS, VO.aud = AUD, VO.typ = "JWT";
    /* HS256 */
    bk_jwt_keys_t *hs = set_of("k-hs", "HS256", PRIV);
    json_t *c = VC(hs, libjwt_encode(JWT_ALG_HS256, SECRET, sizeof SECRET, "k-hs"), BK_OK);
    ck_assert_str_eq(json_str(c, "sub"), "libjwt");
    ck_assert_str_eq(json_str(c, "jti"), "lj-1");
    ck_assert_ptr_eq(json_object_get(c, "admin"), json_true());
    char *tok = issue(hs, "{\"role\":\"ops\"}");
    libjwt_decodes(tok, JWT_ALG_HS256, SECRET, sizeof SECRET);
    jwt_t *j = NULL; /* libjwt checks too: another secret, a changed payload */
    unsigned char other[64];
    memcpy(other, SECRET, sizeof other);
    other[0] ^= 1;
    ck_assert_int_ne(jwt_decode(&j, tok, other, (int)sizeof other), 0);
    jwt_free(j);
    j = NULL;
    ck_assert_int_ne(jwt_decode(&j, tok3(seg(tok, 0), b64s("{\"sub\":\"admin\"}"), seg(tok, 2)), SECRET,
                                (int)sizeof SECRET),
                     0);
    jwt_free(j);

    /* RS256: libjwt signs with the private PEM, our public-only set verifies; and back. */
    bk_jwt_keys_t *rs_pub = set_of("k-rs", "RS256", PUB), *rs = set_of("k-rs", "RS256", PRIV);
    c = VC(rs_pub, libjwt_encode(JWT_ALG_RS256, K.rsa_priv, strlen(K.rsa_priv), "k-rs"), BK_OK);
    ck_assert_str_eq(json_str(c, "sub"), "libjwt");
    ck_assert_int_eq(json_int(c, "exp"), T0 + 300);
    tok = issue(rs, "{\"role\":\"ops\"}");
    libjwt_decodes(tok, JWT_ALG_RS256, K.rsa_pub, strlen(K.rsa_pub));
    j = NULL;
    ck_assert_int_ne(jwt_decode(&j, tok3(seg(tok, 0), b64s("{\"sub\":\"admin\"}"), seg(tok, 2)),
                                (const unsigned char *)K.rsa_pub, (int)strlen(K.rsa_pub)),
                     0);
    jwt_free(j);
    /* libjwt's HS256 token is not accepted by an RS256 set, nor the reverse. */
    VC(rs_pub, libjwt_encode(JWT_ALG_HS256, SECRET, sizeof SECRET, "k-rs"), BK_EJWT_ALGORITHM);
}
END_TEST

/* ================================================================== attacks: algorithm */
START_TEST(alg_none_refused)
{
    bk_jwt_keys_t *one = set_of(NULL, "HS256", PRIV), *multi = keyset();
    ck_assert_code(add(multi, "a", "HS256", PRIV, true), BK_OK);
    ck_assert_code(add(multi, "b", "ES256", PUB, false), BK_OK);
    char *p = b64s(exp_payload(T0 + 600));
    /* Empty signature part: refused before any key is looked at (MALFORMED). */
    ck_assert_code(V(one, tok3(b64s("{\"alg\":\"none\"}"), p, "")), BK_EJWT_MALFORMED);
    ck_assert_code(V(one, tok3(b64s("{\"alg\":\"none\",\"typ\":\"JWT\"}"), p, "")), BK_EJWT_MALFORMED);
    ck_assert_code(V(multi, tok3(b64s("{\"alg\":\"none\",\"kid\":\"a\"}"), p, "")), BK_EJWT_MALFORMED);
    /* With a signature part (garbage or a real HMAC of the input): the key's alg is
     * not "none" (ALGORITHM), whatever the case of the spelling. */
    static const char *const nones[] = {"none", "None", "NONE", "nOnE", "", "HS256 ", "hs256", "HS256\\u0000"};
    for (size_t i = 0; i < sizeof nones / sizeof nones[0]; i++) {
        char *h = b64s(fmt("{\"alg\":\"%s\"}", nones[i]));
        int want = strstr(nones[i], "\\u0000") ? BK_EJWT_MALFORMED : BK_EJWT_ALGORITHM; /* NUL: not JSON we read */
        ck_assert_code(V(one, tok3(h, p, "AAAA")), want);
        ck_assert_code(V(one, forge_segs("HS256", h, p)), want);
        char *hk = b64s(fmt("{\"alg\":\"%s\",\"kid\":\"a\"}", nones[i]));
        ck_assert_code(V(multi, forge_segs("HS256", hk, p)), want);
    }
    /* Control: the same input with alg HS256 verifies. */
    ck_assert_code(V(one, forge("HS256", "{\"alg\":\"HS256\"}", exp_payload(T0 + 600))), BK_OK);
    ck_assert_code(V(multi, forge("HS256", "{\"alg\":\"HS256\",\"kid\":\"a\"}", exp_payload(T0 + 600))), BK_OK);
}
END_TEST

START_TEST(alg_switch_hs256_hs512_same_secret)
{
    bk_jwt_keys_t *hs256 = set_of("k", "HS256", PRIV), *hs512 = set_of("k", "HS512", PRIV);
    const char *pl = exp_payload(T0 + 600);
    char *as512 = forge("HS512", "{\"alg\":\"HS512\",\"kid\":\"k\"}", pl);
    char *as256 = forge("HS256", "{\"alg\":\"HS256\",\"kid\":\"k\"}", pl);
    ck_assert_code(V(hs512, as512), BK_OK); /* properly signed: only the alg is wrong below */
    ck_assert_code(V(hs256, as256), BK_OK);
    ck_assert_code(V(hs256, as512), BK_EJWT_ALGORITHM);
    ck_assert_code(V(hs512, as256), BK_EJWT_ALGORITHM);
    ck_assert_code(V(hs256, forge("HS384", "{\"alg\":\"HS384\",\"kid\":\"k\"}", pl)), BK_EJWT_ALGORITHM);
    /* The same for RSA and EC: RS256 key, RS512 token; ES256 key, ES384 header. */
    ck_assert_code(V(set_of("k", "RS256", PUB), forge("RS512", "{\"alg\":\"RS512\",\"kid\":\"k\"}", pl)),
                   BK_EJWT_ALGORITHM);
    ck_assert_code(V(set_of("k", "RS256", PUB), forge("RS256", "{\"alg\":\"RS256\",\"kid\":\"k\"}", pl)), BK_OK);
    ck_assert_code(V(set_of("k", "ES256", PUB), forge("ES256", "{\"alg\":\"ES384\",\"kid\":\"k\"}", pl)),
                   BK_EJWT_ALGORITHM);
}
END_TEST

START_TEST(alg_confusion_rsa_public_key_as_hmac_secret)
{
    const char *pl = exp_payload(T0 + 600);
    static const char *const kids[] = {NULL, "rs"};
    for (int i = 0; i < 2; i++) {
        bk_jwt_keys_t *ks = set_of(kids[i], "RS256", PUB);
        char *h = b64s(kids[i] ? "{\"alg\":\"HS256\",\"kid\":\"rs\",\"typ\":\"JWT\"}"
                               : "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
        char *p = b64s(pl), *input = fmt("%s.%s", h, p);
        /* The PEM bytes exactly as configured, and without the final newline. */
        ck_assert_code(V(ks, tok3(h, p, sign_hmac("HS256", K.rsa_pub, strlen(K.rsa_pub), input))),
                       BK_EJWT_ALGORITHM);
        ck_assert_code(V(ks, tok3(h, p, sign_hmac("HS256", K.rsa_pub, strlen(K.rsa_pub) - 1, input))),
                       BK_EJWT_ALGORITHM);
        ck_assert_code(V(set_of(kids[i], "RS256", PRIV),
                         tok3(h, p, sign_hmac("HS256", K.rsa_priv, strlen(K.rsa_priv), input))),
                       BK_EJWT_ALGORITHM);
    }
    /* A mixed set: each kid keeps its own alg. */
    bk_jwt_keys_t *mixed = keyset();
    ck_assert_code(add(mixed, "hs", "HS256", PRIV, false), BK_OK);
    ck_assert_code(add(mixed, "rs", "RS256", PUB, false), BK_OK);
    ck_assert_code(add(mixed, "es", "ES256", PUB, false), BK_OK);
    char *p = b64s(pl), *h = b64s("{\"alg\":\"HS256\",\"kid\":\"rs\"}");
    ck_assert_code(V(mixed, tok3(h, p, sign_hmac("HS256", K.rsa_pub, strlen(K.rsa_pub), fmt("%s.%s", h, p)))),
                   BK_EJWT_ALGORITHM);
    h = b64s("{\"alg\":\"HS256\",\"kid\":\"es\"}");
    ck_assert_code(V(mixed, tok3(h, p, sign_hmac("HS256", K.p256_pub, strlen(K.p256_pub), fmt("%s.%s", h, p)))),
                   BK_EJWT_ALGORITHM);
    ck_assert_code(V(mixed, forge("RS256", "{\"alg\":\"RS256\",\"kid\":\"hs\"}", pl)), BK_EJWT_ALGORITHM);
    ck_assert_code(V(mixed, forge("RS256", "{\"alg\":\"RS256\",\"kid\":\"rs\"}", pl)), BK_OK);
    ck_assert_code(V(mixed, forge("HS256", "{\"alg\":\"HS256\",\"kid\":\"hs\"}", pl)), BK_OK);
}
END_TEST

/* ================================================================== attacks: kid */
START_TEST(kid_unknown_traversal_and_missing)
{
    bk_jwt_keys_t *ks = keyset();
    ck_assert_code(add(ks, "hs1", "HS256", PRIV, true), BK_OK);
    ck_assert_code(bk_jwt_keys_add(ks, "hs2", "HS256", "another secret of 32 bytes or so!", 33, false, NULL), BK_OK);
    const char *pl = exp_payload(T0 + 600);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\",\"kid\":\"hs1\"}", pl)), BK_OK);
    /* Each signed with the right secret: only the kid is wrong. */
    static const char *const bad[] = {"nope", "../../etc/passwd", "/etc/passwd", "keys/hs1", "hs1/", "./hs1",
                                      "hs", "hs1 ", "HS1", "hs10", "hs1\\u0000", "%2e%2e%2fhs1", "*"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int want = strstr(bad[i], "\\u0000") ? BK_EJWT_MALFORMED : BK_EJWT_UNKNOWN_KEY; /* NUL: not JSON we read */
        ck_assert_msg(V(ks, forge("HS256", fmt("{\"alg\":\"HS256\",\"kid\":\"%s\"}", bad[i]), pl)) == want,
                      "kid %s", bad[i]);
    }
    /* No kid, two keys: which one is not guessed. */
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\"}", pl)), BK_EJWT_UNKNOWN_KEY);
    /* kid of the wrong type. */
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\",\"kid\":1}", pl)), BK_EJWT_MALFORMED);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\",\"kid\":null}", pl)), BK_EJWT_MALFORMED);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\",\"kid\":[\"hs1\"]}", pl)), BK_EJWT_MALFORMED);
    /* A real kid, the other key's secret: the named key decides. */
    char *h = b64s("{\"alg\":\"HS256\",\"kid\":\"hs2\"}"), *p = b64s(pl);
    ck_assert_code(V(ks, tok3(h, p, sign_hmac("HS256", SECRET, sizeof SECRET, fmt("%s.%s", h, p)))),
                   BK_EJWT_SIGNATURE);
    ck_assert_code(V(ks, tok3(h, p, sign_hmac("HS256", "another secret of 32 bytes or so!", 33, fmt("%s.%s", h, p)))),
                   BK_OK);
    /* A set of one kid-less key: a token naming a kid is not matched to it. */
    ck_assert_code(V(set_of(NULL, "HS256", PRIV), forge("HS256", "{\"alg\":\"HS256\",\"kid\":\"x\"}", pl)),
                   BK_EJWT_UNKNOWN_KEY);
    /* A set of one key with a kid: a token without kid uses it. */
    ck_assert_code(V(set_of("only", "HS256", PRIV), forge("HS256", "{\"alg\":\"HS256\"}", pl)), BK_OK);
    /* jku / x5u / jwk headers are not keys: the set's key still decides. */
    ck_assert_code(V(ks, forge("HS256",
                               "{\"alg\":\"HS256\",\"kid\":\"hs1\",\"jku\":\"https://evil.example/jwks\","
                               "\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"}}",
                               pl)),
                   BK_OK);
    /* ... signed with the key the jwk header offers (AAAA: three zero bytes). */
    h = b64s("{\"alg\":\"HS256\",\"kid\":\"hs1\",\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"}}");
    ck_assert_code(V(ks, tok3(h, p, sign_hmac("HS256", "\0\0\0", 3, fmt("%s.%s", h, p)))), BK_EJWT_SIGNATURE);
}
END_TEST

/* ================================================================== attacks: time */
START_TEST(exp_and_leeway)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    IO.ttl_ns = 100 * SEC;
    char *tok = issue(ks, NULL); /* exp = T0 + 100 */
    ck_assert_int_eq(bk_clock_fake_advance(clk, 99 * SEC), BK_OK);
    VC(ks, tok, BK_OK);
    ck_assert_int_eq(bk_clock_fake_advance(clk, 1 * SEC), BK_OK); /* now == exp */
    VC(ks, tok, BK_EJWT_EXPIRED);
    VO.leeway_ns = 30 * SEC;
    VC(ks, tok, BK_OK);
    ck_assert_int_eq(bk_clock_fake_advance(clk, 29 * SEC), BK_OK); /* exp + 29 */
    VC(ks, tok, BK_OK);
    ck_assert_int_eq(bk_clock_fake_advance(clk, 1 * SEC), BK_OK); /* exp + 30: beyond the leeway */
    VC(ks, tok, BK_EJWT_EXPIRED);
    VO.leeway_ns = 0;
    ck_assert_int_eq(bk_clock_fake_advance(clk, 86400 * SEC), BK_OK);
    VC(ks, tok, BK_EJWT_EXPIRED);
    VO.leeway_ns = 86400 * SEC; /* the most allowed: a day */
    VC(ks, tok, BK_EJWT_EXPIRED);
    ck_assert_int_eq(bk_clock_fake_set_wall(clk, (T0 + 100 + 86399) * SEC), BK_OK);
    VC(ks, tok, BK_OK);
    VO.leeway_ns = 86401 * SEC; /* more would hide a broken clock, less than 0 shorten tokens */
    ck_assert_code(V(ks, tok), BK_EINVAL);
    VO.leeway_ns = -1;
    ck_assert_code(V(ks, tok), BK_EINVAL);
    VO.leeway_ns = 0;
    /* A forged exp one second in the past, one far in the past, and a real number. */
    ck_assert_int_eq(bk_clock_fake_set_wall(clk, T0 * SEC), BK_OK);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\"}", "{\"exp\":1699999999}")), BK_EJWT_EXPIRED);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\"}", "{\"exp\":0}")), BK_EJWT_EXPIRED);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\"}", "{\"exp\":-1e300}")), BK_EJWT_EXPIRED);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\"}", "{\"exp\":1700000000.5}")), BK_OK);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\"}", "{\"exp\":1700000000.0}")), BK_EJWT_EXPIRED);
}
END_TEST

START_TEST(nbf_and_iat_in_the_future)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    char *nbf = forge("HS256", "{\"alg\":\"HS256\"}", fmt("{\"exp\":%lld,\"nbf\":%lld}", T0 + 1000, T0 + 60));
    ck_assert_code(V(ks, nbf), BK_EJWT_NOT_YET_VALID);
    VO.leeway_ns = 59 * SEC;
    ck_assert_code(V(ks, nbf), BK_EJWT_NOT_YET_VALID);
    VO.leeway_ns = 60 * SEC;
    ck_assert_code(V(ks, nbf), BK_OK);
    VO.leeway_ns = 0;
    char *iat = forge("HS256", "{\"alg\":\"HS256\"}", fmt("{\"exp\":%lld,\"iat\":%lld}", T0 + 1000, T0 + 10));
    ck_assert_code(V(ks, iat), BK_EJWT_NOT_YET_VALID);
    VO.leeway_ns = 10 * SEC;
    ck_assert_code(V(ks, iat), BK_OK);
    VO.leeway_ns = 0;
    ck_assert_int_eq(bk_clock_fake_advance(clk, 10 * SEC), BK_OK); /* iat == now: fine */
    ck_assert_code(V(ks, iat), BK_OK);
    ck_assert_code(V(ks, nbf), BK_EJWT_NOT_YET_VALID);
    ck_assert_int_eq(bk_clock_fake_advance(clk, 50 * SEC), BK_OK); /* nbf == now: valid */
    ck_assert_code(V(ks, nbf), BK_OK);
    /* Issued with nbf, checked by a clock that is behind the issuer's. */
    IO.nbf = true;
    char *tok = issue(ks, NULL);
    ck_assert_int_eq(bk_clock_fake_set_wall(clk, (T0 + 60 - 5) * SEC), BK_OK);
    VC(ks, tok, BK_EJWT_NOT_YET_VALID);
    VO.leeway_ns = 5 * SEC;
    VC(ks, tok, BK_OK);
}
END_TEST

START_TEST(exp_missing_or_not_numeric)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    const char *h = "{\"alg\":\"HS256\"}";
    char *noexp = forge("HS256", h, "{\"sub\":\"alice\"}");
    ck_assert_code(V(ks, noexp), BK_EJWT_CLAIMS);
    VO.allow_no_exp = true;
    ck_assert_code(V(ks, noexp), BK_OK);
    ck_assert_code(V(ks, forge("HS256", h, "{}")), BK_OK);
    /* Not a number is malformed, with or without allow_no_exp. */
    static const char *const bad[] = {"\"1800000000\"", "true", "null", "[1800000000]", "{\"t\":1800000000}", "\"\""};
    for (int allow = 1; allow >= 0; allow--) {
        VO.allow_no_exp = allow;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            ck_assert_msg(V(ks, forge("HS256", h, fmt("{\"exp\":%s}", bad[i]))) == BK_EJWT_MALFORMED, "exp %s",
                          bad[i]);
            ck_assert_msg(V(ks, forge("HS256", h, fmt("{\"exp\":%lld,\"nbf\":%s}", T0 + 60, bad[i]))) ==
                              BK_EJWT_MALFORMED,
                          "nbf %s", bad[i]);
            ck_assert_msg(V(ks, forge("HS256", h, fmt("{\"exp\":%lld,\"iat\":%s}", T0 + 60, bad[i]))) ==
                              BK_EJWT_MALFORMED,
                          "iat %s", bad[i]);
        }
    }
}
END_TEST

/* ================================================================== attacks: iss, aud, required, typ */
START_TEST(issuer_checked)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    const char *h = "{\"alg\":\"HS256\"}";
    VO.iss = ISS;
    ck_assert_code(V(ks, issue(ks, NULL)), BK_OK);
    static const char *const bad[] = {"\"https://evil.example\"", "\"https://issuer.exampl\"",
                                      "\"https://issuer.example.evil\"", "\"HTTPS://ISSUER.EXAMPLE\"",
                                      "\"https://issuer.example\\u0000\"", "[\"https://issuer.example\"]", "42",
                                      "null", "\"\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int want = strstr(bad[i], "\\u0000") ? BK_EJWT_MALFORMED : BK_EJWT_ISSUER; /* NUL: not JSON we read */
        ck_assert_msg(V(ks, forge("HS256", h, fmt("{\"exp\":%lld,\"iss\":%s}", T0 + 60, bad[i]))) == want, "iss %s",
                      bad[i]);
    }
    ck_assert_code(V(ks, forge("HS256", h, exp_payload(T0 + 60))), BK_EJWT_ISSUER); /* missing */
    IO.iss = "https://evil.example";
    ck_assert_code(V(ks, issue(ks, NULL)), BK_EJWT_ISSUER);
    VO.iss = NULL; /* not checked */
    ck_assert_code(V(ks, issue(ks, NULL)), BK_OK);
}
END_TEST

START_TEST(audience_string_and_array)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    const char *h = "{\"alg\":\"HS256\"}";
    VO.aud = AUD;
    static const struct {
        const char *aud;
        int want;
    } cases[] = {
        {"\"api.example\"", BK_OK},
        {"[\"api.example\"]", BK_OK},
        {"[\"other\",\"api.example\"]", BK_OK},
        {"\"other\"", BK_EJWT_AUDIENCE},
        {"\"api.example.evil\"", BK_EJWT_AUDIENCE},
        {"\"api.exampl\"", BK_EJWT_AUDIENCE},
        {"\"API.EXAMPLE\"", BK_EJWT_AUDIENCE},
        {"[\"other\",\"third\"]", BK_EJWT_AUDIENCE},
        {"[]", BK_EJWT_AUDIENCE},
        {"[[\"api.example\"]]", BK_EJWT_AUDIENCE},
        {"{\"api.example\":true}", BK_EJWT_AUDIENCE},
        {"42", BK_EJWT_AUDIENCE},
        {"null", BK_EJWT_AUDIENCE},
        {"\"\"", BK_EJWT_AUDIENCE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = V(ks, forge("HS256", h, fmt("{\"exp\":%lld,\"aud\":%s}", T0 + 60, cases[i].aud)));
        ck_assert_msg(rc == cases[i].want, "aud %s: got %s", cases[i].aud, bk_err_name(rc));
    }
    ck_assert_code(V(ks, forge("HS256", h, exp_payload(T0 + 60))), BK_EJWT_AUDIENCE); /* missing */
    ck_assert_code(V(ks, issue(ks, NULL)), BK_OK);
    IO.aud = "other";
    ck_assert_code(V(ks, issue(ks, NULL)), BK_EJWT_AUDIENCE);
    VO.aud = NULL;
    ck_assert_code(V(ks, issue(ks, NULL)), BK_OK);
}
END_TEST

START_TEST(required_claims_and_typ)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    static const char *const req[] = {"sub", "role", NULL};
    VO.required = req;
    ck_assert_code(V(ks, issue(ks, NULL)), BK_EJWT_CLAIMS); /* no role */
    ck_assert_code(V(ks, issue(ks, "{\"role\":\"admin\"}")), BK_OK);
    IO.sub = NULL;
    ck_assert_code(V(ks, issue(ks, "{\"role\":\"admin\"}")), BK_EJWT_CLAIMS); /* no sub */
    VO.required = NULL;

    const char *pl = exp_payload(T0 + 60);
    VO.typ = "JWT";
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", pl)), BK_OK);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\",\"typ\":\"jwt\"}", pl)), BK_OK);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", pl)), BK_EJWT_CLAIMS);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\",\"typ\":\"JWTX\"}", pl)), BK_EJWT_CLAIMS);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\",\"typ\":1}", pl)), BK_EJWT_CLAIMS);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\"}", pl)), BK_EJWT_CLAIMS);
    /* typ in the payload is not the header's. */
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\"}", fmt("{\"exp\":%lld,\"typ\":\"JWT\"}", T0 + 60))),
                   BK_EJWT_CLAIMS);
    VO.typ = "at+jwt";
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\",\"typ\":\"AT+JWT\"}", pl)), BK_OK);
    ck_assert_code(V(ks, issue(ks, NULL)), BK_EJWT_CLAIMS); /* ours say JWT */
    VO.typ = NULL;
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", pl)), BK_OK);
}
END_TEST

/* ================================================================== attacks: tampering */
START_TEST(payload_modified_after_signing)
{
    static const char *const algs[] = {"HS256", "RS256", "ES256", "ES384"};
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        bk_jwt_keys_t *ks = set_of("k", algs[i], PRIV);
        char *tok = issue(ks, "{\"role\":\"user\"}"), *other = issue(ks, "{\"role\":\"admin\"}");
        VC(ks, tok, BK_OK);
        /* Decode, change a claim, re-encode, keep the signature. */
        json_t *body = json_deep_copy(seg_json(tok, 1));
        gcj(body);
        ck_assert_int_eq(json_object_set_new(body, "role", json_string("admin")), 0);
        char *text = gc(json_dumps(body, JSON_COMPACT));
        VC(ks, tok3(seg(tok, 0), b64s(text), seg(tok, 2)), BK_EJWT_SIGNATURE);
        ck_assert_int_eq(json_object_set_new(body, "role", json_string("user")), 0);
        ck_assert_int_eq(json_object_set_new(body, "exp", json_integer(T0 + 999999)), 0);
        VC(ks, tok3(seg(tok, 0), b64s(gc(json_dumps(body, JSON_COMPACT))), seg(tok, 2)), BK_EJWT_SIGNATURE);
        /* Another token's signature; the header changed; one bit of the signature. */
        VC(ks, tok3(seg(tok, 0), seg(other, 1), seg(tok, 2)), BK_EJWT_SIGNATURE);
        json_t *hdr = json_deep_copy(seg_json(tok, 0));
        gcj(hdr);
        json_object_set_new(hdr, "x5u", json_string("https://evil.example/"));
        VC(ks, tok3(b64s(gc(json_dumps(hdr, JSON_COMPACT))), seg(tok, 1), seg(tok, 2)), BK_EJWT_SIGNATURE);
        const char *s = seg(tok, 2);
        size_t n;
        unsigned char *sig = unb64u(s, strlen(s), &n);
        for (size_t bit = 0; bit < 8 * n; bit += 8 * n / 5 + 1) {
            sig[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            VC(ks, tok3(seg(tok, 0), seg(tok, 1), b64u(sig, n)), BK_EJWT_SIGNATURE);
            sig[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
        VC(ks, tok3(seg(tok, 0), seg(tok, 1), b64u(sig, n)), BK_OK);
        VC(ks, tok3(seg(tok, 0), seg(tok, 1), b64u(sig, n - 1)), BK_EJWT_SIGNATURE); /* one byte short */
    }
}
END_TEST

/* ================================================================== attacks: structure */
START_TEST(truncated_and_extra_segments)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    char *tok = issue(ks, NULL), *h = seg(tok, 0), *p = seg(tok, 1), *s = seg(tok, 2);
    VC(ks, tok, BK_OK);
    const char *bad[] = {
        fmt("%s.%s", h, p), fmt("%s.%s.", h, p), h, fmt("%s.", h), "", ".", "..", "...",
        fmt("%s.%s", h, s),                                              /* signature as payload */
        fmt("%s.%s.%s.%s", h, p, s, s), fmt("%s.%s.%s.", h, p, s),        /* 4 parts */
        fmt("%s.%s.%s.%s.%s", h, p, s, s, s), fmt("%s.%s.%s..", h, p, s), /* 5 parts, JWE-shaped */
        fmt(".%s.%s", h, s), fmt("%s..%s", h, s), fmt(".%s.%s", p, s),   /* empty segments */
        fmt("%s.%s.", h, p), fmt("..%s", s), fmt("%s..", h),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = V(ks, bad[i]);
        ck_assert_msg(rc == BK_EJWT_MALFORMED, "case %zu \"%s\": got %s", i, bad[i], bk_err_name(rc));
    }
    /* The length given, not the NUL, bounds the token: a prefix is not the token. */
    ck_assert_code(bk_jwt_verify(ks, &VO, tok, strlen(h) + 1 + strlen(p), NULL), BK_EJWT_MALFORMED);
    ck_assert_code(bk_jwt_verify(ks, &VO, tok, 0, NULL), BK_EJWT_MALFORMED);
    ck_assert_code(bk_jwt_verify(ks, &VO, NULL, 0, NULL), BK_EINVAL);
    ck_assert_code(bk_jwt_verify(NULL, &VO, tok, strlen(tok), NULL), BK_EINVAL);
}
END_TEST

/* Replaces (or inserts, when insert) at position at of segment i the text x, then
 * signs anew unless the signature itself was changed. */
static char *alter(const char *h, const char *p, const char *s, int i, size_t at, const char *x, bool insert)
{
    const char *segs[3] = {h, p, s};
    const char *t = segs[i];
    segs[i] = fmt("%.*s%s%s", (int)at, t, x, t + at + (insert ? 0 : 1));
    return i == 2 ? tok3(segs[0], segs[1], segs[2]) : forge_segs("HS256", segs[0], segs[1]);
}

START_TEST(non_base64url_characters_in_each_segment)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    char *h = b64s(json_mod3("{\"alg\":\"HS256\",\"typ\":\"JWT\"", 1)); /* len % 4 == 2 */
    char *p = b64s(json_mod3(fmt("{\"exp\":%lld,\"sub\":\"alice\"", T0 + 600), 2)); /* len % 4 == 3 */
    char *tok = forge_segs("HS256", h, p), *s = seg(tok, 2);                       /* 43 chars, % 4 == 3 */
    ck_assert_uint_eq(strlen(h) % 4, 2);
    ck_assert_uint_eq(strlen(p) % 4, 3);
    ck_assert_uint_eq(strlen(s) % 4, 3);
    ck_assert_code(V(ks, tok), BK_OK);
    ck_assert_code(V(ks, alter(h, p, s, 1, 0, "", true)), BK_OK); /* alter() itself changes nothing */
    static const char *const bad[] = {"+", "/", "=", " ", "\t", "\n", "\r", "%", "*", "~", "!", "\\", "\"",
                                      "\x7f", "\x80", "\xff", "\xc3\xa9"};
    const char *segs[3] = {h, p, s};
    for (int i = 0; i < 3; i++) {
        size_t mid = strlen(segs[i]) / 2;
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            ck_assert_msg(V(ks, alter(h, p, s, i, mid, bad[b], false)) == BK_EJWT_MALFORMED, "segment %d: 0x%02x", i,
                          (unsigned char)bad[b][0]);
            ck_assert_msg(V(ks, alter(h, p, s, i, mid, bad[b], true)) == BK_EJWT_MALFORMED,
                          "segment %d: 0x%02x inserted", i, (unsigned char)bad[b][0]);
            ck_assert_msg(V(ks, alter(h, p, s, i, 0, bad[b], true)) == BK_EJWT_MALFORMED,
                          "segment %d: 0x%02x leading", i, (unsigned char)bad[b][0]);
        }
        /* Padding as base64 (not base64url) would have it. */
        const char *pad = strlen(segs[i]) % 4 == 2 ? "==" : "=";
        ck_assert_msg(V(ks, alter(h, p, s, i, strlen(segs[i]), pad, true)) == BK_EJWT_MALFORMED, "segment %d padded",
                      i);
        /* A NUL inside the length (header and payload signed with it). */
        char *t = gc(strdup(tok));
        size_t off = i == 0 ? 3 : i == 1 ? strlen(h) + 3 : strlen(h) + strlen(p) + 5, sigat = strlen(h) + strlen(p) + 2;
        t[off] = '\0';
        if (i < 2) {
            unsigned char mac[EVP_MAX_MD_SIZE];
            unsigned int maclen = 0;
            ck_assert_ptr_nonnull(HMAC(EVP_sha256(), SECRET, (int)sizeof SECRET, (unsigned char *)t, sigat - 1, mac,
                                       &maclen));
            memcpy(t + sigat, b64u(mac, maclen), strlen(s));
        }
        ck_assert_code(bk_jwt_verify(ks, &VO, t, strlen(tok), NULL), BK_EJWT_MALFORMED);
    }
    /* Whitespace around the whole token, as a careless Authorization parser leaves it. */
    ck_assert_code(V(ks, fmt(" %s", tok)), BK_EJWT_MALFORMED);
    ck_assert_code(V(ks, fmt("%s ", tok)), BK_EJWT_MALFORMED);
    ck_assert_code(V(ks, fmt("%s\n", tok)), BK_EJWT_MALFORMED);
    ck_assert_code(V(ks, fmt("%s\r\n", tok)), BK_EJWT_MALFORMED);
    /* The standard alphabet for the whole signature (as a base64 encoder would). */
    char *std = gc(strdup(s));
    bool changed = false;
    for (char *c = std; *c; c++)
        if (*c == '-' || *c == '_')
            *c = *c == '-' ? '+' : '/', changed = true;
    if (changed)
        ck_assert_code(V(ks, tok3(h, p, std)), BK_EJWT_MALFORMED);
}
END_TEST

START_TEST(non_canonical_encodings)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    char *h = b64s(json_mod3("{\"alg\":\"HS256\"", 1));                         /* % 4 == 2: 4 unused bits */
    char *p = b64s(json_mod3(fmt("{\"exp\":%lld", T0 + 600), 2));                /* % 4 == 3: 2 unused bits */
    char *tok = forge_segs("HS256", h, p), *s = seg(tok, 2);                     /* % 4 == 3 */
    ck_assert_code(V(ks, tok), BK_OK);
    const char *segs[3] = {h, p, s};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(segs[i]);
        int v = b64v(segs[i][n - 1]);
        ck_assert_int_eq(v & (n % 4 == 2 ? 0xF : 0x3), 0);
        /* The same bytes to a lenient decoder, another string on the wire. */
        for (int bits = 1; bits <= (n % 4 == 2 ? 0xF : 0x3); bits++) {
            char last[2] = {B64[v | bits], '\0'};
            char *t = alter(h, p, s, i, n - 1, last, false);
            const char *alt = seg(t, i);
            size_t n1, n2;
            unsigned char *d1 = unb64u(segs[i], n, &n1), *d2 = unb64u(alt, n, &n2);
            ck_assert_uint_eq(n1, n2);
            ck_assert_mem_eq(d1, d2, n1);
            ck_assert_msg(V(ks, t) == BK_EJWT_MALFORMED, "segment %d last char %c", i, last[0]);
        }
        /* A length no byte string encodes to (% 4 == 1). */
        ck_assert_msg(V(ks, alter(h, p, s, i, n, n % 4 == 2 ? "AAA" : "AA", true)) == BK_EJWT_MALFORMED,
                      "segment %d of length 1 mod 4", i);
    }
}
END_TEST

START_TEST(oversized_tokens)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    char *blob = gc(malloc(9001));
    memset(blob, 'a', 9000);
    blob[9000] = '\0';
    char *big = issue(ks, fmt("{\"blob\":\"%s\"}", blob));
    ck_assert_uint_gt(strlen(big), 9000);
    ck_assert_code(V(ks, big), BK_EJWT_MALFORMED); /* default max_len 8192 */
    VO.max_len = 16384;
    ck_assert_code(V(ks, big), BK_OK); /* only its length was wrong */

    char *tok = issue(ks, NULL);
    ck_assert_uint_gt(strlen(tok), 100);
    VO.max_len = 100;
    ck_assert_code(V(ks, tok), BK_EJWT_MALFORMED);
    VO.max_len = strlen(tok);
    ck_assert_code(V(ks, tok), BK_OK);
    VO.max_len = strlen(tok) - 1;
    ck_assert_code(V(ks, tok), BK_EJWT_MALFORMED);

    /* A megabyte of junk with no limit: refused, nothing read out of bounds. */
    VO.max_len = SIZE_MAX;
    size_t mb = 1 << 20;
    char *junk = gc(malloc(mb + 1));
    memset(junk, 'A', mb);
    junk[mb] = '\0';
    ck_assert_code(V(ks, junk), BK_EJWT_MALFORMED);
    junk[mb / 3] = '.', junk[2 * mb / 3] = '.';
    ck_assert_code(V(ks, junk), BK_EJWT_MALFORMED);
    memset(junk, '.', mb);
    ck_assert_code(V(ks, junk), BK_EJWT_MALFORMED);
    /* ... and a real 200 KB token verifies when allowed. */
    char *huge = gc(malloc(200001));
    memset(huge, 'b', 200000);
    huge[200000] = '\0';
    ck_assert_code(V(ks, issue(ks, fmt("{\"blob\":\"%s\"}", huge))), BK_OK);
}
END_TEST

START_TEST(duplicate_json_keys)
{
    bk_jwt_keys_t *ks = set_of("k", "HS256", PRIV);
    const char *pl = exp_payload(T0 + 600);
    static const char *const headers[] = {
        "{\"alg\":\"HS256\",\"alg\":\"none\"}", "{\"alg\":\"none\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{\"alg\":\"HS256\",\"\\u0061lg\":\"none\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k\",\"kid\":\"other\"}", "{\"alg\":\"HS256\",\"x\":{\"a\":1,\"a\":2}}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++)
        ck_assert_msg(V(ks, forge("HS256", headers[i], pl)) == BK_EJWT_MALFORMED, "header %s", headers[i]);
    const char *h = "{\"alg\":\"HS256\"}";
    const char *payloads[] = {
        fmt("{\"exp\":%lld,\"sub\":\"alice\",\"sub\":\"admin\"}", T0 + 600),
        fmt("{\"exp\":%lld,\"exp\":%lld}", T0 + 600, T0 + 9999999),
        fmt("{\"exp\":%lld,\"aud\":\"x\",\"\\u0061ud\":\"api.example\"}", T0 + 600),
        fmt("{\"exp\":%lld,\"o\":{\"role\":\"user\",\"role\":\"admin\"}}", T0 + 600),
    };
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++)
        ck_assert_msg(V(ks, forge("HS256", h, payloads[i])) == BK_EJWT_MALFORMED, "payload %s", payloads[i]);
    ck_assert_code(V(ks, forge("HS256", h, pl)), BK_OK);
}
END_TEST

START_TEST(header_and_payload_must_be_json_objects_and_no_crit)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    const char *pl = exp_payload(T0 + 600);
    static const char *const headers[] = {
        "[\"HS256\"]", "[{\"alg\":\"HS256\"}]", "\"HS256\"", "alg=HS256", "{\"alg\":\"HS256\"", "{\"alg\":\"HS256\"}x",
        "{\"alg\":\"HS256\"}{}", "{}", "{\"alg\":256}", "{\"alg\":null}", "{\"alg\":[\"HS256\"]}", "null", "1", "",
        "{'alg':'HS256'}", "{\"alg\":\"HS256\",}", "\xef\xbb\xbf{\"alg\":\"HS256\"}", "{\"alg\":\"HS\xff\"}",
        /* RFC 7515 4.1.11: an extension we do not understand is critical. */
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "{\"alg\":\"HS256\",\"crit\":[]}",
        "{\"alg\":\"HS256\",\"crit\":null}", "{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        /* An empty header text encodes to an empty segment: also malformed. */
        int rc = V(ks, forge("HS256", headers[i], pl));
        ck_assert_msg(rc == BK_EJWT_MALFORMED, "header %s: got %s", headers[i], bk_err_name(rc));
    }
    const char *h = "{\"alg\":\"HS256\"}";
    const char *payloads[] = {
        "[1]", fmt("[{\"exp\":%lld}]", T0 + 600), "\"claims\"", "42", "null", "not json",
        fmt("{\"exp\":%lld", T0 + 600), fmt("{\"exp\":%lld}x", T0 + 600),
        fmt("{\"exp\":%lld,\"sub\":\"\xff\"}", T0 + 600),                     /* not UTF-8 */
        fmt("{\"exp\":%lld,\"sub\":\"alice\\u0000admin\"}", T0 + 600),        /* NUL */
        fmt("{\"exp\":%lld,\"sub\":\"\\ud800\"}", T0 + 600),                  /* lone surrogate */
    };
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        int rc = V(ks, forge("HS256", h, payloads[i]));
        ck_assert_msg(rc == BK_EJWT_MALFORMED, "payload %s: got %s", payloads[i], bk_err_name(rc));
    }
    ck_assert_code(V(ks, forge("HS256", h, pl)), BK_OK);
    /* Unsigned garbage in the payload is never parsed: the signature fails first. */
    ck_assert_code(V(ks, tok3(b64s(h), b64s("not json"), "AAAA")), BK_EJWT_SIGNATURE);
}
END_TEST

/* ================================================================== attacks: ECDSA encoding */
START_TEST(es256_der_signature_refused)
{
    bk_jwt_keys_t *ks = set_of("e", "ES256", PUB);
    char *h = b64s("{\"alg\":\"ES256\",\"kid\":\"e\"}"), *p = b64s(exp_payload(T0 + 600));
    char *input = fmt("%s.%s", h, p);
    size_t len = 0;
    unsigned char *der = NULL;
    for (int i = 0; i < 200 && len != 71; i++)
        der = der_sign(K.p256, EVP_sha256(), input, &len); /* 70..72 bytes by the leading zeros of r and s */
    ck_assert_uint_eq(len, 71);
    ck_assert_code(V(ks, tok3(h, p, b64u(der, len))), BK_EJWT_SIGNATURE);
    unsigned char *raw = der_to_raw(der, len, 32);
    ck_assert_code(V(ks, tok3(h, p, b64u(raw, 64))), BK_OK); /* the same signature, as JWS has it */
    ck_assert_code(V(ks, tok3(h, p, b64u(raw, 63))), BK_EJWT_SIGNATURE);
    unsigned char longer[65];
    memcpy(longer, raw, 64);
    longer[64] = 0;
    ck_assert_code(V(ks, tok3(h, p, b64u(longer, 65))), BK_EJWT_SIGNATURE);
    unsigned char swapped[64], zero[64] = {0};
    memcpy(swapped, raw + 32, 32);
    memcpy(swapped + 32, raw, 32);
    ck_assert_code(V(ks, tok3(h, p, b64u(swapped, 64))), BK_EJWT_SIGNATURE);
    ck_assert_code(V(ks, tok3(h, p, b64u(zero, 64))), BK_EJWT_SIGNATURE);
    /* ES384 wants 96 bytes: a 64-byte one is refused, the right one verifies. */
    bk_jwt_keys_t *ks384 = set_of("e", "ES384", PUB);
    char *h384 = b64s("{\"alg\":\"ES384\",\"kid\":\"e\"}"), *in384 = fmt("%s.%s", h384, p);
    unsigned char *d384 = der_sign(K.p384, EVP_sha384(), in384, &len);
    unsigned char *r384 = der_to_raw(d384, len, 48);
    ck_assert_code(V(ks384, tok3(h384, p, b64u(r384, 96))), BK_OK);
    ck_assert_code(V(ks384, tok3(h384, p, b64u(r384, 64))), BK_EJWT_SIGNATURE);
    ck_assert_code(V(ks384, tok3(h384, p, b64u(d384, len))), BK_EJWT_SIGNATURE);
}
END_TEST

/* ================================================================== revocation */
struct hook {
    const char *revoked;
    int fail;
    int calls;
    char seen[64];
};

static int hook_fn(const char *jti, void *ud)
{
    struct hook *h = ud;
    h->calls++;
    snprintf(h->seen, sizeof h->seen, "%s", jti);
    if (h->fail)
        return h->fail;
    return h->revoked && strcmp(jti, h->revoked) == 0 ? BK_EJWT_REVOKED : BK_OK;
}

START_TEST(revocation_hook)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    char *a = issue(ks, NULL), *b = issue(ks, NULL);
    const char *jti_a = json_str(VC(ks, a, BK_OK), "jti"), *jti_b = json_str(VC(ks, b, BK_OK), "jti");
    struct hook hk = {.revoked = jti_a};
    VO.revoked = hook_fn;
    VO.revoked_ud = &hk;
    VC(ks, a, BK_EJWT_REVOKED);
    ck_assert_int_eq(hk.calls, 1);
    ck_assert_str_eq(hk.seen, jti_a);
    VC(ks, b, BK_OK);
    ck_assert_int_eq(hk.calls, 2);
    ck_assert_str_eq(hk.seen, jti_b);
    /* A failed lookup refuses the token with its own code. */
    hk.fail = BK_EUNAVAIL;
    VC(ks, b, BK_EUNAVAIL);
    hk.fail = BK_ETIMEDOUT;
    VC(ks, b, BK_ETIMEDOUT);
    hk.fail = 0;
    ck_assert_int_eq(hk.calls, 4);
    /* No jti, or not a string: cannot be cleared (CLAIMS), the hook is not asked. */
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\"}", exp_payload(T0 + 60))), BK_EJWT_CLAIMS);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\"}", fmt("{\"exp\":%lld,\"jti\":5}", T0 + 60))),
                   BK_EJWT_CLAIMS);
    ck_assert_code(V(ks, forge("HS256", "{\"alg\":\"HS256\"}", fmt("{\"exp\":%lld,\"jti\":\"x\"}", T0 + 60))), BK_OK);
    ck_assert_int_eq(hk.calls, 5);
    /* Nothing unsigned or expired reaches the hook. */
    VC(ks, tok3(seg(b, 0), seg(a, 1), seg(b, 2)), BK_EJWT_SIGNATURE);
    VO.iss = "someone else";
    VC(ks, b, BK_EJWT_ISSUER);
    VO.iss = NULL;
    ck_assert_int_eq(bk_clock_fake_advance(clk, 600 * SEC), BK_OK);
    VC(ks, b, BK_EJWT_EXPIRED);
    ck_assert_int_eq(hk.calls, 5);
}
END_TEST

/* ================================================================== ECDSA: low s, and the twin */
static void bn_free_(void *p)
{
    BN_free(p);
}

/* The order n of a test key's curve. */
static BIGNUM *ec_order(EVP_PKEY *pk)
{
    BIGNUM *n = NULL;
    ck_assert_int_eq(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_ORDER, &n), 1);
    return gc_with(n, bn_free_);
}

/* The raw r || s of an ES token, 2 * half bytes. */
static unsigned char *es_sig(const char *tok, size_t half)
{
    const char *s = seg(tok, 2);
    size_t n = 0;
    unsigned char *raw = unb64u(s, strlen(s), &n);
    ck_assert_uint_eq(n, 2 * half);
    return raw;
}

/* Whether s, the second half of r || s, is above n / 2 (n is odd: above n >> 1). */
static bool s_is_high(const unsigned char *raw, size_t half, const BIGNUM *n)
{
    BIGNUM *s = BN_bin2bn(raw + half, (int)half, NULL), *lim = BN_dup(n);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(lim);
    ck_assert_int_eq(BN_rshift1(lim, lim), 1);
    bool high = BN_cmp(s, lim) > 0;
    BN_free(s);
    BN_free(lim);
    return high;
}

/* tok with its signature (r, s) replaced by (r, n - s): a second signature of
 * the same bytes, valid for any ECDSA verifier. */
static char *es_twin(const char *tok, size_t half, const BIGNUM *n)
{
    unsigned char *raw = es_sig(tok, half);
    BIGNUM *s = BN_bin2bn(raw + half, (int)half, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(BN_sub(s, n, s), 1);
    ck_assert_int_eq(BN_bn2binpad(s, raw + half, (int)half), (int)half);
    BN_free(s);
    return tok3(seg(tok, 0), seg(tok, 1), b64u(raw, 2 * half));
}

static const struct {
    const char *alg;
    size_t half; /* bytes of r and of s */
} ES[] = {{"ES256", 32}, {"ES384", 48}};

/* Each signature has a random nonce, so s is high half the time unless the issuer
 * folds it: 64 tokens all low by chance is 2^-64. */
START_TEST(es_issuer_signs_low_s)
{
    for (size_t a = 0; a < 2; a++) {
        const BIGNUM *n = ec_order(a == 0 ? K.p256 : K.p384);
        bk_jwt_keys_t *ks = set_of("e", ES[a].alg, PRIV);
        for (int i = 0; i < 64; i++) {
            char *tok = issue(ks, NULL);
            ck_assert_msg(!s_is_high(es_sig(tok, ES[a].half), ES[a].half, n), "%s token %d: s > n/2", ES[a].alg, i);
            VC(ks, tok, BK_OK); /* the folded signature is still a signature */
        }
    }
}
END_TEST

/* By design: verify takes the (r, n - s) twin of a token, since other issuers may
 * send either form. It carries the same claims and jti, so a revocation keyed on
 * jti refuses both, where one keyed on the token string would miss the twin. */
START_TEST(es_high_s_twin_verifies_same_jti)
{
    for (size_t a = 0; a < 2; a++) {
        const BIGNUM *n = ec_order(a == 0 ? K.p256 : K.p384);
        bk_jwt_keys_t *ks = set_of("e", ES[a].alg, PRIV);
        char *tok = issue(ks, "{\"role\":\"admin\"}");
        char *twin = es_twin(tok, ES[a].half, n);
        ck_assert_str_ne(twin, tok);
        ck_assert(s_is_high(es_sig(twin, ES[a].half), ES[a].half, n));
        json_t *c = VC(ks, tok, BK_OK), *ct = VC(ks, twin, BK_OK);
        ck_assert(json_equal(c, ct));
        VC(set_of("e", ES[a].alg, PUB), twin, BK_OK);

        struct hook hk = {.revoked = json_str(c, "jti")};
        VO.revoked = hook_fn;
        VO.revoked_ud = &hk;
        VC(ks, twin, BK_EJWT_REVOKED);
        ck_assert_str_eq(hk.seen, json_str(c, "jti"));
        VC(ks, tok, BK_EJWT_REVOKED);
        VO.revoked = NULL;
    }
}
END_TEST

/* ================================================================== issue and key set refusals */
START_TEST(issue_refusals)
{
    bk_jwt_keys_t *ks = set_of("k", "HS256", PRIV);
    static const char *const reg[] = {"iat", "exp", "nbf", "iss", "aud", "sub", "jti"};
    for (size_t i = 0; i < sizeof reg / sizeof reg[0]; i++) {
        json_t *c = gcj(json_pack("{s:s, s:i}", "role", "admin", reg[i], 1));
        char *tok = (char *)"untouched";
        ck_assert_msg(bk_jwt_issue(ks, &IO, c, &tok, NULL) == BK_EINVAL, "claim %s overrides", reg[i]);
        ck_assert_ptr_null(tok);
    }
    char *tok = NULL;
    IO.iss = IO.aud = IO.sub = NULL; /* registered claims the options leave out are still the caller's to refuse */
    ck_assert_code(bk_jwt_issue(ks, &IO, gcj(json_pack("{s:s}", "iss", "me")), &tok, NULL), BK_EINVAL);
    ck_assert_code(bk_jwt_issue(ks, &IO, gcj(json_pack("{s:n}", "aud")), &tok, NULL), BK_EINVAL);
    /* Not an object, a bad ttl, a bad option string. */
    ck_assert_code(bk_jwt_issue(ks, &IO, gcj(json_pack("[s]", "x")), &tok, NULL), BK_EINVAL);
    IO.ttl_ns = -1;
    ck_assert_code(bk_jwt_issue(ks, &IO, NULL, &tok, NULL), BK_EINVAL);
    IO.ttl_ns = SEC - 1; /* rounds down to 0 s: a token born expired */
    ck_assert_code(bk_jwt_issue(ks, &IO, NULL, &tok, NULL), BK_EINVAL);
    IO.ttl_ns = INT64_MAX; /* exp would not fit */
    ck_assert_code(bk_jwt_issue(ks, &IO, NULL, &tok, NULL), BK_EINVAL);
    IO.ttl_ns = (10LL * 366 * 86400 + 1) * SEC; /* over ten years */
    ck_assert_code(bk_jwt_issue(ks, &IO, NULL, &tok, NULL), BK_EINVAL);
    IO.ttl_ns = 10LL * 365 * 86400 * SEC;
    ck_assert_int_eq(json_int(VC(ks, issue(ks, NULL), BK_OK), "exp"), T0 + 10LL * 365 * 86400);
    IO.ttl_ns = 600 * SEC;
    IO.sub = "\xff\xfe";
    ck_assert_code(bk_jwt_issue(ks, &IO, NULL, &tok, NULL), BK_EINVAL);
    IO.sub = NULL;
    ck_assert_code(bk_jwt_issue(ks, &IO, NULL, NULL, NULL), BK_EINVAL);
    ck_assert_code(bk_jwt_issue(NULL, &IO, NULL, &tok, NULL), BK_EINVAL);
    ck_assert_ptr_null(tok);
    /* Other claims pass through, and the registered ones are the issuer's. */
    IO.sub = "alice";
    json_t *c = VC(ks, issue(ks, "{\"sub_role\":\"x\",\"EXP\":1,\"nested\":{\"exp\":1}}"), BK_OK);
    ck_assert_int_eq(json_int(c, "exp"), T0 + 600);
    ck_assert_int_eq(json_int(c, "EXP"), 1);
    ck_assert_str_eq(json_str(c, "sub"), "alice");
}
END_TEST

/* ================================================================== issue: UTF-8 and the shape of claims */
/* bk_jwt_issue's code for these claims; the token (kept for teardown) in *out. */
static int issue_code(const bk_jwt_keys_t *ks, const json_t *claims, char **out)
{
    char *tok = (char *)"untouched";
    int rc = bk_jwt_issue(ks, &IO, claims, &tok, NULL);
    if (rc == BK_OK)
        gc(tok);
    else
        ck_assert_ptr_null(tok);
    if (out)
        *out = tok;
    return rc;
}

/* {name: v}, the member set without jansson's UTF-8 check. */
static json_t *obj1(const char *name, size_t len, json_t *v)
{
    json_t *o = json_object();
    ck_assert_ptr_nonnull(o);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(json_object_setn_new_nocheck(o, name, len, v), 0);
    return o;
}

static json_t *arr2(json_t *a, json_t *b)
{
    json_t *v = json_array();
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(json_array_append_new(v, a), 0);
    ck_assert_int_eq(json_array_append_new(v, b), 0);
    return v;
}

#define KEY(s) (s), sizeof(s) - 1 /* a literal member name and its length, NULs included */
#define CAFE "caf\xc3\xa9"          /* café */
#define NIHON "\xe6\x97\xa5\xe6\x9c\xac" /* 日本 */

START_TEST(claims_must_be_utf8)
{
    bk_jwt_keys_t *ks = set_of("k", "HS256", PRIV);
    json_t *bad[] = {
        /* string values, at the top and nested in objects and arrays */
        obj1(KEY("v"), json_string_nocheck("\xff")),
        obj1(KEY("v"), json_stringn_nocheck("ok\0\xff", 4)), /* past a NUL: checked by length */
        obj1(KEY("a"), obj1(KEY("b"), obj1(KEY("c"), json_string_nocheck("caf\xc3")))), /* truncated */
        obj1(KEY("a"), arr2(json_integer(1), arr2(json_string("ok"), json_string_nocheck("\xc0\xaf")))), /* overlong */
        obj1(KEY("a"), arr2(obj1(KEY("x"), json_string_nocheck("\xed\xa0\x80")), json_null())), /* surrogate */
        /* member names, at the top and nested */
        obj1(KEY("\xff"), json_true()),
        obj1(KEY("\xf8\x88\x80\x80\x80"), json_true()), /* a five-byte form */
        obj1(KEY("a"), obj1(KEY("\xf4\x90\x80\x80"), json_integer(1))), /* above U+10FFFF */
        obj1(KEY("a"), arr2(json_true(), obj1(KEY("\xe6\x97"), json_integer(1)))),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = issue_code(ks, gcj(bad[i]), NULL);
        ck_assert_msg(rc == BK_EINVAL, "claims %zu: got %s, want BK_EINVAL", i, bk_err_name(rc));
    }
    /* Non-ASCII UTF-8 goes through, and comes back as it was. */
    json_t *good = gcj(json_pack("{s:s, s:[s, {s:s}]}", "name", CAFE, NIHON, NIHON, "\xc3\xbc" /* ü */,
                                 "\xe2\x82\xac\xf0\x9f\x94\x91" /* € and U+1F511, four bytes */));
    char *tok;
    ck_assert_code(issue_code(ks, good, &tok), BK_OK);
    json_t *c = VC(ks, tok, BK_OK);
    ck_assert_str_eq(json_str(c, "name"), CAFE);
    ck_assert(json_equal(json_object_get(c, NIHON), json_object_get(good, NIHON)));
}
END_TEST

/* A name with a NUL has no JSON text verify reads, and at the top it was cut at
 * the NUL: "exp\0" passed the check for registered claims, then replaced exp. */
START_TEST(claim_names_and_values_with_nul_refused)
{
    bk_jwt_keys_t *ks = set_of("k", "HS256", PRIV);
    ck_assert_code(issue_code(ks, gcj(obj1(KEY("exp\0"), json_integer(T0 + 86400))), NULL), BK_EINVAL);
    ck_assert_code(issue_code(ks, gcj(obj1(KEY("iss\0x"), json_string("evil"))), NULL), BK_EINVAL);
    ck_assert_code(issue_code(ks, gcj(obj1(KEY("a"), obj1(KEY("k\0"), json_true()))), NULL), BK_EINVAL);
    ck_assert_code(issue_code(ks, gcj(obj1(KEY("a"), arr2(json_true(), obj1(KEY("\0"), json_true())))), NULL),
                   BK_EINVAL);
    /* A NUL inside a value: verify would refuse the token (and strcmp cut it). */
    ck_assert_code(issue_code(ks, gcj(obj1(KEY("k"), json_stringn("a\0b", 3))), NULL), BK_EINVAL);
    ck_assert_code(issue_code(ks, gcj(obj1(KEY("k"), arr2(json_true(), json_stringn("\0", 1)))), NULL),
                   BK_EINVAL);
    char *tok;
    ck_assert_code(issue_code(ks, gcj(obj1(KEY("k"), json_true())), &tok), BK_OK);
    ck_assert(json_is_true(json_object_get(VC(ks, tok, BK_OK), "k")));
}
END_TEST

START_TEST(issue_options_must_be_utf8)
{
    bk_jwt_keys_t *ks = set_of("k", "HS256", PRIV);
    static const char *const bad[] = {"\xff", "caf\xc3", "\xed\xa0\x80", "\xc0\xaf", "ok\xfe"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int which = 0; which < 3; which++) {
            IO.iss = ISS, IO.aud = AUD, IO.sub = "alice";
            *(which == 0 ? &IO.iss : which == 1 ? &IO.aud : &IO.sub) = bad[i];
            int rc = issue_code(ks, NULL, NULL);
            ck_assert_msg(rc == BK_EINVAL, "%s = bad[%zu]: got %s, want BK_EINVAL",
                          which == 0 ? "iss" : which == 1 ? "aud" : "sub", i, bk_err_name(rc));
        }
    }
    IO.iss = "https://" CAFE ".example", IO.aud = NIHON, IO.sub = "Zo\xc3\xab";
    VO.iss = IO.iss, VO.aud = IO.aud;
    json_t *c = VC(ks, issue(ks, NULL), BK_OK);
    ck_assert_str_eq(json_str(c, "iss"), "https://" CAFE ".example");
    ck_assert_str_eq(json_str(c, "aud"), NIHON);
    ck_assert_str_eq(json_str(c, "sub"), "Zo\xc3\xab");
}
END_TEST

/* {"d": [[...]]}: arrays levels of arrays in an object, so 1 + arrays levels. */
static json_t *deep(int arrays)
{
    json_t *v = json_array();
    ck_assert_ptr_nonnull(v);
    for (int i = 1; i < arrays; i++) {
        json_t *up = json_array();
        ck_assert_ptr_nonnull(up);
        ck_assert_int_eq(json_array_append_new(up, v), 0);
        v = up;
    }
    return gcj(obj1(KEY("d"), v));
}

START_TEST(claims_nesting_limit_and_cycles)
{
    bk_jwt_keys_t *ks = set_of("k", "HS256", PRIV);
    /* 2048 levels, the payload object included, is as deep as verify parses. */
    char *tok;
    ck_assert_code(issue_code(ks, deep(2047), &tok), BK_OK);
    VC(ks, tok, BK_OK);
    ck_assert_code(issue_code(ks, deep(2048), NULL), BK_EINVAL);
    /* A member shared by two others is not a cycle. */
    json_t *shared = gcj(json_pack("{s:s}", "x", "y"));
    ck_assert_code(issue_code(ks, gcj(json_pack("{s:O, s:[O]}", "a", shared, "b", shared)), NULL), BK_OK);
    /* A cycle has no JSON text. */
    json_t *a = json_object(), *b = json_object();
    ck_assert_int_eq(json_object_set(a, "b", b), 0);
    ck_assert_int_eq(json_object_set(b, "a", a), 0);
    int rc = issue_code(ks, gcj(json_pack("{s:[O]}", "top", a)), NULL);
    json_object_clear(b); /* break it, or neither is ever freed */
    json_decref(a);
    json_decref(b);
    ck_assert_code(rc, BK_EINVAL);
}
END_TEST

START_TEST(key_set_refusals)
{
    static const struct {
        const char *alg;
        size_t min;
    } hs[] = {{"HS256", 32}, {"HS384", 48}, {"HS512", 64}};
    for (size_t i = 0; i < 3; i++) {
        bk_jwt_keys_t *ks = keyset();
        ck_assert_msg(bk_jwt_keys_add(ks, "k", hs[i].alg, SECRET, hs[i].min - 1, true, NULL) == BK_EINVAL,
                      "%s %zu bytes", hs[i].alg, hs[i].min - 1);
        ck_assert_code(bk_jwt_keys_add(ks, "k", hs[i].alg, SECRET, 0, true, NULL), BK_EINVAL);
        ck_assert_code(bk_jwt_keys_add(ks, "k", hs[i].alg, SECRET, hs[i].min, true, NULL), BK_OK);
        VC(ks, issue(ks, NULL), BK_OK);
    }
    bk_jwt_keys_t *ks = keyset();
    ck_assert_code(add(ks, "a", "HS256", PRIV, true), BK_OK);
    ck_assert_code(add(ks, "a", "HS256", PRIV, false), BK_EEXIST);
    ck_assert_code(add(ks, "a", "ES256", PUB, false), BK_EEXIST);
    ck_assert_code(add(ks, NULL, "HS256", PRIV, false), BK_EINVAL); /* a second key without kid */
    ck_assert_code(add(ks, "", "HS256", PRIV, false), BK_EINVAL);
    ck_assert_code(add(ks, "a\n", "HS256", PRIV, false), BK_EINVAL);
    ck_assert_code(add(ks, "a\x7f", "HS256", PRIV, false), BK_EINVAL);
    char longkid[258];
    memset(longkid, 'k', 257);
    longkid[257] = '\0';
    ck_assert_code(add(ks, longkid, "HS256", PRIV, false), BK_EINVAL);
    longkid[256] = '\0';
    ck_assert_code(add(ks, longkid, "HS256", PRIV, false), BK_OK);
    ck_assert_code(add(ks, "b", "HS256", PRIV, false), BK_OK);
    /* A kid-less first key: no second key of any kind. */
    bk_jwt_keys_t *one = set_of(NULL, "HS256", PRIV);
    ck_assert_code(add(one, "b", "HS256", PRIV, false), BK_EINVAL);
    ck_assert_code(add(one, NULL, "ES256", PRIV, false), BK_EINVAL);
    VC(one, issue(one, NULL), BK_OK);
    /* The refusals left the first set as it was: a's token still verifies, current is a. */
    char *tok = issue(ks, NULL);
    ck_assert_str_eq(json_str(seg_json(tok, 0), "kid"), "a");
    VC(ks, tok, BK_OK);
    ck_assert_code(bk_jwt_keys_new(NULL), BK_EINVAL);
    bk_jwt_keys_free(NULL);
}
END_TEST

START_TEST(kid_must_be_utf8)
{
    static const char *const bad[] = {"\xff", "k\xfe", "caf\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "\xe6\x97"};
    bk_jwt_keys_t *ks = keyset();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(add(ks, bad[i], "HS256", PRIV, true) == BK_EINVAL, "HS256 kid bad[%zu]", i);
        ck_assert_msg(add(ks, bad[i], "ES256", PRIV, true) == BK_EINVAL, "ES256 kid bad[%zu]", i);
    }
    char dir[] = "/tmp/bk-jwt-kid-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *hs = fmt("%s/hs.key", dir);
    FILE *f = fopen(hs, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(SECRET, 1, sizeof SECRET, f), sizeof SECRET);
    fclose(f);
    int rc_bad = bk_jwt_keys_add_file(ks, "\xff", "HS256", hs, true, NULL);
    int rc_good = bk_jwt_keys_add_file(ks, CAFE, "HS256", hs, false, NULL);
    unlink(hs);
    rmdir(dir);
    ck_assert_code(rc_bad, BK_EINVAL);
    ck_assert_code(rc_good, BK_OK);
    char *tok = (char *)"untouched";
    ck_assert_code(bk_jwt_issue(ks, &IO, NULL, &tok, NULL), BK_ENOTFOUND); /* no refused key became current */
    /* Non-ASCII UTF-8 kids work: in the header as given, and they select the key. */
    ck_assert_code(add(ks, NIHON, "ES256", PRIV, true), BK_OK);
    tok = issue(ks, NULL);
    ck_assert_str_eq(json_str(seg_json(tok, 0), "kid"), NIHON);
    VC(ks, tok, BK_OK);
    tok = issue(set_of(CAFE, "HS256", PRIV), NULL);
    ck_assert_str_eq(json_str(seg_json(tok, 0), "kid"), CAFE);
    VC(ks, tok, BK_OK); /* the key from the file */
}
END_TEST

/* ================================================================== API conventions */
START_TEST(opts_init_clears_garbage)
{
    bk_jwt_issue_opts_t io;
    memset(&io, 0x5a, sizeof io);
    bk_jwt_issue_opts_init(&io);
    ck_assert_ptr_null(io.iss);
    ck_assert_ptr_null(io.aud);
    ck_assert_ptr_null(io.sub);
    ck_assert_int_eq(io.ttl_ns, 900 * SEC);
    ck_assert(!io.nbf);
    ck_assert_ptr_null(io.clock);
    for (size_t i = 0; i < sizeof io.reserved_ / sizeof io.reserved_[0]; i++)
        ck_assert_uint_eq(io.reserved_[i], 0);
    bk_jwt_verify_opts_t vo;
    memset(&vo, 0x5a, sizeof vo);
    bk_jwt_verify_opts_init(&vo);
    ck_assert_ptr_null(vo.iss);
    ck_assert_ptr_null(vo.aud);
    ck_assert_int_eq(vo.leeway_ns, 0);
    ck_assert_ptr_null(vo.required);
    ck_assert(!vo.allow_no_exp);
    ck_assert_ptr_null(vo.typ);
    ck_assert_uint_eq(vo.max_len, 8192);
    ck_assert_ptr_null(vo.revoked);
    ck_assert_ptr_null(vo.revoked_ud);
    ck_assert_ptr_null(vo.clock);
    for (size_t i = 0; i < sizeof vo.reserved_ / sizeof vo.reserved_[0]; i++)
        ck_assert_uint_eq(vo.reserved_[i], 0);
}
END_TEST

/* NULL options are the defaults, and so are zero fields of a struct cleared by
 * other means. */
START_TEST(null_and_zeroed_opts_are_the_defaults)
{
    bk_jwt_keys_t *ks = set_of("k", "HS256", PRIV);
    char *tok = NULL;
    ck_assert_code(bk_jwt_issue(ks, NULL, NULL, &tok, NULL), BK_OK); /* system clock */
    gc(tok);
    json_t *c = NULL;
    ck_assert_code(bk_jwt_verify(ks, NULL, tok, strlen(tok), &c), BK_OK);
    gcj(c);
    ck_assert_int_eq(json_int(c, "exp") - json_int(c, "iat"), 900);
    bk_jwt_issue_opts_t io;
    memset(&io, 0, sizeof io);
    io.clock = clk;
    ck_assert_code(bk_jwt_issue(ks, &io, NULL, &tok, NULL), BK_OK);
    gc(tok);
    ck_assert_int_eq(json_int(VC(ks, tok, BK_OK), "exp"), T0 + 900);
    /* max_len 0 is the default 8192, not "no token at all". */
    bk_jwt_verify_opts_t vo;
    memset(&vo, 0, sizeof vo);
    vo.clock = clk;
    ck_assert_code(bk_jwt_verify(ks, &vo, tok, strlen(tok), NULL), BK_OK);
    char big[8200];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_code(bk_jwt_verify(ks, &vo, big, strlen(big), NULL), BK_EJWT_MALFORMED);
}
END_TEST

/* Tokens carry whole seconds: ttl_ns and leeway_ns are rounded down. */
START_TEST(durations_round_down_to_whole_seconds)
{
    bk_jwt_keys_t *ks = set_of(NULL, "HS256", PRIV);
    IO.ttl_ns = 1500 * BK_NSEC_PER_MSEC;
    char *tok = issue(ks, NULL);
    ck_assert_int_eq(json_int(VC(ks, tok, BK_OK), "exp"), T0 + 1);
    IO.ttl_ns = 100 * SEC + SEC - 1;
    tok = issue(ks, NULL); /* exp = T0 + 100 */
    ck_assert_int_eq(bk_clock_fake_advance(clk, 129 * SEC), BK_OK); /* exp + 29 */
    VO.leeway_ns = 29 * SEC + SEC - 1; /* 29 s */
    VC(ks, tok, BK_EJWT_EXPIRED);
    VO.leeway_ns = 30 * SEC - 1; /* still 29 s */
    VC(ks, tok, BK_EJWT_EXPIRED);
    VO.leeway_ns = 30 * SEC;
    VC(ks, tok, BK_OK);
    VO.leeway_ns = 86400 * SEC + SEC - 1; /* 86400 s: still in range */
    VC(ks, tok, BK_OK);
    VO.leeway_ns = 86401 * SEC;
    ck_assert_code(V(ks, tok), BK_EINVAL);
}
END_TEST

static void expect_err(const bk_error_t *e, int code, const char *in_message, const char *pointer)
{
    ck_assert_msg(e->code == code, "code %s, want %s (%s)", bk_err_name(e->code), bk_err_name(code), e->message);
    ck_assert_msg(strstr(e->message, in_message) != NULL, "message \"%s\", want \"%s\"", e->message, in_message);
    ck_assert_msg(strcmp(e->pointer, pointer) == 0, "pointer \"%s\", want \"%s\"", e->pointer, pointer);
}

START_TEST(keys_add_says_why_a_key_is_refused)
{
    bk_jwt_keys_t *ks = keyset();
    bk_error_t e;
    memset(&e, 0x5a, sizeof e);
    ck_assert_code(bk_jwt_keys_add(ks, "a", "HS256", SECRET, 31, true, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "HS256 secret needs 32 bytes or more, not 31", "");
    ck_assert_str_eq(e.file, "");
    ck_assert_code(bk_jwt_keys_add(ks, "a", "ES256", K.p384_pub, strlen(K.p384_pub), false, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "ES256 needs a key on prime256v1, not on secp384r1", "");
    ck_assert_code(bk_jwt_keys_add(ks, "a", "RS256", K.p256_pub, strlen(K.p256_pub), false, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "RS256 needs an RSA key", "");
    ck_assert_code(bk_jwt_keys_add(ks, "a", "ES256", K.rsa_pub, strlen(K.rsa_pub), false, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "ES256 needs an EC key", "");
    ck_assert_code(bk_jwt_keys_add(ks, "a", "RS256", SECRET, sizeof SECRET, false, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "not a PEM private or public key", "");
    ck_assert_code(bk_jwt_keys_add(ks, "\xff", "HS256", SECRET, 32, true, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "kid must be 1 to 256 bytes of UTF-8", "");
    ck_assert_code(bk_jwt_keys_add(ks, "a", "none", SECRET, 32, true, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "unknown alg \"none\"", "");
    ck_assert_code(bk_jwt_keys_add(ks, "a", "ES256", K.p256_pub, strlen(K.p256_pub), true, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "a public key cannot sign", "");
    /* RSA under 2048 bits. */
    EVP_PKEY *small = EVP_RSA_gen(1024);
    ck_assert_ptr_nonnull(small);
    BIO *bio = BIO_new(BIO_s_mem());
    ck_assert_int_eq(PEM_write_bio_PUBKEY(bio, small), 1);
    char *pem = NULL;
    long n = BIO_get_mem_data(bio, &pem);
    int rc = bk_jwt_keys_add(ks, "a", "RS256", pem, (size_t)n, false, &e);
    BIO_free(bio);
    EVP_PKEY_free(small);
    ck_assert_code(rc, BK_EINVAL);
    expect_err(&e, BK_EINVAL, "RS256 needs an RSA key of 2048 bits or more, not 1024", "");
    /* The key's bytes never appear in the message. */
    ck_assert_code(bk_jwt_keys_add(ks, "a", "HS512", SECRET, 40, true, &e), BK_EINVAL);
    ck_assert_ptr_null(strstr(e.message, fmt("%.8s", (const char *)SECRET)));
    /* Success clears it; then a duplicate kid. */
    memset(&e, 0x5a, sizeof e);
    ck_assert_code(bk_jwt_keys_add(ks, "a", "HS256", SECRET, 32, true, &e), BK_OK);
    ck_assert_int_eq(e.code, BK_OK);
    ck_assert_str_eq(e.message, "");
    ck_assert_code(bk_jwt_keys_add(ks, "a", "HS256", SECRET, 32, true, &e), BK_EEXIST);
    expect_err(&e, BK_EEXIST, "already has a key \"a\"", "");

    /* Files: err->file names the one refused. */
    char dir[] = "/tmp/bk-jwt-err-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *hs = fmt("%s/short.key", dir), *missing = fmt("%s/missing.pem", dir);
    FILE *f = fopen(hs, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(SECRET, 1, 20, f), 20);
    fclose(f);
    bk_error_t e1, e2, e3;
    int rc1 = bk_jwt_keys_add_file(ks, "b", "HS256", hs, false, &e1);
    int rc2 = bk_jwt_keys_add_file(ks, "c", "ES256", missing, false, &e2);
    int rc3 = bk_jwt_keys_add_file(ks, "d", "ES256", dir, false, &e3); /* a directory */
    unlink(hs);
    rmdir(dir);
    ck_assert_code(rc1, BK_EINVAL);
    expect_err(&e1, BK_EINVAL, "HS256 secret needs 32 bytes or more, not 20", "");
    ck_assert_str_eq(e1.file, hs);
    ck_assert_code(rc2, BK_ENOTFOUND);
    expect_err(&e2, BK_ENOTFOUND, "cannot open the key file", "");
    ck_assert_str_eq(e2.file, missing);
    ck_assert_code(rc3, BK_EINVAL);
    expect_err(&e3, BK_EINVAL, "cannot read the key file", "");
    ck_assert_str_eq(e3.file, dir);
}
END_TEST

START_TEST(issue_error_points_at_the_claim)
{
    bk_jwt_keys_t *ks = set_of("k", "HS256", PRIV);
    bk_error_t e;
    char *tok = (char *)"untouched";
    memset(&e, 0x5a, sizeof e);
    ck_assert_code(bk_jwt_issue(ks, &IO, gcj(json_pack("{s:i}", "exp", 1)), &tok, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "registered claim \"exp\"", "/exp");
    ck_assert_ptr_null(tok);
    ck_assert_code(bk_jwt_issue(ks, &IO, gcj(obj1(KEY("a"), arr2(json_string_nocheck("\xff"), json_true()))),
                                &tok, &e),
                   BK_EINVAL);
    expect_err(&e, BK_EINVAL, "not UTF-8", "/a/0");
    json_t *nul = gcj(obj1(KEY("a/b"), arr2(json_true(), obj1(KEY("k~"), json_stringn("x\0", 2)))));
    ck_assert_code(bk_jwt_issue(ks, &IO, nul, &tok, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "NUL", "/a~1b/1/k~0");
    /* A bad member name is pointed at, made valid UTF-8 in the field. */
    ck_assert_code(bk_jwt_issue(ks, &IO, gcj(obj1(KEY("o"), obj1(KEY("\xff"), json_true()))), &tok, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "member name that is not UTF-8", "/o/\xef\xbf\xbd");
    ck_assert_code(bk_jwt_issue(ks, &IO, deep(2048), &tok, &e), BK_EINVAL);
    ck_assert_msg(strstr(e.message, "deeper than 2048") != NULL, "%s", e.message);
    ck_assert_uint_gt(strlen(e.pointer), 0); /* the long path, cut at an ancestor */
    ck_assert_int_eq(strncmp(e.pointer, "/d/0/0/", 7), 0);
    IO.sub = "\xfe";
    ck_assert_code(bk_jwt_issue(ks, &IO, NULL, &tok, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "the sub option is not UTF-8", "/sub");
    IO.sub = "alice";
    IO.ttl_ns = SEC / 2;
    ck_assert_code(bk_jwt_issue(ks, &IO, NULL, &tok, &e), BK_EINVAL);
    expect_err(&e, BK_EINVAL, "ttl_ns must be 1 s to ten years", "");
    IO.ttl_ns = 0;
    ck_assert_code(bk_jwt_issue(keyset(), &IO, NULL, &tok, &e), BK_ENOTFOUND);
    expect_err(&e, BK_ENOTFOUND, "no current key", "");
    memset(&e, 0x5a, sizeof e);
    ck_assert_code(bk_jwt_issue(ks, &IO, NULL, &tok, &e), BK_OK);
    gc(tok);
    ck_assert_int_eq(e.code, BK_OK);
    ck_assert_str_eq(e.pointer, "");
}
END_TEST

/* bk_jwt_issue reads the caller's claims and never changes them. */
START_TEST(issue_leaves_the_claims_alone)
{
    bk_jwt_keys_t *ks = set_of("k", "HS256", PRIV);
    json_t *claims = gcj(json_pack("{s:s, s:{s:[i]}}", "role", "admin", "n", "l", 1));
    json_t *before = gcj(json_deep_copy(claims));
    char *tok = NULL;
    ck_assert_code(issue_code(ks, claims, &tok), BK_OK);
    ck_assert(json_equal(claims, before));
    ck_assert_uint_eq(json_object_size(claims), 2);
    ck_assert_int_eq(claims->refcount, 1);
}
END_TEST

static Suite *jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("standard and round trips");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rfc7515_a1_hs256_example);
    tcase_add_test(tc, round_trip_every_alg_private_and_public_sets);
    tcase_add_test(tc, public_key_cannot_be_current_nor_issue);
    tcase_add_test(tc, key_must_fit_its_alg);
    tcase_add_test(tc, encrypted_pem_is_refused_without_prompting);
    tcase_add_test(tc, key_rotation_and_key_files);
    suite_add_tcase(s, tc);

    TCase *io = tcase_create("interop");
    tcase_add_checked_fixture(io, setup, teardown);
    tcase_set_timeout(io, 60);
    tcase_add_test(io, interop_pyjwt_both_ways);
    tcase_add_test(io, interop_libjwt_both_ways);
    suite_add_tcase(s, io);

    TCase *at = tcase_create("attacks");
    tcase_add_checked_fixture(at, setup, teardown);
    tcase_set_timeout(at, 60);
    tcase_add_test(at, alg_none_refused);
    tcase_add_test(at, alg_switch_hs256_hs512_same_secret);
    tcase_add_test(at, alg_confusion_rsa_public_key_as_hmac_secret);
    tcase_add_test(at, kid_unknown_traversal_and_missing);
    tcase_add_test(at, exp_and_leeway);
    tcase_add_test(at, nbf_and_iat_in_the_future);
    tcase_add_test(at, exp_missing_or_not_numeric);
    tcase_add_test(at, issuer_checked);
    tcase_add_test(at, audience_string_and_array);
    tcase_add_test(at, required_claims_and_typ);
    tcase_add_test(at, payload_modified_after_signing);
    tcase_add_test(at, truncated_and_extra_segments);
    tcase_add_test(at, non_base64url_characters_in_each_segment);
    tcase_add_test(at, non_canonical_encodings);
    tcase_add_test(at, oversized_tokens);
    tcase_add_test(at, duplicate_json_keys);
    tcase_add_test(at, header_and_payload_must_be_json_objects_and_no_crit);
    tcase_add_test(at, es256_der_signature_refused);
    tcase_add_test(at, revocation_hook);
    tcase_add_test(at, es_issuer_signs_low_s);
    tcase_add_test(at, es_high_s_twin_verifies_same_jti);
    tcase_add_test(at, issue_refusals);
    tcase_add_test(at, claims_must_be_utf8);
    tcase_add_test(at, claim_names_and_values_with_nul_refused);
    tcase_add_test(at, issue_options_must_be_utf8);
    tcase_add_test(at, claims_nesting_limit_and_cycles);
    tcase_add_test(at, key_set_refusals);
    tcase_add_test(at, kid_must_be_utf8);
    tcase_add_test(at, opts_init_clears_garbage);
    tcase_add_test(at, null_and_zeroed_opts_are_the_defaults);
    tcase_add_test(at, durations_round_down_to_whole_seconds);
    tcase_add_test(at, keys_add_says_why_a_key_is_refused);
    tcase_add_test(at, issue_error_points_at_the_claim);
    tcase_add_test(at, issue_leaves_the_claims_alone);
    tcase_add_test(at, jwks_publishes_public_keys_that_pyjwt_verifies_with);
    tcase_add_test(at, swap_replaces_the_keys_at_once_under_running_verifies);
    suite_add_tcase(s, at);
    return s;
}

int main(void)
{
    if (keys_make() != 0) {
        fprintf(stderr, "test_jwt: cannot generate RSA-2048, P-256 and P-384 keys\n");
        keys_drop();
        return EXIT_FAILURE;
    }
    int rc = bk_test_run(jwt_suite());
    keys_drop();
    return rc;
}
