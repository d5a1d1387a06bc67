/* Request bodies: the memory that holds them and the server-wide budget for it.
 *
 * A body is read into one contiguous buffer that the handler sees as it is. Small
 * bodies live in malloc'ed memory; from BODY_MAP_MIN up the buffer is an anonymous
 * mapping of its own, so that its pages go back to the system the moment the request
 * is done. Through malloc they would not: glibc raises its mmap threshold after the
 * first large block is freed, later blocks come from arenas that give memory back
 * only from their top, and 300 connections of 1 MiB bodies left 537 MB resident
 * after they had closed. A mapping of a declared Content-Length costs no memory
 * until its bytes arrive.
 *
 * Every body byte held is charged to the server's budget (max_buffered_body_bytes)
 * as it is read and given back when the request completes; a read that would pass
 * the budget is refused, and the connection answers 503 with Retry-After. The
 * gauge http_buffered_body_bytes follows the charge.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http/http_int.h"

#define BODY_MAP_MIN (64 * 1024) /* from this capacity up, a mapping of its own */
#define BODY_MIN_CAP 1024

static size_t page_round(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

static void body_unmap(struct body *b)
{
    if (b->mapped)
        munmap(b->p, b->cap);
    else
        free(b->p);
}

/* Makes room for need bytes (the body so far, the new bytes and a NUL). hint is
 * the size the whole body will have, when the framing tells (Content-Length). */
static int body_grow(struct body *b, size_t need, size_t hint)
{
    if (need <= b->cap)
        return BK_OK;
    size_t cap = hint >= need ? hint : need;
    if (hint < need && cap < 2 * b->cap)
        cap = 2 * b->cap; /* chunked: double, so that growing costs O(n) copies */
    if (cap < BODY_MIN_CAP)
        cap = BODY_MIN_CAP;
    if (cap < BODY_MAP_MIN) {
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return BK_ENOMEM;
        b->p = p;
        b->cap = cap;
        return BK_OK;
    }
    cap = page_round(cap);
    char *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return BK_ENOMEM;
    if (b->len > 0)
        memcpy(p, b->p, b->len);
    body_unmap(b);
    b->p = p;
    b->cap = cap;
    b->mapped = true;
    return BK_OK;
}

int bk__body_take(struct bk_req *req, struct evbuffer *in, size_t n, size_t hint)
{
    bk_http_server_t *srv = req->srv;
    struct body *b = &req->body;
    size_t held = atomic_fetch_add(&srv->body_bytes, n) + n;
    if (held > srv->o.max_buffered_body_bytes) {
        atomic_fetch_sub(&srv->body_bytes, n);
        return BK_EBUSY;
    }
    b->charged += n;
    bk_gauge_add(srv->body_gauge, (double)n);
    if (body_grow(b, b->len + n + 1, hint) != BK_OK)
        return BK_ENOMEM; /* the charge goes back with the request */
    evbuffer_remove(in, b->p + b->len, n);
    b->len += n;
    b->p[b->len] = '\0';
    return BK_OK;
}

void bk__body_release(struct bk_req *req)
{
    struct body *b = &req->body;
    if (b->charged > 0) {
        atomic_fetch_sub(&req->srv->body_bytes, b->charged);
        bk_gauge_add(req->srv->body_gauge, -(double)b->charged);
    }
    body_unmap(b);
    *b = (struct body){0};
}
