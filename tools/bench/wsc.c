#include "wsc.h"

#include <stdio.h>
#include <string.h>

int wsc_upgrade_request(char *dst, size_t cap, const char *host_port, const char *path) {
    int n = snprintf(dst, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n",
                     path, host_port);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int wsc_upgrade_response(const char *p, size_t n, int *status) {
    if (n >= 5 && memcmp(p, "HTTP/", 5) != 0)
        return -1;
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end)
        return 0;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    *status = 0;
    if (sp)
        for (const char *q = sp + 1; q < end && *q >= '0' && *q <= '9'; q++)
            *status = *status * 10 + (*q - '0');
    return (int)(end + 4 - p);
}

int wsc_encode(uint8_t *dst, size_t cap, uint8_t opcode, const void *payload, size_t len,
               uint32_t mask) {
    size_t h = 2;
    if (len >= 65536)
        h += 8;
    else if (len >= 126)
        h += 2;
    if (cap < h + 4 + len)
        return -1;
    dst[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        dst[1] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        dst[1] = 0x80 | 126;
        dst[2] = (uint8_t)(len >> 8);
        dst[3] = (uint8_t)len;
    } else {
        dst[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            dst[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    uint8_t key[4] = {(uint8_t)(mask >> 24), (uint8_t)(mask >> 16), (uint8_t)(mask >> 8),
                      (uint8_t)mask};
    memcpy(dst + h, key, 4);
    const uint8_t *src = payload;
    uint8_t *out = dst + h + 4;
    for (size_t i = 0; i < len; i++)
        out[i] = src[i] ^ key[i & 3];
    return (int)(h + 4 + len);
}

long wsc_decode(const uint8_t *p, size_t n, wsc_frame_t *f) {
    if (n < 2)
        return 0;
    if (p[0] & 0x70)
        return WSC_ERR_RSV;
    if (p[1] & 0x80)
        return WSC_ERR_MASKED;
    uint8_t op = p[0] & 0x0F;
    uint64_t len = p[1] & 0x7F;
    size_t h = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        h = 10;
    }
    if (len > WSC_MAX_PAYLOAD)
        return WSC_ERR_TOO_BIG;
    if ((op & 0x8) && (len > 125 || !(p[0] & 0x80)))
        return WSC_ERR_CONTROL;
    if (n < h + len)
        return 0;
    f->opcode = op;
    f->fin = (p[0] & 0x80) != 0;
    f->payload = p + h;
    f->len = (size_t)len;
    return (long)(h + len);
}
