/* Unit tests for src/net/ws_stream.c: the receiver, fed whole, byte by byte and in random splits.
 * Each chunk is copied into its own exactly-sized allocation, so under ASan any read past the
 * bytes actually fed is caught. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/ws_frame.h"
#include "net/ws_stream.c" /* to see the spill block */
#include "net/ws_stream.h"
#include "net/ws_utf8.h"
#include "util/buf.h"

/* ---- recording handler ---- */

typedef struct {
    buf_t log; /* one line per event: kind, opcode/code, length, raw payload */
    int events;
    int stop_at;          /* return non-zero from the stop_at-th event (0: never) */
    bool reason_null;     /* of the last close */
    const uint8_t *chunk; /* the chunk being fed, to check zero-copy delivery */
    size_t chunk_len;
    int in_chunk; /* messages delivered from inside the fed chunk */
    bool pause;   /* on_message answers WS_HANDLER_PAUSE */
} rec_t;

static int rec_event(rec_t *r, char kind, unsigned num, const uint8_t *data, size_t len) {
    buf_printf(&r->log, "%c%u:%zu:", kind, num, len);
    buf_append(&r->log, data, len);
    buf_append(&r->log, "\n", 1);
    r->events++;
    return r->stop_at && r->events >= r->stop_at;
}

static int on_message(void *ctx, uint8_t opcode, uint8_t *data, size_t len) {
    rec_t *r = ctx;
    assert_non_null(data);
    if (r->chunk && data >= r->chunk && data + len <= r->chunk + r->chunk_len)
        r->in_chunk++;
    int rc = rec_event(r, 'M', opcode, data, len);
    return rc ? rc : r->pause ? WS_HANDLER_PAUSE : 0;
}

static int on_ping(void *ctx, uint8_t *data, size_t len) {
    return rec_event(ctx, 'P', 0, data, len);
}

static int on_pong(void *ctx, uint8_t *data, size_t len) {
    return rec_event(ctx, 'O', 0, data, len);
}

static int on_close(void *ctx, uint16_t code, uint8_t *reason, size_t len) {
    rec_t *r = ctx;
    r->reason_null = reason == NULL;
    return rec_event(r, 'C', code, reason, len);
}

static const ws_stream_handlers_t handlers = {on_message, on_ping, on_pong, on_close};

static void rec_free(rec_t *r) {
    buf_free(&r->log);
    memset(r, 0, sizeof *r);
}

static bool log_is(const buf_t *log, const void *want, size_t n) {
    return log->len == n && (n == 0 || memcmp(log->data, want, n) == 0);
}

static void expect_log(const rec_t *r, const char *want) {
    if (!log_is(&r->log, want, strlen(want)))
        fail_msg("log:\n%.*s\nwant:\n%s", (int)r->log.len, r->log.data ? (char *)r->log.data : "",
                 want);
}

/* ---- frame building ---- */

static uint32_t rng_state;
static uint32_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Appends a client frame: b0 is FIN|RSV|opcode; masked with a varying key unless `unmasked`. */
static void add_frame_m(buf_t *b, uint8_t b0, const void *payload, size_t len, bool unmasked) {
    uint8_t h[WS_FRAME_MAX_HEADER];
    size_t hl = ws_frame_encode_header(h, b0 & 0x0F, false, len);
    h[0] = b0;
    uint8_t mask[4] = {(uint8_t)rng(), (uint8_t)rng(), (uint8_t)rng(), (uint8_t)rng()};
    if (!unmasked) {
        h[1] |= 0x80;
        memcpy(h + hl, mask, 4);
        hl += 4;
    }
    buf_append(b, h, hl);
    size_t at = b->len;
    buf_append(b, payload, len);
    if (!unmasked && len)
        ws_frame_unmask(b->data + at, len, mask, 0);
}

static void add_frame(buf_t *b, uint8_t b0, const void *payload, size_t len) {
    add_frame_m(b, b0, payload, len, false);
}

/* A close payload: code, then reason. */
static size_t close_payload(uint8_t *out, uint16_t code, const char *reason) {
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t n = strlen(reason);
    memcpy(out + 2, reason, n);
    return 2 + n;
}

/* ---- feeding ---- */

enum { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM };

/* Feeds data in the given split mode to s; stops at the first non-zero result and returns it.
 * Checks on the way that a stream that returned 0 with nothing pending holds no spill. */
static int feed_split(ws_stream_t *s, const uint8_t *data, size_t n, size_t max, rec_t *r, int mode,
                      uint32_t seed) {
    rng_state = seed ? seed : 1;
    size_t at = 0;
    while (at < n) {
        size_t k = n - at;
        if (mode == SPLIT_BYTES)
            k = 1;
        else if (mode == SPLIT_RANDOM) {
            size_t want = 1 + rng() % ((rng() & 1) ? 7 : 400);
            k = want < k ? want : k;
        }
        uint8_t *chunk = malloc(k);
        assert_non_null(chunk);
        memcpy(chunk, data + at, k);
        r->chunk = chunk;
        r->chunk_len = k;
        int rc = ws_stream_feed(s, chunk, k, max, &handlers, r);
        r->chunk = NULL;
        free(chunk);
        at += k;
        if (rc) {
            assert_null(s->_spill); /* an error or a stop keeps nothing */
            assert_int_equal(ws_stream_pending(s), 0);
            return rc;
        }
        if (ws_stream_pending(s))
            assert_non_null(s->_spill);
        else if (s->_spill)
            assert_int_not_equal(s->_spill->msg_op, 0); /* a message with no payload so far */
    }
    return 0;
}

/* Feeds the bytes whole, byte by byte and in 20 random splits; each must give rc and the log
 * `want` (NULL: just the same log as the whole feed), and leave want_pending bytes pending. */
static void check_splits_pending(const uint8_t *data, size_t n, size_t max, int want_rc,
                                 const char *want, size_t want_len, size_t want_pending) {
    rec_t whole = {0};
    ws_stream_t s = {0};
    int rc = feed_split(&s, data, n, max, &whole, SPLIT_WHOLE, 0);
    if (rc != want_rc)
        fail_msg("whole: rc %d, want %d", rc, want_rc);
    if (want) {
        if (!log_is(&whole.log, want, want_len))
            fail_msg("whole: log differs (%zu bytes, want %zu):\n%.*s", whole.log.len, want_len,
                     (int)(whole.log.len < 2000 ? whole.log.len : 2000),
                     whole.log.data ? (char *)whole.log.data : "");
    }
    assert_int_equal(ws_stream_pending(&s), want_pending);
    if (!want_pending)
        assert_null(s._spill);
    ws_stream_free(&s);
    for (uint32_t seed = 0; seed <= 20; seed++) {
        rec_t r = {0};
        ws_stream_t s2 = {0};
        int mode = seed == 0 ? SPLIT_BYTES : SPLIT_RANDOM;
        rc = feed_split(&s2, data, n, max, &r, mode, seed);
        if (rc != want_rc)
            fail_msg("split seed %u: rc %d, want %d", seed, rc, want_rc);
        if (!log_is(&r.log, whole.log.data, whole.log.len))
            fail_msg("split seed %u: log differs", seed);
        assert_int_equal(ws_stream_pending(&s2), want_pending);
        if (!want_pending)
            assert_null(s2._spill);
        ws_stream_free(&s2);
        rec_free(&r);
    }
    rec_free(&whole);
}

/* The same, with nothing left pending: complete frames leave no spill behind. */
static void check_all_splits(const uint8_t *data, size_t n, size_t max, int want_rc,
                             const char *want, size_t want_len) {
    check_splits_pending(data, n, max, want_rc, want, want_len, 0);
}

static void check_all_splits_str(const uint8_t *data, size_t n, size_t max, int want_rc,
                                 const char *want) {
    check_all_splits(data, n, max, want_rc, want, strlen(want));
}

#define MAX_DEFAULT 65536

/* ---- RFC 6455 §5.7 examples ---- */

static const uint8_t ex_text[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t ex_masked_text[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                         0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t ex_frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
static const uint8_t ex_ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t ex_masked_pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                         0x7f, 0x9f, 0x4d, 0x51, 0x58};

/* The same frames masked with 37 fa 21 3d, as a client must send them. */
static const uint8_t ex_masked_frag[] = {0x01, 0x83, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
                                         0x80, 0x82, 0x37, 0xfa, 0x21, 0x3d, 0x5b, 0x95};
static const uint8_t ex_masked_ping[] = {0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                         0x7f, 0x9f, 0x4d, 0x51, 0x58};

static void test_rfc_examples_unmasked_rejected(void **state) {
    /* §5.7's unmasked frames are server frames: a server must fail them (§5.1). */
    check_all_splits_str(ex_text, sizeof ex_text, MAX_DEFAULT, WS_ERR_PROTOCOL, "");
    check_all_splits_str(ex_frag, sizeof ex_frag, MAX_DEFAULT, WS_ERR_PROTOCOL, "");
    check_all_splits_str(ex_ping, sizeof ex_ping, MAX_DEFAULT, WS_ERR_PROTOCOL, "");
    /* Rejected from the header alone: 256- and 64 KiB binary headers without their payloads. */
    const uint8_t bin256[] = {0x82, 0x7E, 0x01, 0x00};
    const uint8_t bin64k[] = {0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    check_all_splits_str(bin256, sizeof bin256, MAX_DEFAULT, WS_ERR_PROTOCOL, "");
    check_all_splits_str(bin64k, sizeof bin64k, MAX_DEFAULT, WS_ERR_PROTOCOL, "");
}

static void test_rfc_examples_masked(void **state) {
    check_all_splits_str(ex_masked_text, sizeof ex_masked_text, MAX_DEFAULT, 0, "M1:5:Hello\n");
    check_all_splits_str(ex_masked_frag, sizeof ex_masked_frag, MAX_DEFAULT, 0, "M1:5:Hello\n");
    check_all_splits_str(ex_masked_ping, sizeof ex_masked_ping, MAX_DEFAULT, 0, "P0:5:Hello\n");
    check_all_splits_str(ex_masked_pong, sizeof ex_masked_pong, MAX_DEFAULT, 0, "O0:5:Hello\n");
}

/* §5.7's 256-byte and 64 KiB binary messages, masked: same length encodings, payload intact. */
static void check_binary_example(size_t len, const uint8_t *hdr, size_t hdr_len) {
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    buf_t in = {0}, want = {0};
    buf_append(&in, hdr, hdr_len);
    in.data[1] |= 0x80;
    buf_append(&in, mask, 4);
    size_t at = in.len;
    buf_printf(&want, "M2:%zu:", len);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)(i * 31 + i / 256);
        buf_append(&in, &c, 1);
        buf_append(&want, &c, 1);
    }
    buf_append(&want, "\n", 1);
    ws_frame_unmask(in.data + at, len, mask, 0);
    check_all_splits(in.data, in.len, MAX_DEFAULT, 0, (char *)want.data, want.len);
    buf_free(&in);
    buf_free(&want);
}

static void test_rfc_examples_binary(void **state) {
    check_binary_example(256, (const uint8_t[]){0x82, 0x7E, 0x01, 0x00}, 4);
    check_binary_example(65536, (const uint8_t[]){0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}, 10);
}

/* ---- a long mixed conversation ---- */

static void test_mixed_sequence(void **state) {
    buf_t in = {0}, want = {0};
    uint8_t big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i ^ (i >> 8));
    uint8_t cp[64];
    rng_state = 42;

    add_frame(&in, 0x81, "Hello", 5);
    buf_append_str(&want, "M1:5:Hello\n");
    /* "κόσμε" in three fragments, cut inside characters, with a ping and a pong in between. */
    const char *kosme = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5";
    add_frame(&in, 0x01, kosme, 1);
    add_frame(&in, 0x89, "p1", 2);
    add_frame(&in, 0x00, kosme + 1, 3);
    add_frame(&in, 0x8A, "", 0);
    add_frame(&in, 0x89, "p2", 2);
    add_frame(&in, 0x80, kosme + 4, 7);
    buf_append_str(&want, "P0:2:p1\nO0:0:\nP0:2:p2\nM1:11:");
    buf_append_str(&want, kosme);
    buf_append_str(&want, "\n");
    add_frame(&in, 0x82, big, 1000);
    buf_append_str(&want, "M2:1000:");
    buf_append(&want, big, 1000);
    buf_append_str(&want, "\n");
    add_frame(&in, 0x81, "", 0);
    buf_append_str(&want, "M1:0:\n");
    /* Binary in three fragments, one of them empty, a 16-bit-length one in the middle. */
    add_frame(&in, 0x02, big, 10);
    add_frame(&in, 0x00, "", 0);
    add_frame(&in, 0x89, big, 125);
    add_frame(&in, 0x00, big + 10, 300);
    add_frame(&in, 0x80, big + 310, 5);
    buf_append_str(&want, "P0:125:");
    buf_append(&want, big, 125);
    buf_append_str(&want, "\nM2:315:");
    buf_append(&want, big, 315);
    buf_append_str(&want, "\n");
    add_frame(&in, 0x81, "\xF0\x9D\x84\x9E", 4);
    buf_append_str(&want, "M1:4:\xF0\x9D\x84\x9E\n");
    add_frame(&in, 0x82, big, sizeof big); /* 64-bit length */
    buf_printf(&want, "M2:%zu:", sizeof big);
    buf_append(&want, big, sizeof big);
    buf_append_str(&want, "\n");
    add_frame(&in, 0x8A, "pong", 4);
    buf_append_str(&want, "O0:4:pong\n");
    /* Empty fragmented text. */
    add_frame(&in, 0x01, "", 0);
    add_frame(&in, 0x80, "", 0);
    buf_append_str(&want, "M1:0:\n");
    add_frame(&in, 0x88, cp, close_payload(cp, 1000, "bye"));
    buf_append_str(&want, "C1000:3:bye\n");

    check_all_splits(in.data, in.len, 1 << 20, 0, (char *)want.data, want.len);
    buf_free(&in);
    buf_free(&want);
}

/* ---- violations ---- */

static void check_violation(const buf_t *in, int want_rc, const char *want_log) {
    check_all_splits_str(in->data, in->len, MAX_DEFAULT, want_rc, want_log);
}

static void test_violation_masking_rsv_opcodes(void **state) {
    buf_t in = {0};
    add_frame_m(&in, 0x81, "hi", 2, true);
    check_violation(&in, WS_ERR_PROTOCOL, "");
    in.len = 0;
    add_frame_m(&in, 0x82, "hi", 2, true);
    check_violation(&in, WS_ERR_PROTOCOL, "");
    in.len = 0;
    add_frame_m(&in, 0x8A, "", 0, true); /* unmasked empty pong */
    check_violation(&in, WS_ERR_PROTOCOL, "");

    for (uint8_t rsv = 1; rsv < 8; rsv++) {
        in.len = 0;
        add_frame(&in, 0x81, "ok", 2);
        add_frame(&in, (uint8_t)(0x81 | rsv << 4), "hi", 2);
        check_violation(&in, WS_ERR_PROTOCOL, "M1:2:ok\n");
        in.len = 0;
        add_frame(&in, (uint8_t)(0x89 | rsv << 4), "", 0);
        check_violation(&in, WS_ERR_PROTOCOL, "");
    }
    static const uint8_t bad_ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof bad_ops; i++) {
        in.len = 0;
        add_frame(&in, 0x81, "ok", 2);
        add_frame(&in, (uint8_t)(0x80 | bad_ops[i]), "", 0);
        add_frame(&in, 0x89, "", 0);
        check_violation(&in, WS_ERR_PROTOCOL, "M1:2:ok\n");
        in.len = 0;
        add_frame(&in, (uint8_t)(0x80 | bad_ops[i]), "reserved", 8);
        check_violation(&in, WS_ERR_PROTOCOL, "");
    }
    buf_free(&in);
}

static void test_violation_control_frames(void **state) {
    uint8_t pl[126];
    memset(pl, 'x', sizeof pl);
    static const uint8_t ops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    buf_t in = {0};
    for (size_t i = 0; i < sizeof ops; i++) {
        /* 125 is fine (for close: a valid code and 123 bytes of reason) ... */
        in.len = 0;
        if (ops[i] == WS_OP_CLOSE)
            close_payload(pl, 1000, "");
        add_frame(&in, (uint8_t)(0x80 | ops[i]), pl, 125);
        rec_t r = {0};
        ws_stream_t s = {0};
        assert_int_equal(feed_split(&s, in.data, in.len, MAX_DEFAULT, &r, SPLIT_WHOLE, 0), 0);
        assert_int_equal(r.events, 1);
        rec_free(&r);
        /* ... 126 is not, and that is known from the header alone. */
        in.len = 0;
        add_frame(&in, (uint8_t)(0x80 | ops[i]), pl, 126);
        check_violation(&in, WS_ERR_PROTOCOL, "");
        in.len = 8; /* header only: 2 + 2 (16-bit length) + 4 (mask) */
        check_violation(&in, WS_ERR_PROTOCOL, "");
        /* Fragmented control frames (FIN = 0), alone or inside a fragmented message. */
        in.len = 0;
        add_frame(&in, ops[i], "", 0);
        check_violation(&in, WS_ERR_PROTOCOL, "");
        in.len = 0;
        add_frame(&in, 0x01, "a", 1);
        add_frame(&in, ops[i], "", 0);
        add_frame(&in, 0x80, "b", 1);
        check_violation(&in, WS_ERR_PROTOCOL, "");
    }
    buf_free(&in);
}

static void test_violation_fragment_order(void **state) {
    buf_t in = {0};
    /* Continuation with no message started, final or not. */
    add_frame(&in, 0x80, "x", 1);
    check_violation(&in, WS_ERR_PROTOCOL, "");
    in.len = 0;
    add_frame(&in, 0x00, "x", 1);
    check_violation(&in, WS_ERR_PROTOCOL, "");
    /* ... and after a complete message. */
    in.len = 0;
    add_frame(&in, 0x01, "a", 1);
    add_frame(&in, 0x80, "b", 1);
    add_frame(&in, 0x80, "c", 1);
    check_violation(&in, WS_ERR_PROTOCOL, "M1:2:ab\n");
    /* A new text or binary frame while a message is unfinished. */
    static const uint8_t starts[] = {0x81, 0x01, 0x82, 0x02};
    for (size_t i = 0; i < sizeof starts; i++) {
        in.len = 0;
        add_frame(&in, 0x01, "a", 1);
        add_frame(&in, 0x89, "", 0);
        add_frame(&in, starts[i], "b", 1);
        check_violation(&in, WS_ERR_PROTOCOL, "P0:0:\n");
        in.len = 0;
        add_frame(&in, 0x02, "a", 1);
        add_frame(&in, starts[i], "b", 1);
        check_violation(&in, WS_ERR_PROTOCOL, "");
    }
    buf_free(&in);
}

static void test_violation_utf8(void **state) {
    buf_t in = {0};
    add_frame(&in, 0x81, "\xCE\xBA\xED\xA0\x80", 5); /* surrogate */
    check_violation(&in, WS_ERR_BAD_UTF8, "");
    in.len = 0;
    add_frame(&in, 0x81, "\xC0\x80", 2);
    check_violation(&in, WS_ERR_BAD_UTF8, "");
    /* Across fragments: a character started in one, broken in the next. */
    in.len = 0;
    add_frame(&in, 0x01, "ab\xE2\x82", 4);
    add_frame(&in, 0x80, "A", 1);
    check_violation(&in, WS_ERR_BAD_UTF8, "");
    /* A message that ends inside a character. */
    in.len = 0;
    add_frame(&in, 0x01, "ab", 2);
    add_frame(&in, 0x80, "\xE2\x82", 2);
    check_violation(&in, WS_ERR_BAD_UTF8, "");
    in.len = 0;
    add_frame(&in, 0x81, "\xE2\x82", 2);
    check_violation(&in, WS_ERR_BAD_UTF8, "");
    /* Binary is not checked. */
    in.len = 0;
    add_frame(&in, 0x82, "\xFF\xE2\x82", 3);
    check_violation(&in, 0, "M2:3:\xFF\xE2\x82\n");
    in.len = 0;
    add_frame(&in, 0x02, "\xFF", 1);
    add_frame(&in, 0x80, "\xE2", 1);
    check_violation(&in, 0, "M2:2:\xFF\xE2\n");
    buf_free(&in);
}

/* Invalid UTF-8 fails with the fragment, or even the chunk of a frame, that carries it. */
static void test_utf8_fail_fast(void **state) {
    rec_t r = {0};
    ws_stream_t s = {0};
    buf_t f = {0};
    /* Fragment 1 valid, fragment 2 impossible: fails with fragment 2, no 3rd fragment needed. */
    add_frame(&f, 0x01, "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", 11);
    assert_int_equal(ws_stream_feed(&s, f.data, f.len, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(ws_stream_pending(&s), 11);
    f.len = 0;
    add_frame(&f, 0x00, "\xF4\x90\x80\x80", 4);
    assert_int_equal(ws_stream_feed(&s, f.data, f.len, MAX_DEFAULT, &handlers, &r),
                     WS_ERR_BAD_UTF8);
    assert_null(s._spill);
    /* Only the header and 2 of the 4 payload bytes of fragment 2: F4 90 is already impossible. */
    f.len = 0;
    add_frame(&f, 0x01, "ok", 2);
    assert_int_equal(ws_stream_feed(&s, f.data, f.len, MAX_DEFAULT, &handlers, &r), 0);
    f.len = 0;
    add_frame(&f, 0x00, "\xF4\x90\x80\x80", 4);
    assert_int_equal(ws_stream_feed(&s, f.data, 6 + 2, MAX_DEFAULT, &handlers, &r),
                     WS_ERR_BAD_UTF8);
    /* Inside one unfragmented frame: 100 bytes of text with 0xFF at byte 5 fail on the read that
     * brings byte 5, not when the frame is complete. */
    uint8_t text[100];
    memset(text, 'a', sizeof text);
    text[5] = 0xFF;
    f.len = 0;
    add_frame(&f, 0x81, text, sizeof text);
    assert_int_equal(ws_stream_feed(&s, f.data, 6 + 4, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(ws_stream_pending(&s), 6 + 4);
    assert_int_equal(ws_stream_feed(&s, f.data + 10, 6, MAX_DEFAULT, &handlers, &r),
                     WS_ERR_BAD_UTF8);
    assert_int_equal(r.events, 0);
    ws_stream_free(&s);
    rec_free(&r);
    buf_free(&f);
}

static void test_close_frames(void **state) {
    buf_t in = {0};
    uint8_t pl[130];
    /* Empty: code 1005, no reason. */
    add_frame(&in, 0x88, "", 0);
    check_violation(&in, 0, "C1005:0:\n");
    rec_t r = {0};
    ws_stream_t s = {0};
    in.len = 0;
    add_frame(&in, 0x88, "", 0);
    assert_int_equal(ws_stream_feed(&s, in.data, in.len, MAX_DEFAULT, &handlers, &r), 0);
    assert_true(r.reason_null);
    rec_free(&r);
    /* A code alone, a code and reason, the longest reason (123 bytes). */
    in.len = 0;
    add_frame(&in, 0x88, pl, close_payload(pl, 1000, ""));
    check_violation(&in, 0, "C1000:0:\n");
    in.len = 0;
    add_frame(&in, 0x88, pl, close_payload(pl, 4999, "b\xC3\xA9"));
    check_violation(&in, 0, "C4999:3:b\xC3\xA9\n");
    char reason[124];
    memset(reason, 'r', 123);
    reason[123] = '\0';
    in.len = 0;
    add_frame(&in, 0x88, pl, close_payload(pl, 1001, reason));
    char want[200];
    snprintf(want, sizeof want, "C1001:123:%s\n", reason);
    check_violation(&in, 0, want);
    /* One byte of payload. */
    in.len = 0;
    add_frame(&in, 0x88, "\x03", 1);
    check_violation(&in, WS_ERR_PROTOCOL, "");
    /* Every code: valid ones are delivered, others are a protocol error. */
    for (uint32_t code = 0; code <= 0xFFFF; code += (code < 5100 ? 1 : 97)) {
        in.len = 0;
        add_frame(&in, 0x88, pl, close_payload(pl, (uint16_t)code, "x"));
        rec_t r2 = {0};
        ws_stream_t s2 = {0};
        int rc = feed_split(&s2, in.data, in.len, MAX_DEFAULT, &r2, SPLIT_WHOLE, 0);
        if (ws_close_code_valid((uint16_t)code)) {
            assert_int_equal(rc, 0);
            assert_int_equal(r2.events, 1);
        } else {
            if (rc != WS_ERR_PROTOCOL)
                fail_msg("close code %u: rc %d", code, rc);
            assert_int_equal(r2.events, 0);
        }
        rec_free(&r2);
    }
    /* Reason that is not UTF-8. */
    in.len = 0;
    add_frame(&in, 0x88, pl, close_payload(pl, 1000, "\xCE\xBA\xED\xA0\x80"));
    check_violation(&in, WS_ERR_BAD_UTF8, "");
    in.len = 0;
    add_frame(&in, 0x88, pl, close_payload(pl, 1000, "ab\xE2\x82"));
    check_violation(&in, WS_ERR_BAD_UTF8, "");
    /* A close between fragments is delivered at once. */
    in.len = 0;
    add_frame(&in, 0x01, "a", 1);
    add_frame(&in, 0x88, pl, close_payload(pl, 1000, ""));
    check_splits_pending(in.data, in.len, MAX_DEFAULT, 0, "C1000:0:\n", 9, 1);
    buf_free(&in);
}

/* ---- size limit ---- */

static void test_max_message(void **state) {
    uint8_t pl[2000];
    memset(pl, 'z', sizeof pl);
    buf_t in = {0};
    char want[2100];
    static const uint8_t ops[] = {0x81, 0x82};
    for (size_t o = 0; o < 2; o++) {
        /* Exactly max: accepted. */
        in.len = 0;
        add_frame(&in, ops[o], pl, 1000);
        int n = snprintf(want, sizeof want, "M%u:1000:", ops[o] & 0xF);
        memcpy(want + n, pl, 1000);
        strcpy(want + n + 1000, "\n");
        check_all_splits_str(in.data, in.len, 1000, 0, want);
        /* max + 1: rejected, and from the header alone (16-bit length, mask: 8 bytes). */
        in.len = 0;
        add_frame(&in, ops[o], pl, 1001);
        check_all_splits_str(in.data, in.len, 1000, WS_ERR_TOO_BIG, "");
        check_all_splits_str(in.data, 8, 1000, WS_ERR_TOO_BIG, "");
        /* Across fragments: 600 + 400 is max, 600 + 401 is not; pings do not count. */
        in.len = 0;
        add_frame(&in, (uint8_t)(ops[o] & 0x0F), pl, 600);
        add_frame(&in, 0x89, pl, 125);
        add_frame(&in, 0x80, pl, 400);
        check_all_splits(in.data, in.len, 1000, 0, NULL, 0);
        in.len = 0;
        add_frame(&in, (uint8_t)(ops[o] & 0x0F), pl, 600);
        add_frame(&in, 0x00, pl, 0);
        size_t at = in.len;
        add_frame(&in, 0x80, pl, 401);
        check_all_splits_str(in.data, in.len, 1000, WS_ERR_TOO_BIG, "");
        check_all_splits_str(in.data, at + 8, 1000, WS_ERR_TOO_BIG, "");
    }
    /* 64-bit lengths up to 2^63 - 1 fail from the header, before anything is allocated. */
    const uint8_t huge[] = {0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4};
    check_all_splits_str(huge, sizeof huge, MAX_DEFAULT, WS_ERR_TOO_BIG, "");
    const uint8_t msb[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    check_all_splits_str(msb, sizeof msb, MAX_DEFAULT, WS_ERR_PROTOCOL, "");
    const uint8_t huge_cont[] = {0x00, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    in.len = 0;
    add_frame(&in, 0x01, "a", 1);
    buf_append(&in, huge_cont, sizeof huge_cont);
    buf_append(&in, "\1\2\3\4", 4);
    check_all_splits_str(in.data, in.len, MAX_DEFAULT, WS_ERR_TOO_BIG, "");
    /* max_message 0: only empty messages. Control frames have their own 125-byte limit. */
    in.len = 0;
    add_frame(&in, 0x81, "", 0);
    add_frame(&in, 0x89, pl, 125);
    check_all_splits(in.data, in.len, 0, 0, NULL, 0);
    add_frame(&in, 0x82, "a", 1);
    check_all_splits(in.data, in.len, 0, WS_ERR_TOO_BIG, NULL, 0);
    buf_free(&in);
}

/* ---- memory: pending bytes, the spill, zero-copy delivery ---- */

static void test_pending_and_spill(void **state) {
    buf_t in = {0};
    uint8_t pl[300];
    memset(pl, 'q', sizeof pl);
    rec_t r = {0};
    ws_stream_t s = {0};
    /* Complete frames: delivered from the input buffer, nothing kept. */
    add_frame(&in, 0x81, pl, 300);
    add_frame(&in, 0x82, pl, 10);
    add_frame(&in, 0x89, pl, 3);
    r.chunk = in.data;
    r.chunk_len = in.len;
    assert_int_equal(ws_stream_feed(&s, in.data, in.len, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(r.events, 3);
    assert_int_equal(r.in_chunk, 2);
    assert_int_equal(ws_stream_pending(&s), 0);
    assert_null(s._spill);
    rec_free(&r);

    /* A frame in pieces: 3 header bytes, then the rest of the 8-byte header and 2 payload bytes,
     * then the rest. */
    in.len = 0;
    add_frame(&in, 0x81, pl, 300);
    assert_int_equal(ws_stream_feed(&s, in.data, 3, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(ws_stream_pending(&s), 3);
    assert_non_null(s._spill);
    assert_int_equal(ws_stream_feed(&s, in.data + 3, 7, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(ws_stream_pending(&s), 8 + 2);
    assert_int_equal(ws_stream_feed(&s, in.data + 10, in.len - 11, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(ws_stream_pending(&s), 8 + 299);
    assert_int_equal(r.events, 0);
    assert_int_equal(ws_stream_feed(&s, in.data + in.len - 1, 1, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(r.events, 1);
    assert_int_equal(ws_stream_pending(&s), 0);
    assert_null(s._spill);

    /* The header split, its payload whole in the next read: still delivered without a copy. */
    in.len = 0;
    add_frame(&in, 0x82, pl, 200);
    assert_int_equal(ws_stream_feed(&s, in.data, 1, MAX_DEFAULT, &handlers, &r), 0);
    r.chunk = in.data + 1;
    r.chunk_len = in.len - 1;
    r.in_chunk = 0;
    assert_int_equal(ws_stream_feed(&s, in.data + 1, in.len - 1, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(r.in_chunk, 1);
    assert_null(s._spill);

    /* A fragmented message is pending between fragments, even across control frames. */
    in.len = 0;
    add_frame(&in, 0x01, pl, 50);
    add_frame(&in, 0x89, pl, 5);
    assert_int_equal(ws_stream_feed(&s, in.data, in.len, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(ws_stream_pending(&s), 50);
    in.len = 0;
    add_frame(&in, 0x8A, pl, 20);
    assert_int_equal(ws_stream_feed(&s, in.data, in.len - 5, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(ws_stream_pending(&s), 50 + 6 + 15);
    assert_int_equal(ws_stream_feed(&s, in.data + in.len - 5, 5, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(ws_stream_pending(&s), 50);
    in.len = 0;
    add_frame(&in, 0x80, pl, 7);
    assert_int_equal(ws_stream_feed(&s, in.data, in.len, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(ws_stream_pending(&s), 0);
    assert_null(s._spill);

    /* Free with something pending; the stream then starts afresh. */
    in.len = 0;
    add_frame(&in, 0x01, pl, 50);
    assert_int_equal(ws_stream_feed(&s, in.data, in.len, MAX_DEFAULT, &handlers, &r), 0);
    ws_stream_free(&s);
    assert_null(s._spill);
    assert_int_equal(ws_stream_pending(&s), 0);
    ws_stream_free(&s); /* twice is fine */
    in.len = 0;
    add_frame(&in, 0x81, "new", 3);
    buf_free(&r.log);
    memset(&r, 0, sizeof r);
    assert_int_equal(ws_stream_feed(&s, in.data, in.len, MAX_DEFAULT, &handlers, &r), 0);
    expect_log(&r, "M1:3:new\n");
    /* After an error too. */
    in.len = 0;
    add_frame(&in, 0x01, pl, 50);
    add_frame_m(&in, 0x80, pl, 5, true);
    assert_int_equal(ws_stream_feed(&s, in.data, in.len, MAX_DEFAULT, &handlers, &r),
                     WS_ERR_PROTOCOL);
    ws_stream_free(&s);
    in.len = 0;
    add_frame(&in, 0x81, "again", 5);
    assert_int_equal(ws_stream_feed(&s, in.data, in.len, MAX_DEFAULT, &handlers, &r), 0);
    expect_log(&r, "M1:3:new\nM1:5:again\n");
    assert_int_equal(ws_stream_feed(&s, NULL, 0, MAX_DEFAULT, &handlers, &r), 0);
    rec_free(&r);
    buf_free(&in);
}

/* ---- handlers that stop ---- */

static void test_handler_stops(void **state) {
    buf_t in = {0};
    uint8_t pl[4];
    add_frame(&in, 0x81, "one", 3);
    add_frame(&in, 0x01, "tw", 2);
    add_frame(&in, 0x89, "p", 1);
    add_frame(&in, 0x80, "o", 1);
    add_frame(&in, 0x88, pl, close_payload(pl, 1000, ""));
    add_frame(&in, 0x81, "after", 5);
    const char *logs[] = {"M1:3:one\n", "M1:3:one\nP0:1:p\n", "M1:3:one\nP0:1:p\nM1:3:two\n",
                          "M1:3:one\nP0:1:p\nM1:3:two\nC1000:0:\n"};
    for (int stop_at = 1; stop_at <= 4; stop_at++) {
        for (uint32_t seed = 0; seed < 10; seed++) {
            rec_t r = {.stop_at = stop_at};
            ws_stream_t s = {0};
            int rc = feed_split(&s, in.data, in.len, MAX_DEFAULT, &r,
                                seed == 0 ? SPLIT_WHOLE : SPLIT_RANDOM, seed);
            assert_int_equal(rc, WS_STOPPED);
            expect_log(&r, logs[stop_at - 1]);
            assert_null(s._spill);
            rec_free(&r);
        }
    }
    buf_free(&in);
}

/* A handler that pauses after every message: the rest of the input is held, whether it came in
 * the same chunk or is fed while paused, and resuming delivers it in order, one message at a
 * time, with pings in between as they came. */
static void test_handler_pauses(void **state) {
    buf_t in = {0};
    add_frame(&in, 0x81, "one", 3);
    add_frame(&in, 0x01, "tw", 2);
    add_frame(&in, 0x89, "p", 1);
    add_frame(&in, 0x80, "o", 1);
    add_frame(&in, 0x81, "three", 5);
    add_frame(&in, 0x82, "four", 4);
    const char *want = "M1:3:one\nP0:1:p\nM1:3:two\nM1:5:three\nM2:4:four\n";
    for (int keep_feeding = 0; keep_feeding < 2; keep_feeding++) {
        for (uint32_t seed = 0; seed < 20; seed++) {
            rec_t r = {.pause = true};
            ws_stream_t s = {0};
            rng_state = seed + 1;
            size_t at = 0;
            int pauses = 0;
            while (at < in.len) {
                size_t k = seed == 0 ? in.len - at : 1 + rng() % 9;
                if (k > in.len - at)
                    k = in.len - at;
                uint8_t *chunk = malloc(k);
                memcpy(chunk, in.data + at, k);
                int rc = ws_stream_feed(&s, chunk, k, MAX_DEFAULT, &handlers, &r);
                free(chunk);
                at += k;
                assert_true(rc == 0 || rc == WS_PAUSED);
                if (rc == WS_PAUSED) {
                    pauses++;
                    if (keep_feeding)
                        continue; /* a reader that did not stop: bytes go behind the held ones */
                    while ((rc = ws_stream_resume(&s, MAX_DEFAULT, &handlers, &r)) == WS_PAUSED)
                        pauses++;
                    assert_int_equal(rc, 0);
                }
            }
            int rc;
            while ((rc = ws_stream_resume(&s, MAX_DEFAULT, &handlers, &r)) == WS_PAUSED)
                pauses++;
            assert_int_equal(rc, 0);
            expect_log(&r, want);
            assert_true(pauses >= 3); /* at least after one, two and three (four may end input) */
            assert_int_equal(ws_stream_pending(&s), 0);
            assert_null(s._spill);
            rec_free(&r);
        }
    }
    /* Resuming a stream that holds nothing is a no-op. */
    ws_stream_t s = {0};
    rec_t r = {0};
    assert_int_equal(ws_stream_resume(&s, MAX_DEFAULT, &handlers, &r), 0);
    assert_int_equal(r.events, 0);
    buf_free(&in);
}

/* ---- sizes ---- */

static void test_empty_text(void **state) {
    const uint8_t empty[] = {0x81, 0x80, 1, 2, 3, 4};
    check_all_splits_str(empty, sizeof empty, MAX_DEFAULT, 0, "M1:0:\n");
    check_all_splits_str(empty, sizeof empty, 0, 0, "M1:0:\n");
}

/* A 64 KiB text message of multi-byte characters, as one frame fed in 997-byte reads
 * (Autobahn 1.1.8) and as 997-byte fragments cutting characters apart (Autobahn 9.x-like). */
static void test_64k_message(void **state) {
    enum { N = 65536 };
    uint8_t *text = malloc(N);
    assert_non_null(text);
    for (size_t i = 0; i < N; i += 4)
        memcpy(text + i,
               i % 8 ? "\xE2\x82\xAC"
                       "a"
                     : "\xF0\x9D\x84\x9E",
               4);
    assert_true(ws_utf8_valid(text, N));
    char *want = malloc(N + 32);
    int wl = snprintf(want, 32, "M1:%d:", N);
    memcpy(want + wl, text, N);
    want[wl + N] = '\n';
    size_t want_len = (size_t)wl + N + 1;

    buf_t in = {0};
    add_frame(&in, 0x81, text, N);
    check_all_splits(in.data, in.len, N, 0, want, want_len);
    rec_t r = {0};
    ws_stream_t s = {0};
    for (size_t at = 0; at < in.len; at += 997) {
        size_t k = in.len - at < 997 ? in.len - at : 997;
        assert_int_equal(ws_stream_feed(&s, in.data + at, k, N, &handlers, &r), 0);
    }
    assert_int_equal(r.log.len, want_len);
    assert_memory_equal(r.log.data, want, want_len);
    assert_null(s._spill);
    rec_free(&r);

    in.len = 0;
    for (size_t at = 0; at < N; at += 997) {
        size_t k = N - at < 997 ? N - at : 997;
        uint8_t b0 = (uint8_t)((at == 0 ? WS_OP_TEXT : WS_OP_CONT) | (at + k == N ? 0x80 : 0));
        add_frame(&in, b0, text + at, k);
        if (at % (997 * 8) == 0)
            add_frame(&in, 0x89, "", 0);
    }
    rec_t whole = {0};
    assert_int_equal(feed_split(&s, in.data, in.len, N, &whole, SPLIT_WHOLE, 0), 0);
    check_all_splits(in.data, in.len, N, 0, (char *)whole.log.data, whole.log.len);
    size_t pings = (N + 997 * 8 - 1) / (997 * 8);
    assert_int_equal(whole.events, (int)pings + 1);
    assert_int_equal(whole.log.len, pings * 6 + want_len);
    assert_memory_equal(whole.log.data + pings * 6, want, want_len);
    /* One byte short of the limit fails at the last fragment's header. */
    check_all_splits(in.data, in.len, N - 1, WS_ERR_TOO_BIG, (char *)whole.log.data, pings * 6);
    rec_free(&whole);
    buf_free(&in);
    free(want);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples_unmasked_rejected),
        cmocka_unit_test(test_rfc_examples_masked),
        cmocka_unit_test(test_rfc_examples_binary),
        cmocka_unit_test(test_mixed_sequence),
        cmocka_unit_test(test_violation_masking_rsv_opcodes),
        cmocka_unit_test(test_violation_control_frames),
        cmocka_unit_test(test_violation_fragment_order),
        cmocka_unit_test(test_violation_utf8),
        cmocka_unit_test(test_utf8_fail_fast),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_max_message),
        cmocka_unit_test(test_pending_and_spill),
        cmocka_unit_test(test_handler_stops),
        cmocka_unit_test(test_handler_pauses),
        cmocka_unit_test(test_empty_text),
        cmocka_unit_test(test_64k_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
