/* JSON Schema internals shared by the files of lib/schema/. Hidden, never part of
 * the public API.
 * SPDX-License-Identifier: MIT */
#ifndef BK_SCHEMA_INT_H
#define BK_SCHEMA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define BK__SCHEMA_HIDDEN __attribute__((visibility("hidden")))
#else
#define BK__SCHEMA_HIDDEN
#endif

/* ------------------------------------------------------------------ formats */
/*
 * The formats that assertion mode checks. bk__format_lookup() maps a format name
 * to its id (BK_FMT_UNKNOWN for every other name: unknown formats always pass).
 */
typedef enum bk__format {
    BK_FMT_UNKNOWN = 0,
    BK_FMT_DATE_TIME,
    BK_FMT_DATE,
    BK_FMT_TIME,
    BK_FMT_DURATION,
    BK_FMT_EMAIL,
    BK_FMT_HOSTNAME,
    BK_FMT_IPV4,
    BK_FMT_IPV6,
    BK_FMT_URI,
    BK_FMT_URI_REFERENCE,
    BK_FMT_UUID,
    BK_FMT_JSON_POINTER,
    BK_FMT_RELATIVE_JSON_POINTER,
    BK_FMT_REGEX,
} bk__format_t;

BK__SCHEMA_HIDDEN bk__format_t bk__format_lookup(const char *name);
/* The canonical name of f ("date-time"); "" for BK_FMT_UNKNOWN. */
BK__SCHEMA_HIDDEN const char *bk__format_name(bk__format_t f);
/* True when s[0..len) (UTF-8, may contain NUL bytes) is a valid f. */
BK__SCHEMA_HIDDEN bool bk__format_check(bk__format_t f, const char *s, size_t len);

/* ------------------------------------------------------------------ regular expressions */
/*
 * ECMAScript (ECMA-262, "u" flag) regular expressions as JSON Schema's pattern,
 * patternProperties and the regex format use them, run on PCRE2 in UTF mode (JIT
 * when available). The pattern is translated where ECMAScript and PCRE2 differ.
 * Matching is unanchored ("search"), as in ECMAScript's RegExp.prototype.test.
 */
typedef struct bk__regex bk__regex_t;

/*
 * Compiles pattern[0..len). match_limit bounds the work of one match (PCRE2's
 * match limit; 0 = a default of 1,000,000). NULL when the pattern is not a valid
 * ECMAScript regex (or out of memory); err (if not NULL) then receives a message
 * of at most errsz bytes, NUL-terminated.
 */
BK__SCHEMA_HIDDEN bk__regex_t *bk__regex_compile(const char *pattern, size_t len, uint32_t match_limit,
                                                 char *err, size_t errsz);
BK__SCHEMA_HIDDEN void bk__regex_free(bk__regex_t *re);

/* Per-call scratch space for matching; one per thread at a time (not shared). */
typedef struct bk__regex_scratch bk__regex_scratch_t;
BK__SCHEMA_HIDDEN bk__regex_scratch_t *bk__regex_scratch_new(void);
BK__SCHEMA_HIDDEN void bk__regex_scratch_free(bk__regex_scratch_t *sc);

/*
 * 1 when re matches somewhere in subject[0..len) (UTF-8), 0 when it does not,
 * -1 when the match could not be decided within the limits (match limit, depth,
 * JIT stack) or subject is not valid UTF-8. re is read-only here: one compiled
 * regex may be matched from many threads at once, each with its own scratch.
 */
BK__SCHEMA_HIDDEN int bk__regex_match(const bk__regex_t *re, bk__regex_scratch_t *sc,
                                      const char *subject, size_t len);

/* True when pattern[0..len) is a valid ECMAScript regex (the "regex" format). */
BK__SCHEMA_HIDDEN bool bk__regex_valid(const char *pattern, size_t len);

/* ------------------------------------------------------------------ small tools */
#include <jansson.h>

#include "backend/schema.h"
#include "core/arena_int.h"
#include "core/map_int.h" /* bk__map_t: the hash map the compiler's tables use */

/* ------------------------------------------------------------------ URIs (RFC 3986) */
/*
 * Resolves reference ref against base (section 5.2, dot segments removed); base
 * may be "" (no base: a relative result stays relative). An empty fragment ("x#")
 * is dropped. malloc'ed; NULL on ENOMEM.
 */
BK__SCHEMA_HIDDEN char *bk__uri_resolve(const char *base, const char *ref);
/* True when uri has a scheme (is absolute, a fragment allowed). */
BK__SCHEMA_HIDDEN bool bk__uri_has_scheme(const char *uri);

/* ------------------------------------------------------------------ JSON values */
/* JSON Schema equality: numbers by value (1 == 1.0), objects regardless of order. */
BK__SCHEMA_HIDDEN bool bk__json_equal(const json_t *a, const json_t *b);
/* A hash consistent with bk__json_equal. */
BK__SCHEMA_HIDDEN uint64_t bk__json_hash(const json_t *v);
/* True for integers and for reals with no fraction (1.0). */
BK__SCHEMA_HIDDEN bool bk__json_is_integral(const json_t *v);

/* A number as a schema keyword holds it: exact when it is an integer. */
typedef struct bk__num {
    bool is_int;
    json_int_t i;
    double d;
} bk__num_t;
BK__SCHEMA_HIDDEN void bk__num_of(const json_t *v, bk__num_t *out);
/* <0, 0, >0 as the number v compares with n (exact for two integers). */
BK__SCHEMA_HIDDEN int bk__num_cmp(const json_t *v, const bk__num_t *n);

/* A multipleOf divisor, as decimal digits: mant * 10^exp (mant > 0). */
typedef struct bk__step {
    bk__num_t num;
    int64_t mant;
    int exp;
} bk__step_t;
/* False when d is not a positive finite number. */
BK__SCHEMA_HIDDEN bool bk__step_of(const json_t *v, bk__step_t *out);
/* Exact decimal test: 19.99 is a multiple of 0.01, 0.3 of 0.1, 1e308 not of 0.123456789. */
BK__SCHEMA_HIDDEN bool bk__is_multiple(const json_t *v, const bk__step_t *step);

/* ------------------------------------------------------------------ compiled schemas */
enum bk__type_bit {
    BK_T_NULL = 1 << 0,
    BK_T_BOOLEAN = 1 << 1,
    BK_T_OBJECT = 1 << 2,
    BK_T_ARRAY = 1 << 3,
    BK_T_NUMBER = 1 << 4,
    BK_T_INTEGER = 1 << 5,
    BK_T_STRING = 1 << 6,
};

typedef enum bk__op {
    OP_TYPE,
    OP_ENUM,
    OP_CONST,
    OP_MULTIPLE_OF,
    OP_MAXIMUM,
    OP_EXCLUSIVE_MAXIMUM,
    OP_MINIMUM,
    OP_EXCLUSIVE_MINIMUM,
    OP_MAX_LENGTH,
    OP_MIN_LENGTH,
    OP_PATTERN,
    OP_FORMAT,
    OP_MAX_ITEMS,
    OP_MIN_ITEMS,
    OP_UNIQUE_ITEMS,
    OP_CONTAINS,
    OP_MAX_PROPERTIES,
    OP_MIN_PROPERTIES,
    OP_REQUIRED,
    OP_DEPENDENT_REQUIRED,
    OP_PROPERTIES, /* properties, patternProperties and additionalProperties in one pass */
    OP_PROPERTY_NAMES,
    OP_DEPENDENT_SCHEMAS,
    OP_ITEMS, /* prefixItems and items (draft-07: items and additionalItems) */
    OP_ALL_OF,
    OP_ANY_OF,
    OP_ONE_OF,
    OP_NOT,
    OP_IF, /* if, then, else */
    OP_REF,
    OP_DYNAMIC_REF,
    OP_UNEVALUATED_ITEMS,
    OP_UNEVALUATED_PROPERTIES,
} bk__op_t;

typedef struct bk__node bk__node_t;
typedef struct bk__resource bk__resource_t;

typedef struct bk__prop {
    const char *name;
    size_t len;
    bk__node_t *node;
} bk__prop_t;

typedef struct bk__pattern_prop {
    const char *source;
    bk__regex_t *re;
    bk__node_t *node;
} bk__pattern_prop_t;

typedef struct bk__dependency {
    const char *name;  /* when this property is present */
    const char **required; /* these must be too (dependentRequired) */
    size_t nrequired;
    bk__node_t *node;  /* or the instance must match this (dependentSchemas) */
} bk__dependency_t;

typedef struct bk__kw {
    bk__op_t op;
    const char *name; /* the keyword, for error paths and messages */
    union {
        uint32_t types;
        const json_t *value; /* const; enum (an array) */
        bk__num_t num;
        bk__step_t step;
        uint64_t count;
        struct {
            const char *source;
            bk__regex_t *re;
        } pattern;
        bk__format_t format;
        struct {
            bk__node_t *node;
            uint64_t min, max; /* max UINT64_MAX: none */
        } contains;
        struct {
            const char **names;
            size_t n;
        } required;
        struct {
            bk__dependency_t *deps;
            size_t n;
        } deps;
        struct {
            bk__prop_t *props; /* in the schema's order: errors come in that order */
            const bk__prop_t **by_name; /* the same, sorted for binary search */
            size_t nprops;
            bk__pattern_prop_t *patterns;
            size_t npatterns;
            bk__node_t *additional;
            const char *additional_kw; /* NULL when there is no additionalProperties */
        } props;
        struct {
            bk__node_t **prefix;
            size_t nprefix;
            const char *prefix_kw; /* "prefixItems" (2020-12) or "items" (draft-07) */
            bk__node_t *rest;
            const char *rest_kw;   /* "items" (2020-12) or "additionalItems" (draft-07) */
        } items;
        struct {
            bk__node_t **nodes;
            size_t n;
        } list;
        struct {
            bk__node_t *if_, *then_, *else_;
        } cond;
        struct {
            bk__node_t *target;
            const char *anchor; /* $dynamicRef that is dynamic: the interned anchor name */
        } ref;
        bk__node_t *node; /* not, propertyNames, unevaluated* */
    } u;
} bk__kw_t;

struct bk__node {
    bk__kw_t *kws;
    size_t nkws;
    signed char boolean;       /* -1: an object schema; 0: false; 1: true */
    bool collects;             /* has unevaluated*: evaluates its keywords collecting annotations */
    bk__resource_t *resource;  /* the schema resource it belongs to (dynamic scope) */
    const char *location;      /* JSON pointer in its document, for compile errors */
    const json_t *default_value; /* its "default", for bk_schema_coerce */
    bool visiting, done;       /* loop detection at compile time */
};

typedef struct bk__dynamic_anchor {
    const char *name; /* interned: compare pointers */
    const json_t *schema;
    bk__node_t *node;
} bk__dynamic_anchor_t;

struct bk__resource {
    const char *uri;
    bk__dynamic_anchor_t *anchors;
    size_t nanchors, cap;
    bk__resource_t *next; /* all resources of a compiled schema */
};

struct bk_schema {
    bk__arena_t arena;
    bk__node_t *root;
    json_t **docs; /* references held: the schema and the registry documents used */
    size_t ndocs;
    bk__regex_t **regexes;
    size_t nregexes;
    bk__resource_t *resources;
    unsigned max_errors, max_depth, max_recursion;
    int draft; /* the dialect the root is read under (bk_schema_draft) */
};

/* A registry's document, NULL when it has none under uri (registry.c). */
BK__SCHEMA_HIDDEN json_t *bk__registry_get(const bk_schema_registry_t *reg, const char *uri, size_t len);
/* The built-in registry (builtin.c): the meta-schema documents under their $id
 * (draft-07's without its empty fragment), filled on the first call, read-only,
 * living as long as the process. NULL when memory ran out at the first call.
 * compile.c searches it after the caller's registry, so a caller's document under
 * the same URI wins; meta.c compiles from it. */
BK__SCHEMA_HIDDEN const bk_schema_registry_t *bk__registry_builtin(void);

#endif
