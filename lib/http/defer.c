/* A request that leaves its loop (a blocking route on the worker pool, a
 * readiness answer waiting for its checks) and comes back: the only code that
 * changes req->deferred and loop->outstanding, and the one place that checks
 * whether the client went away meanwhile.
 * SPDX-License-Identifier: MIT */
#include "http/http_int.h"

void bk__loop_maybe_exit(struct loop *loop)
{
    if (loop->closed && loop->nconns == 0 && loop->outstanding == 0)
        event_base_loopbreak(loop->base);
}

void bk__loop_hold(struct loop *loop)
{
    loop->outstanding++; /* a stopping loop waits for it (bk__loop_maybe_exit) */
}

void bk__loop_release(struct loop *loop)
{
    loop->outstanding--;
    bk__loop_maybe_exit(loop);
}

/* deferred stays set until the request is reset: dispatch, back from a handler
 * that deferred, never completes the request a second time, even when its
 * answer came at once (every readiness check refused by a full pool). */
void bk__req_defer(struct bk_req *req)
{
    req->deferred = true;
    bk__loop_hold(req->loop);
}

bool bk__req_resume(struct bk_req *req)
{
    req->loop->outstanding--;
    /* A closed connection's free ends a stopping loop (bk__loop_maybe_exit). */
    return !req->ops->gone(req);
}

void bk__req_defer_reset(struct bk_req *req)
{
    req->deferred = false;
}
