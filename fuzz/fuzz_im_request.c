/* libFuzzer target for the IM JSON envelope (src/im/protocol.c): parse a request, decode its
 * login and heartbeat data, answer it with a reply frame and a push frame, and check that what
 * we wrote is one well-formed text frame whose JSON gives back the exact strings we put in.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I src \
 *     fuzz/fuzz_im_request.c src/im/protocol.c src/util/buf.c src/net/ws_frame.c \
 *     src/net/ws_utf8.c -ljansson -lm -o fuzz_im_request
 *   ./fuzz_im_request -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "im/protocol.h"
#include "net/ws_utf8.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* The frame must be FIN + text, unmasked, with a minimal length that covers the rest exactly.
 * Returns its JSON payload, parsed. */
static json_t *frame_json(const sbuf_t *s) {
    const uint8_t *f = sbuf_bytes(s);
    uint64_t len;
    size_t h;

    CHECK(s->len >= 2 && f[0] == 0x81 && !(f[1] & 0x80));
    len = f[1] & 0x7F;
    h = 2;
    if (len == 126) {
        CHECK(s->len >= 4);
        len = (uint64_t)f[2] << 8 | f[3];
        CHECK(len >= 126);
        h = 4;
    } else if (len == 127) {
        CHECK(s->len >= 10);
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | f[2 + i];
        CHECK(len > 0xFFFF);
        h = 10;
    }
    CHECK(h + len == s->len);
    json_t *j = json_loadb((const char *)f + h, (size_t)len, JSON_ALLOW_NUL, NULL);
    CHECK(j != NULL);
    return j;
}

static void check_str(const json_t *v, im_str_t want) {
    CHECK(json_is_string(v));
    CHECK(json_string_length(v) == want.len);
    CHECK(want.len == 0 || memcmp(json_string_value(v), want.p, want.len) == 0);
}

/* Escaping any bytes gives one JSON string; it decodes back to the input when that was valid
 * UTF-8 (checked by the WebSocket layer's own validator), and never carries raw < > &. */
static void check_escape(const uint8_t *p, size_t n) {
    buf_t b = {0};

    if (im_json_escape(&b, (const char *)p, n))
        return;
    CHECK(b.len >= 2 && b.data[0] == '"' && b.data[b.len - 1] == '"');
    /* the size a message is limited by is exactly what the push carries */
    CHECK(im_json_escaped_size((const char *)p, n) == b.len - 2);
    CHECK(!memchr(b.data, '<', b.len) && !memchr(b.data, '>', b.len) &&
          !memchr(b.data, '&', b.len));
    json_t *j = json_loadb((const char *)b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(json_is_string(j));
    bool same = json_string_length(j) == n && (n == 0 || !memcmp(json_string_value(j), p, n));
    CHECK(same == ws_utf8_valid(p, n));
    json_decref(j);
    buf_free(&b);
}

/* A push of these strings is one frame whose JSON gives them back exactly. */
static void check_push(im_str_t seq, im_str_t cmd, im_str_t msg, im_str_t from) {
    sbuf_t *s = im_frame_push(seq, cmd, msg, from);
    if (!s)
        return;
    json_t *j = frame_json(s);
    json_t *d = json_object_get(json_object_get(j, "response"), "data");
    check_str(json_object_get(j, "seq"), seq);
    check_str(json_object_get(d, "msg"), msg);
    check_str(json_object_get(d, "from"), from);
    json_decref(j);
    sbuf_unref(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n) {
    im_request_t req;
    im_login_t login;
    int rc = im_request_parse(&req, p, n);

    if (rc != IM_PARSE_OK) {
        CHECK(rc == IM_ERR_BAD_JSON || rc == IM_ERR_BAD_ENVELOPE);
        CHECK(req._root == NULL && req.seq.len == 0 && req.cmd.len == 0);
    }

    int code = IM_OK;
    if (rc != IM_PARSE_OK)
        code = IM_BAD_PARAM;
    else if (im_login_decode(req.data, &login) != 0)
        code = IM_BAD_PARAM;
    else if (im_heartbeat_decode(req.data) != 0)
        code = IM_BAD_PARAM;

    sbuf_t *s = im_frame_response(req.seq, req.cmd, code, "\"pong\"");
    if (s) {
        json_t *j = frame_json(s);
        check_str(json_object_get(j, "seq"), req.seq);
        check_str(json_object_get(j, "cmd"), req.cmd);
        json_t *r = json_object_get(j, "response");
        CHECK(json_integer_value(json_object_get(r, "code")) == code);
        json_decref(j);
        sbuf_unref(s);
    }

    if (code == IM_OK)
        check_push(req.seq, req.cmd, login.user_id, login.service_token);
    if (rc == IM_PARSE_OK) {
        /* sendMessage / sendMessageAll data: a decoded message is a string we can push back */
        im_send_t m;
        if (im_send_decode(req.data, &m) == 0 && m.has_message)
            check_push(m.msg_id, req.cmd, m.message, m.user_id);
    }
    im_request_free(&req);

    check_escape(p, n);
    return 0;
}
