#include "net/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/ip_limit.h"
#include "net/net_internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/rate.h"

#define ACCEPTS_PER_EVENT 64   /* fairness: a flood of connects can't starve established ones */
#define LISTEN_BACKLOG    4096 /* the kernel caps it at net.core.somaxconn */
/* Connections past app.maxConnections (or a per-address limit) that are still read, so that
 * they get a 503 / 429 with Retry-After instead of a reset; past this many more they are closed
 * at once. Each holds ~200 bytes for at most app.handshakeTimeout. */
#define REFUSE_RESERVE 256

static worker_t *g_workers;
static int g_worker_count;
static atomic_uint g_conn_total;
static atomic_bool g_draining;    /* set once, at the start of a drain */
static atomic_bool g_drain_begun; /* the workers were told to drain */
static rate_limiter_t g_upgrades; /* app.upgradeRate */
static atomic_uint g_refusing;    /* connections accepted only to be refused */
static _Thread_local worker_t *tl_worker;

static void close_handles(worker_t *w);

struct worker *conn_worker(const conn_t *c) {
    return &g_workers[c->_wid];
}

bool net_upgrade_allowed(uint32_t *retry_after_s) {
    uint64_t wait_us = 0;
    if (rate_limiter_take(&g_upgrades, clock_mono_ms() * 1000u, &wait_us))
        return true;
    *retry_after_s = (uint32_t)((wait_us + 999999u) / 1000000u);
    if (*retry_after_s == 0)
        *retry_after_s = 1;
    return false;
}

bool net_draining(void) {
    return atomic_load_explicit(&g_draining, memory_order_relaxed);
}

int net_worker_count(void) {
    return g_worker_count;
}

worker_t *net_worker(int i) {
    return &g_workers[i];
}

worker_t *net_current_worker(void) {
    return tl_worker;
}

void net_conn_released(void) {
    atomic_fetch_sub_explicit(&g_conn_total, 1, memory_order_relaxed);
}

/* ---- references: cross-thread names of connections ---- */

conn_t *worker_conn(worker_t *w, conn_ref_t ref) {
    if (conn_ref_worker(ref) != w->id)
        return NULL;
    conn_t *c = slab_at(&w->_conn_slab, conn_ref_slot(ref));
    uint32_t gen = conn_ref_gen(ref);
    /* An aborted connection waiting for the free point has generation 0: found by nobody. */
    return c && gen && c->_gen == gen ? c : NULL;
}

size_t worker_list_peers(worker_t *w, buf_t *out) {
    size_t n = 0;
    for (conn_t *c = w->_conns; c; c = c->_next) {
        if (c->_state != CONN_WS)
            continue;
        char peer[80];
        conn_peer_name(c, peer, sizeof peer);
        buf_printf(out, "%s\"%s\"", n++ ? "," : "", peer);
    }
    return n;
}

uint32_t worker_conn_count(const worker_t *w) {
    return atomic_load_explicit(&w->_conn_count, memory_order_relaxed);
}

uint32_t worker_tick_age(const worker_t *w) {
    uint32_t at = atomic_load_explicit(&w->_tick_at, memory_order_relaxed), now = clock_mono_s();
    return now > at ? now - at : 0;
}

uint32_t worker_ws_count(const worker_t *w) {
    return atomic_load_explicit(&w->_ws_count, memory_order_relaxed);
}

void worker_count_add(_Atomic uint32_t *count, int delta) {
    uint32_t v = atomic_load_explicit(count, memory_order_relaxed);
    atomic_store_explicit(count, v + (uint32_t)delta, memory_order_relaxed);
}

void worker_foreach_conn(worker_t *w, void (*fn)(conn_t *c, void *arg), void *arg) {
    for (conn_t *c = w->_conns, *next; c; c = next) {
        next = c->_next;
        fn(c, arg);
    }
}

/* ---- write queue items, from the worker's slab ---- */

wq_item_t *worker_wq_get(worker_t *w) {
    wq_item_t *it = slab_alloc(&w->_wq_slab);
    if (!it) {
        log_error("out of memory for a write queue item");
        abort(); /* 16 bytes: nothing sensible is left to do */
    }
    return it;
}

void worker_slab_stats(const worker_t *w, slab_stats_t *conns, slab_stats_t *queue) {
    slab_stats(&w->_conn_slab, conns);
    slab_stats(&w->_wq_slab, queue);
}

/* ---- flushing: once per loop turn, after all input and mailbox work ---- */

/* Output waits its turn at the tail; but a connection answering its own input (an HTTP reply, a
 * WebSocket reply, a pong) also joins the priority list, flushed first: a caller waiting for an
 * answer should not wait behind thousands of push receivers. */
void worker_want_flush(worker_t *w, conn_t *c) {
    if (!(c->_flags & CONN_F_IN_FLUSH_LIST)) {
        c->_flags |= CONN_F_IN_FLUSH_LIST;
        c->_flush_next = NULL;
        w->_flush_len++;
        if (w->_flush_tail)
            w->_flush_tail->_flush_next = c;
        else
            w->_flush_head = c;
        w->_flush_tail = c;
    }
    /* A connection waiting for a deferred answer gets it now: that is a reply too. */
    bool reply = c == w->_reading || c->_state == CONN_HTTP || (c->_flags & CONN_F_PAUSED);
    if (reply && !(c->_flags & CONN_F_IN_PRIO_LIST)) {
        if (w->_prio_len == w->_prio_cap) {
            size_t cap = w->_prio_cap ? w->_prio_cap * 2 : 64;
            conn_t **p = realloc(w->_prio, cap * sizeof *p);
            if (!p)
                return; /* it still goes out in its turn */
            w->_prio = p;
            w->_prio_cap = cap;
        }
        c->_flags |= CONN_F_IN_PRIO_LIST;
        w->_prio[w->_prio_len++] = c;
    }
}

void worker_defer_free(worker_t *w, conn_t *c) {
    c->_next = w->_closed;
    w->_closed = c;
}

/* Writes queued output, at most FLUSH_BUDGET sockets per loop turn, then frees what was closed:
 * nothing up any call stack holds a connection at this point (Redis's beforeSleep, uSockets'
 * closed list). The budget lets new input in between: under a stream of room pushes, frames
 * that arrive while a socket waits its turn go out in the same writev (more messages per
 * system call the busier it gets); when idle, everything is written in the same turn. */
#define FLUSH_BUDGET 256

/* Pushes waiting for this many connections or more are a big fan-out: see write_delay(). */
#define WRITE_DELAY_ABOVE 1024

static void on_idle(uv_idle_t *h) {}
static void on_delay_over(uv_timer_t *h) {} /* wakes the loop; prepare/check flush */

/* A big fan-out (a room push to thousands) waits app.writeDelay ms before its first write, and
 * then its connections are written once each, as one round; pushes that arrive meanwhile go out
 * in the same writev. Without it, when pushes arrive a few ms apart (each waiting for Redis),
 * every delivery is a system call of its own (~3-5 µs on loopback), the cores fill up, and the
 * next push comes even later. Small fan-outs and replies are never delayed. Returns true if the
 * push list must wait now. */
static bool write_delay(worker_t *w) {
    uint32_t delay = w->cfg->write_delay_ms;
    if (!delay || w->_stopping || w->_round_left || w->_flush_len < WRITE_DELAY_ABOVE) {
        w->_delay_until = w->_round_left ? w->_delay_until : 0;
        return false;
    }
    uint64_t now = uv_now(&w->loop);
    if (!w->_delay_until)
        w->_delay_until = now + delay;
    if (now < w->_delay_until) {
        if (!uv_is_active((uv_handle_t *)&w->_delay))
            uv_timer_start(&w->_delay, on_delay_over, w->_delay_until - now, 0);
        return true;
    }
    w->_delay_until = 0;
    w->_round_left = w->_flush_len; /* this round: the connections waiting now */
    return false;
}

static void flush_some(worker_t *w) {
    conn_t *c;
    /* Replies don't count against the budget: they are bounded by the input read this turn,
     * and counting them could leave push receivers waiting turn after turn. conn_flush may add
     * to the list (a close after a reply): index, don't cache the length. */
    for (size_t i = 0; i < w->_prio_len; i++) {
        c = w->_prio[i];
        c->_flags &= (uint16_t)~CONN_F_IN_PRIO_LIST;
        conn_flush(c); /* it stays in the main list; there it finds nothing left to write */
    }
    w->_prio_len = 0;
    bool waiting = write_delay(w);
    for (int n = 0; !waiting && n < FLUSH_BUDGET && (c = w->_flush_head); n++) {
        w->_flush_head = c->_flush_next;
        if (!w->_flush_head)
            w->_flush_tail = NULL;
        c->_flags &= (uint16_t)~CONN_F_IN_FLUSH_LIST;
        w->_flush_len--;
        if (w->_round_left)
            w->_round_left--;
        conn_flush(c);
    }
    /* A closed connection still in the flush list waits until the list has passed it. */
    for (conn_t **p = &w->_closed; (c = *p);) {
        if (c->_flags & (CONN_F_IN_FLUSH_LIST | CONN_F_IN_PRIO_LIST)) {
            p = &c->_next;
            continue;
        }
        *p = c->_next;
        conn_free(c);
        worker_count_add(&w->_conn_count, -1);
    }
    if (w->_flush_head && !waiting)
        uv_idle_start(&w->_idle, on_idle); /* don't block in poll while output waits */
    else
        uv_idle_stop(&w->_idle); /* empty, or the delay timer wakes us */
    if (w->_stopping && w->_listen_count == 0 && worker_conn_count(w) == 0)
        close_handles(w);
}

static void on_check(uv_check_t *h) {
    flush_some(h->data);
}

static void on_prepare(uv_prepare_t *h) {
    flush_some(h->data);
}

/* ---- mailbox ---- */

int worker_post(worker_t *w, mailbox_fn fn, void *arg) {
    return mailbox_post(&w->_mailbox, fn, arg);
}

void worker_mailbox_stats(worker_t *w, mailbox_stats_t *out) {
    mailbox_get_stats(&w->_mailbox, out);
}

int worker_post_reply(worker_t *w, mailbox_fn fn, void *arg) {
    return mailbox_post_always(&w->_mailbox, fn, arg);
}

/* ---- connection events ---- */

#define EPOLL_BATCH 128

/* The epoll set is readable: dispatch one batch per loop turn, so that replies, timers and the
 * mailbox get their turn every few milliseconds even in a login storm (level-triggered: the
 * rest waits for the next turn, nothing is lost). */
static void on_epoll(uv_poll_t *h, int status, int events) {
    worker_t *w = h->data;
    struct epoll_event ev[EPOLL_BATCH];
    int n = epoll_wait(w->_epfd, ev, EPOLL_BATCH, 0);
    for (int i = 0; i < n; i++)
        conn_on_io(ev[i].data.ptr, ev[i].events);
}

/* ---- accepting ---- */

static void listener_pause(worker_t *w, int i) {
    uv_poll_stop(&w->_listen[i]);
}

/* A connection that is not kept: closed at once, uncounted. */
static void refuse_reset(worker_t *w, int fd, const ip_key_t *peer, uint16_t flags) {
    if (flags & CONN_F_REFUSE)
        atomic_fetch_sub_explicit(&g_refusing, 1, memory_order_relaxed);
    if (flags & CONN_F_IP_COUNTED)
        ip_limit_release(peer);
    atomic_fetch_sub_explicit(&g_conn_total, 1, memory_order_relaxed);
    STAT_INC(&w->stats, connectionsRejected);
    close(fd);
}

void net_conn_refused_done(void) {
    atomic_fetch_sub_explicit(&g_refusing, 1, memory_order_relaxed);
}

static void on_accept(uv_poll_t *h, int status, int events) {
    worker_t *w = h->data;
    int i = h == &w->_listen[0] ? 0 : 1;
    if (status < 0)
        return;
    for (int k = 0; k < ACCEPTS_PER_EVENT; k++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        int fd = accept4(w->_listen_fd[i], (struct sockaddr *)&peer, &peer_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting until the next tick instead of spinning. */
                log_warn("accept: %s; pausing accepts for a second", strerror(errno));
                STAT_INC(&w->stats, connectionsRejected);
                listener_pause(w, i);
            }
            return;
        }
        uint16_t flags = i == 1 ? CONN_F_WS_PORT : 0;
        ip_key_t key;
        unsigned total = atomic_fetch_add_explicit(&g_conn_total, 1, memory_order_relaxed) + 1;
        if (total > w->cfg->max_connections) {
            flags |= CONN_F_REFUSE;
            STAT_INC(&w->stats, connectionLimitHits);
        } else if (w->cfg->max_connections_per_ip && ip_limit_key((struct sockaddr *)&peer, &key)) {
            uint32_t n = ip_limit_acquire(&key);
            if (n)
                flags |= CONN_F_IP_COUNTED;
            if (n > w->cfg->max_connections_per_ip) {
                flags |= CONN_F_REFUSE | CONN_F_REFUSE_IP;
                STAT_INC(&w->stats, ipLimitHits);
            }
        }
        bool refused = flags & CONN_F_REFUSE;
        if (refused &&
            atomic_fetch_add_explicit(&g_refusing, 1, memory_order_relaxed) >= REFUSE_RESERVE) {
            refuse_reset(w, fd, &key, flags); /* too many to answer: as before, close at once */
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t *c = conn_accept(w, fd, flags);
        if (!c) {
            refuse_reset(w, fd, &key, flags);
            continue;
        }
        if (flags & CONN_F_IP_COUNTED)
            *conn_peer_key(c) = key;
        STAT_INC(&w->stats, connectionsAccepted);
    }
}

/* A listening socket with SO_REUSEPORT, so each worker has its own accept queue. */
static int listen_socket(const char *addr, int port) {
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        sl = sizeof *a6;
    } else {
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* ---- the tick: timeouts, once a second ---- */

static void on_tick(uv_timer_t *h) {
    worker_t *w = h->data;
    uint32_t now = clock_mono_s();
    atomic_store_explicit(&w->_tick_at, now, memory_order_relaxed);
    for (conn_t *c = w->_conns, *next; c; c = next) {
        next = c->_next;
        if (c->_deadline && c->_deadline <= now)
            conn_on_timeout(c, now);
    }
    if (!w->_stopping)
        for (int i = 0; i < w->_listen_count; i++)
            uv_poll_start(&w->_listen[i], UV_READABLE, on_accept);
}

/* ---- start and stop ---- */

static void close_handles(worker_t *w) {
    if (w->_loop_done)
        return;
    w->_loop_done = true;
    mailbox_close(&w->_mailbox); /* from here on, posts fail instead of waiting forever */
    uv_close((uv_handle_t *)&w->_tick, NULL);
    uv_close((uv_handle_t *)&w->_check, NULL);
    uv_close((uv_handle_t *)&w->_prepare, NULL);
    uv_close((uv_handle_t *)&w->_ep_poll, NULL);
    uv_close((uv_handle_t *)&w->_idle, NULL);
    uv_close((uv_handle_t *)&w->_delay, NULL);
    uv_close((uv_handle_t *)&w->_drain, NULL);
}

static void shutdown_conn(conn_t *c, void *arg) {
    conn_shutdown(c);
}

/* A drain's batches: 10 a second, so each is a tenth of a second's share of the WebSockets. */
#define DRAIN_BATCH_MS 100

static void close_listener(worker_t *w, int i) {
    if (w->_listen_fd[i] < 0)
        return;
    uv_close((uv_handle_t *)&w->_listen[i], NULL);
    close(w->_listen_fd[i]);
    w->_listen_fd[i] = -1;
}

/* No new clients; what is open is answered or closed. */
static void stop_all(worker_t *w) {
    for (int i = 0; i < w->_listen_count; i++)
        close_listener(w, i);
    w->_listen_count = 0;
    worker_foreach_conn(w, shutdown_conn, NULL);
}

/* Closes WebSockets until the drain's share for the time elapsed is closed; once they are all
 * closed, the HTTP side stops too. */
static void on_drain(uv_timer_t *h) {
    worker_t *w = h->data;
    /* Batch k (at k * 100 ms) brings the closed share to (k + 1) / batches: the first closes
     * at once, the last 100 ms before drain_ms. */
    uint64_t upto = uv_now(&w->loop) - w->_drain_start + DRAIN_BATCH_MS;
    uint32_t due = w->_drain_total;
    if (upto < w->cfg->drain_ms)
        due = (uint32_t)(((uint64_t)w->_drain_total * upto + w->cfg->drain_ms - 1) /
                         w->cfg->drain_ms);
    for (conn_t *c = w->_conns, *next; c && w->_drain_done < due; c = next) {
        next = c->_next;
        if (c->_state != CONN_WS)
            continue;
        conn_shutdown(c); /* may free nothing yet: c stays in the list until the free point */
        w->_drain_done++;
    }
    if (worker_ws_count(w) == 0) {
        uv_timer_stop(&w->_drain);
        stop_all(w);
    }
}

static void shutdown_task(void *ctx, void *arg) {
    worker_t *w = ctx;
    w->_stopping = true;
    if (!w->cfg->drain_ms) {
        stop_all(w);
        return;
    }
    /* The WebSocket port closes now (new clients go to another process or node); the HTTP port
     * keeps serving the API (pushes still reach who is connected, /ready says 503, upgrades
     * there get 503) until the last WebSocket is gone. */
    close_listener(w, 1);
    w->_drain_start = uv_now(&w->loop);
    w->_drain_total = worker_ws_count(w);
    w->_drain_done = 0;
    on_drain(&w->_drain); /* the first batch now */
    if (w->_listen_count)
        uv_timer_start(&w->_drain, on_drain, DRAIN_BATCH_MS, DRAIN_BATCH_MS);
}

static void worker_main(void *arg) {
    worker_t *w = arg;
    tl_worker = w;
    char name[16]; /* what top -H, ps -L and gdb show: imgate-w0, imgate-w1, ... */
    snprintf(name, sizeof name, "imgate-w%u", w->id);
    pthread_setname_np(pthread_self(), name);
    if (w->cfg->hooks->on_worker_start)
        w->cfg->hooks->on_worker_start(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

static int worker_init(worker_t *w, const net_config_t *cfg, uint32_t id) {
    memset(w, 0, sizeof *w);
    w->_epfd = -1;
    w->id = id;
    w->cfg = cfg;
    w->_rbuf = malloc(NET_RBUF_SIZE);
    if (!w->_rbuf)
        return -ENOMEM;
    /* conn_t, the upper layer's area, and the peer's address if the per-address limit is on
     * (conn_peer_key); 8-byte aligned (pointers, 32-bit fields): 104 bytes with the session,
     * where calloc took a 112-byte chunk. Spares: 2 chunks (~1 300 connections) of churn
     * without a mapping; the queue items 4 (256 KiB, ~16 000 queued frames), so that steady
     * room pushes map nothing while a burst's memory goes back once it is written. */
    size_t ext = (cfg->conn_ext_size + 7) & ~(size_t)7;
    size_t conn_size = sizeof(conn_t) + ext + (cfg->max_connections_per_ip ? sizeof(ip_key_t) : 0);
    if (slab_init(&w->_conn_slab, conn_size, 8, 2) != 0 ||
        slab_init(&w->_wq_slab, sizeof(wq_item_t), 8, 4) != 0)
        return -EINVAL;
    int r = uv_loop_init(&w->loop);
    if (r)
        return r;
    w->loop.data = w;
    r = mailbox_init(&w->_mailbox, &w->loop, cfg->mailbox_capacity, w);
    if (r)
        return r;
    w->_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->_epfd < 0)
        return -errno;
    uv_poll_init(&w->loop, &w->_ep_poll, w->_epfd);
    w->_ep_poll.data = w;
    uv_poll_start(&w->_ep_poll, UV_READABLE, on_epoll);
    uv_timer_init(&w->loop, &w->_tick);
    uv_check_init(&w->loop, &w->_check);
    uv_idle_init(&w->loop, &w->_idle);
    uv_timer_init(&w->loop, &w->_delay);
    uv_timer_init(&w->loop, &w->_drain);
    uv_prepare_init(&w->loop, &w->_prepare);
    w->_tick.data = w->_check.data = w->_prepare.data = w->_delay.data = w->_drain.data = w;
    atomic_store_explicit(&w->_tick_at, clock_mono_s(), memory_order_relaxed);
    uv_timer_start(&w->_tick, on_tick, 1000, 1000);
    uv_check_start(&w->_check, on_check);
    uv_prepare_start(&w->_prepare, on_prepare);
    const int ports[2] = {cfg->http_port, cfg->ws_port};
    for (int i = 0; i < 2; i++) {
        int fd = listen_socket(cfg->bind_address, ports[i]);
        if (fd < 0) {
            log_error("cannot listen on %s:%d: %s", cfg->bind_address, ports[i], strerror(-fd));
            return fd;
        }
        w->_listen_fd[i] = fd;
        w->_listen_count++;
        uv_poll_init(&w->loop, &w->_listen[i], fd);
        w->_listen[i].data = w;
        uv_poll_start(&w->_listen[i], UV_READABLE, on_accept);
    }
    return 0;
}

/* Frees what the worker's loop no longer uses, after its thread ended. */
static void worker_free(worker_t *w) {
    /* Tasks queued before the mailbox closed still own their arguments. */
    mailbox_free(&w->_mailbox);
    if (w->cfg->hooks->on_worker_stop)
        w->cfg->hooks->on_worker_stop(w);
    for (int i = 0; i < w->_listen_count; i++) {
        if (w->_listen_fd[i] < 0)
            continue;
        uv_close((uv_handle_t *)&w->_listen[i], NULL);
        close(w->_listen_fd[i]);
    }
    uv_run(&w->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&w->loop) != 0)
        log_warn("worker %u: loop still had handles at exit", w->id);
    if (w->_epfd >= 0)
        close(w->_epfd);
    free(w->_prio);
    slab_destroy(&w->_conn_slab);
    slab_destroy(&w->_wq_slab);
    free(w->_rbuf);
}

int net_start(const net_config_t *cfg) {
    if (cfg->max_connections_per_ip && ip_limit_init() != 0)
        return -ENOMEM;
    rate_limiter_init(&g_upgrades, cfg->upgrade_rate, cfg->upgrade_burst);
    g_workers = calloc((size_t)cfg->workers, sizeof *g_workers);
    if (!g_workers)
        return -ENOMEM;
    int r = 0;
    for (int i = 0; i < cfg->workers; i++) {
        r = worker_init(&g_workers[i], cfg, (uint32_t)i);
        g_worker_count = i + 1;
        if (r)
            goto err;
    }
    for (int i = 0; i < cfg->workers; i++) {
        r = uv_thread_create(&g_workers[i]._thread, worker_main, &g_workers[i]);
        if (r) {
            log_error("cannot start worker thread: %s", uv_strerror(r));
            abort();
        }
    }
    return 0;
err:
    for (int i = 0; i < g_worker_count; i++) {
        worker_t *w = &g_workers[i];
        if (!w->loop.data) {
            free(w->_rbuf);
            continue;
        }
        close_handles(w);
        worker_free(w);
    }
    free(g_workers);
    g_workers = NULL;
    g_worker_count = 0;
    ip_limit_free();
    rate_limiter_free(&g_upgrades);
    return r;
}

void net_begin_drain(void) {
    atomic_store_explicit(&g_draining, true, memory_order_relaxed);
    if (atomic_exchange(&g_drain_begun, true))
        return;
    for (int i = 0; i < g_worker_count; i++)
        if (worker_post_reply(&g_workers[i], shutdown_task, NULL) != 0)
            log_error("worker %d: cannot post its shutdown", i);
}

static void drain_now_task(void *ctx, void *arg) {
    worker_t *w = ctx;
    w->_stopping = true;
    uv_timer_stop(&w->_drain);
    stop_all(w);
}

void net_drain_now(void) {
    net_begin_drain();
    for (int i = 0; i < g_worker_count; i++)
        worker_post_reply(&g_workers[i], drain_now_task, NULL); /* fails once a loop has ended */
}

uint32_t net_websockets(void) {
    uint32_t n = 0;
    for (int i = 0; i < g_worker_count; i++)
        n += worker_ws_count(&g_workers[i]);
    return n;
}

void net_drain(void) {
    net_begin_drain();
    for (int i = 0; i < g_worker_count; i++)
        uv_thread_join(&g_workers[i]._thread);
}

void net_free(void) {
    for (int i = 0; i < g_worker_count; i++)
        worker_free(&g_workers[i]);
    free(g_workers);
    g_workers = NULL;
    g_worker_count = 0;
    ip_limit_free();
    rate_limiter_free(&g_upgrades);
    atomic_store(&g_draining, false);
    atomic_store(&g_drain_begun, false);
}
