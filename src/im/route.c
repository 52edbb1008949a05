#include "im/route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "im/hub.h"
#include "im/registry.h"
#include "util/clock.h"

static const route_ops_t *g_route = &route_local;

void route_use(const route_ops_t *ops) {
    g_route = ops ? ops : &route_local;
}

static uint8_t copy_str(char *dst, size_t cap, im_str_t s) {
    size_t n = s.len < cap ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
    return (uint8_t)n;
}

route_req_t *route_req_new(uint8_t kind, conn_t *c, route_done_fn done, uint32_t app_id,
                           im_str_t user, im_str_t from, im_str_t msg_id) {
    route_req_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->kind = kind;
    r->app_id = app_id;
    r->user_len = copy_str(r->user, sizeof r->user, user);
    r->from_len = copy_str(r->from, sizeof r->from, from);
    r->msg_id_len = copy_str(r->msg_id, sizeof r->msg_id, msg_id);
    r->conn = conn_ref(c);
    r->done = done;
    return r;
}

void route_req_free(route_req_t *r) {
    if (!r)
        return;
    if (r->payload)
        sbuf_unref(r->payload);
    buf_free(&r->list);
    free(r->ctx);
    free(r);
}

void route_submit(route_req_t *r) {
    g_route->submit(r);
}

static void complete_task(void *ctx, void *arg) {
    route_req_t *r = arg;
    r->done(r, ctx);
}

void route_complete(route_req_t *r) {
    uint32_t wid = conn_ref_worker(r->conn);
    if ((int)wid >= net_worker_count() ||
        worker_post_reply(net_worker((int)wid), complete_task, r) != 0)
        route_req_free(r); /* the worker has stopped: nobody waits for this any more */
}

/* ---- the single-node route ---- */

/* A duplicate is dropped and counted on the calling worker. */
static bool duplicate(const route_req_t *r) {
    if (!dedup_check(r->msg_id, r->msg_id_len, clock_mono_s()))
        return false;
    worker_t *w = net_current_worker();
    if (w)
        STAT_INC(&w->stats, duplicatesDropped);
    return true;
}

int route_deliver_here(route_req_t *r) {
    if (duplicate(r))
        return ROUTE_DUPLICATE;
    sbuf_t *f = im_frame_wrap(r->payload);
    r->payload = NULL;
    if (!f)
        return ROUTE_NOMEM;
    int n;
    if (r->kind == ROUTE_SEND_USER)
        n = hub_send_user(r->app_id, r->user, r->user_len, f);
    else
        n = hub_send_room(r->app_id, f, r->from, r->from_len) == 0 ? 1 : -ENOMEM;
    sbuf_unref(f);
    return n > 0 ? ROUTE_DELIVERED : n == 0 ? ROUTE_OFFLINE : ROUTE_NOMEM;
}

static void local_submit(route_req_t *r) {
    switch (r->kind) {
    case ROUTE_SEND_USER:
    case ROUTE_SEND_ROOM:
        r->result = route_deliver_here(r);
        break;
    case ROUTE_ONLINE:
        r->result = registry_online(r->app_id, r->user, r->user_len);
        break;
    case ROUTE_LIST:
        r->count = registry_list_users(r->app_id, &r->list);
        r->result = r->list.data ? ROUTE_DELIVERED : ROUTE_NOMEM;
        break;
    case ROUTE_ANNOUNCE:
        r->result = ROUTE_DELIVERED; /* one node: the registry is what everyone sees */
        break;
    default:
        r->result = ROUTE_NOMEM;
        break;
    }
    r->done(r, net_current_worker());
}

const route_ops_t route_local = {.submit = local_submit};
