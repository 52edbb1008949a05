/* The node registry: this node's registration (imgate:nodes, its alive key, the seed's
 * acc:hash:servers), refreshed every nodeTimeout/6 with an alive key that lives nodeTimeout/2;
 * finding nodes whose alive key is gone and removing their users in bounded batches; and, on
 * SIGTERM, withdrawing this node's own users at once. A node killed with -9 is thus out of the
 * cluster's presence within nodeTimeout/2 + nodeTimeout/6 plus the clean-up. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster_internal.h"
#include "cluster/scripts.h"
#include "im/protocol.h"
#include "util/log.h"

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
               "\"started\":%llu,\"heartbeat\":%llu}",
               g_cluster.acc_ip_json, cfg->http_port, cfg->ws_port, cfg->rpc_port, (int)getpid(),
               (unsigned long long)g_cluster.started, now);
    redis_args_add(&a, json.data, json.len);
    buf_free(&json);
    redis_args_add_str(&a, g_cluster.seed_field);
    redis_args_send(&a, &g_cluster.cmd, on_register, NULL);
    redis_args_free(&a);
}

/* ---- reaping dead nodes ---- */

static void reap_next(const char *node);

/* The reap script's {left, removed}; counts the removed users. Returns 0 or -1. */
static int reap_reply(const redisReply *r, long long *left) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    *left = r->element[0]->integer;
    CLUSTER_ADD(usersReaped, (uint64_t)r->element[1]->integer);
    return 0;
}

static void reaping_done(const char *node) {
    for (int i = 0; i < g_cluster.reaping_count; i++) {
        if (strcmp(g_cluster.reaping[i], node) == 0) {
            g_cluster.reaping_count--;
            memmove(g_cluster.reaping[i], g_cluster.reaping[g_cluster.reaping_count],
                    sizeof g_cluster.reaping[i]);
            return;
        }
    }
}

static void on_reap(redis_link_t *l, redisReply *r, void *priv) {
    const char *node = priv; /* points into g_cluster.reaping */
    char id[CONFIG_STR];
    snprintf(id, sizeof id, "%s", node);
    long long left;
    if (reap_reply(r, &left) != 0) {
        if (r) {
            cluster_script_error(r);
            log_warn("redis: reap script failed: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
        }
        reaping_done(id);
        return;
    }
    if (left < 0) { /* it is alive after all */
        reaping_done(id);
        return;
    }
    if (left > 0) {
        reap_next(node);
        return;
    }
    CLUSTER_COUNT(nodesReaped);
    log_info("cluster: node %s stopped refreshing its registration; its users are offline", id);
    reaping_done(id);
}

static void reap_next(const char *node) {
    redis_args_t a = {0};
    cluster_args_evalsha(&a, SCRIPT_REAP, 0);
    redis_args_add_str(&a, node);
    redis_args_addf(&a, "%llu", (unsigned long long)time(NULL));
    redis_args_addf(&a, "%d", CLUSTER_RECORD_TTL);
    redis_args_addf(&a, "%d", CLUSTER_REAP_BATCH);
    redis_args_add_str(&a, "dead");
    if (redis_args_send(&a, &g_cluster.cmd, on_reap, (void *)node) != 0)
        reaping_done(node);
    redis_args_free(&a);
}

static void on_find_dead(redis_link_t *l, redisReply *r, void *priv) {
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len >= CONFIG_STR ||
            strcmp(e->str, g_cluster.node_id) == 0)
            continue;
        bool busy = false;
        for (int k = 0; k < g_cluster.reaping_count; k++)
            busy |= strcmp(g_cluster.reaping[k], e->str) == 0;
        if (busy || g_cluster.reaping_count == CLUSTER_MAX_REAPING)
            continue;
        char *slot = g_cluster.reaping[g_cluster.reaping_count++];
        memcpy(slot, e->str, e->len + 1);
        reap_next(slot);
    }
}

void nodes_link_up(void) {
    g_cluster.registered = false;
    register_node();
}

void nodes_tick(void) {
    if (!redis_link_up(&g_cluster.cmd) || atomic_load(&g_cluster.leaving))
        return; /* a node that left stays out of the registry */
    register_node();
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
    redis_args_t a = {0};
    cluster_args_evalsha(&a, SCRIPT_REAP, 0);
    redis_args_add_str(&a, g_cluster.node_id);
    redis_args_addf(&a, "%llu", (unsigned long long)time(NULL));
    redis_args_addf(&a, "%d", CLUSTER_RECORD_TTL);
    redis_args_addf(&a, "%d", CLUSTER_REAP_BATCH);
    redis_args_add_str(&a, "self");
    int rc = redis_args_send(&a, &g_cluster.cmd, on_leave, NULL);
    redis_args_free(&a);
    if (rc != 0)
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
