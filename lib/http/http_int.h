/* The HTTP server's private structures, shared by the files of lib/http/.
 *
 * Threads: each loop (struct loop) owns its event_base, listener and connections
 * and touches them only from its own thread. The route trie, middleware lists and
 * options are built before start and read-only afterwards. A request handed to the
 * worker pool is touched by the worker alone until its completion runs on the loop.
 * SPDX-License-Identifier: MIT */
#ifndef BK_HTTP_INT_H
#define BK_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <backend/http.h>

#include "core/arena_int.h"

#if defined(__GNUC__)
#define BK__HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__HIDDEN
#endif

#define BK_HTTP_MAX_HEADERS 100  /* more header lines than this: 431 */
#define BK_HTTP_MAX_PARAMS 16    /* path parameters per template */
#define BK_HTTP_MAX_SEGMENTS 256 /* deeper paths do not match any route (404) */
#define BK_HTTP_REQUEST_ID_MAX 128
#define BK_HTTP_MAX_GUARDS 8      /* built-in guards of one route */


/* ------------------------------------------------------------------ routes */
struct route {
    char *method;
    char *template;
    bk_http_handler_fn fn;
    void *ud;
    unsigned flags;
    bk_http_middleware_t *mw; /* the route's own, after the server's */
    size_t nmw;
    char *param_names[BK_HTTP_MAX_PARAMS];
    size_t nparams;
    bk_histogram_t *duration; /* http_request_duration_seconds{route} */
    bk_ratelimit_t *ratelimit;
    bk_http_key_fn ratelimit_key;
    void *ratelimit_ud;
    const bk_schema_t *body_schema, *query_schema;
    const bk_http_auth_t *auth;
    char *permission;
    bk_http_owner_fn owner;
    void *owner_ud;
    bool internal;            /* health, metrics: no user middleware */
    bool hidden;              /* left out of the OpenAPI document */
    json_t *doc;              /* bk_http_operation_t, copied (openapi.c); NULL = none */
    struct route *reg_next;   /* the server's routes in the order of registration */
    /* The route's built-in guards (mw_*.c), installed by registration from its
     * options: guard[0..nguard_pre) run ahead of the user middleware, the rest
     * after it (chain.c says the order and why). */
    bk_http_middleware_t guard[BK_HTTP_MAX_GUARDS];
    size_t nguard, nguard_pre;
    /* The whole chain, flattened at start (guards, the server's middleware, the
     * route's): one array walked by one loop, nothing allocated per request. */
    bk_http_middleware_t *chain;
    size_t nchain;
    struct route *next;       /* next route on the same node */
};

struct rnode {
    char *seg; /* literal segment of a static child */
    size_t seglen;
    struct rnode **kids; /* static children, sorted for binary search */
    size_t nkids;
    struct rnode *param; /* "{name}" child */
    char *param_name;
    struct rnode *tail; /* "{name...}" child (a leaf) */
    char *tail_name;
    struct route *routes;
    char *allow; /* the Allow header value, computed at start */
};

struct match {
    struct rnode *node;  /* the node whose route answers the method */
    struct route *route; /* NULL: path known but not for this method (405), or 404 */
    struct rnode *any;   /* first node the path matched, whatever the method */
    const char *cap[BK_HTTP_MAX_PARAMS];
    size_t caplen[BK_HTTP_MAX_PARAMS];
    size_t ncap;
};

BK__HIDDEN struct rnode *bk__rnode_new(void);
BK__HIDDEN void bk__rnode_free(struct rnode *n);
BK__HIDDEN void bk__route_free(struct route *r);
BK__HIDDEN int bk__router_add(struct rnode *root, struct route *r);
/* Computes Allow values and builds every route's chain (bk__chain_build). */
BK__HIDDEN int bk__router_finish(struct rnode *root, bk_http_server_t *srv);
/* Matches path (NUL-terminated, starts with '/') for method. */
BK__HIDDEN void bk__router_match(struct rnode *root, const char *path, const char *method,
                                 struct match *m);

/* ------------------------------------------------------------------ requests */
struct hdr {
    const char *name, *value;
    size_t nlen, vlen;
};

struct qparam {
    const char *name, *value;
};

struct conn;
struct loop;

/* A request body, contiguous and NUL-terminated (body.c). */
struct body {
    char *p;        /* NULL while empty */
    size_t len;     /* body bytes */
    size_t cap;     /* bytes allocated (the mapping's length when mapped) */
    size_t charged; /* bytes charged to the server's body budget */
    bool mapped;    /* an anonymous mapping of its own, else malloc'ed */
};

/* The connection layer's side of a request, set by conn.c on every request it
 * makes: dispatch and the deferred answers reach the connection through it, so
 * that the dependency goes one way (conn.c calls dispatch, never the reverse). */
struct bk__conn_ops {
    /* The answer is final: serialise and write it. */
    void (*finish)(struct bk_req *req);
    /* A request coming back from away (bk__req_resume): when its socket closed
     * meanwhile, frees the connection (request included) and returns true. */
    bool (*gone)(struct bk_req *req);
};

struct bk_req {
    struct conn *conn; /* dispatch never looks inside: it has ops */
    struct bk_req *next_spare; /* in the loop's spares (conn.c), between uses */
    const struct bk__conn_ops *ops;
    bool admin; /* came on the admin listener (set by conn.c) */
    bk_http_server_t *srv;
    struct loop *loop;

    /* The parsed head: strings point into head (NULs written in place). */
    char *head;
    size_t head_cap;
    const char *method, *path, *query;
    int minor; /* HTTP/1.minor */
    struct hdr hdrs[BK_HTTP_MAX_HEADERS];
    size_t nhdrs;
    struct body body;
    bool head_method; /* HEAD: the body is dropped from the answer */

    struct route *route;
    struct route *label; /* names the path in logs and metrics (also for 405) */
    const char *params[BK_HTTP_MAX_PARAMS];
    struct qparam *query_params;
    size_t nquery, query_cap;
    bk__arena_t arena; /* per-request decoded strings; reset between requests */
    json_t *body_json;  /* the parsed body, once bk_req_json or validation read it */
    json_t *query_json; /* bk_req_query_json's object, once made */
    json_t *claims;     /* the verified token's, on a route with auth */
    char id[BK_HTTP_REQUEST_ID_MAX + 1];
    bk_trace_t trace; /* this request's span (mw_request_id.c) */
    void *data;
    int64_t start_ns, deadline_ns;
    size_t mw_ran; /* before hooks that ran (their after hooks run) */
    bk_http_handler_fn offload_fn; /* bk_req_offload's: runs on a worker */
    void *offload_ud;

    /* The answer. */
    int status;
    const char *ctype; /* static or arena */
    struct evbuffer *res_body;
    struct evbuffer *res_headers; /* "Name: value\r\n" lines */
    bool has_cache_control;
    bool has_content_encoding; /* the handler's own: never gzipped on top */
    const char *etag; /* arena: the answer's ETag, written with the head (weak when gzipped) */
    bool keep_alive;
    bool deferred; /* away: answered later on the loop (defer.c owns it) */
    bool cors_done; /* a preflight answer carries its own CORS headers */
    bool expect_continue; /* the client waits for 100 Continue before the body */
    bool chunked;
    bool no_gzip; /* the body is a file (static.c): sent as it is */
};

/* ------------------------------------------------------------------ connections */
enum conn_state {
    C_IDLE,       /* between requests (keep-alive) */
    C_HEAD,       /* reading the request line and headers */
    C_BODY,       /* reading a Content-Length body */
    C_CHUNK_SIZE, /* chunked: a chunk-size line */
    C_CHUNK_DATA, /* chunked: chunk data and its CRLF */
    C_TRAILERS,   /* chunked: trailer lines up to the empty line */
    C_DISPATCHED, /* the handler has the request */
    C_WRITING,    /* the answer is being written */
    C_LINGER      /* answered with close: reading and dropping input until EOF */
};

struct conn {
    struct loop *loop;
    struct bufferevent *bev;
    struct event *timer;
    enum conn_state state;
    size_t scanned;   /* head bytes already searched for CRLFCRLF */
    uint64_t remaining; /* body or chunk bytes still to read */
    uint64_t body_total; /* chunked: body bytes so far */
    size_t ext_bytes;     /* chunked: chunk-extension bytes so far */
    size_t trailer_bytes; /* chunked: trailer section bytes so far */
    size_t ntrailers;     /* chunked: trailer fields so far */
    bool admin;           /* accepted on the admin listener */
    bool tls;             /* a bufferevent_openssl */
    bool close_after; /* close once the answer is written */
    bool dead;        /* the socket is gone; free when the handler is done */
    char client[64];
    /* The request being read, handled or answered; NULL between requests, so
     * that an idle keep-alive connection holds none of its memory (conn.c takes
     * one from the loop's spares when a request's first byte comes). */
    struct bk_req *req;
    struct conn *prev, *next; /* the loop's list */
};

/* ------------------------------------------------------------------ server */
#define BK_HTTP_COUNTER_CACHE 64

struct counter_slot {
    const struct route *label;
    const char *method;
    int status;
    bk_counter_t *c;
};

struct loop {
    bk_http_server_t *srv;
    unsigned index;
    struct event_base *base;
    struct evconnlistener *listener;
    struct evconnlistener *admin_listener; /* loop 0 only, when configured */
    struct event *stop_ev;     /* activated by bk_http_server_stop from any thread */
    struct event *delay_ev;    /* end of shutdown_delay_ns: the listener closes */
    struct event *deadline_ev; /* the graceful-stop deadline */
    struct event *accept_resume_ev; /* accepting paused after an accept error */
    struct event *signal_ev[2];
    pthread_t thread;
    bool thread_started;
    bool stopping; /* stop began: answers close their connections */
    bool closed;   /* the listener is closed (after shutdown_delay_ns) */
    struct conn *conns;
    size_t nconns;
    struct bk_req *spare_reqs; /* requests kept for reuse (conn.c) */
    size_t nspare_reqs;
    size_t outstanding; /* requests and jobs away from the loop (defer.c owns it) */
    /* Request ids: a random per-loop prefix and a counter. */
    char id_prefix[17];
    uint64_t id_seq;
    struct counter_slot counters[BK_HTTP_COUNTER_CACHE];
    /* Date header, cached per second. */
    int64_t date_sec;
    char date[40];
    struct z_stream_s *gz; /* gzip.c's deflate stream, made at the first gzipped answer */
};

struct check {
    char *name;
    bk_http_check_fn fn;
    void *ud;
    int64_t timeout_ns;
};

struct report {
    char *name;
    bk_http_report_fn fn;
    void *ud;
};

struct bk_http_server {
    bk_http_opts_t o; /* strings below are owned copies */
    char *host, *unix_path, *cors_headers;
    char **cors_origins;
    bool cors_any;
    struct rnode *root;
    bk_http_middleware_t *mw;
    size_t nmw;
    struct check *checks;
    size_t nchecks;
    struct report *reports;
    size_t nreports;
    bool has_blocking;
    bool started;
    atomic_bool stopping;
    atomic_bool is_started; /* /health/startup */
    atomic_uint nconns;
    atomic_uint admin_nconns;
    char *admin_host, *admin_unix_path;
    int admin_unix_fd;
    uint16_t admin_port;
    atomic_size_t body_bytes; /* request body bytes held now (body.c) */
    bk_gauge_t *body_gauge;   /* http_buffered_body_bytes */
    bk_workers_t *workers;
    bool own_workers;
    bk_metrics_t *metrics;
    bool own_metrics;
    bk_metric_t *requests_total;
    bk_metric_t *duration;
    bk_histogram_t *unmatched_duration;
    char *static_headers; /* security headers, formatted at start (mw_security.c) */
    size_t static_headers_len;
    /* The server stage: built-ins run for every request, routed or not (chain.c). */
    bk_http_middleware_t stage[4];
    size_t nstage;
    bk_gauge_t *in_flight;
    bk_gauge_t *queue_depth;
    struct loop *loops;
    unsigned nloops;
    uint16_t port;
    int unix_fd;
    pthread_mutex_t mu; /* wait/stop bookkeeping */
    bool waited;
    struct bk__static_mount *static_mounts; /* static.c; freed with the server */
    char *tls_cert_file, *tls_key_file;
    struct ssl_ctx_st *tls_ctx; /* tls.c: NULL without TLS; swapped under tls_mu */
    pthread_mutex_t tls_mu;
    struct route *routes, **routes_tail; /* every route, in the order of registration */
    json_t *openapi_head;     /* bk_http_mount_openapi's info; NULL = not mounted */
    char *openapi_text;       /* the document, rendered at start (openapi.c) */
    size_t openapi_len;
};

/* openapi.c */
/* Copies a route's bk_http_operation_t into r->doc; BK_EINVAL for a bad one. */
BK__HIDDEN int bk__route_doc(struct route *r, const bk_http_operation_t *op);
/* Renders the mounted document (a no-op without a mount), at start. */
BK__HIDDEN int bk__openapi_render(bk_http_server_t *srv, bk_error_t *err);
BK__HIDDEN void bk__openapi_free(bk_http_server_t *srv);

/* conn.c */
BK__HIDDEN void bk__conn_accept(struct loop *loop, evutil_socket_t fd, struct sockaddr *sa,
                                int salen, bool admin);
BK__HIDDEN void bk__conn_free(struct conn *c);
/* Frees the loop's spare requests (at the server's free). */
BK__HIDDEN void bk__loop_free_reqs(struct loop *loop);
/* Graceful stop: closes idle connections (all of them when force). */
BK__HIDDEN void bk__loop_stop_conns(struct loop *loop, bool force);

/* parse.c: parses req->head[0..len) in place; 0 or an HTTP error status. */
BK__HIDDEN int bk__http_parse_head(struct bk_req *req, size_t len);
/* One field line p[0..eol) (header or trailer), NULs written in place; 0 or 400. */
BK__HIDDEN int bk__http_parse_field(char *p, char *eol, struct hdr *out);
/* The weight of one element of a list like Accept or Accept-Encoding, from p
 * (just after its value: its parameters, if any) to end: its q parameter in
 * thousandths, 0 to 1000; 1000 without one; 0 for a q that is not a qvalue
 * (RFC 9110 12.4.2). Other parameters are skipped. */
BK__HIDDEN int bk__http_weight(const char *p, const char *end);
/* Calls fn for each element of the list header name (every line of it, as in
 * Accept or Accept-Encoding): its token (t, n bytes, parameters left out) and
 * its weight (bk__http_weight). */
typedef void (*bk__http_element_fn)(const char *t, size_t n, int weight, void *ud);
BK__HIDDEN void bk__http_each_element(const bk_req_t *req, const char *name, bk__http_element_fn fn, void *ud);
/* A chunk-size line without its CRLF (RFC 9112 7.1): the size, or -1 when the
 * line is malformed; *ext_len gets the length of its chunk extensions. */
BK__HIDDEN int64_t bk__http_parse_chunk_line(const char *line, size_t len, size_t *ext_len);
BK__HIDDEN int bk__pct_decode(bk__arena_t *a, const char *s, size_t len, bool plus_space,
                              const char **out);
BK__HIDDEN bool bk__is_tchar(unsigned char c);
/* request.c: the next header line named name (case-insensitive) from *i on,
 * *i moved past it; NULL when there is none. For fields that are lists over
 * several lines: for (size_t i = 0; (h = bk__req_header_next(req, n, &i));) */
BK__HIDDEN const struct hdr *bk__req_header_next(const struct bk_req *req, const char *name, size_t *i);
/* OWS (RFC 9110, 5.6.3): a space or a tab. */
static inline bool bk__ows(char c) { return c == ' ' || c == '\t'; }
/* gzip.c: gzips the answer when the server and the client want it (on the
 * loop's thread, before the head is written); true when it did. */
BK__HIDDEN bool bk__gzip_answer(struct loop *loop, struct bk_req *req);
BK__HIDDEN void bk__gzip_free(struct loop *loop);
/* tls.c: the context from the options' files (nothing without them); a new
 * connection's SSL from the current context; the context freed. */
BK__HIDDEN int bk__tls_init(bk_http_server_t *srv, bk_error_t *err);
BK__HIDDEN struct ssl_st *bk__tls_ssl(bk_http_server_t *srv);
BK__HIDDEN void bk__tls_free(bk_http_server_t *srv);
/* static.c */
struct bk__static_mount;
BK__HIDDEN void bk__static_free(struct bk__static_mount *m);
/* The decoded, checked path below a mount of raw[0..len) (what follows the
 * prefix, still percent-encoded) into out[cap]: segments joined by '/', "" for
 * the mount's directory; *dir when it ends with '/'. 0, or the status to
 * answer: 400 (a bad escape, NUL, not UTF-8), 404 ("." or ".." or a dotfile,
 * too long). */
BK__HIDDEN int bk__static_resolve(const char *raw, size_t len, bool dotfiles, char *out, size_t cap, bool *dir);
/* The Content-Type of a file name by its extension. */
BK__HIDDEN const char *bk__static_type(const char *name);
/* date.c: IMF-fixdate, locale-independent. */
#define BK__HTTP_DATE_LEN 29
BK__HIDDEN void bk__http_date(int64_t sec, char out[BK__HTTP_DATE_LEN + 1]);
/* Only IMF-fixdate (the obsolete RFC 850 and asctime forms are not read). */
BK__HIDDEN bool bk__http_date_parse(const char *s, int64_t *sec);
BK__HIDDEN bool bk__is_json_type(const char *ctype);
BK__HIDDEN bool bk__host_ok(const char *value);

/* body.c: appends n bytes of in to the request's body, charged to the server's
 * body budget; hint is the whole body's size when known, else 0. BK_OK, BK_EBUSY
 * when the budget is spent, BK_ENOMEM. Release gives the memory and the charge back. */
BK__HIDDEN int bk__body_take(struct bk_req *req, struct evbuffer *in, size_t n, size_t hint);
BK__HIDDEN void bk__body_release(struct bk_req *req);

/* defer.c: the one way a request leaves its loop and comes back. bk__req_defer
 * (on the loop) says the answer comes later: the loop stays up for it.
 * bk__req_resume (on the loop, when the answer can be made) undoes it and checks
 * the connection: false when the client went away meanwhile, the request is
 * then freed and must not be touched. bk__loop_hold/release count a job of the
 * loop's that carries no request (a readiness check), for the same reason. */
BK__HIDDEN void bk__req_defer(struct bk_req *req);
BK__HIDDEN bool bk__req_resume(struct bk_req *req);
/* Whether the request was deferred (it stays so until bk__req_defer_reset, when
 * the connection resets the request for the next one). */
static inline bool bk__req_is_deferred(const struct bk_req *req)
{
    return req->deferred;
}
BK__HIDDEN void bk__req_defer_reset(struct bk_req *req);
BK__HIDDEN void bk__loop_hold(struct loop *loop);
BK__HIDDEN void bk__loop_release(struct loop *loop);
/* Ends a closed loop once no connection and nothing away is left on it. */
BK__HIDDEN void bk__loop_maybe_exit(struct loop *loop);

/* chain.c: the middleware chain. bk__chain_build flattens a route's chain at
 * start; bk__chain_run runs it and the handler, on the handler's thread. */
BK__HIDDEN int bk__chain_build(bk_http_server_t *srv, struct route *r);
BK__HIDDEN void bk__chain_run(struct bk_req *req);
/* The server stage (srv->stage), built at start. */
BK__HIDDEN int bk__chain_build_server(bk_http_server_t *srv);
/* The one chain loop, for both: the before hooks of mw[0..n) in order until one
 * answers (true then); *ran gets how many ran (the one that answered counts),
 * whose after hooks are owed. bk__chain_after runs the after hooks of
 * mw[0..ran) in reverse order. */
BK__HIDDEN bool bk__chain_before(struct bk_req *req, const bk_http_middleware_t *mw, size_t n,
                                 size_t *ran);
BK__HIDDEN void bk__chain_after(struct bk_req *req, const bk_http_middleware_t *mw, size_t ran);

/* mw_*.c: the route built-ins, each a middleware table whose ud is the route. */
BK__HIDDEN bk_http_middleware_t bk__mw_ratelimit(struct route *r);
BK__HIDDEN bk_http_middleware_t bk__mw_auth(struct route *r);
BK__HIDDEN bk_http_middleware_t bk__mw_permission(struct route *r);
BK__HIDDEN bk_http_middleware_t bk__mw_validate(struct route *r);
BK__HIDDEN bk_http_middleware_t bk__mw_owner(struct route *r);
/* mw_*.c: the server stage's built-ins, whose ud is the server. */
BK__HIDDEN bk_http_middleware_t bk__mw_request_id(bk_http_server_t *srv);
BK__HIDDEN int bk__mw_security(bk_http_server_t *srv, bk_http_middleware_t *out);
BK__HIDDEN bk_http_middleware_t bk__mw_cors(bk_http_server_t *srv);
/* The CORS preflight answer for an OPTIONS to node (mw_cors.c). */
BK__HIDDEN void bk__cors_preflight(struct bk_req *req, const struct rnode *node);

/* dispatch.c */
BK__HIDDEN void bk__dispatch(struct bk_req *req);
/* Answers a request that failed before routing (framing, limits) and completes it. */
BK__HIDDEN void bk__dispatch_error(struct bk_req *req, int status, const char *detail);
/* The same for a library code (bk_res_error: its status, "code", Retry-After). */
BK__HIDDEN void bk__dispatch_error_code(struct bk_req *req, int code, const char *detail);
/* Adds the built-in headers, logs, counts and hands the answer to the connection. */
BK__HIDDEN void bk__req_complete(struct bk_req *req);
BK__HIDDEN void bk__req_reset(struct bk_req *req);

/* response.c */
BK__HIDDEN void bk__res_serialize(struct bk_req *req, struct evbuffer *out);

/* server.c: the timeval libevent wants for a duration, rounded up to the
 * microsecond so that a non-zero duration never becomes 0 (0 for ns <= 0). */
BK__HIDDEN struct timeval bk__http_timeval(int64_t ns);
/* server.c: a GET route for the server's own endpoints (no user middleware). */
BK__HIDDEN int bk__http_route_internal(bk_http_server_t *srv, const char *path,
                                       bk_http_handler_fn fn);

#endif
