/* The memcached key of one of our keys: prefix and kind in front, hashed when
 * memcached could not take it as it is.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "remote_int.h"

bool bk__remote_key_char_ok(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f;
}

size_t bk__remote_key(const struct bk__remote *r, char kind, const char *key, char out[MAX_KEY + 1])
{
    size_t plen = strlen(r->prefix), klen = strlen(key);
    bool plain = plen + 2 + klen <= MAX_KEY;
    for (size_t i = 0; plain && i < klen; i++)
        plain = bk__remote_key_char_ok((unsigned char)key[i]);
    if (plain) {
        memcpy(out, r->prefix, plen);
        out[plen] = kind;
        out[plen + 1] = ':';
        memcpy(out + plen + 2, key, klen + 1);
        return plen + 2 + klen;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, klen, md);
    size_t n = (size_t)snprintf(out, MAX_KEY + 1, "%s%c#", r->prefix, kind);
    for (size_t i = 0; i < sizeof md; i++)
        n += (size_t)snprintf(out + n, MAX_KEY + 1 - n, "%02x", md[i]);
    return n;
}
