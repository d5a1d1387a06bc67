/* The keyed hash of lib/core/hash.c, linked into this program from its sources
 * (it is hidden in the library): SipHash-2-4's published vectors, SipHash-1-3
 * checked against CPython, the process
 * key, the pointer hash, and a collision-flood sanity check.
 * SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <check.h>

#include "check_main.h"

#include "core/hash_int.h"

/* The paper's vectors (appendix; the reference implementation's vectors_sip64):
 * key 00 01 .. 0f, message 00 01 .. (n-1), for n = 0..32. */
static const uint64_t vectors[33] = {
    UINT64_C(0x726fdb47dd0e0e31), UINT64_C(0x74f839c593dc67fd), UINT64_C(0x0d6c8009d9a94f5a),
    UINT64_C(0x85676696d7fb7e2d), UINT64_C(0xcf2794e0277187b7), UINT64_C(0x18765564cd99a68d),
    UINT64_C(0xcbc9466e58fee3ce), UINT64_C(0xab0200f58b01d137), UINT64_C(0x93f5f5799a932462),
    UINT64_C(0x9e0082df0ba9e4b0), UINT64_C(0x7a5dbbc594ddb9f3), UINT64_C(0xf4b32f46226bada7),
    UINT64_C(0x751e8fbc860ee5fb), UINT64_C(0x14ea5627c0843d90), UINT64_C(0xf723ca908e7af2ee),
    UINT64_C(0xa129ca6149be45e5), UINT64_C(0x3f2acc7f57c29bdb), UINT64_C(0x699ae9f52cbe4794),
    UINT64_C(0x4bc1b3f0968dd39c), UINT64_C(0xbb6dc91da77961bd), UINT64_C(0xbed65cf21aa2ee98),
    UINT64_C(0xd0f2cbb02e3b67c7), UINT64_C(0x93536795e3a33e88), UINT64_C(0xa80c038ccd5ccec8),
    UINT64_C(0xb8ad50c6f649af94), UINT64_C(0xbce192de8a85b8ea), UINT64_C(0x17d835b85bbb15f3),
    UINT64_C(0x2f2e6163076bcfad), UINT64_C(0xde4daaaca71dc9a5), UINT64_C(0xa6a2506687956571),
    UINT64_C(0xad87a3535c49ef28), UINT64_C(0x32d892fad841c342), UINT64_C(0x7127512f72f27cce),
};

START_TEST(siphash24_vectors)
{
    const bk__hash_key_t key = {UINT64_C(0x0706050403020100), UINT64_C(0x0f0e0d0c0b0a0908)};
    unsigned char msg[32];
    for (unsigned i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)i;
    for (size_t n = 0; n <= sizeof msg; n++)
        ck_assert_msg(bk__siphash24(&key, msg, n) == vectors[n], "n=%zu", n);
    ck_assert(bk__siphash24(&key, NULL, 0) == vectors[0]);
    /* The all-zero key (another published value). */
    const bk__hash_key_t zero = {0, 0};
    ck_assert(bk__siphash24(&zero, NULL, 0) == UINT64_C(0x1e924b9d737700d7));
}
END_TEST

/* SipHash-1-3 under the all-zero key, as CPython 3.11 computes it (hash(b"...")
 * with PYTHONHASHSEED=0, which zeroes its key; siphash13 in Python/pyhash.c). */
START_TEST(siphash13_vectors)
{
    const bk__hash_key_t zero = {0, 0};
    ck_assert(bk__siphash13(&zero, "a", 1) == UINT64_C(0x407448d2b89b1813));
    ck_assert(bk__siphash13(&zero, "abc", 3) == UINT64_C(0xc03bc3a0042630f2));
    ck_assert(bk__siphash13(&zero, "client-0001", 11) == UINT64_C(0xe15deba6e87160fa));
    ck_assert(bk__siphash13(&zero, "0123456789abcdefXYZ", 19) == UINT64_C(0x283e7687cd67183b));
}
END_TEST

/* Unaligned input hashes as aligned input does. */
START_TEST(siphash24_unaligned)
{
    const bk__hash_key_t key = {UINT64_C(0x0706050403020100), UINT64_C(0x0f0e0d0c0b0a0908)};
    unsigned char buf[40];
    for (unsigned i = 0; i < 32; i++)
        buf[i + 3] = (unsigned char)i;
    ck_assert(bk__siphash24(&key, buf + 3, 32) == vectors[32]);
    ck_assert(bk__siphash24(&key, buf + 3, 15) == vectors[15]);
}
END_TEST

START_TEST(process_hash_is_stable_within_a_process)
{
    const char a[] = "user:42:profile";
    char b[sizeof a];
    memcpy(b, a, sizeof a);
    ck_assert(bk__hash(a, strlen(a)) == bk__hash(b, strlen(b)));
    ck_assert(bk__hash(a, strlen(a)) != bk__hash(a, strlen(a) - 1));
    ck_assert(bk__hash("", 0) == bk__hash(NULL, 0));
    int x;
    ck_assert(bk__hash_ptr(&x) == bk__hash_ptr(&x));
    ck_assert(bk__hash_ptr(&x) != bk__hash_ptr(&x + 1));
}
END_TEST

/* The process key is not the all-zero key nor the vectors' key: bk__hash differs
 * from SipHash under either (a constant key would make this fail). */
START_TEST(process_key_is_not_a_constant)
{
    const bk__hash_key_t zero = {0, 0};
    const bk__hash_key_t test = {UINT64_C(0x0706050403020100), UINT64_C(0x0f0e0d0c0b0a0908)};
    int same_zero = 0, same_test = 0;
    for (int i = 0; i < 8; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "key%d", i);
        same_zero += bk__hash(k, (size_t)n) == bk__siphash13(&zero, k, (size_t)n);
        same_test += bk__hash(k, (size_t)n) == bk__siphash13(&test, k, (size_t)n);
    }
    ck_assert_int_eq(same_zero, 0);
    ck_assert_int_eq(same_test, 0);
}
END_TEST

START_TEST(different_keys_give_different_hashes)
{
    const bk__hash_key_t k1 = {1, 2}, k2 = {1, 3}, k3 = {UINT64_C(1) << 63, 2};
    int equal = 0;
    for (int i = 0; i < 1000; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "k%d", i);
        uint64_t h1 = bk__siphash13(&k1, k, (size_t)n);
        equal += h1 == bk__siphash13(&k2, k, (size_t)n);
        equal += h1 == bk__siphash13(&k3, k, (size_t)n);
        equal += bk__siphash24(&k1, k, (size_t)n) == bk__siphash24(&k2, k, (size_t)n);
    }
    ck_assert_int_eq(equal, 0);
}
END_TEST

/* The fallback key, used when bk_random_bytes fails, is never a constant: two
 * draws differ (the clocks moved), and neither is zero. */
START_TEST(fallback_key_is_not_a_constant)
{
    bk__hash_key_t a, b;
    bk__hash_fallback_key(&a);
    bk__hash_fallback_key(&b);
    ck_assert(a.k0 != b.k0 || a.k1 != b.k1);
    ck_assert(a.k0 != 0 || a.k1 != 0);
}
END_TEST

/* 100k keys of the shape a client would send ("user:<n>", differing only in
 * digits), bucketed by the low bits and by the bits above a 4-bit shard index
 * (as the cache does): no bucket gets more than a few times its mean. */
static void check_spread(unsigned shift)
{
    enum { KEYS = 100000, BUCKETS = 4096 };
    static unsigned counts[BUCKETS];
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < KEYS; i++) {
        char k[32];
        int n = snprintf(k, sizeof k, "user:%d", i);
        counts[(bk__hash(k, (size_t)n) >> shift) & (BUCKETS - 1)]++;
    }
    unsigned max = 0, empty = 0;
    for (int i = 0; i < BUCKETS; i++) {
        if (counts[i] > max)
            max = counts[i];
        empty += counts[i] == 0;
    }
    /* Mean 24.4; a Poisson maximum over 4096 buckets is about 45. */
    ck_assert_msg(max <= 60, "shift %u: max bucket %u", shift, max);
    ck_assert_msg(empty <= 4, "shift %u: %u empty buckets", shift, empty);
}

START_TEST(flood_spreads_over_buckets)
{
    check_spread(0);
    check_spread(4);
    check_spread(8);
    check_spread(52);
}
END_TEST

/* Consecutive addresses (the bytes of one array) spread as well. */
START_TEST(pointer_hash_spreads)
{
    enum { N = 65536, BUCKETS = 1024 };
    static unsigned counts[BUCKETS];
    static char base[N];
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < N; i++)
        counts[bk__hash_ptr(base + (size_t)i) & (BUCKETS - 1)]++;
    unsigned max = 0;
    for (int i = 0; i < BUCKETS; i++)
        if (counts[i] > max)
            max = counts[i];
    ck_assert_msg(max <= 120, "max bucket %u (mean 64)", max);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("hash");
    TCase *tc = tcase_create("hash");
    tcase_add_test(tc, siphash24_vectors);
    tcase_add_test(tc, siphash13_vectors);
    tcase_add_test(tc, siphash24_unaligned);
    tcase_add_test(tc, process_hash_is_stable_within_a_process);
    tcase_add_test(tc, process_key_is_not_a_constant);
    tcase_add_test(tc, different_keys_give_different_hashes);
    tcase_add_test(tc, fallback_key_is_not_a_constant);
    tcase_add_test(tc, flood_spreads_over_buckets);
    tcase_add_test(tc, pointer_hash_spreads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(suite());
}
