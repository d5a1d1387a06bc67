/* jansson text, allocated and freed by jansson's allocator.
 * SPDX-License-Identifier: MIT */
#include "core/json_int.h"

char *bk__json_dump(const json_t *v, size_t flags)
{
    return v ? json_dumps(v, flags) : NULL;
}

void bk__json_free(void *p)
{
    if (p == NULL)
        return;
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    f(p);
}
