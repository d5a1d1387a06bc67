/* UTF-8 validation and repair for text that leaves the process (log lines, later
 * HTTP bodies). Internal: hidden, never part of the public API.
 * SPDX-License-Identifier: MIT */
#ifndef BK_UTF8_INT_H
#define BK_UTF8_INT_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__GNUC__)
#define BK__UTF8_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__UTF8_HIDDEN
#endif

/*
 * Well-formed means the byte sequences of Unicode table 3-7: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequences.
 * NUL bytes are well-formed (U+0000): these functions work on lengths, not C strings.
 */

/* True if s[0..len) is well-formed UTF-8. s may be NULL when len is 0. */
BK__UTF8_HIDDEN bool bk__utf8_valid(const char *s, size_t len);

/*
 * The length bk__utf8_repair() would give s[0..len): len itself when s is
 * well-formed, more when it is not (each U+FFFD takes 3 bytes).
 * SIZE_MAX if that length would not fit in a size_t.
 */
BK__UTF8_HIDDEN size_t bk__utf8_repaired_len(const char *s, size_t len);

/*
 * Returns a NUL-terminated malloc'ed copy of s[0..len) in which every ill-formed
 * sequence is replaced by U+FFFD (EF BF BD), one per maximal ill-formed subpart as
 * Unicode recommends (so "\xE2\x82" gives one U+FFFD, "\xC0\xAF" two); valid
 * sequences are copied unchanged. *out_len (if not NULL) receives the length
 * without the NUL. The caller frees the result. NULL when out of memory.
 */
BK__UTF8_HIDDEN char *bk__utf8_repair(const char *s, size_t len, size_t *out_len);

/*
 * The number of code points in s[0..len), well-formed UTF-8: every byte that is
 * not a continuation byte (10xxxxxx) starts one. On ill-formed input this counts
 * lead and stray bytes; validate first where that matters.
 */
BK__UTF8_HIDDEN size_t bk__utf8_count(const char *s, size_t len);

#endif
