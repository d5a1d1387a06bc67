/* libFuzzer target: the cache's entry format (lib/cache/entry.c, built into
 * the target), as a memcached value another process (or a stranger with access
 * to memcached) wrote: the 22-byte header is read only when it is ours (item
 * flags, length, version), and what is read writes back to the same bytes; the
 * value after it is parsed as the JSON layer parses it.
 * Input: 4 bytes of memcached item flags (big-endian), then the value.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cache/remote_int.h"
#include "fuzz.h"

BK_FUZZ_INIT
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint32_t flags = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
    const char *v = (const char *)data + 4;
    size_t len = size - 4;
    struct bk__entry_header h;
    if (!bk__entry_decode(v, len, flags, &h))
        return 0;
    if (flags != BK__ENTRY_FLAGS || len < BK__ENTRY_HDR)
        abort(); /* read what is not ours */
    unsigned char again[BK__ENTRY_HDR];
    bk__entry_encode(again, &h);
    if (memcmp(again, v, BK__ENTRY_HDR) != 0)
        abort(); /* what was read does not write back to the same header */
    json_error_t je;
    json_t *doc = json_loadb(v + BK__ENTRY_HDR, len - BK__ENTRY_HDR, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    json_decref(doc);
    return 0;
}
