/* UTF-8 validation and repair (Unicode 15, table 3-7 well-formed byte sequences).
 * SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8_int.h"

#define REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD */
#define REPLACEMENT_LEN 3

/* Length of the well-formed sequence at s[0..len) (len >= 1), or 0 if it is
 * ill-formed; then *bad receives the length of the maximal ill-formed subpart
 * (at least 1), which is replaced by one U+FFFD. */
static size_t sequence(const unsigned char *s, size_t len, size_t *bad)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2; /* 0xC0, 0xC1 could only start overlong forms */
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* > U+10FFFF */
    } else {
        *bad = 1; /* a continuation byte, 0xC0, 0xC1 or 0xF5..0xFF */
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        unsigned char min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xBF;
        if (i >= len || s[i] < min || s[i] > max) {
            *bad = i;
            return 0;
        }
    }
    return need;
}

bool bk__utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, bad;
    while (i < len) {
        if (p[i] < 0x80) { /* ASCII runs are the common case */
            i++;
            continue;
        }
        size_t n = sequence(p + i, len - i, &bad);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

size_t bk__utf8_repaired_len(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0, bad;
    while (i < len) {
        size_t n = sequence(p + i, len - i, &bad);
        size_t grow = n > 0 ? n : REPLACEMENT_LEN;
        if (o > SIZE_MAX - grow)
            return SIZE_MAX;
        o += grow;
        i += n > 0 ? n : bad;
    }
    return o;
}

char *bk__utf8_repair(const char *s, size_t len, size_t *out_len)
{
    size_t total = bk__utf8_repaired_len(s, len);
    if (total == SIZE_MAX)
        return NULL;
    char *out = malloc(total + 1);
    if (out == NULL)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0, bad;
    while (i < len) {
        size_t n = sequence(p + i, len - i, &bad);
        if (n > 0) {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, REPLACEMENT, REPLACEMENT_LEN);
            o += REPLACEMENT_LEN;
            i += bad;
        }
    }
    out[o] = '\0';
    if (out_len != NULL)
        *out_len = o;
    return out;
}

size_t bk__utf8_count(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80; /* every byte but continuations */
    return n;
}
