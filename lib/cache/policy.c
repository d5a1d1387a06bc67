/* The cache's small policies, apart from any store: TTL jitter, XFetch's early
 * refresh, the copy every answer is handed out as.
 * SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"

double bk__cache_jitter(unsigned pct)
{
    uint32_t r = 0;
    if (pct == 0 || bk_random_bytes(&r, sizeof r) != BK_OK)
        return 1.0;
    return 1.0 + ((double)r / 4294967295.0 * 2.0 - 1.0) * pct / 100.0;
}

int bk__cache_copy(const void *value, size_t len, void **out, size_t *outlen)
{
    char *v = malloc(len + 1);
    if (!v)
        return BK_ENOMEM;
    if (len)
        memcpy(v, value, len);
    v[len] = '\0';
    *out = v;
    if (outlen)
        *outlen = len;
    return BK_OK;
}

bool bk__cache_early(double beta, int64_t load_ns, int64_t now, int64_t fresh_until)
{
    if (beta <= 0 || load_ns <= 0)
        return false;
    uint32_t r = 0;
    if (bk_random_bytes(&r, sizeof r) != BK_OK)
        return false;
    double u = ((double)r + 1.0) / 4294967296.0; /* (0, 1] */
    return (double)now - (double)load_ns * beta * log(u) >= (double)fresh_until;
}
