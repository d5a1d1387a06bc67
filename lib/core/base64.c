/* The base64 of base64_int.h.
 * SPDX-License-Identifier: MIT */
#include <stdint.h>

#include "core/base64_int.h"

static const char STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t bk__b64_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t bk__b64_encode(const unsigned char *in, size_t n, char *out, bool url)
{
    const char *a = url ? URL : STD;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18], out[o++] = a[v >> 12 & 63], out[o++] = a[v >> 6 & 63], out[o++] = a[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = a[v >> 18], out[o++] = a[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = a[v >> 18], out[o++] = a[v >> 12 & 63], out[o++] = a[v >> 6 & 63];
    }
    return o;
}

int bk__b64_value(unsigned char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    return c == (url ? '_' : '/') ? 63 : -1;
}

long bk__b64_decode(const char *in, size_t n, unsigned char *out, bool url)
{
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        int v = bk__b64_value((unsigned char)in[i], url);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        if (i % 4 == 3) {
            if (out)
                out[o] = (unsigned char)(acc >> 16), out[o + 1] = (unsigned char)(acc >> 8),
                out[o + 2] = (unsigned char)acc;
            o += 3;
            acc = 0;
        }
    }
    if (n % 4 == 2) {
        if (acc & 0xF)
            return -1;
        if (out)
            out[o] = (unsigned char)(acc >> 4);
        o += 1;
    } else if (n % 4 == 3) {
        if (acc & 0x3)
            return -1;
        if (out)
            out[o] = (unsigned char)(acc >> 10), out[o + 1] = (unsigned char)(acc >> 2);
        o += 2;
    }
    return (long)o;
}
