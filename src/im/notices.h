/* Room notices: goWebSocket's `enter` / `exit` pushes when a user comes into or leaves a room,
 * and, in rooms bigger than app.noticeBatchAbove, one batched `presence` push per
 * app.noticeBatchInterval instead (joins/leaves with up to 100 names, exact counts, online).
 * What counts as "comes" and "leaves" is decided above: on a single node, by the registry's
 * presence events (notices_on_presence); in a cluster, by cluster-wide presence. */
#ifndef IMGATE_IM_NOTICES_H
#define IMGATE_IM_NOTICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int notices_init(const config_t *cfg);
void notices_free(void);

/* A user came into (join) or left a room: pushes enter (to everyone but the user) or exit to
 * the room's members on this node, or, in a big room, keeps it for the next batched push.
 * online: the room's users after the change; seq: the registry seq of the change (members
 * who logged in after it don't hear of it), 0 when it came from elsewhere. Any thread; per
 * user, call in the order of the changes. */
void notices_room_change(uint32_t app_id, bool join, const char *user, size_t len, uint32_t online,
                         uint64_t seq);

/* Sends the batched presence push of every big room with changes waiting. Every
 * app.noticeBatchInterval ms, from one thread. */
void notices_flush(void);

/* A registry subscriber (a mailbox_fn taking a presence_event_t): on a single node every user
 * that comes up or goes down here is a room change. */
void notices_on_presence(void *ctx, void *ev);

#endif
