#include "cluster/bus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster_internal.h"
#include "im/hub.h"
#include "im/notices.h"
#include "im/protocol.h"
#include "util/clock.h"
#include "util/log.h"

int bus_encode(buf_t *out, char kind, uint32_t app_id, const char *user, size_t len,
               const void *json, size_t json_len) {
    if (buf_printf(out, "%c%u %zu:", kind, app_id, len) != 0 || buf_append(out, user, len) != 0 ||
        buf_append(out, json, json_len) != 0)
        return -ENOMEM;
    return 0;
}

/* Reads a decimal number of at most 10 digits ending at `stop`. */
static int number(const char **p, const char *end, char stop, uint64_t *out) {
    uint64_t v = 0;
    int digits = 0;
    while (*p < end && **p >= '0' && **p <= '9' && digits < 10) {
        v = v * 10 + (uint64_t)(**p - '0');
        (*p)++;
        digits++;
    }
    if (!digits || *p >= end || **p != stop)
        return -1;
    (*p)++;
    *out = v;
    return 0;
}

int bus_decode(const char *msg, size_t n, bus_msg_t *out) {
    const char *p = msg, *end = msg + n;
    if (n < 1 || *p == '\0' || !strchr("umexh", *p))
        return -1;
    out->kind = *p++;
    uint64_t app, len;
    if (number(&p, end, ' ', &app) != 0 || app > UINT32_MAX || number(&p, end, ':', &len) != 0 ||
        len > IM_USER_ID_MAX || (size_t)(end - p) < len)
        return -1;
    out->app_id = (uint32_t)app;
    out->user = p;
    out->user_len = (size_t)len;
    out->rest = p + len;
    out->rest_len = (size_t)(end - out->rest);
    return 0;
}

int bus_deliver(const char *msg, size_t n) {
    bus_msg_t m;
    if (bus_decode(msg, n, &m) != 0)
        return -1;
    if (m.kind == 'h') {
        g_cluster.beat_seen_ms = clock_mono_ms(); /* our own heartbeat came back */
        return 0;
    }
    if (m.kind == 'e' || m.kind == 'x') {
        uint32_t online = 0;
        for (size_t i = 0; i < m.rest_len; i++) {
            if (m.rest[i] < '0' || m.rest[i] > '9')
                return -1;
            online = online * 10 + (uint32_t)(m.rest[i] - '0');
        }
        if (m.user_len == 0)
            return -1;
        notices_room_change(m.app_id, m.kind == 'e', m.user, m.user_len, online, 0);
        return 0;
    }
    if (m.rest_len == 0)
        return -1;
    if (m.kind == 'm')
        CLUSTER_COUNT(roomPushes);
    sbuf_t *f = im_frame_text(m.rest, m.rest_len); /* once per node, shared by every receiver */
    if (!f)
        return 0;
    int r = m.kind == 'u' ? hub_send_user(m.app_id, m.user, m.user_len, f)
                          : hub_send_room(m.app_id, f, m.user_len ? m.user : NULL, m.user_len);
    if (r < 0)
        CLUSTER_COUNT(deliveriesDropped); /* a worker's mailbox was full: overload, counted */
    sbuf_unref(f);
    return 0;
}

/* ---- the subscription link ---- */

void bus_subscribe(void) {
    const config_t *cfg = g_cluster.cfg;
    redis_args_t a = {0};
    redis_args_add_str(&a, "SUBSCRIBE");
    redis_args_addf(&a, "imgate:node:%s", g_cluster.node_id);
    for (int i = 0; i < cfg->app_id_count; i++)
        redis_args_addf(&a, "imgate:room:%u", cfg->app_ids[i]);
    if (redis_args_subscribe(&a, &g_cluster.sub, bus_on_message, NULL) != 0)
        log_warn("redis: cannot subscribe");
    redis_args_free(&a);
}

void bus_on_message(redisAsyncContext *ac, void *reply, void *priv) {
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return; /* the link went down (NULL), or not a message */
    redisReply *kind = r->element[0], *payload = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0 ||
        payload->type != REDIS_REPLY_STRING)
        return; /* subscribe confirmations */
    CLUSTER_COUNT(busIn);
    if (bus_deliver(payload->str, payload->len) != 0) {
        CLUSTER_COUNT(busMalformed);
        log_debug("redis: malformed message on %.*s", (int)r->element[1]->len, r->element[1]->str);
    }
}
