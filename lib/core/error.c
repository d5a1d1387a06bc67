/* bk_error_t: clearing it, and writing its text fields so that a reader can
 * always print them: NUL-terminated, valid UTF-8, never cut inside a character.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/abi_int.h"
#include "core/error_int.h"
#include "core/utf8_int.h"

BK__ASSERT_ABI_SIZE(bk_error_t, 1168);

void bk__error_clear(bk_error_t *err)
{
    if (err != NULL)
        memset(err, 0, sizeof *err);
}

/* Cuts s (NUL-terminated, at most n bytes) so that it does not end inside a UTF-8
 * sequence that snprintf's truncation left incomplete. */
static void trim_partial(char *s)
{
    size_t len = strlen(s), i = len;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--; /* back over continuation bytes to the lead byte */
    if (i > 0 && (unsigned char)s[i - 1] >= 0xC0 && !bk__utf8_valid(s + i - 1, len - i + 1))
        s[i - 1] = '\0';
}

void bk__error_field(char *dst, size_t dstsz, const char *src)
{
    if (dstsz == 0)
        return;
    dst[0] = '\0';
    if (src == NULL)
        return;
    size_t len = strlen(src);
    if (!bk__utf8_valid(src, len)) {
        char *fixed = bk__utf8_repair(src, len, NULL);
        snprintf(dst, dstsz, "%s", fixed != NULL ? fixed : "");
        free(fixed);
    } else {
        snprintf(dst, dstsz, "%s", src);
    }
    trim_partial(dst);
}

int bk__error(bk_error_t *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    if (fmt == NULL) {
        bk__error_field(err->message, sizeof err->message, bk_strerror(code));
        return code;
    }
    char buf[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    bk__error_field(err->message, sizeof err->message, buf);
    return code;
}
