/* The hub: delivery to the users logged in on this node.
 * - Who is logged in, and on which connections, is the registry's (im/registry.h); the hub logs
 *   connections in and out of it.
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

/* workers: how many net workers there will be (their per-worker room lists live here). Also
 * initialises the registry. */
int hub_init(const config_t *cfg, int workers);
void hub_free(void);

/* Logs a connection in (its worker's thread). The caller checked the appId and userId. Returns 0
 * or -ENOMEM. */
int hub_login(conn_t *c, uint32_t app_id, const char *user, size_t len);

/* Called when a logged-in connection closes. */
void hub_logout(conn_t *c);

/* The userId and appId a session is logged in as. */
const char *hub_session_user(const session_t *s, size_t *len);
uint32_t hub_session_app(const session_t *s);

/* Pushes frame to every connection of (app_id, user) on this node. Returns the number of
 * connections it was handed to (0 = not online here), or -ENOMEM if some could not be reached
 * (a mailbox full). Any thread. */
int hub_send_user(uint32_t app_id, const char *user, size_t len, sbuf_t *frame);

/* Pushes frame to every logged-in connection of room app_id on every worker, except the
 * connections of user `exclude` (NULL = none). Any thread. Returns 0 or -ENOMEM (a worker's
 * mailbox was full: its members did not get it). */
int hub_send_room(uint32_t app_id, sbuf_t *frame, const char *exclude, size_t exclude_len);

/* The same for a room notice about the presence change with registry seq `seq`: members who
 * logged in after that change (their login saw a newer seq) don't get it, as they would not
 * have if it had been sent at once. */
int hub_send_room_notice(uint32_t app_id, sbuf_t *frame, const char *exclude, size_t exclude_len,
                         uint64_t seq);

/* Per-worker number of logged-in connections. */
uint32_t hub_worker_logged_in(const worker_t *w);

#endif
