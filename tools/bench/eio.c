#include "eio.h"

#include <stdio.h>
#include <string.h>

/* The Socket.IO packet in p[0..n) (the Engine.IO type digit already removed). */
static eio_kind_t parse_sio(const char *p, size_t n, eio_packet_t *pk) {
    const char *end = p + n;
    if (n == 0 || *p < '0' || *p > '6')
        return EIO_BAD;
    static const eio_kind_t kinds[] = {SIO_CONNECT,       SIO_DISCONNECT, SIO_EVENT, SIO_ACK,
                                       SIO_CONNECT_ERROR, SIO_BINARY,     SIO_BINARY};
    eio_kind_t kind = kinds[*p++ - '0'];
    if (kind == SIO_BINARY) /* <attachments>- comes first: skip it, the bench reads no binary */
        return SIO_BINARY;
    pk->main_nsp = 1;
    if (p < end && *p == '/') { /* a namespace: up to the comma (or the end: 41/chat) */
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *nsp_end = comma ? comma : end;
        pk->main_nsp = nsp_end - p == 1;
        p = comma ? comma + 1 : end;
    }
    if (p < end && *p >= '0' && *p <= '9') {
        int64_t id = 0;
        while (p < end && *p >= '0' && *p <= '9' && id < INT64_MAX / 10)
            id = id * 10 + (*p++ - '0');
        pk->ack_id = id;
    }
    pk->data = p;
    pk->data_len = (size_t)(end - p);
    if (kind == SIO_ACK && pk->ack_id < 0)
        return EIO_BAD;
    if (kind == SIO_EVENT) {
        /* ["name",...]: the name is the array's first element and must be a string */
        if (p >= end || *p != '[')
            return EIO_BAD;
        const char *q = p + 1;
        if (q < end && *q == '"') {
            const char *s = ++q;
            while (q < end && *q != '"') {
                if (*q == '\\')
                    q++;
                q++;
            }
            if (q < end) {
                pk->name = s;
                pk->name_len = (int)(q - s);
            }
        }
        if (pk->name_len < 0)
            return EIO_BAD;
    }
    return kind;
}

eio_kind_t eio_parse(const char *p, size_t n, eio_packet_t *pk) {
    memset(pk, 0, sizeof *pk);
    pk->ack_id = -1;
    pk->name_len = -1;
    pk->kind = EIO_BAD;
    if (n == 0)
        return pk->kind;
    pk->data = p + 1;
    pk->data_len = n - 1;
    switch (p[0]) {
    case '0':
        pk->kind = EIO_OPEN;
        break;
    case '1':
        pk->kind = EIO_CLOSE;
        break;
    case '2':
        pk->kind = EIO_PING;
        break;
    case '3':
        pk->kind = EIO_PONG;
        break;
    case '4':
        pk->kind = parse_sio(p + 1, n - 1, pk);
        break;
    case '5':
    case '6':
        pk->kind = EIO_OTHER;
        break;
    }
    return pk->kind;
}

int eio_path(char *dst, size_t cap, const char *base, const char *user, uint32_t app) {
    int n;
    if (user)
        n = snprintf(dst, cap, "%s?EIO=4&transport=websocket&userID=%s&appID=%u", base, user, app);
    else
        n = snprintf(dst, cap, "%s?EIO=4&transport=websocket", base);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}
