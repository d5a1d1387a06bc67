/* Fixtures of the tests across processes (crash, fencing, two workers): the
 * children they fork, tracked so that a failed assertion leaves none behind,
 * and bounded waits on the database that fail loudly. They assert outcomes,
 * never durations: BKT_LIMIT_S only bounds a wait that would otherwise hang.
 * With tests/pg_test.h. SPDX-License-Identifier: MIT */
#ifndef BK_TESTS_PROC_TEST_H
#define BK_TESTS_PROC_TEST_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <libpq-fe.h>

#define BKT_LIMIT_S 240 /* the real-time bound of every wait: generous, for valgrind */

/* The children alive: killed by bkt_children_kill (in teardown). */
static pid_t bkt_children[4];

static inline void bkt_track(pid_t pid, bool alive)
{
    for (size_t i = 0; i < sizeof bkt_children / sizeof bkt_children[0]; i++)
        if (alive ? bkt_children[i] == 0 : bkt_children[i] == pid) {
            bkt_children[i] = alive ? pid : 0;
            return;
        }
}

static inline void bkt_children_kill(void)
{
    for (size_t i = 0; i < sizeof bkt_children / sizeof bkt_children[0]; i++)
        if (bkt_children[i] > 0) {
            kill(bkt_children[i], SIGKILL);
            waitpid(bkt_children[i], NULL, 0);
            bkt_children[i] = 0;
        }
}

/* The first value of sql's first row on conninfo as a long long (-1 for no
 * row or NULL); a command's -1. */
static inline long long bkt_sql_ll(const char *conninfo, const char *sql)
{
    PGconn *pg = PQconnectdb(conninfo);
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(pg));
    PGresult *r = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql,
                  PQerrorMessage(pg));
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(pg);
    return v;
}

static inline double bkt_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Polls sql every 10 ms until it yields want, for BKT_LIMIT_S at most. */
static inline void bkt_wait_sql(const char *conninfo, const char *sql, long long want)
{
    double end = bkt_now_s() + BKT_LIMIT_S;
    long long got;
    while ((got = bkt_sql_ll(conninfo, sql)) != want) {
        ck_assert_msg(bkt_now_s() < end, "timed out after %d s: %s gave %lld, want %lld", BKT_LIMIT_S, sql, got,
                      want);
        usleep(10000);
    }
}

/* Polls sql every 2 ms until it yields more than was, for BKT_LIMIT_S at most. */
static inline void bkt_wait_progress(const char *conninfo, const char *sql, long long was)
{
    double end = bkt_now_s() + BKT_LIMIT_S;
    while (bkt_sql_ll(conninfo, sql) <= was) {
        ck_assert_msg(bkt_now_s() < end, "timed out after %d s: %s stays at %lld", BKT_LIMIT_S, sql, was);
        usleep(2000);
    }
}

/* Reaps the child pid; its wait status. */
static inline int bkt_wait_child(pid_t pid)
{
    int st;
    pid_t r;
    while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    ck_assert_int_eq(r, pid);
    bkt_track(pid, false);
    return st;
}

static inline void bkt_ck_exited_ok(pid_t pid, const char *who)
{
    int st = bkt_wait_child(pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status %d (signal %d)", who,
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

#endif
