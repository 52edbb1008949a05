/* The cluster route (im/route.h): sends and presence questions answered through Redis.
 * Submitted on a worker, a request is answered at once when this node alone knows the answer
 * (a user logged in here is online; while Redis is down, a direct message to a user logged in
 * here is delivered here), and otherwise goes to the cluster loop, which runs one script (or
 * SMEMBERS) and hands the answer back through the asking worker's mailbox. */
#include "cluster/route_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/bus.h"
#include "cluster/cluster_internal.h"
#include "cluster/scripts.h"
#include "im/dedup.h"
#include "im/hub.h"
#include "im/registry.h"
#include "util/clock.h"

static void on_answer(redis_link_t *l, redisReply *reply, void *priv) {
    route_req_t *r = priv;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        if (reply)
            cluster_script_error(reply);
        CLUSTER_COUNT(requestsUnavailable);
        r->result = ROUTE_UNAVAILABLE;
    } else if (r->kind == ROUTE_LIST) {
        r->result = ROUTE_DELIVERED;
        buf_append_str(&r->list, "[");
        for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
            redisReply *e = reply->element[i];
            if (e->type != REDIS_REPLY_STRING)
                continue;
            if (r->count++)
                buf_append_str(&r->list, ",");
            im_json_escape(&r->list, e->str, e->len);
        }
        buf_append_str(&r->list, "]");
        if (!r->list.data)
            r->result = ROUTE_NOMEM;
    } else if (reply->type == REDIS_REPLY_INTEGER) {
        long long n = reply->integer;
        if (n < 0)
            r->result = ROUTE_DUPLICATE;
        else if (r->kind == ROUTE_SEND_ROOM)
            r->result = ROUTE_DELIVERED; /* as the seed: true even if nobody is in the room */
        else
            r->result = n > 0 ? ROUTE_DELIVERED : ROUTE_OFFLINE;
    } else {
        r->result = ROUTE_UNAVAILABLE;
    }
    route_complete(r);
}

/* Appends prefix + the user (or msgID) bytes as one key. */
static void add_key(redis_args_t *a, const char *prefix, const char *p, size_t n) {
    buf_t k = {0};
    buf_append_str(&k, prefix);
    buf_append(&k, p, n);
    redis_args_add(a, k.data, k.len);
    buf_free(&k);
}

/* The command for r. Returns 0 or -ENOMEM. */
static int build(redis_args_t *a, route_req_t *r) {
    const config_t *cfg = g_cluster.cfg;
    bool dedup = r->msg_id_len > 0;
    switch (r->kind) {
    case ROUTE_SEND_USER: {
        cluster_args_evalsha(a, SCRIPT_SEND_USER, dedup ? 2 : 1);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "imgate:user:%u_", r->app_id);
        add_key(a, prefix, r->user, r->user_len);
        if (dedup)
            add_key(a, "acc:submit:again:seq:", r->msg_id, r->msg_id_len);
        buf_t msg = {0};
        bus_encode(&msg, 'u', r->app_id, r->user, r->user_len, sbuf_bytes(r->payload),
                   r->payload->len);
        redis_args_add(a, msg.data, msg.len);
        buf_free(&msg);
        redis_args_addf(a, "%u", cfg->dedup_ttl);
        return 0;
    }
    case ROUTE_SEND_ROOM: {
        cluster_args_evalsha(a, SCRIPT_SEND_ROOM, dedup ? 1 : 0);
        if (dedup)
            add_key(a, "acc:submit:again:seq:", r->msg_id, r->msg_id_len);
        redis_args_addf(a, "imgate:room:%u", r->app_id);
        buf_t msg = {0};
        bus_encode(&msg, 'm', r->app_id, r->from, r->from_len, sbuf_bytes(r->payload),
                   r->payload->len);
        redis_args_add(a, msg.data, msg.len);
        buf_free(&msg);
        redis_args_addf(a, "%u", cfg->dedup_ttl);
        return 0;
    }
    case ROUTE_ONLINE: {
        int n = r->app_id ? 1 : cfg->app_id_count;
        cluster_args_evalsha(a, SCRIPT_ONLINE, n);
        for (int i = 0; i < n; i++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "imgate:user:%u_",
                     r->app_id ? r->app_id : cfg->app_ids[i]);
            add_key(a, prefix, r->user, r->user_len);
        }
        return 0;
    }
    case ROUTE_LIST:
        redis_args_add_str(a, "SMEMBERS");
        redis_args_addf(a, "imgate:room:%u", r->app_id);
        return 0;
    default:
        return -1;
    }
}

/* On the cluster loop. */
static void run_request(void *ctx, void *arg) {
    route_req_t *r = arg;
    if (r->kind == ROUTE_ANNOUNCE) {
        r->result = ROUTE_DELIVERED;
        presence_barrier(r);
        return;
    }
    redis_args_t a = {0};
    CLUSTER_COUNT(requests);
    if (!cluster_usable() || build(&a, r) != 0 ||
        redis_args_send(&a, &g_cluster.cmd, on_answer, r) != 0) {
        CLUSTER_COUNT(requestsUnavailable);
        r->result = cluster_usable() ? ROUTE_NOMEM : ROUTE_UNAVAILABLE;
        route_complete(r);
    }
    redis_args_free(&a);
}

static void cluster_submit(route_req_t *r) {
    worker_t *w = net_current_worker();
    if (r->kind == ROUTE_ONLINE && registry_online(r->app_id, r->user, r->user_len)) {
        r->result = ROUTE_DELIVERED; /* logged in here: no need to ask */
        r->done(r, w);
        return;
    }
    if (!cluster_usable()) {
        if (r->kind == ROUTE_ANNOUNCE) {
            r->result = ROUTE_DELIVERED; /* logged in here; announced when Redis is back */
            r->done(r, w);
            return;
        }
        /* Redis is down: a direct message still reaches this node's connections of the user;
         * nobody here means we can't tell, not "offline". */
        r->result = r->kind == ROUTE_SEND_USER ? route_deliver_here(r) : ROUTE_UNAVAILABLE;
        if (r->result == ROUTE_OFFLINE)
            r->result = ROUTE_UNAVAILABLE;
        if (r->result == ROUTE_UNAVAILABLE)
            CLUSTER_COUNT(requestsUnavailable);
        r->done(r, w);
        return;
    }
    if (mailbox_post(&g_cluster.mb, run_request, r) != 0) {
        r->result = ROUTE_NOMEM; /* the cluster loop is swamped: 503, try again */
        r->done(r, w);
    }
}

const route_ops_t route_cluster = {.submit = cluster_submit};
