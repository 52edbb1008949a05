/* Routing: the one seam that decides where a message goes and who answers presence questions.
 * A request (send to a user, send to a room, is a user online, who is in a room) is handed to
 * the route in use; it answers by calling the request's `done` exactly once, on the worker of
 * the connection that asked: at once (the single-node route, answering from this node's
 * registry and hub), or later from another loop (the cluster route in src/cluster/, which asks
 * Redis). Callers defer their connection (conn_defer) before submitting, so either way one
 * answer per request, in order, holds and no worker ever waits. */
#ifndef IMGATE_IM_ROUTE_H
#define IMGATE_IM_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "im/dedup.h"
#include "im/protocol.h"
#include "net/worker.h"
#include "util/buf.h"

enum {
    ROUTE_SEND_USER = 1, /* push payload to every connection of (app_id, user), on every node */
    ROUTE_SEND_ROOM,     /* push payload to every member of room app_id except user `from` */
    ROUTE_ONLINE,        /* is (app_id, user) online anywhere? app_id 0 = in any room */
    ROUTE_LIST,          /* the users of room app_id: a JSON array into `list` */
    ROUTE_ANNOUNCE,      /* answered once this node's presence changes so far are visible to
                            every node (a login is answered when the user can be reached) */
};

/* Results. */
enum {
    ROUTE_DELIVERED = 1,    /* sent (to a user: at least one connection had it); online: yes */
    ROUTE_OFFLINE = 0,      /* to a user: not online anywhere; online: no */
    ROUTE_DUPLICATE = -1,   /* msgID seen before: nothing was sent */
    ROUTE_NOMEM = -2,       /* out of memory, or a mailbox full: nothing was (fully) sent */
    ROUTE_UNAVAILABLE = -3, /* the answer needs the cluster (Redis), which is unreachable */
};

typedef struct route_req route_req_t;

/* Runs on the asking connection's worker w with the answer in r; frees r (route_req_free). */
typedef void (*route_done_fn)(route_req_t *r, worker_t *w);

struct route_req {
    uint8_t kind;
    uint8_t user_len, from_len, msg_id_len;
    uint32_t app_id;
    char user[IM_USER_ID_MAX + 1];
    char from[IM_USER_ID_MAX + 1];
    char msg_id[DEDUP_ID_MAX + 1];
    sbuf_t *payload; /* sends: the push JSON, not framed yet (im_push_payload) */
    /* the answer */
    int result;
    buf_t list; /* ROUTE_LIST: JSON array of userIDs */
    size_t count;
    /* who waits */
    conn_ref_t conn;
    route_done_fn done;
    void *ctx; /* the caller's, malloc'd: route_req_free frees it */
};

/* An implementation: starts r and makes sure r->done runs once, on r->conn's worker. */
typedef struct {
    void (*submit)(route_req_t *r);
} route_ops_t;

/* Picks the route (at start-up, before the workers run); NULL = the single-node route. */
void route_use(const route_ops_t *ops);

/* A request from connection c (the caller defers c first), answered through done. Strings are
 * copied (user/from at most IM_USER_ID_MAX bytes, msg_id at most DEDUP_ID_MAX: longer ones are
 * the caller's error to catch). NULL on OOM. */
route_req_t *route_req_new(uint8_t kind, conn_t *c, route_done_fn done, uint32_t app_id,
                           im_str_t user, im_str_t from, im_str_t msg_id);
void route_req_free(route_req_t *r);

void route_submit(route_req_t *r);

/* For routes that answer later, from any thread: runs r->done on the asking connection's
 * worker (through its mailbox; a stopped worker means nobody waits: r is freed). */
void route_complete(route_req_t *r);

/* A send delivered to this node's connections only, with msgID de-duplication in memory (and
 * duplicatesDropped counted): ROUTE_DELIVERED, ROUTE_OFFLINE (no connection here),
 * ROUTE_DUPLICATE or ROUTE_NOMEM. Takes r->payload. The single-node route's send, and the
 * cluster's while Redis is down. */
int route_deliver_here(route_req_t *r);

/* The single-node route: this node's registry and hub, msgID de-duplication in memory. */
extern const route_ops_t route_local;

#endif
