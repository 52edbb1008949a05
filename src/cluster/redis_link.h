/* One connection to Redis (hiredis async, on a libuv loop) that keeps itself up: it reconnects
 * with exponential backoff and jitter, authenticates and selects the database first, bounds the
 * commands waiting for an answer (cluster.maxPending), and resets itself when the oldest of them
 * has waited longer than cluster.requestTimeout, so that nothing waits on Redis for long. Every
 * command gets exactly one answer: the reply, or NULL when the link went down first.
 * Only the loop's thread calls it; the counters can be read from any thread. */
#ifndef IMGATE_CLUSTER_REDIS_LINK_H
#define IMGATE_CLUSTER_REDIS_LINK_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "util/buf.h"

/* CONNECTING lasts until AUTH and SELECT are answered: only then can commands be sent. */
typedef enum { REDIS_LINK_DOWN = 0, REDIS_LINK_CONNECTING, REDIS_LINK_UP } redis_link_state_t;

typedef struct redis_link redis_link_t;

typedef struct {
    /* Connected: AUTH and SELECT are queued, so commands sent from here on run after them. */
    void (*on_up)(redis_link_t *l, void *ctx);
    /* Lost, after every waiting command got its NULL answer. Reconnecting is already planned. */
    void (*on_down)(redis_link_t *l, void *ctx);
} redis_link_hooks_t;

/* A command's answer; reply is NULL if the link went down before it came. */
typedef void (*redis_reply_fn)(redis_link_t *l, redisReply *reply, void *priv);

typedef struct {
    const char *addr; /* "host:port" or "unix:/path" */
    const char *password;
    int db;
    uint32_t max_pending;
    uint32_t timeout_ms;
} redis_link_config_t;

struct redis_pending;

struct redis_link {
    uv_loop_t *_loop;
    redisAsyncContext *_ac;
    redis_link_config_t _cfg;
    char _host[256];
    int _port; /* 0 = Unix socket at _host */
    char _name[16];
    redis_link_hooks_t _hooks;
    void *_ctx;
    uv_timer_t _timer; /* reconnect backoff; while up, the watchdog */
    bool _stopping;
    bool _told_down;    /* this outage was logged */
    bool _connected;    /* hiredis has connected _ac (it will call on_disconnect) */
    bool _setup_failed; /* AUTH or SELECT was refused: its error is the reason */
    uint32_t _backoff_ms;
    uint64_t _connect_started_ms;
    struct redis_pending *_head, *_tail; /* commands waiting, oldest first */
    size_t _pending_bytes;               /* their size */
    /* counters for /system/state */
    _Atomic int _state;
    _Atomic uint32_t _pending;
    _Atomic uint64_t _reconnects, _since_ms, _rtt_us, _refused, _timeouts;
    pthread_mutex_t _err_lock;
    char _last_error[128];
};

/* Prepares a link on loop (before other threads can look at it: redis_link_up and the counters
 * are read from any thread). name is for logs ("commands", "subscriptions"). Returns 0 or
 * -EINVAL (bad address). */
int redis_link_init(redis_link_t *l, uv_loop_t *loop, const redis_link_config_t *cfg,
                    const char *name, const redis_link_hooks_t *hooks, void *ctx);

/* Starts connecting (the loop's thread), and keeps reconnecting until redis_link_stop. */
void redis_link_start(redis_link_t *l);

/* Disconnects for good (waiting commands get NULL) and closes the timer; the loop can end. */
void redis_link_stop(redis_link_t *l);

/* Sends a command; fn(l, reply, priv) runs once. Returns 0, -ENOTCONN (not up: fn will not
 * run) or -EAGAIN (cluster.maxPending commands already wait: fn will not run). */
int redis_link_command(redis_link_t *l, redis_reply_fn fn, void *priv, int argc, const char **argv,
                       const size_t *lens);

/* SUBSCRIBE channels on this link: fn(ac, reply, priv) is hiredis' own callback, run for the
 * confirmation and every message, and with NULL when the link goes down. Not counted. */
int redis_link_subscribe(redis_link_t *l, redisCallbackFn *fn, void *priv, int argc,
                         const char **argv, const size_t *lens);

bool redis_link_up(const redis_link_t *l);

/* Drops the connection (waiting commands get NULL) and reconnects: for a link that looks alive
 * but carries nothing (no heartbeat came through). why goes to lastError. Not from within a
 * hiredis callback. */
void redis_link_reset(redis_link_t *l, const char *why);

/* A link's numbers, for /metrics. Any thread. */
typedef struct {
    uint64_t up; /* 1 while connected */
    uint64_t connects, refused, timeouts, rtt_us, pending;
} redis_link_stats_t;
void redis_link_stats(redis_link_t *l, redis_link_stats_t *out);

/* Appends {"state":…,"since":…,"reconnects":…,"lastError":…,"pending":…,"rttUs":…,…}. Any
 * thread. */
void redis_link_state_json(redis_link_t *l, buf_t *out);

#endif
