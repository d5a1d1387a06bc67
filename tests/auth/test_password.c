/* Passwords: hash/verify round trips, PHC format, malformed and hostile hashes,
 * length limits, needs_rehash, the pepper, the RFC 9106 test vectors on the
 * libargon2 we build on, and interop both ways with Debian's python3-argon2.
 * Default-cost hashes (~50 ms each, ~30x under valgrind) are few; a cheap policy
 * (m=64, t=1) serves wherever cost does not matter.
 * SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <regex.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <argon2.h>
#include <check.h>

#include <backend/auth.h>

#include "check_main.h"

extern char **environ;

#define PYTHON "/usr/bin/python3" /* Debian's, the one with python3-argon2 */
#define PW "correct horse battery staple"
#define PW_UTF8 "p\xc3\xa4sswort \xe2\x9c\x93" /* "pässwort ✓" */

static void cheap(bk_password_policy_t *p)
{
    bk_password_policy_init(p);
    p->memory_kib = 64;
    p->iterations = 1;
    p->parallelism = 1;
}

static void hash_cheap(const char *pw, char out[BK_PASSWORD_HASH_MAX])
{
    bk_password_policy_t p;
    cheap(&p);
    ck_assert_int_eq(bk_password_hash(&p, pw, strlen(pw), out, BK_PASSWORD_HASH_MAX, NULL), BK_OK);
}

static int verify(const bk_password_policy_t *p, const char *pw, const char *phc)
{
    return bk_password_verify(p, pw, strlen(pw), phc, NULL);
}

/*
 * Runs /usr/bin/python3 -c script args... (no shell: the arguments arrive as they
 * are), with its stdout, less one trailing newline, in out. Returns the exit
 * status. A missing interpreter or module fails the test: it is a dependency
 * (python3-argon2), not an optional extra.
 */
static int python(const char *script, const char *const *args, char *out, size_t outsz)
{
    char *argv[8] = {PYTHON, "-c", (char *)script};
    int argc = 3;
    for (; args[argc - 3] != NULL; argc++) {
        ck_assert_int_lt(argc, 7);
        argv[argc] = (char *)args[argc - 3];
    }
    argv[argc] = NULL;
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    pid_t pid;
    int rc = posix_spawn(&pid, PYTHON, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        ck_abort_msg("cannot run %s (%s): install python3 and python3-argon2", PYTHON, strerror(rc));
    }
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out + n, outsz - 1 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    out[n] = '\0';
    if (n > 0 && out[n - 1] == '\n')
        out[n - 1] = '\0';
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Fails the test with python's output when the script does not exit 0. */
static void python_ok(const char *script, const char *const *args, char *out, size_t outsz)
{
    int st = python(script, args, out, outsz);
    ck_assert_msg(st == 0, "%s exited %d (is python3-argon2 installed?): %s", PYTHON, st, out);
}

static const char PY_HASH_ID[] = "import os, sys, argon2\n"
                                 "ph = argon2.PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)\n"
                                 "print(ph.hash(os.fsencode(sys.argv[1])))\n";
static const char PY_HASH_I[] = "import os, sys\n"
                                "from argon2.low_level import Type, hash_secret\n"
                                "print(hash_secret(os.fsencode(sys.argv[1]), os.urandom(16), time_cost=2,\n"
                                "                  memory_cost=256, parallelism=2, hash_len=32,\n"
                                "                  type=Type.I).decode())\n";
/* argv: hash, password; prints ok or mismatch. */
static const char PY_VERIFY[] = "import os, sys, argon2\n"
                                "try:\n"
                                "    argon2.PasswordHasher().verify(sys.argv[1], os.fsencode(sys.argv[2]))\n"
                                "    print('ok')\n"
                                "except argon2.exceptions.VerifyMismatchError:\n"
                                "    print('mismatch')\n";
/* argv: hash, pepper, password; the password Argon2 sees is HMAC-SHA256(pepper, password). */
static const char PY_VERIFY_PEPPERED[] =
    "import hmac, os, sys\n"
    "from argon2.exceptions import VerifyMismatchError\n"
    "from argon2.low_level import Type, verify_secret\n"
    "mac = hmac.new(os.fsencode(sys.argv[2]), os.fsencode(sys.argv[3]), 'sha256').digest()\n"
    "try:\n"
    "    verify_secret(sys.argv[1].encode(), mac, Type.ID)\n"
    "    print('ok')\n"
    "except VerifyMismatchError:\n"
    "    print('mismatch')\n";
/* argv: password, version; an argon2id hash of that version with cheap parameters. */
static const char PY_HASH_VERSION[] = "import os, sys\n"
                                      "from argon2.low_level import Type, hash_secret\n"
                                      "print(hash_secret(os.fsencode(sys.argv[1]), os.urandom(16), time_cost=1,\n"
                                      "                  memory_cost=64, parallelism=1, hash_len=32,\n"
                                      "                  type=Type.ID, version=int(sys.argv[2])).decode())\n";

static bool matches(const char *re, const char *s)
{
    regex_t r;
    ck_assert_int_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
    bool ok = regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

/* ------------------------------------------------------------------ defaults */
START_TEST(policy_defaults)
{
    bk_password_policy_t p;
    memset(&p, 0xa5, sizeof p);
    bk_password_policy_init(&p);
    ck_assert_uint_eq(p.memory_kib, 19456);
    ck_assert_uint_eq(p.iterations, 2);
    ck_assert_uint_eq(p.parallelism, 1);
    ck_assert_ptr_null(p.pepper);
    ck_assert_uint_eq(p.pepper_len, 0);
    ck_assert_uint_eq(p.max_password_len, 1024);
    for (size_t i = 0; i < sizeof p.reserved_ / sizeof p.reserved_[0]; i++)
        ck_assert_uint_eq(p.reserved_[i], 0);
    bk_password_policy_init(NULL); /* harmless */
}
END_TEST

/* A policy cleared by other means (memset, = {0}) is the default policy: each
 * zero field means its default. One default-cost hash. */
START_TEST(zero_fields_mean_the_defaults)
{
    bk_password_policy_t zero;
    memset(&zero, 0, sizeof zero);
    char h[BK_PASSWORD_HASH_MAX];
    ck_assert_int_eq(bk_password_hash(&zero, PW, strlen(PW), h, sizeof h, NULL), BK_OK);
    ck_assert_msg(strncmp(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0, "%s", h);
    ck_assert(!bk_password_needs_rehash(&zero, h));
    ck_assert(!bk_password_needs_rehash(NULL, h));
    /* max_password_len 0 is the default 1024, not "nothing". */
    char big[1025];
    memset(big, 'x', sizeof big);
    ck_assert_int_eq(bk_password_verify(&zero, big, 1025, h, NULL), BK_ERANGE);
    /* One field set, the others still default. */
    zero.iterations = 3;
    ck_assert(bk_password_needs_rehash(&zero, h));
}
END_TEST

START_TEST(error_detail_says_why)
{
    bk_password_policy_t p;
    bk_error_t err;
    char h[BK_PASSWORD_HASH_MAX], ok[BK_PASSWORD_HASH_MAX];
    hash_cheap(PW, ok);

    /* Success clears it. */
    cheap(&p);
    memset(&err, 0x5a, sizeof err);
    ck_assert_int_eq(bk_password_verify(&p, PW, strlen(PW), ok, &err), BK_OK);
    ck_assert_int_eq(err.code, BK_OK);
    ck_assert_str_eq(err.message, "");
    /* A mismatch is the answer: its code, its own words. */
    ck_assert_int_eq(bk_password_verify(&p, "wrong", 5, ok, &err), BK_EMISMATCH);
    ck_assert_int_eq(err.code, BK_EMISMATCH);
    ck_assert_str_eq(err.message, bk_strerror(BK_EMISMATCH));
    /* The policy's cost, named. */
    p.memory_kib = 7;
    ck_assert_int_eq(bk_password_hash(&p, PW, strlen(PW), h, sizeof h, &err), BK_EINVAL);
    ck_assert_int_eq(err.code, BK_EINVAL);
    ck_assert_msg(strstr(err.message, "memory_kib=7") != NULL, "%s", err.message);
    cheap(&p);
    ck_assert_int_eq(bk_password_hash(&p, PW, strlen(PW), h, 60, &err), BK_EINVAL);
    ck_assert_msg(strstr(err.message, "out has 60 bytes") != NULL, "%s", err.message);
    p.max_password_len = 4;
    ck_assert_int_eq(bk_password_hash(&p, PW, strlen(PW), h, sizeof h, &err), BK_ERANGE);
    ck_assert_int_eq(err.code, BK_ERANGE);
    ck_assert_msg(strstr(err.message, "maximum of 4 bytes") != NULL, "%s", err.message);
    /* A stored hash: malformed, or well-formed but over the caps; never quoted. */
    const char *hostile = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
                          "c2FsdHNhbHRzYWx0c2FsdHNhbHRzYWx0c2FsdHNhbHQ";
    ck_assert_int_eq(bk_password_verify(NULL, PW, strlen(PW), hostile, &err), BK_EINVAL);
    ck_assert_msg(strstr(err.message, "m=4194304 KiB") && strstr(err.message, "beyond the caps"), "%s",
                  err.message);
    ck_assert_ptr_null(strstr(err.message, "c2FsdHNhbHRz"));
    ck_assert_int_eq(bk_password_verify(NULL, PW, strlen(PW), "$argon2id$v=19$garbage", &err), BK_EINVAL);
    ck_assert_str_eq(err.message, "the stored hash is malformed: not an Argon2 PHC string");
    /* An empty pepper, named. */
    cheap(&p);
    p.pepper = "";
    ck_assert_int_eq(bk_password_verify(&p, PW, strlen(PW), ok, &err), BK_EINVAL);
    ck_assert_msg(strstr(err.message, "pepper_len") != NULL, "%s", err.message);
    ck_assert_str_eq(err.pointer, "");
}
END_TEST

/* Four default-cost operations: two hashes, two verifications. */
START_TEST(default_round_trip_format_and_random_salt)
{
    char h1[BK_PASSWORD_HASH_MAX], h2[BK_PASSWORD_HASH_MAX];
    ck_assert_int_eq(bk_password_hash(NULL, PW, strlen(PW), h1, sizeof h1, NULL), BK_OK);
    ck_assert_int_eq(bk_password_hash(NULL, PW, strlen(PW), h2, sizeof h2, NULL), BK_OK);
    /* PHC: 16-byte salt in 22 base64 characters, 32-byte tag in 43, no padding. */
    const char *re = "^\\$argon2id\\$v=19\\$m=19456,t=2,p=1\\$[A-Za-z0-9+/]{22}\\$[A-Za-z0-9+/]{43}$";
    ck_assert_msg(matches(re, h1), "not a default PHC string: %s", h1);
    ck_assert_msg(matches(re, h2), "not a default PHC string: %s", h2);
    ck_assert_uint_eq(strlen(h1), strlen("$argon2id$v=19$m=19456,t=2,p=1$") + 22 + 1 + 43);
    /* A random salt: same password, different salts, different tags. */
    ck_assert_str_ne(h1, h2);
    ck_assert_int_ne(memcmp(h1, h2, 31 + 22), 0);
    ck_assert_int_eq(verify(NULL, PW, h1), BK_OK);
    ck_assert_int_eq(verify(NULL, "correct horse battery stapl", h2), BK_EMISMATCH);
    ck_assert(!bk_password_needs_rehash(NULL, h1));
    bk_password_policy_t d;
    bk_password_policy_init(&d);
    ck_assert(!bk_password_needs_rehash(&d, h2));
}
END_TEST

START_TEST(cheap_round_trips_empty_binary_and_long_passwords)
{
    bk_password_policy_t p;
    cheap(&p);
    char h[BK_PASSWORD_HASH_MAX];
    ck_assert_int_eq(bk_password_hash(&p, PW, strlen(PW), h, sizeof h, NULL), BK_OK);
    ck_assert(matches("^\\$argon2id\\$v=19\\$m=64,t=1,p=1\\$[A-Za-z0-9+/]{22}\\$[A-Za-z0-9+/]{43}$", h));
    ck_assert_int_eq(verify(&p, PW, h), BK_OK);
    ck_assert_int_eq(verify(NULL, PW, h), BK_OK); /* the parameters come from the hash */
    ck_assert_int_eq(verify(&p, "", h), BK_EMISMATCH);
    ck_assert_int_eq(verify(&p, PW "x", h), BK_EMISMATCH);

    /* The empty password, also as NULL with length 0. */
    ck_assert_int_eq(bk_password_hash(&p, NULL, 0, h, sizeof h, NULL), BK_OK);
    ck_assert_int_eq(bk_password_verify(&p, "", 0, h, NULL), BK_OK);
    ck_assert_int_eq(bk_password_verify(&p, NULL, 0, h, NULL), BK_OK);
    ck_assert_int_eq(bk_password_verify(&p, " ", 1, h, NULL), BK_EMISMATCH);

    /* Bytes, not C strings: a NUL inside counts, and so does what follows it. */
    ck_assert_int_eq(bk_password_hash(&p, "a\0b", 3, h, sizeof h, NULL), BK_OK);
    ck_assert_int_eq(bk_password_verify(&p, "a\0b", 3, h, NULL), BK_OK);
    ck_assert_int_eq(bk_password_verify(&p, "a\0c", 3, h, NULL), BK_EMISMATCH);
    ck_assert_int_eq(bk_password_verify(&p, "a", 1, h, NULL), BK_EMISMATCH);

    /* Exactly max_password_len is allowed. */
    char *big = malloc(1025);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', 1025);
    ck_assert_int_eq(bk_password_hash(&p, big, 1024, h, sizeof h, NULL), BK_OK);
    ck_assert_int_eq(bk_password_verify(&p, big, 1024, h, NULL), BK_OK);
    ck_assert_int_eq(bk_password_verify(&p, big, 1023, h, NULL), BK_EMISMATCH);
    free(big);

    /* More lanes: p=2 (m must be at least 8 KiB per lane). */
    p.parallelism = 2;
    ck_assert_int_eq(bk_password_hash(&p, PW, strlen(PW), h, sizeof h, NULL), BK_OK);
    ck_assert_ptr_nonnull(strstr(h, "$m=64,t=1,p=2$"));
    ck_assert_int_eq(verify(NULL, PW, h), BK_OK);
}
END_TEST

START_TEST(too_long_password_is_erange_before_any_work)
{
    char *big = malloc(1025);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', 1025);
    char h[BK_PASSWORD_HASH_MAX];
    strcpy(h, "untouched");
    ck_assert_int_eq(bk_password_hash(NULL, big, 1025, h, sizeof h, NULL), BK_ERANGE);
    ck_assert_str_eq(h, "");
    /* Refused before the hash is even parsed: the valid-looking one is not run. */
    ck_assert_int_eq(bk_password_verify(NULL, big, 1025, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$"
                                                         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL),
                     BK_ERANGE);
    ck_assert_int_eq(bk_password_verify(NULL, big, 1025, "garbage", NULL), BK_ERANGE);
    free(big);

    bk_password_policy_t p;
    cheap(&p);
    p.max_password_len = 8;
    ck_assert_int_eq(bk_password_hash(&p, "123456789", 9, h, sizeof h, NULL), BK_ERANGE);
    ck_assert_int_eq(bk_password_hash(&p, "12345678", 8, h, sizeof h, NULL), BK_OK);
    ck_assert_int_eq(bk_password_verify(&p, "123456789", 9, h, NULL), BK_ERANGE);
    ck_assert_int_eq(bk_password_verify(&p, "12345678", 8, h, NULL), BK_OK);
    /* A pepper does not lift the limit, though Argon2 then sees 32 bytes. */
    p.pepper = "pepper";
    p.pepper_len = 6;
    ck_assert_int_eq(bk_password_hash(&p, "123456789", 9, h, sizeof h, NULL), BK_ERANGE);
}
END_TEST

START_TEST(bad_arguments_and_policies_are_einval)
{
    bk_password_policy_t p;
    char h[BK_PASSWORD_HASH_MAX], ok[BK_PASSWORD_HASH_MAX];
    hash_cheap(PW, ok);

    cheap(&p);
    ck_assert_int_eq(bk_password_hash(&p, PW, strlen(PW), NULL, sizeof h, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_password_hash(&p, PW, strlen(PW), h, 0, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_password_hash(&p, NULL, 3, h, sizeof h, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_password_verify(&p, NULL, 3, ok, NULL), BK_EINVAL);
    ck_assert_int_eq(bk_password_verify(&p, PW, strlen(PW), NULL, NULL), BK_EINVAL);
    /* Too small for the string: refused, out left empty, never truncated. */
    strcpy(h, "untouched");
    ck_assert_int_eq(bk_password_hash(&p, PW, strlen(PW), h, 60, NULL), BK_EINVAL);
    ck_assert_str_eq(h, "");

    struct {
        uint32_t m, t, p;
    } bad[] = {
        {7, 1, 1},          /* under 8 KiB per lane */
        {64, 1, 9},         /* 64 KiB for 9 lanes */
        {15, 1, 2},         /* 15 KiB for 2 lanes (0 in a field is its default: see above) */
        {1048577, 1, 1},    /* over the 1 GiB cap */
        {1024, 1, 65},      /* over the 64-lane cap */
        {1048576, 5, 1},    /* over the 4 GiB-pass work cap */
        {65536, 65, 1},     /* the same */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cheap(&p);
        p.memory_kib = bad[i].m;
        p.iterations = bad[i].t;
        p.parallelism = bad[i].p;
        ck_assert_msg(bk_password_hash(&p, PW, strlen(PW), h, sizeof h, NULL) == BK_EINVAL, "m=%u,t=%u,p=%u accepted",
                      bad[i].m, bad[i].t, bad[i].p);
    }

    /* A pepper of no bytes is a mistake, not "no pepper". */
    cheap(&p);
    p.pepper = "";
    p.pepper_len = 0;
    ck_assert_int_eq(bk_password_hash(&p, PW, strlen(PW), h, sizeof h, NULL), BK_EINVAL);
    ck_assert_int_eq(verify(&p, PW, ok), BK_EINVAL);
}
END_TEST

/* ------------------------------------------------------------------ malformed */
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

START_TEST(malformed_and_hostile_hashes_are_einval)
{
    char ok[BK_PASSWORD_HASH_MAX];
    hash_cheap(PW, ok);
    ck_assert_int_eq(verify(NULL, PW, ok), BK_OK);
    /* ok = "$argon2id$v=19$m=64,t=1,p=1$" SALT(22) "$" TAG(43) */
    const char *salt = strrchr(ok, '$') - 22, *tag = strrchr(ok, '$') + 1;
    ck_assert_uint_eq(strlen(tag), 43);
    char st[80]; /* "SALT$TAG" */
    snprintf(st, sizeof st, "%.22s$%s", salt, tag);

    char buf[8][BK_PASSWORD_HASH_MAX];
    /* The tag with non-zero unused bits in its last character (43 chars: 2 unused). */
    snprintf(buf[0], sizeof buf[0], "$argon2id$v=19$m=64,t=1,p=1$%.22s$%.42s%c", salt, tag,
             B64[(strchr(B64, tag[42]) - B64) | 1]);
    snprintf(buf[1], sizeof buf[1], "$argon2id$v=19$m=64,t=1,p=1$%.22s$%.41s", salt, tag); /* 41 = 1 mod 4 */
    snprintf(buf[2], sizeof buf[2], "$argon2id$v=19$m=64,t=1,p=1$%.22s$%.20s*%s", salt, tag, tag + 21);
    /* Hostile costs: each would be accepted by libargon2 and run. */
    snprintf(buf[3], sizeof buf[3], "$argon2id$v=19$m=4194304,t=1,p=1$%s", st);
    snprintf(buf[4], sizeof buf[4], "$argon2id$v=19$m=1048577,t=1,p=1$%s", st);
    snprintf(buf[5], sizeof buf[5], "$argon2id$v=19$m=64,t=4294967295,p=1$%s", st);
    snprintf(buf[6], sizeof buf[6], "$argon2id$v=19$m=1024,t=1,p=65$%s", st);
    snprintf(buf[7], sizeof buf[7], "$argon2id$v=19$m=65536,t=65,p=1$%s", st);
    char longest[700];
    memset(longest, 'A', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    memcpy(longest, "$argon2id$v=19$m=64,t=1,p=1$", 28);
    longest[28 + 300] = '$'; /* a 300-char salt, a 370-char tag: over 512 in all */

    char fmt[64][BK_PASSWORD_HASH_MAX];
    const char *templates[] = {
        "",
        "$",
        "argon2id$v=19$m=64,t=1,p=1$%s",
        " $argon2id$v=19$m=64,t=1,p=1$%s",
        "$ARGON2ID$v=19$m=64,t=1,p=1$%s",
        "$argon2x$v=19$m=64,t=1,p=1$%s",
        "$argon2$v=19$m=64,t=1,p=1$%s",
        "$argon2id$v=18$m=64,t=1,p=1$%s",
        "$argon2id$v=019$m=64,t=1,p=1$%s",
        "$argon2id$v=$m=64,t=1,p=1$%s",
        "$argon2id$v=19$m=064,t=1,p=1$%s",
        "$argon2id$v=19$m=-64,t=1,p=1$%s",
        "$argon2id$v=19$m=64,t=0,p=1$%s",
        "$argon2id$v=19$m=64,t=1,p=0$%s",
        "$argon2id$v=19$m=7,t=1,p=1$%s",
        "$argon2id$v=19$m=64,t=1,p=9$%s",
        "$argon2id$v=19$m=99999999999,t=1,p=1$%s",
        "$argon2id$v=19$t=1,m=64,p=1$%s",
        "$argon2id$v=19$m=64,t=1$%s",
        "$argon2id$v=19$m=64,t=1,p=1,data=AAAA$%s",
        "$argon2id$v=19$m=64,t=1,p=1,keyid=AAAA$%s",
        "$argon2id$v=19$m=64,t=1,p=1$%s$",
        "$argon2id$v=19$m=64,t=1,p=1$%s=",
        "$argon2id$v=19$m=64,t=1,p=1$%s ",
        "$argon2id$v=19$m=64,t=1,p=1$%s\n",
        "$argon2id$v=19$m=64,t=1,p=1$",
        "$argon2id$v=19$m=64,t=1,p=1$$",
        "$argon2id$v=19$m=64,t=1,p=1$$$",
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof templates / sizeof templates[0]; i++) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(fmt[n++], sizeof fmt[0], templates[i], st);
#pragma GCC diagnostic pop
    }
    snprintf(fmt[n++], sizeof fmt[0], "$argon2id$v=19$m=64,t=1,p=1$%.22s", salt);  /* no tag */
    snprintf(fmt[n++], sizeof fmt[0], "$argon2id$v=19$m=64,t=1,p=1$%s", tag);      /* no salt */
    snprintf(fmt[n++], sizeof fmt[0], "$argon2id$v=19$m=64,t=1,p=1$AAAAAA$%s", tag); /* 4-byte salt */
    snprintf(fmt[n++], sizeof fmt[0], "$argon2id$v=19$m=64,t=1,p=1$%.22s$AAAA", salt); /* 3-byte tag */
    snprintf(fmt[n++], sizeof fmt[0], "$argon2id$v=19$m=64,t=1,p=1$%.21s$%s", salt, tag); /* 21 = 1 mod 4 */
    snprintf(fmt[n++], sizeof fmt[0], "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW");
    snprintf(fmt[n++], sizeof fmt[0],
             "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E");
    const char *extra[] = {buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], longest};

    bk_password_policy_t cheap_p;
    cheap(&cheap_p);
    for (size_t i = 0; i < n + sizeof extra / sizeof extra[0]; i++) {
        const char *h = i < n ? fmt[i] : extra[i - n];
        int rc = verify(NULL, PW, h);
        ck_assert_msg(rc == BK_EINVAL, "verify gave %s for malformed %s", bk_err_name(rc), h);
        ck_assert_msg(bk_password_needs_rehash(NULL, h), "needs_rehash false for malformed %s", h);
        ck_assert_msg(bk_password_needs_rehash(&cheap_p, h), "needs_rehash false for malformed %s", h);
    }
    ck_assert(bk_password_needs_rehash(NULL, NULL));
    ck_assert(bk_password_needs_rehash(NULL, "garbage"));
    /* The type is the hash's: the same string read as argon2i no longer matches. */
    char as_i[BK_PASSWORD_HASH_MAX];
    snprintf(as_i, sizeof as_i, "$argon2i$%s", ok + strlen("$argon2id$"));
    ck_assert_int_eq(verify(NULL, PW, as_i), BK_EMISMATCH);
    ck_assert(!bk_password_needs_rehash(&cheap_p, ok));
    ck_assert(bk_password_needs_rehash(&cheap_p, as_i));
}
END_TEST

/* ------------------------------------------------------------------ needs_rehash */
START_TEST(needs_rehash_follows_the_policy)
{
    bk_password_policy_t p;
    cheap(&p);
    char h[BK_PASSWORD_HASH_MAX];
    hash_cheap(PW, h);
    ck_assert(!bk_password_needs_rehash(&p, h));
    ck_assert(bk_password_needs_rehash(NULL, h)); /* the defaults are another policy */
    p.iterations = 2;
    ck_assert(bk_password_needs_rehash(&p, h));
    cheap(&p);
    p.memory_kib = 128;
    ck_assert(bk_password_needs_rehash(&p, h));
    cheap(&p);
    p.parallelism = 2;
    ck_assert(bk_password_needs_rehash(&p, h));
    cheap(&p);
    p.pepper = "pepper"; /* cannot be seen in a hash */
    p.pepper_len = 6;
    ck_assert(!bk_password_needs_rehash(&p, h));

    /* Another version: v=16, written out or implied by its absence (Argon2 1.0). */
    cheap(&p);
    char v16[BK_PASSWORD_HASH_MAX], v10[BK_PASSWORD_HASH_MAX];
    python_ok(PY_HASH_VERSION, (const char *[]){PW, "16", NULL}, v16, sizeof v16);
    ck_assert_msg(strncmp(v16, "$argon2id$v=16$m=64,t=1,p=1$", 28) == 0, "%s", v16);
    snprintf(v10, sizeof v10, "$argon2id$%s", v16 + strlen("$argon2id$v=16$"));
    ck_assert_int_eq(verify(NULL, PW, v16), BK_OK);
    ck_assert_int_eq(verify(NULL, PW, v10), BK_OK);
    ck_assert_int_eq(verify(NULL, "nope", v10), BK_EMISMATCH);
    ck_assert(bk_password_needs_rehash(&p, v16));
    ck_assert(bk_password_needs_rehash(&p, v10));

    /* The same parameters with a 16-byte tag (argon2-cffi's default) or salt
     * shorter than ours: not what the policy makes. */
    char short_tag[BK_PASSWORD_HASH_MAX];
    snprintf(short_tag, sizeof short_tag, "%.*sAAAAAAAAAAAAAAAAAAAAAA", (int)(strrchr(h, '$') - h + 1), h);
    ck_assert(bk_password_needs_rehash(&p, short_tag));
    ck_assert_int_eq(verify(NULL, PW, short_tag), BK_EMISMATCH);
}
END_TEST

/* ------------------------------------------------------------------ pepper */
START_TEST(pepper_verifies_only_with_the_same_pepper)
{
    static const unsigned char pepper[] = "server-secret-0123456789abcdef";
    bk_password_policy_t p, none, other;
    cheap(&p);
    p.pepper = pepper;
    p.pepper_len = sizeof pepper - 1;
    cheap(&none);
    other = p;
    other.pepper = "server-secret-0123456789abcdeF";

    char h[BK_PASSWORD_HASH_MAX], plain[BK_PASSWORD_HASH_MAX];
    ck_assert_int_eq(bk_password_hash(&p, PW, strlen(PW), h, sizeof h, NULL), BK_OK);
    ck_assert_int_eq(verify(&p, PW, h), BK_OK);
    ck_assert_int_eq(verify(&p, "wrong", h), BK_EMISMATCH);
    ck_assert_int_eq(verify(&none, PW, h), BK_EMISMATCH);
    ck_assert_int_eq(verify(&other, PW, h), BK_EMISMATCH);
    other.pepper_len--; /* a prefix of the pepper is another pepper */
    other.pepper = pepper;
    ck_assert_int_eq(verify(&other, PW, h), BK_EMISMATCH);
    /* And the other way: a hash made without a pepper needs none. */
    hash_cheap(PW, plain);
    ck_assert_int_eq(verify(&p, PW, plain), BK_EMISMATCH);
    ck_assert_int_eq(verify(&none, PW, plain), BK_OK);

    /* The scheme is exactly Argon2id over HMAC-SHA256(pepper, password): python,
     * computing the HMAC itself, verifies our hash. */
    char out[64];
    python_ok(PY_VERIFY_PEPPERED, (const char *[]){h, (const char *)pepper, PW, NULL}, out, sizeof out);
    ck_assert_str_eq(out, "ok");
    python_ok(PY_VERIFY_PEPPERED, (const char *[]){h, "other", PW, NULL}, out, sizeof out);
    ck_assert_str_eq(out, "mismatch");
}
END_TEST

/* ------------------------------------------------------------------ RFC 9106 */
/* Section 5: password 32 x 0x01, salt 16 x 0x02, secret 8 x 0x03, associated data
 * 12 x 0x04, t=3, m=32 KiB, p=4, a 32-byte tag, version 0x13. */
static void rfc9106(argon2_type type, const unsigned char expected[32])
{
    unsigned char pwd[32], salt[16], secret[8], ad[12], tag[32];
    memset(pwd, 0x01, sizeof pwd);
    memset(salt, 0x02, sizeof salt);
    memset(secret, 0x03, sizeof secret);
    memset(ad, 0x04, sizeof ad);
    argon2_context ctx = {
        .out = tag, .outlen = sizeof tag,
        .pwd = pwd, .pwdlen = sizeof pwd,
        .salt = salt, .saltlen = sizeof salt,
        .secret = secret, .secretlen = sizeof secret,
        .ad = ad, .adlen = sizeof ad,
        .t_cost = 3, .m_cost = 32, .lanes = 4, .threads = 4,
        .version = ARGON2_VERSION_13,
        .allocate_cbk = NULL, .free_cbk = NULL,
        .flags = ARGON2_DEFAULT_FLAGS,
    };
    int rc = argon2_ctx(&ctx, type);
    ck_assert_msg(rc == ARGON2_OK, "argon2_ctx: %s", argon2_error_message(rc));
    ck_assert_mem_eq(tag, expected, 32);
}

START_TEST(rfc9106_argon2id_test_vector)
{
    static const unsigned char tag[32] = {0x0d, 0x64, 0x0d, 0xf5, 0x8d, 0x78, 0x76, 0x6c, 0x08, 0xc0, 0x37,
                                          0xa3, 0x4a, 0x8b, 0x53, 0xc9, 0xd0, 0x1e, 0xf0, 0x45, 0x2d, 0x75,
                                          0xb6, 0x5e, 0xb5, 0x25, 0x20, 0xe9, 0x6b, 0x01, 0xe6, 0x59};
    rfc9106(Argon2_id, tag); /* section 5.3 */
}
END_TEST

START_TEST(rfc9106_argon2d_and_argon2i_test_vectors)
{
    static const unsigned char d[32] = {0x51, 0x2b, 0x39, 0x1b, 0x6f, 0x11, 0x62, 0x97, 0x53, 0x71, 0xd3,
                                        0x09, 0x19, 0x73, 0x42, 0x94, 0xf8, 0x68, 0xe3, 0xbe, 0x39, 0x84,
                                        0xf3, 0xc1, 0xa1, 0x3a, 0x4d, 0xb9, 0xfa, 0xbe, 0x4a, 0xcb};
    static const unsigned char i[32] = {0xc8, 0x14, 0xd9, 0xd1, 0xdc, 0x7f, 0x37, 0xaa, 0x13, 0xf0, 0xd7,
                                        0x7f, 0x24, 0x94, 0xbd, 0xa1, 0xc8, 0xde, 0x6b, 0x01, 0x6d, 0xd3,
                                        0x88, 0xd2, 0x99, 0x52, 0xa4, 0xc4, 0x67, 0x2b, 0x6c, 0xe8};
    rfc9106(Argon2_d, d); /* section 5.1 */
    rfc9106(Argon2_i, i); /* section 5.2 */
}
END_TEST

/* ------------------------------------------------------------------ python interop */
/* python's argon2id hash (t=3, m=64 MiB, p=4: ~5 default hashes of work to verify)
 * and a cheap argon2i one verify here; wrong passwords do not. */
START_TEST(python_hashes_verify_here)
{
    char id[BK_PASSWORD_HASH_MAX], i[BK_PASSWORD_HASH_MAX];
    python_ok(PY_HASH_ID, (const char *[]){PW_UTF8, NULL}, id, sizeof id);
    ck_assert_msg(strncmp(id, "$argon2id$v=19$m=65536,t=3,p=4$", 31) == 0, "python made %s", id);
    python_ok(PY_HASH_I, (const char *[]){PW_UTF8, NULL}, i, sizeof i);
    ck_assert_msg(strncmp(i, "$argon2i$v=19$m=256,t=2,p=2$", 28) == 0, "python made %s", i);

    ck_assert_int_eq(verify(NULL, PW_UTF8, id), BK_OK);
    ck_assert_int_eq(verify(NULL, PW_UTF8, i), BK_OK);
    ck_assert_int_eq(verify(NULL, "p\xc3\xa4sswort", i), BK_EMISMATCH);
    ck_assert_int_eq(verify(NULL, "passwort \xe2\x9c\x93", id), BK_EMISMATCH);
    /* Other parameters (and argon2-cffi's 16-byte tag), another type. */
    ck_assert(bk_password_needs_rehash(NULL, id));
    ck_assert(bk_password_needs_rehash(NULL, i));
}
END_TEST

/* One default-cost hash, verified by argon2-cffi's PasswordHasher. */
START_TEST(our_hash_verifies_in_python)
{
    char h[BK_PASSWORD_HASH_MAX], out[64];
    ck_assert_int_eq(bk_password_hash(NULL, PW_UTF8, strlen(PW_UTF8), h, sizeof h, NULL), BK_OK);
    python_ok(PY_VERIFY, (const char *[]){h, PW_UTF8, NULL}, out, sizeof out);
    ck_assert_str_eq(out, "ok");
    python_ok(PY_VERIFY, (const char *[]){h, "p\xc3\xa4sswort", NULL}, out, sizeof out);
    ck_assert_str_eq(out, "mismatch");
}
END_TEST

/* ------------------------------------------------------------------ threads */
#define THREADS 4
#define ROUNDS 3

static void *hash_and_verify(void *arg)
{
    const char *pw = arg;
    bk_password_policy_t p;
    cheap(&p);
    char h[BK_PASSWORD_HASH_MAX];
    for (int r = 0; r < ROUNDS; r++) {
        if (bk_password_hash(&p, pw, strlen(pw), h, sizeof h, NULL) != BK_OK || verify(&p, pw, h) != BK_OK ||
            verify(&p, "", h) != BK_EMISMATCH)
            return (void *)1;
    }
    return NULL;
}

START_TEST(concurrent_hashing_is_independent)
{
    static const char *pws[THREADS] = {"alpha", "bravo", "charlie", "delta"};
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, hash_and_verify, (void *)pws[i]), 0);
    for (int i = 0; i < THREADS; i++) {
        void *res;
        ck_assert_int_eq(pthread_join(t[i], &res), 0);
        ck_assert_ptr_null(res);
    }
}
END_TEST

static Suite *password_suite(void)
{
    Suite *s = suite_create("password");
    TCase *tc = tcase_create("local");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, policy_defaults);
    tcase_add_test(tc, zero_fields_mean_the_defaults);
    tcase_add_test(tc, error_detail_says_why);
    tcase_add_test(tc, default_round_trip_format_and_random_salt);
    tcase_add_test(tc, cheap_round_trips_empty_binary_and_long_passwords);
    tcase_add_test(tc, too_long_password_is_erange_before_any_work);
    tcase_add_test(tc, bad_arguments_and_policies_are_einval);
    tcase_add_test(tc, malformed_and_hostile_hashes_are_einval);
    tcase_add_test(tc, needs_rehash_follows_the_policy);
    tcase_add_test(tc, pepper_verifies_only_with_the_same_pepper);
    tcase_add_test(tc, concurrent_hashing_is_independent);
    suite_add_tcase(s, tc);
    tc = tcase_create("rfc9106");
    tcase_add_test(tc, rfc9106_argon2id_test_vector);
    tcase_add_test(tc, rfc9106_argon2d_and_argon2i_test_vectors);
    suite_add_tcase(s, tc);
    tc = tcase_create("python3-argon2");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, python_hashes_verify_here);
    tcase_add_test(tc, our_hash_verifies_in_python);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(password_suite());
}
