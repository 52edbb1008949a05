/* Unit tests for imgate-bench's Engine.IO v4 / Socket.IO packets (tools/bench/eio.c): the
 * packets a socket.io 4 server sends in the bench's exchange (open, connect, pings, events, acks,
 * errors), namespaces and ack ids, what is not readable, and the handshake path. The packet
 * texts are the shapes the Engine.IO v4 and Socket.IO v5 protocol documents give. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../tools/bench/eio.c"
#include "../../../tools/bench/msgbody.c"
#include "../../../tools/bench/scan.c"

static eio_kind_t parse(const char *s, eio_packet_t *pk) {
    return eio_parse(s, strlen(s), pk);
}

static void test_engine_packets(void **state) {
    eio_packet_t pk;
    const char *open = "0{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[],\"pingInterval\":25000,"
                       "\"pingTimeout\":20000,\"maxPayload\":1000000}";
    assert_int_equal(parse(open, &pk), EIO_OPEN);
    assert_int_equal(pk.data_len, strlen(open) - 1);
    assert_int_equal(pk.data[0], '{');
    int64_t v = 0;
    assert_int_equal(scan_int(pk.data, pk.data_len, "pingInterval", &v), 0);
    assert_int_equal(v, 25000);

    assert_int_equal(parse("1", &pk), EIO_CLOSE);
    assert_int_equal(parse("2", &pk), EIO_PING);
    assert_int_equal(parse("2probe", &pk), EIO_PING);
    assert_int_equal(parse("3", &pk), EIO_PONG);
    assert_int_equal(parse("5", &pk), EIO_OTHER);
    assert_int_equal(parse("6", &pk), EIO_OTHER);
    assert_int_equal(parse("", &pk), EIO_BAD);
    assert_int_equal(parse("7", &pk), EIO_BAD);
    assert_int_equal(parse("x", &pk), EIO_BAD);
    assert_int_equal(parse("4", &pk), EIO_BAD);  /* a message without a Socket.IO packet */
    assert_int_equal(parse("49", &pk), EIO_BAD); /* no Socket.IO packet type 9 */
}

static void test_connect(void **state) {
    eio_packet_t pk;
    assert_int_equal(parse("40{\"sid\":\"wZX3oN0bSVIhsaknAAAI\"}", &pk), SIO_CONNECT);
    assert_true(pk.main_nsp);
    assert_int_equal(pk.ack_id, -1);
    const char *sid;
    assert_int_equal(scan_str(pk.data, pk.data_len, "sid", &sid), 20);
    assert_memory_equal(sid, "wZX3oN0bSVIhsaknAAAI", 20);

    assert_int_equal(parse("40/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", &pk), SIO_CONNECT);
    assert_false(pk.main_nsp);
    assert_int_equal(pk.data[0], '{');
    assert_int_equal(parse("40/,{\"sid\":\"x\"}", &pk), SIO_CONNECT);
    assert_true(pk.main_nsp);

    assert_int_equal(parse("44{\"message\":\"Not authorized\"}", &pk), SIO_CONNECT_ERROR);
    assert_int_equal(parse("41", &pk), SIO_DISCONNECT);
    assert_true(pk.main_nsp);
    assert_int_equal(parse("41/admin,", &pk), SIO_DISCONNECT);
    assert_false(pk.main_nsp);
    assert_int_equal(parse("41/admin", &pk), SIO_DISCONNECT); /* namespace up to the end */
    assert_false(pk.main_nsp);
    assert_int_equal(pk.data_len, 0);
}

static void test_events(void **state) {
    eio_packet_t pk;
    const char *push =
        "42[\"msg\",{\"seq\":\"ab-3\",\"target\":\"\",\"type\":\"text\",\"msg\":\"b.3.123456789\","
        "\"from\":\"usnd\"}]";
    assert_int_equal(parse(push, &pk), SIO_EVENT);
    assert_true(pk.main_nsp);
    assert_int_equal(pk.ack_id, -1);
    assert_int_equal(pk.name_len, 3);
    assert_memory_equal(pk.name, "msg", 3);
    assert_int_equal(pk.data[0], '[');
    /* the bench reads the text with the same scan as imgate's pushes: the first "msg": is the
     * key, since the event name is followed by a comma */
    const char *text;
    int tl = scan_str(pk.data, pk.data_len, "msg", &text);
    assert_int_equal(tl, 13);
    msgbody_t m;
    assert_int_equal(msgbody_decode(text, (size_t)tl, &m), 0);
    assert_int_equal(m.kind, 'b');
    assert_int_equal(m.index, 3);
    assert_int_equal(m.sent_ns, 123456789);

    assert_int_equal(parse("4212[\"ping\"]", &pk), SIO_EVENT); /* ack requested */
    assert_int_equal(pk.ack_id, 12);
    assert_int_equal(pk.name_len, 4);
    assert_int_equal(parse("42/chat,7[\"a\\\"b\",1]", &pk), SIO_EVENT);
    assert_false(pk.main_nsp);
    assert_int_equal(pk.ack_id, 7);
    assert_int_equal(pk.name_len, 4); /* escapes not decoded */
    assert_int_equal(parse("42[]", &pk), EIO_BAD);
    assert_int_equal(parse("42[1]", &pk), EIO_BAD);
    assert_int_equal(parse("42{\"a\":1}", &pk), EIO_BAD);
    assert_int_equal(parse("42[\"unterminated", &pk), EIO_BAD);
    assert_int_equal(parse("42", &pk), EIO_BAD);
}

static void test_acks_and_binary(void **state) {
    eio_packet_t pk;
    assert_int_equal(parse("430[]", &pk), SIO_ACK);
    assert_int_equal(pk.ack_id, 0);
    assert_int_equal(parse("4317[\"pong\"]", &pk), SIO_ACK);
    assert_int_equal(pk.ack_id, 17);
    assert_memory_equal(pk.data, "[\"pong\"]", 8);
    assert_int_equal(parse("43[]", &pk), EIO_BAD); /* an ack needs its id */
    assert_int_equal(parse("451-[\"x\",{\"_placeholder\":true,\"num\":0}]", &pk), SIO_BINARY);
    assert_int_equal(parse("461-3[{\"_placeholder\":true,\"num\":0}]", &pk), SIO_BINARY);
}

static void test_path(void **state) {
    char buf[128];
    int n = eio_path(buf, sizeof buf, "/socket.io/", "u42", 101);
    assert_string_equal(buf, "/socket.io/?EIO=4&transport=websocket&userID=u42&appID=101");
    assert_int_equal(n, (int)strlen(buf));
    n = eio_path(buf, sizeof buf, "/socket.io/", NULL, 101);
    assert_string_equal(buf, "/socket.io/?EIO=4&transport=websocket");
    volatile size_t small = 20; /* not a constant: gcc would warn of the truncation we test */
    assert_int_equal(eio_path(buf, small, "/socket.io/", "u42", 101), -1);
    assert_int_equal(eio_path(buf, (size_t)n, "/socket.io/", NULL, 1), -1); /* no room for NUL */
    assert_int_equal(eio_path(buf, (size_t)n + 1, "/socket.io/", NULL, 1), n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_packets), cmocka_unit_test(test_connect),
        cmocka_unit_test(test_events),         cmocka_unit_test(test_acks_and_binary),
        cmocka_unit_test(test_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
