/* Base64 without padding (RFC 4648): the URL-safe alphabet of JWS (section 5) or
 * the standard one of PHC password hashes (section 4). Decoding is strict and
 * canonical: the alphabet only, no padding or whitespace, no length of 1 mod 4,
 * and the unused bits of the last character zero, so each byte string has one
 * encoding. Internal: hidden, never part of the public API.
 * SPDX-License-Identifier: MIT */
#ifndef BK_BASE64_INT_H
#define BK_BASE64_INT_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__GNUC__)
#define BK__B64_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__B64_HIDDEN
#endif

/* The length of the encoding of n bytes. */
BK__B64_HIDDEN size_t bk__b64_encoded_len(size_t n);
/* Writes the encoding of in[0..n) at out (no NUL); returns its length. */
BK__B64_HIDDEN size_t bk__b64_encode(const unsigned char *in, size_t n, char *out, bool url);
/* The 6-bit value of c in the alphabet, or -1. */
BK__B64_HIDDEN int bk__b64_value(unsigned char c, bool url);
/* Decodes in[0..n) into out (room for n * 3 / 4 bytes; NULL only checks);
 * returns the decoded length, or -1 when the input is not canonical base64. */
BK__B64_HIDDEN long bk__b64_decode(const char *in, size_t n, unsigned char *out, bool url);

#endif
