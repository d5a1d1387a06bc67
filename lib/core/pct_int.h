/* Percent-decoding (RFC 3986 2.1) of URI parts: query strings, path captures,
 * fragments. Internal: hidden, never part of the public API.
 * SPDX-License-Identifier: MIT */
#ifndef BK_PCT_INT_H
#define BK_PCT_INT_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__GNUC__)
#define BK__PCT_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__PCT_HIDDEN
#endif

enum {
    BK__PCT_PLUS_SPACE = 1 << 0, /* '+' decodes to ' ' (form encoding: query strings) */
    BK__PCT_NO_NUL = 1 << 1,     /* "%00" is refused (the result is used as a C string) */
};

/*
 * Decodes s[0..len) into out, which has room for at least len bytes (the result is
 * never longer than its input; out may be s itself, decoding in place). No NUL is
 * written. *out_len receives the decoded length. False when a '%' is not followed
 * by two hex digits, or (BK__PCT_NO_NUL) decodes to NUL; out's content is then
 * unspecified.
 */
/* The value of a hex digit (0-9, a-f, A-F), or -1. */
BK__PCT_HIDDEN int bk__hexval(unsigned char ch);

BK__PCT_HIDDEN bool bk__pct_decode_into(const char *s, size_t len, unsigned flags, char *out, size_t *out_len);

#endif
