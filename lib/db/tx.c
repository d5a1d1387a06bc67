/* bk_db_tx: a transaction that is run again, whole, when PostgreSQL says it lost
 * a serialization race or a deadlock (40001, 40P01): the body is a function, so
 * it can be replayed from the start on a fresh snapshot.
 * SPDX-License-Identifier: MIT */
#include <time.h>

#include "db/db_int.h"

static const char *const BEGINS[] = {
    "BEGIN ISOLATION LEVEL READ COMMITTED",
    "BEGIN ISOLATION LEVEL REPEATABLE READ",
    "BEGIN ISOLATION LEVEL SERIALIZABLE",
};

/* One attempt: BEGIN, fn, COMMIT (ROLLBACK on failure). */
static int attempt(bk_db_t *db, bk_db_isolation_t isolation, bk_db_tx_fn fn, void *ud)
{
    bk_db_conn_t *c;
    int rc = bk_db_acquire(db, &c);
    if (rc)
        return rc;
    rc = bk__db_exec(c, BEGINS[isolation]);
    if (rc == BK_OK) {
        rc = fn(c, ud);
        /* A body that ignored a failed query would have its COMMIT turned into a
         * silent ROLLBACK by the server: report the failure instead. */
        if (rc == BK_OK && PQtransactionStatus(c->pg) == PQTRANS_INERROR)
            rc = BK_EIO;
        else if (rc == BK_OK)
            rc = bk__db_exec(c, "COMMIT");
        else if (!c->broken)
            bk__db_exec(c, "ROLLBACK");
    }
    bk_db_release(c); /* rolls back whatever is still open */
    return rc;
}

/* Only a lost race is worth running again; anything else is the body's verdict. */
static bool lost_race(int status, void *ud)
{
    (void)ud;
    return status == BK_ERETRY;
}

int bk_db_tx(bk_db_t *db, bk_db_isolation_t isolation, const bk_retry_opts_t *retry, bk_db_tx_fn fn, void *ud)
{
    if (!db || !fn || (unsigned)isolation > BK_DB_SERIALIZABLE)
        return BK_EINVAL;
    bk_retry_opts_t o;
    if (retry) {
        o = *retry;
    } else {
        bk_retry_opts_init(&o);
        o.max_attempts = 5;
        o.base_ns = 10 * BK_NSEC_PER_MSEC;
        o.cap_ns = 500 * BK_NSEC_PER_MSEC;
    }
    o.retryable = lost_race;
    o.ud = NULL;
    bk_retry_t r;
    int rc = bk_retry_begin(&r, &o, true, 0); /* a transaction that lost a race left nothing behind */
    if (rc)
        return rc;
    for (;;) {
        int status = attempt(db, isolation, fn, ud);
        int64_t delay = 0;
        if (!bk_retry_next(&r, &status, 0, &delay))
            return status;
        struct timespec ts = {(time_t)(delay / BK_NSEC_PER_SEC), (long)(delay % BK_NSEC_PER_SEC)};
        nanosleep(&ts, NULL);
    }
}
