/* GCRA rate limiting (the generic cell rate algorithm: a token bucket kept as one
 * number per key, the theoretical arrival time) over a pluggable store, plus the
 * IETF RateLimit header values.
 *
 * With emission interval T = period / rate and burst B, a request at time now is
 * allowed when max(tat, now) + T - now <= T * B; it then moves tat forward by T.
 * A denied request changes nothing.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backend/resilience.h>

#include "core/abi_int.h"
#include "resilience_int.h"

#define STORE_TRIES 16 /* load/compute/store rounds before giving up on a hot key */

struct bk_ratelimit {
    bk_ratelimit_opts_t o;
    char *name;
    bk_ratelimit_store_t store;
    int64_t interval; /* T, ns */
    int64_t tolerance; /* T * B, ns */
    bool fast;         /* the in-process store: bk__memstore_update */
    bk_counter_t *denied; /* ratelimit_denied_total{policy}; NULL: no metrics */
};

void bk_ratelimit_opts_init(bk_ratelimit_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->period_ns = BK_NSEC_PER_SEC;
    o->burst = 1;
    o->name = "default";
}
BK__ASSERT_ABI_SIZE(bk_ratelimit_opts_t, 96);
BK__ASSERT_ABI_SIZE(bk_ratelimit_store_t, 96);
BK__ASSERT_ABI_SIZE(bk_ratelimit_result_t, 96);

static bool name_ok(const char *name)
{
    for (const char *c = name; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            return false; /* it is written into a header as a quoted string */
    return *name != '\0';
}

static int create(double rate, const bk_ratelimit_store_t *store, const bk_ratelimit_opts_t *opts,
                  bk_ratelimit_t **out)
{
    *out = NULL;
    bk_ratelimit_opts_t defaults;
    if (opts == NULL) {
        bk_ratelimit_opts_init(&defaults);
        opts = &defaults;
    }
    if (!(rate > 0) || opts->period_ns <= 0 || opts->burst == 0 || opts->name == NULL ||
        !name_ok(opts->name))
        return BK_EINVAL;
    double t = (double)opts->period_ns / rate;
    if (t < 1 || t * (double)opts->burst > (double)INT64_MAX / 4)
        return BK_ERANGE;
    bk_ratelimit_t *rl = calloc(1, sizeof *rl);
    if (rl == NULL || (rl->name = strdup(opts->name)) == NULL) {
        free(rl);
        return BK_ENOMEM;
    }
    rl->o = *opts;
    rl->o.name = rl->name;
    rl->store = *store;
    rl->fast = bk__memstore_is(store);
    rl->interval = (int64_t)t;
    rl->tolerance = rl->interval * (int64_t)opts->burst;
    bk_metric_t *family;
    int rc = opts->metrics == NULL
                 ? BK_OK
                 : bk_metrics_counter(opts->metrics, "ratelimit_denied_total",
                                      "Rate-limit checks denied (peeks included), by policy.",
                                      (const char *const[]){"policy", NULL}, &family);
    if (rc == BK_OK && opts->metrics != NULL)
        rc = bk_metric_counter(family, (const char *const[]){rl->name, NULL}, &rl->denied);
    if (rc != BK_OK) {
        free(rl->name);
        free(rl);
        return rc;
    }
    *out = rl;
    return BK_OK;
}

int bk_ratelimit_new(double rate, const bk_ratelimit_store_t *store,
                     const bk_ratelimit_opts_t *opts, bk_ratelimit_t **out)
{
    if (store == NULL)
        return BK_EINVAL;
    int rc = out == NULL || store->load == NULL || store->store == NULL
                 ? BK_EINVAL
                 : create(rate, store, opts, out);
    if (rc != BK_OK && store->destroy != NULL)
        store->destroy(store->ud); /* the store is ours even when we fail */
    return rc;
}

void bk_ratelimit_free(bk_ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    if (rl->store.destroy != NULL)
        rl->store.destroy(rl->store.ud);
    free(rl->name);
    free(rl);
}

/* After a few conflicts in a row, a short random pause: two clients of a shared
 * store whose load-compute-store rounds take equally long can otherwise meet in
 * lockstep, the same one losing every round. */
static void conflict_pause(const bk_ratelimit_t *rl, int tries)
{
    uint16_t r = 0;
    if (tries < 2 || bk_random_bytes(&r, sizeof r) != BK_OK)
        return;
    /* up to 50 us per try, on the limiter's clock (a fake one is advanced) */
    bk_clock_sleep_ns(rl->o.clock, (int64_t)(r % 50000) * tries);
}

/* One GCRA decision at now for a key whose state is tat (now when absent): the
 * result, and the new state when allowed. */
static int64_t decide(const bk_ratelimit_t *rl, int64_t tat, int64_t now, bk_ratelimit_result_t *res)
{
    if (tat < now)
        tat = now;
    int64_t new_tat = tat + rl->interval;
    int64_t allow_at = new_tat - rl->tolerance;
    /* One assignment of the whole result: it zeroes the reserved tail too. */
    if (now < allow_at)
        *res = (bk_ratelimit_result_t){.limit = rl->o.burst, .retry_after_ns = allow_at - now, .reset_ns = tat - now};
    else
        *res = (bk_ratelimit_result_t){.allowed = true,
                                       .limit = rl->o.burst,
                                       .remaining = (unsigned)((rl->tolerance - (new_tat - now)) / rl->interval),
                                       .reset_ns = new_tat - now};
    return new_tat;
}

struct step {
    const bk_ratelimit_t *rl;
    bk_ratelimit_result_t *res;
    bool peek; /* decide only */
};

/* The in-process store's round, under its shard lock (resilience_int.h). */
static bool step(bool found, int64_t *tat, void *arg)
{
    const struct step *st = arg;
    /* The clock under the lock: a time read before it could be older than the
     * state another thread stored, and refuse a request wrongly. */
    int64_t now = bk_clock_wall_ns(st->rl->o.clock);
    int64_t new_tat = decide(st->rl, found ? *tat : now, now, st->res);
    if (!st->res->allowed || st->peek)
        return false;
    *tat = new_tat;
    return true;
}

static int check(bk_ratelimit_t *rl, const char *key, unsigned flags, bk_ratelimit_result_t *res);

int bk_ratelimit_check(bk_ratelimit_t *rl, const char *key, unsigned flags, bk_ratelimit_result_t *res)
{
    int rc = check(rl, key, flags, res);
    if (rc == BK_OK && !res->allowed && rl->denied != NULL)
        bk_counter_inc(rl->denied);
    return rc;
}

static int check(bk_ratelimit_t *rl, const char *key, unsigned flags, bk_ratelimit_result_t *res)
{
    if (rl == NULL || key == NULL || res == NULL ||
        (flags & ~(unsigned)(BK_RATELIMIT_NO_WAIT | BK_RATELIMIT_PEEK)) != 0) {
        if (res != NULL)
            memset(res, 0, sizeof *res); /* not allowed */
        return BK_EINVAL;
    }
    /* The in-process store: one round under its lock, which nothing can conflict
     * with (so NO_WAIT changes nothing). */
    if (rl->fast) {
        int rc = bk__memstore_update(rl->store.ud, key, step, &(struct step){rl, res, flags & BK_RATELIMIT_PEEK});
        if (rc != BK_OK)
            *res = (bk_ratelimit_result_t){.limit = rl->o.burst};
        return rc;
    }
    *res = (bk_ratelimit_result_t){.limit = rl->o.burst}; /* not allowed, whatever happens below */
    /* NO_WAIT (an event-loop thread): one round, and a conflict is a refusal. */
    int tries = (flags & BK_RATELIMIT_NO_WAIT) ? 1 : STORE_TRIES;
    for (int i = 0; i < tries; i++) {
        int64_t tat;
        uint64_t version;
        int rc = rl->store.load(key, &tat, &version, rl->store.ud);
        /* The clock after the load: a time read before it could be older than a
         * state another thread stored meanwhile, and refuse a request wrongly. */
        int64_t now = bk_clock_wall_ns(rl->o.clock);
        if (rc == BK_ENOTFOUND) {
            tat = now;
            version = 0;
        } else if (rc != BK_OK) {
            return rc;
        }
        bk_ratelimit_result_t r;
        int64_t new_tat = decide(rl, tat, now, &r);
        if (!r.allowed || (flags & BK_RATELIMIT_PEEK)) {
            *res = r;
            return BK_OK;
        }
        rc = rl->store.store(key, new_tat, version, new_tat - now, rl->store.ud);
        if (rc == BK_ECONFLICT) { /* another request for this key got there first */
            if (!(flags & BK_RATELIMIT_NO_WAIT))
                conflict_pause(rl, i);
            continue;
        }
        if (rc != BK_OK)
            return rc;
        *res = r;
        return BK_OK;
    }
    return BK_EBUSY;
}

static int64_t ceil_sec(int64_t ns)
{
    return ns <= 0 ? 0 : (ns + BK_NSEC_PER_SEC - 1) / BK_NSEC_PER_SEC;
}

int bk_ratelimit_headers(const bk_ratelimit_t *rl, const bk_ratelimit_result_t *res, char *policy,
                         char *limit, char *retry_after, size_t size)
{
    if (rl == NULL || res == NULL)
        return BK_EINVAL;
    int n;
    if (policy != NULL) {
        n = snprintf(policy, size, "\"%s\";q=%u;w=%lld", rl->name, rl->o.burst,
                     (long long)ceil_sec(rl->tolerance));
        if (n < 0 || (size_t)n >= size)
            return BK_ERANGE;
    }
    if (limit != NULL) {
        n = snprintf(limit, size, "\"%s\";r=%u;t=%lld", rl->name, res->remaining,
                     (long long)ceil_sec(res->reset_ns));
        if (n < 0 || (size_t)n >= size)
            return BK_ERANGE;
    }
    if (retry_after != NULL) {
        int64_t s = ceil_sec(res->retry_after_ns);
        n = res->allowed ? snprintf(retry_after, size, "%s", "")
                         : snprintf(retry_after, size, "%lld", (long long)(s > 0 ? s : 1));
        if (n < 0 || (size_t)n >= size)
            return BK_ERANGE;
    }
    return BK_OK;
}
