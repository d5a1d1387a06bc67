/* JSON Schema "format" assertions: the formats of draft 2020-12 and draft-07 that
 * assertion mode checks, each as its RFC defines it. Strings are UTF-8 and may hold
 * NUL bytes, so every check reads s[0..len) and nothing else; none allocates.
 * SPDX-License-Identifier: MIT */
#include <string.h>

#include "schema/schema_int.h"

static const char *const format_names[] = {
    [BK_FMT_UNKNOWN] = "",
    [BK_FMT_DATE_TIME] = "date-time",
    [BK_FMT_DATE] = "date",
    [BK_FMT_TIME] = "time",
    [BK_FMT_DURATION] = "duration",
    [BK_FMT_EMAIL] = "email",
    [BK_FMT_HOSTNAME] = "hostname",
    [BK_FMT_IPV4] = "ipv4",
    [BK_FMT_IPV6] = "ipv6",
    [BK_FMT_URI] = "uri",
    [BK_FMT_URI_REFERENCE] = "uri-reference",
    [BK_FMT_UUID] = "uuid",
    [BK_FMT_JSON_POINTER] = "json-pointer",
    [BK_FMT_RELATIVE_JSON_POINTER] = "relative-json-pointer",
    [BK_FMT_REGEX] = "regex",
};
#define FORMAT_COUNT (sizeof format_names / sizeof format_names[0])

bk__format_t bk__format_lookup(const char *name)
{
    if (name != NULL)
        for (size_t f = 1; f < FORMAT_COUNT; f++)
            if (strcmp(name, format_names[f]) == 0)
                return (bk__format_t)f;
    return BK_FMT_UNKNOWN;
}

const char *bk__format_name(bk__format_t f)
{
    return (size_t)f < FORMAT_COUNT ? format_names[f] : "";
}

/* ------------------------------------------------------------------ characters */
/* ASCII only, whatever the locale: a Bengali or fullwidth digit is no digit here. */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char to_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* c is one of the characters of set (never NUL, which strchr would find). */
static bool in_set(char c, const char *set)
{
    return c != '\0' && strchr(set, c) != NULL;
}

/* s[0..n) starts with p, letters in either case (ABNF strings are case-insensitive). */
static bool starts_with_ci(const char *s, size_t n, const char *p)
{
    size_t k = strlen(p);
    if (n < k)
        return false;
    for (size_t i = 0; i < k; i++)
        if (to_upper(s[i]) != to_upper(p[i]))
            return false;
    return true;
}

/* The value of the n digits at s, or -1 when one is not a digit. */
static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* ------------------------------------------------------------------ dates and times */

/* RFC 3339 full-date "YYYY-MM-DD" at s[0..10), the day checked against its month. */
static bool full_date(const char *s)
{
    static const int month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);
    if (y < 0 || s[4] != '-' || m < 1 || m > 12 || s[7] != '-' || d < 1 || d > month_days[m - 1])
        return false;
    /* February 29 needs a leap year of the (proleptic) Gregorian calendar */
    return m != 2 || d < 29 || (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
}

/* RFC 3339 full-time "HH:MM:SS[.frac]" then "Z" or "+HH:MM" / "-HH:MM", all of
 * s[0..len). T and Z may be lower case: ABNF strings are case-insensitive. */
static bool full_time(const char *s, size_t len)
{
    if (len < 9 || s[2] != ':' || s[5] != ':')
        return false;
    int h = digits(s, 2), m = digits(s + 3, 2), sec = digits(s + 6, 2);
    if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60)
        return false;
    size_t i = 8;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && is_digit(s[i]))
            i++;
        if (i == start)
            return false;
    }
    int offset = 0; /* minutes east of UTC */
    if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return false;
        offset = (s[i] == '-' ? -1 : 1) * (oh * 60 + om);
    } else if (i + 1 != len || to_upper(s[i]) != 'Z') {
        return false;
    }
    /* Leap seconds are inserted at 23:59:60 UTC, so :60 is valid only where the
     * local time less its offset is 23:59 ("15:59:60-08:00" is; "23:59:60+01:00"
     * is not). */
    return sec < 60 || ((h * 60 + m - offset) % 1440 + 1440) % 1440 == 23 * 60 + 59;
}

/* Reads the elements (1*DIGIT then a unit letter) of one part of an RFC 3339
 * duration from *i on. The ABNF nests each unit in the one before it (dur-year =
 * 1*DIGIT "Y" [dur-month], ...), so the units used must follow each other in
 * units with none left out: "P1Y2D" skips the month and is no duration. The count
 * of elements read, or -1 for a malformed one. */
static int duration_part(const char *s, size_t len, size_t *i, const char *units)
{
    const char *next = NULL; /* the unit the next element must have */
    int n = 0;
    while (*i < len && is_digit(s[*i])) {
        size_t j = *i;
        while (j < len && is_digit(s[j]))
            j++;
        char u = j < len ? to_upper(s[j]) : '\0';
        const char *unit = u != '\0' ? strchr(units, u) : NULL;
        if (unit == NULL || (next != NULL && unit != next))
            return -1;
        next = unit + 1;
        *i = j + 1;
        n++;
    }
    return n;
}

/* RFC 3339 appendix A duration: "P" then date elements (Y, M, D) and/or "T" and
 * time elements (H, M, S), or weeks alone. Integers only: the ABNF has no fractions. */
static bool duration(const char *s, size_t len)
{
    if (len < 3 || to_upper(s[0]) != 'P')
        return false;
    size_t i = 1;
    if (to_upper(s[len - 1]) == 'W') { /* dur-week mixes with no other unit */
        while (i < len - 1 && is_digit(s[i]))
            i++;
        return i == len - 1;
    }
    int date = duration_part(s, len, &i, "YMD"), time = 0;
    if (date < 0)
        return false;
    if (i < len && to_upper(s[i]) == 'T') {
        i++;
        time = duration_part(s, len, &i, "HMS");
        if (time <= 0) /* a "T" needs a time element after it */
            return false;
    }
    return i == len && date + time > 0;
}

/* ------------------------------------------------------------------ IP addresses */

/* RFC 2673 dotted-quad: four decimal octets without leading zeros (which
 * inet_aton would read as octal). */
static bool ipv4(const char *s, size_t len)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0 && (i == len || s[i++] != '.'))
            return false;
        size_t start = i;
        int v = 0;
        while (i < len && i - start < 3 && is_digit(s[i]))
            v = v * 10 + (s[i++] - '0');
        if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
            return false;
    }
    return i == len;
}

/* RFC 4291 2.2 text form (RFC 3986's IPv6address): 1-4 hex digit groups, at most
 * one "::" standing for one or more zero groups, the last two groups perhaps a
 * dotted quad. No zone id, no prefix length. */
static bool ipv6(const char *s, size_t len)
{
    size_t i = 0;
    int groups = 0;
    bool gap = false;
    if (len >= 2 && s[0] == ':' && s[1] == ':') {
        gap = true;
        i = 2;
    }
    while (i < len) {
        size_t start = i;
        while (i < len && i - start < 5 && is_hex(s[i]))
            i++;
        if (i < len && s[i] == '.') { /* the dotted quad ends the address */
            if (!ipv4(s + start, len - start))
                return false;
            groups += 2;
            break;
        }
        if (i == start || i - start > 4)
            return false;
        groups++;
        if (i == len)
            break;
        if (s[i++] != ':' || i == len) /* a single ':' needs a group after it */
            return false;
        if (s[i] == ':') {
            if (gap)
                return false;
            gap = true;
            i++;
        }
    }
    return gap ? groups <= 7 : groups == 8;
}

/* ------------------------------------------------------------------ host names */
/*
 * A label that starts "xn--" must be an A-label (RFC 5890 2.3.2.1): the Punycode
 * of a U-label that passes RFC 5891 5.4. Checked here: the Punycode itself
 * (RFC 3492), the hyphen and leading-mark rules, the code points RFC 5892 2.6
 * lists as DISALLOWED, and the contextual rules of RFC 5892 appendix A. Not
 * checked, as they need the full derived-property, bidi and normalization tables
 * or a Punycode encoder: that every other code point is PVALID, the Bidi rule
 * (RFC 5893), NFC, and that the label is the canonical encoding of its U-label.
 *
 * The Unicode 15.0 properties those rules read, as sorted closed ranges, generated
 * from the UCD's UnicodeData.txt, ArabicShaping.txt and Scripts.txt.
 */
typedef struct cp_range {
    uint32_t lo, hi;
} cp_range_t;

static const cp_range_t marks[] = { /* General_Category M (Mn, Mc, Me) */
    {0x300, 0x36F}, {0x483, 0x489}, {0x591, 0x5BD}, {0x5BF, 0x5BF}, {0x5C1, 0x5C2}, {0x5C4, 0x5C5},
    {0x5C7, 0x5C7}, {0x610, 0x61A}, {0x64B, 0x65F}, {0x670, 0x670}, {0x6D6, 0x6DC}, {0x6DF, 0x6E4},
    {0x6E7, 0x6E8}, {0x6EA, 0x6ED}, {0x711, 0x711}, {0x730, 0x74A}, {0x7A6, 0x7B0}, {0x7EB, 0x7F3},
    {0x7FD, 0x7FD}, {0x816, 0x819}, {0x81B, 0x823}, {0x825, 0x827}, {0x829, 0x82D}, {0x859, 0x85B},
    {0x898, 0x89F}, {0x8CA, 0x8E1}, {0x8E3, 0x903}, {0x93A, 0x93C}, {0x93E, 0x94F}, {0x951, 0x957},
    {0x962, 0x963}, {0x981, 0x983}, {0x9BC, 0x9BC}, {0x9BE, 0x9C4}, {0x9C7, 0x9C8}, {0x9CB, 0x9CD},
    {0x9D7, 0x9D7}, {0x9E2, 0x9E3}, {0x9FE, 0x9FE}, {0xA01, 0xA03}, {0xA3C, 0xA3C}, {0xA3E, 0xA42},
    {0xA47, 0xA48}, {0xA4B, 0xA4D}, {0xA51, 0xA51}, {0xA70, 0xA71}, {0xA75, 0xA75}, {0xA81, 0xA83},
    {0xABC, 0xABC}, {0xABE, 0xAC5}, {0xAC7, 0xAC9}, {0xACB, 0xACD}, {0xAE2, 0xAE3}, {0xAFA, 0xAFF},
    {0xB01, 0xB03}, {0xB3C, 0xB3C}, {0xB3E, 0xB44}, {0xB47, 0xB48}, {0xB4B, 0xB4D}, {0xB55, 0xB57},
    {0xB62, 0xB63}, {0xB82, 0xB82}, {0xBBE, 0xBC2}, {0xBC6, 0xBC8}, {0xBCA, 0xBCD}, {0xBD7, 0xBD7},
    {0xC00, 0xC04}, {0xC3C, 0xC3C}, {0xC3E, 0xC44}, {0xC46, 0xC48}, {0xC4A, 0xC4D}, {0xC55, 0xC56},
    {0xC62, 0xC63}, {0xC81, 0xC83}, {0xCBC, 0xCBC}, {0xCBE, 0xCC4}, {0xCC6, 0xCC8}, {0xCCA, 0xCCD},
    {0xCD5, 0xCD6}, {0xCE2, 0xCE3}, {0xCF3, 0xCF3}, {0xD00, 0xD03}, {0xD3B, 0xD3C}, {0xD3E, 0xD44},
    {0xD46, 0xD48}, {0xD4A, 0xD4D}, {0xD57, 0xD57}, {0xD62, 0xD63}, {0xD81, 0xD83}, {0xDCA, 0xDCA},
    {0xDCF, 0xDD4}, {0xDD6, 0xDD6}, {0xDD8, 0xDDF}, {0xDF2, 0xDF3}, {0xE31, 0xE31}, {0xE34, 0xE3A},
    {0xE47, 0xE4E}, {0xEB1, 0xEB1}, {0xEB4, 0xEBC}, {0xEC8, 0xECE}, {0xF18, 0xF19}, {0xF35, 0xF35},
    {0xF37, 0xF37}, {0xF39, 0xF39}, {0xF3E, 0xF3F}, {0xF71, 0xF84}, {0xF86, 0xF87}, {0xF8D, 0xF97},
    {0xF99, 0xFBC}, {0xFC6, 0xFC6}, {0x102B, 0x103E}, {0x1056, 0x1059}, {0x105E, 0x1060},
    {0x1062, 0x1064}, {0x1067, 0x106D}, {0x1071, 0x1074}, {0x1082, 0x108D}, {0x108F, 0x108F},
    {0x109A, 0x109D}, {0x135D, 0x135F}, {0x1712, 0x1715}, {0x1732, 0x1734}, {0x1752, 0x1753},
    {0x1772, 0x1773}, {0x17B4, 0x17D3}, {0x17DD, 0x17DD}, {0x180B, 0x180D}, {0x180F, 0x180F},
    {0x1885, 0x1886}, {0x18A9, 0x18A9}, {0x1920, 0x192B}, {0x1930, 0x193B}, {0x1A17, 0x1A1B},
    {0x1A55, 0x1A5E}, {0x1A60, 0x1A7C}, {0x1A7F, 0x1A7F}, {0x1AB0, 0x1ACE}, {0x1B00, 0x1B04},
    {0x1B34, 0x1B44}, {0x1B6B, 0x1B73}, {0x1B80, 0x1B82}, {0x1BA1, 0x1BAD}, {0x1BE6, 0x1BF3},
    {0x1C24, 0x1C37}, {0x1CD0, 0x1CD2}, {0x1CD4, 0x1CE8}, {0x1CED, 0x1CED}, {0x1CF4, 0x1CF4},
    {0x1CF7, 0x1CF9}, {0x1DC0, 0x1DFF}, {0x20D0, 0x20F0}, {0x2CEF, 0x2CF1}, {0x2D7F, 0x2D7F},
    {0x2DE0, 0x2DFF}, {0x302A, 0x302F}, {0x3099, 0x309A}, {0xA66F, 0xA672}, {0xA674, 0xA67D},
    {0xA69E, 0xA69F}, {0xA6F0, 0xA6F1}, {0xA802, 0xA802}, {0xA806, 0xA806}, {0xA80B, 0xA80B},
    {0xA823, 0xA827}, {0xA82C, 0xA82C}, {0xA880, 0xA881}, {0xA8B4, 0xA8C5}, {0xA8E0, 0xA8F1},
    {0xA8FF, 0xA8FF}, {0xA926, 0xA92D}, {0xA947, 0xA953}, {0xA980, 0xA983}, {0xA9B3, 0xA9C0},
    {0xA9E5, 0xA9E5}, {0xAA29, 0xAA36}, {0xAA43, 0xAA43}, {0xAA4C, 0xAA4D}, {0xAA7B, 0xAA7D},
    {0xAAB0, 0xAAB0}, {0xAAB2, 0xAAB4}, {0xAAB7, 0xAAB8}, {0xAABE, 0xAABF}, {0xAAC1, 0xAAC1},
    {0xAAEB, 0xAAEF}, {0xAAF5, 0xAAF6}, {0xABE3, 0xABEA}, {0xABEC, 0xABED}, {0xFB1E, 0xFB1E},
    {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F}, {0x101FD, 0x101FD}, {0x102E0, 0x102E0}, {0x10376, 0x1037A},
    {0x10A01, 0x10A03}, {0x10A05, 0x10A06}, {0x10A0C, 0x10A0F}, {0x10A38, 0x10A3A},
    {0x10A3F, 0x10A3F}, {0x10AE5, 0x10AE6}, {0x10D24, 0x10D27}, {0x10EAB, 0x10EAC},
    {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50}, {0x10F82, 0x10F85}, {0x11000, 0x11002},
    {0x11038, 0x11046}, {0x11070, 0x11070}, {0x11073, 0x11074}, {0x1107F, 0x11082},
    {0x110B0, 0x110BA}, {0x110C2, 0x110C2}, {0x11100, 0x11102}, {0x11127, 0x11134},
    {0x11145, 0x11146}, {0x11173, 0x11173}, {0x11180, 0x11182}, {0x111B3, 0x111C0},
    {0x111C9, 0x111CC}, {0x111CE, 0x111CF}, {0x1122C, 0x11237}, {0x1123E, 0x1123E},
    {0x11241, 0x11241}, {0x112DF, 0x112EA}, {0x11300, 0x11303}, {0x1133B, 0x1133C},
    {0x1133E, 0x11344}, {0x11347, 0x11348}, {0x1134B, 0x1134D}, {0x11357, 0x11357},
    {0x11362, 0x11363}, {0x11366, 0x1136C}, {0x11370, 0x11374}, {0x11435, 0x11446},
    {0x1145E, 0x1145E}, {0x114B0, 0x114C3}, {0x115AF, 0x115B5}, {0x115B8, 0x115C0},
    {0x115DC, 0x115DD}, {0x11630, 0x11640}, {0x116AB, 0x116B7}, {0x1171D, 0x1172B},
    {0x1182C, 0x1183A}, {0x11930, 0x11935}, {0x11937, 0x11938}, {0x1193B, 0x1193E},
    {0x11940, 0x11940}, {0x11942, 0x11943}, {0x119D1, 0x119D7}, {0x119DA, 0x119E0},
    {0x119E4, 0x119E4}, {0x11A01, 0x11A0A}, {0x11A33, 0x11A39}, {0x11A3B, 0x11A3E},
    {0x11A47, 0x11A47}, {0x11A51, 0x11A5B}, {0x11A8A, 0x11A99}, {0x11C2F, 0x11C36},
    {0x11C38, 0x11C3F}, {0x11C92, 0x11CA7}, {0x11CA9, 0x11CB6}, {0x11D31, 0x11D36},
    {0x11D3A, 0x11D3A}, {0x11D3C, 0x11D3D}, {0x11D3F, 0x11D45}, {0x11D47, 0x11D47},
    {0x11D8A, 0x11D8E}, {0x11D90, 0x11D91}, {0x11D93, 0x11D97}, {0x11EF3, 0x11EF6},
    {0x11F00, 0x11F01}, {0x11F03, 0x11F03}, {0x11F34, 0x11F3A}, {0x11F3E, 0x11F42},
    {0x13440, 0x13440}, {0x13447, 0x13455}, {0x16AF0, 0x16AF4}, {0x16B30, 0x16B36},
    {0x16F4F, 0x16F4F}, {0x16F51, 0x16F87}, {0x16F8F, 0x16F92}, {0x16FE4, 0x16FE4},
    {0x16FF0, 0x16FF1}, {0x1BC9D, 0x1BC9E}, {0x1CF00, 0x1CF2D}, {0x1CF30, 0x1CF46},
    {0x1D165, 0x1D169}, {0x1D16D, 0x1D172}, {0x1D17B, 0x1D182}, {0x1D185, 0x1D18B},
    {0x1D1AA, 0x1D1AD}, {0x1D242, 0x1D244}, {0x1DA00, 0x1DA36}, {0x1DA3B, 0x1DA6C},
    {0x1DA75, 0x1DA75}, {0x1DA84, 0x1DA84}, {0x1DA9B, 0x1DA9F}, {0x1DAA1, 0x1DAAF},
    {0x1E000, 0x1E006}, {0x1E008, 0x1E018}, {0x1E01B, 0x1E021}, {0x1E023, 0x1E024},
    {0x1E026, 0x1E02A}, {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE},
    {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF}, {0x1E8D0, 0x1E8D6}, {0x1E944, 0x1E94A},
    {0xE0100, 0xE01EF},
};
static const cp_range_t viramas[] = { /* Canonical_Combining_Class Virama (9) */
    {0x94D, 0x94D}, {0x9CD, 0x9CD}, {0xA4D, 0xA4D}, {0xACD, 0xACD}, {0xB4D, 0xB4D}, {0xBCD, 0xBCD},
    {0xC4D, 0xC4D}, {0xCCD, 0xCCD}, {0xD3B, 0xD3C}, {0xD4D, 0xD4D}, {0xDCA, 0xDCA}, {0xE3A, 0xE3A},
    {0xEBA, 0xEBA}, {0xF84, 0xF84}, {0x1039, 0x103A}, {0x1714, 0x1715}, {0x1734, 0x1734},
    {0x17D2, 0x17D2}, {0x1A60, 0x1A60}, {0x1B44, 0x1B44}, {0x1BAA, 0x1BAB}, {0x1BF2, 0x1BF3},
    {0x2D7F, 0x2D7F}, {0xA806, 0xA806}, {0xA82C, 0xA82C}, {0xA8C4, 0xA8C4}, {0xA953, 0xA953},
    {0xA9C0, 0xA9C0}, {0xAAF6, 0xAAF6}, {0xABED, 0xABED}, {0x10A3F, 0x10A3F}, {0x11046, 0x11046},
    {0x11070, 0x11070}, {0x1107F, 0x1107F}, {0x110B9, 0x110B9}, {0x11133, 0x11134},
    {0x111C0, 0x111C0}, {0x11235, 0x11235}, {0x112EA, 0x112EA}, {0x1134D, 0x1134D},
    {0x11442, 0x11442}, {0x114C2, 0x114C2}, {0x115BF, 0x115BF}, {0x1163F, 0x1163F},
    {0x116B6, 0x116B6}, {0x1172B, 0x1172B}, {0x11839, 0x11839}, {0x1193D, 0x1193E},
    {0x119E0, 0x119E0}, {0x11A34, 0x11A34}, {0x11A47, 0x11A47}, {0x11A99, 0x11A99},
    {0x11C3F, 0x11C3F}, {0x11D44, 0x11D45}, {0x11D97, 0x11D97}, {0x11F41, 0x11F42},
};
static const cp_range_t joins_left[] = { /* Joining_Type L or D */
    {0x620, 0x620}, {0x626, 0x626}, {0x628, 0x628}, {0x62A, 0x62E}, {0x633, 0x63F}, {0x641, 0x647},
    {0x649, 0x64A}, {0x66E, 0x66F}, {0x678, 0x687}, {0x69A, 0x6BF}, {0x6C1, 0x6C2}, {0x6CC, 0x6CC},
    {0x6CE, 0x6CE}, {0x6D0, 0x6D1}, {0x6FA, 0x6FC}, {0x6FF, 0x6FF}, {0x712, 0x714}, {0x71A, 0x71D},
    {0x71F, 0x727}, {0x729, 0x729}, {0x72B, 0x72B}, {0x72D, 0x72E}, {0x74E, 0x758}, {0x75C, 0x76A},
    {0x76D, 0x770}, {0x772, 0x772}, {0x775, 0x777}, {0x77A, 0x77F}, {0x7CA, 0x7EA}, {0x841, 0x845},
    {0x848, 0x848}, {0x84A, 0x853}, {0x855, 0x855}, {0x860, 0x860}, {0x862, 0x865}, {0x868, 0x868},
    {0x886, 0x886}, {0x889, 0x88D}, {0x8A0, 0x8A9}, {0x8AF, 0x8B0}, {0x8B3, 0x8B8}, {0x8BA, 0x8C8},
    {0x1807, 0x1807}, {0x1820, 0x1878}, {0x1887, 0x18A8}, {0x18AA, 0x18AA}, {0xA840, 0xA872},
    {0x10AC0, 0x10AC4}, {0x10ACD, 0x10ACD}, {0x10AD3, 0x10ADC}, {0x10ADE, 0x10AE0},
    {0x10AEB, 0x10AEE}, {0x10B80, 0x10B80}, {0x10B82, 0x10B82}, {0x10B86, 0x10B88},
    {0x10B8A, 0x10B8B}, {0x10B8D, 0x10B8D}, {0x10B90, 0x10B90}, {0x10BAD, 0x10BAE},
    {0x10D00, 0x10D21}, {0x10D23, 0x10D23}, {0x10F30, 0x10F32}, {0x10F34, 0x10F44},
    {0x10F51, 0x10F53}, {0x10F70, 0x10F73}, {0x10F76, 0x10F81}, {0x10FB0, 0x10FB0},
    {0x10FB2, 0x10FB3}, {0x10FB8, 0x10FB8}, {0x10FBB, 0x10FBC}, {0x10FBE, 0x10FBF},
    {0x10FC1, 0x10FC1}, {0x10FC4, 0x10FC4}, {0x10FCA, 0x10FCB}, {0x1E900, 0x1E943},
};
static const cp_range_t joins_right[] = { /* Joining_Type R or D */
    {0x620, 0x620}, {0x622, 0x63F}, {0x641, 0x64A}, {0x66E, 0x66F}, {0x671, 0x673}, {0x675, 0x6D3},
    {0x6D5, 0x6D5}, {0x6EE, 0x6EF}, {0x6FA, 0x6FC}, {0x6FF, 0x6FF}, {0x710, 0x710}, {0x712, 0x72F},
    {0x74D, 0x77F}, {0x7CA, 0x7EA}, {0x840, 0x858}, {0x860, 0x860}, {0x862, 0x865}, {0x867, 0x86A},
    {0x870, 0x882}, {0x886, 0x886}, {0x889, 0x88E}, {0x8A0, 0x8AC}, {0x8AE, 0x8C8},
    {0x1807, 0x1807}, {0x1820, 0x1878}, {0x1887, 0x18A8}, {0x18AA, 0x18AA}, {0xA840, 0xA871},
    {0x10AC0, 0x10AC5}, {0x10AC7, 0x10AC7}, {0x10AC9, 0x10ACA}, {0x10ACE, 0x10AD6},
    {0x10AD8, 0x10AE1}, {0x10AE4, 0x10AE4}, {0x10AEB, 0x10AEF}, {0x10B80, 0x10B91},
    {0x10BA9, 0x10BAE}, {0x10D01, 0x10D23}, {0x10F30, 0x10F44}, {0x10F51, 0x10F54},
    {0x10F70, 0x10F81}, {0x10FB0, 0x10FB0}, {0x10FB2, 0x10FB6}, {0x10FB8, 0x10FBF},
    {0x10FC1, 0x10FC4}, {0x10FC9, 0x10FCA}, {0x1E900, 0x1E943},
};
static const cp_range_t greek[] = { /* Script Greek */
    {0x370, 0x373}, {0x375, 0x377}, {0x37A, 0x37D}, {0x37F, 0x37F}, {0x384, 0x384}, {0x386, 0x386},
    {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3E1}, {0x3F0, 0x3FF},
    {0x1D26, 0x1D2A}, {0x1D5D, 0x1D61}, {0x1D66, 0x1D6A}, {0x1DBF, 0x1DBF}, {0x1F00, 0x1F15},
    {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FC4},
    {0x1FC6, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FDD, 0x1FEF}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFE},
    {0x2126, 0x2126}, {0xAB65, 0xAB65}, {0x10140, 0x1018E}, {0x101A0, 0x101A0}, {0x1D200, 0x1D245},
};
static const cp_range_t hebrew[] = { /* Script Hebrew */
    {0x591, 0x5C7}, {0x5D0, 0x5EA}, {0x5EF, 0x5F4}, {0xFB1D, 0xFB36}, {0xFB38, 0xFB3C},
    {0xFB3E, 0xFB3E}, {0xFB40, 0xFB41}, {0xFB43, 0xFB44}, {0xFB46, 0xFB4F},
};
static const cp_range_t kana_han[] = { /* Script Hiragana, Katakana or Han */
    {0x2E80, 0x2E99}, {0x2E9B, 0x2EF3}, {0x2F00, 0x2FD5}, {0x3005, 0x3005}, {0x3007, 0x3007},
    {0x3021, 0x3029}, {0x3038, 0x303B}, {0x3041, 0x3096}, {0x309D, 0x309F}, {0x30A1, 0x30FA},
    {0x30FD, 0x30FF}, {0x31F0, 0x31FF}, {0x32D0, 0x32FE}, {0x3300, 0x3357}, {0x3400, 0x4DBF},
    {0x4E00, 0x9FFF}, {0xF900, 0xFA6D}, {0xFA70, 0xFAD9}, {0xFF66, 0xFF6F}, {0xFF71, 0xFF9D},
    {0x16FE2, 0x16FE3}, {0x16FF0, 0x16FF1}, {0x1AFF0, 0x1AFF3}, {0x1AFF5, 0x1AFFB},
    {0x1AFFD, 0x1AFFE}, {0x1B000, 0x1B122}, {0x1B132, 0x1B132}, {0x1B150, 0x1B152},
    {0x1B155, 0x1B155}, {0x1B164, 0x1B167}, {0x1F200, 0x1F200}, {0x20000, 0x2A6DF},
    {0x2A700, 0x2B739}, {0x2B740, 0x2B81D}, {0x2B820, 0x2CEA1}, {0x2CEB0, 0x2EBE0},
    {0x2F800, 0x2FA1D}, {0x30000, 0x3134A}, {0x31350, 0x323AF},
};

static bool in_ranges(const cp_range_t *r, size_t n, uint32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < r[mid].lo)
            hi = mid;
        else if (c > r[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}
#define IN(table, c) in_ranges(table, sizeof table / sizeof table[0], c)

/* Joining_Type T (transparent) is Mn, Me and Cf, plus U+1E94B ADLAM NASALIZATION
 * MARK (ArabicShaping.txt). Cf is left out: of it a U-label holds only ZWJ and
 * ZWNJ, which are not T. Mc is let in, sparing a table of its own; that matters
 * only where a spacing mark of a non-joining script stands beside a joining letter,
 * and errs toward accepting. */
static bool transparent(uint32_t c)
{
    return IN(marks, c) || c == 0x1E94B;
}

/* RFC 5892 A.1's second way for the ZWNJ at u[k]: it stands between letters that
 * join it, as (Joining_Type:{L,D})(Joining_Type:T)*\u200C(Joining_Type:T)*(Joining_Type:{R,D}). */
static bool zwnj_joins(const uint32_t *u, size_t n, size_t k)
{
    size_t before = k, after = k + 1;
    while (before > 0 && transparent(u[before - 1]))
        before--;
    while (after < n && transparent(u[after]))
        after++;
    return before > 0 && IN(joins_left, u[before - 1]) && after < n && IN(joins_right, u[after]);
}

/* RFC 5892 2.6 and appendix A for the code point u[k] of the U-label u[0..n):
 * false for a DISALLOWED exception or a CONTEXTJ / CONTEXTO code point out of its
 * context. 0 stands for "no code point" before the first and after the last. */
static bool idna_context(const uint32_t *u, size_t n, size_t k)
{
    uint32_t before = k > 0 ? u[k - 1] : 0, after = k + 1 < n ? u[k + 1] : 0;
    switch (u[k]) {
    case 0x0640: case 0x07FA: case 0x302E: case 0x302F: case 0x3031: case 0x3032:
    case 0x3033: case 0x3034: case 0x3035: case 0x303B:
        return false;
    case 0x200C: /* ZERO WIDTH NON-JOINER */
        return IN(viramas, before) || zwnj_joins(u, n, k);
    case 0x200D: /* ZERO WIDTH JOINER */
        return IN(viramas, before);
    case 0x00B7: /* MIDDLE DOT, as in Catalan "l·l" */
        return before == 'l' && after == 'l';
    case 0x0375: /* GREEK LOWER NUMERAL SIGN (KERAIA) */
        return IN(greek, after);
    case 0x05F3: case 0x05F4: /* HEBREW PUNCTUATION GERESH, GERSHAYIM */
        return IN(hebrew, before);
    case 0x30FB: /* KATAKANA MIDDLE DOT: the label must hold some kana or Han */
        for (size_t i = 0; i < n; i++)
            if (IN(kana_han, u[i]))
                return true;
        return false;
    }
    /* Arabic-Indic (U+0660..0669) and extended Arabic-Indic (U+06F0..06F9) digits
     * look alike: a label may use either set, not both */
    uint32_t other;
    if (u[k] >= 0x0660 && u[k] <= 0x0669)
        other = 0x06F0;
    else if (u[k] >= 0x06F0 && u[k] <= 0x06F9)
        other = 0x0660;
    else
        return true;
    for (size_t i = 0; i < n; i++)
        if (u[i] >= other && u[i] <= other + 9)
            return false;
    return true;
}

/* RFC 3492 Punycode parameters */
enum { PUNY_BASE = 36, PUNY_TMIN = 1, PUNY_TMAX = 26, PUNY_SKEW = 38, PUNY_DAMP = 700 };

/* RFC 3492 6.1 bias adaptation. */
static uint32_t puny_adapt(uint32_t delta, uint32_t points, bool first)
{
    delta = first ? delta / PUNY_DAMP : delta / 2;
    delta += delta / points;
    uint32_t k = 0;
    while (delta > ((PUNY_BASE - PUNY_TMIN) * PUNY_TMAX) / 2) {
        delta /= PUNY_BASE - PUNY_TMIN;
        k += PUNY_BASE;
    }
    return k + (PUNY_BASE - PUNY_TMIN + 1) * delta / (delta + PUNY_SKEW);
}

static int puny_digit(char c)
{
    if (is_digit(c))
        return c - '0' + 26;
    return is_alpha(c) ? to_upper(c) - 'A' : -1;
}

/* RFC 3492 6.2: decodes the Punycode s[0..n) (LDH characters) into out, which has
 * room for n code points (each takes at least one character). The count of code
 * points, or 0 when s is not Punycode or decodes to no Unicode scalar value. */
static size_t puny_decode(const char *s, size_t n, uint32_t *out)
{
    size_t count = 0, in = 0;
    const char *delim = NULL;
    for (size_t k = 0; k < n; k++)
        if (s[k] == '-')
            delim = s + k;
    /* the basic code points come before the last delimiter; with none before it,
     * the delimiter is no delimiter but a (bad) digit */
    if (delim != NULL && delim > s) {
        for (; s + count < delim; count++)
            out[count] = (unsigned char)s[count];
        in = count + 1;
    }
    uint32_t cp = 0x80, i = 0, bias = 72;
    while (in < n) {
        uint32_t old = i, w = 1;
        for (uint32_t k = PUNY_BASE;; k += PUNY_BASE) {
            int d = in < n ? puny_digit(s[in++]) : -1;
            if (d < 0 || (uint32_t)d > (UINT32_MAX - i) / w)
                return 0;
            i += (uint32_t)d * w;
            uint32_t t = k <= bias ? PUNY_TMIN : k >= bias + PUNY_TMAX ? PUNY_TMAX : k - bias;
            if ((uint32_t)d < t)
                break;
            if (w > UINT32_MAX / (PUNY_BASE - t))
                return 0;
            w *= PUNY_BASE - t;
        }
        bias = puny_adapt(i - old, (uint32_t)count + 1, old == 0);
        if (i / (count + 1) > 0x10FFFF - cp)
            return 0;
        cp += i / (uint32_t)(count + 1);
        i %= (uint32_t)(count + 1);
        if (cp >= 0xD800 && cp <= 0xDFFF)
            return 0;
        memmove(out + i + 1, out + i, (count - i) * sizeof *out);
        out[i++] = cp;
        count++;
    }
    return count;
}

/* s[0..n) (after "xn--", LDH characters) is the Punycode of a U-label. */
static bool a_label(const char *s, size_t n)
{
    uint32_t u[63];
    size_t count = puny_decode(s, n, u), k;
    for (k = 0; k < count && u[k] < 0x80; k++)
        ;
    if (k == count) /* no Punycode, or a U-label with no non-ASCII code point */
        return false;
    /* RFC 5891 4.2.3.1-2: the hyphen rules hold for the U-label too, and it may
     * not start with a combining mark */
    if (u[0] == '-' || u[count - 1] == '-' || (count >= 4 && u[2] == '-' && u[3] == '-') ||
        IN(marks, u[0]))
        return false;
    for (k = 0; k < count; k++)
        if (!idna_context(u, count, k))
            return false;
    return true;
}

/* One label of a host name: 1-63 letters, digits and hyphens, no hyphen first or
 * last (RFC 1123 2.1 allows a digit first). */
static bool host_label(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '-')
            return false;
    /* RFC 5891 4.2.3.1: "--" in the 3rd and 4th positions marks an encoded label,
     * and "xn--" (any case) is the only such prefix in use */
    if (n >= 4 && s[2] == '-' && s[3] == '-')
        return starts_with_ci(s, n, "xn--") && a_label(s + 4, n - 4);
    return true;
}

/* RFC 1123 host name: dot-separated labels, 253 characters at most (the 255
 * octets of a name in DNS wire form, less the first length octet and the root
 * label's). No trailing dot: the root label is not part of a host name. */
static bool hostname(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        if (!host_label(s + start, i - start))
            return false;
        start = i + 1;
    }
    return true;
}

/* ------------------------------------------------------------------ email */

static bool is_atext(char c)
{
    return is_alpha(c) || is_digit(c) || in_set(c, "!#$%&'*+-/=?^_`{|}~");
}

/* RFC 5321 4.1.2 Mailbox: a local part (a Dot-string, or a Quoted-string of
 * printable ASCII) "@" a domain (a host name, or an address literal in brackets). */
static bool email(const char *s, size_t len)
{
    size_t i = 0;
    if (len > 0 && s[0] == '"') {
        for (i = 1; i < len && s[i] != '"'; i++) {
            if (s[i] == '\\') /* quoted-pairSMTP: any printable after it, '"' too */
                i++;
            if (i == len || s[i] < ' ' || s[i] > '~')
                return false;
        }
        if (i++ == len)
            return false;
    } else {
        /* Dot-string: atoms of atext joined by single dots */
        for (; i < len && s[i] != '@'; i++)
            if (s[i] == '.' ? i == 0 || s[i - 1] == '.' : !is_atext(s[i]))
                return false;
        if (i == 0 || s[i - 1] == '.')
            return false;
    }
    if (i == len || s[i] != '@')
        return false;
    const char *d = s + i + 1;
    size_t n = len - i - 1;
    if (n < 2 || d[0] != '[' || d[n - 1] != ']')
        return hostname(d, n);
    /* address literal: IPv4, or "IPv6:" (any case) and IPv6; RFC 5321's general
     * form "tag:content" has no tag registered for it */
    if (starts_with_ci(d + 1, n - 2, "IPv6:"))
        return ipv6(d + 6, n - 7);
    return ipv4(d + 1, n - 2);
}

/* ------------------------------------------------------------------ URIs */

/* s[0..n) has only unreserved and sub-delims characters, percent-encoded octets
 * and the characters of extra (RFC 3986 2.1-2.3). */
static bool uri_chars(const char *s, size_t n, const char *extra)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (n - i < 3 || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
                return false;
            i += 2;
        } else if (!is_alpha(s[i]) && !is_digit(s[i]) && !in_set(s[i], "-._~!$&'()*+,;=") &&
                   !in_set(s[i], extra)) {
            return false;
        }
    }
    return true;
}

/* RFC 3986 3.2.2 IP-literal, between its brackets: IPv6address, or IPvFuture
 * ("v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ), with no percent-encoding). */
static bool ip_literal(const char *s, size_t n)
{
    if (n == 0 || to_upper(s[0]) != 'V')
        return ipv6(s, n);
    size_t i = 1;
    while (i < n && is_hex(s[i]))
        i++;
    return i > 1 && i + 1 < n && s[i] == '.' && memchr(s + i + 1, '%', n - i - 1) == NULL &&
           uri_chars(s + i + 1, n - i - 1, ":");
}

/* RFC 3986 3.2 authority: [ userinfo "@" ] host [ ":" port ]. The host is an
 * IP-literal or a reg-name; a reg-name takes every IPv4address too, so
 * "999.999.999.999" is a (reg-name) host. */
static bool authority(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (at != NULL) {
        if (!uri_chars(s, (size_t)(at - s), ":"))
            return false;
        n -= (size_t)(at + 1 - s);
        s = at + 1;
    }
    size_t host;
    if (n > 0 && s[0] == '[') {
        const char *end = memchr(s, ']', n);
        if (end == NULL || !ip_literal(s + 1, (size_t)(end - s - 1)))
            return false;
        host = (size_t)(end + 1 - s);
    } else {
        const char *colon = memchr(s, ':', n);
        host = colon != NULL ? (size_t)(colon - s) : n;
        if (!uri_chars(s, host, ""))
            return false;
    }
    if (host < n && s[host] != ':')
        return false;
    for (size_t i = host + 1; i < n; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

/* RFC 3986 URI-reference, or with absolute an URI (scheme required):
 * [ scheme ":" ] [ "//" authority ] path [ "?" query ] [ "#" fragment ]. */
static bool uri(const char *s, size_t len, bool absolute)
{
    size_t i = 0;
    while (i < len && (is_alpha(s[i]) || (i > 0 && (is_digit(s[i]) || in_set(s[i], "+-.")))))
        i++;
    bool scheme = i > 0 && i < len && s[i] == ':';
    if (scheme)
        i++;
    else if (absolute)
        return false;
    else
        i = 0;
    size_t end = i; /* of the hier-part (or relative-part) */
    while (end < len && s[end] != '?' && s[end] != '#')
        end++;
    if (end - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
        size_t a = i + 2;
        for (i = a; i < end && s[i] != '/';)
            i++;
        if (!authority(s + a, i - a))
            return false;
    } else if (!scheme) {
        /* RFC 3986 4.2: a relative path's first segment has no ':', which would
         * read as the end of a scheme ("./a:b" for "a:b") */
        for (size_t k = i; k < end && s[k] != '/'; k++)
            if (s[k] == ':')
                return false;
    }
    if (!uri_chars(s + i, end - i, ":@/"))
        return false;
    /* the query ends at '#'; query and fragment take pchar, '/' and '?' */
    if (end < len && s[end] == '?') {
        i = end + 1;
        for (end = i; end < len && s[end] != '#';)
            end++;
        if (!uri_chars(s + i, end - i, ":@/?"))
            return false;
    }
    return end == len || uri_chars(s + end + 1, len - end - 1, ":@/?");
}

/* ------------------------------------------------------------------ the rest */

/* RFC 4122 3 string form: 8-4-4-4-12 hex digits, any version and variant. */
static bool uuid(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < len; i++)
        if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : !is_hex(s[i]))
            return false;
    return true;
}

/* RFC 6901: empty, or "/"-prefixed reference tokens in which '~' only starts the
 * escapes "~0" and "~1". Any other character may appear, NUL too. */
static bool json_pointer(const char *s, size_t len)
{
    if (len > 0 && s[0] != '/')
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '~' && (i + 1 == len || (s[i + 1] != '0' && s[i + 1] != '1')))
            return false;
    return true;
}

/* draft-handrews-relative-json-pointer-01: a non-negative integer without leading
 * zeros, then "#" or a JSON pointer. */
static bool relative_json_pointer(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && is_digit(s[i]))
        i++;
    if (i == 0 || (s[0] == '0' && i > 1))
        return false;
    return (i + 1 == len && s[i] == '#') || json_pointer(s + i, len - i);
}

bool bk__format_check(bk__format_t f, const char *s, size_t len)
{
    switch (f) {
    case BK_FMT_DATE_TIME:
        return len > 11 && full_date(s) && to_upper(s[10]) == 'T' && full_time(s + 11, len - 11);
    case BK_FMT_DATE:
        return len == 10 && full_date(s);
    case BK_FMT_TIME:
        return full_time(s, len);
    case BK_FMT_DURATION:
        return duration(s, len);
    case BK_FMT_EMAIL:
        return email(s, len);
    case BK_FMT_HOSTNAME:
        return hostname(s, len);
    case BK_FMT_IPV4:
        return ipv4(s, len);
    case BK_FMT_IPV6:
        return ipv6(s, len);
    case BK_FMT_URI:
        return uri(s, len, true);
    case BK_FMT_URI_REFERENCE:
        return uri(s, len, false);
    case BK_FMT_UUID:
        return uuid(s, len);
    case BK_FMT_JSON_POINTER:
        return json_pointer(s, len);
    case BK_FMT_RELATIVE_JSON_POINTER:
        return relative_json_pointer(s, len);
    case BK_FMT_REGEX:
        return bk__regex_valid(s, len);
    case BK_FMT_UNKNOWN:
        break;
    }
    return true;
}
