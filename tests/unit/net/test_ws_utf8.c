/* Unit tests for src/net/ws_utf8.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/ws_utf8.h"

/* Encodes code point cp (any value up to U+10FFFF, surrogates included) the textbook way. */
static size_t encode(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Feeds byte by byte; returns the index of the byte at which the state became REJECT, or -1. */
static int reject_index(const uint8_t *p, size_t n) {
    uint32_t st = WS_UTF8_ACCEPT;
    for (size_t i = 0; i < n; i++) {
        st = ws_utf8_feed(st, p + i, 1);
        if (st == WS_UTF8_REJECT)
            return (int)i;
    }
    return -1;
}

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static void test_valid_chars(void **state) {
    assert_true(ws_utf8_valid(BYTES('a')));
    assert_true(ws_utf8_valid(BYTES(0xC3, 0xA9)));             /* é */
    assert_true(ws_utf8_valid(BYTES(0xE2, 0x82, 0xAC)));       /* € */
    assert_true(ws_utf8_valid(BYTES(0xF0, 0x9D, 0x84, 0x9E))); /* 𝄞 */
    /* Autobahn 6.2.x: "κόσμε" */
    assert_true(
        ws_utf8_valid(BYTES(0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5)));
    assert_true(ws_utf8_valid((const uint8_t *)"", 0));
    assert_true(ws_utf8_valid(NULL, 0));
}

static void test_boundaries(void **state) {
    assert_true(ws_utf8_valid(BYTES(0x00)));                   /* U+0000 */
    assert_true(ws_utf8_valid(BYTES(0x7F)));                   /* U+007F */
    assert_true(ws_utf8_valid(BYTES(0xC2, 0x80)));             /* U+0080 */
    assert_true(ws_utf8_valid(BYTES(0xDF, 0xBF)));             /* U+07FF */
    assert_true(ws_utf8_valid(BYTES(0xE0, 0xA0, 0x80)));       /* U+0800 */
    assert_true(ws_utf8_valid(BYTES(0xED, 0x9F, 0xBF)));       /* U+D7FF */
    assert_true(ws_utf8_valid(BYTES(0xEE, 0x80, 0x80)));       /* U+E000 */
    assert_true(ws_utf8_valid(BYTES(0xEF, 0xBF, 0xBF)));       /* U+FFFF */
    assert_true(ws_utf8_valid(BYTES(0xF0, 0x90, 0x80, 0x80))); /* U+10000 */
    assert_true(ws_utf8_valid(BYTES(0xF4, 0x8F, 0xBF, 0xBF))); /* U+10FFFF */
    /* Just past each boundary, in the overlong or out-of-range direction. */
    assert_false(ws_utf8_valid(BYTES(0xC1, 0xBF)));             /* U+007F overlong */
    assert_false(ws_utf8_valid(BYTES(0xE0, 0x9F, 0xBF)));       /* U+07FF overlong */
    assert_false(ws_utf8_valid(BYTES(0xF0, 0x8F, 0xBF, 0xBF))); /* U+FFFF overlong */
    assert_false(ws_utf8_valid(BYTES(0xF4, 0x90, 0x80, 0x80))); /* U+110000 */
    assert_false(ws_utf8_valid(BYTES(0xED, 0xA0, 0x80)));       /* U+D800 */
    assert_false(ws_utf8_valid(BYTES(0xED, 0xBF, 0xBF)));       /* U+DFFF */
}

/* Every scalar value encodes to valid UTF-8, whole and byte by byte; every surrogate does not. */
static void test_all_code_points(void **state) {
    uint8_t b[4];
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n = encode(cp, b);
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (ws_utf8_valid(b, n) == surrogate)
            fail_msg("U+%04X", (unsigned)cp);
        uint32_t st = WS_UTF8_ACCEPT;
        for (size_t i = 0; i < n; i++)
            st = ws_utf8_feed(st, b + i, 1);
        if ((st == WS_UTF8_ACCEPT) == surrogate)
            fail_msg("U+%04X byte by byte", (unsigned)cp);
    }
}

/* Each invalid class, with the index of the first byte after which no continuation could make
 * the input valid: that is where the validator must reject. */
static void test_invalid_fail_fast(void **state) {
    static const struct {
        uint8_t b[8];
        size_t n;
        int at;
    } cases[] = {
        {{0x80}, 1, 0},                         /* lone continuation */
        {{0xBF}, 1, 0},                         /* lone continuation */
        {{0xC0, 0x80}, 2, 0},                   /* overlong U+0000 */
        {{0xC1, 0xBF}, 2, 0},                   /* overlong U+007F */
        {{0xE0, 0x80, 0x80}, 3, 1},             /* overlong 3-byte */
        {{0xE0, 0x9F, 0xBF}, 3, 1},             /* overlong U+07FF */
        {{0xF0, 0x80, 0x80, 0x80}, 4, 1},       /* overlong 4-byte */
        {{0xF0, 0x8F, 0xBF, 0xBF}, 4, 1},       /* overlong U+FFFF */
        {{0xED, 0xA0, 0x80}, 3, 1},             /* U+D800 */
        {{0xED, 0xAD, 0xBF}, 3, 1},             /* U+DB7F */
        {{0xED, 0xBF, 0xBF}, 3, 1},             /* U+DFFF */
        {{0xF4, 0x90, 0x80, 0x80}, 4, 1},       /* U+110000 */
        {{0xF4, 0xBF, 0xBF, 0xBF}, 4, 1},       /* U+13FFFF */
        {{0xF5, 0x80, 0x80, 0x80}, 4, 0},       /* F5 never appears */
        {{0xF7, 0xBF, 0xBF, 0xBF}, 4, 0},       /* U+1FFFFF */
        {{0xF8, 0x88, 0x80, 0x80, 0x80}, 5, 0}, /* 5-byte form */
        {{0xFC, 0x84, 0x80, 0x80, 0x80, 0x80}, 6, 0},
        {{0xFE}, 1, 0},
        {{0xFF}, 1, 0},
        {{0xC2, 0x41}, 2, 1},             /* missing continuation */
        {{0xE2, 0x82, 0x41}, 3, 2},       /* missing 3rd byte */
        {{0xF0, 0x9F, 0x98, 0x41}, 4, 3}, /* missing 4th byte */
        {{0xE2, 0x82, 0xC2, 0x80}, 4, 2}, /* new lead inside a character */
        {{'a', 'b', 'c', 0x80}, 4, 3},
        {{0xCE, 0xBA, 0xED, 0xA0, 0x80}, 5, 3}, /* Autobahn 6.3.1-like: valid, then surrogate */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (reject_index(cases[c].b, cases[c].n) != cases[c].at)
            fail_msg("case %zu: rejected at %d, want %d", c, reject_index(cases[c].b, cases[c].n),
                     cases[c].at);
        assert_false(ws_utf8_valid(cases[c].b, cases[c].n));
        assert_int_equal(ws_utf8_feed(WS_UTF8_ACCEPT, cases[c].b, cases[c].n), WS_UTF8_REJECT);
    }
}

static void test_truncated_is_pending(void **state) {
    static const uint8_t s[] = {0xF0, 0x9D, 0x84, 0x9E};
    for (size_t k = 1; k < sizeof s; k++) {
        uint32_t st = ws_utf8_feed(WS_UTF8_ACCEPT, s, k);
        assert_int_not_equal(st, WS_UTF8_ACCEPT);
        assert_int_not_equal(st, WS_UTF8_REJECT);
        assert_false(ws_utf8_valid(s, k));
        assert_int_equal(ws_utf8_feed(st, s + k, sizeof s - k), WS_UTF8_ACCEPT);
    }
}

static void test_reject_is_sticky(void **state) {
    uint32_t st = ws_utf8_feed(WS_UTF8_ACCEPT, BYTES(0xFF));
    assert_int_equal(st, WS_UTF8_REJECT);
    assert_int_equal(ws_utf8_feed(st, BYTES('a', 'b')), WS_UTF8_REJECT);
    assert_int_equal(ws_utf8_feed(st, NULL, 0), WS_UTF8_REJECT);
}

/* A valid string cut at every position (and at every pair of positions) stays valid. */
static void test_split_everywhere(void **state) {
    static const uint8_t s[] = "Hello-\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"
                               "-\xE2\x82\xAC\xF0\x9D\x84\x9E\xF4\x8F\xBF\xBF-\xDF\xBF\xEF\xBF\xBF"
                               "0123456789abcdef";
    const size_t n = sizeof s - 1;
    assert_true(ws_utf8_valid(s, n));
    for (size_t i = 0; i <= n; i++) {
        uint32_t st = ws_utf8_feed(WS_UTF8_ACCEPT, s, i);
        assert_int_not_equal(st, WS_UTF8_REJECT);
        assert_int_equal(ws_utf8_feed(st, s + i, n - i), WS_UTF8_ACCEPT);
        for (size_t j = i; j <= n; j++) {
            uint32_t st2 = ws_utf8_feed(st, s + i, j - i);
            assert_int_not_equal(st2, WS_UTF8_REJECT);
            assert_int_equal(ws_utf8_feed(st2, s + j, n - j), WS_UTF8_ACCEPT);
        }
    }
    uint32_t st = WS_UTF8_ACCEPT;
    for (size_t i = 0; i < n; i++)
        st = ws_utf8_feed(st, s + i, 1);
    assert_int_equal(st, WS_UTF8_ACCEPT);
}

/* The 8-byte ASCII fast path: a bad or multi-byte character at every offset of a long run. */
static void test_ascii_runs(void **state) {
    uint8_t buf[64];
    for (size_t pos = 0; pos + 4 <= sizeof buf; pos++) {
        memset(buf, 'a', sizeof buf);
        buf[pos] = 0xFF;
        assert_int_equal(reject_index(buf, sizeof buf), (int)pos);
        assert_false(ws_utf8_valid(buf, sizeof buf));
        memset(buf, 'a', sizeof buf);
        memcpy(buf + pos, "\xF0\x9D\x84\x9E", 4);
        assert_true(ws_utf8_valid(buf, sizeof buf));
        assert_false(ws_utf8_valid(buf, pos + 3));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_chars),          cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_all_code_points),      cmocka_unit_test(test_invalid_fail_fast),
        cmocka_unit_test(test_truncated_is_pending), cmocka_unit_test(test_reject_is_sticky),
        cmocka_unit_test(test_split_everywhere),     cmocka_unit_test(test_ascii_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
