/* Secure random bytes from OpenSSL's CSPRNG (seeded from the kernel, fork-safe).
 * SPDX-License-Identifier: MIT */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <openssl/rand.h>

#include <backend/core.h>

#include "core/random_int.h"

int bk_random_bytes(void *buf, size_t len)
{
    if (buf == NULL && len > 0)
        return BK_EINVAL;
    unsigned char *p = buf;
    /* RAND_bytes takes an int length: feed it in chunks. */
    while (len > 0) {
        int chunk = len > INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(p, chunk) != 1)
            return BK_EIO;
        p += chunk;
        len -= (size_t)chunk;
    }
    return BK_OK;
}

/* ------------------------------------------------------------------ ids */

/* OpenSSL 3's RAND_bytes costs microseconds a call whatever its length, too
 * much for a few bytes per request: each thread keeps a block it refills. A
 * fork makes every block stale (the child would hand out its parent's). */
enum { ID_BLOCK = 4096 };
static atomic_uint id_generation = 1;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

static void id_forked(void) { atomic_fetch_add(&id_generation, 1); }

static void id_init(void) { pthread_atfork(NULL, NULL, id_forked); }

int bk__random_id_bytes(void *buf, size_t len)
{
    static _Thread_local struct {
        unsigned char b[ID_BLOCK];
        size_t pos;
        unsigned generation;
    } block;
    if (len > ID_BLOCK / 8)
        return bk_random_bytes(buf, len);
    pthread_once(&id_once, id_init);
    unsigned g = atomic_load(&id_generation);
    if (block.generation != g || block.pos + len > ID_BLOCK) {
        int rc = bk_random_bytes(block.b, ID_BLOCK);
        if (rc != BK_OK)
            return rc;
        block.pos = 0;
        block.generation = g;
    }
    memcpy(buf, block.b + block.pos, len);
    block.pos += len;
    return BK_OK;
}
