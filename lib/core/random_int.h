/* Random bytes for identifiers (trace and span ids), which are logged and sent
 * on: unique and unpredictable, but not secrets. Internal: hidden.
 * SPDX-License-Identifier: MIT */
#ifndef BK_RANDOM_INT_H
#define BK_RANDOM_INT_H

#include <stddef.h>

#if defined(__GNUC__)
#define BK__RANDOM_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__RANDOM_HIDDEN
#endif

/* len bytes from the CSPRNG through a per-thread block (refilled 4 KiB at a
 * time, and after a fork): nanoseconds a call where bk_random_bytes takes
 * microseconds. Never for keys, salts or tokens: those take bk_random_bytes. */
BK__RANDOM_HIDDEN int bk__random_id_bytes(void *buf, size_t len);

#endif
