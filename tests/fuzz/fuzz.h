/* What the fuzz targets of tests/fuzz/ share: the entry points libFuzzer calls,
 * which tests/fuzz/replay.c calls too (make check replays each target's seeds
 * and regression inputs without libFuzzer).
 * SPDX-License-Identifier: MIT */
#ifndef BK_TESTS_FUZZ_H
#define BK_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The target's one-time set-up, before any input: BK_FUZZ_INIT { ... }. */
#define BK_FUZZ_INIT                                                                                           \
    static void bk_fuzz_init(void);                                                                            \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                                                          \
    {                                                                                                          \
        (void)argc;                                                                                            \
        (void)argv;                                                                                            \
        bk_fuzz_init();                                                                                        \
        return 0;                                                                                              \
    }                                                                                                          \
    static void bk_fuzz_init(void)

#endif
