/* Periodic jobs: a schedule per name, enqueued once per period however many
 * processes run it. The table {S}.periodic remembers the last period each
 * name enqueued; the process whose upsert moves it forward enqueues the job in
 * the same transaction, so a period is taken and its job exists together, or
 * neither. Run by the worker's heartbeat thread.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock_int.h"
#include "jobs/cron_int.h"
#include "jobs/jobs_int.h"

#define RETRY_NS (5 * BK_NSEC_PER_SEC) /* after a failure: the database may be back by then */

struct bk__periodic {
    char *name, *kind, *queue;
    bk__cron_t sched;
    json_t *args;
    bk_jobs_enqueue_opts_t opts;
    int64_t next_wall; /* 0: check now */
    struct bk__periodic *next;
};

static bool plain_name(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-");
    return n >= 1 && n <= 128 && s[n] == '\0';
}

int bk__periodic_add(bk__periodic_t **list, const char *name, const char *schedule, const char *kind,
                     const json_t *args, const bk_jobs_enqueue_opts_t *opts, bk_error_t *err)
{
    if (!name || !plain_name(name))
        return bk__error(err, BK_EINVAL, "periodic: the name must match [A-Za-z0-9_.:-]{1,128}");
    if (!kind || !*kind)
        return bk__error(err, BK_EINVAL, "periodic %s: no kind", name);
    if (!schedule)
        return bk__error(err, BK_EINVAL, "periodic %s: no schedule", name);
    if (args && !json_is_object(args) && !json_is_array(args))
        return bk__error(err, BK_EINVAL, "periodic %s: args must be a JSON object or array", name);
    if (opts && opts->unique_key)
        return bk__error(err, BK_EINVAL, "periodic %s: a unique_key is not allowed (the period is the key)", name);
    for (bk__periodic_t *p = *list; p; p = p->next)
        if (strcmp(p->name, name) == 0)
            return bk__error(err, BK_EEXIST, "periodic: %s is scheduled already", name);
    bk__cron_t sched;
    int rc = bk__cron_parse(schedule, strlen(schedule), &sched, err);
    if (rc)
        return rc;
    bk__periodic_t *p = calloc(1, sizeof *p);
    if (!p)
        return bk__error(err, BK_ENOMEM, "out of memory");
    if (opts)
        p->opts = *opts;
    else
        bk_jobs_enqueue_opts_init(&p->opts);
    p->sched = sched;
    p->name = strdup(name);
    p->kind = strdup(kind);
    p->queue = strdup(p->opts.queue ? p->opts.queue : "default");
    p->args = args ? json_deep_copy(args) : json_object();
    p->opts.queue = p->queue;
    if (!p->name || !p->kind || !p->queue || !p->args) {
        p->next = NULL;
        bk__periodic_free(p);
        return bk__error(err, BK_ENOMEM, "out of memory");
    }
    p->next = *list;
    *list = p;
    return BK_OK;
}

void bk__periodic_free(bk__periodic_t *list)
{
    while (list) {
        bk__periodic_t *next = list->next;
        free(list->name);
        free(list->kind);
        free(list->queue);
        json_decref(list->args);
        free(list);
        list = next;
    }
}

struct fire {
    bk_jobs_t *jobs;
    bk__periodic_t *p;
    int64_t period;
    bool enqueued;
};

static int fire_tx(bk_db_conn_t *c, void *ud)
{
    struct fire *f = ud;
    f->enqueued = false;
    char period[24];
    snprintf(period, sizeof period, "%" PRId64, f->period);
    bk_db_param_t p[] = {BK_DB_TEXT(f->p->name), BK_DB_TEXT(period)};
    bk_db_result_t *res;
    bk_error_t err;
    int rc = bk__jobs_query(f->jobs, c, SQL_PERIOD, p, 2, &res, &err);
    if (rc)
        return rc;
    const char *inserted = bk_db_value(res, 0, 0);
    bool take = inserted && strcmp(inserted, "f") == 0; /* moved forward, not new */
    bk_db_result_free(res);
    if (!take)
        return BK_OK;
    f->enqueued = true;
    return bk_jobs_enqueue(f->jobs, c, f->p->kind, f->p->args, &f->p->opts, NULL, NULL);
}

int64_t bk__periodic_run(bk_jobs_t *jobs, bk__periodic_t *list)
{
    int64_t wall = bk_clock_wall_ns(jobs->clock), soonest = 0;
    for (bk__periodic_t *p = list; p; p = p->next) {
        if (p->next_wall <= wall) {
            struct fire f = {jobs, p, 0, false};
            bk_error_t err;
            int rc = bk__cron_period_start(&p->sched, wall, &f.period);
            if (rc == BK_OK)
                rc = bk_db_tx(jobs->db, BK_DB_READ_COMMITTED, NULL, fire_tx, &f, &err);
            else
                snprintf(err.message, sizeof err.message, "the schedule has no period around now");
            if (rc == BK_OK && bk__cron_next(&p->sched, wall, &p->next_wall) != BK_OK)
                p->next_wall = INT64_MAX; /* no firing any more (after 2262) */
            if (rc != BK_OK) {
                bk_log(jobs->log, BK_LOG_WARN, NULL, "periodic %s: %s", p->name, err.message);
                p->next_wall = wall + RETRY_NS;
            }
        }
        if (soonest == 0 || p->next_wall < soonest)
            soonest = p->next_wall;
    }
    if (!list || soonest == INT64_MAX)
        return BK__CLOCK_NEVER;
    return bk_clock_mono_ns(jobs->clock) + (soonest - bk_clock_wall_ns(jobs->clock));
}
