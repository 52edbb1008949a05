/* The hub: who is online on this node and delivery to them.
 * - The registry maps (appId, userId) to the connections of that user on any worker. It is
 *   sharded; each shard has its own mutex, and lookups copy handles out before delivering.
 * - Each worker keeps, per room (appId), a list of its logged-in sessions, so a room push is one
 *   pass over local lists with one shared frame.
 * Delivery to a connection on another worker goes through that worker's mailbox. */
#ifndef IMGATE_IM_HUB_H
#define IMGATE_IM_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "im/session.h"
#include "net/worker.h"
#include "util/buf.h"

struct hub_user;

/* The userId of a registry entry (immutable while a session references it). */
const char *hub_user_id(const struct hub_user *u, size_t *len);
uint32_t hub_user_app(const struct hub_user *u);

/* workers: how many net workers there will be (their per-worker room lists live here). */
int hub_init(const config_t *cfg, int workers);
void hub_free(void);

/* Logs a connection in (its worker's thread). The caller checked the appId and userId. When this
 * is the user's first connection on the node, `enter` is pushed to the room. Returns 0 or
 * -ENOMEM. */
int hub_login(conn_t *c, uint32_t app_id, const char *user, size_t len);

/* Called when a logged-in connection closes. When it was the user's last, `exit` is pushed. */
void hub_logout(conn_t *c);

/* Pushes frame to every connection of (app_id, user). Returns the number of connections it was
 * handed to (0 = not online here). Any thread. */
int hub_send_user(uint32_t app_id, const char *user, size_t len, sbuf_t *frame);

/* Pushes frame to every logged-in connection of room app_id on every worker, except the
 * connections of user `exclude` (NULL = none). Any thread. Returns 0 or -ENOMEM. */
int hub_send_room(uint32_t app_id, sbuf_t *frame, const char *exclude, size_t exclude_len);

/* Sends the batched presence push of every big room that has enter/exit notices waiting
 * (app.noticeBatchAbove). Called every app.noticeBatchInterval ms from one thread. */
void hub_flush_notices(void);

/* True if (app_id, user) has a connection here; app_id 0 = in any room. */
bool hub_user_online(uint32_t app_id, const char *user, size_t len);

/* Appends the JSON array of the users of a room (each once) to out; returns the count. */
size_t hub_list_users(uint32_t app_id, buf_t *out);

/* Appends ["101_alice", ...] (every logged-in user key) to out; returns the count. */
size_t hub_list_user_keys(buf_t *out);

/* Number of distinct logged-in users (all rooms). */
size_t hub_user_count(void);

/* Per-worker number of logged-in connections. */
uint32_t hub_worker_logged_in(const worker_t *w);

#endif
