/* backendd's configuration: backendd.conf(5). A file of "key = value" lines, each
 * key overridable from the environment (BACKENDD_<KEY>), checked whole: every
 * problem is collected, one line each ("FILE:LINE: key: reason"), so that
 * --check-config reports them all at once. Values of secret keys are never
 * quoted in a message.
 * SPDX-License-Identifier: MIT */
#ifndef BACKENDD_CONF_H
#define BACKENDD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONF_MAX_LIST 16 /* entries of a repeatable key */

/* One JWT key: "jwt_key = KID ALG FILE". */
struct conf_jwt_key {
    char *kid, *alg, *file;
};

/* A rate: "5/15m" (count per period). */
struct conf_rate {
    unsigned count;
    int64_t period_ns;
};

struct conf {
    char *listen[CONF_MAX_LIST]; /* "host:port", "[v6]:port" */
    size_t nlisten;
    char *admin_listen;          /* NULL: none */
    char *tls_cert_file, *tls_key_file;
    unsigned io_threads, worker_threads;
    unsigned worker_queue;       /* requests waiting for a worker at most, beyond: 503 */
    char *database_url, *database_read_url;
    unsigned database_pool_size;
    bool database_transaction_pooling; /* database_url is a pooler in transaction mode */
    char *memcached_servers;     /* NULL or "": the in-process cache */
    char *memcached_prefix;      /* before every key: deployments sharing servers */
    int64_t memcached_near_ttl_ns; /* 0: no near cache in front of memcached */
    struct conf_jwt_key jwt_keys[CONF_MAX_LIST];
    size_t njwt_keys;
    char *jwt_signing_kid;       /* NULL: the last jwt_key */
    char *jwt_issuer, *jwt_audience;
    int64_t access_token_ttl_ns, refresh_token_ttl_ns, refresh_retention_ns;
    char *rbac_policy_file;      /* NULL: the built-in policy */
    char *cors_origins[CONF_MAX_LIST];
    size_t ncors_origins;
    struct conf_rate login_rate_email, login_rate_address;
    char *log_level;
    char *log_file, *access_log_file; /* NULL: standard error; "off" for no access log */
    unsigned argon2_memory_kib, argon2_iterations, argon2_parallelism;
    int64_t product_cache_ttl_ns;
    char *payment_url, *shipping_url, *notify_url; /* the order saga's services; orders need all three */
    int64_t upstream_timeout_ns;      /* per attempt of a call to one of them */
    int64_t upstream_breaker_open_ns; /* how long an open breaker refuses calls */
    int64_t order_wait_ns;            /* POST /orders waits this long for the saga's outcome */
    int64_t idempotency_retention_ns; /* an order's Idempotency-Key is kept this long */
    unsigned saga_threads;            /* saga steps running at once */
    int64_t job_lease_ns;             /* a saga step's or job's claim: another instance takes it over after */
    bool docs;
    char *docs_dir;
    char *state_dir;
    char *file;                  /* the file read (NULL when none) */
};

/* One problem found: where and why. */
struct conf_problem {
    char *where; /* "FILE:LINE", "BACKENDD_KEY" or "FILE" */
    char *message;
};

struct conf_problems {
    struct conf_problem *items;
    size_t n;
};

/* Sets the defaults. */
void conf_defaults(struct conf *c);
/* Reads path (NULL: none) and then the environment (envp, NULL-terminated
 * "NAME=value" strings) over the defaults, then checks what is required (dev: the
 * --dev mode, where no JWT key is needed). Returns the number of problems, each
 * in *problems (freed with conf_problems_free); c holds what could be read. */
size_t conf_load(struct conf *c, const char *path, char *const *envp, bool dev, struct conf_problems *problems);
void conf_free(struct conf *c);
void conf_problems_free(struct conf_problems *p);
/* "15m" -> 900 s in *ns: an integer and a unit (ms, s, m, h, d). */
bool conf_parse_duration(const char *s, int64_t *ns);

#endif
