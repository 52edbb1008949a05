/* RFC 6455 §5.2 frame headers: parse a client frame header, encode a server frame header. */
#ifndef IMGATE_NET_WS_FRAME_H
#define IMGATE_NET_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

#define WS_FRAME_MAX_HEADER        14 /* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_FRAME_MAX_SERVER_HEADER 10 /* server frames are never masked */
#define WS_CONTROL_MAX_PAYLOAD     125

typedef struct {
    bool fin;
    uint8_t rsv; /* the three RSV bits, as (b0 >> 4) & 7 */
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint8_t header_len; /* bytes of header, including the mask */
    uint64_t payload_len;
} ws_frame_hdr_t;

/* Parses the frame header at p[0..n). Returns the header length (> 0) and fills h, 0 if more
 * bytes are needed, or WS_ERR_PROTOCOL for a 64-bit length with its most significant bit set
 * (RFC 6455 §5.2). Semantic checks (mask, RSV, opcodes) are the caller's (ws_stream). */
int ws_frame_parse_header(const uint8_t *p, size_t n, ws_frame_hdr_t *h);

/* Writes the header of an unmasked server frame into out; returns its length (2, 4 or 10). */
size_t ws_frame_encode_header(uint8_t out[WS_FRAME_MAX_SERVER_HEADER], uint8_t opcode, bool fin,
                              uint64_t payload_len);

/* The header length ws_frame_encode_header will produce for this payload length. */
size_t ws_frame_header_size(uint64_t payload_len);

/* XORs p[0..n) with the mask; `offset` is the position of p[0] in the payload (for resuming). */
void ws_frame_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* True for close codes a peer may send (RFC 6455 §7.4): 1000–1003, 1007–1014, 3000–4999. */
bool ws_close_code_valid(uint16_t code);

#endif
