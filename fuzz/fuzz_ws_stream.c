/* libFuzzer target for the WebSocket receiver (src/net/ws_stream.c).
 *
 * The input is fed twice: whole, and in split sizes drawn from a PRNG seeded by a hash of the
 * input (runs of 1-byte reads mixed with larger ones), each piece in its own exactly-sized heap
 * block so ASan sees any read past what was fed. Both runs must return the same result and
 * produce the same callbacks (hashed), and every callback must respect the contract: text is
 * UTF-8, messages fit in max_message, control payloads fit in 125 bytes, close codes are valid.
 * The first input byte also picks after how many callbacks a handler asks to stop (0: never).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_ws_stream.c \
 *       src/net/ws_stream.c src/net/ws_frame.c src/net/ws_utf8.c -o /tmp/fuzz_ws_stream
 *   /tmp/fuzz_ws_stream -max_total_time=60 -max_len=70000 CORPUS_DIR */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws_frame.h"
#include "net/ws_stream.h"
#include "net/ws_utf8.h"

#define FUZZ_MAX_MESSAGE 65536

typedef struct {
    uint64_t hash; /* FNV-1a over every callback and its bytes */
    unsigned events;
    unsigned stop_at;
} run_t;

static void mix(run_t *r, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        r->hash ^= b[i];
        r->hash *= 0x100000001b3ull;
    }
}

static int event(run_t *r, uint8_t kind, uint32_t num, const uint8_t *data, size_t len) {
    uint64_t l = len;
    mix(r, &kind, 1);
    mix(r, &num, sizeof num);
    mix(r, &l, sizeof l);
    if (len)
        mix(r, data, len);
    r->events++;
    return r->stop_at && r->events >= r->stop_at;
}

static int on_message(void *ctx, uint8_t opcode, uint8_t *data, size_t len) {
    if (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY)
        abort();
    if (len > FUZZ_MAX_MESSAGE || (opcode == WS_OP_TEXT && !ws_utf8_valid(data, len)))
        abort();
    return event(ctx, 'M', opcode, data, len);
}

static int on_ping(void *ctx, uint8_t *data, size_t len) {
    if (len > WS_CONTROL_MAX_PAYLOAD)
        abort();
    return event(ctx, 'P', 0, data, len);
}

static int on_pong(void *ctx, uint8_t *data, size_t len) {
    if (len > WS_CONTROL_MAX_PAYLOAD)
        abort();
    return event(ctx, 'O', 0, data, len);
}

static int on_close(void *ctx, uint16_t code, uint8_t *reason, size_t len) {
    if (code == WS_CLOSE_NO_STATUS ? len != 0 : !ws_close_code_valid(code))
        abort();
    if (len > WS_CONTROL_MAX_PAYLOAD - 2 || (len && !ws_utf8_valid(reason, len)))
        abort();
    if ((reason == NULL) != (len == 0))
        abort();
    return event(ctx, 'C', code, reason, len);
}

static const ws_stream_handlers_t handlers = {on_message, on_ping, on_pong, on_close};

/* Feeds data[0..n) in pieces; split == 0 means all at once. Returns the first non-zero result. */
static int run(const uint8_t *data, size_t n, uint64_t split, run_t *r, size_t *pending) {
    ws_stream_t s = {0};
    int rc = 0;
    size_t at = 0;
    while (at < n) {
        size_t k = n - at;
        if (split) {
            split ^= split << 13; /* xorshift64 */
            split ^= split >> 7;
            split ^= split << 17;
            size_t want = (split & 3) == 0 ? 1 + (split >> 8) % 2048 : 1 + (split >> 8) % 5;
            if (want < k)
                k = want;
        }
        uint8_t *piece = malloc(k);
        if (!piece)
            abort();
        memcpy(piece, data + at, k);
        rc = ws_stream_feed(&s, piece, k, FUZZ_MAX_MESSAGE, &handlers, r);
        free(piece);
        at += k;
        if (rc) {
            if (s._spill || ws_stream_pending(&s))
                abort(); /* an error or a stop keeps nothing */
            break;
        }
        if (ws_stream_pending(&s) > FUZZ_MAX_MESSAGE + 2 * WS_FRAME_MAX_HEADER)
            abort();
    }
    *pending = ws_stream_pending(&s);
    ws_stream_free(&s);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    unsigned stop_at = data[0] % 8; /* 0: never stop */
    data++;
    size--;

    uint64_t seed = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < size; i++) {
        seed ^= data[i];
        seed *= 0x100000001b3ull;
    }
    seed |= 1; /* xorshift needs a nonzero state */

    run_t whole = {0xcbf29ce484222325ull, 0, stop_at};
    run_t split = {0xcbf29ce484222325ull, 0, stop_at};
    size_t pw = 0, ps = 0;
    int rw = run(data, size, 0, &whole, &pw);
    int rs = run(data, size, seed, &split, &ps);
    if (rw != rs || whole.hash != split.hash || whole.events != split.events || pw != ps)
        abort();
    if (rw != 0 && rw != WS_STOPPED && rw != WS_ERR_PROTOCOL && rw != WS_ERR_BAD_UTF8 &&
        rw != WS_ERR_TOO_BIG)
        abort();
    return 0;
}
