/* Unit tests of the metrics registry: exposition text compared with hand-written
 * Prometheus 0.0.4 output, validation, re-registration, concurrent updates.
 * SPDX-License-Identifier: MIT */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

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
    const char *names[] = {"inf", "ninf", "nan", "tenth", "big", "small", "third"};
    const double values[] = {INFINITY, -INFINITY, NAN, 0.1, 1e21, 1.5e-7, 1.0 / 3};
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
                          "g{v=\"third\"} 0.3333333333333333\n");
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
    bk_metrics_free(reg);
}
END_TEST

/* Threads hammer shared series and create series concurrently. */
enum { THREADS = 4, ITER = 100000 };
struct hammer {
    bk_metric_t *fam, *hist, *gauge;
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
        ck_assert_int_eq(bk_metric_counter(h->fam, L(label), &c), BK_OK);
        bk_counter_inc(c);
        ck_assert_int_eq(bk_metric_histogram(h->hist, NULL, &s), BK_OK);
        bk_histogram_observe(s, (i % 2) ? 0.25 : 4);
        ck_assert_int_eq(bk_metric_gauge(h->gauge, NULL, &g), BK_OK);
        bk_gauge_add(g, (i % 2) ? 1 : -1);
    }
    return NULL;
}

START_TEST(concurrent_updates_are_exact)
{
    bk_metrics_t *reg;
    bk_metrics_new(&reg);
    struct hammer h;
    const double bounds[] = {1};
    bk_metrics_counter(reg, "c_total", "C.", L("n"), &h.fam);
    bk_metrics_histogram(reg, "h", "H.", NULL, bounds, 1, &h.hist);
    bk_metrics_gauge(reg, "g", "G.", NULL, &h.gauge);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, hammer, &h);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);

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

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("exposition");
    tcase_add_test(tc, empty_registry);
    tcase_add_test(tc, counters_and_gauges);
    tcase_add_test(tc, special_values_and_number_format);
    tcase_add_test(tc, escaping);
    tcase_add_test(tc, histogram_custom_bounds);
    tcase_add_test(tc, histogram_default_bounds);
    suite_add_tcase(s, tc);
    tc = tcase_create("registry");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, validation);
    tcase_add_test(tc, reregistration);
    tcase_add_test(tc, concurrent_updates_are_exact);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
