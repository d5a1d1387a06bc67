/* Building and reading RFC 6901 JSON pointers, for the err->pointer of a bk_error_t (where in
 * a policy, a schema or a token's claims a call found the fault). Internal:
 * hidden, never part of the public API.
 * SPDX-License-Identifier: MIT */
#ifndef BK_JSONPTR_INT_H
#define BK_JSONPTR_INT_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__GNUC__)
#define BK__JSONPTR_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__JSONPTR_HIDDEN
#endif

/*
 * Appends "/" and the member name tok[0..len) (escaped: "~" as "~0", "/" as
 * "~1") to the NUL-terminated pointer in buf, of size bytes. When it does not fit,
 * buf is left as it was and the result is false: a pointer cut short still names
 * an ancestor of the place, never a wrong one. The bytes are copied as they are
 * (a NUL in tok ends the text there): pass the result through bk__error_field,
 * which makes it valid UTF-8.
 */
BK__JSONPTR_HIDDEN bool bk__jsonptr_append(char *buf, size_t size, const char *tok, size_t len);

/* The same with an array index ("/0"). */
BK__JSONPTR_HIDDEN bool bk__jsonptr_append_index(char *buf, size_t size, size_t idx);

/*
 * Writes the reference token tok[0..len) escaped ("~" as "~0", "/" as "~1"), without
 * a leading "/" and without a NUL, to out, and returns its length. With out NULL,
 * only returns the length (between len and 2 * len): size the buffer with it.
 */
BK__JSONPTR_HIDDEN size_t bk__jsonptr_escape(char *out, const char *tok, size_t len);

/*
 * Unescapes one reference token tok[0..len) (no "/" in it): "~0" becomes "~", "~1"
 * becomes "/". Writes at most len bytes to out (out may be tok itself), no NUL;
 * *out_len receives the length. False when a "~" is not followed by "0" or "1"
 * (RFC 6901 allows no other), out's content then unspecified.
 */
BK__JSONPTR_HIDDEN bool bk__jsonptr_unescape(char *out, const char *tok, size_t len, size_t *out_len);

#endif
