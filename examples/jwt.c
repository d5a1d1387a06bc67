/*
 * jwt: issues and verifies JSON Web Tokens with libbackend's auth module.
 *
 *   jwt issue  --key-file F --alg ALG [--kid K] [--ttl S] [--iss X] [--aud Y]
 *              [--sub Z] [--claim k=v]...
 *   jwt verify --key-file F --alg ALG [--kid K] [--iss X] [--aud Y] [--leeway S]
 *              [--require CLAIM]... TOKEN
 *
 * Several --key-file/--alg/--kid groups form a key set: each --key-file starts a new
 * key, and the --alg and --kid after it belong to that key (in a set of more than one,
 * every key needs a --kid). issue signs with the first key; verify picks the key the
 * token's kid names, or the only one. An HMAC key file (HS256, HS384, HS512) holds the
 * raw secret bytes, all of them, a final newline included; an RSA or EC key file
 * (RS256, RS384, RS512, ES256, ES384) is PEM, a private key to sign, a private or
 * public key to verify.
 *
 * issue prints the token on stdout. Each --claim k=v adds the claim k: v read as JSON
 * when it parses as a JSON value (42, true, null, ["a","b"], {"x":1}, "quoted"),
 * otherwise the string v as it is. The registered claims (iat, exp, nbf, iss, aud,
 * sub, jti) come from the options: a --claim naming one is a usage error, and so is
 * a claim given twice.
 *
 * verify prints the token's claims as one line of compact JSON and exits 0, or prints
 * the name of the reason it was refused (BK_EJWT_EXPIRED, BK_EJWT_SIGNATURE, ...)
 * and exits 1.
 *
 * Exit status: 0 done; 1 the token was refused (verify) or could not be made
 * (issue), with the code's name; 2 a usage error or a key that cannot be loaded, with
 * a "jwt: ..." message on stderr.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <backend/auth.h>
#include <backend/core.h>

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_TROUBLE = 2 };

/* The claims bk_jwt_issue sets itself, which --claim may not name, and the option
 * that sets each, if any. */
static const struct {
    const char *name, *option;
} REGISTERED[] = {{"iat", NULL},     {"exp", "--ttl"}, {"nbf", NULL}, {"iss", "--iss"},
                  {"aud", "--aud"}, {"sub", "--sub"}, {"jti", NULL}};

/* One --key-file with the --alg and --kid that followed it. */
typedef struct key_arg {
    const char *file, *alg, *kid;
} key_arg_t;

/* Everything the command line said. */
typedef struct args {
    bool issue;
    key_arg_t *keys;
    size_t nkeys;
    const char *iss, *aud, *sub;
    int64_t ttl_s, leeway_s;
    bool has_ttl;
    const char **claims; /* "k=v" */
    size_t nclaims;
    const char **required; /* NULL-terminated */
    size_t nrequired;
    const char *token;
} args_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: jwt issue  --key-file F --alg ALG [--kid K] [--ttl S] [--iss X] [--aud Y]\n"
               "                  [--sub Z] [--claim k=v]...\n"
               "       jwt verify --key-file F --alg ALG [--kid K] [--iss X] [--aud Y] [--leeway S]\n"
               "                  [--require CLAIM]... TOKEN\n");
    if (f != stdout)
        return;
    fprintf(f, "\n"
               "  --key-file F     starts a key: raw secret bytes (HS*) or PEM (RS*, ES*);\n"
               "                   repeat it, each with its --alg and --kid, for a key set\n"
               "  --alg ALG        the key's algorithm: HS256 HS384 HS512 RS256 RS384 RS512\n"
               "                   ES256 ES384\n"
               "  --kid K          the key's id (needed in a set of more than one key)\n"
               "  --ttl S          issue: seconds until exp (default 900)\n"
               "  --iss X          issue: the iss claim; verify: the iss required\n"
               "  --aud Y          issue: the aud claim; verify: an aud required\n"
               "  --sub Z          issue: the sub claim\n"
               "  --claim k=v      issue: a claim, v as JSON when it parses, else a string\n"
               "  --leeway S       verify: seconds of clock skew allowed (default 0)\n"
               "  --require CLAIM  verify: a claim that must be present\n"
               "  --help           print this text\n"
               "\n"
               "issue signs with the first key and prints the token. verify prints the claims\n"
               "as one JSON line.\n"
               "Exit status: 0 done; 1 token refused or not made (the code's name on stdout);\n"
               "2 usage error or a key that cannot be loaded.\n");
}

__attribute__((format(printf, 1, 0))) static void say(const char *fmt, va_list ap)
{
    fputs("jwt: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

/* Prints "jwt: " and the message on stderr; returns EXIT_TROUBLE. */
__attribute__((format(printf, 1, 2))) static int trouble(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    return EXIT_TROUBLE;
}

/* The same, followed by the usage text. */
__attribute__((format(printf, 1, 2))) static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    usage(stderr);
    return EXIT_TROUBLE;
}

/* A whole number of seconds, decimal digits only, in [min, INT64_MAX / 2]. */
static bool seconds(const char *s, int64_t min, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    /* At most what fits in nanoseconds: the library takes durations as *_ns. */
    if (*s < '0' || *s > '9' || errno || *end || v < min || v > INT64_MAX / BK_NSEC_PER_SEC)
        return false;
    *out = (int64_t)v;
    return true;
}

/* Reads the options after the subcommand into a; EXIT_OK or a status to exit with. */
static int parse(int argc, char **argv, args_t *a)
{
    static const struct option longopts[] = {
        {"key-file", required_argument, NULL, 'f'}, {"alg", required_argument, NULL, 'a'},
        {"kid", required_argument, NULL, 'k'},      {"ttl", required_argument, NULL, 't'},
        {"iss", required_argument, NULL, 'i'},      {"aud", required_argument, NULL, 'u'},
        {"sub", required_argument, NULL, 's'},      {"claim", required_argument, NULL, 'c'},
        {"leeway", required_argument, NULL, 'l'},   {"require", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *cmd = argv[0];
    opterr = 0; /* our messages name the program "jwt", not libtool's lt-jwt */
    optind = 1;
    int ch, idx = 0; /* set by getopt_long for every option it knows: all are long */
    while ((ch = getopt_long(argc, argv, ":", longopts, &idx)) != -1) {
        key_arg_t *last = a->nkeys ? &a->keys[a->nkeys - 1] : NULL;
        /* Options of the other subcommand. */
        if ((a->issue && (ch == 'l' || ch == 'r')) || (!a->issue && (ch == 't' || ch == 's' || ch == 'c')))
            return bad_usage("--%s is not an option of %s", longopts[idx].name, cmd);
        switch (ch) {
        case 'f':
            a->keys[a->nkeys++] = (key_arg_t){optarg, NULL, NULL};
            break;
        case 'a':
        case 'k':
            if (!last)
                return bad_usage("--%s comes after the --key-file it belongs to", longopts[idx].name);
            if ((ch == 'a' && last->alg) || (ch == 'k' && last->kid))
                return bad_usage("--%s given twice for the key file %s", longopts[idx].name, last->file);
            *(ch == 'a' ? &last->alg : &last->kid) = optarg;
            break;
        case 't':
            if (!seconds(optarg, 1, &a->ttl_s))
                return bad_usage("--ttl wants a whole number of seconds, at least 1, not \"%s\"", optarg);
            a->has_ttl = true;
            break;
        case 'l':
            if (!seconds(optarg, 0, &a->leeway_s))
                return bad_usage("--leeway wants a whole number of seconds, at least 0, not \"%s\"", optarg);
            break;
        case 'i':
            a->iss = optarg;
            break;
        case 'u':
            a->aud = optarg;
            break;
        case 's':
            a->sub = optarg;
            break;
        case 'c':
            if (!strchr(optarg, '=') || optarg[0] == '=')
                return bad_usage("--claim wants k=v, not \"%s\"", optarg);
            for (size_t i = 0; i < sizeof REGISTERED / sizeof REGISTERED[0]; i++)
                if (strncmp(optarg, REGISTERED[i].name, 3) == 0 && optarg[3] == '=')
                    return bad_usage("--claim %s: a registered claim, which issue sets itself%s%s",
                                     REGISTERED[i].name, REGISTERED[i].option ? " from " : "",
                                     REGISTERED[i].option ? REGISTERED[i].option : "");
            a->claims[a->nclaims++] = optarg;
            break;
        case 'r':
            a->required[a->nrequired++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return -1; /* exit 0 */
        case ':':
            return bad_usage("option %s needs an argument", argv[optind - 1]);
        default:
            if (optopt)
                return bad_usage("bad option -%c", optopt);
            return bad_usage("bad option %s", argv[optind - 1]);
        }
    }
    if (a->nkeys == 0)
        return bad_usage("%s needs a --key-file", cmd);
    for (size_t i = 0; i < a->nkeys; i++)
        if (!a->keys[i].alg)
            return bad_usage("the key file %s has no --alg", a->keys[i].file);
    if (a->issue && optind != argc)
        return bad_usage("issue takes no operand (\"%s\")", argv[optind]);
    if (!a->issue && argc - optind != 1)
        return bad_usage("verify takes one TOKEN");
    a->token = a->issue ? NULL : argv[optind];
    return EXIT_OK;
}

/* The key set the arguments name; the first key signs when issuing. */
static int load_keys(const args_t *a, bk_jwt_keys_t **out)
{
    bk_jwt_keys_t *keys = NULL;
    int rc = bk_jwt_keys_new(&keys);
    if (rc != BK_OK)
        return trouble("%s", bk_strerror(rc));
    for (size_t i = 0; i < a->nkeys; i++) {
        const key_arg_t *k = &a->keys[i];
        bk_error_t err;
        rc = bk_jwt_keys_add_file(keys, k->kid, k->alg, k->file, a->issue && i == 0, &err);
        if (rc == BK_OK)
            continue;
        if (rc == BK_EINVAL && a->nkeys > 1 && !k->kid)
            trouble("%s: every key of a set of more than one needs a --kid", k->file);
        else /* the library says why: bad PEM, too short a secret, the wrong curve... */
            trouble("%s: %s", k->file, err.message);
        bk_jwt_keys_free(keys);
        return EXIT_TROUBLE;
    }
    *out = keys;
    return EXIT_OK;
}

/* The --claim arguments as an object; NULL (with a message) on a usage error. */
static json_t *claims_object(const args_t *a)
{
    json_t *obj = json_object();
    if (!obj) {
        trouble("%s", bk_strerror(BK_ENOMEM));
        return NULL;
    }
    for (size_t i = 0; i < a->nclaims; i++) {
        const char *arg = a->claims[i], *eq = strchr(arg, '=');
        char *name = strndup(arg, (size_t)(eq - arg));
        json_t *v = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        if (!v)
            v = json_string(eq + 1); /* NULL when not UTF-8 */
        int status = EXIT_OK;
        if (!name) {
            status = trouble("%s", bk_strerror(BK_ENOMEM));
        } else if (!v) {
            status = bad_usage("--claim %s: the value is not UTF-8", name);
        } else if (json_object_get(obj, name)) {
            status = bad_usage("--claim %s given twice", name);
        } else if (json_object_set(obj, name, v) != 0) {
            status = bad_usage("--claim %s: the name is not UTF-8", name);
        }
        json_decref(v);
        free(name);
        if (status != EXIT_OK) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

static int issue(const args_t *a, const bk_jwt_keys_t *keys)
{
    json_t *claims = claims_object(a);
    if (!claims)
        return EXIT_TROUBLE;
    bk_jwt_issue_opts_t o;
    bk_jwt_issue_opts_init(&o);
    o.iss = a->iss;
    o.aud = a->aud;
    o.sub = a->sub;
    if (a->has_ttl)
        o.ttl_ns = a->ttl_s * BK_NSEC_PER_SEC;
    char *token = NULL;
    bk_error_t err;
    int rc = bk_jwt_issue(keys, &o, claims, &token, &err);
    json_decref(claims);
    if (rc != BK_OK) {
        /* BK_EINVAL: a --claim names a registered claim (err.pointer says which), or
         * a string is not UTF-8. */
        printf("%s\n", bk_err_name(rc));
        fprintf(stderr, "jwt: cannot issue: %s\n", err.message);
        return EXIT_REFUSED;
    }
    printf("%s\n", token);
    free(token);
    return EXIT_OK;
}

static int verify(const args_t *a, const bk_jwt_keys_t *keys)
{
    bk_jwt_verify_opts_t o;
    bk_jwt_verify_opts_init(&o);
    o.iss = a->iss;
    o.aud = a->aud;
    o.leeway_ns = a->leeway_s * BK_NSEC_PER_SEC;
    o.required = a->nrequired ? a->required : NULL;
    json_t *claims = NULL;
    int rc = bk_jwt_verify(keys, &o, a->token, strlen(a->token), &claims);
    if (rc != BK_OK) {
        printf("%s\n", bk_err_name(rc));
        return EXIT_REFUSED;
    }
    char *text = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    if (!text)
        return trouble("%s", bk_strerror(BK_ENOMEM));
    printf("%s\n", text);
    free(text);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return EXIT_OK;
    }
    if (argc < 2 || (strcmp(argv[1], "issue") != 0 && strcmp(argv[1], "verify") != 0))
        return argc < 2 ? bad_usage("a command is needed: issue or verify")
                        : bad_usage("unknown command \"%s\" (issue or verify)", argv[1]);
    args_t a = {.issue = strcmp(argv[1], "issue") == 0};
    /* Room for every argument, whatever kind each turns out to be. */
    a.keys = calloc((size_t)argc, sizeof *a.keys);
    a.claims = calloc((size_t)argc, sizeof *a.claims);
    a.required = calloc((size_t)argc, sizeof *a.required);
    int status = a.keys && a.claims && a.required ? parse(argc - 1, argv + 1, &a)
                                                  : trouble("%s", bk_strerror(BK_ENOMEM));
    bk_jwt_keys_t *keys = NULL;
    if (status == EXIT_OK)
        status = load_keys(&a, &keys);
    if (status == EXIT_OK)
        status = a.issue ? issue(&a, keys) : verify(&a, keys);
    bk_jwt_keys_free(keys);
    free(a.keys);
    free(a.claims);
    free(a.required);
    if (status < 0)
        status = EXIT_OK; /* --help */
    if (fflush(stdout) != 0) {
        fprintf(stderr, "jwt: cannot write: %s\n", strerror(errno));
        status = EXIT_TROUBLE;
    }
    return status;
}
