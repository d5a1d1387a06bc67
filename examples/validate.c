/*
 * validate: checks JSON documents against a JSON Schema (draft 2020-12 or draft-07)
 * with libbackend's schema module. The schema is compiled once and every DATA file is
 * validated with it.
 *
 *   validate [--draft 2020-12|7] [--format-assert] [--remote URI=FILE]...
 *            [--remote-dir BASEURI=DIR]... SCHEMA.json DATA.json...
 *
 * Exits 0 when every DATA file is valid. Exits 1 when one is not, printing one JSON
 * line per invalid file on stdout (nothing for a valid one):
 *
 *   {"file":"order.json","valid":false,"errors":[{"instanceLocation":"/qty",
 *    "keywordLocation":"/properties/qty/minimum","keyword":"minimum","message":"must be at least 1"}]}
 *
 * Exits 2, with a "validate: ..." message on stderr, on a usage error, a file that
 * cannot be read or parsed, or an invalid schema (the remaining DATA files are still
 * checked after one that cannot be read).
 *
 * $ref never fetches anything: --remote registers FILE's JSON under URI, --remote-dir
 * every *.json under DIR (recursively, not through symlinked directories) as BASEURI
 * followed by its path relative to DIR. The schema's base URI is its own absolute
 * file:// URI, so "--remote-dir file:///abs/dir/=/abs/dir" lets relative $refs reach
 * its sibling files. --draft picks the dialect of a schema without "$schema";
 * --format-assert makes "format" an assertion instead of an annotation.
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <backend/core.h>
#include <backend/schema.h>

enum { EXIT_OK = 0, EXIT_INVALID = 1, EXIT_TROUBLE = 2 };

/* One --remote or --remote-dir argument, in command-line order. */
typedef struct remote {
    int kind; /* 'r' or 'R' */
    const char *arg;
} remote_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: validate [--draft 2020-12|7] [--format-assert] [--remote URI=FILE]...\n"
               "                [--remote-dir BASEURI=DIR]... SCHEMA.json DATA.json...\n");
    if (f != stdout)
        return;
    fprintf(f, "\n"
               "  --draft 2020-12|7         dialect of a schema without \"$schema\" (default 2020-12)\n"
               "  --format-assert           \"format\" asserts instead of annotating\n"
               "  --remote URI=FILE         $ref may reach FILE's JSON as URI\n"
               "  --remote-dir BASEURI=DIR  $ref may reach every *.json under DIR as BASEURI\n"
               "                            followed by its path relative to DIR\n"
               "  --help                    print this text\n"
               "\n"
               "Exit status: 0 all valid; 1 one is invalid (its errors as a JSON line on\n"
               "stdout); 2 usage error, unreadable file or invalid schema.\n");
}

static int oom(void)
{
    fprintf(stderr, "validate: %s\n", bk_strerror(BK_ENOMEM));
    return EXIT_TROUBLE;
}

/* Reads the whole file at path into a new buffer of *len bytes; NULL, with a message,
 * when it cannot. Reading first lets a pipe be parsed twice. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "validate: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = cap <= SIZE_MAX / 2 ? realloc(buf, cap *= 2) : NULL;
            if (!bigger)
                free(buf);
            buf = bigger;
        }
    }
    if (!buf) {
        fprintf(stderr, "validate: %s: %s\n", path, bk_strerror(BK_ENOMEM));
    } else if (ferror(f)) {
        fprintf(stderr, "validate: %s: %s\n", path, strerror(errno));
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Reads the JSON document (any value) at path; NULL, with a message, when it cannot.
 * Integers too big for json_int_t are read as reals rather than refused. */
static json_t *load(const char *path)
{
    size_t len;
    char *text = slurp(path, &len);
    if (!text)
        return NULL;
    json_error_t e;
    size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_t *doc = json_loadb(text, len, flags, &e);
    if (!doc && strstr(e.text, "too big"))
        doc = json_loadb(text, len, flags | JSON_DECODE_INT_AS_REAL, &e);
    free(text);
    if (!doc)
        fprintf(stderr, "validate: %s:%d:%d: %s\n", path, e.line, e.column, e.text);
    return doc;
}

/* prefix + s (percent-encoded, as a URI path) + suffix, in a new string. */
static char *uri_cat(const char *prefix, const char *s, const char *suffix)
{
    static const char safe[] = "-._~!$&'()*+,;=:@/";
    static const char hex[] = "0123456789ABCDEF";
    size_t np = strlen(prefix), ns = strlen(s);
    char *out = malloc(np + 3 * ns + strlen(suffix) + 1);
    if (!out)
        return NULL;
    char *o = out + np;
    memcpy(out, prefix, np);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr(safe, *p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    strcpy(o, suffix);
    return out;
}

static int add_file(bk_schema_registry_t *reg, const char *uri, const char *path)
{
    json_t *doc = load(path);
    if (!doc)
        return EXIT_TROUBLE;
    int rc = bk_schema_registry_add(reg, uri, doc);
    json_decref(doc);
    if (rc == BK_EEXIST)
        fprintf(stderr, "validate: %s: the URI is registered twice\n", uri);
    else if (rc == BK_EINVAL)
        fprintf(stderr, "validate: %s: not an absolute URI without a fragment\n", uri);
    else if (rc != BK_OK)
        fprintf(stderr, "validate: %s: %s\n", uri, bk_strerror(rc));
    return rc == BK_OK ? EXIT_OK : EXIT_TROUBLE;
}

static int add_dir(bk_schema_registry_t *reg, const char *uri, const char *dir);

/* Registers dir/name when it is a *.json file, and what it holds when it is a directory
 * (not one reached through a symlink, which could loop); uri is dir's URI. */
static int add_entry(bk_schema_registry_t *reg, const char *uri, const char *dir, const char *name)
{
    size_t len = strlen(name);
    char *path = malloc(strlen(dir) + len + 2), *sub = NULL;
    if (!path)
        return oom();
    sprintf(path, "%s/%s", dir, name);
    struct stat st;
    int status = EXIT_OK;
    if (lstat(path, &st) != 0) {
        fprintf(stderr, "validate: %s: %s\n", path, strerror(errno));
        status = EXIT_TROUBLE;
    } else if (S_ISDIR(st.st_mode)) {
        sub = uri_cat(uri, name, "/");
        status = sub ? add_dir(reg, sub, path) : oom();
    } else if (len > 5 && strcmp(name + len - 5, ".json") == 0 && stat(path, &st) == 0 &&
               S_ISREG(st.st_mode)) {
        sub = uri_cat(uri, name, "");
        status = sub ? add_file(reg, sub, path) : oom();
    }
    free(sub);
    free(path);
    return status;
}

/* Registers every *.json under dir, whose own URI is uri (ending in '/'). */
static int add_dir(bk_schema_registry_t *reg, const char *uri, const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort); /* sorted: the same first error every time */
    if (n < 0) {
        fprintf(stderr, "validate: %s: %s\n", dir, strerror(errno));
        return EXIT_TROUBLE;
    }
    int status = EXIT_OK;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (status == EXIT_OK && strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
            status = add_entry(reg, uri, dir, name);
        free(names[i]);
    }
    free(names);
    return status;
}

/* Handles one --remote URI=FILE or --remote-dir BASEURI=DIR; splits at the first '='. */
static int add_remote(bk_schema_registry_t *reg, const remote_t *r)
{
    const char *eq = strchr(r->arg, '=');
    if (!eq || eq == r->arg || !eq[1]) {
        fprintf(stderr, "validate: --%s wants %s, not \"%s\"\n", r->kind == 'r' ? "remote" : "remote-dir",
                r->kind == 'r' ? "URI=FILE" : "BASEURI=DIR", r->arg);
        return EXIT_TROUBLE;
    }
    size_t n = (size_t)(eq - r->arg);
    char *uri = malloc(n + 2);
    if (!uri)
        return oom();
    memcpy(uri, r->arg, n);
    uri[n] = '\0';
    int status;
    if (r->kind == 'r') {
        status = add_file(reg, uri, eq + 1);
    } else {
        if (uri[n - 1] != '/')
            strcpy(uri + n, "/");
        status = add_dir(reg, uri, eq + 1);
    }
    free(uri);
    return status;
}

/* Loads and compiles the schema at path, with the documents of remotes reachable. */
static int compile(const char *path, const remote_t *remotes, size_t nremotes, bk_schema_opts_t *o,
                   bk_schema_t **out)
{
    bk_schema_registry_t *reg = NULL;
    int rc = bk_schema_registry_new(&reg);
    if (rc != BK_OK) {
        fprintf(stderr, "validate: %s\n", bk_strerror(rc));
        return EXIT_TROUBLE;
    }
    int status = EXIT_OK;
    for (size_t i = 0; status == EXIT_OK && i < nremotes; i++)
        status = add_remote(reg, &remotes[i]);

    json_t *doc = status == EXIT_OK ? load(path) : NULL;
    char *real = doc ? realpath(path, NULL) : NULL; /* none for a pipe: no base URI then */
    char *base = real ? uri_cat("file://", real, "") : NULL;
    if (real && !base) {
        oom();
    } else if (doc) {
        bk_error_t err;
        o->base_uri = base;
        o->registry = reg;
        rc = bk_schema_compile(doc, o, out, &err);
        o->base_uri = NULL;
        o->registry = NULL;
        /* err.file names a --remote document when the fault is in one. */
        if (rc != BK_OK)
            fprintf(stderr, "validate: %s: invalid schema: %s\n", err.file[0] ? err.file : path, err.message);
    }
    free(real);
    free(base);
    json_decref(doc); /* the compiled schema keeps what it uses */
    bk_schema_registry_free(reg);
    return *out ? EXIT_OK : EXIT_TROUBLE;
}

/* Validates the document at path; prints its errors as one JSON line when invalid. */
static int check(const bk_schema_t *s, const char *path)
{
    json_t *doc = load(path);
    if (!doc)
        return EXIT_TROUBLE;
    bk_schema_errors_t *errs = NULL;
    int rc = bk_schema_validate(s, doc, BK_SCHEMA_ALL_ERRORS, &errs);
    json_decref(doc);
    if (rc != BK_EINVAL) { /* valid, or out of memory */
        bk_schema_errors_free(errs);
        if (rc != BK_OK)
            fprintf(stderr, "validate: %s: %s\n", path, bk_strerror(rc));
        return rc == BK_OK ? EXIT_OK : EXIT_TROUBLE;
    }
    json_error_t e;
    json_t *line = json_pack_ex(&e, 0, "{s:s, s:b, s:o}", "file", path, "valid", 0, "errors",
                                bk_schema_errors_json(errs));
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    if (text)
        puts(text);
    else
        fprintf(stderr, "validate: %s: invalid, but the errors cannot be shown: %s\n", path,
                line ? bk_strerror(BK_ENOMEM) : e.text);
    free(text);
    json_decref(line);
    bk_schema_errors_free(errs);
    return text ? EXIT_INVALID : EXIT_TROUBLE;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"draft", required_argument, NULL, 'd'},
        {"format-assert", no_argument, NULL, 'f'},
        {"remote", required_argument, NULL, 'r'},
        {"remote-dir", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bk_schema_opts_t o;
    bk_schema_opts_init(&o);
    remote_t *remotes = calloc((size_t)argc, sizeof *remotes);
    size_t nremotes = 0;
    if (!remotes)
        return oom();
    opterr = 0; /* our messages name the program "validate", not libtool's lt-validate */
    int ch;
    while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (ch == 'd' && strcmp(optarg, "2020-12") == 0) {
            o.draft = BK_SCHEMA_DRAFT_2020_12;
        } else if (ch == 'd' && strcmp(optarg, "7") == 0) {
            o.draft = BK_SCHEMA_DRAFT_7;
        } else if (ch == 'f') {
            o.format_assert = true;
        } else if (ch == 'r' || ch == 'R') {
            remotes[nremotes++] = (remote_t){ch, optarg};
        } else if (ch == 'h') {
            usage(stdout);
            free(remotes);
            return EXIT_OK;
        } else {
            if (ch == 'd')
                fprintf(stderr, "validate: unknown draft \"%s\" (2020-12 or 7)\n", optarg);
            else if (ch == ':')
                fprintf(stderr, "validate: option %s needs an argument\n", argv[optind - 1]);
            else if (optopt && !strchr("dfrRh", optopt)) /* a short one, maybe in a cluster */
                fprintf(stderr, "validate: bad option -%c\n", optopt);
            else
                fprintf(stderr, "validate: bad option %s\n", argv[optind - 1]);
            usage(stderr);
            free(remotes);
            return EXIT_TROUBLE;
        }
    }
    if (argc - optind < 2) {
        fprintf(stderr, "validate: a schema and at least one document are needed\n");
        usage(stderr);
        free(remotes);
        return EXIT_TROUBLE;
    }

    bk_schema_t *schema = NULL;
    int status = compile(argv[optind], remotes, nremotes, &o, &schema);
    free(remotes);
    for (int i = optind + 1; schema && i < argc; i++) {
        int st = check(schema, argv[i]);
        status = st > status ? st : status;
    }
    bk_schema_free(schema);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "validate: cannot write: %s\n", strerror(errno));
        status = EXIT_TROUBLE;
    }
    return status;
}
