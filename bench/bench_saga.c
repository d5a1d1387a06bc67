/* Benchmark of the saga module (lib/saga) beside a floor measured in the same
 * run, on a database of its own (created with a random name, dropped at the
 * end):
 *
 *   saga_4step: sagas/s of four-step sagas whose steps do nothing, N started
 *     beforehand (untimed), timed from the engine's start until all N are
 *     completed;
 *     ours: a bk_saga engine of THREADS threads;
 *     base: the floor: the same number of state writes by hand with libpq,
 *           one insert and four updates per saga, each its own transaction,
 *           prepared once, one connection per thread, THREADS threads.
 *   Also printed, not BENCH figures:
 *   - the statements per step each side sent (ours: the pool's
 *     db_queries_total over the timed part, claims and heartbeats included;
 *     the floor: 5 per 4 steps by construction);
 *   - the ceiling: sagas/s of four statements per saga by hand, each the least
 *     a fenced step can do (the saga's job row locked and the saga's row
 *     moved, in the engine's own tables, after an engine's round), nothing
 *     recorded per step or attempt: what the records an engine keeps cost is
 *     the gap between it and the engine.
 *
 * The end of an engine's round is watched in the process (its sagas_total
 * counter), so that no query of ours competes with the engine for the server.
 *
 * Rounds of base and ours (the ceiling right after ours, on its rows)
 * alternate, their order flipping every round, ROUNDS times; the best round
 * of each counts. Every round is checked: all N sagas completed (ours), written
 * (the floor) or moved (the ceiling); a failure fails the bench.
 *
 * The server: BK_BENCH_PG_DSN, else BK_TEST_PG_DSN (`make bench` runs this
 * program under tests/harness/services.sh).
 *
 *   BENCH saga_4step ours=<sagas/s> base=<sagas/s> unit=sagas/s ratio=<ours/base>
 *
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include <backend/saga.h>

#include "bench_pg.h"

enum { N_SAGAS = 1000, N_WARMUP = 50, ROUNDS = 3, THREADS = 2, STEPS = 4 };

static char conninfo[2048];
static PGconn *admin; /* on the bench's database */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long scalar(const char *sql)
{
    PGresult *r = PQexec(admin, sql);
    long long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return v;
}

/* ------------------------------------------------------------------ ours */
static bk_db_t *db;
static bk_metrics_t *metrics;
static bk_counter_t *queries; /* the pool's db_queries_total{outcome="ok"} */
static bk_jobs_t *jobs;
static bk_saga_def_t *def;

static int empty_action(const bk_saga_call_t *call, json_t **out, bk_error_t *err, void *ud)
{
    (void)call, (void)out, (void)err, (void)ud;
    return BK_OK;
}

static int empty_undo(const bk_saga_call_t *call, bk_error_t *err, void *ud)
{
    (void)call, (void)err, (void)ud;
    return BK_OK;
}

static int reset(void)
{
    return bench_pg_exec("bench_saga", admin, "TRUNCATE backend_saga.sagas, backend_saga.steps, backend_saga.attempts, "
                          "backend_jobs.jobs, floor_sagas") &&
           bench_pg_exec("bench_saga", admin, "VACUUM ANALYZE backend_saga.sagas, backend_saga.steps, backend_saga.attempts, "
                          "backend_jobs.jobs, floor_sagas");
}

/* sagas/s of an engine over n sagas started beforehand, and the statements it
 * sent per step; < 0 on a failure. */
static double ours_run(size_t n, double *per_step)
{
    if (!reset())
        return -1;
    bk_saga_opts_t o;
    bk_saga_opts_init(&o);
    o.threads = THREADS;
    o.poll_interval_ns = 50 * BK_NSEC_PER_MSEC;
    o.metrics = metrics;
    bk_saga_engine_t *e;
    bk_error_t err;
    bk_metric_t *family;
    bk_counter_t *completed;
    if (bk_saga_engine_new(jobs, &o, &e, &err) != BK_OK || bk_saga_register(e, def, &err) != BK_OK) {
        fprintf(stderr, "bench_saga: engine: %s\n", err.message);
        return -1;
    }
    /* The engine's sagas_total{saga="bench",outcome="completed"}: the end of
     * the round is watched in the process, not by querying the server the
     * engine is using. */
    if (bk_metrics_counter(metrics, "sagas_total", "Sagas by the outcome they reached.",
                           (const char *[]){"saga", "outcome", NULL}, &family) != BK_OK ||
        bk_metric_counter(family, (const char *[]){"bench", "completed", NULL}, &completed) != BK_OK) {
        fprintf(stderr, "bench_saga: the engine's sagas_total is not there\n");
        bk_saga_engine_free(e);
        return -1;
    }
    double done0 = bk_counter_value(completed);
    for (size_t i = 0; i < n; i++)
        if (bk_saga_start(e, def, NULL, NULL, NULL, &err) != BK_OK) {
            fprintf(stderr, "bench_saga: start: %s\n", err.message);
            bk_saga_engine_free(e);
            return -1;
        }
    /* Statistics of tables as full as the run's (a service's tables are not
     * empty), so that the plans are index scans, as they would be there. */
    if (!bench_pg_exec("bench_saga", admin, "ANALYZE backend_saga.sagas, backend_saga.steps, backend_saga.attempts, "
                       "backend_jobs.jobs")) {
        bk_saga_engine_free(e);
        return -1;
    }
    double q0 = bk_counter_value(queries), t0 = mono_s();
    if (bk_saga_engine_start(e, &err) != BK_OK) {
        fprintf(stderr, "bench_saga: engine start: %s\n", err.message);
        bk_saga_engine_free(e);
        return -1;
    }
    while (bk_counter_value(completed) - done0 < (double)n) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
        if (mono_s() - t0 > 20) {
            fprintf(stderr, "bench_saga: the sagas did not complete within 20 s: %lld completed, %lld jobs "
                            "left, %lld attempts\n",
                    scalar("SELECT count(*) FROM backend_saga.sagas WHERE status = 'completed'"),
                    scalar("SELECT count(*) FROM backend_jobs.jobs WHERE state <> 'completed'"),
                    scalar("SELECT count(*) FROM backend_saga.attempts"));
            bk_saga_engine_free(e);
            return -1;
        }
    }
    double t1 = mono_s();
    *per_step = (bk_counter_value(queries) - q0) / (double)(n * STEPS);
    bk_saga_engine_free(e);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT (count(*) = %zu)::int FROM backend_saga.sagas WHERE status = 'completed'", n);
    if (scalar(sql) != 1) {
        fprintf(stderr, "bench_saga: the engine counted %zu sagas completed, the table says otherwise\n", n);
        return -1;
    }
    return (double)n / (t1 - t0);
}

/* ------------------------------------------------------------------ the floor */
struct floor_thread {
    _Alignas(64) PGconn *pg;
    size_t from, to;
    unsigned long failures;
};

static void *floor_main(void *arg)
{
    struct floor_thread *f = arg;
    for (size_t i = f->from; i < f->to; i++) {
        char id[24];
        snprintf(id, sizeof id, "%zu", i + 1);
        const char *p[2] = {id, NULL};
        PGresult *r = PQexecPrepared(f->pg, "insert", 1, p, NULL, NULL, 0);
        f->failures += PQresultStatus(r) != PGRES_COMMAND_OK;
        PQclear(r);
        for (int s = 1; s <= STEPS; s++) {
            char step[8];
            snprintf(step, sizeof step, "%d", s);
            p[1] = step;
            r = PQexecPrepared(f->pg, "update", 2, p, NULL, NULL, 0);
            f->failures += PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdTuples(r), "1") != 0;
            PQclear(r);
        }
    }
    return NULL;
}

static struct floor_thread floor_th[THREADS];

/* Runs fn on THREADS threads, each over its share of n sagas: the seconds it
 * took, or < 0 when a thread could not start; *failures the statements that
 * failed. */
static double run_threads(void *(*fn)(void *), size_t n, unsigned long *failures)
{
    pthread_t th[THREADS];
    double t0 = mono_s();
    unsigned started = 0;
    for (unsigned t = 0; t < THREADS; t++) {
        floor_th[t].from = n * t / THREADS;
        floor_th[t].to = n * (t + 1) / THREADS;
        floor_th[t].failures = 0;
        if (pthread_create(&th[t], NULL, fn, &floor_th[t]) != 0)
            break;
        started++;
    }
    *failures = 0;
    for (unsigned t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
        *failures += floor_th[t].failures;
    }
    return started == THREADS ? mono_s() - t0 : -1;
}

static double floor_run(size_t n)
{
    if (!reset())
        return -1;
    unsigned long failures;
    double secs = run_threads(floor_main, n, &failures);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT (count(*) = %zu)::int FROM floor_sagas WHERE step = %d", n, STEPS);
    if (secs < 0 || failures || scalar(sql) != 1) {
        fprintf(stderr, "bench_saga: the floor failed %lu statements\n", failures);
        return -1;
    }
    return (double)n / secs;
}

/* The ceiling: on the n sagas and their jobs an engine's round left, each
 * thread moves its sagas' rows four times, each behind its job's row lock. */
static int64_t *ceil_sagas, *ceil_jobs;

static void *ceiling_main(void *arg)
{
    struct floor_thread *f = arg;
    for (size_t i = f->from; i < f->to; i++) {
        char job[24], id[24], step[8];
        snprintf(job, sizeof job, "%" PRId64, ceil_jobs[i]);
        snprintf(id, sizeof id, "%" PRId64, ceil_sagas[i]);
        for (int s = 1; s <= STEPS; s++) {
            snprintf(step, sizeof step, "%d", s);
            const char *p[3] = {job, id, step};
            PGresult *r = PQexecPrepared(f->pg, "ceiling", 3, p, NULL, NULL, 0);
            f->failures += PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdTuples(r), "1") != 0;
            PQclear(r);
        }
    }
    return NULL;
}

/* The ids of column 0 of sql's n rows into out; 0, or -1. */
static int ids(const char *sql, size_t n, int64_t *out)
{
    PGresult *r = PQexec(admin, sql);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && (size_t)PQntuples(r) == n;
    for (size_t i = 0; ok && i < n; i++)
        out[i] = strtoll(PQgetvalue(r, (int)i, 0), NULL, 10);
    if (!ok)
        fprintf(stderr, "bench_saga: %s: %d rows, want %zu\n", sql, PQntuples(r), n);
    PQclear(r);
    return ok ? 0 : -1;
}

static double ceiling_run(size_t n)
{
    if (ids("SELECT id FROM backend_saga.sagas ORDER BY id", n, ceil_sagas) != 0 ||
        ids("SELECT id FROM backend_jobs.jobs WHERE kind = 'saga:bench:1' ORDER BY id", n, ceil_jobs) != 0)
        return -1;
    unsigned long failures;
    double secs = run_threads(ceiling_main, n, &failures);
    if (secs < 0 || failures) {
        fprintf(stderr, "bench_saga: the ceiling failed %lu statements\n", failures);
        return -1;
    }
    return (double)n / secs;
}

static int prepare_floor(PGconn *pg)
{
    PGresult *r = PQprepare(pg, "insert", "INSERT INTO floor_sagas (id, status, step, context) "
                                          "VALUES ($1::bigint, 'running', 0, '{}')", 1, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok) {
        r = PQprepare(pg, "update", "UPDATE floor_sagas SET step = $2::int, status = CASE WHEN $2::int = 4 "
                                    "THEN 'completed' ELSE status END, updated_at = now() WHERE id = $1::bigint",
                      2, NULL);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    if (ok) {
        r = PQprepare(pg, "ceiling", "WITH j AS (SELECT id FROM backend_jobs.jobs WHERE id = $1::bigint FOR UPDATE) "
                                     "UPDATE backend_saga.sagas SET step = $3::int, context = context || '{}', "
                                     "updated_at = now() WHERE id = $2::bigint AND EXISTS (SELECT 1 FROM j)",
                      3, NULL);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    if (!ok)
        fprintf(stderr, "bench_saga: PQprepare: %s", PQerrorMessage(pg));
    return ok ? 0 : -1;
}

static double max2(double a, double b) { return a > b ? a : b; }

static int run_benches(void)
{
    double per_step = 0, best_per_step = 0;
    if (ours_run(N_WARMUP, &per_step) < 0 || floor_run(N_WARMUP) < 0)
        return -1;
    printf("bench_saga: %d four-step sagas of empty steps per round, %d threads: an engine vs one insert and four "
           "updates per saga by hand (libpq, one connection per thread); best of %d interleaved rounds\n",
           N_SAGAS, THREADS, ROUNDS);
    double ours = 0, base = 0, ceiling = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double o, b, c;
        if (r % 2 == 0) {
            b = floor_run(N_SAGAS);
            o = ours_run(N_SAGAS, &per_step);
            c = o < 0 ? -1 : ceiling_run(N_SAGAS);
        } else {
            o = ours_run(N_SAGAS, &per_step);
            c = o < 0 ? -1 : ceiling_run(N_SAGAS);
            b = floor_run(N_SAGAS);
        }
        if (o < 0 || b < 0 || c < 0)
            return -1;
        printf("  round %d: engine %.0f sagas/s (%.2f statements per step)  floor %.0f sagas/s (%.2f)  "
               "ceiling %.0f sagas/s\n", r + 1, o, per_step, b, (1.0 + STEPS) / STEPS, c);
        ceiling = max2(ceiling, c);
        fflush(stdout);
        if (o > ours)
            best_per_step = per_step;
        ours = max2(ours, o);
        base = max2(base, b);
    }
    printf("bench_saga: statements per step in the best round: engine %.2f, floor %.2f; the ceiling %.0f "
           "sagas/s is %.3f of the floor\n", best_per_step, (1.0 + STEPS) / STEPS, ceiling, ceiling / base);
    printf("BENCH saga_4step ours=%.0f base=%.0f unit=sagas/s ratio=%.3f\n", ours, base, ours / base);
    return 0;
}

int main(void)
{
    const char *server = bench_pg_server("bench_saga");
    if (!server)
        return EXIT_FAILURE;
    PGconn *server_admin = bench_pg_connect("bench_saga", server);
    char dbname[40];
    if (!server_admin ||
        bench_pg_database("bench_saga", server, server_admin, "bench_saga_", dbname, conninfo) != 0) {
        PQfinish(server_admin);
        return EXIT_FAILURE;
    }

    int status = EXIT_FAILURE;
    ceil_sagas = calloc(N_SAGAS, sizeof *ceil_sagas);
    ceil_jobs = calloc(N_SAGAS, sizeof *ceil_jobs);
    bk_db_opts_t o;
    bk_db_opts_init(&o);
    o.min_conns = THREADS + 2;
    o.max_conns = THREADS + 4;
    bk_error_t err = {0};
    int ok = bk_metrics_new(&metrics) == BK_OK;
    o.metrics = metrics;
    /* Registering the family again returns the pool's (bk_metrics_counter(3)). */
    bk_metric_t *family;
    ok = ok && bk_db_new(conninfo, &o, &db, &err) == BK_OK &&
         bk_metrics_counter(metrics, "db_queries_total", "Queries by outcome.", (const char *[]){"pool", "outcome", NULL},
                            &family) == BK_OK &&
         bk_metric_counter(family, (const char *[]){"default", "ok", NULL}, &queries) == BK_OK && bk_jobs_new(db, NULL, &jobs, &err) == BK_OK &&
             bk_saga_def_new("bench", 1, &def, &err) == BK_OK;
    for (int s = 0; ok && s < STEPS; s++) {
        char name[8];
        snprintf(name, sizeof name, "s%d", s);
        ok = bk_saga_def_step(def, name, empty_action, empty_undo, NULL, NULL) == BK_OK;
    }
    if (!ok)
        fprintf(stderr, "bench_saga: setup: %s\n", err.message);
    /* The engine's tables, made by a first engine. */
    bk_saga_engine_t *e = NULL;
    if (ok && (ok = bk_saga_engine_new(jobs, NULL, &e, &err) == BK_OK))
        bk_saga_engine_free(e);
    if (ok && (admin = bench_pg_connect("bench_saga", conninfo)) != NULL && bench_pg_exec("bench_saga", admin, "SET client_min_messages = warning") &&
        bench_pg_exec("bench_saga", admin, "CREATE TABLE floor_sagas (id bigint PRIMARY KEY, status text NOT NULL, step int NOT NULL, "
                       "context jsonb NOT NULL, updated_at timestamptz)")) {
        int fine = 1;
        for (int t = 0; t < THREADS && fine; t++)
            fine = (floor_th[t].pg = bench_pg_connect("bench_saga", conninfo)) != NULL && prepare_floor(floor_th[t].pg) == 0;
        if (fine && run_benches() == 0)
            status = EXIT_SUCCESS;
    }
    for (int t = 0; t < THREADS; t++)
        PQfinish(floor_th[t].pg);
    PQfinish(admin);
    bk_saga_def_free(def);
    bk_jobs_free(jobs);
    bk_db_free(db);
    bk_metrics_free(metrics);
    if (!bench_pg_drop("bench_saga", server_admin, dbname))
        status = EXIT_FAILURE;
    PQfinish(server_admin);
    free(ceil_sagas);
    free(ceil_jobs);
    return status;
}
