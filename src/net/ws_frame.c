/* RFC 6455 §5.2 frame headers. */
#include "net/ws_frame.h"

#include <string.h>

#include "net/ws_error.h"

/* Reads the header byte by byte as §5.2 lays it out: two fixed bytes, then 0, 2 or 8 bytes of
 * extended length, then the 4-byte mask key if the MASK bit is set. Returns 0 until all of it is
 * there, so a caller can retry with more bytes without keeping any parse state. */
int ws_frame_parse_header(const uint8_t *p, size_t n, ws_frame_hdr_t *h) {
    if (n < 2)
        return 0;
    uint8_t len7 = p[1] & 0x7F;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    bool masked = (p[1] & 0x80) != 0;
    size_t need = 2 + ext + (masked ? 4 : 0);
    uint64_t len = len7;
    if (ext) {
        if (n < 2 + ext)
            return 0;
        len = 0;
        for (size_t i = 0; i < ext; i++)
            len = (len << 8) | p[2 + i];
        /* Checked before the mask key is in, so a bad length fails as early as possible. */
        if (ext == 8 && (len >> 63))
            return WS_ERR_PROTOCOL;
    }
    if (n < need)
        return 0;
    h->fin = (p[0] & 0x80) != 0;
    h->rsv = (p[0] >> 4) & 7;
    h->opcode = p[0] & 0x0F;
    h->masked = masked;
    if (masked)
        memcpy(h->mask, p + 2 + ext, 4);
    else
        memset(h->mask, 0, 4);
    h->header_len = (uint8_t)need;
    h->payload_len = len;
    return (int)need;
}

size_t ws_frame_header_size(uint64_t payload_len) {
    if (payload_len <= 125)
        return 2;
    if (payload_len <= 0xFFFF)
        return 4;
    return 10;
}

/* Always the minimal length encoding (§5.2: "the minimal number of bytes MUST be used"). */
size_t ws_frame_encode_header(uint8_t out[WS_FRAME_MAX_SERVER_HEADER], uint8_t opcode, bool fin,
                              uint64_t payload_len) {
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    size_t n = ws_frame_header_size(payload_len);
    if (n == 2) {
        out[1] = (uint8_t)payload_len;
    } else if (n == 4) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    }
    return n;
}

/* The mask repeats every 4 bytes, so an 8-byte word of it (rotated to `offset`) XORs 8 payload
 * bytes at once; memcpy keeps the loads and stores legal at any alignment, and compilers turn it
 * into plain (often vectorised) moves. */
void ws_frame_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset) {
    uint8_t m[8];
    for (unsigned k = 0; k < 8; k++)
        m[k] = mask[(offset + k) & 3];
    size_t i = 0;
    if (n >= 8) {
        uint64_t w;
        memcpy(&w, m, 8);
        for (; i + 8 <= n; i += 8) {
            uint64_t x;
            memcpy(&x, p + i, 8);
            x ^= w;
            memcpy(p + i, &x, 8);
        }
    }
    /* i is a multiple of 8 here, so m[i & 7] is still the right mask byte. */
    for (; i < n; i++)
        p[i] ^= m[i & 7];
}

/* RFC 6455 §7.4.1/§7.4.2: 1004 is reserved, 1005 and 1006 must never be on the wire, 1015 is
 * for TLS failures reported locally, 1016–2999 are unassigned or reserved for extensions.
 * 1012–1014 were registered with IANA later (service restart, try again later, bad gateway). */
bool ws_close_code_valid(uint16_t code) {
    if (code >= 1000 && code <= 1003)
        return true;
    if (code >= 1007 && code <= 1014)
        return true;
    return code >= 3000 && code <= 4999;
}
