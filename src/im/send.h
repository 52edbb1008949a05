/* Sending a text message to one user or to a room — the one implementation behind
 * POST /user/sendMessage(All) and the WebSocket commands sendMessage(All): msgID
 * de-duplication, one encoded frame, delivery through the hub. */
#ifndef IMGATE_IM_SEND_H
#define IMGATE_IM_SEND_H

#include <stdint.h>

#include "im/protocol.h"

enum {
    SEND_DELIVERED = 1,  /* handed to at least one connection */
    SEND_OFFLINE = 0,    /* (to a user) not online on this node */
    SEND_DUPLICATE = -1, /* msgID seen before: nothing was sent */
    SEND_NOMEM = -2,
};

/* Pushes cmd "msg" (seq = msgID, target = the receiver, from = `from`) to every connection of
 * (app_id, user). */
int send_to_user(uint32_t app_id, im_str_t user, im_str_t message, im_str_t msg_id, im_str_t from);

/* Pushes cmd "msg" (seq = msgID, target "", from = `from`) to every logged-in connection of the
 * room except those of user `from`. Returns SEND_DELIVERED (also for an empty room),
 * SEND_DUPLICATE or SEND_NOMEM. */
int send_to_room(uint32_t app_id, im_str_t message, im_str_t msg_id, im_str_t from);

/* The reply data of a send for a SEND_* result, shared by the HTTP routes and the WebSocket
 * commands: {"sendResults":true|false}, {} for a duplicate; NULL for SEND_NOMEM. */
const char *send_result_json(int result);

#endif
