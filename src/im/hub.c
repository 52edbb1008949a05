#include "im/hub.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "im/protocol.h"
#include "im/registry.h"

typedef struct {
    session_t **rooms; /* per app.appIds index: list of logged-in sessions on this worker */
    _Atomic uint32_t logged_in;
} hub_worker_t;

static const config_t *g_cfg;
static hub_worker_t *g_workers; /* indexed by worker id */
static int g_worker_count;

int hub_init(const config_t *cfg, int workers) {
    g_cfg = cfg;
    int r = registry_init(cfg->app_ids, cfg->app_id_count);
    if (r)
        return r;
    g_workers = calloc((size_t)workers, sizeof *g_workers);
    if (!g_workers)
        return -ENOMEM;
    g_worker_count = workers;
    for (int i = 0; i < workers; i++) {
        g_workers[i].rooms = calloc((size_t)cfg->app_id_count, sizeof *g_workers[i].rooms);
        if (!g_workers[i].rooms)
            return -ENOMEM;
    }
    return 0;
}

void hub_free(void) {
    for (int i = 0; i < g_worker_count; i++)
        free(g_workers[i].rooms);
    free(g_workers);
    g_workers = NULL;
    g_worker_count = 0;
    registry_free();
}

static hub_worker_t *worker_state(const worker_t *w) {
    return w->id < (uint32_t)g_worker_count ? &g_workers[w->id] : NULL;
}

uint32_t hub_worker_logged_in(const worker_t *w) {
    const hub_worker_t *hw = worker_state(w);
    return hw ? atomic_load_explicit(&hw->logged_in, memory_order_relaxed) : 0;
}

const char *hub_session_user(const session_t *s, size_t *len) {
    return registry_user_id(s->user, len);
}

uint32_t hub_session_app(const session_t *s) {
    return registry_user_app(s->user);
}

/* ---- delivery ---- */

typedef struct {
    sbuf_t *frame;
    conn_ref_t ref;
} user_task_t;

static void deliver_local(worker_t *w, conn_ref_t ref, sbuf_t *frame) {
    conn_t *c = worker_conn(w, ref);
    if (c && conn_is_open_ws(c))
        conn_send(c, frame);
}

static void user_task(void *ctx, void *arg) {
    worker_t *w = ctx;
    user_task_t *t = arg;
    deliver_local(w, t->ref, t->frame);
    sbuf_unref(t->frame);
    free(t);
}

/* Hands frame to one connection, directly if it lives on the calling worker. Returns 0, or
 * -ENOMEM if its worker could not be reached (mailbox full, or stopped). */
static int deliver(conn_ref_t ref, sbuf_t *frame) {
    worker_t *cur = net_current_worker();
    if (cur && conn_ref_worker(ref) == cur->id) {
        deliver_local(cur, ref, frame);
        return 0;
    }
    if ((int)conn_ref_worker(ref) >= net_worker_count())
        return 0;
    user_task_t *t = malloc(sizeof *t);
    if (!t)
        return -ENOMEM;
    t->frame = sbuf_ref(frame);
    t->ref = ref;
    if (worker_post(net_worker((int)conn_ref_worker(ref)), user_task, t) != 0) {
        sbuf_unref(t->frame);
        free(t);
        return -ENOMEM;
    }
    return 0;
}

int hub_send_user(uint32_t app_id, const char *user, size_t len, sbuf_t *frame) {
    conn_ref_t local[16], *refs = local;
    uint32_t n = registry_lookup(app_id, user, len, refs, 16);
    while (n > 16 && refs == local) {
        /* A user with many devices: copy them all out (the count may change meanwhile). */
        refs = malloc(n * sizeof *refs);
        if (!refs)
            return -ENOMEM;
        uint32_t m = registry_lookup(app_id, user, len, refs, n);
        if (m > n) {
            free(refs);
            refs = local;
        }
        n = m;
    }
    int failed = 0;
    for (uint32_t i = 0; i < n; i++)
        failed |= deliver(refs[i], frame) != 0;
    if (refs != local)
        free(refs);
    return failed ? -ENOMEM : (int)n;
}

typedef struct {
    sbuf_t *frame;
    int room;
    uint32_t seq;        /* a notice's registry seq (low bits); 0 = to everyone */
    uint8_t exclude_len; /* 0 = exclude nobody */
    char exclude[IM_USER_ID_MAX + 1];
} room_task_t;

/* One pass over this worker's sessions of the room. conn_send never closes synchronously, so
 * the list can't change under the loop. */
static void room_deliver(worker_t *w, const room_task_t *t) {
    hub_worker_t *hw = worker_state(w);
    if (!hw)
        return;
    for (session_t *s = hw->rooms[t->room]; s; s = s->_next) {
        if (t->seq && (int32_t)(t->seq - s->_since) <= 0)
            continue; /* logged in after the change this notice tells of */
        if (t->exclude_len) {
            size_t ul;
            const char *uid = registry_user_id(s->user, &ul);
            if (ul == t->exclude_len && memcmp(uid, t->exclude, ul) == 0)
                continue;
        }
        conn_send(session_conn(s), t->frame);
    }
}

static void room_task(void *ctx, void *arg) {
    worker_t *w = ctx;
    room_task_t *t = arg;
    room_deliver(w, t);
    sbuf_unref(t->frame);
    free(t);
}

int hub_send_room(uint32_t app_id, sbuf_t *frame, const char *exclude, size_t exclude_len) {
    return hub_send_room_notice(app_id, frame, exclude, exclude_len, 0);
}

int hub_send_room_notice(uint32_t app_id, sbuf_t *frame, const char *exclude, size_t exclude_len,
                         uint64_t seq) {
    int room = config_app_index(g_cfg, app_id);
    if (room < 0)
        return 0;
    if (exclude_len > IM_USER_ID_MAX)
        exclude = NULL; /* no such user can be logged in */
    /* 0 means "no filter": a seq whose low bits are 0 is sent to everyone (once in 2^32). */
    room_task_t base = {.frame = frame, .room = room, .seq = (uint32_t)seq, .exclude_len = 0};
    if (exclude && exclude_len) {
        base.exclude_len = (uint8_t)exclude_len;
        memcpy(base.exclude, exclude, exclude_len);
    }
    worker_t *cur = net_current_worker();
    int rc = 0;
    for (int i = 0; i < net_worker_count(); i++) {
        worker_t *w = net_worker(i);
        if (w == cur) {
            room_deliver(w, &base);
            continue;
        }
        room_task_t *t = malloc(sizeof *t);
        if (!t) {
            rc = -ENOMEM;
            continue;
        }
        *t = base;
        t->frame = sbuf_ref(frame);
        if (worker_post(w, room_task, t) != 0) {
            sbuf_unref(t->frame);
            free(t);
            rc = -ENOMEM;
        }
    }
    return rc;
}

/* ---- login and logout ---- */

int hub_login(conn_t *c, uint32_t app_id, const char *user, size_t len) {
    session_t *s = session_of(c);
    hub_worker_t *hw = worker_state(conn_worker(c));
    int room = config_app_index(g_cfg, app_id);
    if (room < 0 || len == 0 || len > IM_USER_ID_MAX || s->user)
        return -EINVAL;
    char client[PRESENCE_CLIENT_MAX];
    bool want_client = registry_wants_client(); /* a getpeername per login only if needed */
    if (want_client)
        conn_peer_name(c, client, sizeof client);
    uint64_t since;
    int r =
        registry_add(app_id, user, len, conn_ref(c), want_client ? client : NULL, &s->user, &since);
    if (r)
        return r;
    s->_since = (uint32_t)since;
    s->_room = (uint8_t)room;
    s->_prev = NULL;
    s->_next = hw->rooms[room];
    if (s->_next)
        s->_next->_prev = s;
    hw->rooms[room] = s;
    atomic_fetch_add_explicit(&hw->logged_in, 1, memory_order_relaxed);
    return 0;
}

void hub_logout(conn_t *c) {
    session_t *s = session_of(c);
    struct reg_user *u = s->user;
    if (!u)
        return;
    hub_worker_t *hw = worker_state(conn_worker(c));
    if (s->_prev)
        s->_prev->_next = s->_next;
    else
        hw->rooms[s->_room] = s->_next;
    if (s->_next)
        s->_next->_prev = s->_prev;
    s->_next = s->_prev = NULL;
    s->user = NULL;
    atomic_fetch_sub_explicit(&hw->logged_in, 1, memory_order_relaxed);
    registry_remove(u, conn_ref(c));
}
