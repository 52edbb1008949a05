/* The IM side of a WebSocket: parses each message as a request envelope, dispatches its cmd
 * (login, heartbeat, ping) and replies once, in order. Plugged into the net layer's hooks. */
#ifndef IMGATE_IM_ROUTER_H
#define IMGATE_IM_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "im/auth.h"
#include "net/conn.h"
#include "net/http_req.h"

/* `auth` (kept, not copied; NULL = none) checks each login's serviceToken when it is enabled. */
int router_init(const config_t *cfg, const auth_t *auth);

void router_on_open(conn_t *c, const http_req_t *req);
/* net_hooks_t.on_ws_timeout: a connection that never logged in is closed 1008 "login timeout". */
bool router_on_timeout(conn_t *c);
void router_on_message(conn_t *c, uint8_t *data, size_t len, bool binary);
void router_on_close(conn_t *c);

#endif
