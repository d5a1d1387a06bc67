/* Public structs keep their size from release to release, so that a binary
 * built against an older header still works: a new field takes its room from the
 * struct's reserved_ tail (HACKING.md, "Growing a struct"). Each module asserts the
 * size of its public structs on LP64 (amd64, arm64) next to their code, so that a
 * change that would alter a size fails to build.
 * SPDX-License-Identifier: MIT */
#ifndef BK_ABI_INT_H
#define BK_ABI_INT_H

#define BK__ASSERT_ABI_SIZE(type, lp64_size)                                                      \
    _Static_assert(sizeof(void *) != 8 || sizeof(type) == (lp64_size),                           \
                   #type " changed size: take the room from its reserved_ tail (HACKING.md)")

#endif
