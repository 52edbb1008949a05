/* A client connection: one socket owned by one worker for its whole life. It starts speaking
 * HTTP (API requests or a WebSocket upgrade) and may become a WebSocket. Output is queued as
 * references to shared buffers and flushed with writev once per loop turn. Only the owning
 * worker's thread may touch a conn_t; other threads name it by conn_ref_t. */
#ifndef IMGATE_NET_CONN_H
#define IMGATE_NET_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "net/http_req.h"
#include "net/ws_stream.h"
#include "util/buf.h"

struct worker;
struct http_reader;
struct wq_item;

typedef enum {
    CONN_HTTP = 0,   /* reading HTTP requests */
    CONN_WS,         /* an open WebSocket */
    CONN_WS_CLOSING, /* close frame sent; waiting for the peer's, or for the output to drain */
    CONN_DEAD,       /* socket closed; memory freed by the loop's close callback */
} conn_state_t;

/* conn flags */
enum {
    CONN_F_WS_PORT = 1u << 0,           /* accepted on the WebSocket port (only /acc is served) */
    CONN_F_CLOSE_AFTER_FLUSH = 1u << 1, /* half-close once the queue is written */
    CONN_F_IN_FLUSH_LIST = 1u << 2,
    CONN_F_WANT_WRITE = 1u << 3,   /* poll is watching UV_WRITABLE */
    CONN_F_SLOW = 1u << 4,         /* write queue overflowed: close at the next flush */
    CONN_F_INPUT_DONE = 1u << 5,   /* peer's close frame seen, or input failed: discard */
    CONN_F_REQ_PENDING = 1u << 6,  /* an HTTP request has started but is not complete */
    CONN_F_LINGER = 1u << 7,       /* FIN sent; reading until the peer's EOF or timeout */
    CONN_F_IN_PRIO_LIST = 1u << 8, /* in the worker's list of replies to flush first */
    CONN_F_PAUSED = 1u << 9,       /* the answer to the current request comes later: no input */
    CONN_F_WS_INPUT = 1u << 10,    /* the input union holds _ws (upgraded), not _http */
    CONN_F_READ_OFF = 1u << 11,    /* epoll is not watching input (paused) */
    CONN_F_OUT_FULL = 1u << 12,  /* our answers fill app.maxWriteQueue: input waits for the peer */
    CONN_F_REFUSE = 1u << 13,    /* accepted past a limit: its request gets 503 (429), then close */
    CONN_F_REFUSE_IP = 1u << 14, /* ... the per-address limit (429) */
    CONN_F_IP_COUNTED = 1u << 15, /* counted in ip_limit: released when it closes */
    CONN_F_HOLD = CONN_F_PAUSED | CONN_F_OUT_FULL, /* either: input is not handled now */
};

typedef struct conn {
    int _fd;
    uint8_t _wid;               /* index of the owning worker */
    uint8_t _state;             /* conn_state_t */
    uint16_t _flags;            /* CONN_F_* */
    struct conn *_next, *_prev; /* the worker's list of connections */
    struct conn *_flush_next;   /* the worker's list of connections with output to flush */
    struct wq_item *_wq_tail;   /* circular list of queued output: tail->next is the head */
    union {
        struct http_reader *_http; /* CONN_HTTP */
        ws_stream_t _ws;           /* CONN_WS and later */
    };
    uint32_t _gen;      /* the generation in conn_ref_t; 0 once aborted (refs find nothing) */
    uint32_t _deadline; /* monotonic seconds; 0 = none */
    uint32_t _wq_bytes; /* queued, unwritten bytes */
    uint32_t _wq_off;   /* bytes of the head item already written */
    /* the upper layer's per-connection data (net_config_t.conn_ext_size bytes) follows */
} conn_t;

/* A connection named across threads: worker index, slot (the connection's index in its worker's
 * slab) and generation (unique per worker, never 0) packed in 64 bits. A stale reference (the
 * connection closed, the slot reused) simply finds nothing. */
typedef uint64_t conn_ref_t;

static inline conn_ref_t conn_ref_make(uint32_t worker, uint32_t slot, uint32_t gen) {
    return ((uint64_t)worker << 56) | ((uint64_t)(slot & 0xFFFFFFu) << 32) | gen;
}
static inline uint32_t conn_ref_worker(conn_ref_t r) {
    return (uint32_t)(r >> 56);
}
static inline uint32_t conn_ref_slot(conn_ref_t r) {
    return (uint32_t)(r >> 32) & 0xFFFFFFu;
}
static inline uint32_t conn_ref_gen(conn_ref_t r) {
    return (uint32_t)r;
}

/* The upper layer's per-connection area. */
static inline void *conn_ext(conn_t *c) {
    return c + 1;
}
static inline conn_t *conn_from_ext(void *ext) {
    return (conn_t *)ext - 1;
}
/* The worker that owns c. */
struct worker *conn_worker(const conn_t *c);
static inline bool conn_is_open_ws(const conn_t *c) {
    return c->_state == CONN_WS;
}

/* This connection's cross-thread name. */
conn_ref_t conn_ref(const conn_t *c);

/* Queues a complete frame or response (takes a new reference to b). Never closes or frees the
 * connection synchronously: if the queue passes app.maxWriteQueue the message is dropped and the
 * connection is closed with 1008 at the next flush. Returns 0, or -1 if it was dropped. */
int conn_send(conn_t *c, sbuf_t *b);

/* Sends a close frame with code/reason (reason: UTF-8, <= 123 bytes) and waits for the peer's
 * close up to app.closeTimeout. For a connection still in HTTP, closes the socket after its
 * output is written. Idempotent. */
void conn_close(conn_t *c, uint16_t code, const char *reason);

/* Closes the socket now, dropping queued output. The upper layer's on_ws_close runs before this
 * returns (if it had on_ws_open). Safe from within a handler: the connection, its HTTP request
 * and the WebSocket message being handled stay readable until the loop's free point, after the
 * current loop turn. Idempotent. */
void conn_abort(conn_t *c);

/* From within on_http or on_ws_message: the request being handled will be answered later (a
 * reply that waits on another loop, e.g. Redis). Until conn_resume, c handles no more input:
 * pipelined requests and messages wait in order, and the socket is not read, so one reply per
 * request, in order, still holds. An HTTP request that gets no answer within
 * app.handshakeTimeout is answered 504 and the connection closed. */
void conn_defer(conn_t *c);

/* True while c waits for the answer to a deferred request. A late answer for a connection that
 * no longer waits (timed out, shutting down, closed) is dropped by its caller. */
static inline bool conn_is_deferred(const conn_t *c) {
    return (c->_flags & CONN_F_PAUSED) != 0;
}

/* After the deferred answer was queued (conn_http_reply, conn_send): handles the input that
 * waited and reads the socket again. On c's worker. If the answer came at once (still inside
 * the handler that deferred), input simply goes on when the handler returns. */
void conn_resume(conn_t *c);

/* The HTTP request c is answering: while deferred, the one whose answer is awaited. NULL if c is
 * not reading HTTP. */
const http_req_t *conn_http_request(const conn_t *c);

/* Sets the idle deadline: the worker's tick acts on the connection `seconds` from now
 * (heartbeat timeout for a WebSocket). 0 clears it. */
void conn_set_timeout(conn_t *c, uint32_t seconds);

/* Sends the response to an HTTP request (takes ownership of resp; NULL = out of memory, the
 * connection is closed), writes the access-log line and counts it. Closes the connection after
 * the response unless req->keep_alive. */
void conn_http_reply(conn_t *c, const http_req_t *req, int status, sbuf_t *resp);

/* The peer's address as "ip:port" into out (at least 64 bytes). */
void conn_peer_name(const conn_t *c, char *out, size_t len);

#endif
