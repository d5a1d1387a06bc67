/* Runs the official JSON Schema Test Suite (read at test time, never copied here)
 * through bk_schema:
 *   required   every .json file of tests/draft2020-12 and tests/draft7;
 *   formats    those of tests/DRAFT/optional/format, with format assertion on;
 *   optional   the other files of tests/DRAFT/optional, reported only.
 * remotes/ is registered as http://localhost:1234/. Prints one line per file and
 * one total per group; fails when a required test or a test of a format the
 * library asserts fails. Each failure is printed with its case and test.
 *
 * Where the suite is (the first that applies):
 *   1. the argument:                    suite SUITE_DIR
 *   2. $BK_JSON_SCHEMA_TEST_SUITE       (must exist when set: a wrong path is an error, not a fallback)
 *   3. $top_srcdir/../shared/json-schema-test-suite   (the project's CI layout: both drafts)
 *   4. /usr/share/json-schema-test-suite   (Debian's json-schema-test-suite, which the top-level
 *      Makefile installs: a 2019 suite with draft7 and no draft2020-12)
 * so a plain clone passes `make check` with the draft-07 tests alone. Each draft
 * present is run; under CI=true both must be present (CI tests 2020-12 too). The
 * run prints where the suite came from and how many cases of which drafts ran.
 * SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <limits.h>
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

/* What ran, for the closing summary: test cases (one schema each) and their tests. */
static int cases_run, tests_run;

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
        cases_run++;
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
            tests_run++;
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
    char dir[4096 + 128]; /* the root (4096 at most), "/tests/" and a draft subdirectory */
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

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A suite is a directory with remotes/ and tests/. */
static bool is_suite(const char *root)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/remotes", root);
    if (!is_dir(p))
        return false;
    snprintf(p, sizeof p, "%s/tests", root);
    return is_dir(p);
}

#define DEBIAN_SUITE "/usr/share/json-schema-test-suite"

/* Finds the suite (the order in the comment at the top); fills root and from, or
 * prints why there is none and returns false. */
static bool find_suite(int argc, char **argv, char *root, size_t rootsz, const char **from)
{
    const char *env = getenv("BK_JSON_SCHEMA_TEST_SUITE");
    const char *top = getenv("top_srcdir");
    if (argc > 1) {
        snprintf(root, rootsz, "%s", argv[1]);
        *from = "the command line";
    } else if (env && *env) {
        snprintf(root, rootsz, "%s", env);
        *from = "BK_JSON_SCHEMA_TEST_SUITE";
    } else {
        snprintf(root, rootsz, "%s/../shared/json-schema-test-suite", top ? top : ".");
        *from = "../shared beside the source tree";
        if (!is_suite(root)) {
            snprintf(root, rootsz, "%s", DEBIAN_SUITE);
            *from = "Debian's json-schema-test-suite package";
        }
    }
    if (is_suite(root)) {
        char real[PATH_MAX]; /* printed resolved: "build/../../shared/..." says little */
        if (realpath(root, real))
            snprintf(root, rootsz, "%s", real);
        return true;
    }
    if (argc > 1 || (env && *env))
        fprintf(stderr, "FAIL: suite: no JSON Schema Test Suite (remotes/ and tests/) at %s, named by %s\n", root,
                *from);
    else
        fprintf(stderr,
                "FAIL: suite: no JSON Schema Test Suite found: not in %s/../shared/json-schema-test-suite nor in "
                DEBIAN_SUITE ". Install the Debian package json-schema-test-suite (make does), or set "
                "BK_JSON_SCHEMA_TEST_SUITE to a checkout of github.com/json-schema-org/JSON-Schema-Test-Suite\n",
                top ? top : ".");
    return false;
}

int main(int argc, char **argv)
{
    char root[4096];
    const char *from;
    if (!find_suite(argc, argv, root, sizeof root, &from))
        return 2;
    printf("suite: the JSON Schema Test Suite at %s (from %s)\n", root, from);

    static const struct {
        const char *dir;
        int draft;
    } DRAFTS[] = {{"draft2020-12", BK_SCHEMA_DRAFT_2020_12}, {"draft7", BK_SCHEMA_DRAFT_7}};
    enum { NDRAFTS = sizeof DRAFTS / sizeof DRAFTS[0] };
    bool present[NDRAFTS];
    char lists[2][64] = {"", ""}; /* the drafts present, the drafts missing */
    char *ran = lists[0], *missing = lists[1];
    for (size_t d = 0; d < NDRAFTS; d++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/tests/%s", root, DRAFTS[d].dir);
        present[d] = is_dir(p);
        char *list = lists[!present[d]];
        snprintf(list + strlen(list), sizeof lists[0] - strlen(list), "%s%s", *list ? " and " : "", DRAFTS[d].dir);
    }
    /* CI tests every draft the library supports; elsewhere a suite without one (Debian's
     * has no 2020-12) runs what it has and says what it lacked. */
    const char *ci = getenv("CI");
    if (*missing && ci && strcmp(ci, "true") == 0) {
        fprintf(stderr,
                "FAIL: suite: CI=true needs the full JSON Schema Test Suite (draft2020-12 and draft7), and %s has "
                "no %s: set BK_JSON_SCHEMA_TEST_SUITE to the full suite (.ci/run sets it to "
                "../shared/json-schema-test-suite)\n",
                root, missing);
        return 2;
    }
    if (!*ran) {
        fprintf(stderr, "FAIL: suite: %s has neither tests/draft2020-12 nor tests/draft7\n", root);
        return 2;
    }

    bk_schema_registry_t *reg;
    if (bk_schema_registry_new(&reg) != BK_OK)
        return 2;
    char remotes[4200];
    snprintf(remotes, sizeof remotes, "%s/remotes", root);
    add_remotes(reg, remotes, "http://localhost:1234/");

    group_t required = {"required", 0, 0, true}, formats = {"formats", 0, 0, true};
    group_t optional = {"optional (not gating)", 0, 0, false};
    /* Required files first, then formats, then optional ones, each for every draft present. */
    for (const char *kind = "rfo"; *kind; kind++)
        for (size_t d = 0; d < NDRAFTS; d++) {
            if (!present[d])
                continue;
            char sub[64];
            snprintf(sub, sizeof sub, "%s%s", DRAFTS[d].dir,
                     *kind == 'r' ? "" : *kind == 'f' ? "/optional/format" : "/optional");
            group_t *g = *kind == 'r' ? &required : *kind == 'f' ? &formats : &optional;
            run_dir(root, sub, DRAFTS[d].draft, *kind, reg, g, &optional);
        }
    bk_schema_registry_free(reg);

    group_t *groups[] = {&required, &formats, &optional};
    for (size_t i = 0; i < 3; i++)
        printf("%s: %d passed, %d failed\n", groups[i]->name, groups[i]->passed, groups[i]->failed);
    /* One line for the summary of make check (tests/harness/summary.sh prints note: lines). */
    printf("note: suite from %s (%s): %s, %d cases, %d tests%s%s\n", from, root, ran, cases_run, tests_run,
           *missing ? "; this suite has no " : "", missing);
    printf("total: %d passed, %d failed\n", required.passed + formats.passed, required.failed + formats.failed);
    return required.failed || formats.failed ? 1 : 0;
}
