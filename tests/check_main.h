/* The one way a suite program runs: every case, Check's summary line printed
 * ("100%: Checks: N, Failures: 0, Errors: 0"), exit status for automake's driver.
 * SPDX-License-Identifier: MIT */
#ifndef BK_TESTS_CHECK_MAIN_H
#define BK_TESTS_CHECK_MAIN_H

#include <stdlib.h>

#include <check.h>

static inline int bk_test_run(Suite *suite)
{
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
