/* UTF-8 repair for text that leaves the process (log lines, later HTTP bodies).
 * SPDX-License-Identifier: MIT */
#ifndef BK_UTF8_INT_H
#define BK_UTF8_INT_H

#include <stdbool.h>
#include <stddef.h>

/* True if s[0..len) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
bool bk__utf8_valid(const char *s, size_t len);

/*
 * Returns a NUL-terminated malloc'ed copy of s[0..len) in which every ill-formed
 * sequence is replaced by U+FFFD (one per maximal ill-formed subpart, as Unicode
 * recommends); *out_len receives its length. NULL when out of memory.
 */
char *bk__utf8_repair(const char *s, size_t len, size_t *out_len);

#endif
