/* Unit tests of the metrics registry: exposition text compared with hand-written
 * Prometheus 0.0.4 output, validation, re-registration, concurrent updates.
 * SPDX-License-Identifier: MIT */
#include <locale.h>
#include <math.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "check_main.h"

#include <backend/metrics.h>

#define L(...) ((const char *[]){__VA_ARGS__, NULL})

static char *render(bk_metrics_t *reg)
{
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(bk_metrics_render(reg, &text, &len), BK_OK);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(len, strlen(text));
    return text;
}

#define ck_assert_render(reg, expected)      \
    do {                                     \
        char *text_ = render(reg);           \
        ck_assert_str_eq(text_, expected);   \
        free(text_);                         \
    } while (0)

START_TEST(empty_registry)
{
    bk_metrics_t *reg;
    ck_assert_int_eq(bk_metrics_new(&reg), BK_OK);
    ck_assert_render(reg, "");
    bk_metrics_free(reg);
}
END_TEST

START_TEST(counters_and_gauges)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *req, *up, *temp;
    ck_assert_int_eq(bk_metrics_counter(reg, "http_requests_total", "Requests served.",
                                        L("method", "code"), &req),
                     BK_OK);
    ck_assert_int_eq(bk_metrics_gauge(reg, "up", "1 if the service is up.", NULL, &up), BK_OK);
    ck_assert_int_eq(bk_metrics_gauge(reg, "temperature_celsius", "Temperature.", L("room"), &temp),
                     BK_OK);

    /* Before any series: a labelled family shows HELP/TYPE only, an unlabelled one 0. */
    ck_assert_render(reg, "# HELP http_requests_total Requests served.\n"
                          "# TYPE http_requests_total counter\n"
                          "# HELP up 1 if the service is up.\n"
                          "# TYPE up gauge\n"
                          "up 0\n"
                          "# HELP temperature_celsius Temperature.\n"
                          "# TYPE temperature_celsius gauge\n");

    bk_counter_t *get200, *post500, *again;
    ck_assert_int_eq(bk_metric_counter(req, L("GET", "200"), &get200), BK_OK);
    ck_assert_int_eq(bk_metric_counter(req, L("POST", "500"), &post500), BK_OK);
    ck_assert_int_eq(bk_metric_counter(req, L("GET", "200"), &again), BK_OK);
    ck_assert_ptr_eq(get200, again);
    for (int i = 0; i < 1027; i++)
        bk_counter_inc(get200);
    bk_counter_add(post500, 3);
    bk_counter_add(post500, -1);  /* counters never go down */
    bk_counter_add(post500, NAN); /* nor become NaN */
    ck_assert(bk_counter_value(post500) == 3.0);

    bk_gauge_t *upg, *kitchen, *cellar;
    ck_assert_int_eq(bk_metric_gauge(up, NULL, &upg), BK_OK);
    bk_gauge_set(upg, 1);
    ck_assert_int_eq(bk_metric_gauge(temp, L("kitchen"), &kitchen), BK_OK);
    ck_assert_int_eq(bk_metric_gauge(temp, L("cellar"), &cellar), BK_OK);
    bk_gauge_set(kitchen, 21.5);
    bk_gauge_add(kitchen, -0.25);
    bk_gauge_set(cellar, -3);
    ck_assert(bk_gauge_value(kitchen) == 21.25);

    ck_assert_render(reg, "# HELP http_requests_total Requests served.\n"
                          "# TYPE http_requests_total counter\n"
                          "http_requests_total{method=\"GET\",code=\"200\"} 1027\n"
                          "http_requests_total{method=\"POST\",code=\"500\"} 3\n"
                          "# HELP up 1 if the service is up.\n"
                          "# TYPE up gauge\n"
                          "up 1\n"
                          "# HELP temperature_celsius Temperature.\n"
                          "# TYPE temperature_celsius gauge\n"
                          "temperature_celsius{room=\"kitchen\"} 21.25\n"
                          "temperature_celsius{room=\"cellar\"} -3\n");
    bk_metrics_free(reg);
}
END_TEST

START_TEST(special_values_and_number_format)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *g;
    bk_metrics_gauge(reg, "g", "Values.", L("v"), &g);
    const char *names[] = {"inf",   "ninf", "nan",  "tenth", "big",   "small", "third", "int",
                           "i15",   "e15",  "2p53", "sum",   "neg",   "nzero", "tiny"};
    const double values[] = {INFINITY,  -INFINITY, NAN,         0.1,    1e21,
                             1.5e-7,    1.0 / 3,   42,          123456789012345.0,
                             1e15,      9007199254740992.0,     0.1 + 0.2,
                             -2.5,      -0.0,      5e-324};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        bk_gauge_t *s;
        ck_assert_int_eq(bk_metric_gauge(g, L(names[i]), &s), BK_OK);
        bk_gauge_set(s, values[i]);
    }
    ck_assert_render(reg, "# HELP g Values.\n"
                          "# TYPE g gauge\n"
                          "g{v=\"inf\"} +Inf\n"
                          "g{v=\"ninf\"} -Inf\n"
                          "g{v=\"nan\"} NaN\n"
                          "g{v=\"tenth\"} 0.1\n"
                          "g{v=\"big\"} 1e+21\n"
                          "g{v=\"small\"} 1.5e-07\n"
                          "g{v=\"third\"} 0.3333333333333333\n"
                          "g{v=\"int\"} 42\n"
                          "g{v=\"i15\"} 123456789012345\n"
                          "g{v=\"e15\"} 1e+15\n"
                          "g{v=\"2p53\"} 9007199254740992\n"
                          "g{v=\"sum\"} 0.30000000000000004\n"
                          "g{v=\"neg\"} -2.5\n"
                          "g{v=\"nzero\"} 0\n"
                          "g{v=\"tiny\"} 4.94065645841247e-324\n");
    bk_metrics_free(reg);
}
END_TEST

START_TEST(escaping)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *c;
    ck_assert_int_eq(bk_metrics_counter(reg, "esc_total", "Back\\slash and\nnewline \"kept\".",
                                        L("path"), &c),
                     BK_OK);
    bk_counter_t *s;
    ck_assert_int_eq(bk_metric_counter(c, L("C:\\dir\n\"x\" é"), &s), BK_OK);
    bk_counter_inc(s);
    ck_assert_render(reg, "# HELP esc_total Back\\\\slash and\\nnewline \"kept\".\n"
                          "# TYPE esc_total counter\n"
                          "esc_total{path=\"C:\\\\dir\\n\\\"x\\\" é\"} 1\n");
    bk_metrics_free(reg);
}
END_TEST

START_TEST(histogram_custom_bounds)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *h;
    const double bounds[] = {0.1, 0.5, 1};
    ck_assert_int_eq(bk_metrics_histogram(reg, "rpc_seconds", "RPC latency.", L("service"),
                                          bounds, 3, &h),
                     BK_OK);
    bk_histogram_t *s;
    ck_assert_int_eq(bk_metric_histogram(h, L("users"), &s), BK_OK);
    const double obs[] = {0.05, 0.1, 0.2, 0.5, 0.75, 1, 3, 10};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        bk_histogram_observe(s, obs[i]);
    bk_histogram_observe(s, NAN); /* ignored */
    /* le is inclusive: 0.1 falls in le="0.1", 0.5 in le="0.5", 1 in le="1". */
    ck_assert_render(reg, "# HELP rpc_seconds RPC latency.\n"
                          "# TYPE rpc_seconds histogram\n"
                          "rpc_seconds_bucket{service=\"users\",le=\"0.1\"} 2\n"
                          "rpc_seconds_bucket{service=\"users\",le=\"0.5\"} 4\n"
                          "rpc_seconds_bucket{service=\"users\",le=\"1\"} 6\n"
                          "rpc_seconds_bucket{service=\"users\",le=\"+Inf\"} 8\n"
                          "rpc_seconds_sum{service=\"users\"} 15.6\n"
                          "rpc_seconds_count{service=\"users\"} 8\n");
    bk_metrics_free(reg);
}
END_TEST

START_TEST(histogram_default_bounds)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *h;
    ck_assert_int_eq(bk_metrics_histogram(reg, "d", "Default buckets.", NULL, NULL, 0, &h), BK_OK);
    bk_histogram_t *s;
    ck_assert_int_eq(bk_metric_histogram(h, NULL, &s), BK_OK);
    bk_histogram_observe(s, 0.3);
    ck_assert_render(reg, "# HELP d Default buckets.\n"
                          "# TYPE d histogram\n"
                          "d_bucket{le=\"0.005\"} 0\n"
                          "d_bucket{le=\"0.01\"} 0\n"
                          "d_bucket{le=\"0.025\"} 0\n"
                          "d_bucket{le=\"0.05\"} 0\n"
                          "d_bucket{le=\"0.1\"} 0\n"
                          "d_bucket{le=\"0.25\"} 0\n"
                          "d_bucket{le=\"0.5\"} 1\n"
                          "d_bucket{le=\"1\"} 1\n"
                          "d_bucket{le=\"2.5\"} 1\n"
                          "d_bucket{le=\"5\"} 1\n"
                          "d_bucket{le=\"10\"} 1\n"
                          "d_bucket{le=\"+Inf\"} 1\n"
                          "d_sum 0.3\n"
                          "d_count 1\n");
    bk_metrics_free(reg);
}
END_TEST

START_TEST(validation)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *f = NULL;
    ck_assert_int_eq(bk_metrics_counter(reg, "1abc", "h", NULL, &f), BK_EINVAL);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(bk_metrics_counter(reg, "", "h", NULL, &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_counter(reg, "a-b", "h", NULL, &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_counter(reg, NULL, "h", NULL, &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_counter(reg, "ok", NULL, NULL, &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_counter(NULL, "ok", "h", NULL, &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_counter(reg, "ok", "h", NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_counter(reg, "ok", "h", L("a:b"), &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_counter(reg, "ok", "h", L("__x"), &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_counter(reg, "ok", "h", L("x", "x"), &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_histogram(reg, "hh", "h", L("le"), NULL, 0, &f), BK_EINVAL);
    const double unsorted[] = {1, 0.5};
    const double inf[] = {1, INFINITY};
    ck_assert_int_eq(bk_metrics_histogram(reg, "hh", "h", NULL, unsorted, 2, &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_histogram(reg, "hh", "h", NULL, inf, 2, &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_histogram(reg, "hh", "h", NULL, NULL, 3, &f), BK_EINVAL);
    const double equal[] = {1, 1}, nan[] = {NAN}, ninf[] = {-INFINITY, 0};
    ck_assert_int_eq(bk_metrics_histogram(reg, "hh", "h", NULL, equal, 2, &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_histogram(reg, "hh", "h", NULL, nan, 1, &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_histogram(reg, "hh", "h", NULL, ninf, 2, &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_histogram(NULL, "hh", "h", NULL, NULL, 0, &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_histogram(reg, "hh", "h", NULL, NULL, 0, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_gauge(reg, "g", "h", L(""), &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_gauge(reg, "g", "h", L("9a"), &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_gauge(reg, "g", "h", L("_ok", "a b"), &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_gauge(reg, "g g", "h", NULL, &f), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_gauge(reg, "g", "h", NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_gauge(NULL, "g", "h", NULL, &f), BK_EINVAL);
    ck_assert_ptr_null(f);
    /* Nothing invalid was registered. */
    ck_assert_render(reg, "");
    /* Colons are fine in metric names, "le" is fine on counters. */
    ck_assert_int_eq(bk_metrics_counter(reg, "job:ok_total", "h", L("le", "_x9"), &f), BK_OK);

    /* Series: wrong type, wrong count. */
    bk_counter_t *c = NULL;
    bk_gauge_t *g = NULL;
    ck_assert_int_eq(bk_metric_gauge(f, L("1", "2"), &g), BK_EINVAL);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(bk_metric_counter(f, L("1"), &c), BK_EINVAL);
    ck_assert_int_eq(bk_metric_counter(f, L("1", "2", "3"), &c), BK_EINVAL);
    ck_assert_int_eq(bk_metric_counter(f, NULL, &c), BK_EINVAL);
    ck_assert_int_eq(bk_metric_counter(NULL, NULL, &c), BK_EINVAL);
    ck_assert_int_eq(bk_metric_counter(f, L("1", "2"), NULL), BK_EINVAL);
    ck_assert_int_eq(bk_metric_counter(f, L("", "2"), &c), BK_OK); /* empty value is a value */
    bk_histogram_t *hs = NULL;
    ck_assert_int_eq(bk_metric_histogram(f, L("1", "2"), &hs), BK_EINVAL);
    ck_assert_ptr_null(hs);
    bk_metric_t *hf;
    ck_assert_int_eq(bk_metrics_histogram(reg, "lat", "h", L("k"), NULL, 0, &hf), BK_OK);
    ck_assert_int_eq(bk_metric_counter(hf, L("x"), &c), BK_EINVAL);
    ck_assert_int_eq(bk_metric_gauge(hf, L("x"), &g), BK_EINVAL);
    ck_assert_int_eq(bk_metric_histogram(hf, L("x"), NULL), BK_EINVAL);
    ck_assert_int_eq(bk_metric_histogram(NULL, L("x"), &hs), BK_EINVAL);
    ck_assert_int_eq(bk_metric_gauge(NULL, NULL, &g), BK_EINVAL);
    ck_assert_int_eq(bk_metric_gauge(f, L("1", "2"), NULL), BK_EINVAL);
    ck_assert_int_eq(bk_metric_histogram(hf, L("x"), &hs), BK_OK);
    char *text = (char *)1;
    ck_assert_int_eq(bk_metrics_render(NULL, &text, NULL), BK_EINVAL);
    ck_assert_ptr_null(text);
    ck_assert_int_eq(bk_metrics_render(reg, NULL, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_new(NULL), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_render(NULL, NULL, NULL), BK_EINVAL);
    bk_metrics_free(reg);
    bk_metrics_free(NULL);
}
END_TEST

START_TEST(reregistration)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *a, *b;
    ck_assert_int_eq(bk_metrics_counter(reg, "x_total", "X.", L("k"), &a), BK_OK);
    ck_assert_int_eq(bk_metrics_counter(reg, "x_total", "X.", L("k"), &b), BK_OK);
    ck_assert_ptr_eq(a, b);
    ck_assert_int_eq(bk_metrics_gauge(reg, "x_total", "X.", L("k"), &b), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_counter(reg, "x_total", "Other help.", L("k"), &b), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_counter(reg, "x_total", "X.", L("j"), &b), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_counter(reg, "x_total", "X.", NULL, &b), BK_EEXIST);
    const double b1[] = {1}, b2[] = {2};
    ck_assert_int_eq(bk_metrics_histogram(reg, "h", "H.", NULL, b1, 1, &a), BK_OK);
    ck_assert_int_eq(bk_metrics_histogram(reg, "h", "H.", NULL, b1, 1, &b), BK_OK);
    ck_assert_ptr_eq(a, b);
    ck_assert_int_eq(bk_metrics_histogram(reg, "h", "H.", NULL, b2, 1, &b), BK_EEXIST);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(bk_metrics_histogram(reg, "h", "H.", NULL, NULL, 0, &b), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_histogram(reg, "h", "H.", L("k"), b1, 1, &b), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_counter(reg, "h", "H.", NULL, &b), BK_EEXIST);
    /* Label order is part of the definition. */
    ck_assert_int_eq(bk_metrics_gauge(reg, "two", "T.", L("a", "b"), &a), BK_OK);
    ck_assert_int_eq(bk_metrics_gauge(reg, "two", "T.", L("b", "a"), &b), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_gauge(reg, "two", "T.", L("a"), &b), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_gauge(reg, "two", "T.", L("a", "b", "c"), &b), BK_EEXIST);
    /* NULL bounds mean the default ones, so spelling them out is the same family. */
    const double defaults[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
    ck_assert_int_eq(bk_metrics_histogram(reg, "d", "D.", NULL, NULL, 0, &a), BK_OK);
    ck_assert_int_eq(bk_metrics_histogram(reg, "d", "D.", NULL, defaults, 11, &b), BK_OK);
    ck_assert_ptr_eq(a, b);
    ck_assert_int_eq(bk_metrics_histogram(reg, "d", "D.", NULL, defaults, 10, &b), BK_EEXIST);
    /* Names that would clash in OpenMetrics only: the counter x_total is the
     * family x there, with x_created; a counter y writes y_total; a histogram h
     * writes h_created. */
    ck_assert_int_eq(bk_metrics_gauge(reg, "x", "X.", L("k"), &b), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_gauge(reg, "x_created", "X.", NULL, &b), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_counter(reg, "y", "Y.", NULL, &a), BK_OK);
    ck_assert_int_eq(bk_metrics_gauge(reg, "y_total", "Y.", NULL, &b), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_counter(reg, "y_total", "Y.", NULL, &b), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_gauge(reg, "h_created", "H.", NULL, &b), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_gauge(reg, "x_totals", "X.", NULL, &b), BK_OK); /* no clash */
    ck_assert_int_eq(bk_metrics_gauge(reg, "y_count", "Y.", NULL, &b), BK_OK);
    /* The failed attempts changed nothing: x_total still has its one definition. */
    bk_counter_t *c1, *c2;
    ck_assert_int_eq(bk_metrics_counter(reg, "x_total", "X.", L("k"), &a), BK_OK);
    ck_assert_int_eq(bk_metric_counter(a, L("v"), &c1), BK_OK);
    ck_assert_int_eq(bk_metrics_counter(reg, "x_total", "X.", L("k"), &b), BK_OK);
    ck_assert_int_eq(bk_metric_counter(b, L("v"), &c2), BK_OK);
    ck_assert_ptr_eq(c1, c2);
    bk_metrics_free(reg);
}
END_TEST

/* Threads hammer shared series and create series concurrently. Failures are
 * counted, not asserted, in the threads (Check's asserts belong to the test's thread). */
enum { THREADS = 4, ITER = 20000 };
struct hammer {
    bk_metric_t *fam, *hist, *gauge;
    atomic_int failures;
};

static void *hammer(void *arg)
{
    struct hammer *h = arg;
    bk_counter_t *c;
    bk_histogram_t *s;
    bk_gauge_t *g;
    for (int i = 0; i < ITER; i++) {
        char label[8];
        snprintf(label, sizeof label, "%d", i % 50); /* 50 series made concurrently */
        if (bk_metric_counter(h->fam, L(label), &c) != BK_OK)
            atomic_fetch_add(&h->failures, 1);
        bk_counter_inc(c);
        if (bk_metric_histogram(h->hist, NULL, &s) != BK_OK)
            atomic_fetch_add(&h->failures, 1);
        bk_histogram_observe(s, (i % 2) ? 0.25 : 4);
        if (bk_metric_gauge(h->gauge, NULL, &g) != BK_OK)
            atomic_fetch_add(&h->failures, 1);
        bk_gauge_add(g, (i % 2) ? 1 : -1);
    }
    return NULL;
}

START_TEST(concurrent_updates_are_exact)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    struct hammer h = {.failures = 0};
    const double bounds[] = {1};
    bk_metrics_counter(reg, "c_total", "C.", L("n"), &h.fam);
    bk_metrics_histogram(reg, "h", "H.", NULL, bounds, 1, &h.hist);
    bk_metrics_gauge(reg, "g", "G.", NULL, &h.gauge);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, hammer, &h);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    ck_assert_int_eq(atomic_load(&h.failures), 0);

    double total = 0;
    for (int i = 0; i < 50; i++) {
        char label[8];
        snprintf(label, sizeof label, "%d", i);
        bk_counter_t *c;
        ck_assert_int_eq(bk_metric_counter(h.fam, L(label), &c), BK_OK);
        ck_assert(bk_counter_value(c) == (double)(THREADS * ITER / 50));
        total += bk_counter_value(c);
    }
    ck_assert(total == (double)(THREADS * ITER));
    bk_gauge_t *g;
    bk_metric_gauge(h.gauge, NULL, &g);
    ck_assert(bk_gauge_value(g) == 0.0);

    char *text = render(reg);
    /* 200000 x 0.25 + 200000 x 4 is exact in binary floating point. */
    char exact[256];
    snprintf(exact, sizeof exact,
             "h_bucket{le=\"1\"} %d\nh_bucket{le=\"+Inf\"} %d\nh_sum %d\nh_count %d\n",
             THREADS * ITER / 2, THREADS * ITER, THREADS * ITER / 2 * 4 + THREADS * ITER / 2 / 4,
             THREADS * ITER);
    ck_assert_msg(strstr(text, exact) != NULL, "histogram lines wrong in:\n%s", text);
    free(text);
    bk_metrics_free(reg);
}
END_TEST

START_TEST(histogram_edges)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *h, *only_inf;
    const double bounds[] = {-1, 0, 2.5};
    ck_assert_int_eq(bk_metrics_histogram(reg, "e", "Edges.", NULL, bounds, 3, &h), BK_OK);
    /* Bounds given, none of them: only the +Inf bucket. */
    ck_assert_int_eq(bk_metrics_histogram(reg, "o", "Only +Inf.", L("k"), bounds, 0, &only_inf),
                     BK_OK);
    bk_histogram_t *s, *s2, *o;
    ck_assert_int_eq(bk_metric_histogram(h, NULL, &s), BK_OK);
    ck_assert_int_eq(bk_metric_histogram(h, NULL, &s2), BK_OK);
    ck_assert_ptr_eq(s, s2);
    bk_histogram_observe(s, -INFINITY);
    bk_histogram_observe(s, -1);
    bk_histogram_observe(s, -0.5);
    bk_histogram_observe(s, 2.5);
    bk_histogram_observe(s, 1e300);
    ck_assert_int_eq(bk_metric_histogram(only_inf, L("a"), &o), BK_OK);
    bk_histogram_observe(o, 7);
    bk_histogram_observe(o, INFINITY);
    ck_assert_render(reg, "# HELP e Edges.\n"
                          "# TYPE e histogram\n"
                          "e_bucket{le=\"-1\"} 2\n"
                          "e_bucket{le=\"0\"} 3\n"
                          "e_bucket{le=\"2.5\"} 4\n"
                          "e_bucket{le=\"+Inf\"} 5\n"
                          "e_sum -Inf\n"
                          "e_count 5\n"
                          "# HELP o Only +Inf.\n"
                          "# TYPE o histogram\n"
                          "o_bucket{k=\"a\",le=\"+Inf\"} 2\n"
                          "o_sum{k=\"a\"} +Inf\n"
                          "o_count{k=\"a\"} 2\n");
    bk_metrics_free(reg);
}
END_TEST

START_TEST(counter_special_adds)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *f;
    ck_assert_int_eq(bk_metrics_counter(reg, "bytes_total", "Bytes.", NULL, &f), BK_OK);
    bk_counter_t *c, *again;
    ck_assert_int_eq(bk_metric_counter(f, NULL, &c), BK_OK);
    ck_assert_int_eq(bk_metric_counter(f, L(NULL), &again), BK_OK); /* {NULL} is "none" too */
    ck_assert_ptr_eq(c, again);
    bk_counter_add(c, 0.5);
    bk_counter_add(c, 0);
    bk_counter_add(c, -0.0);
    bk_counter_add(c, -1e-300);
    ck_assert(bk_counter_value(c) == 0.5);
    ck_assert_render(reg, "# HELP bytes_total Bytes.\n# TYPE bytes_total counter\n"
                          "bytes_total 0.5\n");
    bk_counter_add(c, INFINITY);
    ck_assert_render(reg, "# HELP bytes_total Bytes.\n# TYPE bytes_total counter\n"
                          "bytes_total +Inf\n");
    /* NULL handles are ignored and read as 0. */
    bk_counter_inc(NULL);
    bk_counter_add(NULL, 1);
    bk_gauge_set(NULL, 1);
    bk_gauge_add(NULL, 1);
    bk_histogram_observe(NULL, 1);
    ck_assert(bk_counter_value(NULL) == 0.0);
    ck_assert(bk_gauge_value(NULL) == 0.0);
    /* len may be NULL. */
    char *text = NULL;
    ck_assert_int_eq(bk_metrics_render(reg, &text, NULL), BK_OK);
    ck_assert_ptr_nonnull(text);
    free(text);
    bk_metrics_free(reg);
}
END_TEST

START_TEST(series_handles_are_stable)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *f;
    ck_assert_int_eq(bk_metrics_gauge(reg, "g", "G.", L("a", "b"), &f), BK_OK);
    enum { N = 2000 };
    static bk_gauge_t *handles[N];
    for (int i = 0; i < N; i++) {
        char a[16], b[16];
        snprintf(a, sizeof a, "a%d", i);
        snprintf(b, sizeof b, "%d", i * 7);
        ck_assert_int_eq(bk_metric_gauge(f, L(a, b), &handles[i]), BK_OK);
        bk_gauge_set(handles[i], i);
        for (int j = 0; j < i; j++) /* every handle distinct (checked for a sample) */
            if (j % 97 == 0)
                ck_assert_ptr_ne(handles[j], handles[i]);
    }
    /* The table grew many times; every handle is still the same pointer and value. */
    for (int i = 0; i < N; i++) {
        char a[16], b[16];
        snprintf(a, sizeof a, "a%d", i);
        snprintf(b, sizeof b, "%d", i * 7);
        bk_gauge_t *g;
        ck_assert_int_eq(bk_metric_gauge(f, L(a, b), &g), BK_OK);
        ck_assert_ptr_eq(g, handles[i]);
        ck_assert(bk_gauge_value(g) == i);
    }
    /* Values are matched whole, not as a concatenation: ("ab","c") is not ("a","bc"). */
    bk_gauge_t *x, *y;
    ck_assert_int_eq(bk_metric_gauge(f, L("ab", "c"), &x), BK_OK);
    ck_assert_int_eq(bk_metric_gauge(f, L("a", "bc"), &y), BK_OK);
    ck_assert_ptr_ne(x, y);
    /* Long values (a key past any small buffer) are found again as well. */
    char longa[400], longb[400];
    memset(longa, 'x', sizeof longa - 1);
    longa[sizeof longa - 1] = '\0';
    memcpy(longb, longa, sizeof longb);
    longb[0] = 'y';
    bk_gauge_t *la, *la2, *lb;
    ck_assert_int_eq(bk_metric_gauge(f, L(longa, "1"), &la), BK_OK);
    ck_assert_int_eq(bk_metric_gauge(f, L(longb, "1"), &lb), BK_OK);
    ck_assert_int_eq(bk_metric_gauge(f, L(longa, "1"), &la2), BK_OK);
    ck_assert_ptr_eq(la, la2);
    ck_assert_ptr_ne(la, lb);
    /* Creation order is render order. */
    char *text = render(reg);
    char *first = strstr(text, "g{a=\"a0\",b=\"0\"} 0\n");
    char *last = strstr(text, "g{a=\"a1999\",b=\"13993\"} 1999\n");
    char *xy = strstr(text, "g{a=\"ab\",b=\"c\"} 0\ng{a=\"a\",b=\"bc\"} 0\n");
    ck_assert_ptr_nonnull(first);
    ck_assert_ptr_nonnull(last);
    ck_assert_ptr_nonnull(xy);
    ck_assert(first < last && last < xy);
    free(text);
    bk_metrics_free(reg);
}
END_TEST

START_TEST(utf8_is_required)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *f = NULL;
    ck_assert_int_eq(bk_metrics_counter(reg, "u_total", "bad \xc3", NULL, &f), BK_EINVAL);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(bk_metrics_counter(reg, "u_total", "Caf\xc3\xa9.", L("k"), &f), BK_OK);
    bk_counter_t *c = NULL;
    ck_assert_int_eq(bk_metric_counter(f, L("\xff"), &c), BK_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(bk_metric_counter(f, L("\xed\xa0\x80"), &c), BK_EINVAL); /* surrogate */
    ck_assert_int_eq(bk_metric_counter(f, L("\xc0\xaf"), &c), BK_EINVAL);     /* overlong */
    ck_assert_int_eq(bk_metric_counter(f, L("\xf0\x9f\x98\x80"), &c), BK_OK);
    ck_assert_render(reg, "# HELP u_total Caf\xc3\xa9.\n"
                          "# TYPE u_total counter\n"
                          "u_total{k=\"\xf0\x9f\x98\x80\"} 0\n");
    bk_metrics_free(reg);
}
END_TEST

START_TEST(sample_name_clashes)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *f = NULL;
    ck_assert_int_eq(bk_metrics_histogram(reg, "req", "R.", NULL, NULL, 0, &f), BK_OK);
    /* req_count, req_sum and req_bucket are samples of the histogram req. */
    ck_assert_int_eq(bk_metrics_counter(reg, "req_count", "C.", NULL, &f), BK_EEXIST);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(bk_metrics_gauge(reg, "req_sum", "S.", NULL, &f), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_histogram(reg, "req_bucket", "B.", NULL, NULL, 0, &f), BK_EEXIST);
    ck_assert_int_eq(bk_metrics_counter(reg, "a_bucket", "C.", NULL, &f), BK_OK);
    ck_assert_int_eq(bk_metrics_histogram(reg, "a", "A.", NULL, NULL, 0, &f), BK_EEXIST);
    /* Near misses are fine. */
    ck_assert_int_eq(bk_metrics_counter(reg, "req_counts", "C.", NULL, &f), BK_OK);
    ck_assert_int_eq(bk_metrics_gauge(reg, "re", "C.", NULL, &f), BK_OK);
    ck_assert_int_eq(bk_metrics_gauge(reg, "a_sum", "C.", NULL, &f), BK_OK);
    ck_assert_render(reg, "# HELP req R.\n# TYPE req histogram\n"
                          "req_bucket{le=\"0.005\"} 0\nreq_bucket{le=\"0.01\"} 0\n"
                          "req_bucket{le=\"0.025\"} 0\nreq_bucket{le=\"0.05\"} 0\n"
                          "req_bucket{le=\"0.1\"} 0\nreq_bucket{le=\"0.25\"} 0\n"
                          "req_bucket{le=\"0.5\"} 0\nreq_bucket{le=\"1\"} 0\n"
                          "req_bucket{le=\"2.5\"} 0\nreq_bucket{le=\"5\"} 0\n"
                          "req_bucket{le=\"10\"} 0\nreq_bucket{le=\"+Inf\"} 0\n"
                          "req_sum 0\nreq_count 0\n"
                          "# HELP a_bucket C.\n# TYPE a_bucket counter\na_bucket 0\n"
                          "# HELP req_counts C.\n# TYPE req_counts counter\nreq_counts 0\n"
                          "# HELP re C.\n# TYPE re gauge\nre 0\n"
                          "# HELP a_sum C.\n# TYPE a_sum gauge\na_sum 0\n");
    bk_metrics_free(reg);
}
END_TEST

/* Several threads register the same families at once: one family each, same pointer. */
enum { REG_THREADS = 4, REG_FAMILIES = 200 };
struct reg_race {
    bk_metrics_t *reg;
    pthread_barrier_t *start;
    bk_metric_t *got[REG_FAMILIES];
    int failures;
};

static void *register_all(void *arg)
{
    struct reg_race *r = arg;
    pthread_barrier_wait(r->start);
    for (int i = 0; i < REG_FAMILIES; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%d_total", i);
        if (bk_metrics_counter(r->reg, name, "F.", i % 2 ? L("x") : NULL, &r->got[i]) != BK_OK)
            r->failures++;
        bk_counter_t *c;
        if (bk_metric_counter(r->got[i], i % 2 ? L("v") : NULL, &c) != BK_OK)
            r->failures++;
        bk_counter_inc(c);
    }
    return NULL;
}

START_TEST(concurrent_registration)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, REG_THREADS);
    static struct reg_race races[REG_THREADS];
    pthread_t th[REG_THREADS];
    for (int t = 0; t < REG_THREADS; t++) {
        races[t] = (struct reg_race){.reg = reg, .start = &start};
        pthread_create(&th[t], NULL, register_all, &races[t]);
    }
    for (int t = 0; t < REG_THREADS; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&start);
    for (int t = 0; t < REG_THREADS; t++) {
        ck_assert_int_eq(races[t].failures, 0);
        for (int i = 0; i < REG_FAMILIES; i++)
            ck_assert_ptr_eq(races[t].got[i], races[0].got[i]);
    }
    char *text = render(reg);
    int helps = 0;
    for (const char *p = text; (p = strstr(p, "# HELP ")) != NULL; p++)
        helps++;
    ck_assert_int_eq(helps, REG_FAMILIES);
    char line[64];
    snprintf(line, sizeof line, "\nf%d_total{x=\"v\"} %d\n", REG_FAMILIES - 1, REG_THREADS);
    ck_assert_msg(strstr(text, line) != NULL, "no '%s' in:\n%s", line + 1, text);
    snprintf(line, sizeof line, "\nf0_total %d\n", REG_THREADS);
    ck_assert_msg(strstr(text, line) != NULL, "no '%s' in:\n%s", line + 1, text);
    free(text);
    bk_metrics_free(reg);
}
END_TEST

/* While threads observe, every rendering is self-consistent: buckets cumulative and
 * le="+Inf" equal to _count. */
enum { OBSERVATIONS = 200000 };
static atomic_int observers_running;

/* A fixed amount of work, not "until stopped": a spinning thread would starve the
 * renderer under valgrind, which runs one thread at a time. */
static void *observe(void *arg)
{
    bk_histogram_t *h = arg;
    for (long i = 0; i < OBSERVATIONS; i++)
        bk_histogram_observe(h, (double)(i % 7));
    atomic_fetch_sub(&observers_running, 1);
    return NULL;
}

static unsigned long long sample(const char *text, const char *prefix)
{
    const char *p = strstr(text, prefix);
    ck_assert_msg(p != NULL, "no '%s' in:\n%s", prefix, text);
    return strtoull(p + strlen(prefix), NULL, 10);
}

START_TEST(render_while_observing)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *f;
    const double bounds[] = {1, 3, 5};
    ck_assert_int_eq(bk_metrics_histogram(reg, "w", "W.", NULL, bounds, 3, &f), BK_OK);
    bk_histogram_t *h;
    ck_assert_int_eq(bk_metric_histogram(f, NULL, &h), BK_OK);
    pthread_t th[2];
    atomic_store(&observers_running, 2);
    for (int t = 0; t < 2; t++)
        pthread_create(&th[t], NULL, observe, h);
    unsigned long long previous = 0;
    for (int round = 0; round < 300 && atomic_load(&observers_running) > 0; round++) {
        char *text = render(reg);
        unsigned long long b1 = sample(text, "w_bucket{le=\"1\"} ");
        unsigned long long b3 = sample(text, "w_bucket{le=\"3\"} ");
        unsigned long long b5 = sample(text, "w_bucket{le=\"5\"} ");
        unsigned long long inf = sample(text, "w_bucket{le=\"+Inf\"} ");
        unsigned long long count = sample(text, "w_count ");
        ck_assert(b1 <= b3 && b3 <= b5 && b5 <= inf);
        ck_assert_uint_eq(inf, count);
        ck_assert_uint_ge(count, previous);
        previous = count;
        free(text);
    }
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    char *text = render(reg);
    ck_assert_uint_eq(sample(text, "w_count "), 2 * OBSERVATIONS);
    free(text);
    bk_metrics_free(reg);
}
END_TEST

/* The exposition format wants "0.5" even when the application's locale writes "0,5". */
START_TEST(render_ignores_locale)
{
    const char *locales[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "C.UTF-8"};
    for (size_t i = 0; i < sizeof locales / sizeof locales[0]; i++)
        if (setlocale(LC_NUMERIC, locales[i]) != NULL)
            break;
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    bk_metric_t *f;
    bk_metrics_gauge(reg, "half", "H.", NULL, &f);
    bk_gauge_t *g;
    bk_metric_gauge(f, NULL, &g);
    bk_gauge_set(g, 0.5);
    ck_assert_render(reg, "# HELP half H.\n# TYPE half gauge\nhalf 0.5\n");
    setlocale(LC_NUMERIC, "C");
    bk_metrics_free(reg);
}
END_TEST

struct collected {
    bk_metrics_t *reg;
    bk_gauge_t *gauge;
    int calls;
    double value;
};

static void collect_gauge(void *ud)
{
    struct collected *c = ud;
    c->calls++;
    bk_gauge_set(c->gauge, c->value);
}

/* A collector that registers a family while the render runs. */
static void collect_registering(void *ud)
{
    struct collected *c = ud;
    bk_metric_t *f;
    bk_gauge_t *g;
    ck_assert_int_eq(bk_metrics_gauge(c->reg, "late", "Made by a collector.", NULL, &f), BK_OK);
    ck_assert_int_eq(bk_metric_gauge(f, NULL, &g), BK_OK);
    bk_gauge_set(g, 7);
}

START_TEST(collectors)
{
    bk_metrics_t *reg;
    ck_assert_int_eq(bk_metrics_new(&reg), BK_OK);
    bk_metric_t *f;
    struct collected c = {reg, NULL, 0, 3};
    ck_assert_int_eq(bk_metrics_gauge(reg, "size", "S.", NULL, &f), BK_OK);
    ck_assert_int_eq(bk_metric_gauge(f, NULL, &c.gauge), BK_OK);
    ck_assert_int_eq(bk_metrics_add_collector(reg, collect_gauge, &c), BK_OK);
    ck_assert_render(reg, "# HELP size S.\n# TYPE size gauge\nsize 3\n");
    c.value = 4;
    ck_assert_render(reg, "# HELP size S.\n# TYPE size gauge\nsize 4\n");
    ck_assert_int_eq(c.calls, 2);
    /* Removed: not called again, its last value stays. */
    bk_metrics_remove_collector(reg, collect_gauge, &c);
    c.value = 5;
    ck_assert_render(reg, "# HELP size S.\n# TYPE size gauge\nsize 4\n");
    ck_assert_int_eq(c.calls, 2);
    bk_metrics_remove_collector(reg, collect_gauge, &c); /* not there: nothing */
    ck_assert_int_eq(bk_metrics_add_collector(reg, NULL, &c), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_add_collector(NULL, collect_gauge, &c), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_add_collector(reg, collect_registering, &c), BK_OK);
    ck_assert_render(reg, "# HELP size S.\n# TYPE size gauge\nsize 4\n# HELP late Made by a collector.\n"
                          "# TYPE late gauge\nlate 7\n");
    /* Left registered: the registry frees it. */
    bk_metrics_free(reg);
}
END_TEST

/* OpenMetrics 1.0: counters named without _total with _total and _created
 * samples, histograms with _created, UNIT for a base-unit suffix, HELP escaping
 * the quote too, and # EOF. The _created values (wall time when each series
 * was made) are checked against the clock, then replaced by T to compare. */
START_TEST(openmetrics_text)
{
    bk_metrics_t *reg;
    ck_assert_int_eq(bk_metrics_new(&reg), BK_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    bk_metric_t *reqs, *queue, *rpc, *plain;
    ck_assert_int_eq(bk_metrics_counter(reg, "http_requests_total", "Requests \"answered\".", L("code"), &reqs),
                     BK_OK);
    ck_assert_int_eq(bk_metrics_gauge(reg, "queue_bytes", "Bytes queued.", NULL, &queue), BK_OK);
    ck_assert_int_eq(bk_metrics_histogram(reg, "rpc_seconds", "RPC latency.", NULL, (const double[]){0.1, 1}, 2, &rpc),
                     BK_OK);
    ck_assert_int_eq(bk_metrics_counter(reg, "restarts", "Restarts.", NULL, &plain), BK_OK);
    bk_counter_t *ok, *bad;
    ck_assert_int_eq(bk_metric_counter(reqs, L("200"), &ok), BK_OK);
    ck_assert_int_eq(bk_metric_counter(reqs, L("500"), &bad), BK_OK);
    bk_counter_add(ok, 7);
    bk_counter_inc(bad);
    bk_gauge_t *q;
    ck_assert_int_eq(bk_metric_gauge(queue, NULL, &q), BK_OK);
    bk_gauge_set(q, 512);
    bk_histogram_t *h;
    ck_assert_int_eq(bk_metric_histogram(rpc, NULL, &h), BK_OK);
    bk_histogram_observe(h, 0.05);
    bk_histogram_observe(h, 3);
    clock_gettime(CLOCK_REALTIME, &t1);

    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(bk_metrics_render_openmetrics(reg, &text, &len), BK_OK);
    ck_assert_uint_eq(len, strlen(text));
    /* Each _created value within the test's clock readings, then masked. */
    double lo = (double)t0.tv_sec + t0.tv_nsec / 1e9 - 0.001, hi = (double)t1.tv_sec + t1.tv_nsec / 1e9 + 0.001;
    char masked[4096] = "";
    int created = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char *sp = strrchr(line, ' ');
        if (strstr(line, "_created") != NULL && line[0] != '#' && sp != NULL) {
            double v = strtod(sp + 1, NULL);
            ck_assert_msg(v >= lo && v <= hi, "%s: not between %.3f and %.3f", line, lo, hi);
            strcpy(sp + 1, "T");
            created++;
        }
        strncat(masked, line, sizeof masked - strlen(masked) - 2);
        strcat(masked, "\n");
    }
    free(text);
    ck_assert_int_eq(created, 4);
    ck_assert_str_eq(masked, "# HELP http_requests Requests \\\"answered\\\".\n"
                             "# TYPE http_requests counter\n"
                             "http_requests_total{code=\"200\"} 7\n"
                             "http_requests_created{code=\"200\"} T\n"
                             "http_requests_total{code=\"500\"} 1\n"
                             "http_requests_created{code=\"500\"} T\n"
                             "# HELP queue_bytes Bytes queued.\n"
                             "# TYPE queue_bytes gauge\n"
                             "# UNIT queue_bytes bytes\n"
                             "queue_bytes 512\n"
                             "# HELP rpc_seconds RPC latency.\n"
                             "# TYPE rpc_seconds histogram\n"
                             "# UNIT rpc_seconds seconds\n"
                             "rpc_seconds_bucket{le=\"0.1\"} 1\n"
                             "rpc_seconds_bucket{le=\"1\"} 1\n"
                             "rpc_seconds_bucket{le=\"+Inf\"} 2\n"
                             "rpc_seconds_sum 3.05\n"
                             "rpc_seconds_count 2\n"
                             "rpc_seconds_created T\n"
                             "# HELP restarts Restarts.\n"
                             "# TYPE restarts counter\n"
                             "restarts_total 0\n"
                             "restarts_created T\n"
                             "# EOF\n");
    /* Prometheus text of the same registry is unchanged by it. */
    text = render(reg);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 7\n"));
    ck_assert_ptr_null(strstr(text, "_created"));
    ck_assert_ptr_null(strstr(text, "# EOF"));
    free(text);
    ck_assert_int_eq(bk_metrics_render_openmetrics(NULL, &text, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_metrics_render_openmetrics(reg, NULL, NULL), BK_EINVAL);
    bk_metrics_t *empty;
    ck_assert_int_eq(bk_metrics_new(&empty), BK_OK);
    ck_assert_int_eq(bk_metrics_render_openmetrics(empty, &text, NULL), BK_OK);
    ck_assert_str_eq(text, "# EOF\n");
    free(text);
    bk_metrics_free(empty);
    bk_metrics_free(reg);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("exposition");
    tcase_add_test(tc, empty_registry);
    tcase_add_test(tc, counters_and_gauges);
    tcase_add_test(tc, special_values_and_number_format);
    tcase_add_test(tc, escaping);
    tcase_add_test(tc, openmetrics_text);
    tcase_add_test(tc, histogram_custom_bounds);
    tcase_add_test(tc, histogram_default_bounds);
    tcase_add_test(tc, histogram_edges);
    tcase_add_test(tc, counter_special_adds);
    tcase_add_test(tc, render_ignores_locale);
    suite_add_tcase(s, tc);
    tc = tcase_create("registry");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, validation);
    tcase_add_test(tc, reregistration);
    tcase_add_test(tc, utf8_is_required);
    tcase_add_test(tc, sample_name_clashes);
    tcase_add_test(tc, series_handles_are_stable);
    tcase_add_test(tc, concurrent_updates_are_exact);
    tcase_add_test(tc, concurrent_registration);
    tcase_add_test(tc, render_while_observing);
    tcase_add_test(tc, collectors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(metrics_suite());
}
