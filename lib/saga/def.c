/* Definitions: a name, a version and ordered steps, frozen once registered.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/abi_int.h"
#include "saga/saga_int.h"

BK__ASSERT_ABI_SIZE(bk_saga_step_opts_t, 96);

/* [A-Za-z0-9_.-]{1,64}: safe in a job kind, a key and a metric label. */
static bool plain_name(const char *s)
{
    if (!s)
        return false;
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
    return n >= 1 && n <= 64 && s[n] == '\0';
}

void bk_saga_step_opts_init(bk_saga_step_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->max_attempts = 3;
    opts->compensate_attempts = 10;
}

int bk_saga_def_new(const char *name, int version, bk_saga_def_t **out, bk_error_t *err)
{
    bk__error_clear(err);
    if (!out)
        return bk__error(err, BK_EINVAL, "saga definition: no out");
    *out = NULL;
    if (!plain_name(name))
        return bk__error(err, BK_EINVAL, "saga definition: the name must match [A-Za-z0-9_.-]{1,64}");
    if (version < 1)
        return bk__error(err, BK_EINVAL, "saga definition: the version must be at least 1");
    bk_saga_def_t *d = calloc(1, sizeof *d);
    if (!d || !(d->name = strdup(name))) {
        free(d);
        return bk__error(err, BK_ENOMEM, "out of memory");
    }
    d->version = version;
    snprintf(d->kind, sizeof d->kind, "saga:%s:%d", name, version);
    atomic_init(&d->registered, false);
    *out = d;
    return BK_OK;
}

int bk_saga_def_step(bk_saga_def_t *def, const char *name, bk_saga_action_fn action, bk_saga_compensate_fn compensate,
                     const bk_saga_step_opts_t *opts, void *ud)
{
    if (!def || !plain_name(name) || !action)
        return BK_EINVAL;
    if (atomic_load(&def->registered))
        return BK_EBUSY;
    bk_saga_step_opts_t o;
    if (opts)
        o = *opts;
    else
        bk_saga_step_opts_init(&o);
    if (o.max_attempts == 0 || o.compensate_attempts == 0 || o.timeout_ns < 0 || o.max_attempts > 1000000 ||
        o.compensate_attempts > 1000000)
        return BK_EINVAL;
    bk_retry_opts_t retry;
    bk_retry_opts_init(&retry);
    retry.base_ns = BK_NSEC_PER_SEC;
    retry.cap_ns = 60 * BK_NSEC_PER_SEC;
    if (o.retry) {
        retry.base_ns = o.retry->base_ns;
        retry.cap_ns = o.retry->cap_ns;
        retry.jitter = o.retry->jitter;
    }
    bk_retry_t probe;
    if (bk_retry_begin(&probe, &retry, true, 1) != BK_OK)
        return BK_EINVAL;
    o.retry = NULL; /* the copy in the step is what counts */
    for (size_t i = 0; i < def->n; i++)
        if (strcmp(def->steps[i].name, name) == 0)
            return BK_EEXIST;
    struct bk__saga_step *s = realloc(def->steps, (def->n + 1) * sizeof *s);
    if (!s)
        return BK_ENOMEM;
    def->steps = s;
    char *copy = strdup(name);
    if (!copy)
        return BK_ENOMEM;
    s[def->n++] = (struct bk__saga_step){copy, action, compensate, o, retry, ud};
    return BK_OK;
}

int bk_saga_def_on_finish(bk_saga_def_t *def, bk_saga_finish_fn fn, void *ud)
{
    if (!def)
        return BK_EINVAL;
    if (atomic_load(&def->registered))
        return BK_EBUSY;
    def->finish = fn;
    def->finish_ud = ud;
    return BK_OK;
}

void bk_saga_def_free(bk_saga_def_t *def)
{
    if (!def)
        return;
    for (size_t i = 0; i < def->n; i++)
        free(def->steps[i].name);
    free(def->steps);
    free(def->name);
    free(def);
}
