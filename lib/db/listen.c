/* LISTEN/NOTIFY: a connection of its own that LISTENs on some channels and waits
 * for their notifications in poll(2), beside an eventfd that another thread
 * writes to end the wait. A lost connection is reopened (with the reconnect
 * backoff, sleeping on the db's clock) and every channel LISTENed again; the
 * caller is told with a reset event, because what was sent while no session
 * listened is gone for good and only a look at the data itself can find it.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/abi_int.h"
#include "db/db_int.h"

/* PostgreSQL's NAMEDATALEN - 1: a longer name would be cut by the server, and
 * the listener would LISTEN on another channel than the one it was given. */
#define MAX_CHANNEL 63

struct bk_db_listener {
    bk_db_t *db;
    bk_db_conn_t *c;        /* NULL after a loss not repaired yet */
    char *listen_sql;       /* LISTEN "a"; LISTEN "b" ...: run on every new connection */
    bk_retry_opts_t retry;  /* the reconnect backoff, its clock set */
    int wakefd;             /* an eventfd: bk_db_listener_wake writes, a wait drains */
    bool lost;              /* c is dead (or NULL): reopen it once its queue is handed out */
    PGnotify *pending;      /* taken from libpq but not handed out (ENOMEM) */
    bool reset_pending;     /* reopened, the reset not handed out yet */
};

BK__ASSERT_ABI_SIZE(bk_db_listener_opts_t, 72);

void bk_db_listener_opts_init(bk_db_listener_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
}

static void default_reconnect(bk_retry_opts_t *o)
{
    bk_retry_opts_init(o);
    o->max_attempts = 5;
    o->base_ns = 100 * BK_NSEC_PER_MSEC;
    o->cap_ns = 5 * BK_NSEC_PER_SEC;
}

/* A refused or lost connection may come back; a LISTEN the server refused will not. */
static bool reconnectable(int status, void *ud)
{
    (void)ud;
    return status == BK_EUNAVAIL || status == BK_ETIMEDOUT;
}

/* One LISTEN statement for every channel, each name quoted by libpq for the
 * server's encoding: no channel name is ever SQL. */
static int build_listen_sql(bk_db_listener_t *l, PGconn *pg, const char *const *channels, size_t n,
                            bk_error_t *err)
{
    size_t cap = 1, len = 0;
    char **quoted = calloc(n, sizeof *quoted);
    if (!quoted)
        return bk__error(err, BK_ENOMEM, NULL);
    int rc = BK_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        quoted[i] = PQescapeIdentifier(pg, channels[i], strlen(channels[i]));
        if (!quoted[i])
            rc = bk__db_libpq_error(err, BK_EINVAL, PQerrorMessage(pg));
        else
            cap += strlen("LISTEN ; ") + strlen(quoted[i]);
    }
    if (!rc && !(l->listen_sql = malloc(cap)))
        rc = bk__error(err, BK_ENOMEM, NULL);
    for (size_t i = 0; i < n && !rc; i++) {
        size_t q = strlen(quoted[i]);
        memcpy(l->listen_sql + len, "LISTEN ", 7);
        memcpy(l->listen_sql + len + 7, quoted[i], q);
        memcpy(l->listen_sql + len + 7 + q, "; ", 2);
        len += 9 + q;
    }
    if (!rc)
        l->listen_sql[len] = '\0';
    for (size_t i = 0; i < n; i++)
        PQfreemem(quoted[i]);
    free(quoted);
    return rc;
}

/* LISTENs on l's channels on c: BK_OK, or the server's refusal in err. */
static int listen_all(bk_db_listener_t *l, bk_db_conn_t *c, bk_error_t *err)
{
    int rc = bk__db_exec(c, l->listen_sql);
    return rc ? bk__db_report(c, rc, err) : BK_OK;
}

/* Whether bk_db_listener_wake was called, without consuming it. */
static bool wake_pending(const bk_db_listener_t *l)
{
    struct pollfd p = {l->wakefd, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

static void drain_wake(bk_db_listener_t *l)
{
    uint64_t v;
    while (read(l->wakefd, &v, sizeof v) < 0 && errno == EINTR)
        ;
}

int bk_db_listener_new(bk_db_t *db, const char *const *channels, size_t nchannels,
                       const bk_db_listener_opts_t *opts, bk_db_listener_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (out)
        *out = NULL;
    if (!db || !channels || nchannels == 0 || !out)
        return bk__error(err, BK_EINVAL, "bk_db_listener_new: no pool, no channels or no out pointer");
    if (db->o.transaction_pooling)
        return bk__error(err, BK_EINVAL, "bk_db_listener_new: LISTEN does not work through a pooler in "
                         "transaction mode (the pool's transaction_pooling): poll instead");
    for (size_t i = 0; i < nchannels; i++) {
        size_t len = channels[i] ? strlen(channels[i]) : 0;
        if (len == 0 || len > MAX_CHANNEL)
            return bk__error(err, BK_EINVAL, "bk_db_listener_new: channel %zu is empty or longer than %d bytes", i,
                             MAX_CHANNEL);
    }
    bk_db_listener_t *l = calloc(1, sizeof *l);
    if (!l)
        return bk__error(err, BK_ENOMEM, NULL);
    l->db = db;
    l->wakefd = -1;
    if (opts && opts->reconnect)
        l->retry = *opts->reconnect;
    else
        default_reconnect(&l->retry);
    if (!l->retry.clock)
        l->retry.clock = db->o.clock;
    l->retry.retryable = reconnectable;
    l->retry.ud = NULL;
    bk_retry_t probe; /* refuse options bk_retry_begin would refuse at the first loss */
    int rc = bk_retry_begin(&probe, &l->retry, true, 1);
    if (rc) {
        bk__error(err, rc, "bk_db_listener_new: the reconnect options: %s", bk_strerror(rc));
    } else if ((l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        rc = bk__error(err, BK_ESYS, "bk_db_listener_new: eventfd: %s", strerror(errno));
    } else if ((rc = bk__db_conn_open(db, &l->c, err)) == BK_OK &&
               (rc = build_listen_sql(l, l->c->pg, channels, nchannels, err)) == BK_OK) {
        rc = listen_all(l, l->c, err);
    }
    if (rc) {
        bk_db_listener_free(l);
        return rc;
    }
    *out = l;
    return BK_OK;
}

void bk_db_listener_free(bk_db_listener_t *l)
{
    if (!l)
        return;
    if (l->c)
        bk__db_conn_close(l->c);
    if (l->wakefd >= 0)
        close(l->wakefd);
    PQfreemem(l->pending);
    free(l->listen_sql);
    free(l);
}

void bk_db_listener_wake(bk_db_listener_t *l)
{
    if (!l)
        return;
    uint64_t one = 1;
    /* EAGAIN: the counter is full, a wake is pending anyway. */
    while (write(l->wakefd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

int32_t bk_db_listener_backend_pid(const bk_db_listener_t *l)
{
    return l && l->c ? PQbackendPID(l->c->pg) : 0;
}

void bk_db_notification_free(bk_db_notification_t *n)
{
    free(n);
}

/* One allocation holding the struct and its strings. */
static bk_db_notification_t *note_new(const char *channel, const char *payload, int32_t pid, bool reset)
{
    size_t a = strlen(channel) + 1, b = strlen(payload) + 1;
    bk_db_notification_t *n = malloc(sizeof *n + a + b);
    if (!n)
        return NULL;
    char *p = (char *)(n + 1);
    memcpy(p, channel, a);
    memcpy(p + a, payload, b);
    *n = (bk_db_notification_t){.channel = p, .payload = p + a, .sender_pid = pid, .reset = reset};
    return n;
}

/* Hands out what is waiting: a reset, then notifications in their order.
 * BK_OK with *out set, BK_ENOMEM (kept for the next call), or BK_ETIMEDOUT when
 * nothing is waiting. */
static int take(bk_db_listener_t *l, bk_db_notification_t **out, bk_error_t *err)
{
    if (l->reset_pending) {
        if (!(*out = note_new("", "", 0, true)))
            return bk__error(err, BK_ENOMEM, NULL);
        l->reset_pending = false;
        return BK_OK;
    }
    if (!l->pending && l->c)
        l->pending = PQnotifies(l->c->pg);
    if (!l->pending)
        return BK_ETIMEDOUT;
    const PGnotify *p = l->pending;
    if (!(*out = note_new(p->relname, p->extra ? p->extra : "", p->be_pid, false)))
        return bk__error(err, BK_ENOMEM, NULL);
    PQfreemem(l->pending);
    l->pending = NULL;
    return BK_OK;
}

/* The connection is gone: reopen it on the backoff schedule and LISTEN again.
 * BK_OK (a reset is pending), BK_ECANCELED when woken between attempts (the wake
 * stays pending for the wait to drain), or the last attempt's failure. */
static int reconnect(bk_db_listener_t *l, bk_error_t *err)
{
    if (l->c) {
        bk__db_conn_close(l->c);
        l->c = NULL;
    }
    bk_retry_t r;
    int rc = bk_retry_begin(&r, &l->retry, true, 0);
    if (rc)
        return bk__error(err, rc, "listener: the reconnect options: %s", bk_strerror(rc));
    for (;;) {
        bk_db_conn_t *c = NULL;
        bk__error_clear(err);
        rc = bk__db_conn_open(l->db, &c, err);
        if (!rc && (rc = listen_all(l, c, err)) != BK_OK) {
            bk__db_conn_close(c);
            c = NULL;
        }
        if (!rc) {
            l->c = c;
            l->lost = false;
            l->reset_pending = true;
            return BK_OK;
        }
        int64_t delay = 0;
        if (!bk_retry_next(&r, &rc, 0, &delay)) {
            if (err && err->code != rc)
                err->code = rc;
            return rc;
        }
        if (wake_pending(l))
            return BK_ECANCELED;
        bk_clock_sleep_ns(l->retry.clock, delay);
        if (wake_pending(l))
            return BK_ECANCELED;
    }
}

/* Reads what the server sent. false: the connection is lost (EOF, an error, or a
 * FATAL notice such as pg_terminate_backend's). */
static bool consume(bk_db_conn_t *c)
{
    if (!PQconsumeInput(c->pg))
        return false;
    (void)PQisBusy(c->pg); /* parses what came: a FATAL notice marks c broken */
    return !c->broken && PQstatus(c->pg) == CONNECTION_OK;
}

/* ns as poll(2)'s milliseconds, rounded up (a wait never ends before its time). */
static int poll_ms(int64_t ns)
{
    if (ns <= 0)
        return 0;
    int64_t ms = ns / BK_NSEC_PER_MSEC + (ns % BK_NSEC_PER_MSEC != 0);
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

int bk_db_listener_wait(bk_db_listener_t *l, int64_t timeout_ns, bk_db_notification_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (out)
        *out = NULL;
    if (!l || !out || timeout_ns < 0)
        return bk__error(err, BK_EINVAL, "bk_db_listener_wait: no listener, no out pointer or a negative timeout");
    int64_t now = bk_clock_mono_ns(NULL);
    int64_t deadline = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
    for (;;) {
        /* What came before a loss is handed out before the loss is repaired. */
        int rc = take(l, out, err);
        if (rc != BK_ETIMEDOUT)
            return rc;
        if (l->lost) {
            rc = reconnect(l, err);
            if (rc == BK_ECANCELED) {
                drain_wake(l);
                return bk__error(err, rc, "listener: woken while reconnecting");
            }
            if (rc)
                return rc;
            continue; /* the reset */
        }
        int sock = PQsocket(l->c->pg);
        if (sock < 0) { /* libpq closed it: poll(2) would ignore it and never see the loss */
            l->lost = true;
            continue;
        }
        struct pollfd p[2] = {{l->wakefd, POLLIN, 0}, {sock, POLLIN, 0}};
        int n = poll(p, 2, poll_ms(deadline - bk_clock_mono_ns(NULL)));
        if (n < 0 && errno != EINTR)
            return bk__error(err, BK_ESYS, "listener: poll: %s", strerror(errno));
        if (n > 0 && p[0].revents) {
            drain_wake(l);
            return bk__error(err, BK_ECANCELED, "listener: woken by bk_db_listener_wake");
        }
        if (n > 0 && p[1].revents && !consume(l->c)) {
            l->lost = true;
            continue;
        }
        if (n == 0 && bk_clock_mono_ns(NULL) >= deadline)
            return bk__error(err, BK_ETIMEDOUT, "listener: no notification within the timeout");
    }
}
