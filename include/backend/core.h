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
 * codes. One table gives the enum, bk_strerror() and bk_err_name(); codes are only
 * ever appended, never renumbered, so they are stable across releases.
 */
#define BK_ERRNO_MAP(X)                                                        \
    X(EINVAL, -1, "invalid argument")                                          \
    X(ENOMEM, -2, "out of memory")                                             \
    X(EBUSY, -3, "resource busy or queue full")                                \
    X(ETIMEDOUT, -4, "operation timed out")                                    \
    X(EUNAVAIL, -5, "service unavailable")                                     \
    X(ENOTFOUND, -6, "not found")                                              \
    X(EEXIST, -7, "already exists")                                            \
    X(ECONFLICT, -8, "conflict with the current state")                        \
    X(ECANCELED, -9, "operation canceled")                                     \
    X(ECLOSED, -10, "handle is shut down")                                     \
    X(EIO, -11, "input/output error")                                          \
    X(ERANGE, -12, "value out of range")                                       \
    X(ESYS, -13, "system call failed")                                         \
    X(EMISMATCH, -14, "password does not match")                               \
    X(EJWT_MALFORMED, -15, "malformed token")                                  \
    X(EJWT_SIGNATURE, -16, "token signature does not verify")                  \
    X(EJWT_EXPIRED, -17, "token expired")                                      \
    X(EJWT_NOT_YET_VALID, -18, "token not yet valid")                          \
    X(EJWT_ISSUER, -19, "token issuer not accepted")                           \
    X(EJWT_AUDIENCE, -20, "token audience not accepted")                       \
    X(EJWT_UNKNOWN_KEY, -21, "token signed with an unknown key")               \
    X(EJWT_ALGORITHM, -22, "token algorithm not accepted for its key")         \
    X(EJWT_CLAIMS, -23, "token lacks a required claim or type")                \
    X(EJWT_REVOKED, -24, "token revoked")                                      \
    X(EFORBIDDEN, -25, "permission denied")                                    \
    X(ERETRY, -26, "transient conflict: retry the operation")

typedef enum bk_status {
    BK_OK = 0,
#define BK_ERRNO_ENUM_(name, value, text) BK_##name = (value),
    BK_ERRNO_MAP(BK_ERRNO_ENUM_)
#undef BK_ERRNO_ENUM_
} bk_status_t;

/* A static English description of code ("unknown error" for codes not in the table). */
BK_EXPORT const char *bk_strerror(int code);
/* The code's name, e.g. "BK_EINVAL" ("BK_UNKNOWN" for codes not in the table). */
BK_EXPORT const char *bk_err_name(int code);

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

/* A fake clock whose monotonic time starts at 0 and wall time at wall_ns. */
BK_EXPORT int bk_clock_fake_new(int64_t wall_ns, bk_clock_t **out);
/* Moves both monotonic and wall time forward by ns (ns >= 0). */
BK_EXPORT int bk_clock_fake_advance(bk_clock_t *clock, int64_t ns);
/* Sets wall time only, as an NTP step would; monotonic time is unchanged. */
BK_EXPORT int bk_clock_fake_set_wall(bk_clock_t *clock, int64_t wall_ns);
BK_EXPORT void bk_clock_free(bk_clock_t *clock);

#define BK_NSEC_PER_MSEC INT64_C(1000000)
#define BK_NSEC_PER_SEC INT64_C(1000000000)

/* Fills buf with len cryptographically secure random bytes (OpenSSL's CSPRNG). */
BK_EXPORT int bk_random_bytes(void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_CORE_H */
