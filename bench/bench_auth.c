/* Benchmarks of the auth hot paths, each beside a baseline measured in the same run,
 * on the same input:
 *
 *   jwt verify: one HS256 token, made by bk_jwt_issue with a 32-byte key, carrying
 *               iss, aud, sub, jti and a "roles" claim (plus iat and exp), checked by
 *     (a) ours:   bk_jwt_verify with iss, aud and a leeway set, the claims asked for
 *                 and json_decref'd, as a request handler would;
 *     (b) libjwt: jwt_decode(&jwt, token, key, keylen) + jwt_free, libjwt 1.10's own
 *                 decode-and-verify (signature only: it checks no claim);
 *     (c) HMAC:   OpenSSL's one-shot HMAC(EVP_sha256(), ...) over the token's
 *                 header.payload bytes, the floor any HS256 verifier pays.
 *     Rounds of (a), (b), (c) alternate, ROUNDS times, each lasting about
 *     ROUND_SECONDS; the best round of each counts.
 *   password hash:
 *     (d) ours:   bk_password_hash at the default policy (Argon2id, m=19456 KiB,
 *                 t=2, p=1, a 16-byte salt, a 32-byte tag);
 *     base:       argon2id_hash_encoded with the same parameters and a fresh salt
 *                 from getrandom(2).
 *     Alternating rounds of HASHES_PER_ROUND hashes each, best of ROUNDS.
 *
 * Output, after a line per figure:
 *   BENCH jwt_verify_vs_jwt_decode ours=<verifies/s> base=<decodes/s> unit=ops/s ratio=<ours/base>
 *   BENCH jwt_verify_vs_hmac ours=<ns/op> base=<ns/op> unit=ns/op ratio=<ours/base>
 *   BENCH argon2id_hash ours=<hashes/s> base=<hashes/s> unit=ops/s ratio=<ours/base>
 *
 * SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <argon2.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <backend/auth.h>

enum {
    ROUNDS = 3,
    BATCH = 1000,         /* operations between two reads of the clock */
    HASHES_PER_ROUND = 3, /* ~50 ms each */
};
#define ROUND_SECONDS 0.5

static unsigned char key[32];
static char *token;
static size_t token_len, signed_len; /* signed_len: the header.payload bytes */
static bk_jwt_keys_t *keys;
static bk_jwt_verify_opts_t vopts;
static unsigned long failures; /* operations that did not succeed: must stay 0 */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void ours_verify(void)
{
    json_t *claims = NULL;
    if (bk_jwt_verify(keys, &vopts, token, token_len, &claims) != BK_OK || !claims)
        failures++;
    json_decref(claims);
}

static void libjwt_decode(void)
{
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, key, (int)sizeof key) != 0)
        failures++;
    jwt_free(jwt);
}

static void raw_hmac(void)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)sizeof key, (const unsigned char *)token, signed_len, md, &mdlen) ||
        mdlen != 32)
        failures++;
}

/* Operations per second of op over about ROUND_SECONDS. */
static double round_rate(void (*op)(void))
{
    long n = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < BATCH; i++)
            op();
        n += BATCH;
    } while ((t = now_s()) - t0 < ROUND_SECONDS);
    return (double)n / (t - t0);
}

static const char PASSWORD[] = "correct horse battery staple";

static void ours_hash(void)
{
    char out[BK_PASSWORD_HASH_MAX];
    if (bk_password_hash(NULL, PASSWORD, sizeof PASSWORD - 1, out, sizeof out, NULL) != BK_OK)
        failures++;
}

static void base_hash(void)
{
    unsigned char salt[16];
    char out[BK_PASSWORD_HASH_MAX];
    if (getrandom(salt, sizeof salt, 0) != (ssize_t)sizeof salt ||
        argon2id_hash_encoded(2, 19456, 1, PASSWORD, sizeof PASSWORD - 1, salt, sizeof salt, 32, out, sizeof out) !=
            ARGON2_OK)
        failures++;
}

/* Hashes per second over HASHES_PER_ROUND hashes. */
static double hash_rate(void (*op)(void))
{
    double t0 = now_s();
    for (int i = 0; i < HASHES_PER_ROUND; i++)
        op();
    return HASHES_PER_ROUND / (now_s() - t0);
}

static int setup(void)
{
    if (bk_random_bytes(key, sizeof key) != BK_OK || bk_jwt_keys_new(&keys) != BK_OK ||
        bk_jwt_keys_add(keys, "bench-1", "HS256", key, sizeof key, true, NULL) != BK_OK)
        return -1;
    bk_jwt_issue_opts_t io;
    bk_jwt_issue_opts_init(&io);
    io.iss = "https://auth.example.com";
    io.aud = "orders-api";
    io.sub = "user-1234";
    io.ttl_ns = 3600 * BK_NSEC_PER_SEC;
    json_t *claims = json_pack("{s:[s,s]}", "roles", "admin", "viewer");
    int rc = claims ? bk_jwt_issue(keys, &io, claims, &token, NULL) : BK_ENOMEM;
    json_decref(claims);
    if (rc != BK_OK)
        return -1;
    token_len = strlen(token);
    signed_len = (size_t)(strrchr(token, '.') - token);
    bk_jwt_verify_opts_init(&vopts);
    vopts.iss = io.iss;
    vopts.aud = io.aud;
    vopts.leeway_ns = 30 * BK_NSEC_PER_SEC;
    return 0;
}

int main(void)
{
    if (setup() != 0) {
        fprintf(stderr, "bench_auth: setup failed\n");
        return EXIT_FAILURE;
    }
    /* Each path accepts the token before anything is timed. */
    ours_verify();
    libjwt_decode();
    raw_hmac();
    if (failures) {
        fprintf(stderr, "bench_auth: the token does not verify on every path\n");
        return EXIT_FAILURE;
    }
    printf("bench_auth: HS256 token of %zu bytes; best of %d interleaved rounds of %.1f s\n", token_len, ROUNDS,
           ROUND_SECONDS);

    double ours = 0, libjwt = 0, hmac = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double o = round_rate(ours_verify), l = round_rate(libjwt_decode), h = round_rate(raw_hmac);
        printf("  round %d: bk_jwt_verify %.0f/s  jwt_decode %.0f/s  HMAC %.0f/s\n", r + 1, o, l, h);
        ours = o > ours ? o : ours;
        libjwt = l > libjwt ? l : libjwt;
        hmac = h > hmac ? h : hmac;
    }

    ours_hash(); /* warm-up: the first touches of 19 MiB */
    base_hash();
    double ours_h = 0, base_h = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double o = hash_rate(ours_hash), b = hash_rate(base_hash);
        printf("  round %d: bk_password_hash %.2f/s  argon2id_hash_encoded %.2f/s\n", r + 1, o, b);
        ours_h = o > ours_h ? o : ours_h;
        base_h = b > base_h ? b : base_h;
    }

    if (failures) {
        fprintf(stderr, "bench_auth: %lu operations failed\n", failures);
        return EXIT_FAILURE;
    }
    printf("BENCH jwt_verify_vs_jwt_decode ours=%.0f base=%.0f unit=ops/s ratio=%.3f\n", ours, libjwt,
           ours / libjwt);
    printf("BENCH jwt_verify_vs_hmac ours=%.1f base=%.1f unit=ns/op ratio=%.3f\n", 1e9 / ours, 1e9 / hmac,
           hmac / ours);
    printf("BENCH argon2id_hash ours=%.2f base=%.2f unit=ops/s ratio=%.3f\n", ours_h, base_h, ours_h / base_h);
    free(token);
    bk_jwt_keys_free(keys);
    return EXIT_SUCCESS;
}
