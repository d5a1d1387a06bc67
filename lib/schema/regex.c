/* ECMAScript regular expressions (ECMA-262 with the "u" flag, as JSON Schema's
 * pattern, patternProperties and "regex" format use them) run on PCRE2.
 *
 * A pattern is parsed by ECMAScript's grammar, which alone decides validity (the
 * "regex" format), and translated into PCRE2 syntax that means what ECMAScript
 * says. PCRE2 only ever sees text the translator wrote, all of it ASCII:
 *   - every literal is written escaped (\x{..}, or \ before punctuation), so no
 *     PCRE2-only syntax ([:alpha:], \Q..\E, (*VERB), (?#..)) can leak through;
 *   - \d \w \b keep PCRE2's ASCII meaning (UTF without UCP), ECMAScript's too;
 *   - \s \S . [] [^] and lone surrogates become explicit sets;
 *   - \u \x \c \0 escapes are decoded and written as \x{..}; \p{..} names mapped;
 *   - (?<name>..) becomes a plain group and \k<name> a numbered \g{N}: PCRE2
 *     10.42 takes only ASCII group names, ECMAScript any identifier.
 * PCRE2_ALT_BSUX is not used: the translator must decode every escape anyway, to
 * refuse what ECMAScript refuses, to join surrogate pairs (\uD83D\uDE00 is one
 * code point) and to check class ranges, so it writes the code point itself.
 * SPDX-License-Identifier: MIT */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <inttypes.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8_int.h"
#include "schema/schema_int.h"

#define DEFAULT_MATCH_LIMIT 1000000u
/* The interpreter (used only when JIT is unavailable) keeps its backtracking
 * frames on the heap, in the scratch's match data, which keeps them between
 * matches: both bounds keep one hostile match from holding much memory. */
#define DEPTH_LIMIT 100000u
#define HEAP_LIMIT_KIB (16u * 1024u)
/* JIT backtracking stack of a scratch, grown on demand (sljit reserves the
 * maximum as address space; pages are used only as deep matches touch them).
 * 4 MiB is about 170,000 iterations of ^(?:a|b)*$, or a 2 MB subject for the
 * usual base64 pattern ^(?:[A-Za-z0-9+/]{4})*(?:...)?$. An overflow is
 * PCRE2_ERROR_JIT_STACKLIMIT, reported as undecided. */
#define JIT_STACK_MIN (32u * 1024u)
#define JIT_STACK_MAX (4u * 1024u * 1024u)
/* PCRE2's default limit on nested parentheses, applied by the grammar too so
 * that bk__regex_valid() and bk__regex_compile() agree. PCRE2 is given one more
 * level for the (?:..) the translation puts around backreferences. */
#define MAX_NEST 250u

#define COMPILE_OPTIONS \
    (PCRE2_UTF | PCRE2_NO_UTF_CHECK | PCRE2_DOLLAR_ENDONLY | PCRE2_MATCH_UNSET_BACKREF | \
     PCRE2_NEVER_UCP | PCRE2_NEVER_BACKSLASH_C)

/* One-code-point sets matching nothing / anything, written the same inside and
 * outside a class: what [] and [^] become. */
#define SET_NONE "\\P{Any}"
#define SET_ALL "\\p{Any}"
/* ECMAScript's . without the s flag: anything but a line terminator. */
#define DOT "[^\\n\\r\\x{2028}\\x{2029}]"
/* ECMAScript's \s (WhiteSpace and LineTerminator) and its complement, as class
 * members; complements leave out the surrogates PCRE2 refuses in UTF mode. */
#define SPACE_SET \
    "\\t-\\r\\x{20}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}" \
    "\\x{3000}\\x{feff}"
#define NONSPACE_SET \
    "\\x{0}-\\x{8}\\x{e}-\\x{1f}\\x{21}-\\x{9f}\\x{a1}-\\x{167f}\\x{1681}-\\x{1fff}" \
    "\\x{200b}-\\x{2027}\\x{202a}-\\x{202e}\\x{2030}-\\x{205e}\\x{2060}-\\x{2fff}" \
    "\\x{3001}-\\x{d7ff}\\x{e000}-\\x{fefe}\\x{ff00}-\\x{10ffff}"
/* \D and \W as class members. Not PCRE2's own \D \W there: 10.42 lets a negated
 * class holding \W or \D and a \p item match code points above 255 that \W / \D
 * should exclude ([^\W\p{L}] matches U+2028). */
#define NONDIGIT_SET "\\x{0}-\\/\\:-\\x{d7ff}\\x{e000}-\\x{10ffff}"
#define NONWORD_SET "\\x{0}-\\/\\:-\\@\\[-\\^\\`\\{-\\x{d7ff}\\x{e000}-\\x{10ffff}"

struct bk__regex {
    pcre2_code *code;
    pcre2_match_context *mctx; /* interpreter limits; read-only once compiled */
    uint32_t match_limit;
    bool jit;
};

struct bk__regex_scratch {
    pcre2_match_data *md; /* one ovector pair: only "did it match" is asked */
    /* JIT matches: this scratch's stack and the current regex's match limit (a
     * stack cannot be assigned to the regex's shared, read-only context). NULL
     * when PCRE2 has no JIT. */
    pcre2_match_context *jit_mctx;
    pcre2_jit_stack *jit_stack;
    uint32_t jit_limit; /* the match limit jit_mctx holds */
};

/* ------------------------------------------------------------------ Unicode property names */

/* ECMAScript's General_Category values (PropertyValueAliases.txt), each listed as
 * "pcre2-name alias...": the first word is what PCRE2 is given. */
static const char *const gc_values[] = {
    "C Other", "Cc Control cntrl", "Cf Format", "Cn Unassigned", "Co Private_Use", "Cs Surrogate",
    "L Letter", "LC Cased_Letter", "Ll Lowercase_Letter", "Lm Modifier_Letter", "Lo Other_Letter",
    "Lt Titlecase_Letter", "Lu Uppercase_Letter", "M Mark Combining_Mark", "Mc Spacing_Mark",
    "Me Enclosing_Mark", "Mn Nonspacing_Mark", "N Number", "Nd Decimal_Number digit",
    "Nl Letter_Number", "No Other_Number", "P Punctuation punct", "Pc Connector_Punctuation",
    "Pd Dash_Punctuation", "Pe Close_Punctuation", "Pf Final_Punctuation",
    "Pi Initial_Punctuation", "Po Other_Punctuation", "Ps Open_Punctuation", "S Symbol",
    "Sc Currency_Symbol", "Sk Modifier_Symbol", "Sm Math_Symbol", "So Other_Symbol", "Z Separator",
    "Zl Line_Separator", "Zp Paragraph_Separator", "Zs Space_Separator",
};

/* ECMAScript's binary properties (ECMA-262 table "Binary Unicode property
 * aliases"), long name first. PCRE2 10.42 knows all but Assigned (written as
 * \P{Cn}) and Changes_When_NFKC_Casefolded (pcre2_compile refuses it). */
static const char *const binary_props[] = {
    "ASCII", "ASCII_Hex_Digit AHex", "Alphabetic Alpha", "Any", "Assigned", "Bidi_Control Bidi_C",
    "Bidi_Mirrored Bidi_M", "Case_Ignorable CI", "Cased", "Changes_When_Casefolded CWCF",
    "Changes_When_Casemapped CWCM", "Changes_When_Lowercased CWL",
    "Changes_When_NFKC_Casefolded CWKCF", "Changes_When_Titlecased CWT",
    "Changes_When_Uppercased CWU", "Dash", "Default_Ignorable_Code_Point DI", "Deprecated Dep",
    "Diacritic Dia", "Emoji", "Emoji_Component EComp", "Emoji_Modifier EMod",
    "Emoji_Modifier_Base EBase", "Emoji_Presentation EPres", "Extended_Pictographic ExtPict",
    "Extender Ext", "Grapheme_Base Gr_Base", "Grapheme_Extend Gr_Ext", "Hex_Digit Hex",
    "IDS_Binary_Operator IDSB", "IDS_Trinary_Operator IDST", "ID_Continue IDC", "ID_Start IDS",
    "Ideographic Ideo", "Join_Control Join_C", "Logical_Order_Exception LOE", "Lowercase Lower",
    "Math", "Noncharacter_Code_Point NChar", "Pattern_Syntax Pat_Syn", "Pattern_White_Space Pat_WS",
    "Quotation_Mark QMark", "Radical", "Regional_Indicator RI", "Sentence_Terminal STerm",
    "Soft_Dotted SD", "Terminal_Punctuation Term", "Unified_Ideograph UIdeo", "Uppercase Upper",
    "Variation_Selector VS", "White_Space space", "XID_Continue XIDC", "XID_Start XIDS",
};

/* Script and Script_Extensions values of Unicode 15 (PropertyValueAliases.txt),
 * long name first. PCRE2 10.42 (Unicode 14) lacks Kawi and Nag_Mundari
 * (pcre2_compile refuses them); Katakana_Or_Hiragana has no code points. */
static const char *const scripts[] = {
    "Adlam Adlm", "Caucasian_Albanian Aghb", "Ahom", "Arabic Arab", "Imperial_Aramaic Armi",
    "Armenian Armn", "Avestan Avst", "Balinese Bali", "Bamum Bamu", "Bassa_Vah Bass", "Batak Batk",
    "Bengali Beng", "Bhaiksuki Bhks", "Bopomofo Bopo", "Brahmi Brah", "Braille Brai",
    "Buginese Bugi", "Buhid Buhd", "Chakma Cakm", "Canadian_Aboriginal Cans", "Carian Cari",
    "Cham", "Cherokee Cher", "Chorasmian Chrs", "Coptic Copt Qaac", "Cypro_Minoan Cpmn",
    "Cypriot Cprt", "Cyrillic Cyrl", "Devanagari Deva", "Dives_Akuru Diak", "Dogra Dogr",
    "Deseret Dsrt", "Duployan Dupl", "Egyptian_Hieroglyphs Egyp", "Elbasan Elba", "Elymaic Elym",
    "Ethiopic Ethi", "Georgian Geor", "Glagolitic Glag", "Gunjala_Gondi Gong",
    "Masaram_Gondi Gonm", "Gothic Goth", "Grantha Gran", "Greek Grek", "Gujarati Gujr",
    "Gurmukhi Guru", "Hangul Hang", "Han Hani", "Hanunoo Hano", "Hatran Hatr", "Hebrew Hebr",
    "Hiragana Hira", "Anatolian_Hieroglyphs Hluw", "Pahawh_Hmong Hmng",
    "Nyiakeng_Puachue_Hmong Hmnp", "Katakana_Or_Hiragana Hrkt", "Old_Hungarian Hung",
    "Old_Italic Ital", "Javanese Java", "Kayah_Li Kali", "Katakana Kana", "Kawi", "Kharoshthi Khar",
    "Khmer Khmr", "Khojki Khoj", "Khitan_Small_Script Kits", "Kannada Knda", "Kaithi Kthi",
    "Tai_Tham Lana", "Lao Laoo", "Latin Latn", "Lepcha Lepc", "Limbu Limb", "Linear_A Lina",
    "Linear_B Linb", "Lisu", "Lycian Lyci", "Lydian Lydi", "Mahajani Mahj", "Makasar Maka",
    "Mandaic Mand", "Manichaean Mani", "Marchen Marc", "Medefaidrin Medf", "Mende_Kikakui Mend",
    "Meroitic_Cursive Merc", "Meroitic_Hieroglyphs Mero", "Malayalam Mlym", "Modi",
    "Mongolian Mong", "Mro Mroo", "Meetei_Mayek Mtei", "Multani Mult", "Myanmar Mymr",
    "Nag_Mundari Nagm", "Nandinagari Nand", "Old_North_Arabian Narb", "Nabataean Nbat", "Newa",
    "Nko Nkoo", "Nushu Nshu", "Ogham Ogam", "Ol_Chiki Olck", "Old_Turkic Orkh", "Oriya Orya",
    "Osage Osge", "Osmanya Osma", "Old_Uyghur Ougr", "Palmyrene Palm", "Pau_Cin_Hau Pauc",
    "Old_Permic Perm", "Phags_Pa Phag", "Inscriptional_Pahlavi Phli", "Psalter_Pahlavi Phlp",
    "Phoenician Phnx", "Miao Plrd", "Inscriptional_Parthian Prti", "Rejang Rjng",
    "Hanifi_Rohingya Rohg", "Runic Runr", "Samaritan Samr", "Old_South_Arabian Sarb",
    "Saurashtra Saur", "SignWriting Sgnw", "Shavian Shaw", "Sharada Shrd", "Siddham Sidd",
    "Khudawadi Sind", "Sinhala Sinh", "Sogdian Sogd", "Old_Sogdian Sogo", "Sora_Sompeng Sora",
    "Soyombo Soyo", "Sundanese Sund", "Syloti_Nagri Sylo", "Syriac Syrc", "Tagbanwa Tagb",
    "Takri Takr", "Tai_Le Tale", "New_Tai_Lue Talu", "Tamil Taml", "Tangut Tang", "Tai_Viet Tavt",
    "Telugu Telu", "Tifinagh Tfng", "Tagalog Tglg", "Thaana Thaa", "Thai", "Tibetan Tibt",
    "Tirhuta Tirh", "Tangsa Tnsa", "Toto", "Ugaritic Ugar", "Vai Vaii", "Vithkuqi Vith",
    "Warang_Citi Wara", "Wancho Wcho", "Old_Persian Xpeo", "Cuneiform Xsux", "Yezidi Yezi",
    "Yi Yiii", "Zanabazar_Square Zanb", "Inherited Zinh Qaai", "Common Zyyy", "Unknown Zzzz",
};

/* The entry of tab whose words include name[0..len), or NULL; *first_len gets
 * the length of its first word (the name written for PCRE2). Names are
 * case-sensitive in ECMAScript, unlike PCRE2's loose matching, hence this check. */
static const char *find_word(const char *const *tab, size_t n, const char *name, size_t len,
                             size_t *first_len)
{
    for (size_t i = 0; i < n; i++) {
        const char *e = tab[i];
        *first_len = strcspn(e, " ");
        for (const char *w = e; *w != '\0';) {
            size_t wl = strcspn(w, " ");
            if (wl == len && memcmp(w, name, len) == 0)
                return e;
            w += wl;
            if (*w == ' ')
                w++;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ translator state */

typedef struct strbuf {
    char *data;
    size_t len, cap;
} strbuf_t;

typedef struct group_name {
    size_t off, len; /* decoded UTF-8 bytes in xlat_t.name_bytes */
    uint32_t group;
} group_name_t;

/* One escape or class member: a code point, or a set written as PCRE2 text. */
typedef struct atom {
    enum { ATOM_CHAR, ATOM_SET } kind;
    uint32_t cp;
    const char *member; /* ATOM_SET: as members of a class; NULL: prop */
    const char *alone;  /* ATOM_SET: outside a class; NULL: prop */
    char prop[48];      /* \p{..}, the same in and out of classes */
} atom_t;

typedef struct xlat {
    const unsigned char *p;
    size_t len, pos;
    bool dry;     /* validate only: nothing is written to out */
    strbuf_t out; /* the PCRE2 pattern */
    uint32_t ngroups;
    group_name_t *names;
    size_t nnames, names_cap;
    strbuf_t name_bytes;
    pcre2_code *id_re[2]; /* ID_Start / ID_Continue tests, compiled on first need */
    pcre2_match_data *id_md;
    bool oom;
    const char *err;
    size_t err_pos;
    size_t depth;
    bool lookaround[MAX_NEST]; /* per open group: is it an assertion? */
} xlat_t;

/* Records the first error (later ones are consequences) and returns false, so
 * parsers can "return fail(...)". */
static bool fail(xlat_t *t, const char *msg)
{
    if (t->err == NULL) {
        t->err = msg;
        t->err_pos = t->pos;
    }
    return false;
}

static bool buf_append(xlat_t *t, strbuf_t *b, const char *s, size_t n)
{
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL) {
            t->oom = true;
            return fail(t, "out of memory");
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

static bool out_str(xlat_t *t, const char *s)
{
    return t->dry || buf_append(t, &t->out, s, strlen(s));
}

static bool is_digit(unsigned c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hex_value(unsigned c)
{
    if (is_digit(c))
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return -1;
}

static bool is_surrogate(uint32_t cp)
{
    return cp >= 0xD800 && cp <= 0xDFFF;
}

/* ECMAScript's SyntaxCharacter: what an identity escape may escape under u. */
static bool is_syntax_char(unsigned c)
{
    return c != '\0' && strchr("^$\\.*+?()[]{}|", (int)c) != NULL;
}

static bool accept(xlat_t *t, unsigned char c)
{
    if (t->pos < t->len && t->p[t->pos] == c) {
        t->pos++;
        return true;
    }
    return false;
}

/* The code point at t->pos (the pattern was checked to be well-formed UTF-8). */
static uint32_t next_cp(xlat_t *t)
{
    const unsigned char *s = t->p + t->pos;
    uint32_t cp;
    size_t n;
    if (s[0] < 0x80) {
        cp = s[0];
        n = 1;
    } else if (s[0] < 0xE0) {
        cp = s[0] & 0x1Fu;
        n = 2;
    } else if (s[0] < 0xF0) {
        cp = s[0] & 0x0Fu;
        n = 3;
    } else {
        cp = s[0] & 0x07u;
        n = 4;
    }
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (s[i] & 0x3Fu);
    t->pos += n;
    return cp;
}

static size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One code point as PCRE2 text that is literal both inside and outside a class:
 * ASCII letters and digits as they are, other printable ASCII after a backslash
 * (always literal in PCRE2), the rest as \x{..}. */
static bool out_cp(xlat_t *t, uint32_t cp)
{
    char b[16];
    if (cp < 0x80 && (is_alpha(cp) || is_digit(cp))) {
        b[0] = (char)cp;
        b[1] = '\0';
    } else if (cp > 0x20 && cp < 0x7F) {
        b[0] = '\\';
        b[1] = (char)cp;
        b[2] = '\0';
    } else {
        snprintf(b, sizeof b, "\\x{%" PRIx32 "}", cp);
    }
    return out_str(t, b);
}

/* ------------------------------------------------------------------ escapes */

/* \u escape, t->pos after the u: \u{hex...}, or \uXXXX where a lead surrogate
 * followed by \uXXXX with a trail surrogate is one code point (the u flag reads
 * the pair as UTF-16, as if the code point were written literally). */
static bool parse_unicode_escape(xlat_t *t, uint32_t *cp)
{
    if (accept(t, '{')) {
        uint32_t v = 0;
        size_t n = 0;
        int h;
        while (t->pos < t->len && (h = hex_value(t->p[t->pos])) >= 0) {
            v = v * 16 + (uint32_t)h;
            if (v > 0x10FFFF)
                return fail(t, "\\u{...} above 10FFFF");
            t->pos++;
            n++;
        }
        if (n == 0 || !accept(t, '}'))
            return fail(t, "invalid \\u{...} escape");
        *cp = v;
        return true;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        int h = t->pos + i < t->len ? hex_value(t->p[t->pos + i]) : -1;
        if (h < 0)
            return fail(t, "\\u needs 4 hex digits or {...}");
        v = v * 16 + (uint32_t)h;
    }
    t->pos += 4;
    if (v >= 0xD800 && v <= 0xDBFF && t->pos + 6 <= t->len && t->p[t->pos] == '\\' &&
        t->p[t->pos + 1] == 'u') {
        uint32_t w = 0;
        size_t i;
        for (i = 0; i < 4; i++) {
            int h = hex_value(t->p[t->pos + 2 + i]);
            if (h < 0)
                break;
            w = w * 16 + (uint32_t)h;
        }
        if (i == 4 && w >= 0xDC00 && w <= 0xDFFF) {
            v = 0x10000 + ((v - 0xD800) << 10) + (w - 0xDC00);
            t->pos += 6;
        }
    }
    *cp = v;
    return true;
}

/* ECMAScript's CharacterEscape under u (and \b, \- in classes), t->pos at the
 * character after the backslash. Everything else is refused, as the u flag
 * refuses it: \a \e \z \Z \A \h, octal, \- outside classes, ... */
static bool parse_char_escape(xlat_t *t, bool in_class, uint32_t *cp)
{
    unsigned c = t->p[t->pos++];
    switch (c) {
    case 'f':
        *cp = 0x0C;
        return true;
    case 'n':
        *cp = 0x0A;
        return true;
    case 'r':
        *cp = 0x0D;
        return true;
    case 't':
        *cp = 0x09;
        return true;
    case 'v':
        *cp = 0x0B;
        return true;
    case 'c':
        if (t->pos < t->len && is_alpha(t->p[t->pos])) {
            *cp = t->p[t->pos++] % 32u;
            return true;
        }
        return fail(t, "\\c needs an ASCII letter");
    case '0':
        if (t->pos < t->len && is_digit(t->p[t->pos]))
            return fail(t, "octal escapes are not allowed");
        *cp = 0;
        return true;
    case 'x': {
        int h1 = t->pos < t->len ? hex_value(t->p[t->pos]) : -1;
        int h2 = t->pos + 1 < t->len ? hex_value(t->p[t->pos + 1]) : -1;
        if (h1 < 0 || h2 < 0)
            return fail(t, "\\x needs 2 hex digits");
        t->pos += 2;
        *cp = (uint32_t)(h1 * 16 + h2);
        return true;
    }
    case 'u':
        return parse_unicode_escape(t, cp);
    default:
        if (in_class && (c == 'b' || c == '-')) {
            *cp = c == 'b' ? 0x08 : '-';
            return true;
        }
        if (is_syntax_char(c) || c == '/') {
            *cp = c;
            return true;
        }
        t->pos--;
        return fail(t, "invalid escape");
    }
}

/* Skips [A-Za-z0-9_]* (the characters of property names and values); returns
 * how many. */
static size_t skip_word(xlat_t *t)
{
    size_t start = t->pos;
    while (t->pos < t->len &&
           (is_alpha(t->p[t->pos]) || is_digit(t->p[t->pos]) || t->p[t->pos] == '_'))
        t->pos++;
    return t->pos - start;
}

/* \p{..} / \P{..}, t->pos after the p: ECMAScript's names exactly (case and
 * underscores matter), mapped to PCRE2's. */
static bool parse_property(xlat_t *t, bool negated, atom_t *a)
{
    if (!accept(t, '{'))
        return fail(t, "\\p needs {property}");
    const char *s = (const char *)t->p;
    size_t name = t->pos, name_len, value = 0, value_len = 0;
    name_len = skip_word(t);
    bool has_value = accept(t, '=');
    if (has_value) {
        value = t->pos;
        value_len = skip_word(t);
    }
    if (!accept(t, '}'))
        return fail(t, "invalid \\p{...}");

    const char *prefix = "", *e = NULL;
    size_t first = 0;
#define NAME_IS(lit) (name_len == sizeof(lit) - 1 && memcmp(s + name, lit, name_len) == 0)
    if (!has_value) {
        e = find_word(gc_values, sizeof gc_values / sizeof *gc_values, s + name, name_len, &first);
        if (e == NULL)
            e = find_word(binary_props, sizeof binary_props / sizeof *binary_props, s + name,
                          name_len, &first);
    } else if (NAME_IS("General_Category") || NAME_IS("gc")) {
        e = find_word(gc_values, sizeof gc_values / sizeof *gc_values, s + value, value_len,
                      &first);
    } else if (NAME_IS("Script") || NAME_IS("sc") || NAME_IS("Script_Extensions") ||
               NAME_IS("scx")) {
        prefix = NAME_IS("Script") || NAME_IS("sc") ? "sc:" : "scx:";
        e = find_word(scripts, sizeof scripts / sizeof *scripts, s + value, value_len, &first);
    } else {
        t->pos = name;
        return fail(t, "unknown Unicode property name");
    }
#undef NAME_IS
    if (e == NULL) {
        t->pos = has_value ? value : name;
        return fail(t, "unknown Unicode property value");
    }

    a->kind = ATOM_SET;
    a->member = a->alone = NULL;
    if (strcmp(e, "Assigned") == 0) { /* PCRE2 has no Assigned: not Unassigned */
        prefix = "";
        e = "Cn";
        first = 2;
        negated = !negated;
    } else if (strcmp(e, "Katakana_Or_Hiragana Hrkt") == 0) { /* has no code points */
        snprintf(a->prop, sizeof a->prop, "%s", negated ? SET_ALL : SET_NONE);
        return true;
    }
    snprintf(a->prop, sizeof a->prop, "\\%c{%s%.*s}", negated ? 'P' : 'p', prefix, (int)first, e);
    return true;
}

/* The class escapes but \p: members of a class, and alone. Alone, \d \w \D \W
 * are PCRE2's own (ASCII without UCP, as in ECMAScript); PCRE2's \s is ASCII. */
static const struct {
    char c;
    const char *member, *alone;
} class_escapes[] = {
    {'d', "0-9", "\\d"},
    {'D', NONDIGIT_SET, "\\D"},
    {'w', "0-9A-Z_a-z", "\\w"},
    {'W', NONWORD_SET, "\\W"},
    {'s', SPACE_SET, "[" SPACE_SET "]"},
    {'S', NONSPACE_SET, "[^" SPACE_SET "]"},
};

/* A class escape (\d \D \w \W \s \S \p \P) or a character escape, t->pos after
 * the backslash. */
static bool parse_atom_escape(xlat_t *t, bool in_class, atom_t *a)
{
    unsigned c = t->p[t->pos];
    for (size_t i = 0; i < sizeof class_escapes / sizeof *class_escapes; i++) {
        if (class_escapes[i].c == (char)c) {
            t->pos++;
            a->kind = ATOM_SET;
            a->member = class_escapes[i].member;
            a->alone = class_escapes[i].alone;
            return true;
        }
    }
    if (c == 'p' || c == 'P') {
        t->pos++;
        return parse_property(t, c == 'P', a);
    }
    a->kind = ATOM_CHAR;
    return parse_char_escape(t, in_class, &a->cp);
}

/* ------------------------------------------------------------------ group names */

/* A non-ASCII code point's ID_Start / ID_Continue property, asked of PCRE2 (it
 * has the Unicode tables; group names outside ASCII are rare). */
static bool unicode_id_char(xlat_t *t, uint32_t cp, bool start)
{
    pcre2_code **re = &t->id_re[start ? 0 : 1];
    if (*re == NULL) {
        const char *pat = start ? "^\\p{ID_Start}" : "^\\p{ID_Continue}";
        int ec;
        PCRE2_SIZE eo;
        *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
    }
    if (*re != NULL && t->id_md == NULL)
        t->id_md = pcre2_match_data_create(1, NULL);
    if (*re == NULL || t->id_md == NULL) {
        t->oom = true;
        return fail(t, "out of memory");
    }
    char b[4];
    size_t n = utf8_encode(cp, b);
    return pcre2_match(*re, (PCRE2_SPTR)b, n, 0, 0, t->id_md, NULL) >= 0;
}

/* ECMAScript's IdentifierStartChar / IdentifierPartChar. */
static bool id_char(xlat_t *t, uint32_t cp, bool start)
{
    if (cp == '$' || cp == '_' || is_alpha(cp))
        return true;
    if (cp < 0x80)
        return !start && is_digit(cp);
    if (is_surrogate(cp))
        return false;
    if (!start && (cp == 0x200C || cp == 0x200D))
        return true;
    return unicode_id_char(t, cp, start);
}

/* A group name and its '>', t->pos after the '<'. The decoded name (\u escapes
 * allowed) is appended to t->name_bytes at [*off, *off + *len). */
static bool parse_group_name(xlat_t *t, size_t *off, size_t *len)
{
    *off = t->name_bytes.len;
    for (bool start = true;; start = false) {
        if (t->pos >= t->len)
            return fail(t, "unterminated group name");
        if (t->p[t->pos] == '>' && !start) {
            t->pos++;
            break;
        }
        size_t at = t->pos;
        uint32_t cp;
        if (t->p[t->pos] == '\\') {
            t->pos++;
            if (!accept(t, 'u'))
                return fail(t, "invalid escape in group name");
            if (!parse_unicode_escape(t, &cp))
                return false;
        } else {
            cp = next_cp(t);
        }
        if (!id_char(t, cp, start)) {
            if (t->err != NULL)
                return false;
            t->pos = at;
            return fail(t, "invalid group name");
        }
        char b[4];
        if (!buf_append(t, &t->name_bytes, b, utf8_encode(cp, b)))
            return false;
    }
    *len = t->name_bytes.len - *off;
    return true;
}

/* The group number of the name at name_bytes[off, off + len), 0 if none. */
static uint32_t find_name(const xlat_t *t, size_t off, size_t len)
{
    for (size_t i = 0; i < t->nnames; i++) {
        const group_name_t *n = &t->names[i];
        const char *b = t->name_bytes.data;
        if (n->len == len && memcmp(b + n->off, b + off, len) == 0)
            return n->group;
    }
    return 0;
}

/* Counts the capturing groups and records the names: backreferences (\1, \k<x>)
 * may point forward, and must be refused when their group does not exist. */
static bool prescan(xlat_t *t)
{
    size_t i = 0;
    while (i < t->len) {
        unsigned char c = t->p[i];
        if (c == '\\') {
            i += 2;
        } else if (c == '[') { /* no nested classes without the v flag */
            for (i++; i < t->len && t->p[i] != ']'; i++)
                if (t->p[i] == '\\')
                    i++;
            i++;
        } else if (c == '(' && (i + 1 >= t->len || t->p[i + 1] != '?')) {
            t->ngroups++;
            i++;
        } else if (c == '(' && i + 2 < t->len && t->p[i + 2] == '<' &&
                   (i + 3 >= t->len || (t->p[i + 3] != '=' && t->p[i + 3] != '!'))) {
            t->ngroups++;
            t->pos = i + 3;
            size_t off, len;
            if (!parse_group_name(t, &off, &len))
                return false;
            if (find_name(t, off, len) != 0) {
                t->pos = i + 3;
                return fail(t, "duplicate group name");
            }
            if (t->nnames == t->names_cap) {
                size_t cap = t->names_cap ? t->names_cap * 2 : 8;
                group_name_t *v = realloc(t->names, cap * sizeof *v);
                if (v == NULL) {
                    t->oom = true;
                    return fail(t, "out of memory");
                }
                t->names = v;
                t->names_cap = cap;
            }
            t->names[t->nnames++] = (group_name_t){off, len, t->ngroups};
            i = t->pos;
        } else {
            i++;
        }
    }
    t->pos = 0;
    return true;
}

/* ------------------------------------------------------------------ atoms, classes, quantifiers */

static size_t out_span(xlat_t *t, uint32_t lo, uint32_t hi)
{
    out_cp(t, lo);
    if (hi > lo) {
        out_str(t, "-");
        out_cp(t, hi);
    }
    return 1;
}

/* Writes the class member lo-hi without its surrogates (they never occur in
 * UTF-8, and PCRE2 refuses them in UTF mode); returns the number of PCRE2 items
 * written, 0 when the member held only surrogates. */
static size_t out_class_range(xlat_t *t, uint32_t lo, uint32_t hi)
{
    size_t n = 0;
    if (lo < 0xD800)
        n += out_span(t, lo, hi < 0xD800 ? hi : 0xD7FF);
    if (hi > 0xDFFF)
        n += out_span(t, lo > 0xDFFF ? lo : 0xE000, hi);
    return n;
}

static size_t out_class_atom(xlat_t *t, const atom_t *a)
{
    if (a->kind == ATOM_CHAR)
        return out_class_range(t, a->cp, a->cp);
    out_str(t, a->member != NULL ? a->member : a->prop);
    return 1;
}

static bool out_atom(xlat_t *t, const atom_t *a)
{
    if (a->kind == ATOM_CHAR)
        return is_surrogate(a->cp) ? out_str(t, SET_NONE) : out_cp(t, a->cp);
    return out_str(t, a->alone != NULL ? a->alone : a->prop);
}

static bool parse_class_atom(xlat_t *t, atom_t *a)
{
    if (accept(t, '\\')) {
        if (t->pos >= t->len)
            return fail(t, "\\ at end of pattern");
        return parse_atom_escape(t, true, a);
    }
    a->kind = ATOM_CHAR;
    a->cp = next_cp(t);
    return true;
}

/* A character class, t->pos after the '['. Members are written one by one;
 * [] and [^] (and classes of surrogates only) become SET_NONE / its complement. */
static bool parse_class(xlat_t *t)
{
    size_t start = t->pos - 1;
    bool negated = accept(t, '^');
    size_t items = 0;
    out_str(t, negated ? "[^" : "[");
    for (;;) {
        if (t->pos >= t->len) {
            t->pos = start;
            return fail(t, "missing ]");
        }
        if (accept(t, ']'))
            break;
        atom_t a, b;
        size_t at = t->pos;
        if (!parse_class_atom(t, &a))
            return false;
        if (t->pos + 1 < t->len && t->p[t->pos] == '-' && t->p[t->pos + 1] != ']') {
            t->pos++;
            if (!parse_class_atom(t, &b))
                return false;
            if (a.kind != ATOM_CHAR || b.kind != ATOM_CHAR) {
                t->pos = at;
                return fail(t, "class escape in a range");
            }
            if (a.cp > b.cp) {
                t->pos = at;
                return fail(t, "range out of order in character class");
            }
            items += out_class_range(t, a.cp, b.cp);
        } else {
            items += out_class_atom(t, &a);
        }
    }
    if (items == 0)
        out_str(t, SET_NONE);
    return out_str(t, "]");
}

/* Compares two decimal digit strings by value. */
static int cmp_decimal(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    while (alen > 1 && *a == '0')
        a++, alen--;
    while (blen > 1 && *b == '0')
        b++, blen--;
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

static bool out_decimal(xlat_t *t, const unsigned char *s, size_t n)
{
    while (n > 1 && *s == '0')
        s++, n--;
    return t->dry || buf_append(t, &t->out, (const char *)s, n);
}

static size_t skip_digits(const xlat_t *t, size_t i)
{
    while (i < t->len && is_digit(t->p[i]))
        i++;
    return i;
}

/* A quantifier at t->pos (* + ? or {..}), lazy ? included. Under u a '{' that
 * does not start a quantifier is an error, and so is a quantifier with nothing
 * quantifiable before it (a**, (?=a)*, ^*, \b+). */
static bool parse_quantifier(xlat_t *t, bool quantifiable)
{
    unsigned char c = t->p[t->pos];
    if (c == '{') {
        size_t n0 = t->pos + 1, n1 = skip_digits(t, n0), m0 = n1, m1 = n1;
        bool comma = n1 < t->len && t->p[n1] == ',';
        if (comma) {
            m0 = n1 + 1;
            m1 = skip_digits(t, m0);
        }
        if (n1 == n0 || m1 >= t->len || t->p[m1] != '}')
            return fail(t, "lone { (not a quantifier)");
        if (comma && m1 > m0 && cmp_decimal(t->p + n0, n1 - n0, t->p + m0, m1 - m0) > 0)
            return fail(t, "numbers out of order in {} quantifier");
        if (!quantifiable)
            return fail(t, "nothing to repeat");
        out_str(t, "{");
        out_decimal(t, t->p + n0, n1 - n0);
        if (comma)
            out_str(t, ",");
        if (m1 > m0)
            out_decimal(t, t->p + m0, m1 - m0);
        out_str(t, "}");
        t->pos = m1 + 1;
    } else {
        if (!quantifiable)
            return fail(t, "nothing to repeat");
        char q[2] = {(char)c, '\0'};
        out_str(t, q);
        t->pos++;
    }
    if (accept(t, '?'))
        out_str(t, "?");
    return true;
}

/* '(' at t->pos: (..), (?:..), (?=..), (?!..), (?<=..), (?<!..), (?<name>..).
 * Anything else after "(?" is PCRE2/Perl/Python syntax ECMAScript refuses. */
static bool parse_group_open(xlat_t *t)
{
    if (t->depth >= MAX_NEST)
        return fail(t, "groups nested too deeply");
    size_t start = t->pos++;
    const char *open = "(";
    bool look = false;
    if (accept(t, '?')) {
        if (accept(t, ':')) {
            open = "(?:";
        } else if (accept(t, '=')) {
            open = "(?=", look = true;
        } else if (accept(t, '!')) {
            open = "(?!", look = true;
        } else if (accept(t, '<')) {
            if (accept(t, '=')) {
                open = "(?<=", look = true;
            } else if (accept(t, '!')) {
                open = "(?<!", look = true;
            } else { /* named: validated and recorded by prescan() */
                size_t off, len;
                if (!parse_group_name(t, &off, &len))
                    return false;
                t->name_bytes.len = off;
            }
        } else {
            t->pos = start;
            return fail(t, "invalid group");
        }
    }
    t->lookaround[t->depth++] = look;
    return out_str(t, open);
}

/* An escape outside a class, t->pos after the backslash. *quantifiable is set
 * for what may take a quantifier (not \b, \B). */
static bool parse_escape(xlat_t *t, bool *quantifiable)
{
    if (t->pos >= t->len)
        return fail(t, "\\ at end of pattern");
    unsigned c = t->p[t->pos];
    *quantifiable = true;
    if (c == 'b' || c == 'B') { /* ASCII word boundary in PCRE2 without UCP too */
        t->pos++;
        *quantifiable = false;
        return out_str(t, c == 'b' ? "\\b" : "\\B");
    }
    uint64_t group = 0;
    if (c >= '1' && c <= '9') { /* backreference: its group must exist under u */
        size_t end = skip_digits(t, t->pos);
        for (size_t i = t->pos; i < end && group <= t->ngroups; i++)
            group = group * 10 + (unsigned)(t->p[i] - '0');
        if (group > t->ngroups)
            return fail(t, "backreference to a group that does not exist");
        t->pos = end;
    } else if (c == 'k') {
        t->pos++;
        size_t off, len;
        if (!accept(t, '<'))
            return fail(t, "\\k needs <name>");
        if (!parse_group_name(t, &off, &len))
            return false;
        group = find_name(t, off, len);
        t->name_bytes.len = off;
        if (group == 0)
            return fail(t, "\\k<name> names no group");
    }
    if (group != 0) {
        /* \g{N}: no digit that follows can be read as part of N. In a group:
         * PCRE2 fails a quantified unset backreference ((a)?\1+ on "") even
         * with PCRE2_MATCH_UNSET_BACKREF; (?:\1)+ matches empty, as ECMAScript. */
        char b[32];
        snprintf(b, sizeof b, "(?:\\g{%" PRIu64 "})", group);
        return out_str(t, b);
    }
    atom_t a;
    return parse_atom_escape(t, false, &a) && out_atom(t, &a);
}

/* The whole pattern: ECMAScript's grammar with the u flag, written out for
 * PCRE2 as it goes. Flat, with an explicit group stack, so a deeply nested
 * pattern cannot exhaust the C stack. */
static bool translate(xlat_t *t)
{
    if (!bk__utf8_valid((const char *)t->p, t->len))
        return fail(t, "pattern is not valid UTF-8");
    if (!prescan(t))
        return false;
    bool quantifiable = false; /* may the next token be a quantifier? */
    while (t->pos < t->len && t->err == NULL) {
        unsigned char c = t->p[t->pos];
        switch (c) {
        case '|':
            t->pos++;
            out_str(t, "|");
            quantifiable = false;
            break;
        case '(':
            parse_group_open(t);
            quantifiable = false;
            break;
        case ')':
            if (t->depth == 0)
                return fail(t, "unmatched )");
            t->pos++;
            out_str(t, ")");
            /* under u no assertion takes a quantifier, lookahead included */
            quantifiable = !t->lookaround[--t->depth];
            break;
        case '*':
        case '+':
        case '?':
        case '{':
            parse_quantifier(t, quantifiable);
            quantifiable = false;
            break;
        case '}':
        case ']':
            return fail(t, c == '}' ? "lone }" : "lone ]");
        case '^':
        case '$': /* $ only at the very end: PCRE2_DOLLAR_ENDONLY */
            t->pos++;
            out_str(t, c == '^' ? "^" : "$");
            quantifiable = false;
            break;
        case '.':
            t->pos++;
            out_str(t, DOT);
            quantifiable = true;
            break;
        case '[':
            t->pos++;
            parse_class(t);
            quantifiable = true;
            break;
        case '\\':
            t->pos++;
            parse_escape(t, &quantifiable);
            break;
        default:
            out_cp(t, next_cp(t));
            quantifiable = true;
            break;
        }
    }
    if (t->err == NULL && t->depth > 0)
        return fail(t, "missing )");
    return t->err == NULL;
}

static void xlat_init(xlat_t *t, const char *pattern, size_t len, bool dry)
{
    memset(t, 0, offsetof(xlat_t, lookaround));
    t->p = (const unsigned char *)(pattern != NULL ? pattern : "");
    t->len = pattern != NULL ? len : 0;
    t->dry = dry;
}

static void xlat_free(xlat_t *t)
{
    free(t->out.data);
    free(t->names);
    free(t->name_bytes.data);
    pcre2_code_free(t->id_re[0]);
    pcre2_code_free(t->id_re[1]);
    pcre2_match_data_free(t->id_md);
}

static void set_err(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
    if (err == NULL || errsz == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ public (hidden) API */

bk__regex_t *bk__regex_compile(const char *pattern, size_t len, uint32_t match_limit, char *err,
                               size_t errsz)
{
    xlat_t t;
    xlat_init(&t, pattern, len, false);
    if (!translate(&t) || !out_str(&t, "")) {
        if (t.oom)
            set_err(err, errsz, "out of memory");
        else
            set_err(err, errsz, "invalid ECMAScript regex: %s at offset %zu", t.err, t.err_pos);
        xlat_free(&t);
        return NULL;
    }
    bk__regex_t *re = calloc(1, sizeof *re);
    if (re == NULL) {
        xlat_free(&t);
        set_err(err, errsz, "out of memory");
        return NULL;
    }
    int ec = PCRE2_ERROR_NOMEMORY;
    PCRE2_SIZE eo;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (cc != NULL) {
        pcre2_set_parens_nest_limit(cc, MAX_NEST + 1);
        re->code = pcre2_compile((PCRE2_SPTR)t.out.data, t.out.len, COMPILE_OPTIONS, &ec, &eo, cc);
        pcre2_compile_context_free(cc);
    }
    xlat_free(&t);
    if (re->code == NULL) {
        PCRE2_UCHAR msg[128];
        if (pcre2_get_error_message(ec, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", ec);
        set_err(err, errsz, "regex not supported by PCRE2: %s", (const char *)msg);
        free(re);
        return NULL;
    }
    re->match_limit = match_limit != 0 ? match_limit : DEFAULT_MATCH_LIMIT;
    re->mctx = pcre2_match_context_create(NULL);
    if (re->mctx == NULL) {
        set_err(err, errsz, "out of memory");
        bk__regex_free(re);
        return NULL;
    }
    pcre2_set_match_limit(re->mctx, re->match_limit);
    pcre2_set_depth_limit(re->mctx, DEPTH_LIMIT);
    pcre2_set_heap_limit(re->mctx, HEAP_LIMIT_KIB);
    /* no JIT (not built in, or no executable memory): the interpreter runs it */
    re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    return re;
}

void bk__regex_free(bk__regex_t *re)
{
    if (re == NULL)
        return;
    pcre2_match_context_free(re->mctx);
    pcre2_code_free(re->code);
    free(re);
}

bk__regex_scratch_t *bk__regex_scratch_new(void)
{
    bk__regex_scratch_t *sc = calloc(1, sizeof *sc);
    if (sc == NULL)
        return NULL;
    sc->md = pcre2_match_data_create(1, NULL);
    if (sc->md == NULL)
        goto fail;
    uint32_t jit = 0;
    if (pcre2_config(PCRE2_CONFIG_JIT, &jit) >= 0 && jit) {
        sc->jit_mctx = pcre2_match_context_create(NULL);
        sc->jit_stack = pcre2_jit_stack_create(JIT_STACK_MIN, JIT_STACK_MAX, NULL);
        if (sc->jit_mctx == NULL || sc->jit_stack == NULL)
            goto fail;
        pcre2_jit_stack_assign(sc->jit_mctx, NULL, sc->jit_stack);
        sc->jit_limit = DEFAULT_MATCH_LIMIT;
        pcre2_set_match_limit(sc->jit_mctx, sc->jit_limit);
    }
    return sc;
fail:
    bk__regex_scratch_free(sc);
    return NULL;
}

void bk__regex_scratch_free(bk__regex_scratch_t *sc)
{
    if (sc == NULL)
        return;
    pcre2_match_data_free(sc->md);
    pcre2_match_context_free(sc->jit_mctx);
    pcre2_jit_stack_free(sc->jit_stack);
    free(sc);
}

/* The length of the ASCII prefix of s[0..len), 8 bytes at a time: subjects are
 * mostly short ASCII strings, and checking them byte by byte costs as much as
 * a simple match. */
static size_t ascii_prefix(const char *s, size_t len)
{
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & UINT64_C(0x8080808080808080))
            break;
    }
    while (i < len && (unsigned char)s[i] < 0x80)
        i++;
    return i;
}

int bk__regex_match(const bk__regex_t *re, bk__regex_scratch_t *sc, const char *subject, size_t len)
{
    if (subject == NULL)
        subject = "", len = 0;
    /* pcre2_jit_match() does not check UTF-8, and PCRE2_NO_UTF_CHECK is passed to
     * the interpreter: an invalid subject would be undefined behaviour there. The
     * rest after an ASCII prefix starts on a sequence boundary. */
    size_t ascii = ascii_prefix(subject, len);
    if (ascii < len && !bk__utf8_valid(subject + ascii, len - ascii))
        return -1;
    int rc;
    if (re->jit && sc->jit_mctx != NULL) {
        if (sc->jit_limit != re->match_limit) {
            pcre2_set_match_limit(sc->jit_mctx, re->match_limit);
            sc->jit_limit = re->match_limit;
        }
        rc = pcre2_jit_match(re->code, (PCRE2_SPTR)subject, len, 0, 0, sc->md, sc->jit_mctx);
    } else {
        rc = pcre2_match(re->code, (PCRE2_SPTR)subject, len, 0, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                         sc->md, re->mctx);
    }
    if (rc >= 0) /* 0: the ovector was too small for the groups; still a match */
        return 1;
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    return -1; /* match/depth/heap limit, JIT stack, out of memory */
}

bool bk__regex_valid(const char *pattern, size_t len)
{
    xlat_t t;
    xlat_init(&t, pattern, len, true);
    bool ok = translate(&t);
    xlat_free(&t);
    return ok;
}
