#include "im/notices.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "im/hub.h"
#include "im/protocol.h"
#include "im/registry.h"
#include "net/ws_frame.h"
#include "util/buf.h"

/* Names per batch: a 2.5 KB frame to every member; beyond, counts only. */
#define NOTICE_NAMES_MAX 100

/* Per room (app.appIds index): the enter/exit notices waiting for the next batched push. */
typedef struct {
    _Atomic uint32_t online;
    pthread_mutex_t lock;
    buf_t joins, leaves; /* JSON strings, comma-separated */
    uint32_t joined, left;
} room_t;

static const config_t *g_cfg;
static room_t g_rooms[CONFIG_MAX_APPS];

int notices_init(const config_t *cfg) {
    g_cfg = cfg;
    for (int i = 0; i < CONFIG_MAX_APPS; i++) {
        memset(&g_rooms[i], 0, sizeof g_rooms[i]);
        pthread_mutex_init(&g_rooms[i].lock, NULL);
    }
    return 0;
}

void notices_free(void) {
    for (int i = 0; i < CONFIG_MAX_APPS; i++) {
        buf_free(&g_rooms[i].joins);
        buf_free(&g_rooms[i].leaves);
        pthread_mutex_destroy(&g_rooms[i].lock);
    }
}

/* seq of enter/exit/presence: the nanoseconds of the current second, as the original sends. */
static im_str_t notice_seq(char buf[16]) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int n = snprintf(buf, 16, "%ld", ts.tv_nsec);
    return (im_str_t){buf, (size_t)n};
}

void notices_room_change(uint32_t app_id, bool join, const char *user, size_t len, uint32_t online,
                         uint64_t seq) {
    int room = config_app_index(g_cfg, app_id);
    if (!g_cfg->room_notices || room < 0)
        return;
    room_t *r = &g_rooms[room];
    atomic_store_explicit(&r->online, online, memory_order_relaxed);
    if (g_cfg->notice_batch_above == 0 || online > g_cfg->notice_batch_above) {
        pthread_mutex_lock(&r->lock);
        uint32_t *count = join ? &r->joined : &r->left;
        buf_t *names = join ? &r->joins : &r->leaves;
        if (*count < NOTICE_NAMES_MAX) {
            if (*count)
                buf_append_str(names, ",");
            im_json_escape(names, user, len);
        }
        (*count)++;
        pthread_mutex_unlock(&r->lock);
        return;
    }
    char seq_text[16];
    im_str_t from = {user, len};
    sbuf_t *f = im_frame_push(notice_seq(seq_text), im_str(join ? "enter" : "exit"),
                              im_str(join ? "hello~" : "bye~"), from);
    if (!f)
        return;
    hub_send_room_notice(app_id, f, join ? user : NULL, join ? len : 0, seq);
    sbuf_unref(f);
}

void notices_flush(void) {
    for (int i = 0; i < g_cfg->app_id_count; i++) {
        room_t *r = &g_rooms[i];
        pthread_mutex_lock(&r->lock);
        if (r->joined == 0 && r->left == 0) {
            pthread_mutex_unlock(&r->lock);
            continue;
        }
        char seq[16];
        buf_t b = {0};
        buf_reserve(&b, WS_FRAME_MAX_SERVER_HEADER);
        b.len = WS_FRAME_MAX_SERVER_HEADER;
        buf_append_str(&b, "{\"seq\":");
        im_str_t s = notice_seq(seq);
        im_json_escape(&b, s.p, s.len);
        buf_append_str(&b, ",\"cmd\":\"presence\",\"response\":{\"code\":200,\"codeMsg\":\"Ok\","
                           "\"data\":{\"target\":\"\",\"type\":\"presence\",\"joins\":[");
        buf_append(&b, r->joins.data, r->joins.len);
        buf_append_str(&b, "],\"leaves\":[");
        buf_append(&b, r->leaves.data, r->leaves.len);
        buf_printf(&b, "],\"joined\":%u,\"left\":%u,\"online\":%u}}}", r->joined, r->left,
                   atomic_load_explicit(&r->online, memory_order_relaxed));
        r->joins.len = r->leaves.len = 0;
        r->joined = r->left = 0;
        pthread_mutex_unlock(&r->lock);
        sbuf_t *f = b.data ? im_frame_from_buf(&b) : NULL;
        buf_free(&b);
        if (f) {
            hub_send_room(g_cfg->app_ids[i], f, NULL, 0);
            sbuf_unref(f);
        }
    }
}

void notices_on_presence(void *ctx, void *arg) {
    presence_event_t *ev = arg;
    notices_room_change(ev->app_id, ev->up, ev->user, ev->user_len, ev->online, ev->seq);
    presence_event_unref(ev);
}
