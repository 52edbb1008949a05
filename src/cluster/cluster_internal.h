/* What the cluster's modules (cluster.c, presence.c, nodes.c, bus.c, route_cluster.c) share: the
 * one cluster context, owned by the cluster thread. Nothing outside src/cluster/ includes it. */
#ifndef IMGATE_CLUSTER_INTERNAL_H
#define IMGATE_CLUSTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/redis_args.h"
#include "cluster/redis_link.h"
#include "config.h"
#include "util/mailbox.h"

#define CLUSTER_BATCH_OPS   500   /* presence changes per script call: ~30 KB, ~1 ms of Redis */
#define CLUSTER_REAP_BATCH  500   /* users of a dead node removed per script call */
#define CLUSTER_RECORD_TTL  86400 /* the seed's SETEX of its presence record, in seconds */
#define CLUSTER_MAX_REAPING 16    /* dead nodes cleaned at once; more wait for the next tick */

#define COUNTERS(X)                                                                                \
    X(busIn)                                                                                       \
    X(busMalformed)                                                                                \
    X(deliveriesDropped)                                                                           \
    X(roomPushes)                                                                                  \
    X(presenceChanges)                                                                             \
    X(presenceCalls)                                                                               \
    X(presenceLost)                                                                                \
    X(syncs)                                                                                       \
    X(refreshes)                                                                                   \
    X(syncStale)                                                                                   \
    X(nodesReaped)                                                                                 \
    X(usersReaped)                                                                                 \
    X(requests)                                                                                    \
    X(requestsUnavailable)                                                                         \
    X(scriptErrors)

typedef struct {
#define X(name) _Atomic uint64_t name;
    COUNTERS(X)
#undef X
} cluster_counters_t;

#define CLUSTER_COUNT(name)                                                                        \
    atomic_fetch_add_explicit(&g_cluster.counters.name, 1, memory_order_relaxed)
#define CLUSTER_ADD(name, n)                                                                       \
    atomic_fetch_add_explicit(&g_cluster.counters.name, (n), memory_order_relaxed)

typedef struct {
    const config_t *cfg;
    uv_loop_t loop;
    uv_thread_t thread;
    bool thread_started;
    mailbox_t mb; /* presence events, snapshots, requests, control */
    redis_link_t cmd, sub;
    uv_timer_t tick;  /* node heartbeat, reaper, refresh: every nodeTimeout/6 */
    uv_check_t flush; /* once per loop turn: send the presence batch */
    char node_id[CONFIG_STR];
    char acc_ip[64];      /* the seed record's accIp */
    char acc_ip_json[80]; /* the same as a JSON string */
    char seed_field[96];  /* acc:hash:servers field "<accIp>:<rpcPort>" */
    uint64_t started;     /* unix seconds */
    /* presence (presence.c) */
    redis_args_t batch;
    int batch_ops;
    bool batch_syncing; /* the ops in batch were queued while syncing */
    bool syncing;       /* a re-announce is under way (snapshot asked, last part not seen) */
    bool sync_open;     /* changes also mark the sync set: until sync_done is sent */
    bool need_sync;     /* changes were lost (Redis down, a call failed): re-announce */
    uint64_t last_sync_ms;
    bool refreshing; /* a refresh's snapshot is arriving */
    uint64_t last_refresh_ms;
    /* nodes (nodes.c) */
    bool registered;       /* registered since the link came up */
    uint64_t beat_seen_ms; /* when our own heartbeat last came back on the subscriptions link */
    char reaping[CLUSTER_MAX_REAPING][CONFIG_STR]; /* dead nodes being cleaned */
    bool reaping_used[CLUSTER_MAX_REAPING];
    /* leaving (SIGTERM) */
    _Atomic bool leaving;
    pthread_mutex_t leave_lock;
    pthread_cond_t leave_cond;
    bool left;
    cluster_counters_t counters;
} cluster_t;

extern cluster_t g_cluster;

struct route_req;

/* Both links are up: the node can send and receive through Redis. Any thread. */
bool cluster_usable(void);

/* presence.c: registry subscribers (mailbox_fn) and the cluster loop's side of presence. */
void presence_on_event(void *ctx, void *ev);
void presence_on_snapshot(void *ctx, void *part);
void presence_flush(void);
/* Answers r (route_complete) once every presence change queued so far is applied in Redis: at
 * once if none is on its way. */
void presence_barrier(struct route_req *r);
void presence_start_sync(void); /* asks the registry for a snapshot to re-announce */
void presence_link_down(void);
void presence_tick(uint64_t now_ms);

/* nodes.c: this node's registration and the cleaning of dead nodes. */
void nodes_link_up(void);
void nodes_tick(void);
void nodes_leave(void); /* withdraws this node's users; signals leave_cond when done */

/* bus.c: messages on the channels. */
void bus_subscribe(void);
void bus_on_message(redisAsyncContext *ac, void *reply, void *priv);

/* Loads every script on the command link (on connect, and after a NOSCRIPT error). */
void cluster_load_scripts(void);

/* Counts a script's error reply; a NOSCRIPT one reloads the scripts. */
void cluster_script_error(const redisReply *r);

/* EVALSHA of script id with numkeys keys first in args (the caller adds everything after
 * "EVALSHA sha numkeys"): appends those two for it. */
void cluster_args_evalsha(redis_args_t *a, int script, int numkeys);

#endif
