#include "im/send.h"

#include "im/dedup.h"
#include "im/hub.h"
#include "net/worker.h"
#include "util/clock.h"

/* A duplicate is dropped and counted on the calling worker. */
static bool duplicate(im_str_t msg_id) {
    if (!dedup_check(msg_id.p, msg_id.len, clock_mono_s()))
        return false;
    worker_t *w = net_current_worker();
    if (w)
        STAT_INC(&w->stats, duplicatesDropped);
    return true;
}

int send_to_user(uint32_t app_id, im_str_t user, im_str_t message, im_str_t msg_id, im_str_t from) {
    if (duplicate(msg_id))
        return SEND_DUPLICATE;
    sbuf_t *f = im_frame_push_to(msg_id, im_str("msg"), user, message, from);
    if (!f)
        return SEND_NOMEM;
    int n = hub_send_user(app_id, user.p, user.len, f);
    sbuf_unref(f);
    return n > 0 ? SEND_DELIVERED : SEND_OFFLINE;
}

int send_to_room(uint32_t app_id, im_str_t message, im_str_t msg_id, im_str_t from) {
    if (duplicate(msg_id))
        return SEND_DUPLICATE;
    sbuf_t *f = im_frame_push(msg_id, im_str("msg"), message, from);
    if (!f)
        return SEND_NOMEM;
    int r = hub_send_room(app_id, f, from.p, from.len);
    sbuf_unref(f);
    return r == 0 ? SEND_DELIVERED : SEND_NOMEM;
}

const char *send_result_json(int result) {
    switch (result) {
    case SEND_DUPLICATE:
        return "{}";
    case SEND_DELIVERED:
        return "{\"sendResults\":true}";
    case SEND_OFFLINE:
        return "{\"sendResults\":false}";
    default:
        return NULL;
    }
}
