/* make check's side of a fuzz target: no libFuzzer, the same entry points
 * (fuzz.h) called on every file of the target's seed corpus
 * (tests/fuzz/corpus/NAME/) and of its regression inputs
 * (tests/fuzz/regress/NAME/: what a fuzzer once found, kept so that it stays
 * fixed), or on the files and directories given as arguments. Built once per
 * target with BK_FUZZ_NAME; under the sanitizers and valgrind as every test.
 * SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static size_t ran;

static void one(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    size_t cap = 4096, len = 0;
    unsigned char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", path);
        exit(1);
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    ran++;
}

/* Every regular file of path, a directory, in name order; or path itself. */
static void each(const char *path, int must_exist)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (must_exist) {
            perror(path);
            exit(1);
        }
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        one(path);
        return;
    }
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode))
            one(p);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            each(argv[i], 1);
    } else {
        const char *top = getenv("top_srcdir");
        char p[4096];
        snprintf(p, sizeof p, "%s/tests/fuzz/corpus/%s", top ? top : ".", BK_FUZZ_NAME);
        each(p, 1);
        snprintf(p, sizeof p, "%s/tests/fuzz/regress/%s", top ? top : ".", BK_FUZZ_NAME);
        each(p, 0);
    }
    printf("PASS: fuzz target %s: %zu inputs replayed\n", BK_FUZZ_NAME, ran);
    return ran > 0 ? 0 : 1;
}
