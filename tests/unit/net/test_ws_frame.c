/* Unit tests for src/net/ws_frame.c: RFC 6455 §5.7 examples byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/ws_error.h"
#include "net/ws_frame.h"

/* RFC 6455 §5.7 */
static const uint8_t ex_text[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t ex_masked_text[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                         0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t ex_frag1[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
static const uint8_t ex_frag2[] = {0x80, 0x02, 0x6c, 0x6f};
static const uint8_t ex_ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t ex_masked_pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                         0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t ex_bin256[] = {0x82, 0x7E, 0x01, 0x00};
static const uint8_t ex_bin64k[] = {0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};

static void check_hdr(const uint8_t *p, size_t n, bool fin, uint8_t op, bool masked, uint8_t hlen,
                      uint64_t plen) {
    ws_frame_hdr_t h;
    memset(&h, 0xAA, sizeof h);
    assert_int_equal(ws_frame_parse_header(p, n, &h), hlen);
    assert_int_equal(h.fin, fin);
    assert_int_equal(h.rsv, 0);
    assert_int_equal(h.opcode, op);
    assert_int_equal(h.masked, masked);
    assert_int_equal(h.header_len, hlen);
    assert_true(h.payload_len == plen);
    /* Every truncation of the header asks for more bytes. */
    for (size_t k = 0; k < hlen; k++)
        assert_int_equal(ws_frame_parse_header(p, k, &h), 0);
}

static void test_parse_rfc_examples(void **state) {
    check_hdr(ex_text, sizeof ex_text, true, WS_OP_TEXT, false, 2, 5);
    check_hdr(ex_masked_text, sizeof ex_masked_text, true, WS_OP_TEXT, true, 6, 5);
    check_hdr(ex_frag1, sizeof ex_frag1, false, WS_OP_TEXT, false, 2, 3);
    check_hdr(ex_frag2, sizeof ex_frag2, true, WS_OP_CONT, false, 2, 2);
    check_hdr(ex_ping, sizeof ex_ping, true, WS_OP_PING, false, 2, 5);
    check_hdr(ex_masked_pong, sizeof ex_masked_pong, true, WS_OP_PONG, true, 6, 5);
    check_hdr(ex_bin256, sizeof ex_bin256, true, WS_OP_BINARY, false, 4, 256);
    check_hdr(ex_bin64k, sizeof ex_bin64k, true, WS_OP_BINARY, false, 10, 65536);

    ws_frame_hdr_t h;
    assert_int_equal(ws_frame_parse_header(ex_masked_text, sizeof ex_masked_text, &h), 6);
    assert_memory_equal(h.mask, ((uint8_t[]){0x37, 0xfa, 0x21, 0x3d}), 4);
    uint8_t payload[5];
    memcpy(payload, ex_masked_text + 6, 5);
    ws_frame_unmask(payload, 5, h.mask, 0);
    assert_memory_equal(payload, "Hello", 5);
}

static void test_parse_masked_extended(void **state) {
    /* Masked 16- and 64-bit forms: header is 8 and 14 bytes. */
    const uint8_t m16[] = {0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4};
    const uint8_t m64[] = {0x02, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 9, 8, 7, 6};
    check_hdr(m16, sizeof m16, true, WS_OP_BINARY, true, 8, 256);
    check_hdr(m64, sizeof m64, false, WS_OP_BINARY, true, WS_FRAME_MAX_HEADER, 65536);
    ws_frame_hdr_t h;
    ws_frame_parse_header(m64, sizeof m64, &h);
    assert_memory_equal(h.mask, ((uint8_t[]){9, 8, 7, 6}), 4);
    /* Trailing payload bytes do not change the result. */
    uint8_t more[32] = {0x81, 0x85, 1, 2, 3, 4};
    assert_int_equal(ws_frame_parse_header(more, sizeof more, &h), 6);
}

static void test_parse_bits(void **state) {
    ws_frame_hdr_t h;
    const uint8_t rsv[] = {0xF1, 0x00};
    assert_int_equal(ws_frame_parse_header(rsv, 2, &h), 2);
    assert_int_equal(h.rsv, 7);
    assert_true(h.fin);
    assert_int_equal(h.opcode, 1);
    const uint8_t rsv1[] = {0x42, 0x00};
    assert_int_equal(ws_frame_parse_header(rsv1, 2, &h), 2);
    assert_int_equal(h.rsv, 4);
    assert_false(h.fin);
    const uint8_t op[] = {0x8F, 0x7D};
    assert_int_equal(ws_frame_parse_header(op, 2, &h), 2);
    assert_int_equal(h.opcode, 0xF);
    assert_true(h.payload_len == 125);
}

static void test_parse_64bit_msb(void **state) {
    ws_frame_hdr_t h;
    uint8_t p[14] = {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(ws_frame_parse_header(p, 10, &h), WS_ERR_PROTOCOL);
    p[1] = 0xFF; /* masked: rejected as soon as the length is in, before the mask */
    assert_int_equal(ws_frame_parse_header(p, 10, &h), WS_ERR_PROTOCOL);
    assert_int_equal(ws_frame_parse_header(p, 14, &h), WS_ERR_PROTOCOL);
    assert_int_equal(ws_frame_parse_header(p, 9, &h), 0);
    memset(p + 2, 0xFF, 8);
    assert_int_equal(ws_frame_parse_header(p, 14, &h), WS_ERR_PROTOCOL);
    p[2] = 0x7F; /* 2^63 - 1 is a legal length */
    assert_int_equal(ws_frame_parse_header(p, 14, &h), 14);
    assert_true(h.payload_len == 0x7FFFFFFFFFFFFFFFull);
}

static void check_encode(uint8_t op, bool fin, uint64_t len, const uint8_t *want, size_t wlen) {
    uint8_t out[WS_FRAME_MAX_SERVER_HEADER];
    assert_int_equal(ws_frame_encode_header(out, op, fin, len), wlen);
    assert_memory_equal(out, want, wlen);
    assert_int_equal(ws_frame_header_size(len), wlen);
    ws_frame_hdr_t h;
    assert_int_equal(ws_frame_parse_header(out, wlen, &h), (int)wlen);
    assert_int_equal(h.opcode, op);
    assert_int_equal(h.fin, fin);
    assert_false(h.masked);
    assert_true(h.payload_len == len);
}

static void test_encode_rfc_examples(void **state) {
    check_encode(WS_OP_TEXT, true, 5, ex_text, 2);
    check_encode(WS_OP_TEXT, false, 3, ex_frag1, 2);
    check_encode(WS_OP_CONT, true, 2, ex_frag2, 2);
    check_encode(WS_OP_PING, true, 5, ex_ping, 2);
    check_encode(WS_OP_BINARY, true, 256, ex_bin256, 4);
    check_encode(WS_OP_BINARY, true, 65536, ex_bin64k, 10);
}

static void test_encode_boundaries(void **state) {
    check_encode(WS_OP_TEXT, true, 0, (uint8_t[]){0x81, 0x00}, 2);
    check_encode(WS_OP_TEXT, true, 125, (uint8_t[]){0x81, 125}, 2);
    check_encode(WS_OP_TEXT, true, 126, (uint8_t[]){0x81, 126, 0x00, 126}, 4);
    check_encode(WS_OP_BINARY, true, 65535, (uint8_t[]){0x82, 126, 0xFF, 0xFF}, 4);
    check_encode(WS_OP_CLOSE, true, 2, (uint8_t[]){0x88, 0x02}, 2);
    check_encode(WS_OP_BINARY, false, 0x7FFFFFFFFFFFFFFFull,
                 (uint8_t[]){0x02, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 10);
    check_encode(WS_OP_BINARY, true, 0x0102030405060708ull,
                 (uint8_t[]){0x82, 127, 1, 2, 3, 4, 5, 6, 7, 8}, 10);
}

/* Unmasking agrees with the byte-at-a-time definition (§5.3) for every offset, length and
 * alignment, and when a payload is unmasked in pieces. */
static void test_unmask(void **state) {
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t src[200], want[200], buf[208];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 7 + 3);
    for (uint64_t off = 0; off < 8; off++) {
        for (size_t align = 0; align < 8; align++) {
            for (size_t n = 0; n <= 100; n++) {
                for (size_t i = 0; i < n; i++)
                    want[i] = src[i] ^ mask[(off + i) % 4];
                memcpy(buf + align, src, n);
                ws_frame_unmask(buf + align, n, mask, off);
                assert_memory_equal(buf + align, want, n);
            }
        }
    }
    /* In pieces of every size, resuming with the running offset. */
    for (size_t piece = 1; piece < 20; piece++) {
        memcpy(buf, src, sizeof src);
        for (size_t at = 0; at < sizeof src; at += piece) {
            size_t k = sizeof src - at < piece ? sizeof src - at : piece;
            ws_frame_unmask(buf + at, k, mask, at);
        }
        for (size_t i = 0; i < sizeof src; i++)
            assert_int_equal(buf[i], src[i] ^ mask[i % 4]);
    }
    /* A huge offset only matters modulo 4. */
    memcpy(buf, src, 16);
    ws_frame_unmask(buf, 16, mask, 0xFFFFFFFFFFFFFFFDull);
    for (size_t i = 0; i < 16; i++)
        assert_int_equal(buf[i], src[i] ^ mask[(i + 1) % 4]);
}

static void test_close_codes(void **state) {
    static const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const uint16_t invalid[] = {0,    1,    999,  1004, 1005, 1006,  1015,
                                       1016, 1100, 2000, 2999, 5000, 65535, 1999};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        if (!ws_close_code_valid(valid[i]))
            fail_msg("%u should be valid", valid[i]);
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        if (ws_close_code_valid(invalid[i]))
            fail_msg("%u should be invalid", invalid[i]);
    unsigned count = 0;
    for (uint32_t c = 0; c <= 0xFFFF; c++)
        count += ws_close_code_valid((uint16_t)c);
    assert_int_equal(count, 4 + 8 + 2000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_rfc_examples),
        cmocka_unit_test(test_parse_masked_extended),
        cmocka_unit_test(test_parse_bits),
        cmocka_unit_test(test_parse_64bit_msb),
        cmocka_unit_test(test_encode_rfc_examples),
        cmocka_unit_test(test_encode_boundaries),
        cmocka_unit_test(test_unmask),
        cmocka_unit_test(test_close_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
