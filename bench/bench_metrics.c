/* Benchmarks of metric updates under contention: two threads update one series,
 * compared in the same run with the obvious alternative, a pthread mutex around a
 * plain counter (or bucket array). Runs of ours and of the baseline alternate, so
 * both see the same machine; the best run of each counts.
 *
 *   BENCH metrics_counter_inc ours=<ns/op> base=<ns/op> unit=ns/op ratio=<ours/base>
 *   BENCH metrics_histogram_observe ...
 *
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <backend/metrics.h>

enum { THREADS = 2, OPS = 2000000 /* per thread */, RUNS = 5 };

static const double bounds[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
#define NBOUNDS (sizeof bounds / sizeof bounds[0])

/* The baselines: the same work behind one mutex. */
static struct {
    pthread_mutex_t lock;
    uint64_t count;
    uint64_t buckets[NBOUNDS + 1];
    double sum;
} base = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bk_counter_t *our_counter;
static bk_histogram_t *our_histogram;

/* Observed values: spread over the buckets, cheap to compute. */
static double value_of(long i)
{
    return (double)(i & 1023) / 100.0;
}

static void base_inc(long i)
{
    (void)i;
    pthread_mutex_lock(&base.lock);
    base.count++;
    pthread_mutex_unlock(&base.lock);
}

static void ours_inc(long i)
{
    (void)i;
    bk_counter_inc(our_counter);
}

static void base_observe(long i)
{
    double v = value_of(i);
    pthread_mutex_lock(&base.lock);
    size_t lo = 0, hi = NBOUNDS; /* the same binary search as ours */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bounds[mid] >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    base.buckets[lo]++;
    base.sum += v;
    pthread_mutex_unlock(&base.lock);
}

static void ours_observe(long i)
{
    bk_histogram_observe(our_histogram, value_of(i));
}

struct run {
    void (*op)(long);
    pthread_barrier_t *start;
};

static void *worker(void *arg)
{
    struct run *r = arg;
    pthread_barrier_wait(r->start);
    for (long i = 0; i < OPS; i++)
        r->op(i);
    return NULL;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Wall time per operation, all threads' operations counted. */
static double run_once(void (*op)(long))
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS + 1);
    struct run r = {op, &start};
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        if (pthread_create(&th[t], NULL, worker, &r) != 0) {
            perror("pthread_create");
            exit(EXIT_FAILURE);
        }
    pthread_barrier_wait(&start);
    double t0 = now_ns();
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    double ns = (now_ns() - t0) / ((double)THREADS * OPS);
    pthread_barrier_destroy(&start);
    return ns;
}

/* Best of RUNS for each, alternating baseline and ours. */
static void compare(void (*ours)(long), void (*baseline)(long), double *ours_ns, double *base_ns)
{
    for (int run = 0; run < RUNS; run++) {
        double b = run_once(baseline), o = run_once(ours);
        if (run == 0 || b < *base_ns)
            *base_ns = b;
        if (run == 0 || o < *ours_ns)
            *ours_ns = o;
    }
}

static void report(const char *name, double ours, double baseline)
{
    printf("BENCH %s ours=%.2f base=%.2f unit=ns/op ratio=%.3f\n", name, ours, baseline,
           ours / baseline);
}

int main(void)
{
    bk_metrics_t *reg;
    bk_metric_t *cf, *hf;
    if (bk_metrics_new(&reg) != BK_OK ||
        bk_metrics_counter(reg, "bench_total", "Bench.", NULL, &cf) != BK_OK ||
        bk_metric_counter(cf, NULL, &our_counter) != BK_OK ||
        bk_metrics_histogram(reg, "bench_seconds", "Bench.", NULL, bounds, NBOUNDS, &hf) !=
            BK_OK ||
        bk_metric_histogram(hf, NULL, &our_histogram) != BK_OK) {
        fprintf(stderr, "bench_metrics: setup failed\n");
        return EXIT_FAILURE;
    }
    printf("bench_metrics: %d threads x %d ops, best of %d runs\n", THREADS, OPS, RUNS);

    double ours_c = 0, base_c = 0, ours_h = 0, base_h = 0;
    compare(ours_inc, base_inc, &ours_c, &base_c);
    compare(ours_observe, base_observe, &ours_h, &base_h);

    /* The work really happened (and was not optimized away). */
    uint64_t want = (uint64_t)RUNS * THREADS * OPS, got_h = 0;
    for (size_t i = 0; i <= NBOUNDS; i++)
        got_h += base.buckets[i];
    if (base.count != want || got_h != want || bk_counter_value(our_counter) != (double)want) {
        fprintf(stderr, "bench_metrics: lost updates\n");
        return EXIT_FAILURE;
    }
    bk_metrics_free(reg);

    report("metrics_counter_inc", ours_c, base_c);
    report("metrics_histogram_observe", ours_h, base_h);
    return EXIT_SUCCESS;
}
