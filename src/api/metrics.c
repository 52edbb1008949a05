#include "api/metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cluster/cluster.h"
#include "config.h"
#include "im/dedup.h"
#include "im/hub.h"
#include "im/registry.h"
#include "net/ip_limit.h"
#include "net/worker.h"
#include "util/prom.h"

/* How a counter of net/stats.h is shown. Counters not listed here are
 * imgate_<snake_case name>_total, with no labels. Several counters may share one family, told
 * apart by a label; a family's samples must follow its HELP/TYPE lines together. */
typedef struct {
    const char *counter; /* its name in NET_COUNTERS (and /system/state) */
    const char *family;
    const char *labels;
    const char *help; /* the family's; on its first counter only */
} counter_view_t;

static const counter_view_t views[] = {
    {"handshakeTimeouts", "imgate_forced_closes_total", "reason=\"handshake_timeout\"",
     "connections the node closed, by reason"},
    {"protocolErrors", "imgate_forced_closes_total", "reason=\"protocol_error\"", NULL},
    {"badUtf8", "imgate_forced_closes_total", "reason=\"bad_utf8\"", NULL},
    {"messagesTooBig", "imgate_forced_closes_total", "reason=\"message_too_big\"", NULL},
    {"slowConsumers", "imgate_forced_closes_total", "reason=\"slow_consumer\"", NULL},
    {"heartbeatTimeouts", "imgate_forced_closes_total", "reason=\"heartbeat_timeout\"", NULL},
    {"loginTimeouts", "imgate_forced_closes_total", "reason=\"login_timeout\"", NULL},
    {"closeTimeouts", "imgate_forced_closes_total", "reason=\"close_timeout\"", NULL},
    {"rateLimitCloses", "imgate_forced_closes_total", "reason=\"rate_limit\"", NULL},
    {"connectionLimitHits", "imgate_limit_hits_total", "limit=\"connections\"",
     "times a limit refused something, by limit"},
    {"ipLimitHits", "imgate_limit_hits_total", "limit=\"connections_per_ip\"", NULL},
    {"upgradeRateHits", "imgate_limit_hits_total", "limit=\"upgrade_rate\"", NULL},
    {"messageRateHits", "imgate_limit_hits_total", "limit=\"message_rate\"", NULL},
    {"loginRateHits", "imgate_limit_hits_total", "limit=\"login_rate\"", NULL},
    {"messagesIn", "imgate_messages_received_total", "",
     "WebSocket messages received from clients"},
    {"messagesOut", "imgate_messages_sent_total", "",
     "frames and HTTP responses queued to clients (deliveries)"},
    {"bytesIn", "imgate_received_bytes_total", "", "bytes read from client sockets"},
    {"bytesOut", "imgate_sent_bytes_total", "", "bytes written to client sockets"},
};
#define VIEW_COUNT (sizeof views / sizeof views[0])

/* The sum of one counter over the workers, by its name. */
static uint64_t counter_sum(const char *name) {
    uint64_t sum = 0;
    for (int i = 0; i < net_worker_count(); i++) {
        const net_stats_t *s = &net_worker(i)->stats;
#define X(field)                                                                                   \
    if (strcmp(name, #field) == 0)                                                                 \
        sum += STAT_GET(s, field);
        NET_COUNTERS(X)
#undef X
    }
    return sum;
}

static bool has_view(const char *counter) {
    for (size_t i = 0; i < VIEW_COUNT; i++)
        if (strcmp(views[i].counter, counter) == 0)
            return true;
    return false;
}

static void counters(buf_t *out) {
    for (size_t i = 0; i < VIEW_COUNT; i++) {
        if (views[i].help)
            prom_family(out, views[i].family, "counter", views[i].help);
        prom_sample(out, views[i].family, views[i].labels, counter_sum(views[i].counter));
    }
    char name[96];
#define X(field)                                                                                   \
    if (!has_view(#field)) {                                                                       \
        prom_name(name, sizeof name, "imgate_", #field, "_total");                                 \
        prom_family(out, name, "counter", "counter " #field " of /system/state");                  \
        prom_sample(out, name, "", counter_sum(#field));                                           \
    }
    NET_COUNTERS(X)
#undef X
}

static void gauge(buf_t *out, const char *name, const char *help, uint64_t v) {
    prom_family(out, name, "gauge", help);
    prom_sample(out, name, "", v);
}

static void workers(buf_t *out) {
    int n = net_worker_count();
    char labels[32];
    prom_family(out, "imgate_worker_connections", "gauge", "open connections per worker");
    for (int i = 0; i < n; i++) {
        snprintf(labels, sizeof labels, "worker=\"%d\"", i);
        prom_sample(out, "imgate_worker_connections", labels, worker_conn_count(net_worker(i)));
    }
    mailbox_stats_t mb[256];
    for (int i = 0; i < n && i < 256; i++)
        worker_mailbox_stats(net_worker(i), &mb[i]);
    prom_family(out, "imgate_mailbox_depth", "gauge", "tasks waiting in a worker's mailbox");
    for (int i = 0; i < n && i < 256; i++) {
        snprintf(labels, sizeof labels, "worker=\"%d\"", i);
        prom_sample(out, "imgate_mailbox_depth", labels, mb[i].depth);
    }
    prom_family(out, "imgate_mailbox_high_water", "gauge",
                "most tasks ever waiting in a worker's mailbox");
    for (int i = 0; i < n && i < 256; i++) {
        snprintf(labels, sizeof labels, "worker=\"%d\"", i);
        prom_sample(out, "imgate_mailbox_high_water", labels, mb[i].high_water);
    }
    prom_family(out, "imgate_mailbox_dropped_total", "counter",
                "tasks a worker's full mailbox refused");
    for (int i = 0; i < n && i < 256; i++) {
        snprintf(labels, sizeof labels, "worker=\"%d\"", i);
        prom_sample(out, "imgate_mailbox_dropped_total", labels, mb[i].dropped);
    }
}

void metrics_render(buf_t *out) {
    uint64_t conns = 0, ws = 0, logged_in = 0;
    for (int i = 0; i < net_worker_count(); i++) {
        worker_t *w = net_worker(i);
        conns += worker_conn_count(w);
        ws += worker_ws_count(w);
        logged_in += hub_worker_logged_in(w);
    }
    prom_family(out, "imgate_build_info", "gauge", "always 1; the version is in the label");
    prom_sample(out, "imgate_build_info", "version=\"" IMGATE_VERSION "\"", 1);
    gauge(out, "imgate_connections", "open TCP connections (HTTP and WebSocket)", conns);
    gauge(out, "imgate_websockets", "open WebSocket connections", ws);
    gauge(out, "imgate_logged_in_connections", "WebSocket connections that have logged in",
          logged_in);
    gauge(out, "imgate_users", "distinct users logged in on this node", registry_user_count());
    gauge(out, "imgate_dedup_entries", "msgIDs remembered for de-duplication", dedup_size());
    gauge(out, "imgate_client_addresses",
          "client addresses with connections (counted with app.maxConnectionsPerIp only)",
          ip_limit_addresses());
    prom_family(out, "imgate_presence_events_dropped_total", "counter",
                "presence events a full mailbox refused");
    prom_sample(out, "imgate_presence_events_dropped_total", "", registry_events_dropped());
    counters(out);
    workers(out);
    cluster_metrics(out);
}
