/* Benchmark of JSON Schema validation: a realistic ~2 KB order document against
 * bench/schema/order.schema.json (draft 2020-12, formats asserted), compiled once.
 * bench/schema.sh runs it next to ajv (bench/ajv/bench.js), which does the same
 * loops, and combines the figures into BENCH lines; on its own it prints only
 * machine-readable lines:
 *
 *   ours_valid_ok=1                    the valid document validates
 *   ours_invalid_ok=0                  the invalid one does not
 *   ours_invalid_errors=<n>            errors it has (BK_SCHEMA_ALL_ERRORS)
 *   ours_valid=<validations/s>         the valid document, first-error mode, errors=NULL
 *   ours_invalid_all_errors=<validations/s>  the invalid one, every error collected
 *
 *   bench_schema [--seconds S] [--check | --only valid|invalid] [DIR]
 *     DIR        holds order.schema.json, order-valid.json, order-invalid.json
 *                (or $BENCH_SCHEMA_DIR; default the source tree's bench/schema)
 *     --seconds  time of each figure (default 1; at least 1 is what a figure needs)
 *     --check    the validity lines only, no timing
 *     --only     time one figure only (for a profiler: perf record ... --only valid)
 *
 * Each figure is the number of validations done in one timed loop of at least S
 * seconds, after a short warm-up, divided by the loop's wall time. Exits 1 when the
 * valid document is invalid or the invalid one valid (printing why).
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <backend/core.h>
#include <backend/schema.h>

#ifndef BENCH_SCHEMA_DIR
#define BENCH_SCHEMA_DIR "bench/schema"
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_t *load(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc) {
        fprintf(stderr, "bench_schema: %s:%d: %s\n", path, jerr.line, jerr.text);
        exit(EXIT_FAILURE);
    }
    return doc;
}

static void print_errors(const bk_schema_errors_t *errs)
{
    for (size_t i = 0; i < bk_schema_errors_count(errs); i++) {
        const bk_schema_error_t *e = bk_schema_errors_get(errs, i);
        fprintf(stderr, "  %s: %s (%s)\n", e->instance_location, e->message, e->keyword_location);
    }
}

/* One validation; returns its status. ALL_ERRORS runs collect and free the errors,
 * as a caller that reports them does. */
static int validate_once(const bk_schema_t *s, const json_t *doc, unsigned flags)
{
    if (!(flags & BK_SCHEMA_ALL_ERRORS))
        return bk_schema_validate(s, doc, flags, NULL);
    bk_schema_errors_t *errs = NULL;
    int rc = bk_schema_validate(s, doc, flags, &errs);
    bk_schema_errors_free(errs);
    return rc;
}

/* Validations per second over at least `seconds`; every result must be `want`. */
static double measure(const bk_schema_t *s, const json_t *doc, unsigned flags, int want,
                      double seconds)
{
    /* Warm-up, and a batch size that reads the clock about every millisecond. */
    long batch = 1;
    for (;;) {
        double t0 = now_s();
        for (long i = 0; i < batch; i++)
            if (validate_once(s, doc, flags) != want)
                goto wrong;
        double dt = now_s() - t0;
        if (dt >= 0.05 || batch >= 1L << 30) {
            batch = (long)((double)batch * 0.001 / (dt > 0 ? dt : 1e-9));
            if (batch < 1)
                batch = 1;
            break;
        }
        batch *= 2;
    }
    long n = 0;
    double t0 = now_s(), dt;
    do {
        for (long i = 0; i < batch; i++)
            if (validate_once(s, doc, flags) != want)
                goto wrong;
        n += batch;
        dt = now_s() - t0;
    } while (dt < seconds);
    return (double)n / dt;
wrong:
    fprintf(stderr, "bench_schema: a validation gave another result than %s\n", bk_strerror(want));
    exit(EXIT_FAILURE);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_schema [--seconds S] [--check | --only valid|invalid] [DIR]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *dir = getenv("BENCH_SCHEMA_DIR");
    double seconds = 1.0;
    int check_only = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            char *end;
            seconds = strtod(argv[++i], &end);
            if (*end || !(seconds > 0))
                usage();
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
            if (strcmp(only, "valid") != 0 && strcmp(only, "invalid") != 0)
                usage();
        } else if (strcmp(argv[i], "--check") == 0) {
            check_only = 1;
        } else if (argv[i][0] == '-') {
            usage();
        } else {
            dir = argv[i];
        }
    }
    if (!dir || !*dir)
        dir = BENCH_SCHEMA_DIR;

    json_t *schema = load(dir, "order.schema.json");
    json_t *valid = load(dir, "order-valid.json");
    json_t *invalid = load(dir, "order-invalid.json");

    bk_schema_opts_t opts;
    bk_schema_opts_init(&opts);
    opts.draft = BK_SCHEMA_DRAFT_2020_12;
    opts.format_assert = true;
    bk_schema_t *s;
    bk_error_t err;
    if (bk_schema_compile(schema, &opts, &s, &err) != BK_OK) {
        fprintf(stderr, "bench_schema: order.schema.json: %s\n", err.message);
        return EXIT_FAILURE;
    }

    /* Validity first: a benchmark of the wrong answer measures nothing. */
    int status = EXIT_SUCCESS;
    bk_schema_errors_t *errs = NULL;
    int rc = bk_schema_validate(s, valid, BK_SCHEMA_ALL_ERRORS, &errs);
    printf("ours_valid_ok=%d\n", rc == BK_OK);
    if (rc != BK_OK) {
        fprintf(stderr, "bench_schema: order-valid.json is invalid (%s):\n", bk_strerror(rc));
        print_errors(errs);
        status = EXIT_FAILURE;
    }
    bk_schema_errors_free(errs);
    errs = NULL;
    rc = bk_schema_validate(s, invalid, BK_SCHEMA_ALL_ERRORS, &errs);
    printf("ours_invalid_ok=%d\n", rc == BK_OK);
    printf("ours_invalid_errors=%zu\n", bk_schema_errors_count(errs));
    if (rc != BK_EINVAL) {
        fprintf(stderr, "bench_schema: order-invalid.json is not invalid (%s)\n", bk_strerror(rc));
        status = EXIT_FAILURE;
    } else if (check_only && getenv("BENCH_VERBOSE")) {
        print_errors(errs);
    }
    bk_schema_errors_free(errs);
    if (bk_schema_validate(s, invalid, 0, NULL) != BK_EINVAL) {
        fprintf(stderr, "bench_schema: order-invalid.json is valid in first-error mode\n");
        status = EXIT_FAILURE;
    }
    fflush(stdout);

    if (status == EXIT_SUCCESS && !check_only) {
        if (!only || strcmp(only, "valid") == 0) {
            printf("ours_valid=%.0f\n", measure(s, valid, 0, BK_OK, seconds));
            fflush(stdout);
        }
        if (!only || strcmp(only, "invalid") == 0)
            printf("ours_invalid_all_errors=%.0f\n",
                   measure(s, invalid, BK_SCHEMA_ALL_ERRORS, BK_EINVAL, seconds));
    }

    bk_schema_free(s);
    json_decref(schema);
    json_decref(valid);
    json_decref(invalid);
    return status;
}
