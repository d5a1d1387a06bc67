/* bk_db_tx: a transaction that is run again, whole, when PostgreSQL says it lost
 * a serialization race or a deadlock (40001, 40P01): the body is a function, so
 * it can be replayed from the start on a fresh snapshot.
 * SPDX-License-Identifier: MIT */

#include "db/db_int.h"

static const char *const BEGINS[] = {
    "BEGIN ISOLATION LEVEL READ COMMITTED",
    "BEGIN ISOLATION LEVEL REPEATABLE READ",
    "BEGIN ISOLATION LEVEL SERIALIZABLE",
};

/*
 * One attempt: BEGIN, fn, COMMIT (ROLLBACK on failure). On failure err gets the
 * detail of what ended it, taken from c->last before the ROLLBACK replaces it: a
 * failed BEGIN or COMMIT, or the last query fn ran when that query failed (fn's
 * queries reported to errs of fn's own; the connection kept a copy).
 */
static int attempt(bk_db_t *db, bk_db_isolation_t isolation, bk_db_tx_fn fn, void *ud, bk_error_t *err)
{
    bk_db_conn_t *c;
    int rc = bk_db_acquire(db, &c, err);
    if (rc)
        return rc;
    if ((rc = bk__db_begin(c, BEGINS[isolation])) != BK_OK) {
        bk__db_report(c, rc, err);
    } else if ((rc = fn(c, ud)) != BK_OK) {
        if (c->last.code)
            bk__db_report(c, rc, err); /* the query that failed, with fn's code */
        else
            bk__error(err, rc, "the transaction's function returned %s", bk_err_name(rc));
        if (!c->broken)
            bk__db_exec(c, "ROLLBACK");
    } else if (PQtransactionStatus(c->pg) == PQTRANS_INERROR) {
        /* A body that ignored a failed query would have its COMMIT turned into a
         * silent ROLLBACK by the server: report the failure instead. */
        rc = BK_EIO;
        if (c->last.code)
            bk__db_report(c, rc, err);
        else
            bk__error(err, rc, "the transaction's function returned BK_OK after a failed query");
    } else if ((rc = bk__db_exec(c, "COMMIT")) != BK_OK) {
        /* A deferred constraint, or a serialization failure found at commit. */
        bk__db_report(c, rc, err);
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

int bk_db_tx(bk_db_t *db, bk_db_isolation_t isolation, const bk_retry_opts_t *retry, bk_db_tx_fn fn, void *ud,
             bk_error_t *err)
{
    bk__error_clear(err);
    if (!db || !fn || (unsigned)isolation > BK_DB_SERIALIZABLE)
        return bk__error(err, BK_EINVAL, "bk_db_tx: no pool, no function, or an unknown isolation level");
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
        return bk__error(err, rc, "bk_db_tx: the retry options: %s", bk_strerror(rc));
    for (;;) {
        int status = attempt(db, isolation, fn, ud, err);
        int64_t delay = 0;
        if (!bk_retry_next(&r, &status, 0, &delay)) {
            if (status == BK_OK)
                bk__error_clear(err); /* an attempt before this one failed */
            else if (err && err->code != status)
                err->code = status; /* bk_retry_next may have replaced the code (its budget) */
            return status;
        }
        /* On the retry's clock, which measures its budget (else the pool's): a signal
         * no longer cuts the backoff short, and a fake clock is advanced instead. */
        bk_clock_sleep_ns(o.clock ? o.clock : db->o.clock, delay);
    }
}
