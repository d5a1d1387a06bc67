/* The keyed hash of hash_int.h: SipHash-c-d, written from the paper (section 2:
 * initialisation, compression with c SipRounds per 8-byte word, the final word
 * carrying the length's low byte, finalisation with d SipRounds), as SipHash-2-4
 * and SipHash-1-3, under a per-process key drawn once.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/core.h"
#include "core/hash_int.h"

static inline uint64_t rotl(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

/* The 8 bytes at p as a little-endian word (the compiler makes it one load on a
 * little-endian machine). */
static inline uint64_t load64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

#define SIPROUND()                                                                                           \
    do {                                                                                                     \
        v0 += v1;                                                                                            \
        v1 = rotl(v1, 13);                                                                                   \
        v1 ^= v0;                                                                                            \
        v0 = rotl(v0, 32);                                                                                   \
        v2 += v3;                                                                                            \
        v3 = rotl(v3, 16);                                                                                   \
        v3 ^= v2;                                                                                            \
        v0 += v3;                                                                                            \
        v3 = rotl(v3, 21);                                                                                   \
        v3 ^= v0;                                                                                            \
        v2 += v1;                                                                                            \
        v1 = rotl(v1, 17);                                                                                   \
        v1 ^= v2;                                                                                            \
        v2 = rotl(v2, 32);                                                                                   \
    } while (0)

/* c and d are constants at every call, so the loops unroll. */
static inline uint64_t siphash(const bk__hash_key_t *key, const void *data, size_t len, int c, int d)
{
    /* The initial state: the key XORed with "somepseudorandomlygeneratedbytes". */
    uint64_t v0 = key->k0 ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = key->k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = key->k0 ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = key->k1 ^ UINT64_C(0x7465646279746573);
    const unsigned char *p = data;
    const unsigned char *end = p + (len & ~(size_t)7);

    for (; p != end; p += 8) {
        uint64_t m = load64(p);
        v3 ^= m;
        for (int r = 0; r < c; r++)
            SIPROUND();
        v0 ^= m;
    }

    /* The last word: the 0..7 remaining bytes, then len mod 256 in the top byte. */
    uint64_t b = (uint64_t)(len & 0xff) << 56;
    switch (len & 7) {
    case 7:
        b |= (uint64_t)p[6] << 48;
        /* fall through */
    case 6:
        b |= (uint64_t)p[5] << 40;
        /* fall through */
    case 5:
        b |= (uint64_t)p[4] << 32;
        /* fall through */
    case 4:
        b |= (uint64_t)p[3] << 24;
        /* fall through */
    case 3:
        b |= (uint64_t)p[2] << 16;
        /* fall through */
    case 2:
        b |= (uint64_t)p[1] << 8;
        /* fall through */
    case 1:
        b |= (uint64_t)p[0];
        break;
    default:
        break;
    }
    v3 ^= b;
    for (int r = 0; r < c; r++)
        SIPROUND();
    v0 ^= b;

    v2 ^= 0xff;
    for (int r = 0; r < d; r++)
        SIPROUND();
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t bk__siphash24(const bk__hash_key_t *key, const void *data, size_t len)
{
    return siphash(key, data, len, 2, 4);
}

uint64_t bk__siphash13(const bk__hash_key_t *key, const void *data, size_t len)
{
    return siphash(key, data, len, 1, 3);
}

/* ------------------------------------------------------------------ the process key */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static bk__hash_key_t process_key;
static pthread_once_t process_key_once = PTHREAD_ONCE_INIT;

void bk__hash_fallback_key(bk__hash_key_t *out)
{
    static const char anchor;
    volatile char local = 0;
    struct timespec rt = {0}, mono = {0};
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);

    uint64_t s = (uint64_t)(uintptr_t)&anchor;
    s = splitmix64(&s) ^ (uint64_t)(uintptr_t)&local;
    s = splitmix64(&s) ^ ((uint64_t)rt.tv_sec << 30 ^ (uint64_t)rt.tv_nsec);
    s = splitmix64(&s) ^ ((uint64_t)mono.tv_sec << 30 ^ (uint64_t)mono.tv_nsec);
    s = splitmix64(&s) ^ (uint64_t)getpid();
    out->k0 = splitmix64(&s);
    out->k1 = splitmix64(&s);
}

static void draw_process_key(void)
{
    unsigned char buf[16];
    if (bk_random_bytes(buf, sizeof buf) == BK_OK) {
        process_key.k0 = load64(buf);
        process_key.k1 = load64(buf + 8);
    } else {
        /* No CSPRNG: a key an attacker could at best estimate, never a constant. */
        bk__hash_fallback_key(&process_key);
    }
}

static inline const bk__hash_key_t *key_of_process(void)
{
    pthread_once(&process_key_once, draw_process_key);
    return &process_key;
}

uint64_t bk__hash(const void *data, size_t len)
{
    return bk__siphash13(key_of_process(), data, len);
}

uint64_t bk__hash_ptr(const void *p)
{
    const bk__hash_key_t *k = key_of_process();
    uint64_t x = ((uint64_t)(uintptr_t)p ^ k->k0) + k->k1; /* then a splitmix64 finaliser */
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}
