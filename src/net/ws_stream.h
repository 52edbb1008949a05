/* The receiving half of a server-side WebSocket: turns bytes from the socket into complete
 * messages and control frames, enforcing RFC 6455 (masking, RSV bits, opcodes, control frame
 * size and fragmentation, fragment order, UTF-8 of text and close reasons, close codes) and the
 * message size limit. Bytes arrive in any split (down to one byte at a time); only an incomplete
 * frame or an unfinished fragmented message is kept, in a spill block allocated on demand, so an
 * idle connection costs one pointer. */
#ifndef IMGATE_NET_WS_STREAM_H
#define IMGATE_NET_WS_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "net/ws_error.h"

typedef struct {
    struct ws_stream_spill *_spill; /* NULL while nothing is pending */
} ws_stream_t;

/* Callbacks. `data` is unmasked, writable, and valid only during the call. Return 0 to go on,
 * WS_HANDLER_PAUSE (on_message only) to stop after this message and keep the rest of the input
 * for ws_stream_resume (the answer to this message comes later, and the next must wait for it),
 * any other non-zero value to stop feeding at once (e.g. the connection was closed by the
 * handler); then ws_stream_feed returns WS_STOPPED and drops the rest of the bytes. A NULL
 * handler ignores its frames. Handlers must not call ws_stream_* on the stream being fed. Frames
 * after a close are still parsed if on_close returns 0; normally it returns non-zero. */
#define WS_HANDLER_PAUSE 2

typedef struct {
    /* A complete text (UTF-8 checked) or binary message, reassembled if it was fragmented. */
    int (*on_message)(void *ctx, uint8_t opcode, uint8_t *data, size_t len);
    int (*on_ping)(void *ctx, uint8_t *data, size_t len);
    int (*on_pong)(void *ctx, uint8_t *data, size_t len);
    /* A valid close frame. code is 1005 (WS_CLOSE_NO_STATUS) when the frame had no payload;
     * reason is NULL when there is none (len 0). */
    int (*on_close)(void *ctx, uint16_t code, uint8_t *reason, size_t len);
} ws_stream_handlers_t;

/* Feeds p[0..n) (modified in place by unmasking). Calls the handlers for each complete unit.
 * Returns 0 when all bytes were taken, WS_STOPPED if a handler asked to stop, WS_PAUSED if one
 * paused (the rest of p, and whatever is fed until ws_stream_resume, is held), or a negative
 * WS_ERR_* — then the caller closes with ws_error_close_code(err). A message (or a single frame)
 * whose size would pass max_message is rejected with WS_ERR_TOO_BIG as soon as its header says
 * so, before its payload is buffered. Control frames have their own limit of 125 bytes and do not
 * count against max_message. After an error or WS_STOPPED the spill is already freed. */
int ws_stream_feed(ws_stream_t *s, uint8_t *p, size_t n, size_t max_message,
                   const ws_stream_handlers_t *h, void *ctx);

/* Feeds the input held since a handler paused, as ws_stream_feed does (it may pause again).
 * Returns 0 when there was none. */
int ws_stream_resume(ws_stream_t *s, size_t max_message, const ws_stream_handlers_t *h, void *ctx);

/* Bytes taken but not yet delivered: input held by a pause, a partial frame (its header included,
 * though a parsed header is kept in parsed form) plus the payload of an unfinished fragmented
 * message. When it is 0, no
 * spill block is allocated, unless a fragmented message has begun with only empty fragments. */
size_t ws_stream_pending(const ws_stream_t *s);

/* Frees the spill block. The stream can be fed again afterwards as a new one. */
void ws_stream_free(ws_stream_t *s);

#endif
