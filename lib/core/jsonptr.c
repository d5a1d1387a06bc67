/* RFC 6901 JSON pointers, built one token at a time into a bounded buffer.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "core/jsonptr_int.h"

bool bk__jsonptr_append(char *buf, size_t size, const char *tok, size_t len)
{
    size_t used = strnlen(buf, size), need = 1 + len;
    for (size_t i = 0; i < len; i++)
        need += tok[i] == '~' || tok[i] == '/';
    if (used >= size || need >= size - used)
        return false;
    char *o = buf + used;
    *o++ = '/';
    for (size_t i = 0; i < len; i++) {
        if (tok[i] == '~' || tok[i] == '/') {
            *o++ = '~';
            *o++ = tok[i] == '~' ? '0' : '1';
        } else {
            *o++ = tok[i];
        }
    }
    *o = '\0';
    return true;
}

bool bk__jsonptr_append_index(char *buf, size_t size, size_t idx)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%zu", idx);
    return bk__jsonptr_append(buf, size, num, (size_t)n);
}
