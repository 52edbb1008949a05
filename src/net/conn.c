#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "net/http_resp.h"
#include "net/ip_limit.h"
#include "net/net_internal.h"
#include "net/ws_frame.h"
#include "net/ws_handshake.h"
#include "util/clock.h"
#include "util/log.h"

/* Guard: an idle connection must stay small (DESIGN.md "Per-connection memory"). */
_Static_assert(sizeof(conn_t) <= 64, "conn_t grew: measure before letting it");

#define WRITEV_MAX 256 /* frames per writev: a 100-message burst to one client is one call */
/* Retry-After for a connection refused by app.maxConnections(PerIp): long enough that a fleet of
 * clients told so does not come straight back; a client's own backoff adds jitter. */
#define RETRY_AFTER_LIMIT_S 5

static const ws_stream_handlers_t ws_handlers;
static void conn_ws_error(conn_t *c, int err);
static void update_events(conn_t *c);
static void http_process(conn_t *c, int r);
static void final_error(conn_t *c, int status, const char *msg);
static void resume_input(conn_t *c);

static int conn_fd(const conn_t *c) {
    return c->_fd;
}

conn_ref_t conn_ref(const conn_t *c) {
    worker_t *w = conn_worker(c);
    return conn_ref_make(w->id, slab_index(&w->_conn_slab, c), c->_gen);
}

void conn_set_timeout(conn_t *c, uint32_t seconds) {
    c->_deadline = seconds ? clock_mono_s() + seconds : 0;
}

void conn_peer_name(const conn_t *c, char *out, size_t len) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getpeername(conn_fd(c), (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(out, len, "%s:%d", ip, port);
}

conn_t *conn_accept(worker_t *w, int fd, uint16_t flags) {
    conn_t *c = slab_calloc(&w->_conn_slab);
    if (!c)
        return NULL;
    /* The slab index is the slot of conn_ref_t: 24 bits (16 M connections per worker). */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (slab_index(&w->_conn_slab, c) > 0xFFFFFFu ||
        epoll_ctl(w->_epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        slab_free(&w->_conn_slab, c);
        return NULL;
    }
    c->_fd = fd;
    c->_wid = (uint8_t)w->id;
    if (++w->_gen_next == 0) /* after 2^32 accepts: 0 names no connection */
        w->_gen_next = 1;
    c->_gen = w->_gen_next;
    c->_state = CONN_HTTP;
    c->_flags = flags;
    c->_next = w->_conns;
    if (w->_conns)
        w->_conns->_prev = c;
    w->_conns = c;
    worker_count_add(&w->_conn_count, 1);
    conn_set_timeout(c, w->cfg->handshake_timeout);
    return c;
}

/* ---- output ---- */

static void wq_push(conn_t *c, sbuf_t *b) {
    worker_t *w = conn_worker(c);
    wq_item_t *it = worker_wq_get(w);
    it->buf = sbuf_ref(b);
    if (c->_wq_tail) {
        it->next = c->_wq_tail->next;
        c->_wq_tail->next = it;
    } else {
        it->next = it;
    }
    c->_wq_tail = it;
    c->_wq_bytes += b->len;
    worker_want_flush(w, c);
}

static void wq_clear(conn_t *c) {
    worker_t *w = conn_worker(c);
    if (!c->_wq_tail)
        return;
    wq_item_t *it = c->_wq_tail->next;
    c->_wq_tail->next = NULL;
    while (it) {
        wq_item_t *next = it->next;
        sbuf_unref(it->buf);
        worker_wq_put(w, it);
        it = next;
    }
    c->_wq_tail = NULL;
    c->_wq_bytes = 0;
    c->_wq_off = 0;
}

int conn_send(conn_t *c, sbuf_t *b) {
    if (c->_state != CONN_WS && c->_state != CONN_HTTP)
        return -1;
    if (c->_flags & CONN_F_SLOW)
        return -1;
    worker_t *w = conn_worker(c);
    if (c->_wq_tail && (uint64_t)c->_wq_bytes + b->len > w->cfg->max_write_queue) {
        /* Close at the next flush, never here: callers may be iterating a room. */
        c->_flags |= CONN_F_SLOW;
        worker_want_flush(w, c);
        return -1;
    }
    wq_push(c, b);
    STAT_INC(&w->stats, messagesOut);
    return 0;
}

/* A small control frame (close, pong) as a shared buffer. */
static sbuf_t *control_frame(uint8_t opcode, const uint8_t *payload, size_t len) {
    sbuf_t *s = sbuf_new(WS_FRAME_MAX_SERVER_HEADER + len);
    if (!s)
        return NULL;
    size_t h = ws_frame_encode_header(s->data, opcode, true, len);
    if (len)
        memcpy(s->data + h, payload, len);
    s->len = (uint32_t)(h + len);
    return s;
}

static sbuf_t *close_frame(uint16_t code, const char *reason) {
    uint8_t payload[WS_CONTROL_MAX_PAYLOAD];
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > WS_CONTROL_MAX_PAYLOAD - 2)
        rlen = WS_CONTROL_MAX_PAYLOAD - 2;
    if (code == WS_CLOSE_NO_STATUS)
        return control_frame(WS_OP_CLOSE, NULL, 0);
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (rlen)
        memcpy(payload + 2, reason, rlen);
    return control_frame(WS_OP_CLOSE, payload, 2 + rlen);
}

/* Queues a buffer the caller owns (its reference passes to the queue), bypassing the
 * write-queue cap: control frames and HTTP responses are ours, not a push backlog. NULL (out of
 * memory) queues nothing. */
static void queue_owned(conn_t *c, sbuf_t *b) {
    if (!b)
        return;
    wq_push(c, b);
    sbuf_unref(b);
    /* Our answers count against the same cap as pushes: a peer that keeps asking (pipelined
     * requests, pings) without reading what we answer makes us stop reading it, so it can't
     * make us buffer more than about one cap of answers. */
    worker_t *w = conn_worker(c);
    if (c->_wq_bytes >= w->cfg->max_write_queue && !(c->_flags & CONN_F_OUT_FULL)) {
        c->_flags |= CONN_F_OUT_FULL;
        STAT_INC(&w->stats, outputBackpressure);
        if (c->_state == CONN_HTTP) /* a peer that never reads is dropped in time */
            conn_set_timeout(c, w->cfg->keepalive_timeout);
    }
}

static void notify_ws_close(conn_t *c) {
    worker_t *w = conn_worker(c);
    worker_count_add(&w->_ws_count, -1);
    if (w->cfg->hooks->on_ws_close)
        w->cfg->hooks->on_ws_close(c);
}

void conn_close(conn_t *c, uint16_t code, const char *reason) {
    worker_t *w = conn_worker(c);
    switch (c->_state) {
    case CONN_HTTP:
        c->_flags |= CONN_F_CLOSE_AFTER_FLUSH;
        worker_want_flush(w, c);
        break;
    case CONN_WS:
        queue_owned(c, close_frame(code, reason));
        c->_state = CONN_WS_CLOSING;
        if (c->_flags & CONN_F_PAUSED) {
            /* The awaited answer is moot now; read on to find the peer's close frame. */
            c->_flags &= (uint16_t)~CONN_F_PAUSED;
            update_events(c);
        }
        conn_set_timeout(c, w->cfg->close_timeout);
        if (c->_flags & CONN_F_INPUT_DONE)
            c->_flags |= CONN_F_CLOSE_AFTER_FLUSH;
        notify_ws_close(c);
        break;
    default:
        break;
    }
}

void conn_abort(conn_t *c) {
    if (c->_state == CONN_DEAD)
        return;
    worker_t *w = conn_worker(c);
    uint8_t prev = c->_state;
    c->_state = CONN_DEAD;
    if (prev == CONN_WS)
        notify_ws_close(c);
    /* The HTTP reader or the WebSocket spill may hold the request or message a handler up the
     * stack is looking at: they go with the connection, in conn_free. */
    if (c->_flags & CONN_F_IP_COUNTED)
        ip_limit_release(conn_peer_key(c));
    if (c->_flags & CONN_F_REFUSE)
        net_conn_refused_done();
    c->_gen = 0; /* references to it find nothing from here */
    if (c->_prev)
        c->_prev->_next = c->_next;
    else
        w->_conns = c->_next;
    if (c->_next)
        c->_next->_prev = c->_prev;
    int fd = conn_fd(c);
    epoll_ctl(w->_epfd, EPOLL_CTL_DEL, fd, NULL);

    if (c->_wq_tail) {
        /* Output is being dropped: reset, so the peer can't take a cut stream for a whole one. */
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } else {
        /* Half-close first so that a response just written is not destroyed by a reset when
         * unread input is pending. */
        shutdown(fd, SHUT_WR);
        uint8_t drain[512];
        while (read(fd, drain, sizeof drain) > 0) {
        }
    }
    close(fd);
    c->_fd = -1;
    wq_clear(c);
    net_conn_released();
    /* Freed after this loop turn: callers up the stack may still look at c->_state. */
    worker_defer_free(w, c);
}

void conn_free(conn_t *c) {
    if (c->_flags & CONN_F_WS_INPUT)
        ws_stream_free(&c->_ws);
    else
        http_reader_free(c->_http);
    slab_free(&conn_worker(c)->_conn_slab, c);
}

void conn_shutdown(conn_t *c) {
    if (c->_state == CONN_HTTP && (c->_flags & CONN_F_PAUSED)) {
        c->_flags &= (uint16_t)~CONN_F_PAUSED; /* a late answer is dropped */
        final_error(c, 503, "server shutting down");
    } else if (c->_state == CONN_WS)
        conn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
    else if (c->_state == CONN_HTTP && !(c->_flags & CONN_F_REQ_PENDING) && !c->_wq_tail)
        conn_abort(c);
    else if (c->_state == CONN_HTTP)
        conn_close(c, 0, NULL);
}

/* The write queue overflowed: the peer is not reading. Try to say why, then drop it. */
static void close_slow_consumer(conn_t *c) {
    worker_t *w = conn_worker(c);
    STAT_INC(&w->stats, slowConsumers);
    log_debug("closing slow consumer (%u bytes queued)", c->_wq_bytes);
    c->_flags &= (uint16_t)~CONN_F_SLOW;
    if (c->_state != CONN_WS) {
        conn_abort(c);
        return;
    }
    /* Keep the frame the socket has begun (cutting it would corrupt the stream), drop the rest,
     * and queue the close after it; if the peer never drains it, the close timeout resets. */
    wq_item_t *head = c->_wq_tail ? c->_wq_tail->next : NULL;
    if (head && c->_wq_off > 0) {
        c->_wq_tail->next = NULL;
        c->_wq_tail = NULL;
        for (wq_item_t *it = head->next; it; it = head->next) {
            head->next = it->next;
            sbuf_unref(it->buf);
            worker_wq_put(w, it);
        }
        head->next = head;
        c->_wq_tail = head;
        c->_wq_bytes = head->buf->len - c->_wq_off;
    } else {
        wq_clear(c);
    }
    c->_flags |= CONN_F_INPUT_DONE;
    conn_close(c, WS_CLOSE_POLICY, "slow consumer");
}

/* Everything is written: send FIN and keep reading (and dropping) until the peer's EOF, so that
 * late input does not make the kernel answer with a reset that would destroy what we sent. */
static void linger(conn_t *c) {
    worker_t *w = conn_worker(c);
    c->_flags |= CONN_F_LINGER | CONN_F_INPUT_DONE;
    shutdown(conn_fd(c), SHUT_WR);
    conn_set_timeout(c, w->cfg->close_timeout);
}

/* Tells epoll what c waits for: input unless paused, output while the socket is full. */
static void update_events(conn_t *c) {
    if (c->_fd < 0)
        return;
    uint32_t events = EPOLLIN;
    if (c->_flags & CONN_F_HOLD) {
        events = 0;
        c->_flags |= CONN_F_READ_OFF;
    } else {
        c->_flags &= (uint16_t)~CONN_F_READ_OFF;
    }
    if (c->_flags & CONN_F_WANT_WRITE)
        events |= EPOLLOUT;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(conn_worker(c)->_epfd, EPOLL_CTL_MOD, c->_fd, &ev);
}

static void set_want_write(conn_t *c, bool on) {
    if (on == !!(c->_flags & CONN_F_WANT_WRITE))
        return;
    if (on)
        c->_flags |= CONN_F_WANT_WRITE;
    else
        c->_flags &= (uint16_t)~CONN_F_WANT_WRITE;
    update_events(c);
}

/* The peer has read enough of our answers (the queue is at half the cap or less): its input is
 * handled again. */
static void release_output(conn_t *c) {
    if (!(c->_flags & CONN_F_OUT_FULL) || c->_state == CONN_DEAD ||
        c->_wq_bytes > conn_worker(c)->cfg->max_write_queue / 2)
        return;
    c->_flags &= (uint16_t)~CONN_F_OUT_FULL;
    resume_input(c);
}

/* Writes as much of the queue as the socket takes, with writev. */
void conn_flush(conn_t *c) {
    if (c->_state == CONN_DEAD)
        return;
    if (c->_flags & CONN_F_SLOW) {
        close_slow_consumer(c);
        if (c->_state == CONN_DEAD)
            return;
    }
    worker_t *w = conn_worker(c);
    while (c->_wq_tail) {
        struct iovec iov[WRITEV_MAX];
        int n = 0;
        wq_item_t *it = c->_wq_tail->next;
        for (;;) {
            size_t skip = n == 0 ? c->_wq_off : 0;
            iov[n].iov_base = (void *)(sbuf_bytes(it->buf) + skip);
            iov[n].iov_len = it->buf->len - skip;
            n++;
            if (it == c->_wq_tail || n == WRITEV_MAX)
                break;
            it = it->next;
        }
        ssize_t wrote = writev(conn_fd(c), iov, n);
        if (wrote < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_want_write(c, true);
                return;
            }
            conn_abort(c);
            return;
        }
        size_t left = (size_t)wrote;
        STAT_ADD(&conn_worker(c)->stats, bytesOut, left);
        c->_wq_bytes -= (uint32_t)left;
        while (left > 0) {
            wq_item_t *head = c->_wq_tail->next;
            size_t rest = head->buf->len - c->_wq_off;
            if (left < rest) {
                c->_wq_off += (uint32_t)left;
                break;
            }
            left -= rest;
            c->_wq_off = 0;
            if (head == c->_wq_tail)
                c->_wq_tail = NULL;
            else
                c->_wq_tail->next = head->next;
            sbuf_unref(head->buf);
            worker_wq_put(w, head);
        }
    }
    set_want_write(c, false);
    if ((c->_flags & CONN_F_CLOSE_AFTER_FLUSH) && !(c->_flags & CONN_F_LINGER))
        linger(c);
    release_output(c);
}

/* ---- HTTP and the upgrade ---- */

static void http_log(conn_t *c, const http_req_t *req, int status, size_t bytes) {
    if (!log_access_enabled())
        return; /* spare the getpeername call per request */
    char peer[80];
    conn_peer_name(c, peer, sizeof peer);
    log_access("%s \"%.*s %.*s HTTP/%u.%u\" %d %zu", peer, (int)req->method_name.len,
               http_span_ptr(req, req->method_name), (int)req->url.len,
               http_span_ptr(req, req->url), req->http_major, req->http_minor, status, bytes);
}

void conn_http_reply(conn_t *c, const http_req_t *req, int status, sbuf_t *resp) {
    worker_t *w = conn_worker(c);
    STAT_INC(&w->stats, httpRequests);
    if (status >= 400)
        STAT_INC(&w->stats, httpErrors);
    if (!resp) {
        conn_close(c, 0, NULL);
        return;
    }
    /* A HEAD request gets the response's head alone, with the body's Content-Length. */
    const uint8_t *end =
        req->method == HTTP_HEAD ? memmem(resp->data, resp->len, "\r\n\r\n", 4) : NULL;
    if (end)
        resp->len = (uint32_t)(end - resp->data) + 4;
    http_log(c, req, status, resp->len);
    queue_owned(c, resp);
    /* A 503 (Redis unreachable, overloaded) keeps the connection: the response said so, and the
     * caller may retry on it. Errors that end a connection go through final_error. */
    if (!req->keep_alive)
        conn_close(c, 0, NULL);
}

static void reply_error(conn_t *c, const http_req_t *req, int status, const char *msg,
                        const char *headers) {
    bool keep = req->keep_alive && status != 400;
    http_req_t copy = *req;
    copy.keep_alive = keep;
    conn_http_reply(c, &copy, status, http_resp_error(status, msg, headers, keep));
}

/* Picks the first subprotocol the client offers (Sec-WebSocket-Protocol: a, b) that is in
 * `ours` (comma-separated). Returns its length (*sel points into the request), 0 if the client
 * offered none, -1 if it offered only ones we don't speak (the chosen one is no longer than
 * `ours`). */
static int pick_subprotocol(const http_req_t *req, const char *ours, const char **sel) {
    size_t len;
    const char *offer = http_req_header(req, "Sec-WebSocket-Protocol", &len);
    bool offered = false;
    for (size_t i = 0; offer && i < len;) {
        while (i < len && (offer[i] == ' ' || offer[i] == '\t' || offer[i] == ','))
            i++;
        size_t start = i;
        while (i < len && offer[i] != ',' && offer[i] != ' ' && offer[i] != '\t')
            i++;
        size_t n = i - start;
        offered |= n > 0;
        for (const char *o = ours; n && *o;) {
            size_t m = strcspn(o, ",");
            if (m == n && memcmp(o, offer + start, n) == 0) {
                *sel = offer + start;
                return (int)n;
            }
            o += m + (o[m] == ',');
        }
    }
    return offered ? -1 : 0;
}

/* Checks an upgrade request for /acc (RFC 6455 §4.2.1). Returns 0 with the accept key and the
 * subprotocol chosen (proto, proto_len; length 0 = none), or the HTTP status to answer with
 * (msg, headers). */
static int check_upgrade(conn_t *c, const http_req_t *req, char accept[WS_ACCEPT_KEY_LEN + 1],
                         const char **proto, int *proto_len, const char **msg,
                         const char **headers) {
    size_t ul, cl, vl, kl;
    const char *up = http_req_header(req, "Upgrade", &ul);
    const char *co = http_req_header(req, "Connection", &cl);
    *headers = NULL;
    if (!up || !co || !ws_header_has_token(up, ul, "websocket") ||
        !ws_header_has_token(co, cl, "upgrade")) {
        *msg = "this is a WebSocket endpoint: send an Upgrade: websocket request";
        return 400;
    }
    if (req->method != HTTP_GET) {
        *msg = "a WebSocket upgrade must use GET";
        *headers = "Allow: GET\r\n";
        return 405;
    }
    if (req->http_major < 1 || (req->http_major == 1 && req->http_minor < 1)) {
        *msg = "a WebSocket upgrade needs HTTP/1.1";
        return 400;
    }
    const char *ver = http_req_header(req, "Sec-WebSocket-Version", &vl);
    if (!ver || vl != 2 || memcmp(ver, "13", 2) != 0) {
        *msg = "unsupported WebSocket version: use 13";
        *headers = "Sec-WebSocket-Version: 13\r\n";
        return 426;
    }
    const char *key = http_req_header(req, "Sec-WebSocket-Key", &kl);
    if (!key || ws_handshake_accept_key(key, kl, accept) != 0) {
        *msg = "missing or malformed Sec-WebSocket-Key";
        return 400;
    }
    /* Browsers always send Origin; a client without one is not a browser a page could abuse. */
    size_t ol;
    const char *origin = http_req_header(req, "Origin", &ol);
    if (origin && !ws_origin_allowed(conn_worker(c)->cfg->allowed_origins, origin, ol)) {
        STAT_INC(&conn_worker(c)->stats, originsRefused);
        *msg = "this Origin may not open a WebSocket here (app.allowedOrigins)";
        return 403;
    }
    /* A browser fails a handshake whose 101 doesn't echo one of the subprotocols it offered:
     * refuse clearly instead (app.subprotocols lists what we speak, "" by default). */
    const char *ours = conn_worker(c)->cfg->subprotocols;
    *proto_len = pick_subprotocol(req, ours ? ours : "", proto);
    if (*proto_len < 0) {
        *msg = ours && *ours ? "none of the offered WebSocket subprotocols is spoken here (see "
                               "app.subprotocols)"
                             : "this server speaks no WebSocket subprotocol: connect without "
                               "Sec-WebSocket-Protocol";
        return 400;
    }
    return 0;
}

/* Answers 101 (echoing the chosen subprotocol) and turns the connection into a WebSocket.
 * Bytes that followed the request are WebSocket data and are fed at once. */
static void upgrade(conn_t *c, const http_req_t *req, const char *accept, const char *proto,
                    int proto_len) {
    worker_t *w = conn_worker(c);
    char resp[512];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%.*s%s\r\n",
                     accept, proto_len ? "Sec-WebSocket-Protocol: " : "", proto_len,
                     proto_len ? proto : "", proto_len ? "\r\n" : "");
    sbuf_t *s = sbuf_from(resp, (size_t)n);
    if (!s) {
        conn_abort(c);
        return;
    }
    STAT_INC(&w->stats, httpRequests);
    queue_owned(c, s);
    http_log(c, req, 101, (size_t)n);

    size_t rest_len;
    const uint8_t *rest = http_reader_rest(c->_http, &rest_len);
    uint8_t *copy = NULL;
    if (rest_len) {
        copy = malloc(rest_len);
        if (!copy) {
            conn_abort(c);
            return;
        }
        memcpy(copy, rest, rest_len);
    }
    c->_state = CONN_WS;
    c->_flags &= (uint16_t)~CONN_F_REQ_PENDING;
    c->_deadline = 0;
    worker_count_add(&w->_ws_count, 1);
    if (w->cfg->hooks->on_ws_open)
        w->cfg->hooks->on_ws_open(c, req);
    /* req points into the reader: only now can it go. */
    http_reader_free(c->_http);
    c->_http = NULL;
    c->_ws._spill = NULL;
    c->_flags |= CONN_F_WS_INPUT;
    if (copy && c->_state == CONN_WS) {
        int r = ws_stream_feed(&c->_ws, copy, rest_len, w->cfg->max_message_size, &ws_handlers, c);
        if (r < 0)
            conn_ws_error(c, r);
    }
    free(copy);
}

/* A limit's answer, then close: 503 (node) or 429 (address), with Retry-After. req is NULL
 * when the answer comes before a request was read. */
static void refuse(conn_t *c, const http_req_t *req, int status, const char *msg,
                   uint32_t retry_after_s) {
    char headers[64];
    snprintf(headers, sizeof headers, "Retry-After: %u\r\n", retry_after_s);
    STAT_INC(&conn_worker(c)->stats, httpRequests);
    STAT_INC(&conn_worker(c)->stats, httpErrors);
    queue_owned(c, http_resp_error(status, msg, headers, false));
    if (req)
        http_log(c, req, status, 0);
    c->_flags &= (uint16_t)~CONN_F_REQ_PENDING;
    conn_close(c, 0, NULL);
}

/* A connection accepted past a limit: its first bytes get the answer (then it lingers, reading
 * to the peer's end, so the answer is not lost to a reset). */
static void refuse_at_once(conn_t *c) {
    if (c->_flags & CONN_F_REFUSE_IP)
        refuse(c, NULL, 429, "too many connections from this address", RETRY_AFTER_LIMIT_S);
    else
        refuse(c, NULL, 503, "too many connections (app.maxConnections)", RETRY_AFTER_LIMIT_S);
}

/* Routes one complete request. */
static void handle_request(conn_t *c, const http_req_t *req) {
    worker_t *w = conn_worker(c);
    if (http_span_eq(req, req->path, "/acc")) {
        char accept[WS_ACCEPT_KEY_LEN + 1];
        const char *msg, *headers;
        const char *proto = NULL;
        int proto_len = 0;
        int status = check_upgrade(c, req, accept, &proto, &proto_len, &msg, &headers);
        uint32_t wait_s;
        if (status == 0 && net_draining()) {
            STAT_INC(&w->stats, drainRefusals);
            refuse(c, req, 503, "draining: connect again elsewhere", 1);
            return;
        }
        if (status == 0 && !net_upgrade_allowed(&wait_s)) {
            STAT_INC(&w->stats, upgradeRateHits);
            refuse(c, req, 503, "too many new connections (app.upgradeRate)", wait_s);
            return;
        }
        if (status == 0) {
            upgrade(c, req, accept, proto, proto_len);
            return;
        }
        STAT_INC(&w->stats, handshakesFailed);
        reply_error(c, req, status, msg, headers);
        return;
    }
    if (c->_flags & CONN_F_WS_PORT || !w->cfg->hooks->on_http) {
        reply_error(c, req, 404, "not found: the WebSocket endpoint is /acc", NULL);
        return;
    }
    w->cfg->hooks->on_http(c, req);
}

/* A last HTTP response (an error nobody asked for by a valid request), then close. */
static void final_error(conn_t *c, int status, const char *msg) {
    queue_owned(c, http_resp_error(status, msg, NULL, false));
    c->_flags &= (uint16_t)~CONN_F_REQ_PENDING;
    conn_close(c, 0, NULL);
}

static void http_fail(conn_t *c, int err) {
    int status = err == HTTP_REQ_ERR_TOO_LARGE ? 413
                 : err == HTTP_REQ_ERR_HEADERS ? 431
                 : err == HTTP_REQ_ERR_NOMEM   ? 503
                 : err == HTTP_REQ_ERR_CODING  ? 501
                 : err == HTTP_REQ_ERR_VERSION ? 505
                                               : 400;
    const char *msg = status == 413   ? "request body too large"
                      : status == 431 ? "request line and headers too large"
                      : status == 503 ? "out of memory"
                      : status == 501 ? "only the chunked transfer coding is understood"
                      : status == 505 ? "only HTTP/1.0 and HTTP/1.1 are spoken here"
                                      : "malformed HTTP request";
    worker_t *w = conn_worker(c);
    STAT_INC(&w->stats, httpRequests);
    STAT_INC(&w->stats, httpErrors);
    final_error(c, status, msg);
}

static void http_data(conn_t *c, const uint8_t *p, size_t n) {
    worker_t *w = conn_worker(c);
    if (c->_flags & CONN_F_CLOSE_AFTER_FLUSH)
        return; /* answering a final response: ignore what follows */
    if (c->_flags & CONN_F_REFUSE) {
        refuse_at_once(c); /* past a limit: answered at its first bytes, nothing buffered */
        return;
    }
    if (!c->_http) {
        c->_http = http_reader_new(w->cfg->max_header_bytes, w->cfg->max_body_bytes);
        if (!c->_http) {
            conn_abort(c);
            return;
        }
    }
    http_process(c, http_reader_feed(c->_http, p, n));
}

/* Handles the complete requests in the reader, in order, until one is deferred or the input
 * runs out; r is the reader's last result. */
static void http_process(conn_t *c, int r) {
    worker_t *w = conn_worker(c);
    while (r == HTTP_REQ_READY && c->_state == CONN_HTTP) {
        handle_request(c, &c->_http->req);
        if (c->_state != CONN_HTTP || (c->_flags & (CONN_F_CLOSE_AFTER_FLUSH | CONN_F_HOLD)))
            return;
        r = http_reader_next(c->_http);
    }
    if (r < 0) {
        http_fail(c, r);
        return;
    }
    if (http_reader_take_continue(c->_http)) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        sbuf_t *s = sbuf_from(cont, sizeof cont - 1);
        if (!s) {
            conn_abort(c);
            return;
        }
        queue_owned(c, s);
    }
    if (http_reader_partial(c->_http)) {
        if (!(c->_flags & CONN_F_REQ_PENDING)) {
            c->_flags |= CONN_F_REQ_PENDING;
            conn_set_timeout(c, w->cfg->handshake_timeout);
        }
    } else {
        c->_flags &= (uint16_t)~CONN_F_REQ_PENDING;
        conn_set_timeout(c, w->cfg->keepalive_timeout);
    }
}

/* ---- answers that come later ---- */

/* Stops watching input if c is still paused when its input handling returns to the loop (an
 * answer that came at once costs no system call). */
static void pause_input(conn_t *c) {
    if ((c->_flags & CONN_F_HOLD) && !(c->_flags & CONN_F_READ_OFF))
        update_events(c);
}

void conn_defer(conn_t *c) {
    if (c->_flags & CONN_F_PAUSED)
        return;
    c->_flags |= CONN_F_PAUSED;
    if (c->_state == CONN_HTTP)
        conn_set_timeout(c, conn_worker(c)->cfg->handshake_timeout);
}

/* Input may go on (no deferred answer awaited, no output backlog): handles what waited and
 * reads the socket again. */
static void resume_input(conn_t *c) {
    worker_t *w = conn_worker(c);
    if (c->_flags & CONN_F_HOLD)
        return;
    if (c->_flags & CONN_F_READ_OFF)
        update_events(c);
    if (w->_reading == c)
        return; /* inside its own input handling: that loop goes on by itself */
    conn_t *outer = w->_reading;
    w->_reading = c;
    if (c->_state == CONN_HTTP && c->_http && !(c->_flags & CONN_F_CLOSE_AFTER_FLUSH)) {
        http_process(c, http_reader_next(c->_http));
    } else if (c->_state == CONN_WS && !(c->_flags & CONN_F_INPUT_DONE)) {
        int r = ws_stream_resume(&c->_ws, w->cfg->max_message_size, &ws_handlers, c);
        if (r < 0)
            conn_ws_error(c, r);
    }
    if (c->_state != CONN_DEAD)
        pause_input(c);
    w->_reading = outer;
}

void conn_resume(conn_t *c) {
    if (!(c->_flags & CONN_F_PAUSED))
        return;
    c->_flags &= (uint16_t)~CONN_F_PAUSED;
    resume_input(c);
}

const http_req_t *conn_http_request(const conn_t *c) {
    return c->_state == CONN_HTTP && c->_http ? &c->_http->req : NULL;
}

/* ---- WebSocket input ---- */

static void conn_ws_error(conn_t *c, int err) {
    worker_t *w = conn_worker(c);
    uint16_t code = ws_error_close_code(err);
    if (code == WS_CLOSE_BAD_DATA)
        STAT_INC(&w->stats, badUtf8);
    else if (code == WS_CLOSE_TOO_BIG)
        STAT_INC(&w->stats, messagesTooBig);
    else
        STAT_INC(&w->stats, protocolErrors);
    /* The stream can't be parsed past an error: drop the rest of the input. */
    c->_flags |= CONN_F_INPUT_DONE | CONN_F_CLOSE_AFTER_FLUSH;
    worker_want_flush(w, c);
    if (c->_state == CONN_WS) {
        const char *why = code == WS_CLOSE_BAD_DATA   ? "invalid UTF-8"
                          : code == WS_CLOSE_TOO_BIG  ? "message too big"
                          : code == WS_CLOSE_INTERNAL ? "out of memory"
                                                      : "protocol error";
        conn_close(c, code, why);
    } else {
        conn_abort(c);
    }
}

static int ws_on_message(void *ctx, uint8_t opcode, uint8_t *data, size_t len) {
    conn_t *c = ctx;
    if (c->_state != CONN_WS)
        return 0; /* after our close frame, data is read and dropped (RFC 6455 §5.5.1) */
    worker_t *w = conn_worker(c);
    STAT_INC(&w->stats, messagesIn);
    w->cfg->hooks->on_ws_message(c, data, len, opcode == WS_OP_BINARY);
    if (c->_state != CONN_WS)
        return 1;
    return (c->_flags & CONN_F_HOLD) ? WS_HANDLER_PAUSE : 0;
}

/* Above this much unsent output a new pong replaces a queued one (below, every ping gets its
 * pong, as clients and the Autobahn suite expect): 16 KiB is a hundred pongs or more. */
#define PONG_COALESCE_ABOVE (16 * 1024)

/* A ping's pong. When output is backing up and the last thing queued is a pong nobody has
 * started to write, the new one takes its place: RFC 6455 §5.5.3 lets us answer only the
 * latest ping, so a peer that pings without reading costs one queued pong, not one per ping. */
static int ws_on_ping(void *ctx, uint8_t *data, size_t len) {
    conn_t *c = ctx;
    if (c->_state != CONN_WS)
        return 0;
    sbuf_t *pong = control_frame(WS_OP_PONG, data, len);
    wq_item_t *t = c->_wq_tail;
    bool started = t && t->next == t && c->_wq_off > 0; /* the tail is the head, half written */
    if (pong && t && !started && c->_wq_bytes >= PONG_COALESCE_ABOVE &&
        sbuf_bytes(t->buf)[0] == (0x80 | WS_OP_PONG)) {
        c->_wq_bytes += pong->len - t->buf->len;
        sbuf_unref(t->buf);
        t->buf = pong;
        return 0;
    }
    queue_owned(c, pong);
    return (c->_flags & CONN_F_OUT_FULL) ? WS_HANDLER_PAUSE : 0; /* answers unread: wait */
}

static int ws_on_pong(void *ctx, uint8_t *data, size_t len) {
    return 0;
}

static int ws_on_close(void *ctx, uint16_t code, uint8_t *reason, size_t len) {
    conn_t *c = ctx;
    c->_flags |= CONN_F_INPUT_DONE;
    if (c->_state == CONN_WS) {
        /* Echo the code (RFC 6455 §5.5.1), then close TCP once it is written. */
        conn_close(c, code, NULL);
    }
    c->_flags |= CONN_F_CLOSE_AFTER_FLUSH;
    worker_want_flush(conn_worker(c), c);
    return 1;
}

static const ws_stream_handlers_t ws_handlers = {
    .on_message = ws_on_message,
    .on_ping = ws_on_ping,
    .on_pong = ws_on_pong,
    .on_close = ws_on_close,
};

static void ws_data(conn_t *c, uint8_t *p, size_t n) {
    worker_t *w = conn_worker(c);
    if (c->_flags & CONN_F_INPUT_DONE)
        return;
    int r = 0;
    if (c->_ws._spill && !(c->_flags & CONN_F_HOLD)) {
        /* Input held by a pause that conn_close ended: it comes before the new bytes. */
        r = ws_stream_resume(&c->_ws, w->cfg->max_message_size, &ws_handlers, c);
    }
    /* Paused again (or still held): feeding holds the new bytes behind the rest. */
    if ((r == 0 || r == WS_PAUSED) && !(c->_flags & CONN_F_INPUT_DONE))
        r = ws_stream_feed(&c->_ws, p, n, w->cfg->max_message_size, &ws_handlers, c);
    if (r < 0)
        conn_ws_error(c, r);
}

static void read_input(conn_t *c);

/* Marks c as the connection being answered while its input is handled (see
 * worker_want_flush). */
static void on_readable(conn_t *c) {
    worker_t *w = conn_worker(c);
    w->_reading = c;
    read_input(c);
    if (c->_state != CONN_DEAD)
        pause_input(c);
    w->_reading = NULL;
}

static void read_input(conn_t *c) {
    worker_t *w = conn_worker(c);
    for (int i = 0; i < 4 && c->_state != CONN_DEAD && !(c->_flags & CONN_F_HOLD); i++) {
        ssize_t n = read(conn_fd(c), w->_rbuf, NET_RBUF_SIZE);
        if (n > 0) {
            STAT_ADD(&w->stats, bytesIn, (uint64_t)n);
            if (c->_state == CONN_HTTP)
                http_data(c, w->_rbuf, (size_t)n);
            else
                ws_data(c, w->_rbuf, (size_t)n);
            if ((size_t)n < NET_RBUF_SIZE)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_abort(c); /* EOF or error */
        return;
    }
}

void conn_on_io(conn_t *c, uint32_t events) {
    if (c->_state == CONN_DEAD)
        return; /* closed earlier in this batch of events */
    if ((c->_flags & CONN_F_HOLD) && (events & (EPOLLERR | EPOLLHUP))) {
        conn_abort(c); /* reset while it waited for an answer: nobody is left to read it */
        return;
    }
    if (events & EPOLLOUT)
        conn_flush(c);
    /* Errors and hang-ups show up as a failed or empty read. */
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->_state != CONN_DEAD &&
        !(c->_flags & CONN_F_HOLD))
        on_readable(c);
}

void conn_on_timeout(conn_t *c, uint32_t now) {
    worker_t *w = conn_worker(c);
    if (c->_flags & CONN_F_LINGER) {
        conn_abort(c); /* our side is done; the peer did not close its side in time */
        return;
    }
    switch (c->_state) {
    case CONN_HTTP:
        if (c->_flags & CONN_F_PAUSED) {
            STAT_INC(&w->stats, deferredTimeouts);
            c->_flags &= (uint16_t)~CONN_F_PAUSED; /* a late answer is dropped */
            final_error(c, 504, "no answer in time");
            c->_deadline = now + 2; /* if even the 504 can't be written: two ticks, then drop */
        } else if (c->_flags & CONN_F_REQ_PENDING) {
            STAT_INC(&w->stats, handshakeTimeouts);
            final_error(c, 408, "request not completed in time");
            c->_deadline = now + 2; /* if even the 408 can't be written */
        } else if (c->_flags & CONN_F_CLOSE_AFTER_FLUSH) {
            conn_abort(c);
        } else {
            if (!c->_http)
                STAT_INC(&w->stats, handshakeTimeouts); /* connected, never sent a byte */
            conn_abort(c);
        }
        break;
    case CONN_WS:
        if (w->cfg->hooks->on_ws_timeout && w->cfg->hooks->on_ws_timeout(c))
            break;
        STAT_INC(&w->stats, heartbeatTimeouts);
        conn_close(c, WS_CLOSE_GOING_AWAY, "heartbeat timeout");
        break;
    case CONN_WS_CLOSING:
        STAT_INC(&w->stats, closeTimeouts);
        conn_abort(c);
        break;
    default:
        break;
    }
}
