/* Unit tests for src/im/protocol.c: request parsing the way Go's encoding/json reads
 * goWebSocket's structs, and replies/pushes byte for byte as goWebSocket writes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "im/protocol.h"
#include "net/ws_frame.h"

/* ---- helpers ---------------------------------------------------------------------------- */

/* Checks that s holds exactly one unmasked FIN text frame whose payload is json[0..n). The
 * header is built here by hand (RFC 6455 §5.2), not with ws_frame_encode_header. */
static void assert_frame_n(sbuf_t *s, const char *json, size_t n) {
    uint8_t hdr[10];
    size_t h;

    assert_non_null(s);
    hdr[0] = 0x81;
    if (n <= 125) {
        hdr[1] = (uint8_t)n;
        h = 2;
    } else if (n <= 0xFFFF) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(n >> 8);
        hdr[3] = (uint8_t)n;
        h = 4;
    } else {
        hdr[1] = 127;
        for (int i = 0; i < 8; i++)
            hdr[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        h = 10;
    }
    assert_int_equal(s->len, h + n);
    assert_memory_equal(sbuf_bytes(s), hdr, h);
    if (n)
        assert_memory_equal(sbuf_bytes(s) + h, json, n);
}

static void assert_frame(sbuf_t *s, const char *json) {
    assert_frame_n(s, json, strlen(json));
}

static int parse(im_request_t *req, const char *json) {
    return im_request_parse(req, (const uint8_t *)json, strlen(json));
}

static void assert_str(im_str_t s, const char *want) {
    assert_int_equal(s.len, strlen(want));
    assert_non_null(s.p); /* never NULL, even when empty */
    if (s.len)
        assert_memory_equal(s.p, want, s.len);
}

/* Escapes s[0..n) and compares with the expected JSON text (quotes included). */
static void assert_escape_n(const char *s, size_t n, const char *want) {
    buf_t b = {0};
    assert_int_equal(im_json_escape(&b, s, n), 0);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    buf_free(&b);
}

static void assert_escape(const char *s, const char *want) {
    assert_escape_n(s, strlen(s), want);
}

/* Decodes the login data of a whole request; returns im_login_decode's result. */
static int login(const char *json, im_login_t *out) {
    im_request_t req;
    assert_int_equal(parse(&req, json), IM_PARSE_OK);
    int rc = im_login_decode(req.data, out);
    /* The strings are borrowed from req: copy what the tests look at before freeing. */
    static char tok[64], uid[64];
    if (rc == 0) {
        assert_true(out->service_token.len < sizeof tok && out->user_id.len < sizeof uid);
        memcpy(tok, out->service_token.p, out->service_token.len);
        memcpy(uid, out->user_id.p, out->user_id.len);
        out->service_token.p = tok;
        out->user_id.p = uid;
    }
    im_request_free(&req);
    return rc;
}

static int login_data(const char *data_json) {
    char json[512];
    im_login_t l;
    snprintf(json, sizeof json, "{\"seq\":\"1\",\"cmd\":\"login\",\"data\":%s}", data_json);
    return login(json, &l);
}

static uint32_t login_app_id(const char *data_json) {
    char json[512];
    im_login_t l;
    snprintf(json, sizeof json, "{\"cmd\":\"login\",\"data\":%s}", data_json);
    assert_int_equal(login(json, &l), 0);
    return l.app_id;
}

/* ---- response codes --------------------------------------------------------------------- */

static void test_code_msg(void **state) {
    (void)state;
    assert_string_equal(im_code_msg(200), "Success");
    assert_string_equal(im_code_msg(1000), "Not logged in");
    assert_string_equal(im_code_msg(1001), "Invalid parameter");
    assert_string_equal(im_code_msg(1002), "Illegal user ID");
    assert_string_equal(im_code_msg(1003), "Unauthorized");
    assert_string_equal(im_code_msg(1004), "System error");
    assert_string_equal(im_code_msg(1005), "No data");
    assert_string_equal(im_code_msg(1006), "Add error");
    assert_string_equal(im_code_msg(1007), "Delete error");
    assert_string_equal(im_code_msg(1008), "Store error");
    assert_string_equal(im_code_msg(1009), "Operation failed");
    assert_string_equal(im_code_msg(1010), "Route does not exist");
    assert_string_equal(im_code_msg(0), "Undefined error type");
    assert_string_equal(im_code_msg(1011), "Too many requests");
    assert_string_equal(im_code_msg(1012), "Undefined error type");
    assert_string_equal(im_code_msg(-1), "Undefined error type");
}

/* ---- replies and pushes ----------------------------------------------------------------- */

/* Spec §2.3 [observed] replies, with the English codeMsg, header bytes included. */
static void test_observed_replies(void **state) {
    (void)state;
    static const uint8_t ping[] =
        "\x81\x52{\"seq\":\"1\",\"cmd\":\"ping\",\"response\":{\"code\":200,\"codeMsg\":"
        "\"Success\",\"data\":\"pong\"}}";
    sbuf_t *s = im_frame_response(im_str("1"), im_str("ping"), IM_OK, "\"pong\"");
    assert_int_equal(s->len, sizeof ping - 1);
    assert_memory_equal(sbuf_bytes(s), ping, sizeof ping - 1);
    sbuf_unref(s);

    s = im_frame_response(im_str("2"), im_str("heartbeat"), IM_NOT_LOGGED_IN, NULL);
    assert_frame(s, "{\"seq\":\"2\",\"cmd\":\"heartbeat\",\"response\":{\"code\":1000,"
                    "\"codeMsg\":\"Not logged in\",\"data\":null}}");
    assert_int_equal(sbuf_bytes(s)[0], 0x81);
    assert_int_equal(sbuf_bytes(s)[1], 92);
    sbuf_unref(s);

    s = im_frame_response(im_str("3"), im_str("foo"), IM_NO_ROUTE, "null");
    assert_frame(s, "{\"seq\":\"3\",\"cmd\":\"foo\",\"response\":{\"code\":1010,"
                    "\"codeMsg\":\"Route does not exist\",\"data\":null}}");
    assert_int_equal(sbuf_bytes(s)[1], 93);
    sbuf_unref(s);
}

/* Spec §3 [observed] pushes: codeMsg "Ok", data {target,type,msg,from}, UTF-8 copied raw. */
static void test_push_examples(void **state) {
    (void)state;
    sbuf_t *s = im_frame_push(im_str("m3"), im_str("msg"), im_str("hello room"), im_str("bob"));
    assert_frame(s, "{\"seq\":\"m3\",\"cmd\":\"msg\",\"response\":{\"code\":200,\"codeMsg\":"
                    "\"Ok\",\"data\":{\"target\":\"\",\"type\":\"text\",\"msg\":\"hello room\","
                    "\"from\":\"bob\"}}}");
    sbuf_unref(s);

    s = im_frame_push(im_str("525206207"), im_str("enter"), im_str("哈喽~"), im_str("bob"));
    assert_frame(s, "{\"seq\":\"525206207\",\"cmd\":\"enter\",\"response\":{\"code\":200,"
                    "\"codeMsg\":\"Ok\",\"data\":{\"target\":\"\",\"type\":\"text\","
                    "\"msg\":\"哈喽~\",\"from\":\"bob\"}}}");
    sbuf_unref(s);

    /* An empty msgID is an empty seq; an im_str_t of NULL is "" too. */
    s = im_frame_push(im_str(""), im_str("msg"), im_str(NULL), im_str("<b>&"));
    assert_frame(s, "{\"seq\":\"\",\"cmd\":\"msg\",\"response\":{\"code\":200,\"codeMsg\":"
                    "\"Ok\",\"data\":{\"target\":\"\",\"type\":\"text\",\"msg\":\"\","
                    "\"from\":\"\\u003cb\\u003e\\u0026\"}}}");
    sbuf_unref(s);
}

/* A push built as JSON alone (what the cluster publishes) and framed afterwards, in place or
 * from a copy, is the same frame as im_frame_push_to's, for each of the three length forms. */
static void test_push_payload_then_frame(void **state) {
    (void)state;
    static char big[70000];
    memset(big, 'x', sizeof big - 1);
    size_t sizes[] = {5, 300, sizeof big - 1};
    for (size_t i = 0; i < 3; i++) {
        im_str_t msg = {big, sizes[i]};
        sbuf_t *want =
            im_frame_push_to(im_str("s1"), im_str("msg"), im_str("bob"), msg, im_str("<al>"));
        sbuf_t *p =
            im_push_payload(im_str("s1"), im_str("msg"), im_str("bob"), msg, im_str("<al>"));
        assert_non_null(p);
        assert_int_equal(p->off, WS_FRAME_MAX_SERVER_HEADER);
        assert_int_equal(sbuf_bytes(p)[0], '{'); /* JSON, no header yet */
        sbuf_t *copy = im_frame_text(sbuf_bytes(p), p->len);
        sbuf_t *f = im_frame_wrap(p);
        assert_int_equal(f->len, want->len);
        assert_memory_equal(sbuf_bytes(f), sbuf_bytes(want), want->len);
        assert_int_equal(copy->len, want->len);
        assert_memory_equal(sbuf_bytes(copy), sbuf_bytes(want), want->len);
        sbuf_unref(f);
        sbuf_unref(copy);
        sbuf_unref(want);
    }
    assert_null(im_frame_wrap(NULL));
}

/* The echoed seq and cmd are escaped; a NUL inside seq survives the round trip. */
static void test_response_escapes_echo(void **state) {
    (void)state;
    im_request_t req;
    static const char in[] = "{\"seq\":\"a\\u0000<\\\"\",\"cmd\":\"x\\ny\"}";
    assert_int_equal(parse(&req, in), IM_PARSE_OK);
    assert_int_equal(req.seq.len, 4);
    sbuf_t *s = im_frame_response(req.seq, req.cmd, IM_NO_ROUTE, NULL);
    assert_frame(s, "{\"seq\":\"a\\u0000\\u003c\\\"\",\"cmd\":\"x\\ny\",\"response\":{"
                    "\"code\":1010,\"codeMsg\":\"Route does not exist\",\"data\":null}}");
    sbuf_unref(s);
    im_request_free(&req);
}

/* Header length switches at 125/126 and 65535/65536 payload bytes. */
static void test_frame_header_sizes(void **state) {
    (void)state;
    static const char prefix[] = "{\"seq\":\"\",\"cmd\":\"\",\"response\":{\"code\":200,"
                                 "\"codeMsg\":\"Success\",\"data\":\"";
    const size_t fixed = sizeof prefix - 1 + 3; /* the data string's closing quote and }} */
    const size_t sizes[] = {125, 126, 0xFFFF, 0x10000};

    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t pad = sizes[k] - fixed;
        char *data = malloc(pad + 3);
        char *json = malloc(sizes[k] + 1);
        assert_non_null(data);
        assert_non_null(json);
        data[0] = '"';
        memset(data + 1, 'x', pad);
        data[pad + 1] = '"';
        data[pad + 2] = '\0';
        snprintf(json, sizes[k] + 1, "%s%.*s\"}}", prefix, (int)pad, data + 1);
        assert_int_equal(strlen(json), sizes[k]);
        sbuf_t *s = im_frame_response(im_str(""), im_str(""), IM_OK, data);
        assert_frame_n(s, json, sizes[k]);
        sbuf_unref(s);
        free(data);
        free(json);
    }
}

/* A 70 KB push: 10-byte header, length marker 127, 64-bit big-endian length. */
static void test_push_70k(void **state) {
    (void)state;
    const size_t n = 70 * 1024;
    char *msg = malloc(n);
    assert_non_null(msg);
    memset(msg, 'a', n);
    sbuf_t *s = im_frame_push(im_str("1"), im_str("msg"), (im_str_t){msg, n}, im_str("bob"));
    assert_non_null(s);
    const uint8_t *f = sbuf_bytes(s);
    uint64_t len = 0;
    for (int i = 0; i < 8; i++)
        len = len << 8 | f[2 + i];
    assert_int_equal(f[0], 0x81);
    assert_int_equal(f[1], 127);
    assert_int_equal(s->len, 10 + len);
    assert_int_equal(s->off, 0);
    assert_true(len > n);
    /* the payload is valid JSON carrying the message */
    json_t *j = json_loadb((const char *)f + 10, (size_t)len, 0, NULL);
    assert_non_null(j);
    json_t *m = json_object_get(json_object_get(json_object_get(j, "response"), "data"), "msg");
    assert_int_equal(json_string_length(m), n);
    json_decref(j);
    sbuf_unref(s);
    free(msg);
}

static void test_frame_from_buf(void **state) {
    (void)state;
    buf_t b = {0};
    assert_int_equal(buf_reserve(&b, WS_FRAME_MAX_SERVER_HEADER), 0);
    memset(b.data, 0xEE, WS_FRAME_MAX_SERVER_HEADER);
    b.len = WS_FRAME_MAX_SERVER_HEADER;
    assert_int_equal(buf_append_str(&b, "{\"code\":200}"), 0);
    sbuf_t *s = im_frame_from_buf(&b);
    assert_frame(s, "{\"code\":200}");
    assert_int_equal(s->off, WS_FRAME_MAX_SERVER_HEADER - 2);
    sbuf_unref(s);

    /* an empty payload is a 2-byte frame */
    b.len = WS_FRAME_MAX_SERVER_HEADER;
    s = im_frame_from_buf(&b);
    assert_frame_n(s, "", 0);
    sbuf_unref(s);

    /* 300 bytes: 4-byte header */
    char big[300];
    memset(big, 'z', sizeof big);
    assert_int_equal(buf_append(&b, big, sizeof big), 0);
    s = im_frame_from_buf(&b);
    assert_frame_n(s, big, sizeof big);
    sbuf_unref(s);
    buf_free(&b);
}

/* ---- escaping --------------------------------------------------------------------------- */

static void test_escape_table(void **state) {
    (void)state;
    assert_escape("", "\"\"");
    assert_escape("plain text 123 ~!@#$%^*()_+{}|:?[];',./`=-", "\"plain text 123 "
                                                                "~!@#$%^*()_+{}|:?[];',./`=-\"");
    assert_escape("\"", "\"\\\"\"");
    assert_escape("\\", "\"\\\\\"");
    assert_escape("/", "\"/\""); /* Go does not escape the slash */
    assert_escape("\n\r\t", "\"\\n\\r\\t\"");
    assert_escape("\b\f", "\"\\u0008\\u000c\""); /* Go 1.19; Go 1.22 writes \b \f */
    assert_escape("\x01\x1f\x1b", "\"\\u0001\\u001f\\u001b\"");
    assert_escape("<>&", "\"\\u003c\\u003e\\u0026\"");
    assert_escape("\x7f", "\"\x7f\""); /* DEL is not escaped */
    assert_escape("a\xe2\x80\xa8"
                  "b\xe2\x80\xa9"
                  "c",
                  "\"a\\u2028b\\u2029c\"");
    assert_escape("\xe2\x80\xa7\xe2\x80\xaa", "\"\xe2\x80\xa7\xe2\x80\xaa\""); /* neighbours raw */
    assert_escape("é中😀", "\"é中😀\"");
    assert_escape("\xef\xbf\xbd", "\"\xef\xbf\xbd\"");         /* a real U+FFFD is copied */
    assert_escape("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */

    /* appends after what is already there */
    buf_t b = {0};
    assert_int_equal(buf_append_str(&b, "x:"), 0);
    assert_int_equal(im_json_escape(&b, "<", 1), 0);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "x:\"\\u003c\"", 10);
    buf_free(&b);
}

static void test_escape_nul(void **state) {
    (void)state;
    assert_escape_n("a\0b", 3, "\"a\\u0000b\"");
    assert_escape_n("\0", 1, "\"\\u0000\"");
}

/* Go's utf8.DecodeRune consumes one byte per error, so each bad byte is one \ufffd. */
static void test_escape_invalid_utf8(void **state) {
    (void)state;
    assert_escape("\x80", "\"\\ufffd\"");                                  /* lone continuation */
    assert_escape("a\xe2\x82", "\"a\\ufffd\\ufffd\"");                     /* truncated 3-byte */
    assert_escape("\xe2\x82z", "\"\\ufffd\\ufffdz\"");                     /* interrupted */
    assert_escape("\xc0\x80", "\"\\ufffd\\ufffd\"");                       /* overlong NUL */
    assert_escape("\xc1\xbf", "\"\\ufffd\\ufffd\"");                       /* overlong */
    assert_escape("\xe0\x9f\xbf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong 3-byte */
    assert_escape("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* surrogate U+D800 */
    assert_escape("\xf0\x8f\xbf\xbf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* overlong 4 */
    assert_escape("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
    assert_escape("\xf5\xfe\xff", "\"\\ufffd\\ufffd\\ufffd\"");
    assert_escape("\xc3", "\"\\ufffd\""); /* cut at the end */
    assert_escape("\xc3\xa9\xc3", "\"\xc3\xa9\\ufffd\"");
    assert_escape("<\xff>", "\"\\u003c\\ufffd\\u003e\"");
}

/* ---- parsing requests ------------------------------------------------------------------- */

static void test_parse_basic(void **state) {
    (void)state;
    im_request_t req;
    assert_int_equal(parse(&req, " {\"seq\":\"1\",\"cmd\":\"login\",\"data\":{\"userID\":"
                                 "\"bob\"},\"extra\":[1,2]} "),
                     IM_PARSE_OK);
    assert_str(req.seq, "1");
    assert_str(req.cmd, "login");
    assert_true(json_is_object(req.data));
    im_request_free(&req);
    assert_null(req._root);

    /* data missing, or null, is NULL; any other type is kept for the handler to judge */
    assert_int_equal(parse(&req, "{\"seq\":\"1\",\"cmd\":\"ping\"}"), IM_PARSE_OK);
    assert_null(req.data);
    im_request_free(&req);
    assert_int_equal(parse(&req, "{\"cmd\":\"ping\",\"data\":null}"), IM_PARSE_OK);
    assert_null(req.data);
    im_request_free(&req);
    assert_int_equal(parse(&req, "{\"cmd\":\"ping\",\"data\":[1]}"), IM_PARSE_OK);
    assert_true(json_is_array(req.data));
    im_request_free(&req);
}

/* [observed]: a missing seq is echoed as "". */
static void test_parse_missing_seq(void **state) {
    (void)state;
    im_request_t req;
    assert_int_equal(parse(&req, "{\"cmd\":\"ping\"}"), IM_PARSE_OK);
    assert_str(req.seq, "");
    sbuf_t *s = im_frame_response(req.seq, req.cmd, IM_OK, "\"pong\"");
    assert_frame(s, "{\"seq\":\"\",\"cmd\":\"ping\",\"response\":{\"code\":200,\"codeMsg\":"
                    "\"Success\",\"data\":\"pong\"}}");
    sbuf_unref(s);
    im_request_free(&req);

    assert_int_equal(parse(&req, "{\"seq\":null,\"cmd\":null}"), IM_PARSE_OK);
    assert_str(req.seq, "");
    assert_str(req.cmd, "");
    im_request_free(&req);

    assert_int_equal(parse(&req, "{}"), IM_PARSE_OK);
    assert_str(req.seq, "");
    assert_str(req.cmd, "");
    im_request_free(&req);
}

static void test_parse_errors(void **state) {
    (void)state;
    static const char *const bad_json[] = {
        "",
        " ",
        "{",
        "{\"seq\":\"1\"",
        "{\"seq\":\"1\",}",
        "{seq:\"1\"}",
        "[]",
        "[{\"seq\":\"1\"}]",
        "1",
        "\"str\"",
        "true",
        "{} {}",
        "{}x",
        "nul",
        "{\"seq\":\"\\x\"}", /* bad escape */
    };
    im_request_t req;
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
        assert_int_equal(parse(&req, bad_json[i]), IM_ERR_BAD_JSON);
        assert_null(req._root);
        assert_str(req.seq, "");
    }
    /* invalid UTF-8 inside a string (jansson is strict; WebSocket text is validated anyway) */
    assert_int_equal(im_request_parse(&req, (const uint8_t *)"{\"a\":\"\xff\"}", 9),
                     IM_ERR_BAD_JSON);

    static const char *const bad_envelope[] = {
        "{\"seq\":1,\"cmd\":\"ping\"}",
        "{\"seq\":\"1\",\"cmd\":2}",
        "{\"seq\":true}",
        "{\"seq\":{}}",
        "{\"cmd\":[\"ping\"]}",
        "{\"seq\":\"1\",\"SEQ\":1}", /* Go fails on any matching key of the wrong type */
        "{\"Cmd\":false,\"cmd\":\"ping\"}",
    };
    for (size_t i = 0; i < sizeof bad_envelope / sizeof bad_envelope[0]; i++) {
        assert_int_equal(parse(&req, bad_envelope[i]), IM_ERR_BAD_ENVELOPE);
        assert_null(req._root);
        assert_str(req.seq, "");
        assert_str(req.cmd, "");
    }
}

/* Go's json.Unmarshal of `null` into a struct succeeds and leaves it zero: the original
 * answers it with 1010 for cmd "". */
static void test_parse_null_document(void **state) {
    (void)state;
    im_request_t req;
    assert_int_equal(parse(&req, " null "), IM_PARSE_OK);
    assert_str(req.seq, "");
    assert_str(req.cmd, "");
    assert_null(req.data);
    im_request_free(&req);
}

/* [observed]: SEQ/CMD/DATA/USERID/APPID log in. */
static void test_parse_case_insensitive(void **state) {
    (void)state;
    im_request_t req;
    im_login_t l;
    assert_int_equal(parse(&req, "{\"SEQ\":\"7\",\"Cmd\":\"login\",\"DATA\":{\"USERID\":\"bob\","
                                 "\"APPID\":101,\"servicetoken\":\"t\"}}"),
                     IM_PARSE_OK);
    assert_str(req.seq, "7");
    assert_str(req.cmd, "login");
    assert_int_equal(im_login_decode(req.data, &l), 0);
    assert_int_equal(l.app_id, 101);
    assert_str(l.user_id, "bob");
    assert_str(l.service_token, "t");
    im_request_free(&req);

    assert_int_equal(parse(&req, "{\"sEq\":\"x\",\"cMD\":\"ping\",\"userid\":1}"), IM_PARSE_OK);
    assert_str(req.seq, "x");
    assert_str(req.cmd, "ping");
    im_request_free(&req);

    /* no partial or padded matches */
    assert_int_equal(parse(&req, "{\"seqq\":1,\"se\":2,\"seq \":3,\"cmd\":\"ping\"}"), IM_PARSE_OK);
    assert_str(req.seq, "");
    im_request_free(&req);
}

/* Go applies every matching key in document order: the last one wins, even over the exact
 * spelling; null leaves a string field alone but clears the interface{} data. */
static void test_parse_key_precedence(void **state) {
    (void)state;
    im_request_t req;
    assert_int_equal(parse(&req, "{\"seq\":\"a\",\"SEQ\":\"b\"}"), IM_PARSE_OK);
    assert_str(req.seq, "b");
    im_request_free(&req);
    assert_int_equal(parse(&req, "{\"SEQ\":\"b\",\"seq\":\"a\"}"), IM_PARSE_OK);
    assert_str(req.seq, "a");
    im_request_free(&req);
    assert_int_equal(parse(&req, "{\"seq\":\"a\",\"Seq\":null}"), IM_PARSE_OK);
    assert_str(req.seq, "a");
    im_request_free(&req);
    assert_int_equal(parse(&req, "{\"seq\":\"a\",\"seq\":\"c\"}"), IM_PARSE_OK);
    assert_str(req.seq, "c"); /* duplicate key: last wins */
    im_request_free(&req);
    assert_int_equal(parse(&req, "{\"data\":{},\"DATA\":null}"), IM_PARSE_OK);
    assert_null(req.data);
    im_request_free(&req);
    assert_int_equal(parse(&req, "{\"Data\":null,\"data\":[]}"), IM_PARSE_OK);
    assert_true(json_is_array(req.data));
    im_request_free(&req);
}

/* seq may carry NUL and any UTF-8; lengths come from jansson, not strlen. */
static void test_parse_nul_in_strings(void **state) {
    (void)state;
    im_request_t req;
    assert_int_equal(parse(&req, "{\"seq\":\"a\\u0000b\",\"cmd\":\"\\u0000\"}"), IM_PARSE_OK);
    assert_int_equal(req.seq.len, 3);
    assert_memory_equal(req.seq.p, "a\0b", 3);
    assert_int_equal(req.cmd.len, 1);
    im_request_free(&req);

    /* a raw NUL byte is not allowed inside JSON text */
    static const uint8_t raw[] = "{\"seq\":\"a\0b\"}";
    assert_int_equal(im_request_parse(&req, raw, sizeof raw - 1), IM_ERR_BAD_JSON);
}

static void test_json_get_ci(void **state) {
    (void)state;
    json_t *o = json_loads("{\"appId\":1,\"appID\":2,\"x\":null}", 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_integer_value(im_json_get_ci(o, "appid")), 2);
    assert_int_equal(json_integer_value(im_json_get_ci(o, "APPID")), 2);
    assert_true(json_is_null(im_json_get_ci(o, "X")));
    assert_null(im_json_get_ci(o, "app"));
    json_decref(o);
    json_t *a = json_array();
    assert_null(im_json_get_ci(a, "x"));
    json_decref(a);
    assert_null(im_json_get_ci(NULL, "x"));
}

/* ---- login and heartbeat data ----------------------------------------------------------- */

static void test_login_decode_ok(void **state) {
    (void)state;
    im_login_t l;
    assert_int_equal(login("{\"seq\":\"1\",\"cmd\":\"login\",\"data\":{\"serviceToken\":\"tok\","
                           "\"appID\":101,\"userID\":\"alice\"}}",
                           &l),
                     0);
    assert_int_equal(l.app_id, 101);
    assert_str(l.user_id, "alice");
    assert_str(l.service_token, "tok");

    /* no data, null data, empty object, null fields: all zero values */
    assert_int_equal(im_login_decode(NULL, &l), 0);
    assert_int_equal(l.app_id, 0);
    assert_str(l.user_id, "");
    assert_str(l.service_token, "");
    assert_int_equal(login("{\"cmd\":\"login\"}", &l), 0);
    assert_int_equal(login("{\"cmd\":\"login\",\"data\":null}", &l), 0);
    assert_int_equal(login("{\"cmd\":\"login\",\"data\":{}}", &l), 0);
    assert_int_equal(l.app_id, 0);
    assert_int_equal(login("{\"cmd\":\"login\",\"data\":{\"appID\":null,\"userID\":null,"
                           "\"serviceToken\":null,\"other\":[true]}}",
                           &l),
                     0);
    assert_int_equal(l.app_id, 0);
    assert_str(l.user_id, "");

    assert_int_equal(login_app_id("{\"appID\":0}"), 0);
    assert_int_equal(login_app_id("{\"appID\":4294967295}"), 4294967295u);
    /* goWebSocket decodes data into interface{} (float64) and marshals it again before the
     * struct decode: 101.0 and 1e2 reach ParseUint as "101" and "100", and pass. */
    assert_int_equal(login_app_id("{\"appID\":101.0}"), 101);
    assert_int_equal(login_app_id("{\"appID\":1e2}"), 100);
    assert_int_equal(login_app_id("{\"appID\":10100E-2}"), 101);
    assert_int_equal(login_app_id("{\"appID\":4294967295.0000001}"), 4294967295u);

    /* a JSON integer built by hand (not parsed) works too */
    json_t *d = json_pack("{s:i,s:s}", "appID", 104, "userID", "u");
    assert_int_equal(im_login_decode(d, &l), 0);
    assert_int_equal(l.app_id, 104);
    assert_str(l.user_id, "u");
    json_decref(d);
}

static void test_login_decode_errors(void **state) {
    (void)state;
    static const char *const bad[] = {
        /* data not an object */
        "[]",
        "[{\"appID\":101}]",
        "\"x\"",
        "1",
        "true",
        "false",
        /* appID */
        "{\"appID\":\"101\"}",
        "{\"appID\":-1}",
        "{\"appID\":4294967296}",
        "{\"appID\":1.5}",
        "{\"appID\":-0}",
        "{\"appID\":-0.0}",
        "{\"appID\":1e21}",
        "{\"appID\":1e-7}",
        "{\"appID\":99999999999999999999}",
        "{\"appID\":true}",
        "{\"appID\":false}",
        "{\"appID\":{}}",
        "{\"appID\":[101]}",
        /* userID */
        "{\"userID\":1}",
        "{\"userID\":true}",
        "{\"userID\":{}}",
        "{\"userID\":[\"a\"]}",
        /* serviceToken */
        "{\"serviceToken\":1}",
        "{\"serviceToken\":false}",
        "{\"serviceToken\":{}}",
        "{\"serviceToken\":[]}",
        /* a wrong type under any spelling fails, even when another key would win */
        "{\"appID\":101,\"APPID\":\"x\"}",
        "{\"userid\":5,\"userID\":\"bob\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (login_data(bad[i]) != IM_BAD_PARAM)
            fail_msg("login data %s was accepted", bad[i]);
    }
    im_login_t l;
    json_t *d = json_pack("{s:I}", "appID", (json_int_t)-5);
    assert_int_equal(im_login_decode(d, &l), IM_BAD_PARAM);
    json_decref(d);
    d = json_pack("{s:I}", "appID", (json_int_t)1 << 32);
    assert_int_equal(im_login_decode(d, &l), IM_BAD_PARAM);
    json_decref(d);
}

/* Login data goes through a Go map and json.Marshal (keys sorted by bytes) before the struct
 * decode, so among spellings of one field the byte-greatest key wins. */
static void test_login_key_order(void **state) {
    (void)state;
    assert_int_equal(login_app_id("{\"appId\":1,\"appID\":101}"), 1); /* "appID" < "appId" */
    assert_int_equal(login_app_id("{\"appID\":101,\"appId\":1}"), 1);
    assert_int_equal(login_app_id("{\"APPID\":7,\"appID\":101}"), 101); /* "APPID" < "appID" */
    assert_int_equal(login_app_id("{\"appID\":101,\"APPID\":7}"), 101);
    assert_int_equal(login_app_id("{\"appID\":101,\"appid\":null}"), 101); /* null ignored */
    assert_int_equal(login_app_id("{\"appID\":101,\"appID\":102}"), 102);  /* duplicate */

    im_login_t l;
    assert_int_equal(login("{\"data\":{\"userID\":\"a\",\"USERID\":\"b\",\"UserId\":\"c\"}}", &l),
                     0);
    assert_str(l.user_id, "a"); /* "USERID" < "UserId" < "userID" */
}

static void test_heartbeat_decode(void **state) {
    (void)state;
    static const struct {
        const char *json;
        int rc;
    } cases[] = {
        {"{\"cmd\":\"heartbeat\"}", 0},
        {"{\"cmd\":\"heartbeat\",\"data\":null}", 0},
        {"{\"cmd\":\"heartbeat\",\"data\":{}}", 0},
        {"{\"cmd\":\"heartbeat\",\"data\":{\"userID\":\"bob\",\"appID\":\"ignored\"}}", 0},
        {"{\"cmd\":\"heartbeat\",\"data\":{\"userID\":null}}", 0},
        {"{\"cmd\":\"heartbeat\",\"data\":{\"USERID\":1}}", IM_BAD_PARAM},
        {"{\"cmd\":\"heartbeat\",\"data\":{\"userID\":{}}}", IM_BAD_PARAM},
        {"{\"cmd\":\"heartbeat\",\"data\":[]}", IM_BAD_PARAM},
        {"{\"cmd\":\"heartbeat\",\"data\":\"bob\"}", IM_BAD_PARAM},
        {"{\"cmd\":\"heartbeat\",\"data\":0}", IM_BAD_PARAM},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        im_request_t req;
        assert_int_equal(parse(&req, cases[i].json), IM_PARSE_OK);
        if (im_heartbeat_decode(req.data) != cases[i].rc)
            fail_msg("heartbeat %s: expected %d", cases[i].json, cases[i].rc);
        im_request_free(&req);
    }
    assert_int_equal(im_heartbeat_decode(NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_msg),
        cmocka_unit_test(test_observed_replies),
        cmocka_unit_test(test_push_examples),
        cmocka_unit_test(test_response_escapes_echo),
        cmocka_unit_test(test_frame_header_sizes),
        cmocka_unit_test(test_push_70k),
        cmocka_unit_test(test_frame_from_buf),
        cmocka_unit_test(test_escape_table),
        cmocka_unit_test(test_escape_nul),
        cmocka_unit_test(test_escape_invalid_utf8),
        cmocka_unit_test(test_parse_basic),
        cmocka_unit_test(test_parse_missing_seq),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_null_document),
        cmocka_unit_test(test_parse_case_insensitive),
        cmocka_unit_test(test_parse_key_precedence),
        cmocka_unit_test(test_parse_nul_in_strings),
        cmocka_unit_test(test_json_get_ci),
        cmocka_unit_test(test_login_decode_ok),
        cmocka_unit_test(test_login_decode_errors),
        cmocka_unit_test(test_login_key_order),
        cmocka_unit_test(test_heartbeat_decode),
        cmocka_unit_test(test_push_payload_then_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
