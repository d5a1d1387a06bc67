/* RFC 6901 JSON pointers, built one token at a time into a bounded buffer.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "core/jsonptr_int.h"

size_t bk__jsonptr_escape(char *out, const char *tok, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        bool esc = tok[i] == '~' || tok[i] == '/';
        if (out && esc) {
            out[n] = '~';
            out[n + 1] = tok[i] == '~' ? '0' : '1';
        } else if (out) {
            out[n] = tok[i];
        }
        n += esc ? 2 : 1;
    }
    return n;
}

bool bk__jsonptr_unescape(char *out, const char *tok, size_t len, size_t *out_len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (tok[i] == '~') {
            if (i + 1 == len || (tok[i + 1] != '0' && tok[i + 1] != '1'))
                return false;
            out[n++] = tok[++i] == '0' ? '~' : '/';
        } else {
            out[n++] = tok[i]; /* n <= i: in place never overwrites what is still to read */
        }
    }
    *out_len = n;
    return true;
}

bool bk__jsonptr_append(char *buf, size_t size, const char *tok, size_t len)
{
    size_t used = strnlen(buf, size), need = 1 + bk__jsonptr_escape(NULL, tok, len);
    if (used >= size || need >= size - used)
        return false;
    char *o = buf + used;
    *o++ = '/';
    o += bk__jsonptr_escape(o, tok, len);
    *o = '\0';
    return true;
}

bool bk__jsonptr_append_index(char *buf, size_t size, size_t idx)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%zu", idx);
    return bk__jsonptr_append(buf, size, num, (size_t)n);
}
