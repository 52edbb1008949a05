/* Unit tests for imgate-bench's codecs (tools/bench/): WebSocket client frames (RFC 6455 §5.7
 * examples), the upgrade and HTTP response splitters, the JSON scanner on imgate's own reply and
 * push shapes, and the message text that carries index and send time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../tools/bench/httpc.c"
#include "../../../tools/bench/msgbody.c"
#include "../../../tools/bench/scan.c"
#include "../../../tools/bench/wsc.c"

/* RFC 6455 §5.7: a masked "Hello" with key 37 fa 21 3d. */
static void test_encode_masked_hello(void **state) {
    uint8_t out[32];
    int n = wsc_encode(out, sizeof out, WSC_OP_TEXT, "Hello", 5, 0x37fa213d);
    static const uint8_t want[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(out, want, sizeof want);
    assert_int_equal(wsc_encode(out, 10, WSC_OP_TEXT, "Hello", 5, 1), -1); /* too small */
}

static void test_encode_lengths(void **state) {
    static uint8_t payload[70000], out[70100];
    const size_t lens[] = {125, 126, 65535, 65536};
    const int heads[] = {2, 4, 4, 10};
    for (size_t i = 0; i < 4; i++) {
        int n = wsc_encode(out, sizeof out, WSC_OP_BINARY, payload, lens[i], 0);
        assert_int_equal(n, heads[i] + 4 + (int)lens[i]);
        assert_int_equal(out[1] & 0x80, 0x80); /* masked */
    }
}

/* RFC 6455 §5.7: unmasked "Hello", then a 256-byte binary frame, then one split anywhere. */
static void test_decode(void **state) {
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    wsc_frame_t f;
    assert_int_equal(wsc_decode(hello, sizeof hello, &f), sizeof hello);
    assert_int_equal(f.opcode, WSC_OP_TEXT);
    assert_true(f.fin);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload, "Hello", 5);
    for (size_t cut = 0; cut < sizeof hello; cut++)
        assert_int_equal(wsc_decode(hello, cut, &f), 0);

    uint8_t big[4 + 256] = {0x82, 0x7E, 0x01, 0x00};
    assert_int_equal(wsc_decode(big, sizeof big, &f), sizeof big);
    assert_int_equal(f.len, 256);
    assert_int_equal(wsc_decode(big, 3, &f), 0);

    static const uint8_t rsv[] = {0xC1, 0x00}, masked[] = {0x81, 0x80, 0, 0, 0, 0},
                         long_ping[] = {0x89, 0x7E, 0x00, 0x7E}, frag_ping[] = {0x09, 0x00};
    assert_int_equal(wsc_decode(rsv, sizeof rsv, &f), WSC_ERR_RSV);
    assert_int_equal(wsc_decode(masked, sizeof masked, &f), WSC_ERR_MASKED);
    assert_int_equal(wsc_decode(long_ping, sizeof long_ping, &f), WSC_ERR_CONTROL);
    assert_int_equal(wsc_decode(frag_ping, sizeof frag_ping, &f), WSC_ERR_CONTROL);
    static const uint8_t huge[] = {0x82, 0x7F, 0, 0, 0, 0, 0x10, 0, 0, 0};
    assert_int_equal(wsc_decode(huge, sizeof huge, &f), WSC_ERR_TOO_BIG);
}

static void test_upgrade(void **state) {
    char req[512];
    int n = wsc_upgrade_request(req, sizeof req, "127.0.0.1:8089", "/acc");
    assert_true(n > 0);
    assert_non_null(strstr(req, "GET /acc HTTP/1.1\r\n"));
    assert_non_null(strstr(req, "Sec-WebSocket-Version: 13\r\n"));
    assert_int_equal(memcmp(req + n - 4, "\r\n\r\n", 4), 0);

    /* The response ends at the blank line; the frame after it is not part of it. */
    const char *resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81";
    int status = 0;
    int len = (int)strlen(resp);
    assert_int_equal(wsc_upgrade_response(resp, (size_t)len, &status), len - 1);
    assert_int_equal(status, 101);
    assert_int_equal(wsc_upgrade_response(resp, 20, &status), 0);
    assert_int_equal(wsc_upgrade_response("SSH-2.0", 7, &status), -1);
    const char *no = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(wsc_upgrade_response(no, strlen(no), &status), (int)strlen(no));
    assert_int_equal(status, 404);
}

static void test_http_responses(void **state) {
    buf_t b = {0};
    assert_int_equal(httpc_post(&b, "h:1", "/user/sendMessageAll", "a=1", 3), 0);
    assert_non_null(memmem(b.data, b.len, "Content-Length: 3\r\n\r\na=1", 24));
    buf_free(&b);

    /* Two pipelined responses, the second chunked (as Node may send). */
    const char *two = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"code\":200}"
                      "HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\nConnection: close\r\n\r\n"
                      "5\r\nhello\r\n0\r\n\r\n";
    size_t n = strlen(two);
    httpc_resp_t r;
    long k = httpc_response(two, n, &r);
    assert_int_equal(k, 51);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 12);
    assert_false(r.close);
    long k2 = httpc_response(two + k, n - (size_t)k, &r);
    assert_int_equal((size_t)k2, n - (size_t)k);
    assert_int_equal(r.status, 400);
    assert_true(r.close);
    for (size_t cut = 0; cut < (size_t)k; cut++) /* incomplete until the last byte */
        assert_int_equal(httpc_response(two, cut, &r), 0);
    assert_int_equal(httpc_response("GARBAGE!", 8, &r), -1);
}

static void test_scan(void **state) {
    const char *push =
        "{\"seq\":\"m1\",\"cmd\":\"msg\",\"response\":{\"code\":200,\"codeMsg\":\"Ok\","
        "\"data\":{\"target\":\"\",\"type\":\"text\",\"msg\":\"b.7.99\",\"from\":\"a\"}}}";
    size_t n = strlen(push);
    const char *v;
    int len = scan_str(push, n, "cmd", &v);
    assert_true(scan_eq(v, len, "msg"));
    len = scan_str(push, n, "msg", &v); /* "cmd":"msg" is not the key "msg" */
    assert_true(scan_eq(v, len, "b.7.99"));
    int64_t code = 0;
    assert_int_equal(scan_int(push, n, "code", &code), 0);
    assert_int_equal(code, 200);
    assert_int_equal(scan_str(push, n, "code", &v), -1); /* not a string */
    assert_int_equal(scan_str(push, n, "nope", &v), -1);
    assert_int_equal(scan_int(push, n, "seq", &code), -1);
    len = scan_str("{\"a\":\"x\\\"y\"}", 12, "a", &v);
    assert_int_equal(len, 4);                                  /* escapes kept */
    assert_int_equal(scan_str("{\"a\":\"xy", 8, "a", &v), -1); /* unterminated */
}

static void test_msgbody(void **state) {
    char buf[128];
    msgbody_t m = {.kind = 'b', .index = 42, .sent_ns = 123456789012}, d;
    int n = msgbody_encode(buf, sizeof buf, &m, 0);
    assert_string_equal(buf, "b.42.123456789012");
    assert_int_equal(msgbody_decode(buf, (size_t)n, &d), 0);
    assert_int_equal(d.kind, 'b');
    assert_int_equal(d.index, 42);
    assert_int_equal(d.sent_ns, 123456789012);

    m = (msgbody_t){.kind = 'd', .index = 3, .user = 17, .sent_ns = 5};
    n = msgbody_encode(buf, sizeof buf, &m, 64); /* padded */
    assert_int_equal(n, 64);
    assert_int_equal(strlen(buf), 64);
    assert_int_equal(msgbody_decode(buf, (size_t)n, &d), 0);
    assert_int_equal(d.user, 17);
    assert_int_equal(d.sent_ns, 5);
    assert_int_equal(msgbody_encode(buf, 8, &m, 0), -1);

    const char *bad[] = {"", "b.", "x.1.2", "b.1", "b.1.", "b.1.2x", "d.1.2", "hello~"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(msgbody_decode(bad[i], strlen(bad[i]), &d), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_masked_hello),
        cmocka_unit_test(test_encode_lengths),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_http_responses),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_msgbody),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
