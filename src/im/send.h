/* Sending a text message to one user or to a room — the one implementation behind
 * POST /user/sendMessage(All) and the WebSocket commands sendMessage(All): the push is built
 * once, then handed to the route (im/route.h), which de-duplicates by msgID and delivers. */
#ifndef IMGATE_IM_SEND_H
#define IMGATE_IM_SEND_H

#include <stdint.h>

#include "im/protocol.h"
#include "im/route.h"

/* A request pushing cmd "msg" (seq = msgID, target = the receiver, from = `from`) to every
 * connection of (app_id, user). NULL on OOM. */
route_req_t *send_user_request(conn_t *c, route_done_fn done, uint32_t app_id, im_str_t user,
                               im_str_t message, im_str_t msg_id, im_str_t from);

/* A request pushing cmd "msg" (seq = msgID, target "", from = `from`) to every member of the
 * room except user `from`'s connections. NULL on OOM. */
route_req_t *send_room_request(conn_t *c, route_done_fn done, uint32_t app_id, im_str_t message,
                               im_str_t msg_id, im_str_t from);

/* The reply data of a send for a ROUTE_* result, shared by the HTTP routes and the WebSocket
 * commands: {"sendResults":true|false}, {} for a duplicate; NULL for the errors (NOMEM,
 * UNAVAILABLE). */
const char *send_result_json(int result);

#endif
