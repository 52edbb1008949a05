#include "cluster/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster_internal.h"
#include "cluster/route_cluster.h"
#include "cluster/scripts.h"
#include "im/protocol.h"
#include "im/registry.h"
#include "im/route.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/prom.h"

cluster_t g_cluster;
static bool g_enabled;

bool cluster_enabled(void) {
    return g_enabled;
}

bool cluster_usable(void) {
    return g_enabled && redis_link_up(&g_cluster.cmd) && redis_link_up(&g_cluster.sub);
}

void cluster_args_evalsha(redis_args_t *a, int script, int numkeys) {
    redis_args_add_str(a, "EVALSHA");
    redis_args_add_str(a, script_sha((script_id_t)script));
    redis_args_addf(a, "%d", numkeys);
}

/* ---- identity ---- */

/* The seed's accIp: the address we listen on if it is a specific one, else the first IPv4
 * address of an interface that is up and not loopback, else 127.0.0.1. */
static void find_acc_ip(const config_t *cfg, char *out, size_t cap) {
    if (strcmp(cfg->bind_address, "0.0.0.0") != 0 && strcmp(cfg->bind_address, "::") != 0) {
        snprintf(out, cap, "%s", cfg->bind_address);
        return;
    }
    snprintf(out, cap, "127.0.0.1");
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0)
        return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
            (i->ifa_flags & IFF_LOOPBACK))
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, (socklen_t)cap);
        break;
    }
    freeifaddrs(ifs);
}

void cluster_node_id(const config_t *cfg, char *out, size_t cap) {
    if (cfg->cluster_node_id[0]) {
        snprintf(out, cap, "%s", cfg->cluster_node_id);
        return;
    }
    char host[64] = "imgate";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (*p <= ' ' || *p > '~')
            *p = '-';
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (uint32_t)time(NULL) ^ (uint32_t)getpid() * 2654435761u;
    snprintf(out, cap, "%.40s:%d-%08x", host, cfg->http_port, r);
}

/* ---- the links ---- */

static void on_script_loaded(redis_link_t *l, redisReply *r, void *priv) {
    if (r && r->type == REDIS_REPLY_ERROR) {
        CLUSTER_COUNT(scriptErrors);
        log_error("redis: cannot load script %s: %s", (const char *)priv, r->str);
    }
}

void cluster_load_scripts(void) {
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", script_source((script_id_t)i)};
        redis_link_command(&g_cluster.cmd, on_script_loaded, (void *)script_name((script_id_t)i), 3,
                           argv, NULL);
    }
}

void cluster_script_error(const redisReply *r) {
    CLUSTER_COUNT(scriptErrors);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        log_warn("redis: the scripts are gone (SCRIPT FLUSH?); loading them again");
        cluster_load_scripts();
    }
}

static void cmd_up(redis_link_t *l, void *ctx) {
    /* Scripts first: every EVALSHA after them on this connection finds them. */
    cluster_load_scripts();
    nodes_link_up();
    g_cluster.need_sync = true;
    presence_tick(clock_mono_ms());
}

static void cmd_down(redis_link_t *l, void *ctx) {
    presence_link_down();
}

static void sub_up(redis_link_t *l, void *ctx) {
    g_cluster.beat_seen_ms = clock_mono_ms();
    bus_subscribe();
    presence_tick(clock_mono_ms());
}

static void sub_down(redis_link_t *l, void *ctx) {}

/* nodeTimeout/6 (see nodes.c); at least 200 ms, so that a tiny nodeTimeout can't make the
 * registration and the dead-node search a busy loop. */
static uint64_t tick_ms(const config_t *cfg) {
    uint64_t t = cfg->cluster_node_timeout * 1000u / 6;
    return t < 200 ? 200 : t;
}

static const redis_link_hooks_t cmd_hooks = {cmd_up, cmd_down};
static const redis_link_hooks_t sub_hooks = {sub_up, sub_down};

/* Every nodeTimeout/6: registration, heartbeat, dead nodes, re-announce; and the check that
 * the subscriptions link still carries: three heartbeats (at least the request timeout) without
 * one coming back mean it is dead though its socket looks fine. */
static void on_tick(uv_timer_t *t) {
    uint64_t now = clock_mono_ms();
    uint64_t quiet = 3 * tick_ms(g_cluster.cfg);
    if (quiet < g_cluster.cfg->cluster_request_timeout)
        quiet = g_cluster.cfg->cluster_request_timeout;
    if (redis_link_up(&g_cluster.sub) && redis_link_up(&g_cluster.cmd) &&
        now - g_cluster.beat_seen_ms > quiet) {
        log_warn("redis subscriptions: our heartbeats stopped coming back; reconnecting");
        redis_link_reset(&g_cluster.sub, "no heartbeat received");
        g_cluster.beat_seen_ms = now;
    }
    nodes_tick();
    presence_tick(now);
}

static void on_flush(uv_check_t *h) {
    presence_flush();
}

/* ---- the thread ---- */

static void cluster_main(void *arg) {
    pthread_setname_np(pthread_self(), "imgate-cluster");
    redis_link_start(&g_cluster.cmd);
    redis_link_start(&g_cluster.sub);
    uv_timer_start(&g_cluster.tick, on_tick, tick_ms(g_cluster.cfg), tick_ms(g_cluster.cfg));
    uv_check_start(&g_cluster.flush, on_flush);
    uv_run(&g_cluster.loop, UV_RUN_DEFAULT);
}

int cluster_init(const config_t *cfg) {
    if (!cfg->redis_addr[0]) {
        if (cfg->cluster_node_id[0])
            log_warn("cluster.nodeId is set but redis.addr is not: this node runs alone");
        return 0;
    }
    memset(&g_cluster, 0, sizeof g_cluster);
    g_cluster.cfg = cfg;
    if (scripts_init() != 0)
        return -ENOMEM;
    cluster_node_id(cfg, g_cluster.node_id, sizeof g_cluster.node_id);
    find_acc_ip(cfg, g_cluster.acc_ip, sizeof g_cluster.acc_ip);
    buf_t j = {0};
    im_json_escape(&j, g_cluster.acc_ip, strlen(g_cluster.acc_ip));
    snprintf(g_cluster.acc_ip_json, sizeof g_cluster.acc_ip_json, "%.*s", (int)j.len,
             (const char *)j.data);
    buf_free(&j);
    snprintf(g_cluster.seed_field, sizeof g_cluster.seed_field, "%s:%d", g_cluster.acc_ip,
             cfg->rpc_port);
    g_cluster.started = (uint64_t)time(NULL);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int r = uv_loop_init(&g_cluster.loop);
    if (r)
        return r;
    if ((r = mailbox_init(&g_cluster.mb, &g_cluster.loop, cfg->mailbox_capacity, NULL)) != 0)
        return r;
    redis_link_config_t lc = {
        .addr = cfg->redis_addr,
        .password = cfg->redis_password,
        .db = cfg->redis_db,
        .max_pending = cfg->cluster_max_pending,
        .timeout_ms = cfg->cluster_request_timeout,
    };
    if ((r = redis_link_init(&g_cluster.cmd, &g_cluster.loop, &lc, "commands", &cmd_hooks, NULL)) !=
            0 ||
        (r = redis_link_init(&g_cluster.sub, &g_cluster.loop, &lc, "subscriptions", &sub_hooks,
                             NULL)) != 0)
        return r;
    uv_timer_init(&g_cluster.loop, &g_cluster.tick);
    uv_check_init(&g_cluster.loop, &g_cluster.flush);
    pthread_mutex_init(&g_cluster.leave_lock, NULL);
    pthread_cond_init(&g_cluster.leave_cond, NULL);
    if ((r = registry_subscribe(&g_cluster.mb, presence_on_event, true)) != 0)
        return r;
    route_use(&route_cluster);
    g_enabled = true;
    log_info("cluster: node %s, Redis at %s", g_cluster.node_id, cfg->redis_addr);
    return 0;
}

int cluster_start(void) {
    if (!g_enabled)
        return 0;
    int r = uv_thread_create(&g_cluster.thread, cluster_main, NULL);
    if (r == 0)
        g_cluster.thread_started = true;
    return r;
}

static void leave_task(void *ctx, void *arg) {
    nodes_leave();
}

void cluster_leave(uint32_t timeout_ms) {
    if (!g_enabled || !g_cluster.thread_started)
        return;
    if (mailbox_post_always(&g_cluster.mb, leave_task, NULL) != 0)
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g_cluster.leave_lock);
    while (!g_cluster.left)
        if (pthread_cond_timedwait(&g_cluster.leave_cond, &g_cluster.leave_lock, &until) != 0)
            break;
    bool done = g_cluster.left;
    pthread_mutex_unlock(&g_cluster.leave_lock);
    if (done)
        log_info("cluster: this node's users left cluster presence");
    else
        log_warn("cluster: withdrawing presence took longer than %u ms; the rest goes when the "
                 "node's registration expires",
                 timeout_ms);
}

static void stop_task(void *ctx, void *arg) {
    redis_link_stop(&g_cluster.cmd);
    redis_link_stop(&g_cluster.sub);
    uv_close((uv_handle_t *)&g_cluster.tick, NULL);
    uv_close((uv_handle_t *)&g_cluster.flush, NULL);
    mailbox_close(&g_cluster.mb);
}

void cluster_stop(void) {
    if (!g_enabled || !g_cluster.thread_started)
        return;
    if (mailbox_post_always(&g_cluster.mb, stop_task, NULL) == 0)
        uv_thread_join(&g_cluster.thread);
    g_cluster.thread_started = false;
}

void cluster_free(void) {
    if (!g_enabled)
        return;
    if (!uv_is_closing((uv_handle_t *)&g_cluster.tick)) {
        /* never started: close what init made */
        redis_link_stop(&g_cluster.cmd);
        redis_link_stop(&g_cluster.sub);
        uv_close((uv_handle_t *)&g_cluster.tick, NULL);
        uv_close((uv_handle_t *)&g_cluster.flush, NULL);
        mailbox_close(&g_cluster.mb);
    }
    uv_run(&g_cluster.loop, UV_RUN_NOWAIT);
    mailbox_free(&g_cluster.mb); /* requests still queued answer "unavailable" */
    redis_args_free(&g_cluster.batch);
    if (uv_loop_close(&g_cluster.loop) != 0)
        log_warn("cluster: loop still had handles at exit");
    pthread_mutex_destroy(&g_cluster.leave_lock);
    pthread_cond_destroy(&g_cluster.leave_cond);
    g_enabled = false;
}

bool cluster_reachable(void) {
    return !g_enabled || cluster_usable();
}

void cluster_metrics(buf_t *out) {
    if (!g_enabled)
        return;
    redis_link_stats_t s[2];
    redis_link_stats(&g_cluster.cmd, &s[0]);
    redis_link_stats(&g_cluster.sub, &s[1]);
    static const char *const links[2] = {"link=\"commands\"", "link=\"subscriptions\""};
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } families[] = {
        {"imgate_redis_link_up", "gauge", "1 while the Redis link is connected",
         offsetof(redis_link_stats_t, up)},
        {"imgate_redis_commands_pending", "gauge", "Redis commands in flight",
         offsetof(redis_link_stats_t, pending)},
        {"imgate_redis_connects_total", "counter", "Redis connections made",
         offsetof(redis_link_stats_t, connects)},
        {"imgate_redis_refused_total", "counter",
         "commands refused (link down or cluster.maxPending reached)",
         offsetof(redis_link_stats_t, refused)},
        {"imgate_redis_timeouts_total", "counter", "commands without an answer in time",
         offsetof(redis_link_stats_t, timeouts)},
    };
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        prom_family(out, families[f].name, families[f].type, families[f].help);
        for (int i = 0; i < 2; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&s[i] + families[f].off, sizeof v);
            prom_sample(out, families[f].name, links[i], v);
        }
    }
    prom_family(out, "imgate_redis_round_trip_seconds", "gauge", "last measured Redis round trip");
    for (int i = 0; i < 2; i++)
        prom_sample_double(out, "imgate_redis_round_trip_seconds", links[i], s[i].rtt_us / 1e6);
    mailbox_stats_t mb;
    mailbox_get_stats(&g_cluster.mb, &mb);
    prom_family(out, "imgate_cluster_mailbox_depth", "gauge", "tasks waiting for the cluster loop");
    prom_sample(out, "imgate_cluster_mailbox_depth", "", mb.depth);
    prom_family(out, "imgate_cluster_mailbox_dropped_total", "counter",
                "tasks the cluster loop's full mailbox refused");
    prom_sample(out, "imgate_cluster_mailbox_dropped_total", "", mb.dropped);
    char name[96];
#define X(field)                                                                                   \
    prom_name(name, sizeof name, "imgate_cluster_", #field, "_total");                             \
    prom_family(out, name, "counter", "cluster counter " #field " of /system/state");              \
    prom_sample(out, name, "", atomic_load(&g_cluster.counters.field));
    COUNTERS(X)
#undef X
}

void cluster_state_json(buf_t *out) {
    if (!g_enabled) {
        buf_append_str(out, "null");
        return;
    }
    buf_append_str(out, "{\"nodeId\":");
    im_json_escape(out, g_cluster.node_id, strlen(g_cluster.node_id));
    buf_printf(out, ",\"usable\":%s,\"commands\":", cluster_usable() ? "true" : "false");
    redis_link_state_json(&g_cluster.cmd, out);
    buf_append_str(out, ",\"subscriptions\":");
    redis_link_state_json(&g_cluster.sub, out);
    mailbox_stats_t mb;
    mailbox_get_stats(&g_cluster.mb, &mb);
    buf_printf(out,
               ",\"mailbox\":{\"posted\":%llu,\"dropped\":%llu,\"depth\":%u,\"highWater\":%u},"
               "\"counters\":{",
               (unsigned long long)mb.posted, (unsigned long long)mb.dropped, mb.depth,
               mb.high_water);
    int first = 1;
#define X(name)                                                                                    \
    buf_printf(out, "%s\"" #name "\":%llu", first ? "" : ",",                                      \
               (unsigned long long)atomic_load(&g_cluster.counters.name));                         \
    first = 0;
    COUNTERS(X)
#undef X
    buf_append_str(out, "}}");
}
