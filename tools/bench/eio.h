/* Engine.IO v4 / Socket.IO v5 packets (what a socket.io 4 server speaks), client side, without
 * I/O: the handshake path and the classification of what the server sends, just what
 * imgate-bench needs to drive a Socket.IO server over the WebSocket-only transport.
 *
 * Each WebSocket text message is one Engine.IO packet: a type digit, then its data. The server
 * opens with `0{"sid":...,"pingInterval":...}`, pings with `2` (the client answers `3`), and
 * type 4 carries one Socket.IO packet: a type digit, an optional `<n>-` (binary attachments),
 * an optional `/nsp,` (the main namespace `/` is left out), optional ack-id digits, then JSON.
 * So the bench's whole exchange is: `0{...}` from the server, `40` from us, `40{"sid":...}`
 * back (connected), then `42["msg",{...}]` events and `2`/`3` pings. */
#ifndef IMGATE_BENCH_EIO_H
#define IMGATE_BENCH_EIO_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    EIO_BAD,           /* empty, not a known type, or a Socket.IO packet we cannot read */
    EIO_OPEN,          /* 0{...}: the handshake data */
    EIO_CLOSE,         /* 1 */
    EIO_PING,          /* 2[probe]: answer with 3 */
    EIO_PONG,          /* 3 */
    EIO_OTHER,         /* 5 upgrade, 6 noop: nothing to do on a WebSocket-only transport */
    SIO_CONNECT,       /* 40{"sid":...}: the namespace connect succeeded */
    SIO_DISCONNECT,    /* 41: the server disconnected the namespace */
    SIO_EVENT,         /* 42[id]["name",args...] */
    SIO_ACK,           /* 43id[args...] */
    SIO_CONNECT_ERROR, /* 44{"message":...} */
    SIO_BINARY,        /* 45 / 46: binary event or ack (the bench sends none, expects none) */
} eio_kind_t;

typedef struct {
    eio_kind_t kind;
    int main_nsp;     /* Socket.IO packets: 1 if for the main namespace "/" */
    int64_t ack_id;   /* SIO_EVENT (ack requested), SIO_ACK: the id; -1 none */
    const char *name; /* SIO_EVENT: the event name's bytes (escapes not decoded) */
    int name_len;     /* ... and its length; -1 if the array does not start with a string */
    const char *data; /* the JSON after type, namespace and id (OPEN: the object; EVENT, ACK:
                         the array); may be empty */
    size_t data_len;
} eio_packet_t;

/* Classifies the text message p[0..n) and fills *pk; returns pk->kind. */
eio_kind_t eio_parse(const char *p, size_t n, eio_packet_t *pk);

/* Writes the request target of a WebSocket-only Engine.IO v4 connection into dst:
 * `<base>?EIO=4&transport=websocket`, then `&userID=<user>&appID=<app>` when user is not NULL
 * (the bench's Socket.IO peer joins the rooms those name). base is a path ending in `/`
 * (`/socket.io/`); user must not need escaping. Returns the length, or -1 if cap is too small. */
int eio_path(char *dst, size_t cap, const char *base, const char *user, uint32_t app);

#endif
