/* Workers: W threads, each with its own libuv loop and its own SO_REUSEPORT listening sockets on
 * both ports, owning the connections the kernel hands it. Other threads reach a worker only
 * through its mailbox (worker_post). The net layer calls the layers above through net_hooks_t. */
#ifndef IMGATE_NET_WORKER_H
#define IMGATE_NET_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "net/conn.h"
#include "net/http_req.h"
#include "net/ip_limit.h"
#include "net/stats.h"
#include "util/mailbox.h"
#include "util/slab.h"

struct worker;

/* Calls from the net layer up. All run on the connection's worker thread. */
typedef struct {
    /* An HTTP request on the HTTP port that is not a WebSocket upgrade of /acc. The handler
     * answers with conn_send (an http_resp_* buffer); keep-alive follows req->keep_alive. */
    void (*on_http)(conn_t *c, const http_req_t *req);
    /* The 101 was queued; the connection is now a WebSocket. */
    void (*on_ws_open)(conn_t *c, const http_req_t *req);
    /* A complete text or binary message (UTF-8 already checked for text). */
    void (*on_ws_message)(conn_t *c, uint8_t *data, size_t len, bool binary);
    /* A WebSocket's deadline passed. Returns true if it handled that (closed the connection);
     * false gets the default, close 1001 "heartbeat timeout". */
    bool (*on_ws_timeout)(conn_t *c);
    /* Once, when a WebSocket that had on_ws_open stops being usable (closing or closed). */
    void (*on_ws_close)(conn_t *c);
    /* On each worker's thread, at start and after its last connection, before the loop ends. */
    void (*on_worker_start)(struct worker *w);
    void (*on_worker_stop)(struct worker *w);
} net_hooks_t;

typedef struct {
    const char *bind_address;
    int http_port;
    int ws_port;
    int workers;
    uint32_t max_connections;
    uint32_t max_connections_per_ip; /* 0 = no limit */
    uint32_t upgrade_rate;           /* WebSocket upgrades per second per node; 0 = no limit */
    uint32_t upgrade_burst;
    uint32_t max_message_size;
    uint32_t max_write_queue;
    uint32_t max_header_bytes;
    uint32_t max_body_bytes;
    uint32_t handshake_timeout;
    uint32_t close_timeout;
    uint32_t keepalive_timeout;  /* idle HTTP keep-alive connections */
    uint32_t mailbox_capacity;   /* tasks waiting at most in a worker's mailbox */
    uint32_t write_delay_ms;     /* a big fan-out's wait before its first write; 0 = none */
    uint32_t drain_ms;           /* net_drain closes the WebSockets over this long; 0 = at once */
    const char *subprotocols;    /* WebSocket subprotocols we accept, comma-separated; "" none */
    const char *allowed_origins; /* Origins a WebSocket upgrade may come from; "" = any */
    size_t conn_ext_size;        /* bytes of upper-layer data after each conn_t */
    const net_hooks_t *hooks;
} net_config_t;

typedef struct worker {
    uv_loop_t loop;
    uint32_t id;
    uv_thread_t _thread;
    const net_config_t *cfg;

    mailbox_t _mailbox; /* other threads' work for this loop; tasks get the worker as ctx */
    bool _loop_done;    /* handles closed: the loop is ending */

    uv_timer_t _tick;
    uv_check_t _check;
    uv_idle_t _idle;       /* active while output waits, so the loop does not block in poll */
    uv_timer_t _delay;     /* the end of a big fan-out's write delay */
    uv_timer_t _drain;     /* while draining: closes the next batch of WebSockets */
    uint64_t _drain_start; /* loop time (ms) the drain began */
    uint32_t _drain_total; /* WebSockets open when it began */
    uint32_t _drain_done;  /* of those, closed by the drain so far */
    uv_prepare_t _prepare;
    int _epfd;          /* the epoll set of this worker's connections */
    uv_poll_t _ep_poll; /* the loop watches the epoll set as one descriptor */
    conn_t *_closed;    /* aborted connections, freed after the current loop turn */
    uv_poll_t _listen[2];
    int _listen_fd[2];
    int _listen_count;

    conn_t *_conns;      /* all connections (head of a doubly linked list) */
    conn_t *_flush_head; /* connections with output to write this turn */
    conn_t *_flush_tail;
    uint32_t _flush_len;   /* connections in the flush list */
    uint32_t _round_left;  /* of a big fan-out's write round, connections still to write */
    uint64_t _delay_until; /* loop time (ms) a big fan-out's first write waits for; 0 = none */
    conn_t **_prio;        /* connections answering their own input: flushed before pushes */
    size_t _prio_len, _prio_cap;
    conn_t *_reading; /* the connection whose input is being handled, if any */

    /* Connections (conn_t + the upper layer's area + the peer's address with
     * app.maxConnectionsPerIp), one slab object each; an object's slab index is the slot of its
     * conn_ref_t, so there is no slot table. */
    slab_t _conn_slab;
    slab_t _wq_slab;    /* write queue items */
    uint32_t _gen_next; /* the last generation given to a connection (0 is never given) */

    uint8_t *_rbuf; /* the read buffer shared by all of this worker's connections */

    bool _stopping;
    _Atomic uint32_t _conn_count; /* written by this worker only; read by others */
    _Atomic uint32_t _ws_count;
    _Atomic uint32_t _tick_at; /* clock_mono_s() of the last tick: the loop is turning */
    net_stats_t stats;
} worker_t;

/* Creates the listening sockets and starts the worker threads. Returns 0 or -errno (e.g. a port
 * is in use), with a message logged. */
int net_start(const net_config_t *cfg);

/* Starts the drain described at net_drain without waiting for it (again: nothing). Any thread
 * other than the workers'; net_websockets tells when the WebSockets are gone. */
void net_begin_drain(void);

/* A second signal: every connection left is closed now (1001), without waiting for batches. */
void net_drain_now(void);

/* Open WebSockets on all workers now (any thread). */
uint32_t net_websockets(void);

/* net_begin_drain, then waits for it: stops accepting (the listeners close, so that new clients go
 * to another process or node), answers or closes HTTP connections, closes the WebSockets with 1001
 * in equal batches spread over drain_ms (a fleet does not reconnect elsewhere in one spike), waits
 * for the peers (up to close_timeout after the last batch) and joins the threads: it returns as
 * soon as the last connection is gone. Afterwards worker_post fails with MAILBOX_ERR_CLOSED, so
 * other threads (the cluster loop) can be stopped safely before net_free. */
void net_drain(void);

/* Runs what is left in the mailboxes, calls on_worker_stop and frees everything. After
 * net_drain, once no other thread posts any more. */
void net_free(void);

/* Takes a token of the node's upgrade bucket (app.upgradeRate): true, or false with the seconds
 * a client should wait (Retry-After, at least 1). Any worker thread. */
bool net_upgrade_allowed(uint32_t *retry_after_s);

/* True once a drain has begun (the node no longer wants new clients: /ready says 503). */
bool net_draining(void);

int net_worker_count(void);
worker_t *net_worker(int i);
/* The worker whose thread is calling, or NULL. */
worker_t *net_current_worker(void);

/* Runs fn(w, arg) on worker w's thread, soon (ctx is the worker_t). Safe from any thread between
 * net_start and net_free. Returns 0 or a MAILBOX_ERR_* (full, closed: the worker stopped, or out
 * of memory); then fn is not called and arg is the caller's. On w's own thread it still defers. */
int worker_post(worker_t *w, mailbox_fn fn, void *arg);

/* The counters of w's mailbox (any thread). */
void worker_mailbox_stats(worker_t *w, mailbox_stats_t *out);

/* The counts of w's slabs: connections and write queue items (any thread). */
void worker_slab_stats(const worker_t *w, slab_stats_t *conns, slab_stats_t *queue);

/* The same for an answer to a request in flight: not refused for capacity (see
 * mailbox_post_always). */
int worker_post_reply(worker_t *w, mailbox_fn fn, void *arg);

/* The live connection named by ref on this worker, or NULL. Only on w's own thread. */
conn_t *worker_conn(worker_t *w, conn_ref_t ref);

/* Appends the peer addresses of this worker's open WebSockets to out as JSON strings separated
 * by commas; returns their number. On w's own thread (for /system/state?isDebug=true). */
size_t worker_list_peers(worker_t *w, buf_t *out);

/* Connections, and open WebSockets, of w now. Any thread. */
uint32_t worker_conn_count(const worker_t *w);
uint32_t worker_ws_count(const worker_t *w);

/* Seconds since w's loop last ran its once-a-second tick (0 or 1 while it turns). Any thread. */
uint32_t worker_tick_age(const worker_t *w);
/* Owner's thread: adds delta to one of its counts. */
void worker_count_add(_Atomic uint32_t *count, int delta);

/* Calls fn for each connection of this worker (on its own thread). fn may close connections. */
void worker_foreach_conn(worker_t *w, void (*fn)(conn_t *c, void *arg), void *arg);

#endif
