/*
 * libbackend http: an HTTP/1.1 server on libevent with a route trie, middleware,
 * JSON in and out, RFC 9457 problem+json errors, blocking routes on the worker
 * pool, health endpoints, Prometheus metrics and graceful shutdown.
 *
 *   bk_http_opts_t o;
 *   bk_http_opts_init(&o);
 *   o.port = 8080;
 *   bk_http_server_t *srv;
 *   bk_http_server_new(&o, &srv, NULL);   (NULL options: all defaults)
 *   bk_http_route(srv, "GET", "/users/{id}", get_user, app, NULL);
 *   bk_http_mount_metrics(srv, "/metrics");
 *   bk_error_t err;
 *   if (bk_http_server_start(srv, &err) != BK_OK)   ("127.0.0.1:8080: address in use")
 *       fprintf(stderr, "%s\n", err.message);
 *   bk_http_server_wait(srv);          (returns after SIGTERM or bk_http_server_stop)
 *   bk_http_server_free(srv);
 *
 * Layer 4. The server runs N event loops on N threads, each with its own
 * event_base and its own listening socket bound to one address with SO_REUSEPORT,
 * so the kernel spreads connections across loops. Configure it (routes, middleware,
 * checks) before bk_http_server_start(); the route table is immutable afterwards
 * and read without locks.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_HTTP_H
#define BACKEND_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <backend/auth.h>
#include <backend/core.h>
#include <backend/log.h>
#include <backend/metrics.h>
#include <backend/resilience.h>
#include <backend/schema.h>
#include <backend/workers.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bk_http_server bk_http_server_t;
/* One request and the response being built for it. Borrowed by handlers and
 * middleware for the duration of the call; never freed by the caller. */
typedef struct bk_req bk_req_t;

/* A route handler. It answers with one of the bk_res_* calls; a handler that
 * returns without answering gets a 500 problem response. */
typedef void (*bk_http_handler_fn)(bk_req_t *req, void *ud);

/* What a middleware's before hook returns. */
#define BK_HTTP_NEXT 0 /* go on down the chain */
#define BK_HTTP_DONE 1 /* the hook answered: skip the rest of the chain and the handler */

/*
 * A middleware: before runs ahead of the handler (in registration order, server
 * middleware first, then the route's); after runs once the response is complete,
 * in reverse order, for every middleware whose before ran (even when a later one
 * short-circuited). Either may be NULL. The struct is copied; ud is borrowed.
 * Both run on the handler's thread: the loop for an inline route, a worker for a
 * blocking one (and the after hooks of a request bk_req_offload handed over). Nothing may block a loop, so a guard that does I/O (a memcached
 * limiter store, a revocation lookup) belongs on BK_HTTP_BLOCKING routes. The
 * built-ins are middleware of this kind, in this order: request id, access log
 * and metrics, security headers, CORS (every request, on the loop); then the
 * route's rate limit, auth, permission; the server's middleware, the route's;
 * the route's validation, owner check; the handler (bk_http_route(3)).
 * Fill it with a designated initializer, (bk_http_middleware_t){.name = "auth",
 * .before = f, .ud = app}: the fields not named, the reserved_ tail among them,
 * are zero then.
 */
typedef struct bk_http_middleware {
    const char *name; /* for logs; copied */
    int (*before)(bk_req_t *req, void *ud);
    void (*after)(bk_req_t *req, void *ud);
    void *ud;
    uint64_t reserved_[8]; /* room to grow (HACKING.md); zero */
} bk_http_middleware_t;

/* Route flags. */
#define BK_HTTP_INLINE 0u   /* runs on the event loop: must not block (default) */
#define BK_HTTP_BLOCKING 1u /* runs on the worker pool; the reply goes back to the loop */
#define BK_HTTP_JSON 2u     /* a body must be Content-Type application/json (else 415) */
/* Path and query parameters may decode to any bytes. Without it, a parameter that
 * is not UTF-8 once percent-decoded is answered 400 before the route runs. */
#define BK_HTTP_RAW_PARAMS 4u
/* An inline route whose handler may hand the request to the worker pool
 * (bk_req_offload): it answers on the loop what it can (a value in process
 * memory) and offloads what would block. Not with BK_HTTP_BLOCKING. */
#define BK_HTTP_OFFLOAD 8u

/* The rate-limit key of a request (e.g. a user id from a token); NULL or "" means
 * the client address. The string must live as long as the request. */
typedef const char *(*bk_http_key_fn)(bk_req_t *req, void *ud);

/*
 * How a route authenticates and authorizes (bk_http_route_opts_t.auth). The
 * request's "Authorization: Bearer <token>" is verified with keys; a missing or
 * invalid token is answered 401 problem+json with WWW-Authenticate (RFC 6750:
 * error="invalid_token" and the reason as error_description), an invalid one with
 * bk_res_error (its "code" names the reason: "BK_EJWT_EXPIRED"). Fill it with a
 * designated initializer: the fields not named, the reserved_ tail among them,
 * are zero then.
 */
typedef struct bk_http_auth {
    const bk_jwt_keys_t *keys;          /* borrowed; required */
    const bk_jwt_verify_opts_t *verify; /* iss, aud, leeway, ...; NULL = defaults; borrowed */
    const bk_rbac_t *rbac;              /* for route permissions; borrowed */
    const char *roles_claim;            /* the roles: an array of strings or a string; default "roles" */
    const char *scope_claim;            /* OAuth scopes narrowing the roles: a space-separated
                                           string or an array; absent = no narrowing; default "scope" */
    uint64_t reserved_[8];              /* room to grow (HACKING.md); zero */
} bk_http_auth_t;

/* An ownership check: BK_OK when the caller (claims) may act on the resource the
 * request names; anything else answers 404, so that other users' resources are
 * not even revealed to exist. Runs on the handler's thread, after validation. */
typedef int (*bk_http_owner_fn)(bk_req_t *req, const json_t *claims, void *ud);

/* One documented answer of a route (bk_http_operation_t.responses). Fill it with
 * a designated initializer: the fields not named, reserved_ among them, are zero. */
typedef struct bk_http_response_doc {
    int status;               /* 100..599, or 0 for OpenAPI's "default" (any other) */
    const char *description;  /* NULL = the status's reason phrase; copied */
    /* The body's JSON Schema; NULL = no body described. Borrowed: referenced, not
     * copied, and never to be modified while the server lives. */
    const json_t *schema;
    const char *content_type; /* NULL = "application/json"; copied */
    uint64_t reserved_[4];    /* room to grow (HACKING.md); zero */
} bk_http_response_doc_t;

/*
 * What the OpenAPI document says of a route (bk_http_route_opts_t.doc,
 * bk_http_mount_openapi(3)); everything else (parameters, body, security, the
 * guards' error answers) comes from the route itself. Copied by bk_http_route
 * (the response schemas are referenced). Fill it with a designated initializer.
 */
typedef struct bk_http_operation {
    const char *summary;      /* NULL = "GET /users/{id}" */
    const char *description;  /* CommonMark */
    const char *operation_id; /* NULL = made from the method and template ("get_users_id");
                                 unique across the server's routes */
    const char *const *tags;  /* NULL-terminated; NULL = none */
    bool deprecated;
    bool hidden;              /* left out of the document */
    const bk_http_response_doc_t *responses; /* NULL (and 0) = "200": "OK" */
    size_t nresponses;
    uint64_t reserved_[8];    /* room to grow (HACKING.md); zero */
} bk_http_operation_t;

/* The options of one route: bk_http_route_opts_init, or a designated initializer
 * (the fields not named, the reserved_ tail among them, are zero: the defaults). */
typedef struct bk_http_route_opts {
    unsigned flags;                        /* BK_HTTP_* flags; default BK_HTTP_INLINE */
    const bk_http_middleware_t *middleware; /* run after the server's; copied */
    size_t nmiddleware;
    /* A rate limit checked before the route's middleware, on the handler's thread
     * (a store that does I/O wants BK_HTTP_BLOCKING). Over the limit: 429 with
     * Retry-After; every answer carries RateLimit-Policy and RateLimit. If the
     * store fails the request goes through. Inline: one store round
     * (BK_RATELIMIT_NO_WAIT), a conflict is a 429. Borrowed; NULL = no limit. */
    bk_ratelimit_t *ratelimit;
    bk_http_key_fn ratelimit_key; /* NULL = the client address */
    void *ratelimit_ud;
    /* Request validation, after the middleware (so authentication answers first)
     * and before the handler, which never runs for a request that fails: 422
     * problem+json with "errors": [{"loc", "msg", "type"}], loc being the JSON
     * pointer into the body ("/items/0/qty") or "query.<name>", type the failing
     * keyword. The body must be JSON (415, 400 otherwise); the query parameters
     * become an object of strings, coerced to the types the schema declares and
     * with defaults filled (bk_schema_coerce). Borrowed; NULL = no check. */
    const bk_schema_t *body_schema;
    const bk_schema_t *query_schema;
    /* Authentication before anything else of the route (after the rate limit):
     * 401 when the token is missing or invalid. Borrowed; NULL = none. */
    const bk_http_auth_t *auth;
    /* A permission the caller's roles (and scopes) must allow (bk_rbac_allows):
     * 403 otherwise (bk_res_error with BK_EFORBIDDEN). Needs auth with an rbac. */
    const char *permission;
    bk_http_owner_fn owner; /* NULL = none; needs auth */
    void *owner_ud;
    /* What the OpenAPI document says of the route beyond what the options above
     * show (bk_http_mount_openapi). Copied; NULL = only what they show. */
    const bk_http_operation_t *doc;
    uint64_t reserved_[7]; /* room to grow (HACKING.md); zeroed by bk_http_route_opts_init */
} bk_http_route_opts_t;

/* Clears *opts (the reserved_ tail too) and sets the defaults (BK_HTTP_INLINE,
 * no middleware, limit, schema or auth). */
BK_EXPORT void bk_http_route_opts_init(bk_http_route_opts_t *opts);

typedef struct bk_http_opts {
    /* Where to listen: host and port (IPv4 or IPv6 literal or name; port 0 picks a
     * free port, see bk_http_server_port()), or a unix socket path when unix_path
     * is set. Default "127.0.0.1", port 8080. */
    const char *host;
    uint16_t port;
    const char *unix_path;
    unsigned threads;           /* event loops; default: the number of online CPUs */
    int backlog;                /* listen(2) backlog per loop; default 1024 */

    /* Limits. A request over one gets its problem+json answer and the connection closes. */
    size_t max_header_bytes;    /* request line + headers; over it: 431. Default 16 KiB */
    size_t max_body_bytes;      /* Content-Length over it: 413 before reading. Default 1 MiB */
    /* Request body bytes held in memory across all connections (bodies being read
     * and bodies whose handler runs). A body byte that would pass it is not taken:
     * that request is answered 503 with Retry-After: 1 (bk_res_error with BK_EBUSY)
     * and its connection closes.
     * The gauge http_buffered_body_bytes shows what is held. At least
     * max_body_bytes; 0 = the default, 64 MiB (or max_body_bytes when larger). */
    size_t max_buffered_body_bytes;
    unsigned max_connections;   /* across all loops; over it: 503 and close. Default 10000 */
    /* Durations, in nanoseconds (BK_NSEC_PER_SEC...). The timers run at millisecond
     * resolution or finer; a non-zero duration never rounds down to zero. */
    int64_t header_timeout_ns;  /* first byte to end of headers (slowloris); default 10 s */
    int64_t body_timeout_ns;    /* end of headers to end of body; default 30 s */
    int64_t idle_timeout_ns;    /* keep-alive idle between requests; default 60 s */
    int64_t write_timeout_ns;   /* a response that the client does not read; default 30 s */
    int64_t request_timeout_ns; /* the deadline given to handlers (bk_req_deadline_ns); 30 s */
    int64_t shutdown_delay_ns;  /* graceful stop: keep accepting this long with readiness
                                   503 so load balancers drain us first; default 0 */
    int64_t shutdown_timeout_ns; /* then in-flight requests get this long; default 10 s */

    /* Built-in middleware, in this order ahead of user middleware: request id (always),
     * access log and metrics (around everything), security headers, CORS. */
    bk_log_t *access_log;       /* one JSON line per request; NULL (default) = off. Borrowed */
    bk_log_t *log;              /* server events (listening, errors); NULL = none. Borrowed */
    bk_metrics_t *metrics;      /* borrowed; NULL = the server makes its own registry */
    bool security_headers;      /* nosniff, DENY, no-referrer, Cache-Control: no-store; true */
    /* > 0 adds Strict-Transport-Security, max-age in whole seconds (rounded down);
     * default 0 (off) */
    int64_t hsts_max_age_ns;
    /* CORS: NULL-terminated list of allowed origins ("https://a.example"), or {"*"}
     * for any origin (refused together with cors_credentials). NULL = CORS off. */
    const char *const *cors_origins;
    bool cors_credentials;      /* Access-Control-Allow-Credentials: true; default false */
    const char *cors_headers;   /* allowed request headers; default
                                   "Content-Type, Authorization, X-Request-ID" */
    int64_t cors_max_age_ns;    /* preflight cache (Access-Control-Max-Age, whole seconds,
                                   rounded down); default 600 s */

    /* An admin listener for operators, off by default: a host (or admin_unix_path,
     * a unix socket) and port (0 picks a free one, see bk_http_server_admin_port)
     * that serves only the health probes and the metrics path (bk_http_mount_health,
     * bk_http_mount_metrics; 404 for anything else), with its own connection limit,
     * so that probes and scrapes get through while the main listener refuses
     * connections at max_connections. Those endpoints stay on the main listener too. */
    const char *admin_host;
    uint16_t admin_port;
    const char *admin_unix_path;
    unsigned admin_max_connections; /* 0 = the default, 16 */

    bk_workers_t *workers;      /* for blocking and offloading routes and readiness checks;
                                   borrowed. NULL = the server makes a pool (default
                                   options) when it has one of them */
    bk_clock_t *clock;          /* durations, deadlines, the Date header; NULL = system clock */
    bool handle_signals;        /* SIGINT/SIGTERM stop the server gracefully; default true */
    /* gzip: an answer of at least gzip_min_bytes whose type compresses (text, JSON,
     * XML, JavaScript, SVG, WASM; never images, audio, video, archives, fonts,
     * octet streams, ranges or files of bk_http_mount_static) goes out gzipped when
     * the request's Accept-Encoding allows it, with Vary: Accept-Encoding and its
     * ETag made weak. 0 (default): never. gzip_level 1..9; 0 = 1 (fast). */
    size_t gzip_min_bytes;
    int gzip_level;
    /* TLS on the main listener (the admin listener stays plain): the certificate
     * chain (PEM, the server's first) and its key, read at bk_http_server_new and
     * again by bk_http_server_reload_tls. TLS 1.2 at least (1.3 when the client has
     * it), the server's cipher order, ALPN http/1.1. Both NULL (default): plain
     * HTTP. Copied. */
    const char *tls_cert_file;
    const char *tls_key_file;
    uint64_t reserved_[4];      /* room to grow (HACKING.md); zeroed by bk_http_opts_init */
} bk_http_opts_t;

/* Clears *opts (the reserved_ tail too) and sets the defaults. */
BK_EXPORT void bk_http_opts_init(bk_http_opts_t *opts);
/* Creates a server (nothing listens until bk_http_server_start). opts is copied,
 * strings and the origin list too; NULL means all defaults. BK_EINVAL for a bad
 * option, err->message naming it ("cors_max_age_ns is negative"); err may be NULL. */
BK_EXPORT int bk_http_server_new(const bk_http_opts_t *opts, bk_http_server_t **out,
                                 bk_error_t *err);

/*
 * Adds a route. method is an upper-case token ("GET", "POST", ...); path a template
 * of '/'-separated segments, each literal, a parameter "{name}" (one segment) or,
 * last only, a tail "{name...}" (the rest of the path, possibly empty). A literal
 * segment beats a parameter, a parameter beats a tail. BK_EEXIST for a method and
 * template already routed (or the same shape with other parameter names), BK_EINVAL
 * for a bad template, BK_EBUSY once the server has started. Strings and opts are
 * copied; ud is borrowed.
 */
BK_EXPORT int bk_http_route(bk_http_server_t *srv, const char *method, const char *path,
                            bk_http_handler_fn fn, void *ud, const bk_http_route_opts_t *opts);
/* Appends server-wide middleware (runs for every routed request). Before start. */
BK_EXPORT int bk_http_use(bk_http_server_t *srv, const bk_http_middleware_t *mw);

/* GET path answers the metrics registry in Prometheus text format. Before start. */
BK_EXPORT int bk_http_mount_metrics(bk_http_server_t *srv, const char *path);
/* GET /health/live, /health/ready and /health/startup. Before start. */
BK_EXPORT int bk_http_mount_health(bk_http_server_t *srv);

/* Static files (man bk_http_mount_static). */
typedef struct bk_http_static_opts {
    const char *index;         /* served for a directory's path ending in '/'; default
                                  "index.html"; NULL: none (404, never a listing); copied */
    const char *cache_control; /* Cache-Control of every answer; default "no-cache"
                                  (cache, but revalidate: ETag, Last-Modified); NULL:
                                  the server's (no-store); copied */
    bool dotfiles;             /* serve names beginning with '.' (never "." or ".."); default false */
    unsigned flags;            /* BK_HTTP_BLOCKING: open and stat on the worker pool (slow
                                  disks); default inline */
    uint64_t reserved_[8];     /* zeroed by bk_http_static_opts_init: room to grow (HACKING.md) */
} bk_http_static_opts_t;

/* Clears *opts (reserved_ too) and sets the defaults. */
BK_EXPORT void bk_http_static_opts_init(bk_http_static_opts_t *opts);
/* GET and HEAD of prefix and below answer the files under dir (opened now and held:
 * the server reads nothing outside it, follows no symbolic link, refuses "." and ".."
 * segments), with ETag, Last-Modified, 304, single ranges (206, 416) and index files.
 * Before start. BK_ESYS (errno kept) when dir cannot be opened; err may be NULL. */
BK_EXPORT int bk_http_mount_static(bk_http_server_t *srv, const char *prefix, const char *dir,
                                   const bk_http_static_opts_t *opts, bk_error_t *err);

/* The document's info, servers and links (bk_http_mount_openapi). Fill it with a
 * designated initializer; every string is copied. */
typedef struct bk_http_openapi_info {
    const char *title;        /* required */
    const char *version;      /* the API's version ("1.4.0"); required */
    const char *summary;
    const char *description;  /* CommonMark */
    const char *const *servers; /* NULL-terminated base URLs ("https://api.example.com/v1") */
    const char *contact_name, *contact_url, *contact_email;
    const char *license_name;       /* required when another license field is set */
    const char *license_identifier; /* SPDX ("MIT"); not together with license_url */
    const char *license_url;
    const char *terms_of_service;   /* a URL */
    uint64_t reserved_[8];    /* room to grow (HACKING.md); zero */
} bk_http_openapi_info_t;

/*
 * GET path answers the OpenAPI 3.1 document of the server's routes (those of
 * bk_http_route, not the mounts), rendered once at bk_http_server_start, in the
 * JSON Schema 2020-12 dialect so that the routes' schemas appear as they are
 * (man bk_http_mount_openapi). Before start; once per server. BK_EINVAL when
 * info lacks its title or version or a license field breaks the rule above,
 * BK_EEXIST for a second mount, BK_EBUSY after start.
 */
BK_EXPORT int bk_http_mount_openapi(bk_http_server_t *srv, const char *path,
                                    const bk_http_openapi_info_t *info);
/* The document of the routes routed so far, as bk_http_mount_openapi renders it,
 * in *out (a new reference); for a host that writes it out (a build step, a client
 * generator). BK_EINVAL as above or when two routes share an operationId
 * (err->message names it); BK_ENOMEM. Not concurrently with bk_http_route. */
BK_EXPORT int bk_http_openapi(const bk_http_server_t *srv, const bk_http_openapi_info_t *info,
                              json_t **out, bk_error_t *err);

/* A readiness check: runs on the worker pool, returns BK_OK when ready. */
typedef int (*bk_http_check_fn)(void *ud);
/* Registers a readiness check (before start). /health/ready runs every check, each
 * with timeout_ns (> 0; a check still running then counts as failed), and answers
 * 200 when all pass, 503 otherwise, with {"status":..., "checks":{name:status}}. */
BK_EXPORT int bk_http_health_check(bk_http_server_t *srv, const char *name,
                                   bk_http_check_fn fn, void *ud, int64_t timeout_ns);
/* A reported state: fn(ud) returns a string that outlives the answer (a
 * constant, such as bk_breaker_state_name's), or NULL (null). It runs on the
 * loop thread and must not block. */
typedef const char *(*bk_http_report_fn)(void *ud);
/* Registers a state that /health/ready shows, under "reports": {name: state},
 * without deciding readiness: a dependency the service answers without (an
 * open breaker fails its calls fast), which an operator still wants to see
 * (before start). BK_EINVAL; BK_EEXIST (the name); BK_EBUSY (started); BK_ENOMEM. */
BK_EXPORT int bk_http_health_report(bk_http_server_t *srv, const char *name, bk_http_report_fn fn, void *ud);
/* /health/startup answers 503 until this is called with true. Thread-safe. */
BK_EXPORT void bk_http_server_set_started(bk_http_server_t *srv, bool started);

/* Binds every loop's socket and starts the loop threads. When a listener cannot
 * be made, err->message says which address and why ("127.0.0.1:8080: address in
 * use", "/run/app.sock: exists and is not a socket"); err may be NULL. */
BK_EXPORT int bk_http_server_start(bk_http_server_t *srv, bk_error_t *err);
/* The bound TCP port (useful with port 0); 0 before start or for a unix socket. */
BK_EXPORT uint16_t bk_http_server_port(const bk_http_server_t *srv);
/* The admin listener's bound TCP port; 0 before start, without an admin listener
 * or when it is a unix socket. */
BK_EXPORT uint16_t bk_http_server_admin_port(const bk_http_server_t *srv);
/*
 * Begins a graceful stop: /health/ready turns 503 at once and every answer closes
 * its connection; after shutdown_delay_ns the listeners close, idle connections
 * close, and in-flight requests finish (up to shutdown_timeout_ns, then their
 * connections are closed). Returns at once; thread-safe; a no-op when already
 * stopping. Not async-signal-safe (handle_signals covers signals).
 */
BK_EXPORT void bk_http_server_stop(bk_http_server_t *srv);
/* Blocks until every loop has stopped, then joins the threads. */
BK_EXPORT int bk_http_server_wait(bk_http_server_t *srv);
/* Reads the TLS certificate chain and key files again and uses them for the
 * connections accepted from now on; open connections go on with the old ones.
 * On a failure (err says which file and why) the old ones stay. Any thread. */
BK_EXPORT int bk_http_server_reload_tls(bk_http_server_t *srv, bk_error_t *err);
/* Stops (if running), waits and frees. */
BK_EXPORT void bk_http_server_free(bk_http_server_t *srv);
/* The registry the server counts into (opts.metrics or its own). */
BK_EXPORT bk_metrics_t *bk_http_server_metrics(bk_http_server_t *srv);

/* ---- the request (all strings are borrowed and live as long as the request) ---- */
BK_EXPORT const char *bk_req_method(const bk_req_t *req);
/* The path as received, without the query, still percent-encoded. */
BK_EXPORT const char *bk_req_path(const bk_req_t *req);
/* The matched route template ("/users/{id}"), or NULL when no route matched. */
BK_EXPORT const char *bk_req_route(const bk_req_t *req);
/* A path parameter, percent-decoded; NULL if the route has none of that name. */
BK_EXPORT const char *bk_req_param(const bk_req_t *req, const char *name);
/* The first query parameter of that name, decoded ('+' is a space); NULL if absent. */
BK_EXPORT const char *bk_req_query(const bk_req_t *req, const char *name);
/* The first header of that name (case-insensitive); NULL if absent. */
BK_EXPORT const char *bk_req_header(const bk_req_t *req, const char *name);
/* The body bytes (NUL-terminated beyond *len for convenience); *len may be NULL. */
BK_EXPORT const char *bk_req_body(const bk_req_t *req, size_t *len);
/*
 * Parses the body as JSON into *out (a new reference the caller decrefs). When the
 * Content-Type is not JSON it answers 415 and returns BK_EINVAL; when the body is
 * not valid JSON it answers 400 (the parser's message as detail) and returns
 * BK_EINVAL. A handler just returns after a failure: the answer is made.
 */
BK_EXPORT int bk_req_json(bk_req_t *req, json_t **out);
/*
 * The query parameters as a JSON object (a repeated name gives an array of its
 * values), coerced and defaulted by the route's query schema when it has one.
 * Borrowed: the request keeps the reference, valid until the request completes;
 * json_incref it to keep it longer, never decref it. NULL on ENOMEM.
 */
BK_EXPORT json_t *bk_req_query_json(bk_req_t *req);
/* The verified token claims of a route with auth: borrowed (the request keeps the
 * reference, valid until the request completes; json_incref to keep it longer);
 * NULL for a route without. */
BK_EXPORT const json_t *bk_req_claims(const bk_req_t *req);
/* Whether the verified caller of a route with auth and an rbac may do permission
 * (its roles, narrowed by its scopes, as for the route's own permission): for a
 * handler whose answer depends on it (an admin sees every order). false for a
 * route without auth or rbac. */
BK_EXPORT bool bk_req_allows(bk_req_t *req, const char *permission);
/* The client's address as text ("127.0.0.1", "::1", "unix"). */
BK_EXPORT const char *bk_req_client(const bk_req_t *req);
/* The request id (the client's sane X-Request-ID, or a generated one). */
BK_EXPORT const char *bk_req_id(const bk_req_t *req);
/* The request's span of its W3C trace (bk_trace_t): the caller's trace when it
 * sent one valid traceparent, else a new one; a span id of its own either way.
 * Borrowed, valid until the request completes; copy it to keep it (pass it to
 * bk_upstream_request_t.trace for the calls the handler makes). */
BK_EXPORT const bk_trace_t *bk_req_trace(const bk_req_t *req);
/* Its trace id and span id (hex), as the access log writes them. */
BK_EXPORT const char *bk_req_trace_id(const bk_req_t *req);
BK_EXPORT const char *bk_req_span_id(const bk_req_t *req);
/* Writes one line to log (NULL: the server's opts.log) as bk_log does, with the
 * request's request_id, trace_id, span_id and route (when one matched) among
 * fields (taken, as bk_log takes them; NULL for none), so that a handler's
 * lines join the request's access line. From any thread while the request
 * lives. */
BK_EXPORT void bk_req_log(const bk_req_t *req, bk_log_t *log, bk_log_level_t level, json_t *fields,
                          const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
/*
 * Conditional requests (RFC 9110): etag is the entity tag of the representation
 * the handler would answer with 2xx ("\"v7\"" or weak "W/\"v7\""; NULL when there
 * is none); true means the function answered and the handler returns.
 * bk_req_if_match: 412 unless every If-Match is absent or one of its tags (or
 * "*") matches etag by the strong comparison; call it before a write.
 * bk_req_if_none_match: adds ETag: etag to the answer; when an If-None-Match tag
 * (or "*") matches etag by the weak comparison, answers 304 to GET and HEAD, 412
 * to the other methods. After bk_req_if_match when both are used. An etag that
 * is not an entity-tag answers 500 (true). man bk_req_if_match.
 */
BK_EXPORT bool bk_req_if_match(bk_req_t *req, const char *etag);
BK_EXPORT bool bk_req_if_none_match(bk_req_t *req, const char *etag);
/* The monotonic time (bk_clock_mono_ns) by which the handler should answer. */
BK_EXPORT int64_t bk_req_deadline_ns(const bk_req_t *req);
/* One pointer of the caller's per request (middleware to handler); NULL at first. */
BK_EXPORT void bk_req_set_data(bk_req_t *req, void *data);
BK_EXPORT void *bk_req_data(const bk_req_t *req);

/* ---- the response (call from the handler's thread; one answer per request) ---- */
/* Answers status with the JSON document (compact). Takes the caller's reference to
 * doc, even on failure, so json_pack() can be passed directly. */
BK_EXPORT int bk_res_json(bk_req_t *req, int status, json_t *doc);
/* Answers status with len bytes of content_type (copied). */
BK_EXPORT int bk_res_bytes(bk_req_t *req, int status, const char *content_type,
                           const void *data, size_t len);
/* Adds a response header (copied). BK_EINVAL for a bad name or a value with CR, LF
 * or NUL. Allowed before or after the answer, until the request completes. */
BK_EXPORT int bk_res_header(bk_req_t *req, const char *name, const char *value);
/*
 * Answers an RFC 9457 application/problem+json body: type "about:blank", title
 * (the status's reason phrase), status, detail (may be NULL; copied), instance (the
 * path), request_id, and errors when given (a JSON array). Takes the reference to
 * errors, even on failure.
 */
BK_EXPORT int bk_res_problem(bk_req_t *req, int status, const char *detail, json_t *errors);
/*
 * Answers problem+json for a library code (BK_E*, core.h): status
 * bk_http_status_of(code), detail (NULL = bk_strerror(code); copied), and a "code"
 * member, bk_err_name(code) ("BK_EUNAVAIL"); a 503 carries Retry-After: 1. The
 * status of an unknown code is 500. libbackend-errors(7) lists the codes.
 */
BK_EXPORT int bk_res_error(bk_req_t *req, int code, const char *detail);
/*
 * bk_res_error with extension members (RFC 9457 section 3.2): members, an
 * object (taken, even on failure; NULL = none), adds its members to the
 * problem, under the problem's own (a member named type, title, status,
 * detail, instance, request_id or code is not used). BK_EINVAL when members is
 * not an object.
 */
BK_EXPORT int bk_res_error_ext(bk_req_t *req, int code, const char *detail, json_t *members);
/* The status answered so far (0 before any answer). */
BK_EXPORT int bk_res_status(const bk_req_t *req);
/*
 * Hands the rest of a request to the server's worker pool: fn(req, ud) runs on a
 * worker, may block, and answers; the answer goes back to the loop, and the
 * route's after hooks run on the worker after fn. Called by the handler of a
 * BK_HTTP_OFFLOAD route, on the loop, before answering; the handler returns at
 * once. BK_OK; BK_EBUSY (the queue is full) or BK_ECLOSED (the server is
 * stopping): the request is answered 503 with Retry-After, as a blocking route's
 * would be; BK_EINVAL (not such a handler, or answered already): nothing done.
 * man bk_req_offload.
 */
BK_EXPORT int bk_req_offload(bk_req_t *req, bk_http_handler_fn fn, void *ud);

/* The reason phrase of an HTTP status ("Not Found"; "Unknown" for others). */
BK_EXPORT const char *bk_http_reason(int status);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_HTTP_H */
