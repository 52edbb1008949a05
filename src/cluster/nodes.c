/* The node registry: this node's registration (imgate:nodes, its alive key, the seed's
 * acc:hash:servers), refreshed every nodeTimeout/6 with an alive key that lives nodeTimeout/2;
 * finding nodes whose alive key is gone and removing their users in bounded batches; and, on
 * SIGTERM, withdrawing this node's own users at once. A node killed with -9 is thus out of the
 * cluster's presence within nodeTimeout/2 + nodeTimeout/6 plus the clean-up. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster_internal.h"
#include "cluster/scripts.h"
#include "im/protocol.h"
#include "util/log.h"

/* Half the node timeout (see the file's comment); at least 500 ms, above a loaded loop's
 * refresh jitter even with nodeTimeout 1. */
static uint32_t alive_ttl_ms(void) {
    uint32_t ms = g_cluster.cfg->cluster_node_timeout * 1000u / 2;
    return ms < 500 ? 500 : ms;
}

/* ---- registration ---- */

static void on_register(redis_link_t *l, redisReply *r, void *priv) {
    if (!r)
        return;
    if (r->type != REDIS_REPLY_INTEGER) {
        cluster_script_error(r);
        log_warn("redis: register script failed: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
        return;
    }
    if (r->integer == 0 && g_cluster.registered) {
        /* Our alive key had expired: another node may have removed our users meanwhile. */
        log_warn("cluster: this node's registration had expired; re-announcing its users");
        g_cluster.need_sync = true;
    }
    g_cluster.registered = true;
}

static void register_node(void) {
    const config_t *cfg = g_cluster.cfg;
    redis_args_t a = {0};
    char alive[CONFIG_STR + 32];
    snprintf(alive, sizeof alive, "imgate:node:%s:alive", g_cluster.node_id);
    unsigned long long now = (unsigned long long)time(NULL);
    cluster_args_evalsha(&a, SCRIPT_REGISTER, 1);
    redis_args_add_str(&a, alive);
    redis_args_addf(&a, "%llu", now);
    redis_args_addf(&a, "%u", alive_ttl_ms());
    redis_args_add_str(&a, g_cluster.node_id);
    buf_t json = {0};
    buf_append_str(&json, "{\"id\":");
    im_json_escape(&json, g_cluster.node_id, strlen(g_cluster.node_id));
    buf_printf(&json,
               ",\"ip\":%s,\"httpPort\":%d,\"webSocketPort\":%d,\"rpcPort\":%d,\"pid\":%d,"
               "\"started\":%llu,\"heartbeat\":%llu,\"seed\":",
               g_cluster.acc_ip_json, cfg->http_port, cfg->ws_port, cfg->rpc_port, (int)getpid(),
               (unsigned long long)g_cluster.started, now);
    im_json_escape(&json, g_cluster.seed_field, strlen(g_cluster.seed_field));
    buf_append_str(&json, "}");
    redis_args_add(&a, json.data, json.len);
    buf_free(&json);
    redis_args_add_str(&a, g_cluster.seed_field);
    redis_args_send(&a, &g_cluster.cmd, on_register, NULL);
    redis_args_free(&a);
}

/* ---- reaping dead nodes ---- */

/* One call of the reap script on node (mode "dead": only if its alive key is still gone;
 * "self": this node leaving). */
static int reap_call(const char *node, const char *mode, redis_reply_fn fn, void *priv) {
    redis_args_t a = {0};
    cluster_args_evalsha(&a, SCRIPT_REAP, 0);
    redis_args_add_str(&a, node);
    redis_args_addf(&a, "%llu", (unsigned long long)time(NULL));
    redis_args_addf(&a, "%d", CLUSTER_RECORD_TTL);
    redis_args_addf(&a, "%d", CLUSTER_REAP_BATCH);
    redis_args_add_str(&a, mode);
    redis_args_add_str(&a, g_cluster.cfg->room_notices ? "1" : "0");
    int rc = redis_args_send(&a, &g_cluster.cmd, fn, priv);
    redis_args_free(&a);
    return rc;
}

/* The reap script's {left, removed}; counts the removed users. Returns 0 or -1. */
static int reap_reply(const redisReply *r, long long *left) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    *left = r->element[0]->integer;
    CLUSTER_ADD(usersReaped, (uint64_t)r->element[1]->integer);
    return 0;
}

static void on_reap(redis_link_t *l, redisReply *r, void *priv);

/* Asks for the next batch of slot's node; frees the slot when the call can't be sent. */
static void reap_next(int slot) {
    if (reap_call(g_cluster.reaping[slot], "dead", on_reap, (void *)(intptr_t)slot) != 0)
        g_cluster.reaping_used[slot] = false;
}

/* A batch of a dead node's users is gone: go on while some are left. The slot (a fixed index,
 * never moved while a call for it is on its way) is freed when the node is done, when it turned
 * out alive, or on an error (the next find_dead starts over). */
static void on_reap(redis_link_t *l, redisReply *r, void *priv) {
    int slot = (int)(intptr_t)priv;
    const char *node = g_cluster.reaping[slot];
    long long left;
    if (reap_reply(r, &left) != 0) {
        if (r) {
            cluster_script_error(r);
            log_warn("redis: reap script failed: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
        }
        g_cluster.reaping_used[slot] = false;
        return;
    }
    if (left > 0) {
        reap_next(slot);
        return;
    }
    if (left == 0) {
        CLUSTER_COUNT(nodesReaped);
        log_info("cluster: node %s stopped refreshing its registration; its users are offline",
                 node);
    }
    g_cluster.reaping_used[slot] = false; /* done, or alive after all (left < 0) */
}

/* The ids of dead nodes: start cleaning each that is not being cleaned already. */
static void on_find_dead(redis_link_t *l, redisReply *r, void *priv) {
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len >= CONFIG_STR ||
            strcmp(e->str, g_cluster.node_id) == 0)
            continue;
        int free_slot = -1;
        bool busy = false;
        for (int k = 0; k < CLUSTER_MAX_REAPING; k++) {
            if (!g_cluster.reaping_used[k])
                free_slot = free_slot < 0 ? k : free_slot;
            else if (strcmp(g_cluster.reaping[k], e->str) == 0)
                busy = true;
        }
        if (busy || free_slot < 0)
            continue; /* being cleaned, or the next find_dead takes it */
        memcpy(g_cluster.reaping[free_slot], e->str, e->len + 1);
        g_cluster.reaping_used[free_slot] = true;
        reap_next(free_slot);
    }
}

static void on_beat_sent(redis_link_t *l, redisReply *r, void *priv) {}

void nodes_link_up(void) {
    g_cluster.registered = false;
    register_node();
}

void nodes_tick(void) {
    if (!redis_link_up(&g_cluster.cmd) || atomic_load(&g_cluster.leaving))
        return; /* a node that left stays out of the registry */
    register_node();
    /* A heartbeat to our own channel: if it stops coming back through the subscriptions link,
     * that link is dead though its socket looks fine (cluster.c resets it). */
    char channel[CONFIG_STR + 16];
    snprintf(channel, sizeof channel, "imgate:node:%s", g_cluster.node_id);
    const char *beat[] = {"PUBLISH", channel, "h0 0:"};
    redis_link_command(&g_cluster.cmd, on_beat_sent, NULL, 3, beat, NULL);
    redis_args_t a = {0};
    cluster_args_evalsha(&a, SCRIPT_FIND_DEAD, 0);
    redis_args_send(&a, &g_cluster.cmd, on_find_dead, NULL);
    redis_args_free(&a);
}

/* ---- leaving ---- */

static void signal_left(void) {
    pthread_mutex_lock(&g_cluster.leave_lock);
    g_cluster.left = true;
    pthread_cond_broadcast(&g_cluster.leave_cond);
    pthread_mutex_unlock(&g_cluster.leave_lock);
}

static void leave_next(void);

static void on_leave(redis_link_t *l, redisReply *r, void *priv) {
    long long left;
    bool ok = reap_reply(r, &left) == 0;
    if (ok && left > 0) {
        leave_next();
        return;
    }
    if (!ok)
        log_warn("cluster: could not withdraw this node's users; they leave when its "
                 "registration expires");
    signal_left();
}

static void leave_next(void) {
    if (reap_call(g_cluster.node_id, "self", on_leave, NULL) != 0)
        signal_left();
}

void nodes_leave(void) {
    atomic_store(&g_cluster.leaving, true);
    presence_flush(); /* downs already batched go first */
    if (!redis_link_up(&g_cluster.cmd)) {
        signal_left();
        return;
    }
    leave_next();
}
