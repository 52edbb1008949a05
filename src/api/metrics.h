/* /metrics: the node's numbers in Prometheus text format (util/prom.h). */
#ifndef IMGATE_API_METRICS_H
#define IMGATE_API_METRICS_H

#include "util/buf.h"

/* Appends every family: build info, connections, WebSockets, logged-in connections, users,
 * messages and bytes in/out, forced closes by reason, limits that fired, drops, per-worker
 * mailboxes, and the cluster's (when clustered). Any worker thread. */
void metrics_render(buf_t *out);

#endif
