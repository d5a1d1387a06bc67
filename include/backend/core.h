/*
 * libbackend core: status codes, version, the injectable clock, secure random bytes.
 *
 * Layer 0. Every other module uses these; nothing here talks to a server.
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_CORE_H
#define BACKEND_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(BK_BUILDING_LIBRARY) && defined(__GNUC__)
#define BK_EXPORT __attribute__((visibility("default")))
#else
#define BK_EXPORT
#endif

/* The version of the headers; bk_version() gives the version of the library loaded. */
#define BK_VERSION_MAJOR 0
#define BK_VERSION_MINOR 1
#define BK_VERSION_PATCH 0
#define BK_VERSION_STRING "0.1.0"
/* (major << 16) | (minor << 8) | patch, for #if comparisons. */
#define BK_VERSION_NUM ((BK_VERSION_MAJOR << 16) | (BK_VERSION_MINOR << 8) | BK_VERSION_PATCH)

/*
 * Status codes. Functions that can fail return BK_OK (0) or one of these negative
 * codes. One table gives the enum, bk_strerror(), bk_err_name() and the HTTP
 * status a code answers (bk_http_status_of); codes are only ever appended, never
 * renumbered, so they are stable across releases. libbackend-errors(7) lists them
 * and says when a module may add one.
 *
 * Columns: name, value, description, HTTP status. 4xx: the request (its input, its
 * credentials) is at fault; 5xx: the service or one of its dependencies is.
 */
#define BK_ERRNO_MAP(X)                                                          \
    X(EINVAL, -1, "invalid argument", 400)                                       \
    X(ENOMEM, -2, "out of memory", 500)                                          \
    X(EBUSY, -3, "resource busy or queue full", 503)                             \
    X(ETIMEDOUT, -4, "operation timed out", 504)                                 \
    X(EUNAVAIL, -5, "service unavailable", 503)                                  \
    X(ENOTFOUND, -6, "not found", 404)                                           \
    X(EEXIST, -7, "already exists", 409)                                         \
    X(ECONFLICT, -8, "conflict with the current state", 409)                     \
    X(ECANCELED, -9, "operation canceled", 503)                                  \
    X(ECLOSED, -10, "handle is shut down", 503)                                  \
    X(EIO, -11, "input/output error", 500)                                       \
    X(ERANGE, -12, "value out of range", 400)                                    \
    X(ESYS, -13, "system call failed", 500)                                      \
    X(EMISMATCH, -14, "password does not match", 401)                            \
    X(EJWT_MALFORMED, -15, "malformed token", 401)                               \
    X(EJWT_SIGNATURE, -16, "token signature does not verify", 401)               \
    X(EJWT_EXPIRED, -17, "token expired", 401)                                   \
    X(EJWT_NOT_YET_VALID, -18, "token not yet valid", 401)                       \
    X(EJWT_ISSUER, -19, "token issuer not accepted", 401)                        \
    X(EJWT_AUDIENCE, -20, "token audience not accepted", 401)                    \
    X(EJWT_UNKNOWN_KEY, -21, "token signed with an unknown key", 401)            \
    X(EJWT_ALGORITHM, -22, "token algorithm not accepted for its key", 401)      \
    X(EJWT_CLAIMS, -23, "token lacks a required claim or type", 401)             \
    X(EJWT_REVOKED, -24, "token revoked", 401)                                   \
    X(EFORBIDDEN, -25, "permission denied", 403)                                 \
    X(ERETRY, -26, "transient conflict: retry the operation", 503)               \
    X(EUPSTREAM, -27, "an upstream service answered with an error", 502)

typedef enum bk_status {
    BK_OK = 0,
#define BK_ERRNO_ENUM_(name, value, text, http) BK_##name = (value),
    BK_ERRNO_MAP(BK_ERRNO_ENUM_)
#undef BK_ERRNO_ENUM_
} bk_status_t;

/* A static English description of code ("unknown error" for codes not in the table). */
BK_EXPORT const char *bk_strerror(int code);
/* The code's name, e.g. "BK_EINVAL" ("BK_UNKNOWN" for codes not in the table). */
BK_EXPORT const char *bk_err_name(int code);
/* The HTTP status that answers code: 200 for BK_OK, the table's column for a
 * code, 500 for a code not in the table. */
BK_EXPORT int bk_http_status_of(int code);

/*
 * What a failed call has to say beyond its code. The caller owns it (usually on
 * its stack) and passes it as the last parameter of the calls that take one, or
 * NULL for the code alone. Such a call clears it on entry and, when it fails,
 * sets code to what it returns and message to one sentence for a person (never a
 * secret: no password, key or token); the other fields where the call has them,
 * "" (or 0) otherwise. No allocation, no thread-local state: one bk_error_t per
 * thread of calls.
 */
typedef struct bk_error {
    int code;              /* the code the call returned; BK_OK when it succeeded */
    char message[256];     /* what went wrong, in a sentence; may be cut short */
    char detail[256];      /* more, where the source gives it (a server's DETAIL) */
    char sqlstate[6];      /* db: the server's SQLSTATE ("23505") */
    char constraint[64];   /* db: the constraint a statement broke */
    char pointer[256];     /* a JSON pointer into the document read ("/roles/admin") */
    char file[256];        /* a file the call read (a migration, a configuration) */
    unsigned line;         /* and the line in it, 0 when not known */
    uint64_t reserved_[8]; /* room to grow without changing the size (HACKING.md) */
} bk_error_t;

/* The library's version string, e.g. "0.1.0". */
BK_EXPORT const char *bk_version(void);
/* The library's version as BK_VERSION_NUM would give it. */
BK_EXPORT unsigned bk_version_num(void);

/*
 * The injectable clock. Everything in libbackend that reads time takes a
 * bk_clock_t *; NULL means the system clock. Tests pass a fake clock and advance
 * it by hand, so TTLs, breaker timeouts and token expiry are tested without sleeping.
 *
 * Monotonic time: nanoseconds from an arbitrary origin, never goes backwards; use it
 * for durations and deadlines. Wall time: nanoseconds since the Unix epoch (UTC);
 * use it only for timestamps that leave the process (logs, token claims).
 */
typedef struct bk_clock bk_clock_t;

BK_EXPORT int64_t bk_clock_mono_ns(const bk_clock_t *clock);
BK_EXPORT int64_t bk_clock_wall_ns(const bk_clock_t *clock);
/* Sleeps ns nanoseconds (ns >= 0). On the system clock: to an absolute
 * CLOCK_MONOTONIC deadline, resumed after a signal, so it never returns early;
 * BK_ESYS if the sleep fails otherwise. On a fake clock it never blocks: it
 * advances the fake clock by ns and returns at once (several sleeping threads each
 * advance the one fake time). BK_EINVAL for ns < 0. Any thread, never an event loop. */
BK_EXPORT int bk_clock_sleep_ns(const bk_clock_t *clock, int64_t ns);

/* A fake clock whose monotonic time starts at 0 and wall time at wall_ns. */
BK_EXPORT int bk_clock_fake_new(int64_t wall_ns, bk_clock_t **out);
/* Moves both monotonic and wall time forward by ns (ns >= 0), and wakes every
 * thread waiting with a deadline on this clock (a full db pool's acquire, ...):
 * those whose deadline has come return BK_ETIMEDOUT, the others wait on; real
 * time passing never ends such a wait. A fake clock outlives what waits on it. */
BK_EXPORT int bk_clock_fake_advance(bk_clock_t *clock, int64_t ns);
/* Sets wall time only, as an NTP step would; monotonic time is unchanged. */
BK_EXPORT int bk_clock_fake_set_wall(bk_clock_t *clock, int64_t wall_ns);
BK_EXPORT void bk_clock_free(bk_clock_t *clock);

/* The units of every duration of the API, an int64_t count of nanoseconds whose
 * name ends in _ns: opts.timeout_ns = 5 * BK_NSEC_PER_SEC. */
#define BK_NSEC_PER_USEC INT64_C(1000)
#define BK_NSEC_PER_MSEC INT64_C(1000000)
#define BK_NSEC_PER_SEC INT64_C(1000000000)

/* Fills buf with len cryptographically secure random bytes (OpenSSL's CSPRNG). */
BK_EXPORT int bk_random_bytes(void *buf, size_t len);

/*
 * W3C Trace Context: the trace a unit of work belongs to and the span it is,
 * carried by value through the layers (an HTTP request's, then its calls to
 * other services), so that every module can log and pass it on without
 * knowing where it came from. man bk_trace_new.
 */
#define BK_TRACE_SAMPLED 0x01        /* flags: the caller may have recorded the trace */
#define BK_TRACEPARENT_LEN 55        /* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define BK_TRACESTATE_MAX 512        /* the tracestate kept; longer ones are cut (man page) */
typedef struct bk_trace {
    char trace_id[33];               /* 32 lowercase hex digits, never all zeros */
    char span_id[17];                /* this span's: 16 lowercase hex digits, never all zeros */
    char parent_id[17];              /* the caller's span; "" when the trace began here */
    unsigned char flags;             /* BK_TRACE_SAMPLED and future bits, as received */
    char state[BK_TRACESTATE_MAX + 1]; /* the vendors' tracestate, checked; "" for none */
    uint64_t reserved_[4];           /* zeroed by the functions that fill it: room to grow */
} bk_trace_t;

/* A new trace, begun here: random trace and span ids, no parent, sampled. */
BK_EXPORT int bk_trace_new(bk_trace_t *out);
/* The span that continues a caller's trace: traceparent's trace id and flags,
 * its parent id as parent_id, a new random span_id, and tracestate (NULL for
 * none) when it is valid ("" when not: a bad tracestate never spoils the
 * traceparent). BK_EINVAL, out untouched, when traceparent is NULL or not a
 * valid traceparent. */
BK_EXPORT int bk_trace_parse(const char *traceparent, const char *tracestate, bk_trace_t *out);
/* A child span of parent (the same trace, flags and state; parent's span id as
 * its parent; a new span id), for a call this span makes. */
BK_EXPORT int bk_trace_child(const bk_trace_t *parent, bk_trace_t *out);
/* t as a traceparent header value naming t's span, version 00, into buf of
 * size >= BK_TRACEPARENT_LEN + 1. BK_EINVAL when t's ids are not valid, or
 * BK_ERANGE when buf is too small. */
BK_EXPORT int bk_trace_format(const bk_trace_t *t, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_CORE_H */
