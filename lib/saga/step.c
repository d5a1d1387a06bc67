/* A saga's job: it runs the saga from where it is, step after step, for as
 * long as its actions succeed, and hands over to a new job when it must wait
 * (a retry's backoff) or turns (a failure, a cancel, compensations).
 *
 * Every attempt is recorded before its callback runs and its outcome after,
 * in transactions that hold the job (fencing), and no transaction is open
 * while a callback runs (it may call a remote service for seconds):
 *   - the way of success is one statement per step (SAGA_FAST_*): begin the
 *     step the saga is at; complete step i and begin step i + 1; complete the
 *     last step, the saga and the job;
 *   - anything else takes the general transactions: begin_tx (the job held,
 *     the saga locked, where it is read, one more attempt counted and
 *     recorded: its number is the attempts row's key, so two processes never
 *     both start attempt n; or, when the attempts are spent (a crash during
 *     the last one) or a cancel came, the saga moved on at once) and end_tx
 *     (the job completed with bk_job_complete_in, the outcome, the saga's
 *     next state and the job that goes on, all or nothing).
 * A worker that lost its job meanwhile (it stalled past its lease) is fenced
 * and changes nothing: the attempt that took the job over runs the step
 * again, with the same idempotency key.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_int.h"
#include "jobs/jobs_int.h"
#include "resilience/resilience_int.h"
#include "saga/saga_int.h"

enum phase { ACTION, COMPENSATE };
static const char *const PHASE[] = {"action", "compensate"};

struct advance {
    bk_saga_engine_t *e;
    struct bk__saga_reg *reg;
    const bk_saga_def_t *def;
    bk_job_t *job;
    int64_t id;
    size_t idx;
    enum phase phase;
    char ids[24], idxs[16], now[24];
    /* from begin */
    bool skip;     /* nothing to do: the saga is elsewhere (an old job), or gone */
    bool done;     /* begin moved the saga on and completed the job */
    bool pivoted;
    int attempt;   /* this attempt's number in all */
    int budget;    /* ... and since the last operator retry */
    char *context; /* the saga's, as text */
    /* from the callback */
    int rc;
    bool maybe_applied; /* the action said so (bk_saga_maybe_applied) */
    json_t *out;
    char msg[256];
    const char *final; /* the outcome the saga reached in this transaction, or NULL */
    char *final_error;   /* ... and why (NULL when completed), for the finish hook */
    char *final_context; /* ... and its context then, as the statement that ended it returned it */
    bk_error_t *err;
};

static int q(struct advance *a, bk_db_conn_t *c, enum bk__saga_sql which, const bk_db_param_t *p, size_t n,
             bk_db_result_t **res)
{
    return bk__saga_query(a->e, c, which, p, n, res, a->err);
}

static void final_clear(struct advance *a)
{
    free(a->final_error);
    free(a->final_context);
    a->final_error = a->final_context = NULL;
}

static int advance_to(struct advance *a, bk_db_conn_t *c, const char *status, const char *phase, size_t step,
                      const char *merge, bool pivot, const char *error)
{
    char steps[16];
    snprintf(steps, sizeof steps, "%zu", step);
    bk_db_param_t p[] = {BK_DB_TEXT(a->ids), BK_DB_TEXT(a->now), BK_DB_TEXT(status), BK_DB_TEXT(phase),
                         BK_DB_TEXT(steps), merge ? BK_DB_TEXT(merge) : BK_DB_NULL,
                         BK_DB_TEXT(pivot ? "true" : "false"), error ? BK_DB_TEXT(error) : BK_DB_NULL};
    bk_db_result_t *res;
    int rc = q(a, c, SAGA_ADVANCE, p, 8, &res);
    if (rc == BK_OK && strcmp(status, "running") != 0 && strcmp(status, "compensating") != 0) {
        a->final = status; /* a string constant */
        if (a->def->finish) {
            final_clear(a);
            const char *error_then = bk_db_value(res, 0, 0); /* NULL for SQL NULL */
            a->final_error = error_then ? strdup(error_then) : NULL;
            a->final_context = strdup(bk_db_value(res, 0, 1));
            if (!a->final_context || (error_then && !a->final_error))
                rc = bk__error(a->err, BK_ENOMEM, "out of memory");
        }
    }
    bk_db_result_free(res);
    return rc;
}

static int step_done(struct advance *a, bk_db_conn_t *c, size_t idx, const char *status, const char *output)
{
    char idxs[16];
    snprintf(idxs, sizeof idxs, "%zu", idx);
    bk_db_param_t p[] = {BK_DB_TEXT(a->ids), BK_DB_TEXT(idxs), BK_DB_TEXT(a->now), BK_DB_TEXT(status),
                         output ? BK_DB_TEXT(output) : BK_DB_NULL};
    return q(a, c, SAGA_STEP_DONE, p, 5, NULL);
}

/* The job that goes on with the saga, at run_at_ns (0 = now). */
static int enqueue(struct advance *a, bk_db_conn_t *c, int64_t run_at_ns)
{
    return bk__saga_enqueue(a->e, c, a->def->kind, a->id, run_at_ns, a->err);
}

/* Compensates the completed steps from 'from' down (all the steps before the
 * one that failed, or was cancelled, completed): a step without compensation
 * is compensated at once; the first with one gets its job; none left: the
 * saga is compensated. */
static int compensate_from(struct advance *a, bk_db_conn_t *c, long from, const char *error)
{
    for (long k = from; k >= 0; k--) {
        if (a->def->steps[k].compensate) {
            int rc = advance_to(a, c, "compensating", "compensate", (size_t)k, NULL, false, error);
            return rc ? rc : enqueue(a, c, 0);
        }
        int rc = step_done(a, c, (size_t)k, "compensated", NULL);
        if (rc)
            return rc;
    }
    return advance_to(a, c, "compensated", "compensate", 0, NULL, false, error);
}

/* The step failed for good: compensate what came before, or, past the
 * pivot, park the saga for an operator. An action that returned a failure
 * took no effect (its contract), unless it said it may have
 * (bk_saga_maybe_applied: a call that got no answer); and an attempt that
 * never returned (its worker died) may have too. Then the step's own
 * compensation runs first (compensations undo by the idempotency key, and
 * undo nothing when nothing was done). */
static int fail_step(struct advance *a, bk_db_conn_t *c, const char *error, bool maybe_applied)
{
    int rc = step_done(a, c, a->idx, "failed", NULL);
    if (rc)
        return rc;
    if (a->pivoted)
        return advance_to(a, c, "stuck", "action", a->idx, NULL, false, error);
    return compensate_from(a, c, (long)a->idx - (maybe_applied ? 0 : 1), error);
}

/* The definition's finish hook, on c inside the transaction in which the
 * saga reached a->final (nothing when it did not). */
static int finish(struct advance *a, bk_db_conn_t *c)
{
    if (!a->final || !a->def->finish)
        return BK_OK;
    json_t *ctx = json_loads(a->final_context, 0, NULL);
    if (!ctx)
        return bk__error(a->err, BK_ENOMEM, "saga %" PRId64 ": the context cannot be read", a->id);
    bk_saga_outcome_t o = {a->id, a->def->name, a->def->version, a->final, ctx, a->final_error};
    bk_error_t herr;
    bk__error_clear(&herr);
    int rc = a->def->finish(&o, c, &herr, a->def->finish_ud);
    json_decref(ctx);
    if (rc != BK_OK)
        return bk__error(a->err, rc, "saga %" PRId64 ": its finish hook failed: %s", a->id,
                         herr.message[0] ? herr.message : bk_err_name(rc));
    return BK_OK;
}

static int begin_body(struct advance *a, bk_db_conn_t *c)
{
    a->skip = a->done = false;
    a->final = NULL;
    free(a->context);
    a->context = NULL;
    int rc = bk_job_hold(a->job, c, a->err);
    if (rc)
        return rc;
    bk_db_param_t id[] = {BK_DB_TEXT(a->ids)};
    bk_db_result_t *res;
    if ((rc = q(a, c, SAGA_LOCK, id, 1, &res)) != BK_OK)
        return rc;
    if (bk_db_rows(res) == 0) { /* deleted (retention, or by hand): nothing left to do */
        bk_db_result_free(res);
        a->skip = true;
        return BK_OK;
    }
    /* Where the saga is: its row is the truth, the job says only which saga. */
    const char *status = bk_db_value(res, 0, 0);
    bool here = strcmp(status, "running") == 0 || strcmp(status, "compensating") == 0;
    a->phase = strcmp(bk_db_value(res, 0, 1), "action") == 0 ? ACTION : COMPENSATE;
    a->idx = (size_t)strtoull(bk_db_value(res, 0, 2), NULL, 10);
    snprintf(a->idxs, sizeof a->idxs, "%zu", a->idx);
    here = here && a->idx < a->def->n;
    a->pivoted = strcmp(bk_db_value(res, 0, 4), "t") == 0;
    bool cancel = strcmp(bk_db_value(res, 0, 5), "t") == 0;
    a->context = strdup(bk_db_value(res, 0, 3));
    bk_db_result_free(res);
    if (!a->context)
        return bk__error(a->err, BK_ENOMEM, "out of memory");
    if (!here) { /* finished or stuck: nothing to do */
        a->skip = true;
        return BK_OK;
    }
    if (a->phase == ACTION && cancel && !a->pivoted) {
        a->done = true;
        rc = compensate_from(a, c, (long)a->idx - 1, "cancelled");
        return rc ? rc : bk_job_complete_in(a->job, c, a->err);
    }
    bk_db_param_t b[] = {BK_DB_TEXT(a->ids), BK_DB_TEXT(a->idxs), BK_DB_TEXT(a->now), BK_DB_TEXT(PHASE[a->phase])};
    if ((rc = q(a, c, SAGA_STEP_BEGIN, b, 4, &res)) != BK_OK)
        return rc;
    a->budget = atoi(bk_db_value(res, 0, 0));
    a->attempt = atoi(bk_db_value(res, 0, 1));
    bk_db_result_free(res);
    const struct bk__saga_step *s = &a->def->steps[a->idx];
    unsigned max = a->phase == ACTION ? s->opts.max_attempts : s->opts.compensate_attempts;
    if ((unsigned)a->budget > max) { /* the last attempt died with its worker */
        a->done = true;
        const char *why = "the last attempt did not finish (its worker died)";
        rc = a->phase == ACTION ? fail_step(a, c, why, true)
                                : advance_to(a, c, "stuck", "compensate", a->idx, NULL, false, why);
        return rc ? rc : bk_job_complete_in(a->job, c, a->err);
    }
    char att[16], job[24], jatt[16];
    snprintf(att, sizeof att, "%d", a->attempt);
    snprintf(job, sizeof job, "%" PRId64, bk_job_id(a->job));
    snprintf(jatt, sizeof jatt, "%d", bk_job_attempt(a->job));
    bk_db_param_t r[] = {BK_DB_TEXT(a->ids), BK_DB_TEXT(a->idxs), BK_DB_TEXT(PHASE[a->phase]), BK_DB_TEXT(att),
                         BK_DB_TEXT(job), BK_DB_TEXT(jatt), BK_DB_TEXT(a->e->worker_id), BK_DB_TEXT(a->now)};
    return q(a, c, SAGA_ATTEMPT, r, 8, NULL);
}

static int begin_tx(bk_db_conn_t *c, void *ud)
{
    struct advance *a = ud;
    int rc = begin_body(a, c);
    return rc == BK_OK && a->done ? finish(a, c) : rc;
}

static int end_body(struct advance *a, bk_db_conn_t *c)
{
    a->final = NULL;
    int rc = bk_job_complete_in(a->job, c, a->err); /* first: fenced, nothing is written */
    if (rc)
        return rc;
    char att[16];
    snprintf(att, sizeof att, "%d", a->attempt);
    bk_db_param_t e[] = {BK_DB_TEXT(a->ids), BK_DB_TEXT(a->idxs), BK_DB_TEXT(PHASE[a->phase]), BK_DB_TEXT(att),
                         BK_DB_TEXT(a->rc == BK_OK ? "ok" : a->maybe_applied ? "unknown" : "failed"),
                         BK_DB_TEXT(a->now)};
    if ((rc = q(a, c, SAGA_ATTEMPT_END, e, 6, NULL)) != BK_OK)
        return rc;
    const struct bk__saga_step *s = &a->def->steps[a->idx];
    if (a->rc == BK_OK) {
        if (a->phase == COMPENSATE) {
            rc = step_done(a, c, a->idx, "compensated", NULL);
            return rc ? rc : compensate_from(a, c, (long)a->idx - 1, NULL);
        }
        char *out = a->out ? bk__json_dump(a->out, JSON_COMPACT) : NULL;
        if (a->out && !out)
            return bk__error(a->err, BK_ENOMEM, "out of memory");
        rc = step_done(a, c, a->idx, "completed", out);
        if (rc == BK_OK && a->idx + 1 < a->def->n) {
            rc = advance_to(a, c, "running", "action", a->idx + 1, out, s->opts.pivot, NULL);
            if (rc == BK_OK)
                rc = enqueue(a, c, 0);
        } else if (rc == BK_OK) {
            rc = advance_to(a, c, "completed", "action", a->idx, out, s->opts.pivot, NULL);
        }
        bk__json_free(out);
        return rc;
    }
    unsigned max = a->phase == ACTION ? s->opts.max_attempts : s->opts.compensate_attempts;
    /* An open breaker fails the step at once; a compensation is retried
     * whatever its failure (nothing is ever dropped). */
    bool again = (unsigned)a->budget < max && (a->phase == COMPENSATE || a->rc != BK_EUNAVAIL);
    const char *status = again ? (a->phase == ACTION ? "pending" : "compensating")
                               : (a->phase == ACTION ? "failed" : "compensating");
    bk_db_param_t f[] = {BK_DB_TEXT(a->ids), BK_DB_TEXT(a->idxs), BK_DB_TEXT(a->now), BK_DB_TEXT(PHASE[a->phase]),
                         BK_DB_TEXT(att), BK_DB_TEXT(a->msg), BK_DB_TEXT(status)};
    if ((rc = q(a, c, SAGA_STEP_ERROR, f, 7, NULL)) != BK_OK)
        return rc;
    if (again)
        return enqueue(a, c, bk_clock_wall_ns(a->e->clock) + bk__retry_delay(&s->retry, a->budget));
    if (a->phase == ACTION) {
        bk_db_param_t d[] = {BK_DB_TEXT(a->ids), BK_DB_TEXT(a->idxs)};
        bk_db_result_t *res;
        if ((rc = q(a, c, SAGA_MAYBE_APPLIED, d, 2, &res)) != BK_OK)
            return rc;
        bool maybe = strcmp(bk_db_value(res, 0, 0), "0") != 0;
        bk_db_result_free(res);
        return fail_step(a, c, a->msg, maybe);
    }
    return advance_to(a, c, "stuck", "compensate", a->idx, NULL, false, a->msg);
}

static int end_tx(bk_db_conn_t *c, void *ud)
{
    struct advance *a = ud;
    int rc = end_body(a, c);
    return rc ? rc : finish(a, c);
}

/* The job's fence and the saga: $1 .. $4 of every SAGA_FAST_* statement. */
static void fast_params(struct advance *a, bk_db_param_t *p, char *job, size_t jl, char *jatt, size_t jal)
{
    snprintf(job, jl, "%" PRId64, bk_job_id(a->job));
    snprintf(jatt, jal, "%d", bk_job_attempt(a->job));
    p[0] = (bk_db_param_t)BK_DB_TEXT(job);
    p[1] = (bk_db_param_t)BK_DB_TEXT(jatt);
    p[2] = (bk_db_param_t)BK_DB_TEXT(a->now);
    p[3] = (bk_db_param_t)BK_DB_TEXT(a->ids);
}

/* Reads what a fast statement that began a step returns from column col on:
 * budget, attempt, context, pivoted. */
static int fast_began(struct advance *a, bk_db_result_t *res, size_t col)
{
    a->budget = atoi(bk_db_value(res, 0, col));
    a->attempt = atoi(bk_db_value(res, 0, col + 1));
    free(a->context);
    a->context = strdup(bk_db_value(res, 0, col + 2));
    a->pivoted = strcmp(bk_db_value(res, 0, col + 3), "t") == 0;
    return a->context ? BK_OK : bk__error(a->err, BK_ENOMEM, "out of memory");
}

/* SAGA_FAST_BEGIN: *began when the action the saga is at was begun. */
static int fast_begin(struct advance *a, bool *began)
{
    *began = false;
    bk__sql_arr_t m = {0};
    for (size_t i = 0; i < a->def->n; i++)
        bk__sql_arr_int(&m, a->def->steps[i].opts.max_attempts);
    char *max = bk__sql_arr_end(&m);
    if (!max)
        return bk__error(a->err, BK_ENOMEM, "out of memory");
    char job[24], jatt[16];
    bk_db_param_t p[6];
    fast_params(a, p, job, sizeof job, jatt, sizeof jatt);
    p[4] = (bk_db_param_t)BK_DB_TEXT(max);
    p[5] = (bk_db_param_t)BK_DB_TEXT(a->e->worker_id);
    bk_db_result_t *res;
    int rc = q(a, NULL, SAGA_FAST_BEGIN, p, 6, &res);
    free(max);
    if (rc == BK_OK && bk_db_rows(res) == 1) {
        a->phase = ACTION;
        a->idx = (size_t)strtoull(bk_db_value(res, 0, 0), NULL, 10);
        snprintf(a->idxs, sizeof a->idxs, "%zu", a->idx);
        rc = fast_began(a, res, 1);
        *began = rc == BK_OK && a->idx < a->def->n;
    }
    bk_db_result_free(res);
    return rc;
}

/* SAGA_FAST_DONE and the finish hook in one transaction. */
struct fast_done {
    struct advance *a;
    const bk_db_param_t *p;
    bk_db_result_t *res;
};

static int fast_done_tx(bk_db_conn_t *c, void *ud)
{
    struct fast_done *f = ud;
    bk_db_result_free(f->res); /* from a run of this transaction that was retried */
    f->res = NULL;
    f->a->final = NULL;
    int rc = q(f->a, c, SAGA_FAST_DONE, f->p, 8, &f->res);
    if (rc == BK_OK && bk_db_rows(f->res) == 1) {
        f->a->final = "completed";
        final_clear(f->a);
        if (!(f->a->final_context = strdup(bk_db_value(f->res, 0, 1))))
            return bk__error(f->a->err, BK_ENOMEM, "out of memory");
        rc = finish(f->a, c);
    }
    return rc;
}

/* SAGA_FAST_NEXT (action idx succeeded, another follows) or SAGA_FAST_DONE
 * (it was the last): *moved when the statement did it; not when a cancel
 * came or the job is no longer held (end_tx decides). */
static int fast_end(struct advance *a, bool *moved)
{
    *moved = false;
    bool last = a->idx + 1 == a->def->n;
    char *out = a->out ? bk__json_dump(a->out, JSON_COMPACT) : NULL;
    if (a->out && !out)
        return bk__error(a->err, BK_ENOMEM, "out of memory");
    char job[24], jatt[16], att[16];
    snprintf(att, sizeof att, "%d", a->attempt);
    bk_db_param_t p[9];
    fast_params(a, p, job, sizeof job, jatt, sizeof jatt);
    p[4] = (bk_db_param_t)BK_DB_TEXT(a->idxs);
    p[5] = (bk_db_param_t)BK_DB_TEXT(att);
    p[6] = out ? (bk_db_param_t)BK_DB_TEXT(out) : (bk_db_param_t)BK_DB_NULL;
    p[7] = (bk_db_param_t)BK_DB_TEXT(a->def->steps[a->idx].opts.pivot ? "true" : "false");
    p[8] = (bk_db_param_t)BK_DB_TEXT(a->e->worker_id);
    bk_db_result_t *res = NULL;
    int rc;
    if (last && a->def->finish) { /* a transaction, for the hook's writes */
        struct fast_done f = {a, p, NULL};
        rc = bk_db_tx(a->e->db, BK_DB_READ_COMMITTED, NULL, fast_done_tx, &f, a->err);
        res = f.res;
        a->final = NULL; /* set again below when it committed */
    } else {
        rc = q(a, NULL, last ? SAGA_FAST_DONE : SAGA_FAST_NEXT, p, last ? 8 : 9, &res);
    }
    bk__json_free(out);
    if (rc == BK_OK && bk_db_rows(res) == 1) {
        *moved = true;
        if (last) {
            a->final = "completed";
            bk__job_completed(a->job);
        } else {
            a->idx++;
            snprintf(a->idxs, sizeof a->idxs, "%zu", a->idx);
            rc = fast_began(a, res, 0);
        }
    }
    bk_db_result_free(res);
    return rc;
}

/* The call a callback is given, and what its action may say of itself. */
struct call_box {
    bk_saga_call_t call; /* first: the callback's pointer is the box's */
    bool maybe_applied;
    bool action;
};

void bk_saga_maybe_applied(const bk_saga_call_t *call)
{
    /* The engine made every call it hands out inside a box of its own (not
     * const): writing through the cast is defined. */
    struct call_box *box = (struct call_box *)call;
    if (box != NULL && box->action)
        box->maybe_applied = true;
}

/* Runs the callback of the step and phase a is at, on its context. */
static int call(struct advance *a)
{
    json_t *ctx = json_loads(a->context, 0, NULL);
    if (!ctx) {
        bk_job_error(a->job, "the saga's context cannot be read");
        return BK_ENOMEM;
    }
    const struct bk__saga_step *s = &a->def->steps[a->idx];
    char key[128];
    snprintf(key, sizeof key, "%" PRId64 "/%s", a->id, s->name);
    struct call_box box = {{a->id, a->def->name, a->def->version, s->name, key, ctx, a->budget, a->job},
                           false, a->phase == ACTION};
    bk_error_t cerr;
    bk__error_clear(&cerr);
    json_decref(a->out);
    a->out = NULL;
    bk__job_rearm(a->job, s->opts.timeout_ns); /* each step's timeout its own */
    int64_t t0 = bk_clock_mono_ns(a->e->clock);
    if (a->phase == ACTION) {
        a->rc = s->action(&box.call, &a->out, &cerr, s->ud);
        a->maybe_applied = a->rc != BK_OK && box.maybe_applied;
        if (a->rc == BK_OK && a->out && !json_is_object(a->out)) {
            a->rc = BK_EINVAL;
            snprintf(cerr.message, sizeof cerr.message, "the action's output is not a JSON object");
        }
    } else {
        a->rc = s->compensate(&box.call, &cerr, s->ud);
        a->maybe_applied = false;
    }
    if (a->reg->durations)
        bk_histogram_observe(a->reg->durations[a->idx], (double)(bk_clock_mono_ns(a->e->clock) - t0) / 1e9);
    json_decref(ctx);
    snprintf(a->msg, sizeof a->msg, "%s", cerr.message[0] ? cerr.message : bk_err_name(a->rc));
    snprintf(a->now, sizeof a->now, "%" PRId64, bk_clock_wall_ns(a->e->clock));
    return BK_OK;
}

/* After a statement or transaction that committed a move of the saga. */
static void moved(struct advance *a)
{
    bk__saga_count(a->reg, a->final);
    bk__saga_moved(a->e);
}

/* The outcome could not be recorded: it is lost with this attempt, and the
 * job (retried) runs the step again. */
static int lost(struct advance *a, int rc)
{
    if (rc != BK_ECONFLICT) {
        bk_log(a->e->log, BK_LOG_WARN, NULL, "saga %" PRId64 " step %s: cannot record the outcome: %s", a->id,
               a->def->steps[a->idx].name, a->err->message);
        bk_job_error(a->job, a->err->message);
    }
    return rc;
}

int bk__saga_run_job(bk_job_t *job, void *ud)
{
    struct bk__saga_reg *reg = ud;
    json_t *sid = json_object_get(bk_job_args(job), "saga");
    bk_error_t err;
    struct advance a = {.e = reg->e, .reg = reg, .def = reg->def, .job = job, .err = &err};
    if (!json_is_integer(sid)) {
        bk_job_error(job, "not a saga job: {saga} expected");
        return BK_EINVAL;
    }
    a.id = json_integer_value(sid);
    snprintf(a.ids, sizeof a.ids, "%" PRId64, a.id);
    snprintf(a.now, sizeof a.now, "%" PRId64, bk_clock_wall_ns(a.e->clock));

    bool began;
    int rc = fast_begin(&a, &began);
    if (rc == BK_OK && !began) {
        rc = bk_db_tx(a.e->db, BK_DB_READ_COMMITTED, NULL, begin_tx, &a, &err);
        if (rc == BK_OK && a.done)
            moved(&a);
        if (rc == BK_OK && (a.skip || a.done)) {
            free(a.context);
            final_clear(&a);
            return BK_OK;
        }
    }
    if (rc != BK_OK) {
        if (rc != BK_ECONFLICT)
            bk_job_error(job, err.message); /* the job is retried: begin runs again */
        free(a.context);
        final_clear(&a);
        return rc;
    }
    for (;;) {
        if ((rc = call(&a)) != BK_OK)
            break;
        bool fast = false;
        if (a.phase == ACTION && a.rc == BK_OK && !bk_job_cancelled(job)) {
            a.final = NULL;
            if ((rc = fast_end(&a, &fast)) != BK_OK) {
                rc = lost(&a, rc);
                break;
            }
            if (fast)
                moved(&a);
            if (fast && !a.final)
                continue; /* the next step, in this job */
        }
        if (!fast) {
            a.final = NULL; /* a transaction that ran again starts afresh */
            rc = bk_db_tx(a.e->db, BK_DB_READ_COMMITTED, NULL, end_tx, &a, &err);
            if (rc == BK_OK)
                moved(&a);
            else
                rc = lost(&a, rc);
        }
        break;
    }
    json_decref(a.out);
    free(a.context);
    final_clear(&a);
    return rc;
}
