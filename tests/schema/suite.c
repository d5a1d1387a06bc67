/* Runs the official JSON Schema Test Suite (../shared/json-schema-test-suite, read
 * at test time, never copied here) through bk_schema:
 *   required   every .json file of tests/draft2020-12 and tests/draft7;
 *   formats    those of tests/DRAFT/optional/format, with format assertion on;
 *   optional   the other files of tests/DRAFT/optional, reported only.
 * remotes/ is registered as http://localhost:1234/. Prints one line per file and
 * one total per group; fails when a required test or a test of a format the
 * library asserts fails. Each failure is printed with its case and test.
 * Usage: suite [SUITE_DIR]   (default $top_srcdir/../shared/json-schema-test-suite)
 * SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <backend/schema.h>

typedef struct group {
    const char *name;
    int passed, failed;
    bool gating; /* failures fail the run */
} group_t;

/* Formats the library does not assert: their tests are reported, not gating. */
static const char *const UNASSERTED[] = {"idn-email.json", "idn-hostname.json", "iri.json", "iri-reference.json",
                                         "uri-template.json", NULL};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names in dir ending in .json (or, with dirs, the subdirectories). */
static char **list_dir(const char *dir, bool dirs, size_t *n)
{
    DIR *d = opendir(dir);
    char **v = NULL;
    *n = 0;
    if (!d)
        return NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || S_ISDIR(st.st_mode) != dirs)
            continue;
        size_t len = strlen(e->d_name);
        if (!dirs && (len < 5 || strcmp(e->d_name + len - 5, ".json") != 0))
            continue;
        v = realloc(v, (*n + 1) * sizeof *v);
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n)
        qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Registers every .json under dir as base + its relative path. */
static void add_remotes(bk_schema_registry_t *reg, const char *dir, const char *base)
{
    size_t n;
    char **files = list_dir(dir, false, &n);
    for (size_t i = 0; i < n; i++) {
        char path[4096], uri[4096];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        snprintf(uri, sizeof uri, "%s%s", base, files[i]);
        json_error_t jerr;
        json_t *doc = json_load_file(path, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!doc || bk_schema_registry_add(reg, uri, doc) != BK_OK) {
            fprintf(stderr, "suite: cannot register %s: %s\n", path, doc ? "registry refused it" : jerr.text);
            exit(2);
        }
        json_decref(doc);
    }
    free_list(files, n);
    char **dirs = list_dir(dir, true, &n);
    for (size_t i = 0; i < n; i++) {
        char path[4096], sub[4096];
        snprintf(path, sizeof path, "%s/%s", dir, dirs[i]);
        snprintf(sub, sizeof sub, "%s%s/", base, dirs[i]);
        add_remotes(reg, path, sub);
    }
    free_list(dirs, n);
}

static void run_file(const char *path, const char *shown, int draft, bool format_assert,
                     const bk_schema_registry_t *reg, group_t *g, bool gating)
{
    json_error_t jerr;
    json_t *cases = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (!cases) /* bignum.json: integers past 64 bits load as reals, as a server would */
        cases = json_load_file(path, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!json_is_array(cases)) {
        fprintf(stderr, "suite: cannot read %s: %s\n", path, jerr.text);
        exit(2);
    }
    int passed = 0, failed = 0;
    size_t i;
    json_t *tc;
    json_array_foreach(cases, i, tc) {
        bk_schema_opts_t o;
        bk_schema_opts_init(&o);
        o.draft = draft;
        o.format_assert = format_assert;
        o.registry = reg;
        bk_schema_t *s = NULL;
        bk_error_t err;
        int rc = bk_schema_compile(json_object_get(tc, "schema"), &o, &s, &err);
        const char *cdesc = json_string_value(json_object_get(tc, "description"));
        size_t j;
        json_t *t;
        json_array_foreach(json_object_get(tc, "tests"), j, t) {
            bool want = json_is_true(json_object_get(t, "valid"));
            const char *tdesc = json_string_value(json_object_get(t, "description"));
            if (rc != BK_OK) {
                failed++;
                printf("  FAIL %s | %s | %s: schema not compiled: %s\n", shown, cdesc, tdesc, err.message);
                continue;
            }
            int vr = bk_schema_validate(s, json_object_get(t, "data"), 0, NULL);
            bool got = vr == BK_OK;
            if (vr != BK_OK && vr != BK_EINVAL) {
                failed++;
                printf("  FAIL %s | %s | %s: %s\n", shown, cdesc, tdesc, bk_strerror(vr));
            } else if (got != want) {
                failed++;
                printf("  FAIL %s | %s | %s: %s, expected %s\n", shown, cdesc, tdesc, got ? "valid" : "invalid",
                       want ? "valid" : "invalid");
            } else {
                passed++;
            }
        }
        bk_schema_free(s);
    }
    json_decref(cases);
    printf("%-52s %d passed, %d failed%s\n", shown, passed, failed, gating ? "" : " (not gating)");
    g->passed += passed;
    g->failed += failed;
}

static bool unasserted(const char *file)
{
    for (size_t i = 0; UNASSERTED[i]; i++)
        if (strcmp(file, UNASSERTED[i]) == 0)
            return true;
    return false;
}

/* Runs every .json file of root/sub. kind: 'r' required, 'f' formats, 'o' optional. */
static void run_dir(const char *root, const char *sub, int draft, char kind, const bk_schema_registry_t *reg,
                    group_t *g, group_t *info)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/%s", root, sub);
    size_t n;
    char **files = list_dir(dir, false, &n);
    if (!n) {
        fprintf(stderr, "suite: no test files in %s\n", dir);
        exit(2);
    }
    for (size_t i = 0; i < n; i++) {
        char path[8192], shown[512];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        snprintf(shown, sizeof shown, "%s/%s", sub, files[i]);
        bool gating = kind == 'r' || (kind == 'f' && !unasserted(files[i]));
        run_file(path, shown, draft, kind == 'f', reg, gating ? g : info, gating);
    }
    free_list(files, n);
}

int main(int argc, char **argv)
{
    char root[4096];
    const char *top = getenv("top_srcdir");
    if (argc > 1)
        snprintf(root, sizeof root, "%s", argv[1]);
    else
        snprintf(root, sizeof root, "%s/../shared/json-schema-test-suite", top ? top : ".");
    char remotes[4200];
    snprintf(remotes, sizeof remotes, "%s/remotes", root);
    struct stat st;
    if (stat(remotes, &st) != 0) {
        fprintf(stderr, "suite: the JSON Schema Test Suite is not at %s\n", root);
        return 2;
    }
    bk_schema_registry_t *reg;
    if (bk_schema_registry_new(&reg) != BK_OK)
        return 2;
    add_remotes(reg, remotes, "http://localhost:1234/");

    group_t required = {"required", 0, 0, true}, formats = {"formats", 0, 0, true};
    group_t optional = {"optional (not gating)", 0, 0, false};
    run_dir(root, "draft2020-12", BK_SCHEMA_DRAFT_2020_12, 'r', reg, &required, &optional);
    run_dir(root, "draft7", BK_SCHEMA_DRAFT_7, 'r', reg, &required, &optional);
    run_dir(root, "draft2020-12/optional/format", BK_SCHEMA_DRAFT_2020_12, 'f', reg, &formats, &optional);
    run_dir(root, "draft7/optional/format", BK_SCHEMA_DRAFT_7, 'f', reg, &formats, &optional);
    run_dir(root, "draft2020-12/optional", BK_SCHEMA_DRAFT_2020_12, 'o', reg, &optional, &optional);
    run_dir(root, "draft7/optional", BK_SCHEMA_DRAFT_7, 'o', reg, &optional, &optional);
    bk_schema_registry_free(reg);

    group_t *groups[] = {&required, &formats, &optional};
    for (size_t i = 0; i < 3; i++)
        printf("%s: %d passed, %d failed\n", groups[i]->name, groups[i]->passed, groups[i]->failed);
    printf("total: %d passed, %d failed\n", required.passed + formats.passed, required.failed + formats.failed);
    return required.failed || formats.failed ? 1 : 0;
}
