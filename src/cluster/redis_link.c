#include "cluster/redis_link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cluster/redis_uv.h"
#include "im/protocol.h"
#include "util/clock.h"
#include "util/log.h"

/* Reconnect backoff: 100 ms doubling to 5 s, each wait drawn between half and all of it, so
 * that nodes that lost Redis together don't come back in lockstep. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define WATCHDOG_MS    250 /* how often a link that is up checks its oldest command */
/* Bytes of commands waiting for their answer at most: 64 MiB is a thousand full-size (64 KiB)
 * messages in flight, far more than a healthy Redis ever lets pile up; past it commands are
 * refused (503) rather than buffered in hiredis without bound. */
#define PENDING_BYTES_MAX (64u << 20)

typedef struct redis_pending {
    struct redis_pending *next;
    redis_link_t *link;
    redis_reply_fn fn;
    void *priv;
    uint64_t sent_ms;
    uint64_t sent_us;
    size_t bytes;
} redis_pending_t;

static void connect_now(redis_link_t *l);

static uint64_t unix_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static void set_state(redis_link_t *l, redis_link_state_t s) {
    atomic_store_explicit(&l->_state, (int)s, memory_order_relaxed);
    atomic_store_explicit(&l->_since_ms, unix_ms(), memory_order_relaxed);
}

static void set_error(redis_link_t *l, const char *why) {
    pthread_mutex_lock(&l->_err_lock);
    snprintf(l->_last_error, sizeof l->_last_error, "%s", why ? why : "");
    pthread_mutex_unlock(&l->_err_lock);
}

static void add_count(_Atomic uint64_t *c, uint64_t n) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

bool redis_link_up(const redis_link_t *l) {
    return atomic_load_explicit(&l->_state, memory_order_relaxed) == REDIS_LINK_UP;
}

/* ---- commands ---- */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    redis_pending_t *p = privdata;
    redis_link_t *l = p->link;
    /* Redis answers in order, so p is the head; search only to be safe. */
    redis_pending_t **pp = &l->_head, *prev = NULL;
    while (*pp && *pp != p) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = p->next;
        if (l->_tail == p)
            l->_tail = prev;
    }
    atomic_fetch_sub_explicit(&l->_pending, 1, memory_order_relaxed);
    l->_pending_bytes -= p->bytes;
    if (reply)
        atomic_store_explicit(&l->_rtt_us, uv_hrtime() / 1000u - p->sent_us, memory_order_relaxed);
    p->fn(l, reply, p->priv);
    free(p);
}

/* Sends a command on a connected context (up, or still authenticating). */
static int send_command(redis_link_t *l, redis_reply_fn fn, void *priv, int argc, const char **argv,
                        const size_t *lens) {
    if (!l->_ac)
        return -ENOTCONN;
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += lens ? lens[i] : strlen(argv[i]);
    if (atomic_load_explicit(&l->_pending, memory_order_relaxed) >= l->_cfg.max_pending ||
        l->_pending_bytes + bytes > PENDING_BYTES_MAX) {
        add_count(&l->_refused, 1);
        return -EAGAIN;
    }
    redis_pending_t *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    *p = (redis_pending_t){NULL, l, fn, priv, clock_mono_ms(), uv_hrtime() / 1000u, bytes};
    l->_pending_bytes += bytes;
    if (redisAsyncCommandArgv(l->_ac, on_reply, p, argc, argv, lens) != REDIS_OK) {
        l->_pending_bytes -= bytes;
        free(p);
        return -ENOTCONN;
    }
    if (l->_tail)
        l->_tail->next = p;
    else
        l->_head = p;
    l->_tail = p;
    atomic_fetch_add_explicit(&l->_pending, 1, memory_order_relaxed);
    return 0;
}

int redis_link_command(redis_link_t *l, redis_reply_fn fn, void *priv, int argc, const char **argv,
                       const size_t *lens) {
    if (!redis_link_up(l))
        return -ENOTCONN;
    return send_command(l, fn, priv, argc, argv, lens);
}

int redis_link_subscribe(redis_link_t *l, redisCallbackFn *fn, void *priv, int argc,
                         const char **argv, const size_t *lens) {
    if (!l->_ac || !redis_link_up(l))
        return -ENOTCONN;
    return redisAsyncCommandArgv(l->_ac, fn, priv, argc, argv, lens) == REDIS_OK ? 0 : -ENOTCONN;
}

/* The link is usable: what the node sends from here on runs after AUTH and SELECT. */
static void setup_done(redis_link_t *l) {
    l->_backoff_ms = BACKOFF_MIN_MS;
    l->_told_down = false;
    add_count(&l->_reconnects, 1);
    set_state(l, REDIS_LINK_UP);
    log_info("redis %s: connected to %s", l->_name, l->_cfg.addr);
    if (l->_hooks.on_up)
        l->_hooks.on_up(l, l->_ctx);
}

/* AUTH and SELECT: the last one's success makes the link up; an error means the link is of no
 * use (wrong password, no such DB): drop it and retry with the growing backoff, logged once. */
static void on_setup_reply(redis_link_t *l, redisReply *r, void *priv) {
    bool last = ((const char *)priv)[0] == 'S' || !l->_cfg.db; /* SELECT, or AUTH alone */
    if (!r)
        return; /* the link went down: on_disconnect handles it */
    if (r->type == REDIS_REPLY_ERROR) {
        if (!l->_told_down)
            log_error("redis %s: %s failed: %s", l->_name, (const char *)priv, r->str);
        set_error(l, r->str);
        l->_setup_failed = true;
        if (l->_ac)
            redisAsyncDisconnect(l->_ac);
        return;
    }
    if (last)
        setup_done(l);
}

/* ---- connecting ---- */

static void on_reconnect_timer(uv_timer_t *t) {
    connect_now(t->data);
}

static void schedule_reconnect(redis_link_t *l) {
    if (l->_stopping)
        return;
    uint32_t wait = l->_backoff_ms / 2 + (uint32_t)(rand() % (int)(l->_backoff_ms / 2 + 1));
    l->_backoff_ms = l->_backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->_backoff_ms * 2;
    uv_timer_stop(&l->_timer);
    uv_timer_start(&l->_timer, on_reconnect_timer, wait, 0);
}

static void went_down(redis_link_t *l) {
    bool was_up = atomic_load_explicit(&l->_state, memory_order_relaxed) == REDIS_LINK_UP;
    set_state(l, REDIS_LINK_DOWN);
    if (!was_up && !l->_told_down && !l->_stopping) {
        /* once per outage, not once per attempt */
        log_warn("redis %s: cannot connect to %s (%s); retrying", l->_name, l->_cfg.addr,
                 l->_last_error);
        l->_told_down = true;
    }
    if (was_up) {
        l->_told_down = true;
        if (!l->_stopping)
            log_warn("redis %s: link down (%s)", l->_name, l->_last_error);
        if (l->_hooks.on_down)
            l->_hooks.on_down(l, l->_ctx);
    }
    schedule_reconnect(l);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    redis_link_t *l = ac->data;
    if (l->_setup_failed)
        l->_setup_failed = false; /* keep AUTH's or SELECT's error as the reason */
    else if (status != REDIS_OK && ac->errstr[0])
        set_error(l, ac->errstr);
    else if (!l->_stopping)
        set_error(l, "connection closed");
    l->_ac = NULL; /* hiredis frees it after this callback */
    l->_connected = false;
    went_down(l);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    redis_link_t *l = ac->data;
    if (status != REDIS_OK) {
        set_error(l, ac->errstr);
        l->_ac = NULL; /* freed by hiredis; no disconnect callback follows */
        went_down(l);
        return;
    }
    l->_connected = true;
    if (l->_port) /* TCP only: on a Unix socket it fails and marks the context as broken */
        redisEnableKeepAlive((redisContext *)&ac->c); /* a peer that vanished from the network */
    bool auth = l->_cfg.password && l->_cfg.password[0];
    if (auth) {
        const char *argv[] = {"AUTH", l->_cfg.password};
        send_command(l, on_setup_reply, "AUTH", 2, argv, NULL);
    }
    if (l->_cfg.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", l->_cfg.db);
        const char *argv[] = {"SELECT", db};
        send_command(l, on_setup_reply, "SELECT", 2, argv, NULL);
    }
    if (!auth && !l->_cfg.db)
        setup_done(l);
}

/* Drops the connection now (waiting commands get NULL) and plans the reconnect. Not from
 * within a hiredis callback. */
static void drop(redis_link_t *l, const char *why) {
    if (!l->_ac)
        return;
    add_count(&l->_timeouts, 1);
    set_error(l, why);
    redisAsyncContext *ac = l->_ac;
    if (l->_connected) {
        redisAsyncFree(ac); /* runs on_disconnect, which plans the reconnect */
        return;
    }
    l->_ac = NULL;
    redisAsyncFree(ac); /* not connected yet: no disconnect callback */
    went_down(l);
}

/* The watchdog while connecting or up: a connect (or AUTH/SELECT) that takes longer than the
 * request timeout, or a command waiting longer, means the link is stuck: start over. */
static void on_watchdog(uv_timer_t *t) {
    redis_link_t *l = t->data;
    if (!l->_ac)
        return;
    uint64_t now = clock_mono_ms();
    bool up = redis_link_up(l);
    if (!up && now - l->_connect_started_ms > l->_cfg.timeout_ms)
        drop(l, "connect timed out");
    else if (up && l->_head && now - l->_head->sent_ms > l->_cfg.timeout_ms)
        drop(l, "no answer in time");
}

static void connect_now(redis_link_t *l) {
    if (l->_stopping)
        return;
    redisAsyncContext *ac =
        l->_port ? redisAsyncConnect(l->_host, l->_port) : redisAsyncConnectUnix(l->_host);
    if (!ac || ac->err) {
        set_error(l, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        went_down(l);
        return;
    }
    ac->data = l;
    if (redis_uv_attach(ac, l->_loop) != 0) {
        set_error(l, "cannot attach to the loop");
        redisAsyncFree(ac);
        went_down(l);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    l->_ac = ac;
    l->_connect_started_ms = clock_mono_ms();
    set_state(l, REDIS_LINK_CONNECTING);
    uv_timer_stop(&l->_timer);
    uv_timer_start(&l->_timer, on_watchdog, WATCHDOG_MS, WATCHDOG_MS);
}

int redis_link_init(redis_link_t *l, uv_loop_t *loop, const redis_link_config_t *cfg,
                    const char *name, const redis_link_hooks_t *hooks, void *ctx) {
    memset(l, 0, sizeof *l);
    l->_loop = loop;
    l->_cfg = *cfg;
    l->_hooks = *hooks;
    l->_ctx = ctx;
    snprintf(l->_name, sizeof l->_name, "%s", name);
    pthread_mutex_init(&l->_err_lock, NULL);
    if (strncmp(cfg->addr, "unix:", 5) == 0) {
        snprintf(l->_host, sizeof l->_host, "%s", cfg->addr + 5);
    } else {
        const char *colon = strrchr(cfg->addr, ':');
        if (!colon || (size_t)(colon - cfg->addr) >= sizeof l->_host)
            return -EINVAL;
        memcpy(l->_host, cfg->addr, (size_t)(colon - cfg->addr));
        l->_port = atoi(colon + 1);
    }
    l->_backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(loop, &l->_timer);
    l->_timer.data = l;
    return 0;
}

void redis_link_start(redis_link_t *l) {
    connect_now(l);
}

void redis_link_reset(redis_link_t *l, const char *why) {
    drop(l, why);
}

void redis_link_stop(redis_link_t *l) {
    l->_stopping = true;
    if (l->_ac) {
        redisAsyncContext *ac = l->_ac;
        redisAsyncFree(ac); /* waiting commands get NULL now */
        l->_ac = NULL;
    }
    set_state(l, REDIS_LINK_DOWN);
    uv_close((uv_handle_t *)&l->_timer, NULL);
}

void redis_link_stats(redis_link_t *l, redis_link_stats_t *out) {
    out->up = redis_link_up(l);
    out->connects = atomic_load(&l->_reconnects);
    out->refused = atomic_load(&l->_refused);
    out->timeouts = atomic_load(&l->_timeouts);
    out->rtt_us = atomic_load(&l->_rtt_us);
    out->pending = atomic_load(&l->_pending);
}

void redis_link_state_json(redis_link_t *l, buf_t *out) {
    static const char *const names[] = {"down", "connecting", "up"};
    char err[sizeof l->_last_error];
    pthread_mutex_lock(&l->_err_lock);
    memcpy(err, l->_last_error, sizeof err);
    pthread_mutex_unlock(&l->_err_lock);
    int state = atomic_load_explicit(&l->_state, memory_order_relaxed);
    buf_printf(out,
               "{\"state\":\"%s\",\"since\":%llu,\"connects\":%llu,\"lastError\":", names[state],
               (unsigned long long)atomic_load(&l->_since_ms),
               (unsigned long long)atomic_load(&l->_reconnects));
    im_json_escape(out, err, strlen(err));
    buf_printf(out, ",\"pending\":%u,\"rttUs\":%llu,\"refused\":%llu,\"timeouts\":%llu}",
               atomic_load(&l->_pending), (unsigned long long)atomic_load(&l->_rtt_us),
               (unsigned long long)atomic_load(&l->_refused),
               (unsigned long long)atomic_load(&l->_timeouts));
}
