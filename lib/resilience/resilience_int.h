/* Resilience internals shared by its files. Hidden, never part of the public API.
 *
 * The in-process rate-limit store (memstore.c) has a fast path besides the
 * public load/store pair: bk_ratelimit_check on it does the whole round (find,
 * compute, store) under the key's shard lock, hashing the key once. In-process
 * there is no one to conflict with, so the compare-and-set that load/store
 * exist for (a shared store's gets/cas) would only cost a second hash and lock.
 * SPDX-License-Identifier: MIT */
#ifndef BK_RESILIENCE_INT_H
#define BK_RESILIENCE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <backend/resilience.h>

#if defined(__GNUC__)
#define BK__RESILIENCE_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__RESILIENCE_HIDDEN
#endif

/* One GCRA round, called with the key's shard locked: *tat is the key's state
 * (found false: absent); returns true to store *tat as its new state. */
typedef bool (*bk__ratelimit_step_fn)(bool found, int64_t *tat, void *arg);

/* Whether store is the in-process store's (bk_ratelimit_memory_store), whose ud
 * bk__memstore_update accepts. */
BK__RESILIENCE_HIDDEN bool bk__memstore_is(const bk_ratelimit_store_t *store);
/* step under the lock of key's shard; BK_OK, or BK_ENOMEM when a new key could
 * not be stored (step's answer then stands unstored). */
BK__RESILIENCE_HIDDEN int bk__memstore_update(void *ud, const char *key, bk__ratelimit_step_fn step, void *arg);

/* The delay after attempt (1-based) failed, on o's schedule (base_ns, cap_ns,
 * jitter and clock are read; max_attempts, deadline, budget are not): the
 * same delays, jitter included, as bk_retry_next gives at that attempt. For
 * retries that outlive a process (jobs, saga steps), which count attempts in
 * a table instead of a bk_retry_t. base_ns when o is invalid. */
BK__RESILIENCE_HIDDEN int64_t bk__retry_delay(const bk_retry_opts_t *o, int attempt);

#endif
