/* Secure random bytes from OpenSSL's CSPRNG (seeded from the kernel, fork-safe).
 * SPDX-License-Identifier: MIT */
#include <limits.h>

#include <openssl/rand.h>

#include <backend/core.h>

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
