/* The entry codec: the 22-byte header in front of every value we store in
 * memcached (remote_int.h gives the layout). Pure bytes: no clock, no memcached.
 * SPDX-License-Identifier: MIT */
#include <stdint.h>

#include "remote_int.h"

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void bk__entry_encode(unsigned char buf[BK__ENTRY_HDR], const struct bk__entry_header *h)
{
    uint64_t load_us = (uint64_t)(h->load_ns / 1000);
    if (load_us > UINT32_MAX)
        load_us = UINT32_MAX;
    buf[0] = 1;
    buf[1] = (unsigned char)h->flags;
    put_be64(buf + 2, (uint64_t)h->fresh_until);
    put_be64(buf + 10, (uint64_t)h->stale_until);
    buf[18] = (unsigned char)(load_us >> 24);
    buf[19] = (unsigned char)(load_us >> 16);
    buf[20] = (unsigned char)(load_us >> 8);
    buf[21] = (unsigned char)load_us;
}

bool bk__entry_decode(const char *buf, size_t len, uint32_t mcflags, struct bk__entry_header *h)
{
    const unsigned char *p = (const unsigned char *)buf;
    if (mcflags != BK__ENTRY_FLAGS || len < BK__ENTRY_HDR || p[0] != 1)
        return false;
    h->flags = p[1];
    h->fresh_until = (int64_t)get_be64(p + 2);
    h->stale_until = (int64_t)get_be64(p + 10);
    h->load_ns = (int64_t)((uint64_t)p[18] << 24 | (uint64_t)p[19] << 16 | (uint64_t)p[20] << 8 | p[21]) * 1000;
    return true;
}
