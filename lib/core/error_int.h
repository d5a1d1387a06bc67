/* Filling a caller's bk_error_t: the one way every module reports detail beyond
 * its code. Internal: hidden, never part of the public API.
 * SPDX-License-Identifier: MIT */
#ifndef BK_ERROR_INT_H
#define BK_ERROR_INT_H

#include <stddef.h>

#include <backend/core.h>

#if defined(__GNUC__)
#define BK__ERROR_HIDDEN __attribute__((visibility("hidden")))
#define BK__ERROR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define BK__ERROR_HIDDEN
#define BK__ERROR_PRINTF(f, a)
#endif

/* Clears *err (NULL is fine): what a call taking a bk_error_t does first. */
BK__ERROR_HIDDEN void bk__error_clear(bk_error_t *err);

/*
 * Sets err->code to code and err->message to the formatted sentence (cut at a
 * character boundary when too long, and made valid UTF-8: it may quote input).
 * Returns code, so that a failure path reads: return bk__error(err, BK_EINVAL,
 * "...", ...). err may be NULL. fmt may be NULL: the message is bk_strerror(code).
 */
BK__ERROR_HIDDEN int bk__error(bk_error_t *err, int code, const char *fmt, ...) BK__ERROR_PRINTF(3, 4);

/* Copies src into one of err's fields of size dstsz (err->detail, ->sqlstate, ...),
 * cut at a character boundary and made valid UTF-8. src NULL gives "". */
BK__ERROR_HIDDEN void bk__error_field(char *dst, size_t dstsz, const char *src);

#endif
