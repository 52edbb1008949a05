/* Incremental UTF-8 validation.
 *
 * A state other than ACCEPT/REJECT is "inside a character" and packs three numbers:
 *   bits 16..17  continuation bytes still needed (1..3)
 *   bits  8..15  smallest byte allowed next
 *   bits  0..7   largest byte allowed next
 * The range of the byte right after the lead byte is what rules out overlongs (E0, F0),
 * surrogates (ED) and code points past U+10FFFF (F4); every later continuation byte is 80..BF.
 * Because the state is nonzero in bits 16..17 it never collides with ACCEPT (0) or REJECT (1). */
#include "net/ws_utf8.h"

#include <string.h>

#define NEED_SHIFT          16
#define STATE(need, lo, hi) (((uint32_t)(need) << NEED_SHIFT) | ((uint32_t)(lo) << 8) | (hi))

/* The state after lead byte b (RFC 3629 §4 syntax, one row per lead byte range). */
static uint32_t utf8_lead(uint8_t b) {
    if (b < 0x80)
        return WS_UTF8_ACCEPT;
    if (b < 0xC2) /* 80..BF: stray continuation; C0, C1: overlong 2-byte forms */
        return WS_UTF8_REJECT;
    if (b < 0xE0)
        return STATE(1, 0x80, 0xBF);
    if (b == 0xE0) /* E0 80..9F would encode < U+0800 */
        return STATE(2, 0xA0, 0xBF);
    if (b == 0xED) /* ED A0..BF would encode surrogates U+D800..DFFF */
        return STATE(2, 0x80, 0x9F);
    if (b < 0xF0)
        return STATE(2, 0x80, 0xBF);
    if (b == 0xF0) /* F0 80..8F would encode < U+10000 */
        return STATE(3, 0x90, 0xBF);
    if (b < 0xF4)
        return STATE(3, 0x80, 0xBF);
    if (b == 0xF4) /* F4 90.. would pass U+10FFFF */
        return STATE(3, 0x80, 0x8F);
    return WS_UTF8_REJECT; /* F5..FF never appear in UTF-8 */
}

/* Length of the run of ASCII bytes at p[0..n), checked 8 bytes at a time. */
static size_t utf8_ascii_run(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull)
            break;
        i += 8;
    }
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

uint32_t ws_utf8_feed(uint32_t state, const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (state == WS_UTF8_REJECT)
            return state;
        if (state == WS_UTF8_ACCEPT) {
            i += utf8_ascii_run(p + i, n - i);
            if (i == n)
                break;
            state = utf8_lead(p[i++]);
            continue;
        }
        uint8_t b = p[i++];
        uint32_t lo = (state >> 8) & 0xFF, hi = state & 0xFF;
        if (b < lo || b > hi)
            return WS_UTF8_REJECT;
        uint32_t need = (state >> NEED_SHIFT) - 1;
        state = need ? STATE(need, 0x80, 0xBF) : WS_UTF8_ACCEPT;
    }
    return state;
}

bool ws_utf8_valid(const uint8_t *p, size_t n) {
    return ws_utf8_feed(WS_UTF8_ACCEPT, p, n) == WS_UTF8_ACCEPT;
}
