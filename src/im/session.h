/* The IM state of one connection, stored in the connection's upper-layer area (conn_ext). */
#ifndef IMGATE_IM_SESSION_H
#define IMGATE_IM_SESSION_H

#include <stdint.h>

#include "net/conn.h"

struct reg_user;

typedef struct session {
    struct session *_next, *_prev; /* the room list of this worker, while logged in */
    struct reg_user *user;         /* NULL until login; owned by the registry */
    uint8_t _room;                 /* index of the appId in app.appIds */
    uint8_t _strikes;              /* messages refused in a row by the rate limits */
    uint32_t _since; /* the registry's seq at login (low bits): older notices skip it */
    uint32_t _msg_tat, _login_tat; /* app.messageRate, app.loginRate buckets (util/rate.h) */
} session_t;

/* 40 bytes: with the 64-byte conn_t, one 104-byte object of the worker's connection slab
 * (docs/design.md, "Connections"); every byte more costs every connection a byte. */
_Static_assert(sizeof(session_t) <= 40, "session_t grew past 40 bytes");

static inline session_t *session_of(conn_t *c) {
    return (session_t *)conn_ext(c);
}

static inline conn_t *session_conn(session_t *s) {
    return conn_from_ext(s);
}

#endif
