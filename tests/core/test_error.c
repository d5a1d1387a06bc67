/* The internal bk_error_t helpers (lib/core/error.c), linked into this program
 * from their sources (they are hidden in the library), and the HTTP column of the
 * status table.
 * SPDX-License-Identifier: MIT */
#include <string.h>

#include <check.h>

#include "check_main.h"

#include "core/error_int.h"
#include "core/utf8_int.h"

START_TEST(error_sets_code_and_message)
{
    bk_error_t e;
    memset(&e, 0x5a, sizeof e); /* garbage the clear must remove */
    bk__error_clear(&e);
    ck_assert_int_eq(e.code, BK_OK);
    ck_assert_str_eq(e.message, "");
    ck_assert_str_eq(e.sqlstate, "");
    ck_assert_uint_eq(e.line, 0);
    ck_assert_int_eq(bk__error(&e, BK_EINVAL, "role \"%s\" is unknown", "admin"), BK_EINVAL);
    ck_assert_int_eq(e.code, BK_EINVAL);
    ck_assert_str_eq(e.message, "role \"admin\" is unknown");
    ck_assert_int_eq(bk__error(&e, BK_ENOMEM, NULL), BK_ENOMEM);
    ck_assert_str_eq(e.message, "out of memory");
    ck_assert_int_eq(bk__error(NULL, BK_EIO, "x"), BK_EIO); /* NULL: the code alone */
    bk__error_clear(NULL);
}
END_TEST

/* Long text is cut at a character boundary; bad bytes are repaired: every field
 * is always printable as UTF-8. */
START_TEST(error_text_is_valid_utf8)
{
    bk_error_t e;
    bk__error_clear(&e);
    char lng[600];
    for (size_t i = 0; i + 3 < sizeof lng; i += 3)
        memcpy(lng + i, "\xe6\x97\xa5", 3); /* U+65E5, three bytes */
    lng[597] = '\0';
    bk__error(&e, BK_EINVAL, "%s", lng);
    size_t n = strlen(e.message);
    ck_assert_uint_le(n, sizeof e.message - 1);
    ck_assert_uint_eq(n % 3, 0); /* whole characters only */
    ck_assert(bk__utf8_valid(e.message, n));
    bk__error(&e, BK_EINVAL, "bad byte \xff here");
    ck_assert_str_eq(e.message, "bad byte \xef\xbf\xbd here");
    bk__error_field(e.constraint, sizeof e.constraint, "users_email_key");
    ck_assert_str_eq(e.constraint, "users_email_key");
    bk__error_field(e.sqlstate, sizeof e.sqlstate, "23505xyz"); /* cut to the field */
    ck_assert_str_eq(e.sqlstate, "23505");
    bk__error_field(e.file, sizeof e.file, NULL);
    ck_assert_str_eq(e.file, "");
}
END_TEST

START_TEST(every_code_has_an_http_status)
{
    const int codes[] = {
#define CODE_(name, value, text, http) BK_##name,
        BK_ERRNO_MAP(CODE_)
#undef CODE_
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        int st = bk_http_status_of(codes[i]);
        ck_assert_msg(st >= 400 && st <= 599, "%s: %d", bk_err_name(codes[i]), st);
    }
    ck_assert_int_eq(bk_http_status_of(BK_OK), 200);
    ck_assert_int_eq(bk_http_status_of(BK_EINVAL), 400);
    ck_assert_int_eq(bk_http_status_of(BK_EJWT_EXPIRED), 401);
    ck_assert_int_eq(bk_http_status_of(BK_EFORBIDDEN), 403);
    ck_assert_int_eq(bk_http_status_of(BK_ENOTFOUND), 404);
    ck_assert_int_eq(bk_http_status_of(BK_ECONFLICT), 409);
    ck_assert_int_eq(bk_http_status_of(BK_ENOMEM), 500);
    ck_assert_int_eq(bk_http_status_of(BK_EUPSTREAM), 502);
    ck_assert_int_eq(bk_http_status_of(BK_EUNAVAIL), 503);
    ck_assert_int_eq(bk_http_status_of(BK_ETIMEDOUT), 504);
    ck_assert_int_eq(bk_http_status_of(-9999), 500); /* not in the table: ours */
}
END_TEST

static Suite *error_suite(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("error");
    tcase_add_test(tc, error_sets_code_and_message);
    tcase_add_test(tc, error_text_is_valid_utf8);
    tcase_add_test(tc, every_code_has_an_http_status);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return bk_test_run(error_suite());
}
