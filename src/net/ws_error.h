/* Error codes of the WebSocket layer, and the close code each maps to (RFC 6455 §7.4.1). */
#ifndef IMGATE_NET_WS_ERROR_H
#define IMGATE_NET_WS_ERROR_H

#include <stdint.h>

enum {
    WS_STOPPED = 1,          /* a handler asked ws_stream_feed to stop; not an error */
    WS_PAUSED = 2,           /* a handler asked to pause: the rest of the input is held */
    WS_ERR_PROTOCOL = -1001, /* 1002: unmasked frame, RSV bits, bad opcode, bad fragment order,
                                control frame too long or fragmented, bad close payload */
    WS_ERR_BAD_UTF8 = -1002, /* 1007: text message or close reason not valid UTF-8 */
    WS_ERR_TOO_BIG = -1003,  /* 1009: message over the limit */
    WS_ERR_NOMEM = -1004,    /* 1011: out of memory */
    WS_ERR_BAD_KEY = -1005,  /* handshake: Sec-WebSocket-Key is not base64 of 16 bytes */
};

enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005,
    WS_CLOSE_BAD_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
    WS_CLOSE_TRY_AGAIN = 1013,
};

/* The close code for a negative WS_ERR_* value (1002 for anything unknown). */
static inline uint16_t ws_error_close_code(int err) {
    switch (err) {
    case WS_ERR_BAD_UTF8:
        return WS_CLOSE_BAD_DATA;
    case WS_ERR_TOO_BIG:
        return WS_CLOSE_TOO_BIG;
    case WS_ERR_NOMEM:
        return WS_CLOSE_INTERNAL;
    default:
        return WS_CLOSE_PROTOCOL;
    }
}

#endif
