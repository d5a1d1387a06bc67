/* The server's own endpoints: Prometheus metrics and the three health probes.
 * Readiness runs every registered check on the worker pool, each under its own
 * timer, and answers from the loop when the last check is in or timed out; a
 * check that never returns costs a worker, never the answer.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_int.h"

/* ------------------------------------------------------------------ metrics */
struct metrics_offer {
    int om, text; /* the highest weights */
};

static void metrics_element(const char *t, size_t n, int weight, void *ud)
{
    struct metrics_offer *o = ud;
    if (n == 28 && strncasecmp(t, "application/openmetrics-text", 28) == 0)
        o->om = weight > o->om ? weight : o->om;
    else if ((n == 10 && strncasecmp(t, "text/plain", 10) == 0) || (n == 6 && strncasecmp(t, "text/*", 6) == 0) ||
             (n == 3 && strncmp(t, "*/*", 3) == 0))
        o->text = weight > o->text ? weight : o->text;
}

/* Whether Accept (every line) prefers OpenMetrics: application/openmetrics-text
 * with a weight above 0 and not below that of text/plain (or text, or any). */
static bool wants_openmetrics(const bk_req_t *req)
{
    struct metrics_offer o = {0, 0};
    bk__http_each_element(req, "Accept", metrics_element, &o);
    return o.om > 0 && o.om >= o.text;
}

static void metrics_handler(bk_req_t *req, void *ud)
{
    bk_http_server_t *srv = ud;
    if (srv->workers != NULL) {
        bk_workers_stats_t st;
        bk_workers_stats(srv->workers, &st);
        bk_gauge_set(srv->queue_depth, (double)st.queued);
    }
    char *text;
    size_t len;
    bool om = wants_openmetrics(req);
    int rc = om ? bk_metrics_render_openmetrics(srv->metrics, &text, &len) : bk_metrics_render(srv->metrics, &text, &len);
    if (rc != BK_OK) {
        bk_res_error(req, rc, "cannot render the metrics");
        return;
    }
    bk_res_header(req, "Vary", "Accept"); /* the answer depends on it */
    bk_res_bytes(req, 200,
                 om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                    : "text/plain; version=0.0.4; charset=utf-8",
                 text, len);
    free(text);
}

int bk_http_mount_metrics(bk_http_server_t *srv, const char *path)
{
    if (srv == NULL || path == NULL)
        return BK_EINVAL;
    return bk__http_route_internal(srv, path, metrics_handler);
}

/* ------------------------------------------------------------------ probes */
static void live_handler(bk_req_t *req, void *ud)
{
    (void)ud;
    bk_res_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void startup_handler(bk_req_t *req, void *ud)
{
    bk_http_server_t *srv = ud;
    bool up = atomic_load(&srv->is_started);
    bk_res_json(req, up ? 200 : 503, json_pack("{s:s}", "status", up ? "ok" : "starting"));
}

struct ready_run;

struct ready_check {
    struct ready_run *run;
    size_t index;
    int job_status; /* written by the worker, read on the loop after done */
    const char *outcome;
    struct event *timer;
};

struct ready_run {
    bk_http_server_t *srv; /* the request may be gone (or reused) before the jobs */
    bk_req_t *req;
    struct loop *loop;
    size_t pending; /* checks without an outcome */
    size_t refs;    /* the answer + jobs still on the pool */
    struct ready_check c[];
};

static void run_unref(struct ready_run *run)
{
    if (--run->refs > 0)
        return;
    bk_http_server_t *srv = run->srv;
    for (size_t i = 0; i < srv->nchecks; i++)
        if (run->c[i].timer)
            event_free(run->c[i].timer);
    free(run);
}

/* The readiness answer: status, checks (taken), and the reports when there are. */
static json_t *ready_doc(const bk_http_server_t *srv, const char *status, json_t *checks)
{
    json_t *doc = json_pack("{s:s, s:o}", "status", status, "checks", checks);
    if (doc == NULL || srv->nreports == 0)
        return doc;
    json_t *reports = json_object();
    for (size_t i = 0; i < srv->nreports; i++) {
        const char *state = srv->reports[i].fn(srv->reports[i].ud);
        json_object_set_new(reports, srv->reports[i].name, state ? json_string(state) : json_null());
    }
    json_object_set_new(doc, "reports", reports);
    return doc;
}

static void ready_answer(struct ready_run *run)
{
    bk_req_t *req = run->req;
    bk_http_server_t *srv = req->srv;
    if (!bk__req_resume(req)) { /* the client went away: the request is freed */
        run_unref(run);
        return;
    }
    json_t *checks = json_object();
    bool ok = !atomic_load(&srv->stopping);
    for (size_t i = 0; i < srv->nchecks; i++) {
        json_object_set_new(checks, srv->checks[i].name, json_string(run->c[i].outcome));
        ok = ok && strcmp(run->c[i].outcome, "ok") == 0;
    }
    const char *status = atomic_load(&srv->stopping) ? "stopping" : ok ? "ok" : "unavailable";
    bk_res_json(req, ok ? 200 : 503, ready_doc(srv, status, checks));
    run_unref(run);
    bk__req_complete(req);
}

static void check_outcome(struct ready_check *c, const char *outcome)
{
    if (c->outcome != NULL)
        return; /* already timed out, or already in */
    c->outcome = outcome;
    evtimer_del(c->timer);
    if (--c->run->pending == 0)
        ready_answer(c->run);
}

static void check_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    check_outcome(arg, "timeout");
}

static void check_work(void *arg)
{
    struct ready_check *c = arg;
    bk_http_server_t *srv = c->run->srv;
    const struct check *chk = &srv->checks[c->index];
    c->job_status = chk->fn(chk->ud);
}

static void check_done(int status, void *arg)
{
    struct ready_check *c = arg;
    struct ready_run *run = c->run;
    struct loop *loop = run->loop;
    check_outcome(c, status != BK_OK ? "canceled" : c->job_status == BK_OK ? "ok" : "failed");
    run_unref(run);
    bk__loop_release(loop);
}

static void ready_handler(bk_req_t *req, void *ud)
{
    bk_http_server_t *srv = ud;
    if (atomic_load(&srv->stopping)) {
        bk_res_json(req, 503, ready_doc(srv, "stopping", json_object()));
        return;
    }
    if (srv->nchecks == 0) {
        bk_res_json(req, 200, ready_doc(srv, "ok", json_object()));
        return;
    }
    struct ready_run *run = calloc(1, sizeof *run + srv->nchecks * sizeof run->c[0]);
    if (run == NULL) {
        bk_res_error(req, BK_ENOMEM, NULL);
        return;
    }
    run->srv = srv;
    run->req = req;
    run->loop = req->loop;
    run->pending = srv->nchecks;
    run->refs = 1;
    for (size_t i = 0; i < srv->nchecks; i++) {
        run->c[i] = (struct ready_check){.run = run, .index = i};
        run->c[i].timer = evtimer_new(req->loop->base, check_timeout, &run->c[i]);
    }
    bk__req_defer(req); /* the answer comes when the checks are in */
    for (size_t i = 0; i < srv->nchecks; i++) {
        struct ready_check *c = &run->c[i];
        if (c->timer == NULL) {
            check_outcome(c, "failed");
            continue;
        }
        struct timeval tv = bk__http_timeval(srv->checks[i].timeout_ns);
        evtimer_add(c->timer, &tv);
        run->refs++;
        bk__loop_hold(run->loop);
        if (bk_workers_submit(srv->workers, check_work, check_done, c, run->loop->base) != BK_OK) {
            run->refs--;
            bk__loop_release(run->loop);
            check_outcome(c, "busy");
        }
    }
}

int bk_http_mount_health(bk_http_server_t *srv)
{
    if (srv == NULL)
        return BK_EINVAL;
    int rc = bk__http_route_internal(srv, "/health/live", live_handler);
    if (rc == BK_OK)
        rc = bk__http_route_internal(srv, "/health/ready", ready_handler);
    if (rc == BK_OK)
        rc = bk__http_route_internal(srv, "/health/startup", startup_handler);
    return rc;
}

int bk_http_health_check(bk_http_server_t *srv, const char *name, bk_http_check_fn fn,
                         void *ud, int64_t timeout_ns)
{
    if (srv == NULL || name == NULL || *name == '\0' || fn == NULL || timeout_ns <= 0)
        return BK_EINVAL;
    if (srv->started)
        return BK_EBUSY;
    for (size_t i = 0; i < srv->nchecks; i++)
        if (strcmp(srv->checks[i].name, name) == 0)
            return BK_EEXIST;
    struct check *n = realloc(srv->checks, (srv->nchecks + 1) * sizeof *n);
    if (n == NULL)
        return BK_ENOMEM;
    srv->checks = n;
    char *copy = strdup(name);
    if (copy == NULL)
        return BK_ENOMEM;
    n[srv->nchecks++] = (struct check){copy, fn, ud, timeout_ns};
    return BK_OK;
}

int bk_http_health_report(bk_http_server_t *srv, const char *name, bk_http_report_fn fn, void *ud)
{
    if (srv == NULL || name == NULL || *name == '\0' || fn == NULL)
        return BK_EINVAL;
    if (srv->started)
        return BK_EBUSY;
    for (size_t i = 0; i < srv->nreports; i++)
        if (strcmp(srv->reports[i].name, name) == 0)
            return BK_EEXIST;
    struct report *n = realloc(srv->reports, (srv->nreports + 1) * sizeof *n);
    if (n == NULL)
        return BK_ENOMEM;
    srv->reports = n;
    char *copy = strdup(name);
    if (copy == NULL)
        return BK_ENOMEM;
    n[srv->nreports++] = (struct report){copy, fn, ud};
    return BK_OK;
}

void bk_http_server_set_started(bk_http_server_t *srv, bool started)
{
    if (srv != NULL)
        atomic_store(&srv->is_started, started);
}
