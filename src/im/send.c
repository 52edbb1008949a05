#include "im/send.h"

static route_req_t *request(uint8_t kind, conn_t *c, route_done_fn done, uint32_t app_id,
                            im_str_t user, im_str_t message, im_str_t msg_id, im_str_t from) {
    route_req_t *r = route_req_new(kind, c, done, app_id, user, from, msg_id);
    if (!r)
        return NULL;
    im_str_t target = kind == ROUTE_SEND_USER ? user : im_str("");
    r->payload = im_push_payload(msg_id, im_str("msg"), target, message, from);
    if (!r->payload) {
        route_req_free(r);
        return NULL;
    }
    return r;
}

route_req_t *send_user_request(conn_t *c, route_done_fn done, uint32_t app_id, im_str_t user,
                               im_str_t message, im_str_t msg_id, im_str_t from) {
    return request(ROUTE_SEND_USER, c, done, app_id, user, message, msg_id, from);
}

route_req_t *send_room_request(conn_t *c, route_done_fn done, uint32_t app_id, im_str_t message,
                               im_str_t msg_id, im_str_t from) {
    return request(ROUTE_SEND_ROOM, c, done, app_id, im_str(""), message, msg_id, from);
}

const char *send_result_json(int result) {
    switch (result) {
    case ROUTE_DUPLICATE:
        return "{}";
    case ROUTE_DELIVERED:
        return "{\"sendResults\":true}";
    case ROUTE_OFFLINE:
        return "{\"sendResults\":false}";
    default:
        return NULL;
    }
}
