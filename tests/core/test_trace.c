/* Unit tests of W3C Trace Context (bk_trace_*): new traces, traceparent and
 * tracestate as the recommendation checks them, children, formatting.
 * SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "check_main.h"

#include <backend/core.h>

#define EXAMPLE "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static bool is_id(const char *s, size_t n)
{
    if (strlen(s) != n || strspn(s, "0123456789abcdef") != n)
        return false;
    return strspn(s, "0") != n;
}

START_TEST(a_new_trace_has_random_ids_and_no_parent)
{
    bk_trace_t a, b;
    ck_assert_int_eq(bk_trace_new(&a), BK_OK);
    ck_assert_int_eq(bk_trace_new(&b), BK_OK);
    ck_assert(is_id(a.trace_id, 32));
    ck_assert(is_id(a.span_id, 16));
    ck_assert_str_eq(a.parent_id, "");
    ck_assert_str_eq(a.state, "");
    ck_assert_uint_eq(a.flags, BK_TRACE_SAMPLED);
    ck_assert_str_ne(a.trace_id, b.trace_id);
    ck_assert_str_ne(a.span_id, b.span_id);
    ck_assert_int_eq(bk_trace_new(NULL), BK_EINVAL);
}
END_TEST

/* The ids come from a per-thread block of random bytes: a forked child must
 * not hand out the ones its parent is about to. */
START_TEST(a_forked_child_draws_ids_of_its_own)
{
    bk_trace_t primed, mine;
    ck_assert_int_eq(bk_trace_new(&primed), BK_OK);
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        bk_trace_t t;
        ssize_t n = bk_trace_new(&t) == BK_OK ? write(fd[1], t.trace_id, 32) : -1;
        _exit(n == 32 ? 0 : 1);
    }
    ck_assert_int_eq(bk_trace_new(&mine), BK_OK);
    char child[33] = "";
    ck_assert_int_eq(read(fd[0], child, 32), 32);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_str_ne(child, mine.trace_id);
    close(fd[0]);
    close(fd[1]);
}
END_TEST

START_TEST(a_valid_traceparent_is_continued_with_a_span_of_its_own)
{
    bk_trace_t t;
    ck_assert_int_eq(bk_trace_parse(EXAMPLE, NULL, &t), BK_OK);
    ck_assert_str_eq(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert_str_eq(t.parent_id, "00f067aa0ba902b7");
    ck_assert(is_id(t.span_id, 16));
    ck_assert_str_ne(t.span_id, t.parent_id);
    ck_assert_uint_eq(t.flags, 0x01);
    ck_assert_str_eq(t.state, "");
    /* Unsampled, and a version-00 flag byte kept as it came. */
    ck_assert_int_eq(bk_trace_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", NULL, &t), BK_OK);
    ck_assert_uint_eq(t.flags, 0);
    ck_assert_int_eq(bk_trace_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", NULL, &t), BK_OK);
    ck_assert_uint_eq(t.flags, 0x09);
}
END_TEST

START_TEST(an_invalid_traceparent_is_refused_and_changes_nothing)
{
    static const char *const bad[] = {
        "",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero parent id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* 00 has no more fields */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",   /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  /* a dash misplaced */
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",  /* flags not hex */
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* leading space */
        "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", /* later version: a dash must follow */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n",
    };
    bk_trace_t t, before;
    memset(&t, 0x5a, sizeof t);
    before = t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(bk_trace_parse(bad[i], "a=1", &t) == BK_EINVAL, "accepted: \"%s\"", bad[i]);
        ck_assert(memcmp(&t, &before, sizeof t) == 0);
    }
    ck_assert_int_eq(bk_trace_parse(NULL, NULL, &t), BK_EINVAL);
    ck_assert_int_eq(bk_trace_parse(EXAMPLE, NULL, NULL), BK_EINVAL);
}
END_TEST

START_TEST(a_later_version_is_read_as_far_as_version_00_goes)
{
    bk_trace_t t;
    ck_assert_int_eq(bk_trace_parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-what-ever", NULL, &t),
                     BK_OK);
    ck_assert_str_eq(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    ck_assert_uint_eq(t.flags, BK_TRACE_SAMPLED); /* only the bit version 00 defines */
    ck_assert_int_eq(bk_trace_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", NULL, &t), BK_OK);
    ck_assert_uint_eq(t.flags, 0);
}
END_TEST

static const char *state_of(const char *tracestate)
{
    static bk_trace_t t;
    ck_assert_int_eq(bk_trace_parse(EXAMPLE, tracestate, &t), BK_OK);
    return t.state;
}

START_TEST(tracestate_is_kept_only_when_valid)
{
    ck_assert_str_eq(state_of("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    ck_assert_str_eq(state_of(" rojo=1 ,\tcongo=2\t"), "rojo=1,congo=2");
    ck_assert_str_eq(state_of("a=1,,b=2,"), "a=1,b=2");
    ck_assert_str_eq(state_of("fw529a3039@dt=x,0tenant@sys=y"), "fw529a3039@dt=x,0tenant@sys=y");
    ck_assert_str_eq(state_of("k_-*/9=v a l"), "k_-*/9=v a l");
    ck_assert_str_eq(state_of(""), "");
    static const char *const bad[] = {
        "Rojo=1",           /* uppercase key */
        "9rojo=1",          /* a simple key begins with a letter */
        "rojo=1,rojo=2",    /* twice the same key */
        "rojo=a=b",         /* '=' in a value */
        "rojo=",            /* an empty value */
        "rojo",             /* no value */
        "rojo=v ,a=b\x7f",  /* DEL */
        "t@Sys=1",          /* uppercase system id */
        "t@systemidtoolong=1",
        "rojo=\x01",
        "@sys=1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(strcmp(state_of(bad[i]), "") == 0, "kept: \"%s\"", bad[i]);
    /* 32 members are allowed, 33 are not. */
    char many[400] = "";
    for (int i = 0; i < 33; i++) {
        char m[12];
        snprintf(m, sizeof m, "%sk%d=v", i ? "," : "", i);
        strcat(many, m);
        ck_assert_str_eq(state_of(many), i < 32 ? many : "");
    }
}
END_TEST

START_TEST(a_long_tracestate_loses_long_members_first_then_the_last)
{
    /* Ten members of 60 characters: 609 in all, cut to the first eight (487). */
    char s[1024] = "", want[1024] = "";
    for (int i = 0; i < 10; i++) {
        char m[64];
        snprintf(m, sizeof m, "%sk%d=%0*d", i ? "," : "", i, 57, i);
        strcat(s, m);
        if (i < 8)
            strcat(want, m);
    }
    ck_assert_str_eq(state_of(s), want);
    /* A member over 128 characters goes before any other. */
    char big[300];
    snprintf(big, sizeof big, "big=%0200d", 7);
    char s2[1200];
    snprintf(s2, sizeof s2, "%s,%s", big, want);
    ck_assert_str_eq(state_of(s2), want);
    ck_assert_uint_le(strlen(state_of(s2)), BK_TRACESTATE_MAX);
}
END_TEST

START_TEST(a_child_span_is_in_the_same_trace_under_its_parent)
{
    bk_trace_t p, c;
    ck_assert_int_eq(bk_trace_parse(EXAMPLE, "rojo=1", &p), BK_OK);
    ck_assert_int_eq(bk_trace_child(&p, &c), BK_OK);
    ck_assert_str_eq(c.trace_id, p.trace_id);
    ck_assert_str_eq(c.parent_id, p.span_id);
    ck_assert(is_id(c.span_id, 16));
    ck_assert_str_ne(c.span_id, p.span_id);
    ck_assert_uint_eq(c.flags, p.flags);
    ck_assert_str_eq(c.state, "rojo=1");
    bk_trace_t zero;
    memset(&zero, 0, sizeof zero);
    ck_assert_int_eq(bk_trace_child(&zero, &c), BK_EINVAL);
    ck_assert_int_eq(bk_trace_child(NULL, &c), BK_EINVAL);
}
END_TEST

START_TEST(format_writes_the_span_as_a_traceparent)
{
    bk_trace_t t, back;
    ck_assert_int_eq(bk_trace_parse(EXAMPLE, NULL, &t), BK_OK);
    char buf[BK_TRACEPARENT_LEN + 1];
    ck_assert_int_eq(bk_trace_format(&t, buf, sizeof buf), BK_OK);
    ck_assert_uint_eq(strlen(buf), BK_TRACEPARENT_LEN);
    char want[64];
    snprintf(want, sizeof want, "00-%s-%s-01", t.trace_id, t.span_id);
    ck_assert_str_eq(buf, want);
    /* What is sent is continued by the next service as a child of this span. */
    ck_assert_int_eq(bk_trace_parse(buf, NULL, &back), BK_OK);
    ck_assert_str_eq(back.trace_id, t.trace_id);
    ck_assert_str_eq(back.parent_id, t.span_id);
    ck_assert_int_eq(bk_trace_format(&t, buf, sizeof buf - 1), BK_ERANGE);
    bk_trace_t bad = t;
    bad.span_id[3] = 'X';
    ck_assert_int_eq(bk_trace_format(&bad, buf, sizeof buf), BK_EINVAL);
    ck_assert_int_eq(bk_trace_format(NULL, buf, sizeof buf), BK_EINVAL);
}
END_TEST

static Suite *trace_suite(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("trace");
    tcase_add_test(tc, a_new_trace_has_random_ids_and_no_parent);
    tcase_add_test(tc, a_forked_child_draws_ids_of_its_own);
    tcase_add_test(tc, a_valid_traceparent_is_continued_with_a_span_of_its_own);
    tcase_add_test(tc, an_invalid_traceparent_is_refused_and_changes_nothing);
    tcase_add_test(tc, a_later_version_is_read_as_far_as_version_00_goes);
    tcase_add_test(tc, tracestate_is_kept_only_when_valid);
    tcase_add_test(tc, a_long_tracestate_loses_long_members_first_then_the_last);
    tcase_add_test(tc, a_child_span_is_in_the_same_trace_under_its_parent);
    tcase_add_test(tc, format_writes_the_span_as_a_traceparent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(trace_suite());
}
