/* JSON values as JSON Schema sees them: numbers compared by value (1 == 1.0),
 * integers recognised by value (1.0 is one), code points counted, and multipleOf
 * decided exactly in decimal (19.99 is a multiple of 0.01 although 19.99 / 0.01
 * is 1998.9999999999998 in binary floating point).
 * SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash_int.h"
#include "schema/schema_int.h"

bool bk__json_is_integral(const json_t *v)
{
    if (json_is_integer(v))
        return true;
    if (!json_is_real(v))
        return false;
    double d = json_real_value(v);
    return isfinite(d) && floor(d) == d;
}

void bk__num_of(const json_t *v, bk__num_t *out)
{
    out->is_int = json_is_integer(v);
    out->i = out->is_int ? json_integer_value(v) : 0;
    out->d = out->is_int ? (double)out->i : json_real_value(v);
}

/* long double holds every int64 exactly on the platforms we build for (x86-64's
 * 64-bit mantissa); elsewhere the comparison is still right to double precision. */
static int cmp_ld(long double a, long double b)
{
    return (a > b) - (a < b);
}

int bk__num_cmp(const json_t *v, const bk__num_t *n)
{
    if (json_is_integer(v) && n->is_int) {
        json_int_t a = json_integer_value(v);
        return (a > n->i) - (a < n->i);
    }
    long double a = json_is_integer(v) ? (long double)json_integer_value(v) : json_real_value(v);
    long double b = n->is_int ? (long double)n->i : n->d;
    return cmp_ld(a, b);
}

static bool numbers_equal(const json_t *a, const json_t *b)
{
    bk__num_t n;
    bk__num_of(b, &n);
    return bk__num_cmp(a, &n) == 0;
}

bool bk__json_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return numbers_equal(a, b);
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!bk__json_equal(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *k;
        size_t klen;
        json_t *va;
        json_object_keylen_foreach((json_t *)a, k, klen, va) {
            json_t *vb = json_object_getn(b, k, klen);
            if (!vb || !bk__json_equal(va, vb))
                return false;
        }
        return true;
    }
    default: /* null, true, false: equal types are equal values */
        return true;
    }
}

static uint64_t mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

uint64_t bk__json_hash(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL: {
        /* Equal numbers hash alike: hash the value as a double (-0 as 0). Distinct
         * big integers may collide; equality decides. */
        double d = json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
        if (d == 0)
            d = 0;
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        return bk__hash(&bits, sizeof bits) ^ 0x6e756d; /* seeded: numbers come from documents too */
    }
    case JSON_STRING:
        return bk__hash(json_string_value(v), json_string_length(v));
    case JSON_ARRAY: {
        uint64_t h = 0x617272;
        for (size_t i = 0; i < json_array_size(v); i++)
            h = mix(h + bk__json_hash(json_array_get(v, i)));
        return h;
    }
    case JSON_OBJECT: {
        uint64_t h = 0x6f626a; /* order-independent: a sum of member hashes */
        const char *k;
        size_t klen;
        json_t *m;
        json_object_keylen_foreach((json_t *)v, k, klen, m)
            h += mix(bk__hash(k, klen) ^ bk__json_hash(m));
        return mix(h);
    }
    default:
        return mix((uint64_t)json_typeof(v) + 1);
    }
}

/* ------------------------------------------------------------------ multipleOf */

/* The shortest decimal that reads back as d (d > 0, finite): d == mant * 10^exp. */
static void shortest_decimal(double d, int64_t *mant, int *exp)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
        if (strtod(buf, NULL) == d || prec == 17)
            break;
    }
    /* buf is "D.DDDDe[+-]XX": collect the digits, then the exponent. */
    int64_t m = 0;
    int ndigits = 0;
    char *p = buf;
    for (; *p && *p != 'e'; p++) {
        if (*p >= '0' && *p <= '9') {
            m = m * 10 + (*p - '0');
            ndigits++;
        }
    }
    int e = atoi(p + 1) - (ndigits - 1);
    while (m != 0 && m % 10 == 0) { /* 1.50e+00 → 15e-1 */
        m /= 10;
        e++;
    }
    *mant = m;
    *exp = e;
}

bool bk__step_of(const json_t *v, bk__step_t *out)
{
    if (!json_is_number(v))
        return false;
    bk__num_of(v, &out->num);
    if (!(out->num.d > 0) || !isfinite(out->num.d))
        return false;
    if (out->num.is_int) {
        int64_t m = out->num.i;
        int e = 0;
        while (m % 10 == 0) {
            m /= 10;
            e++;
        }
        out->mant = m, out->exp = e;
    } else {
        shortest_decimal(out->num.d, &out->mant, &out->exp);
    }
    return true;
}

/* (b^e) mod m, for m < 2^63. */
static uint64_t pow_mod(uint64_t b, unsigned e, uint64_t m)
{
    unsigned __int128 r = 1 % m, x = b % m;
    for (; e; e >>= 1) {
        if (e & 1)
            r = r * x % m;
        x = x * x % m;
    }
    return (uint64_t)r;
}

/* Is mv * 10^ev a multiple of ms * 10^es (mv >= 0, ms > 0)? */
static bool decimal_multiple(uint64_t mv, int ev, uint64_t ms, int es)
{
    if (mv == 0)
        return true;
    if (ev >= es) /* mv * 10^(ev-es) mod ms, without ever forming the power */
        return (unsigned __int128)(mv % ms) * pow_mod(10, (unsigned)(ev - es), ms) % ms == 0;
    /* The step has more decimals: a multiple needs mv divisible by ms * 10^(es-ev),
     * which is bigger than mv once it passes 10^19. */
    unsigned __int128 b = ms;
    for (int k = 0; k < es - ev; k++) {
        b *= 10;
        if (b > mv)
            return false;
    }
    return mv % (uint64_t)b == 0;
}

bool bk__is_multiple(const json_t *v, const bk__step_t *step)
{
    if (json_is_integer(v) && step->num.is_int) {
        json_int_t a = json_integer_value(v);
        return a % step->num.i == 0;
    }
    double d = json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
    if (!isfinite(d))
        return false;
    d = fabs(d);
    if (d == 0)
        return true;
    /* Fast path for steps like 0.01: scale by 10^k (k = the step's decimals) and
     * check that the scaled value is an integer n whose n / 10^k reads back as d,
     * i.e. d has at most k decimals. Division of two exact integers is correctly
     * rounded, so the check is exact while n stays below 2^53. */
    if (step->exp < 0 && step->exp >= -22) {
        static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                       1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
        double scale = pow10[-step->exp];
        double n = nearbyint(d * scale);
        if (n < 9007199254740992.0) {
            if (n / scale != d)
                return false;
            return (uint64_t)n % (uint64_t)step->mant == 0;
        }
    }
    int64_t mv;
    int ev;
    if (json_is_integer(v) && json_integer_value(v) != INT64_MIN) {
        json_int_t a = json_integer_value(v);
        mv = a < 0 ? -a : a, ev = 0;
    } else {
        shortest_decimal(d, &mv, &ev);
    }
    return decimal_multiple((uint64_t)mv, ev, (uint64_t)step->mant, step->exp);
}
