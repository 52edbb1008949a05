/* Cluster presence: this node's users in Redis. The registry's presence events arrive in the
 * cluster loop's mailbox, in order per user; each becomes one change (U: came up here, D: went
 * down here) in a batch that is sent as one presence script call at the end of the loop turn
 * (or when it reaches CLUSTER_BATCH_OPS): a login storm of thousands of users is a handful of
 * pipelined calls, and Redis applies them in the order they happened.
 *
 * When changes could not be sent (Redis down, a call failed) nothing is queued without bound:
 * the node re-announces instead. A re-announce ("sync") asks the registry for a snapshot, whose
 * parts arrive in the same mailbox exactly between the events before and after them; every
 * user in it becomes a P change (present), collected in the node's sync set too; at the end, the
 * users the node's set still has but the sync set has not went down meanwhile and are taken
 * down. The same sync every cluster.presenceSync seconds repairs whatever else drifted.
 *
 * A refresh (every cluster.presenceRefresh seconds) is lighter: from a snapshot too, each user
 * becomes an R change, which only gives an online seed record a fresh heartbeatTime (GET, SET)
 * and repairs a missing one; no set is touched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/cluster_internal.h"
#include "cluster/scripts.h"
#include "im/protocol.h"
#include "im/registry.h"
#include "im/route.h"
#include "util/clock.h"
#include "util/log.h"

/* A presence call on its way, and the requests waiting for it (presence_barrier). Redis answers
 * in order, so the last call's answer means every earlier one was applied too. */
typedef struct {
    route_req_t **waiting;
    uint32_t count, cap;
    bool syncing;       /* part of a re-announce */
    bool finishes_sync; /* the last call of a re-announce: sync_done follows its answer */
} presence_call_t;

static presence_call_t *g_last_call; /* the newest call not answered yet, or NULL */
static bool g_sync_failed;           /* a call of the current re-announce failed */

static void send_sync_done(void);

/* A presence call was answered (ok: applied): answers the barriers waiting for it, and ends a
 * re-announce whose calls all went through; one that did not is started again instead, so
 * that sync_done never takes down users whose P change was lost. */
static void call_done(presence_call_t *call, bool ok) {
    if (g_last_call == call)
        g_last_call = NULL;
    if (call->syncing && !ok)
        g_sync_failed = true;
    if (call->finishes_sync) {
        if (!g_sync_failed && cluster_usable()) {
            send_sync_done();
        } else {
            g_cluster.need_sync = true; /* start over; this one is not finished */
            g_cluster.sync_open = false;
        }
        g_sync_failed = false;
    }
    for (uint32_t i = 0; i < call->count; i++)
        route_complete(call->waiting[i]);
    free(call->waiting);
    free(call);
}

void presence_barrier(route_req_t *r) {
    presence_flush();
    presence_call_t *call = g_last_call;
    if (call && call->count == call->cap) {
        uint32_t cap = call->cap ? call->cap * 2 : 16;
        route_req_t **w = realloc(call->waiting, cap * sizeof *w);
        if (!w) {
            route_complete(r); /* answered a little early rather than never */
            return;
        }
        call->waiting = w;
        call->cap = cap;
    }
    if (call)
        call->waiting[call->count++] = r;
    else
        route_complete(r);
}

static void on_presence_reply(redis_link_t *l, redisReply *r, void *priv) {
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (priv)
        call_done(priv, ok);
    if (!ok) {
        if (r) {
            cluster_script_error(r);
            log_warn("redis: presence script failed: %s", r->str);
        }
        g_cluster.need_sync = true; /* these changes may be lost: re-announce */
    }
}

static void batch_begin(bool syncing) {
    redis_args_t *a = &g_cluster.batch;
    cluster_args_evalsha(a, SCRIPT_PRESENCE, 0);
    redis_args_add_str(a, g_cluster.node_id);
    redis_args_addf(a, "%llu", (unsigned long long)time(NULL));
    redis_args_addf(a, "%d", CLUSTER_RECORD_TTL);
    redis_args_add_str(a, g_cluster.acc_ip_json);
    redis_args_addf(a, "%d", g_cluster.cfg->rpc_port);
    redis_args_add_str(a, syncing ? "1" : "0");
    redis_args_add_str(a, g_cluster.cfg->room_notices ? "1" : "0");
    g_cluster.batch_syncing = syncing;
}

void presence_flush(void) {
    if (!g_cluster.batch_ops)
        return;
    CLUSTER_COUNT(presenceCalls);
    presence_call_t *call = calloc(1, sizeof *call);
    if (call)
        call->syncing = g_cluster.batch_syncing;
    if (redis_args_send(&g_cluster.batch, &g_cluster.cmd, on_presence_reply, call) != 0) {
        CLUSTER_ADD(presenceLost, (uint64_t)g_cluster.batch_ops);
        g_cluster.need_sync = true;
        free(call);
    } else if (call) {
        g_last_call = call;
    }
    g_cluster.batch_ops = 0;
}

/* Adds one change. user_json is the userId as a JSON string, as the seed's record has it. */
static void add_change(char op, uint32_t app_id, const char *user, size_t len, const char *client) {
    if (g_cluster.batch_ops && g_cluster.batch_syncing != g_cluster.sync_open)
        presence_flush(); /* a batch is sent with one syncing flag */
    if (!g_cluster.batch_ops)
        batch_begin(g_cluster.sync_open);
    redis_args_t *a = &g_cluster.batch;
    char o[2] = {op, 0};
    redis_args_add_str(a, o);
    redis_args_addf(a, "%u", app_id);
    redis_args_add(a, user, len);
    buf_t json = {0};
    im_json_escape(&json, user, len);
    redis_args_add(a, json.data, json.len);
    buf_free(&json);
    redis_args_add_str(a, client ? client : "");
    CLUSTER_COUNT(presenceChanges);
    if (++g_cluster.batch_ops == CLUSTER_BATCH_OPS)
        presence_flush();
}

void presence_on_event(void *ctx, void *arg) {
    presence_event_t *ev = arg;
    if (ev->up && atomic_load(&g_cluster.leaving)) {
        /* A login during shutdown: the node is leaving the cluster, don't announce it. */
    } else if (!cluster_usable()) {
        CLUSTER_COUNT(presenceLost);
        g_cluster.need_sync = true;
    } else {
        add_change(ev->up ? 'U' : 'D', ev->app_id, ev->user, ev->user_len, ev->client);
    }
    presence_event_unref(ev);
}

static void on_sync_done(redis_link_t *l, redisReply *r, void *priv) {
    if (r && r->type == REDIS_REPLY_INTEGER) {
        if (r->integer > 0) {
            CLUSTER_ADD(syncStale, (uint64_t)r->integer);
            log_info("cluster: %lld users that left while Redis could not be told are gone now",
                     r->integer);
        }
        return;
    }
    if (r) {
        cluster_script_error(r);
        log_warn("redis: sync script failed: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
    }
    g_cluster.need_sync = true;
}

/* Ends the re-announce in Redis; changes sent after this one need not mark the sync set, since
 * Redis runs them after it. */
static void send_sync_done(void) {
    presence_flush();
    g_cluster.sync_open = false;
    redis_args_t a = {0};
    cluster_args_evalsha(&a, SCRIPT_SYNC_DONE, 0);
    redis_args_add_str(&a, g_cluster.node_id);
    redis_args_addf(&a, "%llu", (unsigned long long)time(NULL));
    redis_args_addf(&a, "%d", CLUSTER_RECORD_TTL);
    redis_args_add_str(&a, g_cluster.cfg->room_notices ? "1" : "0");
    if (redis_args_send(&a, &g_cluster.cmd, on_sync_done, NULL) != 0)
        g_cluster.need_sync = true;
    redis_args_free(&a);
}

void presence_on_snapshot(void *ctx, void *arg) {
    registry_snapshot_t *part = arg;
    if (g_cluster.syncing && cluster_usable() && !atomic_load(&g_cluster.leaving)) {
        for (uint32_t i = 0; i < part->count; i++)
            add_change('P', part->users[i].app_id, part->users[i].user, part->users[i].user_len,
                       NULL);
        if (part->last) {
            presence_flush();
            if (g_last_call) {
                g_last_call->finishes_sync = true; /* sync_done once it and all before are in */
            } else if (!g_sync_failed) {
                send_sync_done();
            } else {
                g_cluster.need_sync = true;
                g_cluster.sync_open = false;
            }
        }
    } else if (g_cluster.syncing) {
        g_cluster.need_sync = true; /* the link went down while re-announcing */
    }
    if (part->last)
        g_cluster.syncing = false;
    free(part);
}

void presence_start_sync(void) {
    if (g_cluster.syncing || g_cluster.sync_open || !cluster_usable() ||
        atomic_load(&g_cluster.leaving))
        return;
    presence_flush(); /* what is batched goes before the sync starts */
    const char *argv[] = {"DEL", NULL};
    char key[CONFIG_STR + 32];
    snprintf(key, sizeof key, "imgate:node:%s:sync", g_cluster.node_id);
    argv[1] = key;
    if (redis_link_command(&g_cluster.cmd, on_presence_reply, NULL, 2, argv, NULL) != 0)
        return;
    g_cluster.syncing = g_cluster.sync_open = true;
    g_cluster.need_sync = false;
    g_sync_failed = false;
    g_cluster.last_sync_ms = g_cluster.last_refresh_ms = clock_mono_ms(); /* a sync refreshes too */
    CLUSTER_COUNT(syncs);
    if (registry_snapshot(&g_cluster.mb, presence_on_snapshot) != 0) {
        log_warn("cluster: cannot take a snapshot of the local users; will retry");
        g_cluster.need_sync = true;
        /* Parts already queued arrive with syncing set; the last one never comes: end here. */
        g_cluster.syncing = g_cluster.sync_open = false;
    }
}

static void presence_on_refresh(void *ctx, void *arg) {
    registry_snapshot_t *part = arg;
    if (cluster_usable() && !atomic_load(&g_cluster.leaving)) {
        for (uint32_t i = 0; i < part->count; i++)
            add_change('R', part->users[i].app_id, part->users[i].user, part->users[i].user_len,
                       NULL);
    }
    if (part->last) {
        presence_flush();
        g_cluster.refreshing = false;
    }
    free(part);
}

static void presence_start_refresh(void) {
    if (g_cluster.refreshing || g_cluster.syncing || g_cluster.sync_open || !cluster_usable() ||
        atomic_load(&g_cluster.leaving))
        return;
    g_cluster.last_refresh_ms = clock_mono_ms();
    CLUSTER_COUNT(refreshes);
    g_cluster.refreshing = true;
    if (registry_snapshot(&g_cluster.mb, presence_on_refresh) != 0) {
        log_warn("cluster: cannot take a snapshot of the local users; will retry");
        g_cluster.refreshing = false; /* parts already queued refresh their users anyway */
    }
}

void presence_link_down(void) {
    if (g_cluster.batch_ops) {
        CLUSTER_ADD(presenceLost, (uint64_t)g_cluster.batch_ops);
        redis_args_reset(&g_cluster.batch);
        g_cluster.batch_ops = 0;
    }
    g_cluster.need_sync = true;
    g_cluster.sync_open = false; /* a new one starts on reconnect */
}

void presence_tick(uint64_t now_ms) {
    /* Events the registry could not queue to us (our mailbox was full) are changes Redis never
     * heard of: re-announce. */
    static uint64_t dropped_seen;
    uint64_t dropped = registry_events_dropped();
    if (dropped != dropped_seen) {
        dropped_seen = dropped;
        g_cluster.need_sync = true;
    }
    uint64_t sync_ms = (uint64_t)g_cluster.cfg->cluster_presence_sync * 1000u;
    uint64_t refresh_ms = (uint64_t)g_cluster.cfg->cluster_presence_refresh * 1000u;
    if (g_cluster.need_sync || now_ms - g_cluster.last_sync_ms >= sync_ms)
        presence_start_sync();
    else if (now_ms - g_cluster.last_refresh_ms >= refresh_ms)
        presence_start_refresh();
}
