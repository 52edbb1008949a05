/* Unit tests for src/net/ws_handshake.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/ws_error.h"
#include "net/ws_handshake.h"

static int accept_str(const char *key, char out[WS_ACCEPT_KEY_LEN + 1]) {
    return ws_handshake_accept_key(key, strlen(key), out);
}

static void test_rfc_example(void **state) {
    char out[WS_ACCEPT_KEY_LEN + 1];
    /* RFC 6455 §1.3 (and §4.2.2). */
    assert_int_equal(accept_str("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(strlen(out), WS_ACCEPT_KEY_LEN);
}

static void test_other_vectors(void **state) {
    char out[WS_ACCEPT_KEY_LEN + 1];
    /* Checked against Python's hashlib/base64. */
    assert_int_equal(accept_str("x3JJHMbDL1EzLkh9GBhXDw==", out), 0);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    assert_int_equal(accept_str("AQIDBAUGBwgJCgsMDQ4PEA==", out), 0);
    assert_string_equal(out, "C/0nmHhBztSRGR1CwL6Tf4ZjwpY=");
    /* Optional whitespace around the value is not part of the key. */
    assert_int_equal(accept_str(" \tdGhlIHNhbXBsZSBub25jZQ== \t", out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* Only key_len bytes are read. */
    const char longer[] = "dGhlIHNhbXBsZSBub25jZQ==garbage";
    assert_int_equal(ws_handshake_accept_key(longer, 24, out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_bad_keys(void **state) {
    static const char *bad[] = {
        "",
        "   ",
        "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 characters */
        "dGhlIHNhbXBsZSBub25jZQ===", /* 25 characters */
        "dGhlIHNhbXBsZSBub25jZQ",    /* no padding */
        "AQIDBAUGBwgJCgsMDQ4P",      /* 15 bytes */
        "AQIDBAUGBwgJCgsMDQ4PEBE=",  /* 17 bytes: also 24 characters */
        "AQIDBAUGBwgJCgsMDQ4PEBES",  /* 18 bytes: 24 characters, no padding */
        "dGhlIHNhbXBsZSBub25jZQ==dGhl",
        "dGhlIHNhbXBsZSBub25jZ*==", /* bad character */
        "dGhlIHNhbXBsZSBub25j-_==", /* base64url alphabet */
        "dGhlIHNhbXBs=SBub25jZQ==", /* padding in the middle */
        "dGhlIHNhbXBs ZSBub25jZQ=", /* space inside */
        "dGhlIHNhbXBsZSBub25jZQ=\n",
        "dGhlIHNhbXBsZSBub25jZQ\xc3\xa9",
    };
    char out[WS_ACCEPT_KEY_LEN + 1];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (accept_str(bad[i], out) != WS_ERR_BAD_KEY)
            fail_msg("key %zu \"%s\" accepted", i, bad[i]);
    /* An embedded NUL. */
    const char nul[24] = "dGhlIHNhbXBsZSBub2\0jZQ==";
    assert_int_equal(ws_handshake_accept_key(nul, 24, out), WS_ERR_BAD_KEY);
}

static bool has(const char *v, const char *t) {
    return ws_header_has_token(v, strlen(v), t);
}

static void test_header_tokens(void **state) {
    assert_true(has("keep-alive, Upgrade", "upgrade"));
    assert_true(has("Upgrade", "upgrade"));
    assert_true(has("UPGRADE", "Upgrade"));
    assert_true(has("  upgrade  ", "upgrade"));
    assert_true(has("\tupgrade\t,x", "upgrade"));
    assert_true(has("keep-alive,upgrade", "upgrade"));
    assert_true(has("upgrade,", "upgrade"));
    assert_true(has(",, upgrade ,", "upgrade"));
    assert_true(has("websocket", "websocket"));
    assert_false(has("upgradex", "upgrade"));
    assert_false(has("x-upgrade", "upgrade"));
    assert_false(has("keep-alive", "upgrade"));
    assert_false(has("up grade", "upgrade"));
    assert_false(has("", "upgrade"));
    assert_false(has("upgrade", ""));
    assert_false(has("upgrad", "upgrade"));
    /* Only len bytes of the value count. */
    assert_false(ws_header_has_token("upgrade", 6, "upgrade"));
    assert_true(ws_header_has_token("upgrade, close", 7, "upgrade"));
    assert_false(ws_header_has_token("close, upgrade", 7, "upgrade"));
}

static bool origin_ok(const char *list, const char *origin) {
    return ws_origin_allowed(list, origin, strlen(origin));
}

static void test_origins(void **state) {
    const char *list = "https://chat.example.com, http://localhost:8080,https://*.corp.example";
    assert_true(origin_ok("", "https://anything"));
    assert_true(origin_ok(NULL, "https://anything"));
    assert_true(origin_ok("*", "null"));
    assert_true(origin_ok(list, "https://chat.example.com"));
    assert_true(origin_ok(list, "HTTPS://CHAT.example.com"));
    assert_true(origin_ok(list, "http://localhost:8080"));
    assert_true(origin_ok(list, "https://a.corp.example"));
    assert_true(origin_ok(list, "https://a.b.corp.example"));
    assert_false(origin_ok(list, "https://corp.example"));
    assert_false(origin_ok(list, "https://.corp.example"));
    assert_false(origin_ok(list, "http://a.corp.example"));
    assert_false(origin_ok(list, "https://a.corp.example.evil"));
    assert_false(origin_ok(list, "https://x@a.corp.example"));
    assert_false(origin_ok(list, "https://a:1.corp.example"));
    assert_false(origin_ok(list, "https://evil.com?.corp.example"));
    assert_false(origin_ok(list, "https://evil.com#.corp.example"));
    assert_false(origin_ok(list, "https://evil.com%2f.corp.example"));
    assert_true(origin_ok(list, "https://a-b.c9.corp.example"));
    assert_false(origin_ok(list, "https://chat.example.com:443"));
    assert_false(origin_ok(list, "https://chat.example.co"));
    assert_false(origin_ok(list, "https://chat.example.comm"));
    assert_false(origin_ok(list, "http://localhost:80800"));
    assert_false(origin_ok(list, ""));
    assert_false(origin_ok(list, "null"));
    /* a wildcard with a port */
    assert_true(origin_ok("https://*.example.com:8443", "https://a.example.com:8443"));
    assert_false(origin_ok("https://*.example.com:8443", "https://a.example.com"));
    /* the origin is compared with its length, not up to a NUL */
    assert_false(ws_origin_allowed("https://a.example", "https://a.example.evil", 17 + 5));
    assert_true(ws_origin_allowed("https://a.example", "https://a.example.evil", 17));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_example), cmocka_unit_test(test_other_vectors),
        cmocka_unit_test(test_bad_keys),    cmocka_unit_test(test_header_tokens),
        cmocka_unit_test(test_origins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
