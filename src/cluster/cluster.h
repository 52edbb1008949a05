/* Cluster mode: with redis.addr set, this node shares presence with the others and delivers to
 * them through Redis (docs/design.md "Cluster mode"). One thread of its own runs a loop that
 * owns the Redis links; workers reach it only through its mailbox, and no worker ever waits on
 * it. Without redis.addr none of this runs and the node is alone. */
#ifndef IMGATE_CLUSTER_CLUSTER_H
#define IMGATE_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "util/buf.h"

/* Before the registry sees a login and before net_start: subscribes to presence events and
 * puts the cluster route in place. Returns 0 (also when redis.addr is "") or -errno. */
int cluster_init(const config_t *cfg);

/* The node's id: cluster.nodeId, or when it is empty a new one, <host>:<httpPort>-<random>. */
void cluster_node_id(const config_t *cfg, char *out, size_t cap);

bool cluster_enabled(void);

/* Starts the cluster thread (connects to Redis, and keeps reconnecting). */
int cluster_start(void);

/* SIGTERM: withdraws this node's users from cluster presence, waiting up to timeout_ms. */
void cluster_leave(uint32_t timeout_ms);

/* After net_drain: disconnects and joins the thread. */
void cluster_stop(void);

/* After cluster_stop and before net_free: answers what was still queued, frees everything. */
void cluster_free(void);

/* For /ready: true for a single node; in cluster mode, while both Redis links are up. Any
 * thread. */
bool cluster_reachable(void);

/* Appends the cluster's Prometheus families to /metrics (nothing for a single node): link
 * state, round trip, commands in flight, reconnects, refusals and timeouts per link, the
 * mailbox, and the counters as imgate_cluster_*_total. Any thread. */
void cluster_metrics(buf_t *out);

/* Appends the value of /system/state's "cluster": null for a single node, else the node id,
 * both links (state, since, connects, last error, pending, round trip), the mailbox and the
 * counters. Any thread. */
void cluster_state_json(buf_t *out);

#endif
