/* WebSocket client framing (RFC 6455), without I/O: the upgrade request, masked client frames,
 * and a decoder for the server's frames. The bench keeps a per-connection read buffer (a client
 * may), so the decoder works on whole frames in a contiguous buffer. */
#ifndef IMGATE_BENCH_WSC_H
#define IMGATE_BENCH_WSC_H

#include <stddef.h>
#include <stdint.h>

enum {
    WSC_OP_CONT = 0x0,
    WSC_OP_TEXT = 0x1,
    WSC_OP_BINARY = 0x2,
    WSC_OP_CLOSE = 0x8,
    WSC_OP_PING = 0x9,
    WSC_OP_PONG = 0xA,
};

/* Errors of wsc_decode. */
#define WSC_ERR_RSV     (-1) /* reserved bits set: no extension was negotiated */
#define WSC_ERR_MASKED  (-2) /* a server must not mask */
#define WSC_ERR_TOO_BIG (-3) /* over WSC_MAX_PAYLOAD */
#define WSC_ERR_CONTROL (-4) /* control frame over 125 bytes or fragmented */

#define WSC_MAX_PAYLOAD (16u << 20) /* 16 MiB: imgate's largest app.maxMessageSize */
#define WSC_HEADER_MAX  14          /* 2 + 8 length + 4 mask */

typedef struct {
    uint8_t opcode;
    uint8_t fin;
    const uint8_t *payload;
    size_t len;
} wsc_frame_t;

/* Writes the upgrade request for ws://host/path into dst; returns its length or -1 if cap is
 * too small. The key is fixed: the bench does not check the accept key, only the 101. */
int wsc_upgrade_request(char *dst, size_t cap, const char *host_port, const char *path);
/* Looks for the end of the server's upgrade response in p[0..n): returns the response length
 * (through the blank line) and sets *status, 0 if incomplete, -1 if it is not HTTP. */
int wsc_upgrade_response(const char *p, size_t n, int *status);
/* Writes one masked frame (FIN set) with the given opcode and payload into dst; returns the
 * frame length or -1 if cap is too small. mask is the 4-byte masking key. */
int wsc_encode(uint8_t *dst, size_t cap, uint8_t opcode, const void *payload, size_t len,
               uint32_t mask);
/* Decodes one frame at p[0..n): returns the frame length and fills *f, 0 if the frame is not
 * complete yet, or a negative WSC_ERR_*. */
long wsc_decode(const uint8_t *p, size_t n, wsc_frame_t *f);

#endif
