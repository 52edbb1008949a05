/* The messages nodes send each other over Redis pub/sub, on two kinds of channel:
 *   imgate:node:<nodeId>  u<appId> <len>:<userId><push JSON>    a direct message for a user there
 *   imgate:room:<appId>   m<appId> <len>:<from><push JSON>      a room push (not to user `from`)
 *                         e<appId> <len>:<userId><online>       the user entered the room
 *                         x<appId> <len>:<userId><online>       the user left it
 *   imgate:node:<nodeId>  h0 0:                                 the node's own heartbeat: proves
 *                                                               its subscriptions still carry
 * The push JSON is built once by the sending node; each receiving node frames it once. */
#ifndef IMGATE_CLUSTER_BUS_H
#define IMGATE_CLUSTER_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Appends a u or m message. Returns 0 or -ENOMEM. */
int bus_encode(buf_t *out, char kind, uint32_t app_id, const char *user, size_t len,
               const void *json, size_t json_len);

/* A parsed message. */
typedef struct {
    char kind;
    uint32_t app_id;
    const char *user;
    size_t user_len;
    const char *rest; /* the JSON, or the online count's digits */
    size_t rest_len;
} bus_msg_t;

/* Parses msg; returns 0 or -1 when it is not one of ours. */
int bus_decode(const char *msg, size_t n, bus_msg_t *out);

/* Delivers a message received from a channel to this node's users (any thread; the cluster
 * loop's). Returns 0 or -1 for a malformed one. */
int bus_deliver(const char *msg, size_t n);

#endif
