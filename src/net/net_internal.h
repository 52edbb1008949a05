/* What worker.c and conn.c share and nothing else may use. */
#ifndef IMGATE_NET_INTERNAL_H
#define IMGATE_NET_INTERNAL_H

#include "net/conn.h"
#include "net/worker.h"

#define NET_RBUF_SIZE (64 * 1024) /* one read per event; big enough for a 64 KiB message */

/* One queued output buffer; a circular singly linked list per connection. */
typedef struct wq_item {
    struct wq_item *next;
    sbuf_t *buf;
} wq_item_t;

/* conn.c */
/* flags: CONN_F_WS_PORT, and CONN_F_REFUSE(_IP) / CONN_F_IP_COUNTED from the limits. */
conn_t *conn_accept(worker_t *w, int fd, uint16_t flags);
void conn_on_io(conn_t *c, uint32_t events);
void conn_flush(conn_t *c);
void conn_on_timeout(conn_t *c, uint32_t now);
void conn_shutdown(conn_t *c);
/* Frees a connection that conn_abort closed, with what its input still held. */
void conn_free(conn_t *c);

/* The client address counted in ip_limit (CONN_F_IP_COUNTED): after the upper layer's area, in
 * the connection's slab object, which has room for it only with app.maxConnectionsPerIp. */
static inline ip_key_t *conn_peer_key(conn_t *c) {
    size_t ext = (conn_worker(c)->cfg->conn_ext_size + 7) & ~(size_t)7;
    return (ip_key_t *)((uint8_t *)conn_ext(c) + ext);
}

/* worker.c */
void worker_want_flush(worker_t *w, conn_t *c);
void worker_defer_free(worker_t *w, conn_t *c);
/* A write queue item from the worker's slab (out of memory aborts: nothing sensible is left). */
wq_item_t *worker_wq_get(worker_t *w);
static inline void worker_wq_put(worker_t *w, wq_item_t *it) {
    slab_free(&w->_wq_slab, it);
}
void net_conn_released(void);
/* A connection accepted with CONN_F_REFUSE is gone. */
void net_conn_refused_done(void);

#endif
