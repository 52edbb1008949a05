/* The supervisor: `imgate --processes M` (app.processes) runs M nodes on one machine, on the same
 * ports and one Redis, in nginx's master/worker way. The master forks the nodes, restarts one
 * that dies (same index, same cluster.nodeId, with backoff), forwards SIGTERM/SIGINT and exits
 * once they have drained. It opens no socket and no Redis connection itself. */
#ifndef IMGATE_SUPERVISOR_H
#define IMGATE_SUPERVISOR_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum {
    SUPERVISOR_CHILD = 1,        /* returned in a child: go on as the node cfg now describes */
    SUPERVISOR_OK = 0,           /* the master: every child drained and exited 0 */
    SUPERVISOR_ERR_CHILD = -1,   /* the master: a child exited non-zero while stopping */
    SUPERVISOR_ERR_KILLED = -2,  /* the master: children outlived the stop deadline: SIGKILL */
    SUPERVISOR_ERR_SIGNALS = -3, /* the master could not take its signals; nothing started */
    SUPERVISOR_ERR_NOMEM = -4,   /* no memory for the process table; nothing started */
    SUPERVISOR_ERR_CONFIG = -5,  /* a child's node id would be too long; nothing started */
};

/* Runs cfg->processes (> 1) nodes as children of this process and watches them until SIGTERM or
 * SIGINT, which is forwarded to each child; a second one is forwarded too (the nodes then close
 * their connections at once), a third one, or the stop deadline (app.drainSeconds +
 * app.closeTimeout + a margin), kills what is left with SIGKILL. SIGHUP is logged and ignored.
 * Child i gets cluster.nodeId "<nodeId>-<i>" (an empty nodeId becomes "<host>:<httpPort>-
 * <random>" once, in the master), keeps it across restarts, and stops with SIGTERM when the
 * master dies. Call it after the configuration is loaded and checked, before any thread, socket
 * or loop exists: the children are forks of this process.
 *
 * Returns SUPERVISOR_CHILD in a child, with cfg changed to that child's node (its nodeId), the
 * signal mask and dispositions as they were. In the master it returns only at the end:
 * SUPERVISOR_OK or a negative SUPERVISOR_ERR_*. */
int supervisor_run(config_t *cfg);

/* The wait before restarting a child that ran `lived_ms` and whose previous wait was
 * `prev_ms` (0 = none yet): 100 ms after a run of 10 s or more, else twice the previous wait,
 * at most 5 s. */
uint32_t supervisor_backoff(uint32_t prev_ms, uint64_t lived_ms);

/* Writes child `index`'s node id "<base>-<index>" into out. Returns 0, or -ENAMETOOLONG if it
 * would not fit in cap or in CONFIG_NODE_ID_MAX bytes. */
int supervisor_node_id(const char *base, int index, char *out, size_t cap);

#endif
