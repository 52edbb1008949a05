#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "eio.h"
#include "msgbody.h"
#include "scan.h"
#include "wsc.h"

#define READ_CHUNK   (64 * 1024) /* bytes per read(): a few hundred pushes */
#define MAX_EVENTS   1024
#define SCAN_EVERY   (100 * NS_PER_MS) /* deadline and heartbeat scan of all connections */
#define LOOP_WAIT_MS 10                /* how late a worker may see a phase change */
/* The scan of all connections for heartbeats, outside storms and probes: a worker of 19 000
 * connections should not walk them 10 times a second for heartbeats due every 30 s (1 M
 * connections, issue 9). The set-ups under way are checked every SCAN_EVERY on their own: in
 * the connect phase they are a window of slots just below next_connect. */
#define SCAN_IDLE  NS_PER_S
#define CLOSE_CODE 1000

typedef enum {
    ST_IDLE,       /* no socket: not connected yet, failed, or closed */
    ST_CONNECTING, /* TCP connect in progress */
    ST_UPGRADING,  /* upgrade request sent */
    ST_OPENING,    /* socketio: upgraded, waiting for the Engine.IO open packet */
    ST_LOGIN,      /* login sent (socketio: the namespace connect 40) */
    ST_READY,      /* logged in (probes: upgraded) */
    ST_CLOSING,    /* our close frame sent; waiting for the server's EOF */
} conn_state_t;

typedef enum {
    SETUP_NONE,    /* not being set up */
    SETUP_INITIAL, /* the connect phase's set-up of this slot */
    SETUP_CHURN,   /* a storm churn op: close, then set up again */
} setup_t;

typedef struct {
    int fd;
    uint8_t state;   /* conn_state_t */
    uint8_t setup;   /* setup_t */
    uint8_t pollout; /* EPOLLOUT registered */
    uint8_t got_close;
    uint8_t ping_phase; /* probes: the phase the outstanding ping was sent in */
    uint32_t gen;       /* bumped per socket, so stale epoll events are recognised */
    int64_t t_start;    /* set-up or close start; probes: ping sent (0: none outstanding) */
    int64_t deadline;   /* set-up or close deadline; 0 none */
    int64_t next_timer; /* heartbeat due; probes: next ping */
    uint8_t *rbuf;      /* a partial frame or upgrade response */
    uint32_t rlen, rcap;
    uint8_t *wbuf; /* output the socket did not take */
    uint32_t wlen, wcap;
    uint64_t *seen; /* fanout: bitmap of message indexes received */
} bconn_t;

typedef struct {
    const opts_t *o;
    shared_t *sh;
    wstats_t *st;
    worker_spec_t spec;
    pid_t parent;
    int epfd;
    int phase;
    bconn_t *conns;
    long next_connect; /* connect phase: next slot to start */
    long limit;        /* connect phase: slots of the current --steps step (its share) */
    int step;          /* that step's index */
    long started;      /* connect phase: set-ups started; churn: ops started */
    long inflight;     /* set-ups and churn ops in progress */
    long resolved;     /* initial set-ups finished, either way */
    int64_t t_phase;   /* when this worker saw the current phase */
    int64_t next_scan;
    int64_t next_quick;  /* connect phase: next scan of the set-ups under way */
    long scan_lo;        /* ... which all lie in [scan_lo, next_connect) */
    double rate;         /* this worker's part of --rate */
    double connect_rate; /* ... in the connect phase (storm: 0) */
    uint8_t *buf;
    size_t buf_cap;
    uint64_t *direct_seen; /* direct: bitmap of message indexes received by this worker */
    uint64_t rng;
    int debug;         /* IMGATE_BENCH_DEBUG set: print pushes that are not where they belong */
    uint32_t src_base; /* 127.0.0.2 in host order */
    struct sockaddr_in dst[OPTS_MAX_NODES]; /* user i connects to dst[i mod nnodes] */
    char host_port[OPTS_MAX_NODES][80];     /* their Host headers */
} worker_t;

static uint64_t rnd(worker_t *w) { /* xorshift64 */
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return w->rng = x;
}

static long user_of(const worker_t *w, long slot) {
    return w->spec.probe ? w->sh->nusers + slot : w->spec.first + slot;
}

static uint64_t tag(long slot, uint32_t gen) {
    return (uint64_t)gen << 32 | (uint64_t)slot;
}

static void set_events(worker_t *w, long slot, int pollout) {
    bconn_t *c = &w->conns[slot];
    struct epoll_event ev = {.events = EPOLLIN | (pollout ? EPOLLOUT : 0),
                             .data.u64 = tag(slot, c->gen)};
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->pollout = (uint8_t)pollout;
}

/* Keeps the unsent tail of a write for EPOLLOUT. */
static int queue_out(worker_t *w, long slot, const void *p, size_t n) {
    bconn_t *c = &w->conns[slot];
    if (c->wlen + n > c->wcap) {
        uint32_t cap = c->wcap ? c->wcap : 256;
        while (cap < c->wlen + n)
            cap *= 2;
        uint8_t *nb = realloc(c->wbuf, cap);
        if (!nb)
            return -1;
        c->wbuf = nb;
        c->wcap = cap;
    }
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += (uint32_t)n;
    if (!c->pollout)
        set_events(w, slot, 1);
    return 0;
}

/* Sends bytes now if nothing is queued, else queues them. -1 if the socket failed. */
static int conn_send(worker_t *w, long slot, const void *p, size_t n) {
    bconn_t *c = &w->conns[slot];
    if (c->wlen == 0) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k == (ssize_t)n)
            return 0;
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (k > 0) {
            p = (const uint8_t *)p + k;
            n -= (size_t)k;
        }
    }
    return queue_out(w, slot, p, n);
}

static int flush_out(worker_t *w, long slot) {
    bconn_t *c = &w->conns[slot];
    while (c->wlen) {
        ssize_t k = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);
        if (k < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        memmove(c->wbuf, c->wbuf + k, c->wlen - (size_t)k);
        c->wlen -= (uint32_t)k;
    }
    free(c->wbuf);
    c->wbuf = NULL;
    c->wcap = 0;
    set_events(w, slot, 0);
    return 0;
}

/* Sends one masked frame. */
static int send_frame(worker_t *w, long slot, uint8_t op, const void *p, size_t n) {
    uint8_t frame[WSC_HEADER_MAX + 256];
    int len = wsc_encode(frame, sizeof frame, op, p, n, (uint32_t)rnd(w));
    return len < 0 ? -1 : conn_send(w, slot, frame, (size_t)len);
}

static int send_text(worker_t *w, long slot, const char *s) {
    return send_frame(w, slot, WSC_OP_TEXT, s, strlen(s));
}

/* Closes the socket and clears the slot; the caller accounts for why. */
static void drop(worker_t *w, long slot) {
    bconn_t *c = &w->conns[slot];
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set */
    if (c->state == ST_READY && !w->spec.probe) {
        cnt_sub(w->st, CNT_OPEN, 1);
        atomic_store_explicit(&w->sh->logged[user_of(w, slot)], 0, memory_order_relaxed);
    }
    free(c->rbuf);
    free(c->wbuf);
    free(c->seen);
    c->seen = NULL;
    c->rbuf = c->wbuf = NULL;
    c->rlen = c->rcap = c->wlen = c->wcap = 0;
    c->fd = -1;
    c->state = ST_IDLE;
    c->pollout = 0;
    c->got_close = 0;
    c->deadline = 0;
    c->t_start = 0;
}

/* A set-up (initial or churn) ended, either way. */
static void setup_done(worker_t *w, long slot, int ok) {
    bconn_t *c = &w->conns[slot];
    if (c->setup == SETUP_INITIAL)
        w->resolved++;
    else if (c->setup == SETUP_CHURN && ok)
        cnt_add(w->st, CNT_CHURN_OPS, 1);
    if (c->setup != SETUP_NONE)
        w->inflight--;
    c->setup = SETUP_NONE;
}

/* A connection failed or was closed by the server: count it under `kind` and drop it. */
static void fail(worker_t *w, long slot, counter_t kind) {
    bconn_t *c = &w->conns[slot];
    cnt_add(w->st, kind, 1);
    if (c->setup != SETUP_NONE)
        setup_done(w, slot, 0);
    drop(w, slot);
}

static void start_connect(worker_t *w, long slot, setup_t why);

/* Our close handshake ended (the server's EOF, an error, or no EOF in time): a churn op goes on
 * with a new connection for the same user. */
static void close_finished(worker_t *w, long slot) {
    int churn = w->conns[slot].setup == SETUP_CHURN;
    drop(w, slot);
    if (churn) {
        w->inflight--; /* start_connect counts it again */
        start_connect(w, slot, SETUP_CHURN);
    }
}

static void start_connect(worker_t *w, long slot, setup_t why) {
    bconn_t *c = &w->conns[slot];
    int64_t now = now_ns();
    long user = user_of(w, slot);
    c->setup = (uint8_t)why;
    c->t_start = now;
    c->deadline = now + (int64_t)(w->o->conn_timeout * 1e9);
    w->inflight++;
    cnt_add(w->st, CNT_CONNECTING, 1);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        w->st->last_errno = errno;
        fail(w, slot, CNT_FAIL_CONNECT);
        return;
    }
    c->gen++;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Let connect() choose the port, so a port is shared across destinations (4-tuples). */
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(w->src_base + (uint32_t)(user % w->o->src_ips));
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
        w->st->last_errno = errno;
        fail(w, slot, CNT_FAIL_ADDR);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = tag(slot, c->gen)};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        w->st->last_errno = errno;
        fail(w, slot, CNT_FAIL_CONNECT);
        return;
    }
    c->pollout = 1;
    c->state = ST_CONNECTING;
    const struct sockaddr_in *dst = &w->dst[user % w->o->nnodes];
    if (connect(c->fd, (const struct sockaddr *)dst, sizeof *dst) != 0 && errno != EINPROGRESS) {
        w->st->last_errno = errno;
        fail(w, slot,
             errno == EADDRNOTAVAIL || errno == EADDRINUSE ? CNT_FAIL_ADDR : CNT_FAIL_CONNECT);
    }
}

static void on_connected(worker_t *w, long slot) {
    bconn_t *c = &w->conns[slot];
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        w->st->last_errno = err;
        fail(w, slot, err == EADDRNOTAVAIL ? CNT_FAIL_ADDR : CNT_FAIL_CONNECT);
        return;
    }
    c->state = ST_UPGRADING;
    set_events(w, slot, 0);
    /* imgate: the path as given. socketio: the Engine.IO query, with the user and its room for
     * client connections (the peer joins them on connect); probes join nothing. */
    const opts_t *o = w->o;
    long user = user_of(w, slot);
    char path[256], uid[32], req[512];
    const char *target = o->path;
    if (o->proto == PROTO_SOCKETIO) {
        snprintf(uid, sizeof uid, "%s%ld", o->user_prefix, user);
        if (eio_path(path, sizeof path, o->path, w->spec.probe ? NULL : uid,
                     o->apps[user % o->napps]) < 0) {
            fail(w, slot, CNT_FAIL_HANDSHAKE);
            return;
        }
        target = path;
    }
    int n = wsc_upgrade_request(req, sizeof req, w->host_port[user % o->nnodes], target);
    if (n < 0 || conn_send(w, slot, req, (size_t)n) != 0)
        fail(w, slot, CNT_FAIL_CONNECT);
}

static void send_login(worker_t *w, long slot) {
    long user = user_of(w, slot);
    char msg[160];
    snprintf(msg, sizeof msg,
             "{\"seq\":\"l\",\"cmd\":\"login\",\"data\":{\"userID\":\"%s%ld\",\"appID\":%u}}",
             w->o->user_prefix, user, w->o->apps[user % w->o->napps]);
    w->conns[slot].state = ST_LOGIN;
    if (send_text(w, slot, msg) != 0)
        fail(w, slot, CNT_FAIL_CLOSED);
}

static void became_ready(worker_t *w, long slot) {
    bconn_t *c = &w->conns[slot];
    int64_t now = now_ns();
    c->state = ST_READY;
    c->deadline = 0;
    if (w->spec.probe) {
        c->next_timer = now;
        c->t_start = 0;
    } else {
        if (c->setup == SETUP_INITIAL) {
            hist_add(&w->st->hist[H_LOGIN], now - c->t_start);
            hist_add(&w->st->step_login[w->step], now - c->t_start);
        }
        /* socketio: no heartbeats of ours; the server pings, we answer (on_message_sio) */
        c->next_timer =
            w->o->proto == PROTO_SOCKETIO ? INT64_MAX : now + (int64_t)(w->o->heartbeat * 1e9);
        cnt_add(w->st, CNT_LOGGED_IN, 1);
        cnt_add(w->st, CNT_OPEN, 1);
        atomic_store_explicit(&w->sh->logged[user_of(w, slot)], 1, memory_order_relaxed);
    }
    setup_done(w, slot, 1);
}

/* A msg push: count it once per connection (fanout) or once per worker (direct). */
static void on_push_msg(worker_t *w, long slot, const char *p, size_t n) {
    bconn_t *c = &w->conns[slot];
    const char *text;
    int tl = scan_str(p, n, "msg", &text);
    msgbody_t m;
    cnt_add(w->st, CNT_PUSH_MSG, 1);
    if (tl < 0 || msgbody_decode(text, (size_t)tl, &m) != 0) {
        cnt_add(w->st, CNT_MISROUTED, 1);
        return;
    }
    uint64_t *bits;
    if (m.kind == 'b' && m.index < (uint64_t)w->o->fanout_total) {
        if (!c->seen && !(c->seen = calloc(((size_t)w->o->fanout_total + 63) / 64, 8)))
            return;
        bits = c->seen;
    } else if (m.kind == 'd' && m.index < (uint64_t)w->o->direct_total && w->direct_seen &&
               m.user == (uint64_t)user_of(w, slot)) {
        bits = w->direct_seen;
    } else {
        cnt_add(w->st, CNT_MISROUTED, 1);
        if (w->debug)
            fprintf(stderr, "imgate-bench: misrouted to user %ld: %.*s\n", user_of(w, slot), (int)n,
                    p);
        return;
    }
    uint64_t bit = UINT64_C(1) << (m.index & 63);
    if (bits[m.index >> 6] & bit) {
        cnt_add(w->st, CNT_DUP, 1);
        return;
    }
    bits[m.index >> 6] |= bit;
    int64_t now = now_ns();
    hist_add(&w->st->hist[H_DELIVERY], now - m.sent_ns);
    if (w->o->nphases)
        hist_add(
            &w->st->phase_delivery[atomic_load_explicit(&w->sh->plan_phase, memory_order_relaxed)],
            now - m.sent_ns);
    cnt_add(w->st, CNT_UNIQUE, 1);
    atomic_store_explicit(&w->st->last_delivery_ns, now, memory_order_relaxed);
}

/* The probe's ping round trip ended (imgate: the ping reply; socketio: the ack). */
static void probe_pong(worker_t *w, long slot) {
    bconn_t *c = &w->conns[slot];
    int64_t now = now_ns();
    int h = c->ping_phase >= PHASE_RUN ? H_PING_RUN : H_PING_CONNECT;
    hist_add(&w->st->hist[h], now - c->t_start);
    cnt_add(w->st, CNT_PINGS, 1);
    c->t_start = 0;
    c->next_timer = now + (int64_t)(w->o->probe_interval_ms * 1e6);
}

/* One text message from imgate: a push or a reply to login/heartbeat/ping. */
static void on_message_imgate(worker_t *w, long slot, const char *p, size_t n) {
    bconn_t *c = &w->conns[slot];
    const char *cmd;
    int cl = scan_str(p, n, "cmd", &cmd);
    int64_t code = 0;
    if (cl < 0) {
        cnt_add(w->st, CNT_FAIL_PROTO, 1);
        return;
    }
    if (scan_eq(cmd, cl, "msg")) {
        if (w->spec.probe) /* the baseline broadcasts to every connection */
            cnt_add(w->st, CNT_PUSH_OTHER, 1);
        else
            on_push_msg(w, slot, p, n);
    } else if (scan_eq(cmd, cl, "enter")) {
        cnt_add(w->st, CNT_PUSH_ENTER, 1);
    } else if (scan_eq(cmd, cl, "exit")) {
        cnt_add(w->st, CNT_PUSH_EXIT, 1);
    } else if (scan_eq(cmd, cl, "login") && c->state == ST_LOGIN) {
        scan_int(p, n, "code", &code);
        if (code == 200)
            became_ready(w, slot);
        else
            fail(w, slot, CNT_FAIL_LOGIN);
    } else if (scan_eq(cmd, cl, "heartbeat")) {
        scan_int(p, n, "code", &code);
        cnt_add(w->st, code == 200 ? CNT_HEARTBEATS : CNT_HEARTBEAT_FAIL, 1);
    } else if (scan_eq(cmd, cl, "ping") && w->spec.probe && c->t_start) {
        probe_pong(w, slot);
    } else if (!scan_eq(cmd, cl, "login") && !scan_eq(cmd, cl, "ping")) {
        cnt_add(w->st, CNT_PUSH_OTHER, 1);
    }
}

/* One Engine.IO packet from a Socket.IO server (see eio.h): the handshake's open and connect,
 * pings, events (msg pushes count exactly as imgate's), the probes' acks. */
static void on_message_sio(worker_t *w, long slot, const char *p, size_t n) {
    bconn_t *c = &w->conns[slot];
    eio_packet_t pk;
    switch (eio_parse(p, n, &pk)) {
    case EIO_OPEN:
        if (c->state != ST_OPENING) {
            cnt_add(w->st, CNT_FAIL_PROTO, 1);
            return;
        }
        c->state = ST_LOGIN;
        if (send_text(w, slot, "40") != 0)
            fail(w, slot, CNT_FAIL_CLOSED);
        return;
    case EIO_PING: /* the server's heartbeat: a pong within pingTimeout, or it closes us */
        if (send_text(w, slot, "3") != 0) {
            fail(w, slot, CNT_FAIL_CLOSED);
            return;
        }
        if (!w->spec.probe && c->state == ST_READY)
            cnt_add(w->st, CNT_HEARTBEATS, 1);
        return;
    case SIO_CONNECT:
        if (c->state == ST_LOGIN && pk.main_nsp)
            became_ready(w, slot);
        else
            cnt_add(w->st, CNT_FAIL_PROTO, 1);
        return;
    case SIO_CONNECT_ERROR:
        fail(w, slot, c->state == ST_LOGIN ? CNT_FAIL_LOGIN : CNT_FAIL_CLOSED);
        return;
    case EIO_CLOSE:
    case SIO_DISCONNECT:
        fail(w, slot, CNT_FAIL_CLOSED);
        return;
    case SIO_EVENT:
        if (scan_eq(pk.name, pk.name_len, "msg") && !w->spec.probe)
            on_push_msg(w, slot, pk.data, pk.data_len);
        else if (scan_eq(pk.name, pk.name_len, "enter"))
            cnt_add(w->st, CNT_PUSH_ENTER, 1);
        else if (scan_eq(pk.name, pk.name_len, "exit"))
            cnt_add(w->st, CNT_PUSH_EXIT, 1);
        else
            cnt_add(w->st, CNT_PUSH_OTHER, 1);
        return;
    case SIO_ACK:
        if (w->spec.probe && c->t_start)
            probe_pong(w, slot);
        return;
    case EIO_PONG:
    case EIO_OTHER:
        return;
    case EIO_BAD:
    case SIO_BINARY:
        cnt_add(w->st, CNT_FAIL_PROTO, 1);
        return;
    }
}

static void on_message(worker_t *w, long slot, const char *p, size_t n) {
    if (w->o->proto == PROTO_SOCKETIO)
        on_message_sio(w, slot, p, n);
    else
        on_message_imgate(w, slot, p, n);
}

/* One frame; returns -1 if the connection was dropped. */
static int on_frame(worker_t *w, long slot, const wsc_frame_t *f) {
    bconn_t *c = &w->conns[slot];
    switch (f->opcode) {
    case WSC_OP_TEXT:
    case WSC_OP_BINARY:
        if (!f->fin) { /* neither server fragments its small messages */
            fail(w, slot, CNT_FAIL_PROTO);
            return -1;
        }
        on_message(w, slot, (const char *)f->payload, f->len);
        return c->fd < 0 ? -1 : 0;
    case WSC_OP_CLOSE:
        if (c->state == ST_CLOSING) {
            c->got_close = 1; /* now wait for the server's EOF: TIME_WAIT stays on its side */
            return 0;
        }
        send_frame(w, slot, WSC_OP_CLOSE, f->payload, f->len < 2 ? f->len : 2);
        fail(w, slot, CNT_FAIL_CLOSED);
        return -1;
    case WSC_OP_PING:
        if (send_frame(w, slot, WSC_OP_PONG, f->payload, f->len) != 0) {
            fail(w, slot, CNT_FAIL_CLOSED);
            return -1;
        }
        return 0;
    case WSC_OP_PONG:
        return 0;
    default:
        fail(w, slot, CNT_FAIL_PROTO);
        return -1;
    }
}

/* Parses what p[0..n) holds for this connection; returns bytes consumed or -1 if dropped. */
static long parse_input(worker_t *w, long slot, const uint8_t *p, size_t n) {
    bconn_t *c = &w->conns[slot];
    size_t off = 0;
    if (c->state == ST_UPGRADING) {
        int status = 0;
        int k = wsc_upgrade_response((const char *)p, n, &status);
        if (k == 0)
            return n > 16384 ? (fail(w, slot, CNT_FAIL_HANDSHAKE), -1) : 0;
        if (k < 0 || status != 101) {
            if (status == 503) /* counted under handshake failures too */
                cnt_add(w->st, CNT_FAIL_REFUSED, 1);
            fail(w, slot, CNT_FAIL_HANDSHAKE);
            return -1;
        }
        off = (size_t)k;
        if (w->o->proto == PROTO_SOCKETIO)
            c->state = ST_OPENING; /* the server speaks first */
        else if (w->spec.probe)
            became_ready(w, slot);
        else
            send_login(w, slot);
        if (c->fd < 0)
            return -1;
    }
    while (off < n) {
        wsc_frame_t f;
        long k = wsc_decode(p + off, n - off, &f);
        if (k == 0)
            break;
        if (k < 0) {
            fail(w, slot, CNT_FAIL_PROTO);
            return -1;
        }
        off += (size_t)k;
        if (on_frame(w, slot, &f) != 0)
            return -1;
    }
    return (long)off;
}

static int grow_buf(worker_t *w, size_t need) {
    if (need <= w->buf_cap)
        return 0;
    uint8_t *nb = realloc(w->buf, need);
    if (!nb)
        return -1;
    w->buf = nb;
    w->buf_cap = need;
    return 0;
}

/* Reads what the socket has: a kept partial frame is put in front of the new bytes in the
 * worker's buffer, and whatever partial frame is left at the end is kept again. */
static void on_readable(worker_t *w, long slot) {
    bconn_t *c = &w->conns[slot];
    for (int round = 0; round < 4 && c->fd >= 0; round++) {
        size_t have = c->rlen;
        if (grow_buf(w, have + READ_CHUNK) != 0)
            return;
        if (have)
            memcpy(w->buf, c->rbuf, have);
        ssize_t k = read(c->fd, w->buf + have, READ_CHUNK);
        if (k < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            if (c->state == ST_CLOSING)
                close_finished(w, slot);
            else
                fail(w, slot, c->state == ST_CONNECTING ? CNT_FAIL_CONNECT : CNT_FAIL_CLOSED);
            return;
        }
        if (k == 0) {
            if (c->state == ST_CLOSING) /* the close handshake is complete */
                close_finished(w, slot);
            else
                fail(w, slot, c->state == ST_UPGRADING ? CNT_FAIL_HANDSHAKE : CNT_FAIL_CLOSED);
            return;
        }
        size_t n = have + (size_t)k;
        long used = parse_input(w, slot, w->buf, n);
        if (used < 0)
            return;
        size_t left = n - (size_t)used;
        if (left > c->rcap) {
            uint8_t *nb = realloc(c->rbuf, left);
            if (!nb) {
                fail(w, slot, CNT_FAIL_PROTO);
                return;
            }
            c->rbuf = nb;
            c->rcap = (uint32_t)left;
        }
        if (left)
            memcpy(c->rbuf, w->buf + used, left);
        c->rlen = (uint32_t)left;
        if ((size_t)k < READ_CHUNK)
            return;
    }
}

static void on_event(worker_t *w, const struct epoll_event *ev) {
    long slot = (long)(ev->data.u64 & 0xffffffffu);
    bconn_t *c = &w->conns[slot];
    if (c->fd < 0 || c->gen != (uint32_t)(ev->data.u64 >> 32))
        return; /* closed earlier in this batch */
    if (c->state == ST_CONNECTING) {
        if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_connected(w, slot);
        return;
    }
    if ((ev->events & EPOLLOUT) && flush_out(w, slot) != 0) {
        fail(w, slot, CNT_FAIL_CLOSED);
        return;
    }
    if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(w, slot);
}

/* Storm: close a random logged-in connection (it is set up again when the server's EOF comes)
 * or set up again one that is down. */
static void start_churn_op(worker_t *w) {
    for (int tries = 0; tries < 8; tries++) {
        long slot = (long)(rnd(w) % (uint64_t)w->spec.count);
        bconn_t *c = &w->conns[slot];
        if (c->state == ST_IDLE && c->setup == SETUP_NONE) {
            start_connect(w, slot, SETUP_CHURN);
            return;
        }
        if (c->state != ST_READY)
            continue;
        uint8_t code[2] = {CLOSE_CODE >> 8, CLOSE_CODE & 0xff};
        if (send_frame(w, slot, WSC_OP_CLOSE, code, 2) != 0) {
            fail(w, slot, CNT_FAIL_CLOSED);
            return;
        }
        cnt_sub(w->st, CNT_OPEN, 1);
        atomic_store_explicit(&w->sh->logged[user_of(w, slot)], 0, memory_order_relaxed);
        c->state = ST_CLOSING;
        c->setup = SETUP_CHURN;
        w->inflight++;
        c->t_start = now_ns();
        c->deadline = c->t_start + (int64_t)(w->o->conn_timeout * 1e9);
        return;
    }
}

/* How many more set-ups (or churn ops) the rate and --inflight allow now. */
static long allowance(worker_t *w, int64_t now) {
    long room = w->o->inflight - w->inflight;
    double rate = w->phase == PHASE_CONNECT ? w->connect_rate : w->rate;
    if (rate > 0) {
        double due = rate * (double)(now - w->t_phase) / 1e9 + 1;
        long by_rate = (long)due - w->started;
        if (by_rate < room)
            room = by_rate;
    }
    return room;
}

/* This worker's share of the first `target` users of --steps: its slots are a contiguous range
 * of users, and the shares of all workers add up to exactly `target` (the cumulative rounding
 * telescopes), each a prefix of its range. */
static long step_share(const worker_t *w, long target) {
    if (w->spec.probe)
        return w->spec.count;
    long all = w->o->clients, first = w->spec.first, end = first + w->spec.count;
    return (long)((int64_t)target * end / all - (int64_t)target * first / all);
}

/* A new --steps step: its share, and the rate counts from now. */
static void enter_step(worker_t *w, int step, int64_t now) {
    const opts_t *o = w->o;
    w->step = step;
    w->limit = step_share(w, o->steps[step]);
    if (o->nstep_rates && !w->spec.probe && o->mode != MODE_STORM && w->spec.nclient > 0) {
        int k = step < o->nstep_rates ? step : o->nstep_rates - 1;
        w->connect_rate = o->step_rates[k] / w->spec.nclient;
    }
    if (w->phase == PHASE_CONNECT) {
        w->t_phase = now;
        w->started = 0;
    }
}

static void ramp(worker_t *w, int64_t now) {
    if (w->phase == PHASE_CONNECT || (w->spec.probe && w->phase == PHASE_INIT)) {
        long n = w->spec.probe ? w->spec.count : allowance(w, now);
        while (n-- > 0 && w->next_connect < w->limit) {
            start_connect(w, w->next_connect++, SETUP_INITIAL);
            w->started++;
        }
    } else if (w->phase == PHASE_RUN && w->o->mode == MODE_STORM && !w->spec.probe) {
        long n = allowance(w, now);
        while (n-- > 0) {
            start_churn_op(w);
            w->started++;
        }
    }
}

/* Deadlines, heartbeats and probe pings. */
static void scan_timers(worker_t *w, int64_t now, long from, long to) {
    for (long s = from; s < to; s++) {
        bconn_t *c = &w->conns[s];
        if (c->fd < 0)
            continue;
        if (c->deadline && now >= c->deadline) {
            if (c->state == ST_CLOSING) /* no EOF in time: give up waiting, go on */
                close_finished(w, s);
            else
                fail(w, s, CNT_FAIL_TIMEOUT);
            continue;
        }
        if (c->state != ST_READY || now < c->next_timer)
            continue;
        int sio = w->o->proto == PROTO_SOCKETIO;
        if (w->spec.probe) {
            if (c->t_start || w->phase < PHASE_CONNECT)
                continue;
            c->t_start = now;
            c->ping_phase = (uint8_t)w->phase;
            if (send_text(w, s,
                          sio ? "420[\"ping\"]" : "{\"seq\":\"p\",\"cmd\":\"ping\",\"data\":{}}") !=
                0)
                fail(w, s, CNT_FAIL_CLOSED);
        } else {
            c->next_timer = now + (int64_t)(w->o->heartbeat * 1e9);
            if (send_text(w, s, "{\"seq\":\"h\",\"cmd\":\"heartbeat\",\"data\":{}}") != 0)
                fail(w, s, CNT_FAIL_CLOSED);
        }
    }
}

static void enter_phase(worker_t *w, int phase, int64_t now) {
    w->phase = phase;
    w->t_phase = now;
    w->started = 0;
}

static void ack(worker_t *w, int phase) {
    if (atomic_load_explicit(&w->st->ack, memory_order_relaxed) < phase)
        atomic_store_explicit(&w->st->ack, phase, memory_order_release);
}

static int setup(worker_t *w, const opts_t *o, shared_t *sh, const worker_spec_t *spec) {
    memset(w, 0, sizeof *w);
    w->o = o;
    w->sh = sh;
    w->spec = *spec;
    w->st = &sh->w[spec->index];
    w->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)getpid() << 16) ^ (uint64_t)now_ns();
    w->rate = spec->probe || spec->nclient == 0 ? 0 : o->rate / spec->nclient;
    if (o->mode == MODE_STORM)
        w->connect_rate = 0; /* the login storm is as fast as --inflight allows */
    else
        w->connect_rate = w->rate;
    w->src_base = 0x7F000002; /* 127.0.0.2 */
    w->debug = getenv("IMGATE_BENCH_DEBUG") != NULL;
    for (int i = 0; i < o->nnodes; i++) {
        w->dst[i].sin_family = AF_INET;
        w->dst[i].sin_port = htons((uint16_t)o->ws_ports[i]);
        inet_pton(AF_INET, o->host, &w->dst[i].sin_addr);
        snprintf(w->host_port[i], sizeof w->host_port[i], "%s:%d", o->host, o->ws_ports[i]);
    }
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->conns = calloc((size_t)(spec->count ? spec->count : 1), sizeof(bconn_t));
    if (w->epfd < 0 || !w->conns || grow_buf(w, 2 * READ_CHUNK) != 0)
        return -1;
    /* Before the run phase: the parent starts sending as soon as it has set it. */
    if (o->direct_total && !spec->probe &&
        !(w->direct_seen = calloc(((size_t)o->direct_total + 63) / 64, 8)))
        return -1;
    for (long s = 0; s < spec->count; s++)
        w->conns[s].fd = -1;
    enter_step(w, 0, now_ns());
    return 0;
}

void worker_main(const opts_t *o, shared_t *sh, const worker_spec_t *spec) {
    worker_t w;
    /* The parent handles ^C (it stops the run and reports); a dead parent kills us. */
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (setup(&w, o, sh, spec) != 0) {
        fprintf(stderr, "imgate-bench: worker %d: out of memory or descriptors\n", spec->index);
        _exit(1);
    }
    w.parent = getppid();
    if (!spec->probe)
        ack(&w, PHASE_INIT);
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int64_t now = now_ns();
        int phase = atomic_load_explicit(&sh->phase, memory_order_acquire);
        if (phase != w.phase)
            enter_phase(&w, phase, now);
        int step = atomic_load_explicit(&sh->step, memory_order_acquire);
        if (step != w.step)
            enter_step(&w, step, now);
        if (phase >= PHASE_STOP || getppid() != w.parent)
            break;
        ramp(&w, now);
        if (w.spec.probe && w.phase == PHASE_INIT && w.resolved == spec->count)
            ack(&w, PHASE_INIT);
        if (w.phase == PHASE_CONNECT && w.next_connect == w.limit && w.resolved == w.limit) {
            if (atomic_load_explicit(&w.st->step_ack, memory_order_relaxed) < w.step)
                atomic_store_explicit(&w.st->step_ack, w.step, memory_order_release);
            if (w.limit == spec->count && w.step == o->nsteps - 1)
                ack(&w, PHASE_CONNECT);
        }
        int wait = LOOP_WAIT_MS;
        if (spec->probe)
            wait = 1; /* probe pings are due every few ms */
        int n = epoll_wait(w.epfd, evs, MAX_EVENTS, wait);
        for (int i = 0; i < n; i++)
            on_event(&w, &evs[i]);
        now = now_ns();
        /* Storms churn random slots and probes ping every few ms: they scan everything often. */
        int all_often = spec->probe || o->mode == MODE_STORM;
        if (all_often || now >= w.next_scan) {
            scan_timers(&w, now, 0, w.next_connect);
            int64_t every = SCAN_EVERY;
            if (!all_often) {
                every = (int64_t)(o->heartbeat * 1e9) / 10;
                every = every < SCAN_EVERY ? SCAN_EVERY : every > SCAN_IDLE ? SCAN_IDLE : every;
            }
            w.next_scan = now + every;
            w.next_quick = now + SCAN_EVERY;
        } else if (w.inflight && now >= w.next_quick) {
            while (w.scan_lo < w.next_connect && w.conns[w.scan_lo].deadline == 0)
                w.scan_lo++; /* set up (or failed) already: no deadline left below it */
            scan_timers(&w, now, w.scan_lo, w.next_connect);
            w.next_quick = now + SCAN_EVERY;
        }
    }
    /* A ping still unanswered counts with its age so far: a stalled server shows in the max. */
    int64_t end = now_ns();
    for (long s = 0; spec->probe && s < spec->count; s++)
        if (w.conns[s].state == ST_READY && w.conns[s].t_start)
            hist_add(&w.st->hist[w.conns[s].ping_phase >= PHASE_RUN ? H_PING_RUN : H_PING_CONNECT],
                     end - w.conns[s].t_start);
    /* Histograms and counters are already in shared memory; the kernel closes the sockets. */
    _exit(0);
}
