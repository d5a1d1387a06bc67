/* The one hash of the library's in-memory tables: SipHash-1-3 (Aumasson and
 * Bernstein, "SipHash: a fast short-input PRF", 2012, with 1 compression and 3
 * finalisation rounds, as CPython's str hash and Rust's HashMap use it against
 * hash flooding) under a random key drawn once per process, so that keys a client chooses (cache keys, rate-limit keys,
 * label values, JSON documents) cannot be picked to collide in a table.
 * Internal: hidden, never part of the public API.
 *
 * Never use bk__hash for a value that must agree across processes or runs (an
 * advisory-lock key, anything stored or sent): it changes with every process.
 * Such a value is a fixed, documented constant instead (lib/db/migrate.c).
 * SPDX-License-Identifier: MIT */
#ifndef BK_HASH_INT_H
#define BK_HASH_INT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define BK__HASH_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__HASH_HIDDEN
#endif

/* A 128-bit SipHash key: k0 is key bytes 0..7, k1 bytes 8..15, little-endian. */
typedef struct bk__hash_key {
    uint64_t k0, k1;
} bk__hash_key_t;

/* SipHash-2-4 of data[0..len) under key: the paper's function, bit for bit (its
 * test vectors hold). data may be NULL when len is 0. Thread-safe. */
BK__HASH_HIDDEN uint64_t bk__siphash24(const bk__hash_key_t *key, const void *data, size_t len);
/* SipHash-1-3: the same function with 1 and 3 rounds (CPython's siphash13). */
BK__HASH_HIDDEN uint64_t bk__siphash13(const bk__hash_key_t *key, const void *data, size_t len);

/*
 * SipHash-1-3 of data[0..len) under the process key: 1-3 rather than 2-4 because
 * a table lookup hashes on every request (a rate-limit check, a cache hit), and
 * 1-3 costs about 40% less on short keys while still keeping collisions out for
 * whoever cannot see the key; it is a flooding defence, not a MAC. The first call draws the
 * key (pthread_once): 16 bytes of bk_random_bytes, or, if that fails, the
 * fallback of bk__hash_fallback_key. Equal inputs hash equal within a process;
 * all 64 bits are uniformly mixed, so any bits may pick a shard or a bucket.
 * Thread-safe.
 */
BK__HASH_HIDDEN uint64_t bk__hash(const void *data, size_t len);

/*
 * A hash of a pointer's address (tables keyed by an object's identity), keyed
 * by the process key: a splitmix64 finaliser of the address mixed with the key.
 * Addresses are not chosen by clients, so this cheaper keyed mix, not SipHash,
 * is enough. Thread-safe.
 */
BK__HASH_HIDDEN uint64_t bk__hash_ptr(const void *p);

/*
 * The key used when bk_random_bytes fails: not secret, but never a constant.
 * It mixes the address of a static (moved by ASLR), of a stack variable, the
 * real-time and monotonic clocks, and the process id, through splitmix64.
 * Exposed for the tests.
 */
BK__HASH_HIDDEN void bk__hash_fallback_key(bk__hash_key_t *out);

#endif
