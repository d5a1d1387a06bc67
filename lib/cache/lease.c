/* The cross-process lease: only an efficiency lock. It is an add of a lock key
 * holding a random token, released by its owner alone (read with its CAS value,
 * then a CAS with an expiry in the past). If it is lost or never granted, a load
 * happens twice; nothing is wrong.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote_int.h"

enum bk__lease bk__lease_take(struct bk__remote *r, const char *lk, size_t lklen, char token[33])
{
    unsigned char raw[16];
    if (bk_random_bytes(raw, sizeof raw) != BK_OK)
        return BK__LEASE_FAILED;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(token + 2 * i, 3, "%02x", raw[i]);
    int rc = bk__remote_store(r, BK__OP_ADD, lk, lklen, token, 32, bk__remote_expiry(r->lease_ttl_ns), 0, 0);
    return rc == BK_OK ? BK__LEASE_GOT : rc == BK_EEXIST ? BK__LEASE_TAKEN : BK__LEASE_FAILED;
}

void bk__lease_release(struct bk__remote *r, const char *lk, size_t lklen, const char token[33])
{
    char *val;
    size_t vlen;
    uint32_t flags;
    uint64_t cas;
    if (bk__remote_gets(r, lk, lklen, &val, &vlen, &flags, &cas) != BK_OK)
        return;
    if (vlen == 32 && memcmp(val, token, 32) == 0)
        bk__remote_store(r, BK__OP_CAS, lk, lklen, "", 0, EXPIRE_NOW, 0, cas);
    free(val);
}
