/* backendd.conf: one table of keys (name, kind, place, bounds, default), read
 * from a file and then from the environment, every problem collected.
 * SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* vasprintf */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backend/core.h>
#include <backend/log.h>

#ifndef BACKENDD_DOCS_DIR
#define BACKENDD_DOCS_DIR "/usr/share/backendd/docs"
#endif
#ifndef BACKENDD_STATE_DIR
#define BACKENDD_STATE_DIR "/var/lib/backendd"
#endif

enum kind { K_STR, K_SECRET, K_UINT, K_DURATION, K_BOOL, K_LIST, K_LISTEN, K_JWT_KEY, K_RATE, K_LOG_LEVEL };

struct key {
    const char *name;
    enum kind kind;
    size_t off;     /* of the field in struct conf; for lists, of the array (the count follows it) */
    size_t count;   /* lists: of the count */
    int64_t min, max;
    const char *def; /* parsed like a value; NULL: none */
};

#define F(field) offsetof(struct conf, field)
#define DAY (86400 * BK_NSEC_PER_SEC)
static const struct key KEYS[] = {
    {"listen", K_LISTEN, F(listen), F(nlisten), 0, 0, "127.0.0.1:8080"},
    {"admin_listen", K_LISTEN, F(admin_listen), 0, 0, 0, NULL},
    {"tls_cert_file", K_STR, F(tls_cert_file), 0, 0, 0, NULL},
    {"tls_key_file", K_STR, F(tls_key_file), 0, 0, 0, NULL},
    {"io_threads", K_UINT, F(io_threads), 0, 0, 256, "0"},
    {"worker_threads", K_UINT, F(worker_threads), 0, 0, 1024, "0"},
    {"worker_queue", K_UINT, F(worker_queue), 0, 1, 1000000, "1024"},
    {"database_url", K_SECRET, F(database_url), 0, 0, 0, NULL},
    {"database_read_url", K_SECRET, F(database_read_url), 0, 0, 0, NULL},
    {"database_pool_size", K_UINT, F(database_pool_size), 0, 1, 1000, "16"},
    {"database_transaction_pooling", K_BOOL, F(database_transaction_pooling), 0, 0, 0, "off"},
    {"memcached_servers", K_STR, F(memcached_servers), 0, 0, 0, NULL},
    {"memcached_prefix", K_STR, F(memcached_prefix), 0, 0, 0, "backendd:"},
    {"memcached_near_ttl", K_DURATION, F(memcached_near_ttl_ns), 0, 0, 3600 * BK_NSEC_PER_SEC, "0s"},
    {"jwt_key", K_JWT_KEY, F(jwt_keys), F(njwt_keys), 0, 0, NULL},
    {"jwt_signing_kid", K_STR, F(jwt_signing_kid), 0, 0, 0, NULL},
    {"jwt_issuer", K_STR, F(jwt_issuer), 0, 0, 0, "backendd"},
    {"jwt_audience", K_STR, F(jwt_audience), 0, 0, 0, "backendd"},
    {"access_token_ttl", K_DURATION, F(access_token_ttl_ns), 0, BK_NSEC_PER_SEC, DAY, "15m"},
    {"refresh_token_ttl", K_DURATION, F(refresh_token_ttl_ns), 0, 60 * BK_NSEC_PER_SEC, 3650 * DAY, "30d"},
    {"refresh_retention", K_DURATION, F(refresh_retention_ns), 0, 0, 3650 * DAY, "7d"},
    {"rbac_policy_file", K_STR, F(rbac_policy_file), 0, 0, 0, NULL},
    {"cors_origins", K_LIST, F(cors_origins), F(ncors_origins), 0, 0, NULL},
    {"login_rate_email", K_RATE, F(login_rate_email), 0, 0, 0, "5/15m"},
    {"login_rate_address", K_RATE, F(login_rate_address), 0, 0, 0, "50/15m"},
    {"log_level", K_LOG_LEVEL, F(log_level), 0, 0, 0, "info"},
    {"log_file", K_STR, F(log_file), 0, 0, 0, NULL},
    {"access_log_file", K_STR, F(access_log_file), 0, 0, 0, NULL},
    {"argon2_memory_kib", K_UINT, F(argon2_memory_kib), 0, 8, 4194304, "19456"},
    {"argon2_iterations", K_UINT, F(argon2_iterations), 0, 1, 100, "2"},
    {"argon2_parallelism", K_UINT, F(argon2_parallelism), 0, 1, 64, "1"},
    {"product_cache_ttl", K_DURATION, F(product_cache_ttl_ns), 0, BK_NSEC_PER_MSEC, DAY, "60s"},
    {"payment_url", K_STR, F(payment_url), 0, 0, 0, NULL},
    {"shipping_url", K_STR, F(shipping_url), 0, 0, 0, NULL},
    {"notify_url", K_STR, F(notify_url), 0, 0, 0, NULL},
    {"upstream_timeout", K_DURATION, F(upstream_timeout_ns), 0, 10 * BK_NSEC_PER_MSEC, 60 * BK_NSEC_PER_SEC, "2s"},
    {"upstream_breaker_open", K_DURATION, F(upstream_breaker_open_ns), 0, 100 * BK_NSEC_PER_MSEC, DAY, "5s"},
    {"order_wait", K_DURATION, F(order_wait_ns), 0, 0, 60 * BK_NSEC_PER_SEC, "10s"},
    {"idempotency_retention", K_DURATION, F(idempotency_retention_ns), 0, 60 * BK_NSEC_PER_SEC, 3650 * DAY, "24h"},
    {"saga_threads", K_UINT, F(saga_threads), 0, 1, 256, "8"},
    {"job_lease", K_DURATION, F(job_lease_ns), 0, BK_NSEC_PER_SEC, 3600 * BK_NSEC_PER_SEC, "15s"},
    {"docs", K_BOOL, F(docs), 0, 0, 0, "on"},
    {"docs_dir", K_STR, F(docs_dir), 0, 0, 0, BACKENDD_DOCS_DIR},
    {"state_dir", K_STR, F(state_dir), 0, 0, 0, BACKENDD_STATE_DIR},
};
#define NKEYS (sizeof KEYS / sizeof *KEYS)

static void problem(struct conf_problems *p, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct conf_problems *p, const char *where, const char *fmt, ...)
{
    struct conf_problem *items = realloc(p->items, (p->n + 1) * sizeof *items);
    if (items == NULL)
        abort(); /* a configuration is read at start: nothing to save */
    p->items = items;
    va_list ap;
    va_start(ap, fmt);
    char *msg;
    if (vasprintf(&msg, fmt, ap) < 0 || (items[p->n].where = strdup(where)) == NULL)
        abort();
    va_end(ap);
    items[p->n++].message = msg;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        abort();
    return d;
}

bool conf_parse_duration(const char *s, int64_t *ns)
{
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    static const struct { const char *unit; int64_t ns; } UNITS[] = {
        {"ms", BK_NSEC_PER_MSEC}, {"s", BK_NSEC_PER_SEC}, {"m", 60 * BK_NSEC_PER_SEC},
        {"h", 3600 * BK_NSEC_PER_SEC}, {"d", DAY},
    };
    for (size_t i = 0; errno == 0 && i < sizeof UNITS / sizeof *UNITS; i++)
        if (strcmp(end, UNITS[i].unit) == 0) {
            if (n > (unsigned long long)(INT64_MAX / UNITS[i].ns))
                return false;
            *ns = (int64_t)n * UNITS[i].ns;
            return true;
        }
    return false;
}

/* host:port with a port of 0..65535; a v6 host in brackets. */
static bool listen_ok(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return false;
    if (s[0] == '[' && colon[-1] != ']')
        return false;
    if (s[0] != '[' && memchr(s, ':', (size_t)(colon - s)) != NULL)
        return false; /* a v6 literal needs its brackets */
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5)
        return false;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return false;
    return atoi(p) <= 65535;
}

static void *field(struct conf *c, const struct key *k)
{
    return (char *)c + k->off;
}

/* Stores value under key k; false (with a problem) when it is not one of k's. */
static bool set_value(struct conf *c, const struct key *k, const char *value, const char *where,
                      struct conf_problems *p)
{
    void *f = field(c, k);
    switch (k->kind) {
    case K_STR:
    case K_SECRET:
        free(*(char **)f);
        *(char **)f = value[0] ? xstrdup(value) : NULL;
        return true;
    case K_LOG_LEVEL: {
        bk_log_level_t level;
        if (bk_log_level_parse(value, &level) != BK_OK) {
            problem(p, where, "%s: \"%s\" is not a level (debug, info, warn, error)", k->name, value);
            return false;
        }
        free(*(char **)f);
        *(char **)f = xstrdup(value);
        return true;
    }
    case K_UINT: {
        char *end;
        errno = 0;
        long long n = strtoll(value, &end, 10);
        if (!isdigit((unsigned char)value[0]) || *end || errno || n < k->min || n > k->max) {
            problem(p, where, "%s: \"%s\" is not a whole number from %" PRId64 " to %" PRId64, k->name, value,
                    k->min, k->max);
            return false;
        }
        *(unsigned *)f = (unsigned)n;
        return true;
    }
    case K_DURATION: {
        int64_t ns;
        if (!conf_parse_duration(value, &ns)) {
            problem(p, where, "%s: \"%s\" is not a duration (a number and ms, s, m, h or d: \"15m\")", k->name,
                    value);
            return false;
        }
        if (ns < k->min || ns > k->max) {
            problem(p, where, "%s: %s is out of range", k->name, value);
            return false;
        }
        *(int64_t *)f = ns;
        return true;
    }
    case K_BOOL:
        if (strcmp(value, "on") == 0 || strcmp(value, "true") == 0 || strcmp(value, "yes") == 0)
            *(bool *)f = true;
        else if (strcmp(value, "off") == 0 || strcmp(value, "false") == 0 || strcmp(value, "no") == 0)
            *(bool *)f = false;
        else {
            problem(p, where, "%s: \"%s\" is not on or off", k->name, value);
            return false;
        }
        return true;
    case K_RATE: {
        struct conf_rate *r = f;
        char *end;
        errno = 0;
        unsigned long n = strtoul(value, &end, 10);
        int64_t ns;
        if (!isdigit((unsigned char)value[0]) || *end != '/' || errno || n == 0 || n > 1000000 ||
            !conf_parse_duration(end + 1, &ns) || ns <= 0) {
            problem(p, where, "%s: \"%s\" is not a rate (a count per duration: \"5/15m\")", k->name, value);
            return false;
        }
        r->count = (unsigned)n;
        r->period_ns = ns;
        return true;
    }
    case K_LISTEN:
        if (!listen_ok(value)) {
            problem(p, where, "%s: \"%s\" is not host:port (\"127.0.0.1:8080\", \"[::1]:8080\")", k->name, value);
            return false;
        }
        if (k->count == 0) {
            free(*(char **)f);
            *(char **)f = xstrdup(value);
            return true;
        }
        __attribute__((fallthrough)); /* a list of addresses */
    case K_LIST: {
        char **list = f;
        size_t *n = (size_t *)((char *)c + k->count);
        if (*n == CONF_MAX_LIST) {
            problem(p, where, "%s: more than %d entries", k->name, CONF_MAX_LIST);
            return false;
        }
        list[(*n)++] = xstrdup(value);
        return true;
    }
    case K_JWT_KEY: {
        struct conf_jwt_key *keys = f;
        size_t *n = (size_t *)((char *)c + k->count);
        char kid[257], alg[16], file[4097], extra;
        if (sscanf(value, "%256s %15s %4096s %c", kid, alg, file, &extra) != 3) {
            problem(p, where, "%s: not \"KID ALG FILE\" (\"2026-12 ES256 /etc/backendd/jwt.pem\")", k->name);
            return false;
        }
        static const char *const ALGS[] = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
                                           "ES256", "ES384"};
        bool known = false;
        for (size_t i = 0; i < sizeof ALGS / sizeof *ALGS; i++)
            known = known || strcmp(alg, ALGS[i]) == 0;
        if (!known) {
            problem(p, where, "%s: \"%s\" is not an algorithm (HS256, RS256, ES256, ...)", k->name, alg);
            return false;
        }
        for (size_t i = 0; i < *n; i++)
            if (strcmp(keys[i].kid, kid) == 0) {
                problem(p, where, "%s: the kid \"%s\" is there twice", k->name, kid);
                return false;
            }
        if (*n == CONF_MAX_LIST) {
            problem(p, where, "%s: more than %d keys", k->name, CONF_MAX_LIST);
            return false;
        }
        keys[(*n)++] = (struct conf_jwt_key){xstrdup(kid), xstrdup(alg), xstrdup(file)};
        return true;
    }
    }
    return false;
}

static bool repeatable(const struct key *k)
{
    return k->count != 0;
}

/* Empties a repeatable key (before the environment replaces it). */
static void clear_list(struct conf *c, const struct key *k)
{
    size_t *n = (size_t *)((char *)c + k->count);
    for (size_t i = 0; i < *n; i++) {
        if (k->kind == K_JWT_KEY) {
            struct conf_jwt_key *j = (struct conf_jwt_key *)field(c, k) + i;
            free(j->kid), free(j->alg), free(j->file);
        } else {
            free(((char **)field(c, k))[i]);
        }
    }
    *n = 0;
}

void conf_defaults(struct conf *c)
{
    memset(c, 0, sizeof *c);
    struct conf_problems none = {0};
    for (size_t i = 0; i < NKEYS; i++)
        if (KEYS[i].def != NULL)
            set_value(c, &KEYS[i], KEYS[i].def, "default", &none);
    conf_problems_free(&none);
}

static const struct key *find_key(const char *name, size_t len)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strlen(KEYS[i].name) == len && memcmp(KEYS[i].name, name, len) == 0)
            return &KEYS[i];
    return NULL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static void read_file(struct conf *c, const char *path, struct conf_problems *p)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        problem(p, path, "cannot be read: %s", strerror(errno));
        return;
    }
    unsigned seen[NKEYS] = {0}; /* the line a key was set on */
    bool listed[NKEYS] = {false}; /* a repeatable key's defaults replaced */
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    while (getline(&line, &cap, f) != -1) {
        lineno++;
        char where[4200];
        snprintf(where, sizeof where, "%s:%u", path, lineno);
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            problem(p, where, "not \"key = value\"");
            continue;
        }
        *eq = '\0';
        char *name = trim(s), *value = trim(eq + 1);
        const struct key *k = find_key(name, strlen(name));
        if (k == NULL) {
            problem(p, where, "%s: unknown key", name);
            continue;
        }
        size_t i = (size_t)(k - KEYS);
        if (!repeatable(k) && seen[i]) {
            problem(p, where, "%s: set already on line %u", k->name, seen[i]);
            continue;
        }
        if (repeatable(k) && !listed[i]) {
            clear_list(c, k);
            listed[i] = true;
        }
        seen[i] = lineno;
        set_value(c, k, value, where, p);
    }
    free(line);
    fclose(f);
}

static void read_env(struct conf *c, char *const *envp, struct conf_problems *p)
{
    for (size_t e = 0; envp != NULL && envp[e] != NULL; e++) {
        const char *s = envp[e];
        if (strncmp(s, "BACKENDD_", 9) != 0)
            continue;
        const char *eq = strchr(s, '=');
        if (eq == NULL)
            continue;
        char where[128], name[64];
        size_t len = (size_t)(eq - s - 9);
        snprintf(where, sizeof where, "%.*s", (int)(eq - s) < 100 ? (int)(eq - s) : 100, s);
        if (len >= sizeof name) {
            problem(p, where, "unknown key");
            continue;
        }
        for (size_t i = 0; i < len; i++)
            name[i] = (char)tolower((unsigned char)s[9 + i]);
        const struct key *k = find_key(name, len);
        if (k == NULL) {
            problem(p, where, "%.*s: unknown key", (int)len, name);
            continue;
        }
        if (!repeatable(k)) {
            set_value(c, k, eq + 1, where, p);
            continue;
        }
        /* A list: comma-separated, replacing the file's. */
        clear_list(c, k);
        char *copy = xstrdup(eq + 1);
        for (char *save, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save))
            if (*trim(item))
                set_value(c, k, trim(item), where, p);
        free(copy);
    }
}

size_t conf_load(struct conf *c, const char *path, char *const *envp, bool dev, struct conf_problems *problems)
{
    conf_defaults(c);
    *problems = (struct conf_problems){0};
    if (path != NULL) {
        c->file = xstrdup(path);
        read_file(c, path, problems);
    }
    read_env(c, envp, problems);
    const char *where = path ? path : "backendd";
    if (c->database_url == NULL)
        problem(problems, where, "database_url is required (a libpq connection string or URI)");
    if (c->njwt_keys == 0 && !dev)
        problem(problems, where, "jwt_key is required (\"KID ALG FILE\"), or --dev for a generated one");
    if (c->nlisten == 0)
        problem(problems, where, "listen is required (host:port)");
    if ((c->tls_cert_file == NULL) != (c->tls_key_file == NULL))
        problem(problems, where, "tls_cert_file and tls_key_file go together");
    const char *const urls[] = {c->payment_url, c->shipping_url, c->notify_url};
    const char *const url_keys[] = {"payment_url", "shipping_url", "notify_url"};
    size_t nurls = 0;
    for (size_t i = 0; i < 3; i++) {
        nurls += urls[i] != NULL;
        if (urls[i] != NULL && strncmp(urls[i], "http://", 7) != 0 && strncmp(urls[i], "https://", 8) != 0)
            problem(problems, where, "%s: not an http:// or https:// URL", url_keys[i]);
    }
    if (nurls != 0 && nurls != 3)
        problem(problems, where, "payment_url, shipping_url and notify_url go together (orders need all three)");
    if (c->jwt_signing_kid != NULL) {
        bool found = false;
        for (size_t i = 0; i < c->njwt_keys; i++)
            found = found || strcmp(c->jwt_keys[i].kid, c->jwt_signing_kid) == 0;
        if (!found)
            problem(problems, where, "jwt_signing_kid: no jwt_key has the kid \"%s\"", c->jwt_signing_kid);
    }
    return problems->n;
}

void conf_free(struct conf *c)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &KEYS[i];
        if (repeatable(k))
            clear_list(c, k);
        else if (k->kind == K_STR || k->kind == K_SECRET || k->kind == K_LISTEN || k->kind == K_LOG_LEVEL)
            free(*(char **)field(c, k));
    }
    free(c->file);
    memset(c, 0, sizeof *c);
}

void conf_problems_free(struct conf_problems *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->items[i].where);
        free(p->items[i].message);
    }
    free(p->items);
    *p = (struct conf_problems){0};
}
