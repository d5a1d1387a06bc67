/* Password hashing: Argon2id (RFC 9106) through the reference library, stored as
 * PHC strings ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<tag>") so that any Argon2
 * implementation can read them and parameters can be raised without a migration:
 * bk_password_needs_rehash says which stored hashes are behind the policy.
 *
 * A hash string is data from a database, not something we made and trust, so it is
 * parsed here, strictly, and its cost refused above fixed caps before libargon2
 * runs it (see PHC_MAX_* below). libargon2 then parses it again and compares the
 * tags in constant time (argon2_verify).
 * No globals: every call works on its stack and libargon2's per-call allocations.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "backend/auth.h"
#include "core/abi_int.h"
#include "core/base64_int.h"
#include "core/error_int.h"

#define DEFAULT_MEMORY_KIB 19456 /* 19 MiB, t=2, p=1: OWASP's first Argon2id choice */
#define DEFAULT_ITERATIONS 2
#define DEFAULT_PARALLELISM 1
#define DEFAULT_MAX_PASSWORD_LEN 1024

#define SALT_LEN 16 /* RFC 9106 recommends 128 bits */
#define TAG_LEN 32  /* 256 bits */
#define PEPPERED_LEN 32 /* HMAC-SHA256 output */

/*
 * Caps on the cost of a hash we agree to run. verify takes its parameters from the
 * stored string, so without caps one tampered or imported row ("m=4294967295" or
 * "t=4294967295") makes each login attempt allocate gigabytes or spin for hours:
 * a denial of service any client can trigger by trying to log in as that user.
 *   memory  at most 1 GiB per verification (RFC 9106's 2 GiB option is refused);
 *   work    m * t at most 4 GiB of block passes, i.e. a few seconds of CPU;
 *   lanes   at most 64: libargon2 runs one thread per lane;
 *   length  a PHC string of at most 512 characters (salt and tag sizes follow).
 * Policies above the caps are refused too, so we never make a hash we would refuse.
 * Beyond a cap a hash is BK_EINVAL, as a malformed one is.
 */
#define PHC_MAX_MEMORY_KIB (UINT32_C(1) << 20)
#define PHC_MAX_WORK_KIB (UINT64_C(4) << 20)
#define PHC_MAX_LANES 64
#define PHC_MAX_LEN 512

BK__ASSERT_ABI_SIZE(bk_password_policy_t, 104);

void bk_password_policy_init(bk_password_policy_t *policy)
{
    if (policy == NULL)
        return;
    memset(policy, 0, sizeof *policy);
    policy->memory_kib = DEFAULT_MEMORY_KIB;
    policy->iterations = DEFAULT_ITERATIONS;
    policy->parallelism = DEFAULT_PARALLELISM;
    policy->max_password_len = DEFAULT_MAX_PASSWORD_LEN;
}

/* policy with every zero field at its default (NULL: all defaults), in *out. */
static const bk_password_policy_t *effective(const bk_password_policy_t *policy, bk_password_policy_t *out)
{
    bk_password_policy_init(out);
    if (policy == NULL)
        return out;
    out->pepper = policy->pepper;
    out->pepper_len = policy->pepper_len;
    if (policy->memory_kib)
        out->memory_kib = policy->memory_kib;
    if (policy->iterations)
        out->iterations = policy->iterations;
    if (policy->parallelism)
        out->parallelism = policy->parallelism;
    if (policy->max_password_len)
        out->max_password_len = policy->max_password_len;
    return out;
}

/* Argon2's own limits (t >= 1, 1 <= p, m >= 8 KiB per lane) and ours above. */
static bool cost_ok(uint32_t m, uint32_t t, uint32_t p)
{
    return t >= 1 && p >= 1 && p <= PHC_MAX_LANES && (uint64_t)m >= 8 * (uint64_t)p && m <= PHC_MAX_MEMORY_KIB &&
           (uint64_t)m * t <= PHC_MAX_WORK_KIB;
}

/* ------------------------------------------------------------------ PHC parsing */
typedef struct phc {
    argon2_type type;
    uint32_t version; /* 0x10 when the string has no "v=" (Argon2 1.0's format) */
    uint32_t m, t, p;
    size_t saltlen, taglen; /* decoded bytes */
} phc_t;

/* A decimal without sign or leading zeros (PHC's rule, and libargon2's), fitting
 * in 32 bits. Advances *s past it. */
static bool parse_u32(const char **s, uint32_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    size_t n = 0;
    while (p[n] >= '0' && p[n] <= '9') {
        v = v * 10 + (uint64_t)(p[n] - '0');
        if (v > UINT32_MAX)
            return false;
        n++;
    }
    if (n == 0 || (p[0] == '0' && n > 1))
        return false;
    *out = (uint32_t)v;
    *s = p + n;
    return true;
}

/* Standard-alphabet base64 without padding, as PHC strings use it, in canonical
 * form (no length of 1 mod 4, unused trailing bits zero). Advances *s past it and
 * gives the decoded length. */
static bool parse_b64(const char **s, size_t *len)
{
    const char *p = *s;
    size_t n = 0;
    while (bk__b64_value((unsigned char)p[n], false) >= 0)
        n++;
    long decoded = n ? bk__b64_decode(p, n, NULL, false) : -1;
    if (decoded < 0)
        return false;
    *len = (size_t)decoded;
    *s = p + n;
    return true;
}

static bool skip(const char **s, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*s, lit, n) != 0)
        return false;
    *s += n;
    return true;
}

/*
 * $argon2{id,i,d}[$v=16|19]$m=M,t=T,p=P$SALT$TAG, within the caps. Stricter than
 * libargon2's parser (which runs after it), never looser: BK_EINVAL for anything
 * else, including the ",data=" and "keyid=" fields libargon2 no longer reads;
 * BK_ERANGE for a well-formed string whose cost is beyond the caps.
 */
static int parse_phc(const char *s, phc_t *h)
{
    if (strnlen(s, PHC_MAX_LEN + 1) > PHC_MAX_LEN)
        return BK_EINVAL;
    /* "$argon2id$" before "$argon2i$", which is not its prefix but reads like one. */
    if (skip(&s, "$argon2id$"))
        h->type = Argon2_id;
    else if (skip(&s, "$argon2i$"))
        h->type = Argon2_i;
    else if (skip(&s, "$argon2d$"))
        h->type = Argon2_d;
    else
        return BK_EINVAL;
    h->version = ARGON2_VERSION_10;
    if (skip(&s, "v=")) {
        if (!parse_u32(&s, &h->version) || !skip(&s, "$"))
            return BK_EINVAL;
        if (h->version != ARGON2_VERSION_10 && h->version != ARGON2_VERSION_13)
            return BK_EINVAL;
    }
    if (!skip(&s, "m=") || !parse_u32(&s, &h->m) || !skip(&s, ",t=") || !parse_u32(&s, &h->t) ||
        !skip(&s, ",p=") || !parse_u32(&s, &h->p) || !skip(&s, "$") || !parse_b64(&s, &h->saltlen) ||
        !skip(&s, "$") || !parse_b64(&s, &h->taglen) || *s != '\0')
        return BK_EINVAL;
    if (h->saltlen < ARGON2_MIN_SALT_LENGTH || h->taglen < ARGON2_MIN_OUTLEN)
        return BK_EINVAL;
    if (!cost_ok(h->m, h->t, h->p))
        return BK_ERANGE; /* well-formed but beyond the caps: the callers tell it apart, then say BK_EINVAL */
    return BK_OK;
}

/* BK_EINVAL for a stored hash parse_phc refused, err saying whether it is
 * malformed or over the caps (never quoting it: it is a secret's hash). */
static int phc_error(int rc, const phc_t *h, bk_error_t *err)
{
    if (rc == BK_ERANGE)
        return bk__error(err, BK_EINVAL,
                         "the stored hash's cost (m=%" PRIu32 " KiB, t=%" PRIu32 ", p=%" PRIu32
                         ") is beyond the caps (m at most 1 GiB, m*t at most 4 GiB, p at most 64)",
                         h->m, h->t, h->p);
    return bk__error(err, BK_EINVAL, "the stored hash is malformed: not an Argon2 PHC string");
}

/* ------------------------------------------------------------------ pepper */
/*
 * With a pepper the password Argon2 sees is HMAC-SHA256(pepper, password): a
 * stolen database alone then cannot be attacked offline, since every guess needs
 * the server secret too. HMAC rather than Argon2's own "secret" input because a
 * PHC string has no place for that secret and argon2_verify and other libraries
 * cannot take one, whereas a MAC'ed password is an ordinary password to any Argon2
 * implementation (a migration or another service can verify our hashes knowing
 * the pepper). HMAC takes a pepper of any length and gives Argon2 a fixed 32 bytes.
 * Without a pepper the password is used as it is. mac is wiped by the caller.
 */
static int prepare(const bk_password_policy_t *policy, const char *password, size_t len,
                   unsigned char mac[PEPPERED_LEN], const void **pw, size_t *pwlen, bk_error_t *err)
{
    if (policy->pepper == NULL) {
        *pw = password;
        *pwlen = len;
        return BK_OK;
    }
    /* A pepper of no bytes is a configuration mistake, not "no pepper". */
    if (policy->pepper_len == 0 || policy->pepper_len > INT_MAX)
        return bk__error(err, BK_EINVAL, "the policy's pepper_len must be 1 to INT_MAX bytes");
    unsigned maclen = 0;
    if (HMAC(EVP_sha256(), policy->pepper, (int)policy->pepper_len,
             (const unsigned char *)(len > 0 ? password : ""), len, mac, &maclen) == NULL ||
        maclen != PEPPERED_LEN)
        return bk__error(err, BK_ENOMEM, NULL); /* OpenSSL fails here only when it cannot allocate */
    *pw = mac;
    *pwlen = PEPPERED_LEN;
    return BK_OK;
}

static int from_argon2(int rc)
{
    switch (rc) {
    case ARGON2_OK:
        return BK_OK;
    case ARGON2_VERIFY_MISMATCH:
        return BK_EMISMATCH;
    case ARGON2_MEMORY_ALLOCATION_ERROR:
        return BK_ENOMEM;
    case ARGON2_THREAD_FAIL: /* a lane's thread could not be started */
        return BK_EIO;
    default: /* a parameter, length or decoding error */
        return BK_EINVAL;
    }
}

/* Checks common to hash and verify, in the order the API promises: arguments,
 * then the length (BK_ERANGE before any work). */
static int check_password(const bk_password_policy_t *policy, const char *password, size_t len, bk_error_t *err)
{
    if (password == NULL && len > 0)
        return bk__error(err, BK_EINVAL, "password is NULL with a length");
    if (len > policy->max_password_len || (uint64_t)len > ARGON2_MAX_PWD_LENGTH)
        return bk__error(err, BK_ERANGE, "the password is longer than the policy's maximum of %zu bytes",
                         policy->max_password_len);
    return BK_OK;
}

/* ------------------------------------------------------------------ API */
int bk_password_hash(const bk_password_policy_t *policy, const char *password, size_t len, char *out,
                     size_t outsz, bk_error_t *err)
{
    bk__error_clear(err);
    bk_password_policy_t eff;
    policy = effective(policy, &eff);
    if (out == NULL || outsz == 0)
        return bk__error(err, BK_EINVAL, "out is required");
    out[0] = '\0';
    int rc = check_password(policy, password, len, err);
    if (rc != BK_OK)
        return rc;
    uint32_t m = policy->memory_kib, t = policy->iterations, p = policy->parallelism;
    if (!cost_ok(m, t, p))
        return bk__error(err, BK_EINVAL,
                         "the policy's cost (memory_kib=%" PRIu32 ", iterations=%" PRIu32 ", parallelism=%" PRIu32
                         ") is outside the limits (p 1 to 64, m 8*p KiB to 1 GiB, m*t at most 4 GiB)",
                         m, t, p);
    size_t need = argon2_encodedlen(t, m, p, SALT_LEN, TAG_LEN, Argon2_id);
    if (outsz < need)
        return bk__error(err, BK_EINVAL, "out has %zu bytes; the hash needs %zu", outsz, need);

    unsigned char salt[SALT_LEN], mac[PEPPERED_LEN];
    rc = bk_random_bytes(salt, sizeof salt);
    if (rc != BK_OK)
        return bk__error(err, rc, "no random bytes for the salt");
    const void *pw;
    size_t pwlen;
    rc = prepare(policy, password, len, mac, &pw, &pwlen, err);
    if (rc == BK_OK) {
        /* hash NULL: only the encoded string is wanted; libargon2 wipes its copy. */
        int arc = argon2_hash(t, m, p, pw, pwlen, salt, sizeof salt, NULL, TAG_LEN, out, outsz, Argon2_id,
                              ARGON2_VERSION_13);
        rc = from_argon2(arc);
        if (rc != BK_OK) {
            out[0] = '\0';
            bk__error(err, rc, "Argon2: %s", argon2_error_message(arc));
        }
    }
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

int bk_password_verify(const bk_password_policy_t *policy, const char *password, size_t len, const char *phc,
                       bk_error_t *err)
{
    bk__error_clear(err);
    bk_password_policy_t eff;
    policy = effective(policy, &eff);
    if (phc == NULL)
        return bk__error(err, BK_EINVAL, "phc is required");
    int rc = check_password(policy, password, len, err);
    if (rc != BK_OK)
        return rc;
    phc_t h;
    rc = parse_phc(phc, &h);
    if (rc != BK_OK)
        return phc_error(rc, &h, err);
    unsigned char mac[PEPPERED_LEN];
    const void *pw;
    size_t pwlen;
    rc = prepare(policy, password, len, mac, &pw, &pwlen, err);
    if (rc == BK_OK) {
        /* Recomputes the tag with the string's own type, version and parameters and
         * compares it in constant time (argon2_compare). */
        int arc = argon2_verify(phc, pw, pwlen, h.type);
        rc = from_argon2(arc);
        if (rc == BK_EMISMATCH)
            bk__error(err, rc, NULL);
        else if (rc != BK_OK)
            bk__error(err, rc, "Argon2: %s", argon2_error_message(arc));
    }
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

bool bk_password_needs_rehash(const bk_password_policy_t *policy, const char *phc)
{
    bk_password_policy_t eff;
    policy = effective(policy, &eff);
    phc_t h;
    if (phc == NULL || parse_phc(phc, &h) != BK_OK)
        return true;
    /* Exactly what bk_password_hash would make now; the pepper cannot be seen in a
     * hash, so a changed pepper is not detected here. */
    return h.type != Argon2_id || h.version != ARGON2_VERSION_13 || h.m != policy->memory_kib ||
           h.t != policy->iterations || h.p != policy->parallelism || h.saltlen != SALT_LEN ||
           h.taglen != TAG_LEN;
}
