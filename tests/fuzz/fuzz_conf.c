/* libFuzzer target: backendd's configuration parser (daemon/conf.c, built into
 * the target). The input is the file; it is read through conf_load with an
 * environment of its own, in normal and --dev mode. Every problem found must
 * name where (FILE:LINE or the key) and why, and what loads must be freed whole.
 * SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* memfd_create */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"
#include "fuzz.h"

BK_FUZZ_INIT
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("backendd.conf", MFD_CLOEXEC);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    static char *const envp[] = {"BACKENDD_LOG_LEVEL=debug", "BACKENDD_IO_THREADS=2", "HOME=/nonexistent", NULL};
    for (int dev = 0; dev < 2; dev++) {
        struct conf c;
        struct conf_problems problems = {0};
        size_t n = conf_load(&c, path, envp, dev, &problems);
        if (n != problems.n)
            abort(); /* the count is the list's */
        for (size_t i = 0; i < problems.n; i++)
            if (!problems.items[i].where || !*problems.items[i].where || !problems.items[i].message ||
                !*problems.items[i].message)
                abort(); /* a problem says where and why */
        conf_problems_free(&problems);
        conf_free(&c);
    }
    close(fd);
    return 0;
}
