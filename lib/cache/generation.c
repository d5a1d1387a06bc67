/* Namespace generations: a new random one, and memcached's copy of a
 * namespace's (read, created when absent, replaced). cache.c keeps them as
 * entries of the local store.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote_int.h"

int bk__cache_new_generation(char text[GEN_LEN + 1])
{
    uint64_t gen;
    int rc = bk_random_bytes(&gen, sizeof gen);
    if (rc == BK_OK)
        snprintf(text, GEN_LEN + 1, "%016" PRIx64, gen);
    return rc;
}

int bk__remote_generation(struct bk__remote *r, const char *ns, char text[GEN_LEN + 1])
{
    char k[MAX_KEY + 1];
    size_t klen = bk__remote_key(r, 'g', ns, k);
    for (int attempt = 0; attempt < 2; attempt++) {
        char *val;
        size_t vlen;
        uint32_t flags;
        uint64_t cas;
        int rc = bk__remote_gets(r, k, klen, &val, &vlen, &flags, &cas);
        if (rc == BK_OK) {
            bool ok = vlen == GEN_LEN && strspn(val, "0123456789abcdef") == GEN_LEN;
            if (ok)
                memcpy(text, val, GEN_LEN + 1);
            free(val);
            if (ok)
                return BK_OK;
            rc = BK_ENOTFOUND; /* not ours: replace it */
        }
        if (rc != BK_ENOTFOUND)
            return rc;
        if ((rc = bk__cache_new_generation(text)) != BK_OK)
            return rc;
        rc = bk__remote_store(r, BK__OP_ADD, k, klen, text, GEN_LEN, 0, 0, 0);
        if (rc != BK_EEXIST)
            return rc; /* BK_OK: ours is the generation */
    }
    return BK_EUNAVAIL;
}

int bk__remote_set_generation(struct bk__remote *r, const char *ns, const char text[GEN_LEN + 1])
{
    char k[MAX_KEY + 1];
    size_t klen = bk__remote_key(r, 'g', ns, k);
    return bk__remote_store(r, BK__OP_SET, k, klen, text, GEN_LEN, 0, 0, 0);
}

