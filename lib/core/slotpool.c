/* The bounded slot pool and its counting core (slotpool_int.h): one bound, one
 * deadline wait on the injectable clock, for the db pool, the upstream handles,
 * the bulkhead and memcached.
 * SPDX-License-Identifier: MIT */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/error_int.h"
#include "core/slotpool_int.h"

/* ------------------------------------------------------------ counting core */
int bk__slotcount_init(bk__slotcount_t *c, unsigned max, const bk_clock_t *clock)
{
    if (max == 0)
        return BK_EINVAL;
    memset(c, 0, sizeof *c);
    if (bk__clock_cond_init(&c->cv) != 0)
        return BK_ESYS;
    pthread_mutex_init(&c->mu, NULL);
    c->clock = clock;
    c->max = max;
    c->watch.mu = &c->mu;
    c->watch.cv = &c->cv;
    bk__clock_watch(clock, &c->watch);
    return BK_OK;
}

void bk__slotcount_destroy(bk__slotcount_t *c)
{
    bk__clock_unwatch(c->clock, &c->watch);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static int64_t deadline_of(const bk_clock_t *clock, int64_t timeout_ns)
{
    if (timeout_ns == BK__CLOCK_NEVER)
        return BK__CLOCK_NEVER;
    int64_t now = bk_clock_mono_ns(clock);
    return timeout_ns > INT64_MAX - now ? BK__CLOCK_NEVER : now + timeout_ns;
}

/* With c->mu held: takes a unit, waiting for one as enter says. */
static int enter_locked(bk__slotcount_t *c, int64_t timeout_ns)
{
    if (c->closed)
        return BK_ECLOSED;
    if (c->in_use < c->max) {
        c->in_use++;
        return BK_OK;
    }
    if (timeout_ns <= 0) {
        c->timeouts++;
        return BK_ETIMEDOUT;
    }
    /* The clock is read only now: a pool with room costs no clock read. */
    int64_t deadline = deadline_of(c->clock, timeout_ns);
    c->waits++;
    c->waiting++;
    int rc = BK_OK;
    while (!c->closed && c->in_use == c->max)
        if (bk__clock_wait(c->clock, &c->cv, &c->mu, deadline) == BK_ETIMEDOUT)
            break;
    c->waiting--;
    if (c->closed) {
        rc = BK_ECLOSED;
    } else if (c->in_use < c->max) {
        c->in_use++;
    } else {
        c->timeouts++;
        rc = BK_ETIMEDOUT;
    }
    return rc;
}

static void leave_locked(bk__slotcount_t *c)
{
    if (c->in_use > 0)
        c->in_use--;
    if (c->waiting > 0)
        pthread_cond_signal(&c->cv);
}

int bk__slotcount_enter(bk__slotcount_t *c, int64_t timeout_ns)
{
    pthread_mutex_lock(&c->mu);
    int rc = enter_locked(c, timeout_ns);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void bk__slotcount_leave(bk__slotcount_t *c)
{
    pthread_mutex_lock(&c->mu);
    leave_locked(c);
    pthread_mutex_unlock(&c->mu);
}

void bk__slotcount_shutdown(bk__slotcount_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->closed = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

unsigned bk__slotcount_in_use(bk__slotcount_t *c)
{
    pthread_mutex_lock(&c->mu);
    unsigned n = c->in_use;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ------------------------------------------------------------ slot pool */
#define NONE UINT32_MAX
/* At most this many idle resources closed per acquire: the work an acquire does
 * stays bounded, and the rest go on the next ones. */
#define REAP_MAX 8
/* Pools a thread remembers its last slot of (a thread may use several pools). */
#define HINTS 4

struct slot {
    void *res;
    uint64_t owner;        /* the tag of the thread that released it last, 0 none */
    int64_t idle_since_ns; /* on the pool's clock, when free */
    uint32_t prev, next;   /* the free list (res != NULL) or the empty stack (next) */
    bool free;             /* on the free list */
};

struct bk__slotpool {
    bk__slotcount_t count; /* the bound and the wait; its mu guards all below */
    bk__slotpool_opts_t o;
    bk__slotpool_ops_t ops;
    uint64_t id;           /* never reused, unlike the address: names the pool in hints */
    struct slot *slots;
    uint32_t free_head, free_tail; /* most recently released first */
    uint32_t empty;                /* slots with no resource */
    unsigned open;
};

static _Atomic uint64_t next_id = 1;
static _Thread_local uint64_t thread_tag;
static _Thread_local struct {
    uint64_t pool;
    uint32_t slot;
} hints[HINTS];
static _Thread_local unsigned next_hint;

static uint64_t my_tag(void)
{
    if (thread_tag == 0)
        thread_tag = atomic_fetch_add(&next_id, 1);
    return thread_tag;
}

static void free_unlink(bk__slotpool_t *p, uint32_t i)
{
    struct slot *s = &p->slots[i];
    if (s->prev != NONE)
        p->slots[s->prev].next = s->next;
    else
        p->free_head = s->next;
    if (s->next != NONE)
        p->slots[s->next].prev = s->prev;
    else
        p->free_tail = s->prev;
    s->free = false;
}

static void free_push(bk__slotpool_t *p, uint32_t i)
{
    struct slot *s = &p->slots[i];
    s->prev = NONE;
    s->next = p->free_head;
    if (p->free_head != NONE)
        p->slots[p->free_head].prev = i;
    else
        p->free_tail = i;
    p->free_head = i;
    s->free = true;
}

static void empty_push(bk__slotpool_t *p, uint32_t i)
{
    p->slots[i].res = NULL;
    p->slots[i].next = p->empty;
    p->empty = i;
}

static void close_res(bk__slotpool_t *p, void *res)
{
    if (res != NULL && p->ops.close != NULL)
        p->ops.close(res, p->ops.ud);
}

int bk__slotpool_new(const bk__slotpool_opts_t *o, const bk__slotpool_ops_t *ops, bk__slotpool_t **out,
                     bk_error_t *err)
{
    *out = NULL;
    if (o == NULL || o->size == 0 || o->size >= NONE || o->min_open > o->size || o->idle_timeout_ns < 0)
        return bk__error(err, BK_EINVAL, "slot pool: bad size, min_open or idle timeout");
    bk__slotpool_t *p = calloc(1, sizeof *p);
    if (p == NULL || (p->slots = calloc(o->size, sizeof *p->slots)) == NULL) {
        free(p);
        return bk__error(err, BK_ENOMEM, NULL);
    }
    int rc = bk__slotcount_init(&p->count, o->size, o->clock);
    if (rc != BK_OK) {
        free(p->slots);
        free(p);
        return bk__error(err, rc, "slot pool: cannot make its condition variable");
    }
    p->o = *o;
    if (ops != NULL)
        p->ops = *ops;
    p->id = atomic_fetch_add(&next_id, 1);
    p->free_head = p->free_tail = p->empty = NONE;
    for (uint32_t i = o->size; i-- > 0;)
        empty_push(p, i);
    for (unsigned i = 0; i < o->min_open && p->ops.create != NULL; i++) {
        uint32_t s = p->empty;
        p->empty = p->slots[s].next;
        if ((rc = p->ops.create(&p->slots[s].res, p->ops.ud, err)) != BK_OK) {
            empty_push(p, s);
            bk__slotpool_free(p);
            return rc;
        }
        p->open++;
        p->slots[s].idle_since_ns = bk_clock_mono_ns(o->clock);
        free_push(p, s);
    }
    *out = p;
    return BK_OK;
}

void bk__slotpool_free(bk__slotpool_t *p)
{
    if (p == NULL)
        return;
    for (uint32_t i = 0; i < p->o.size; i++)
        close_res(p, p->slots[i].res);
    bk__slotcount_destroy(&p->count);
    free(p->slots);
    free(p);
}

void bk__slotpool_shutdown(bk__slotpool_t *p)
{
    bk__slotcount_shutdown(&p->count);
}

/* With the lock held: up to REAP_MAX free resources idle past idle_timeout_ns,
 * oldest first (the tail of the free list, which is in release order), taken
 * out into stale to close outside the lock. */
static unsigned take_stale(bk__slotpool_t *p, void **stale)
{
    unsigned n = 0;
    if (p->o.idle_timeout_ns <= 0 || p->free_tail == NONE || p->open <= p->o.min_open)
        return 0;
    int64_t now = bk_clock_mono_ns(p->o.clock);
    while (n < REAP_MAX && p->free_tail != NONE && p->open > p->o.min_open &&
           now - p->slots[p->free_tail].idle_since_ns >= p->o.idle_timeout_ns) {
        uint32_t i = p->free_tail;
        free_unlink(p, i);
        stale[n++] = p->slots[i].res;
        empty_push(p, i);
        p->open--;
    }
    return n;
}

/* With the lock held and a unit of the count taken: the slot to hand out. */
static uint32_t take_slot(bk__slotpool_t *p)
{
    if (p->o.affinity) {
        uint64_t tag = my_tag();
        for (unsigned h = 0; h < HINTS; h++) {
            if (hints[h].pool != p->id)
                continue;
            uint32_t i = hints[h].slot;
            /* The owner tag says no other thread took and released it meanwhile. */
            if (p->slots[i].free && p->slots[i].owner == tag) {
                free_unlink(p, i);
                return i;
            }
            break;
        }
    }
    uint32_t i = p->free_head;
    if (i != NONE) {
        free_unlink(p, i);
        return i;
    }
    i = p->empty; /* the count guarantees one: free + empty = size - in_use */
    p->empty = p->slots[i].next;
    p->open++; /* counted from now: its resource is being created */
    return i;
}

int bk__slotpool_acquire(bk__slotpool_t *p, int64_t timeout_ns, unsigned *slot, void **res, bk_error_t *err)
{
    void *stale[REAP_MAX];
    pthread_mutex_lock(&p->count.mu);
    int rc = enter_locked(&p->count, timeout_ns);
    if (rc != BK_OK) {
        pthread_mutex_unlock(&p->count.mu);
        return rc;
    }
    unsigned nstale = take_stale(p, stale);
    uint32_t i = take_slot(p);
    void *r = p->slots[i].res;
    pthread_mutex_unlock(&p->count.mu);
    for (unsigned k = 0; k < nstale; k++)
        close_res(p, stale[k]);
    if (r != NULL && p->ops.validate != NULL && !p->ops.validate(r, p->ops.ud)) {
        close_res(p, r); /* broken: replaced in the same slot */
        r = NULL;
    }
    if (r == NULL && p->ops.create != NULL && (rc = p->ops.create(&r, p->ops.ud, err)) != BK_OK) {
        pthread_mutex_lock(&p->count.mu);
        empty_push(p, i);
        p->open--;
        leave_locked(&p->count); /* a waiter may try to create in its turn */
        pthread_mutex_unlock(&p->count.mu);
        return rc;
    }
    p->slots[i].res = r;
    *slot = i;
    *res = r;
    return BK_OK;
}

static void remember(const bk__slotpool_t *p, uint32_t i)
{
    for (unsigned h = 0; h < HINTS; h++)
        if (hints[h].pool == p->id) {
            hints[h].slot = i;
            return;
        }
    unsigned h = next_hint++ % HINTS;
    hints[h].pool = p->id;
    hints[h].slot = i;
}

void bk__slotpool_release(bk__slotpool_t *p, unsigned slot, bool broken)
{
    struct slot *s = &p->slots[slot];
    void *res = NULL;
    if (!broken && s->res == NULL && p->ops.create != NULL)
        broken = true; /* nothing to keep */
    int64_t now = !broken && p->o.idle_timeout_ns > 0 ? bk_clock_mono_ns(p->o.clock) : 0;
    uint64_t tag = p->o.affinity ? my_tag() : 0;
    pthread_mutex_lock(&p->count.mu);
    if (broken) {
        res = s->res;
        empty_push(p, slot);
        p->open--;
    } else {
        s->owner = tag;
        s->idle_since_ns = now;
        free_push(p, slot);
    }
    leave_locked(&p->count);
    pthread_mutex_unlock(&p->count.mu);
    close_res(p, res);
    if (p->o.affinity && !broken)
        remember(p, slot);
}

void bk__slotpool_stats(bk__slotpool_t *p, bk__slotpool_stats_t *st)
{
    pthread_mutex_lock(&p->count.mu);
    st->size = p->o.size;
    st->open = p->open;
    st->in_use = p->count.in_use;
    st->waits = p->count.waits;
    st->timeouts = p->count.timeouts;
    pthread_mutex_unlock(&p->count.mu);
}
