/* The registry: who is logged in on this node. It maps (appId, userId) to the connections of that
 * user on any worker, in shards with a mutex each; lookups copy the handles out.
 *
 * It is also the one place that knows when a user comes up on this node (first connection of
 * (appId, userId)) or goes down (last one closed), and it tells the layers above through
 * presence events. Each transition takes a sequence number under its shard's lock, and the
 * event is queued to every subscriber's mailbox while that lock is still held, so for one user a
 * subscriber receives the transitions in the order they happened, each with a greater seq than
 * the one before: an older `down` can never overtake a newer `up`. */
#ifndef IMGATE_IM_REGISTRY_H
#define IMGATE_IM_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "im/protocol.h"
#include "net/conn.h"
#include "util/buf.h"
#include "util/mailbox.h"

#define REGISTRY_MAX_SUBSCRIBERS 4
/* Connections of one (appId, userId) on one node: a person's devices, not a fan-out. 65 535 is
 * what the entry's 16-bit count holds; more logins answer -EMLINK. */
#define REGISTRY_DEVICES_MAX 65535
#define PRESENCE_CLIENT_MAX  64 /* "ip:port", IPv6 included */

/* A user came up on this node or went down: refcounted, shared by every subscriber. */
typedef struct presence_event {
    _Atomic uint32_t _refs;
    bool up;          /* first connection of the user on this node; false: the last one closed */
    uint8_t user_len; /* 1..IM_USER_ID_MAX */
    uint32_t app_id;
    uint32_t online; /* distinct users of the room on this node after the transition */
    uint64_t seq;    /* node-wide, increasing; per user strictly increasing */
    uint64_t time;   /* unix seconds */
    char user[IM_USER_ID_MAX + 1];
    char client[PRESENCE_CLIENT_MAX]; /* up: the connection's "ip:port" if asked for, else "" */
} presence_event_t;

void presence_event_unref(presence_event_t *ev);

struct reg_user;

/* The userId and appId of an entry (valid while one of its connections is registered). */
const char *registry_user_id(const struct reg_user *u, size_t *len);
uint32_t registry_user_app(const struct reg_user *u);

/* rooms: the app.appIds, each a room whose online users are counted. */
int registry_init(const uint32_t *rooms, int room_count);
void registry_free(void);

/* Before the first registry_add: events go to mb as fn(mb's ctx, presence_event_t *), which
 * must call presence_event_unref. want_client: fill presence_event_t.client (a getpeername per
 * login). Returns 0 or -ENOSPC. */
int registry_subscribe(mailbox_t *mb, mailbox_fn fn, bool want_client);

/* True if some subscriber wants presence_event_t.client (the caller then passes it). */
bool registry_wants_client(void);

/* Events that could not be queued to a subscriber (its mailbox full or closed), so far. */
uint64_t registry_events_dropped(void);

/* Adds connection ref to (app_id, user). client: its "ip:port", or NULL. *out receives the
 * entry for registry_remove; *since (if not NULL) the seq of the newest transition at this
 * moment (compare the low 32 bits): events with a greater seq happened after this login.
 * Returns 0, -EINVAL (bad room or userId), -EMLINK (REGISTRY_DEVICES_MAX devices already) or
 * -ENOMEM. */
int registry_add(uint32_t app_id, const char *user, size_t len, conn_ref_t ref, const char *client,
                 struct reg_user **out, uint64_t *since);

/* Removes connection ref from u; when it was the user's last, u is freed. */
void registry_remove(struct reg_user *u, conn_ref_t ref);

/* The connections of (app_id, user): copies up to `max` into refs and returns how many there
 * are (more than max: call again with a bigger array). */
uint32_t registry_lookup(uint32_t app_id, const char *user, size_t len, conn_ref_t *refs,
                         uint32_t max);

/* True if (app_id, user) has a connection here; app_id 0 = in any room. */
bool registry_online(uint32_t app_id, const char *user, size_t len);

/* Appends the JSON array of the users of room app_id (each once) to out; returns the count. */
size_t registry_list_users(uint32_t app_id, buf_t *out);

/* Appends ["101_alice", ...] (every logged-in user key) to out; returns the count. */
size_t registry_list_user_keys(buf_t *out);

/* Number of distinct logged-in users (all rooms); of one room (by its index in rooms). */
size_t registry_user_count(void);
uint32_t registry_room_online(int room);

/* A part of a snapshot of the local users: the users of one shard, with the seq of the event
 * that brought each up. `last` marks the final part. Freed by the receiver (free()). */
typedef struct {
    uint32_t count;
    bool last;
    struct {
        uint32_t app_id;
        uint8_t user_len;
        char user[IM_USER_ID_MAX + 1];
        uint32_t seq; /* low 32 bits */
    } users[];
} registry_snapshot_t;

/* Queues a snapshot of every user logged in here to mb as fn(ctx, registry_snapshot_t *), one
 * part per shard, each queued while its shard is locked: in the mailbox, a part stands exactly
 * between the presence events that happened before it and those after it, so a subscriber that
 * re-announces from it and then applies the later events never sets an older state over a
 * newer one. Parts are queued even if mb is full (their number is bounded). Returns 0 or
 * -ENOMEM / a MAILBOX_ERR_* (then no `last` part was queued). */
int registry_snapshot(mailbox_t *mb, mailbox_fn fn);

/* Calls fn for every user logged in here, with the seq (low 32 bits) of its last transition. Each
 * shard is locked while its users are visited: fn must only copy. */
typedef void (*registry_visit_fn)(void *ctx, uint32_t app_id, const char *user, size_t len,
                                  uint32_t seq);
void registry_foreach_user(registry_visit_fn fn, void *ctx);

#endif
