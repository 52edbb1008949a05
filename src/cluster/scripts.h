/* The Lua scripts the cluster runs in Redis, so that each change of cluster state is one atomic
 * step in one round trip: presence changes (batched), cleaning up a node, finding dead nodes,
 * registering this node, sending to a user or a room (with the msgID check), and asking whether
 * a user is online. Loaded on every (re)connect; called with EVALSHA. The keys they use are in
 * docs/design.md and README "Cluster". */
#ifndef IMGATE_CLUSTER_SCRIPTS_H
#define IMGATE_CLUSTER_SCRIPTS_H

typedef enum {
    SCRIPT_PRESENCE,  /* ARGV node now ttl accIpJson accPort syncing, then per change:
                         op(U|P|D) app user userJson client */
    SCRIPT_REAP,      /* ARGV node now ttl batch mode(dead|self): removes up to batch users of
                         node; returns {left, removed} ({-1, 0}: the node is alive after all) */
    SCRIPT_FIND_DEAD, /* returns the ids in imgate:nodes whose alive key is gone */
    SCRIPT_REGISTER,  /* KEYS alive; ARGV now ttlMs nodeId nodeJson seedField: 1 if the alive
                         key was still there, 0 if it had expired (or is new) */
    SCRIPT_SEND_USER, /* KEYS userNodes [dedup]; ARGV message dedupTtl: receiving nodes, -1 dup */
    SCRIPT_SEND_ROOM, /* KEYS [dedup]; ARGV channel message dedupTtl: subscribers, -1 dup */
    SCRIPT_ONLINE,    /* KEYS userNodes...: 1 if a node holding the user is alive */
    SCRIPT_SYNC_DONE, /* ARGV node now ttl: ends a re-announce: users of the node that it did not
                         re-announce are removed; returns how many */
    SCRIPT_COUNT
} script_id_t;

/* The script's Lua source and its SHA-1 (hex), computed once at start-up. */
const char *script_source(script_id_t id);
const char *script_sha(script_id_t id);
const char *script_name(script_id_t id);

/* Computes the SHA-1s. Returns 0 or -1. */
int scripts_init(void);

#endif
