/* Percent-decoding into a caller's buffer.
 * SPDX-License-Identifier: MIT */
#include "core/pct_int.h"

int bk__hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

bool bk__pct_decode_into(const char *s, size_t len, unsigned flags, char *out, size_t *out_len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (len - i < 3) /* fewer than two hex digits follow */
                return false;
            int h = bk__hexval((unsigned char)s[i + 1]), l = bk__hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return false;
            c = (char)(h * 16 + l);
            if (c == '\0' && (flags & BK__PCT_NO_NUL))
                return false;
            i += 2;
        } else if (c == '+' && (flags & BK__PCT_PLUS_SPACE)) {
            c = ' ';
        }
        out[n++] = c; /* n <= i: in place never overwrites what is still to read */
    }
    *out_len = n;
    return true;
}
