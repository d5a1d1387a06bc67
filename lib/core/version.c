/* The version of the library that is loaded, which may differ from the headers a
 * program was compiled with.
 * SPDX-License-Identifier: MIT */
#include <backend/core.h>

const char *bk_version(void)
{
    return BK_VERSION_STRING;
}

unsigned bk_version_num(void)
{
    return BK_VERSION_NUM;
}
