/*
 * libbackend schema: JSON Schema (draft 2020-12 and draft-07) validation on jansson.
 *
 * Layer 1 (primitives): pure computation, no I/O. Compile a schema once into an
 * immutable form, then validate any number of instances with it, from any number
 * of threads at once:
 *
 *   bk_schema_t *s;
 *   bk_error_t err;
 *   if (bk_schema_compile(doc, NULL, &s, &err) != BK_OK) ... err.message, err.pointer
 *   bk_schema_errors_t *errs = NULL;
 *   if (bk_schema_validate(s, body, BK_SCHEMA_ALL_ERRORS, &errs) == BK_EINVAL)
 *       ... bk_schema_errors_count(errs), bk_schema_errors_get(errs, i)
 *   bk_schema_errors_free(errs);
 *   bk_schema_free(s);
 *
 * $ref never fetches anything: it reaches the schema's own resources, documents
 * the host registered in a bk_schema_registry_t, and the built-in 2020-12 and
 * draft-07 meta-schemas.
 * SPDX-License-Identifier: MIT
 */
#ifndef BACKEND_SCHEMA_H
#define BACKEND_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <backend/core.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bk_schema bk_schema_t;                   /* compiled; immutable, thread-safe */
typedef struct bk_schema_registry bk_schema_registry_t; /* documents by URI */
typedef struct bk_schema_errors bk_schema_errors_t;     /* the errors of one validation */

/* Dialects. A schema's "$schema" wins over the option. */
enum {
    BK_SCHEMA_DRAFT_2020_12 = 202012,
    BK_SCHEMA_DRAFT_7 = 7,
};

/* ------------------------------------------------------------------ registry */
/*
 * Documents that $ref may name, by absolute URI ("https://example.com/a.json").
 * A URI the schema does not contain is searched for in the caller's registry
 * first, then among the built-in meta-schemas: a document registered under a
 * built-in meta-schema's URI takes its place for $ref (a $schema naming draft
 * 2020-12 or draft-07 always means the built-in dialect).
 * Not thread-safe while being filled; read-only (and shareable) once compiling
 * starts. A compiled schema keeps what it uses, so the registry may be freed after
 * bk_schema_compile().
 */
BK_EXPORT int bk_schema_registry_new(bk_schema_registry_t **out);
BK_EXPORT void bk_schema_registry_free(bk_schema_registry_t *reg);
/* Registers doc under uri (absolute, without a fragment; copied). doc is
 * borrowed: the registry takes a reference of its own, and doc must not be
 * modified while the registry or a schema compiled from it lives. BK_EEXIST when
 * uri is taken, BK_EINVAL when it is not absolute, BK_ENOMEM. No bk_error_t: the
 * code says which. */
BK_EXPORT int bk_schema_registry_add(bk_schema_registry_t *reg, const char *uri, const json_t *doc);

/* ------------------------------------------------------------------ compile */
/* A field left 0 means its default, so a struct cleared by other means works too. */
typedef struct bk_schema_opts {
    int draft;                 /* when the schema has no $schema; default BK_SCHEMA_DRAFT_2020_12 */
    bool format_assert;        /* "format" asserts instead of annotating; default false */
    const char *base_uri;      /* the schema's retrieval URI; default none; copied */
    const bk_schema_registry_t *registry; /* documents $ref may reach; NULL for none; borrowed for the call */
    unsigned max_errors;       /* errors collected per validation at most; default 100 */
    unsigned max_depth;        /* instance nesting validated at most; default 128 */
    unsigned max_recursion;    /* nested schema evaluations at most; default 1000 */
    uint32_t regex_match_limit; /* work bound of one pattern match; default 1000000 */
    uint64_t reserved_[8];     /* room to grow (HACKING.md); zeroed by bk_schema_opts_init */
} bk_schema_opts_t;

/* Clears *opts and sets the defaults. */
BK_EXPORT void bk_schema_opts_init(bk_schema_opts_t *opts);

/*
 * Compiles schema (an object or a boolean) into *out: resolves every $ref,
 * compiles every pattern, and refuses $ref loops that would never consume the
 * instance. opts may be NULL for the defaults. schema is borrowed: *out takes a
 * reference of its own to it and to each registry document it uses, which must
 * not be modified while *out lives (compiling never modifies them).
 * BK_EINVAL for an invalid schema, BK_ENOMEM. err (NULL allowed) gets the
 * message and, in err->pointer, the JSON pointer of the place that is wrong
 * ("/properties/a/minimum"); when that place is in a registered document or a
 * meta-schema rather than in schema, err->file holds that document's URI
 * ("" for schema itself).
 */
BK_EXPORT int bk_schema_compile(const json_t *schema, const bk_schema_opts_t *opts, bk_schema_t **out,
                                bk_error_t *err);
BK_EXPORT void bk_schema_free(bk_schema_t *s);
/* The document s was compiled from (borrowed: it lives as long as s; never to be
 * modified), and the draft its root is read under (BK_SCHEMA_DRAFT_2020_12 or
 * BK_SCHEMA_DRAFT_7: its $schema's, else bk_schema_opts_t.draft's). For a host
 * that shows the schema it checks against (bk_http_mount_openapi). NULL and 0 for
 * a NULL s. Thread-safe. */
BK_EXPORT const json_t *bk_schema_document(const bk_schema_t *s);
BK_EXPORT int bk_schema_draft(const bk_schema_t *s);

/*
 * The built-in meta-schema of draft (BK_SCHEMA_DRAFT_2020_12 or BK_SCHEMA_DRAFT_7),
 * compiled once per process; not to be freed. NULL for another draft or on ENOMEM.
 */
BK_EXPORT const bk_schema_t *bk_schema_metaschema(int draft);

/* ------------------------------------------------------------------ validate */
/* Flags of bk_schema_validate(). */
enum {
    BK_SCHEMA_ALL_ERRORS = 1 << 0, /* collect every error (up to max_errors), not the first */
};

/* One error. The strings live as long as the bk_schema_errors_t they came from. */
typedef struct bk_schema_error {
    const char *instance_location; /* JSON pointer into the instance: "/items/0/qty" */
    const char *keyword_location;  /* JSON pointer along the evaluation path: "/properties/items/items/$ref/minimum" */
    const char *keyword;           /* "minimum"; "depth" when the instance nests too deeply */
    const char *message;           /* plain English: "must be >= 1" */
} bk_schema_error_t;

/*
 * Validates instance (borrowed for the call, never modified). BK_OK when valid; BK_EINVAL when not, and *errors (when
 * errors is not NULL) receives the errors, which the caller frees; BK_ENOMEM.
 * A missing required property is reported at the property's own location
 * ("/address/zip"), as a client fixing the document looks for it.
 * Thread-safe: any number of threads may validate with one schema at once.
 */
BK_EXPORT int bk_schema_validate(const bk_schema_t *s, const json_t *instance, unsigned flags,
                                 bk_schema_errors_t **errors);

/* Flags of bk_schema_coerce(). */
enum {
    BK_SCHEMA_COERCE_STRINGS = 1 << 0, /* string values to the types the schema declares */
    BK_SCHEMA_FILL_DEFAULTS = 1 << 1,  /* absent properties get their "default" */
};

/*
 * Prepares instance for validation the way FastAPI and Pydantic do, into *out, a
 * new document (the caller decrefs it); instance is borrowed and left untouched:
 *  - BK_SCHEMA_COERCE_STRINGS: for an object instance (query parameters, path
 *    parameters), each member that is a string while its property's schema
 *    declares no "string" type becomes an integer, number, boolean or null when
 *    it reads as one ("42", "1.5", "true"/"false", "null"); a member that is an
 *    array (a repeated query parameter) has its string items converted by the
 *    property's "items" type. Anything that does not read as a declared type is
 *    left alone for validation to report.
 *  - BK_SCHEMA_FILL_DEFAULTS: each property the schema declares with a "default"
 *    and the instance lacks gets a copy of it, in nested objects too.
 * Properties are those of the root schema and of the schemas it applies in place
 * through $ref and allOf. An instance that is not an object comes back as a copy.
 * BK_OK, BK_EINVAL, BK_ENOMEM (*out is then NULL). Thread-safe for a shared
 * schema.
 */
BK_EXPORT int bk_schema_coerce(const bk_schema_t *s, const json_t *instance, unsigned flags, json_t **out);

BK_EXPORT size_t bk_schema_errors_count(const bk_schema_errors_t *errs);
/* The i-th error (0-based), NULL when i is out of range. */
BK_EXPORT const bk_schema_error_t *bk_schema_errors_get(const bk_schema_errors_t *errs, size_t i);
/* The errors as a JSON array of {instanceLocation, keywordLocation, keyword, message}
 * (a new reference; NULL on ENOMEM). */
BK_EXPORT json_t *bk_schema_errors_json(const bk_schema_errors_t *errs);
BK_EXPORT void bk_schema_errors_free(bk_schema_errors_t *errs);

#ifdef __cplusplus
}
#endif
#endif /* BACKEND_SCHEMA_H */
