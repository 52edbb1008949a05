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
#include "net/ws_frame.h"
#include "util/log.h"

#define HUB_SHARDS  64 /* enough that 2–64 threads rarely meet on one lock */
#define HUB_KEY_MAX (4 + IM_USER_ID_MAX)

typedef struct hub_user {
    UT_hash_handle hh;
    conn_ref_t *conns; /* every connection of this user on this node */
    uint32_t nconns, cap;
    uint32_t app_id;
    uint8_t key_len;
    char key[HUB_KEY_MAX + 1]; /* appId (4 bytes) then the userId, NUL-terminated */
} hub_user_t;

typedef struct {
    pthread_mutex_t lock;
    hub_user_t *users;
} hub_shard_t;

typedef struct {
    session_t **rooms; /* per app.appIds index: list of logged-in sessions on this worker */
    _Atomic uint32_t logged_in;
} hub_worker_t;

/* Per room (app.appIds index): online users, and the enter/exit notices waiting for the next
 * batched presence push while the room is big (app.noticeBatchAbove). */
#define NOTICE_NAMES_MAX                                                                           \
    100 /* names per batch (a 2.5 KB frame to every member); beyond, counts only */

typedef struct {
    _Atomic uint32_t online;
    pthread_mutex_t lock;
    buf_t joins, leaves; /* JSON strings, comma-separated */
    uint32_t joined, left;
} hub_room_t;

static const config_t *g_cfg;
static hub_shard_t g_shards[HUB_SHARDS];
static atomic_size_t g_user_count;
static hub_room_t g_rooms[CONFIG_MAX_APPS];
static hub_worker_t *g_workers; /* indexed by worker id */
static int g_worker_count;

const char *hub_user_id(const struct hub_user *u, size_t *len) {
    *len = (size_t)u->key_len - 4;
    return u->key + 4;
}

uint32_t hub_user_app(const struct hub_user *u) {
    return u->app_id;
}

int hub_init(const config_t *cfg, int workers) {
    g_cfg = cfg;
    g_workers = calloc((size_t)workers, sizeof *g_workers);
    if (!g_workers)
        return -ENOMEM;
    g_worker_count = workers;
    for (int i = 0; i < workers; i++) {
        g_workers[i].rooms = calloc((size_t)cfg->app_id_count, sizeof *g_workers[i].rooms);
        if (!g_workers[i].rooms)
            return -ENOMEM;
    }
    for (int i = 0; i < HUB_SHARDS; i++) {
        pthread_mutex_init(&g_shards[i].lock, NULL);
        g_shards[i].users = NULL;
    }
    atomic_store(&g_user_count, 0);
    for (int i = 0; i < CONFIG_MAX_APPS; i++) {
        memset(&g_rooms[i], 0, sizeof g_rooms[i]);
        pthread_mutex_init(&g_rooms[i].lock, NULL);
    }
    return 0;
}

void hub_free(void) {
    for (int i = 0; i < g_worker_count; i++)
        free(g_workers[i].rooms);
    free(g_workers);
    g_workers = NULL;
    g_worker_count = 0;
    for (int i = 0; i < HUB_SHARDS; i++) {
        hub_user_t *u, *tmp;
        HASH_ITER(hh, g_shards[i].users, u, tmp) {
            HASH_DEL(g_shards[i].users, u);
            free(u->conns);
            free(u);
        }
        pthread_mutex_destroy(&g_shards[i].lock);
    }
    for (int i = 0; i < CONFIG_MAX_APPS; i++) {
        buf_free(&g_rooms[i].joins);
        buf_free(&g_rooms[i].leaves);
        pthread_mutex_destroy(&g_rooms[i].lock);
    }
}

static hub_worker_t *worker_state(const worker_t *w) {
    return w->id < (uint32_t)g_worker_count ? &g_workers[w->id] : NULL;
}

uint32_t hub_worker_logged_in(const worker_t *w) {
    const hub_worker_t *hw = worker_state(w);
    return hw ? atomic_load_explicit(&hw->logged_in, memory_order_relaxed) : 0;
}

size_t hub_user_count(void) {
    return atomic_load_explicit(&g_user_count, memory_order_relaxed);
}

static int room_index(uint32_t app_id) {
    for (int i = 0; i < g_cfg->app_id_count; i++)
        if (g_cfg->app_ids[i] == app_id)
            return i;
    return -1;
}

/* Registry key: the appId's 4 bytes then the userId. Returns its length. */
static size_t make_key(char key[HUB_KEY_MAX + 1], uint32_t app_id, const char *user, size_t len) {
    memcpy(key, &app_id, 4);
    memcpy(key + 4, user, len);
    key[4 + len] = '\0';
    return 4 + len;
}

/* FNV-1a, only to pick a shard; uthash hashes again inside it. */
static hub_shard_t *shard_of(const char *key, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)key[i]) * 16777619u;
    return &g_shards[h % HUB_SHARDS];
}

/* Locks the shard of (app_id, user) and finds its entry (NULL if absent). The caller unlocks
 * the returned shard; key/klen receive the registry key. */
static hub_shard_t *lock_user(uint32_t app_id, const char *user, size_t len,
                              char key[HUB_KEY_MAX + 1], size_t *klen, hub_user_t **u) {
    *klen = make_key(key, app_id, user, len);
    hub_shard_t *sh = shard_of(key, *klen);
    pthread_mutex_lock(&sh->lock);
    HASH_FIND(hh, sh->users, key, *klen, *u);
    return sh;
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

/* Hands frame to one connection, directly if it lives on the calling worker. */
static void deliver(conn_ref_t ref, sbuf_t *frame) {
    worker_t *cur = net_current_worker();
    if (cur && conn_ref_worker(ref) == cur->id) {
        deliver_local(cur, ref, frame);
        return;
    }
    if ((int)conn_ref_worker(ref) >= net_worker_count())
        return;
    user_task_t *t = malloc(sizeof *t);
    if (!t)
        return;
    t->frame = sbuf_ref(frame);
    t->ref = ref;
    if (worker_post(net_worker((int)conn_ref_worker(ref)), user_task, t) != 0) {
        sbuf_unref(t->frame);
        free(t);
    }
}

int hub_send_user(uint32_t app_id, const char *user, size_t len, sbuf_t *frame) {
    if (len > IM_USER_ID_MAX)
        return 0;
    char key[HUB_KEY_MAX + 1];
    size_t klen;
    hub_user_t *u;
    conn_ref_t local[16], *refs = local;
    uint32_t n = 0;
    hub_shard_t *sh = lock_user(app_id, user, len, key, &klen, &u);
    if (u) {
        n = u->nconns;
        if (n > 16)
            refs = malloc(n * sizeof *refs);
        if (refs)
            memcpy(refs, u->conns, n * sizeof *refs);
        else
            n = 0;
    }
    pthread_mutex_unlock(&sh->lock);
    for (uint32_t i = 0; i < n; i++)
        deliver(refs[i], frame);
    if (refs != local)
        free(refs);
    return (int)n;
}

typedef struct {
    sbuf_t *frame;
    int room;
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
        if (t->exclude_len) {
            size_t ul;
            const char *uid = hub_user_id(s->user, &ul);
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
    int room = room_index(app_id);
    if (room < 0)
        return 0;
    if (exclude_len > IM_USER_ID_MAX)
        exclude = NULL; /* no such user can be logged in */
    room_task_t base = {.frame = frame, .room = room, .exclude_len = 0};
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

/* seq of enter/exit/presence: the nanoseconds of the current second, as the original sends. */
static im_str_t notice_seq(char buf[16]) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int n = snprintf(buf, 16, "%ld", ts.tv_nsec);
    return (im_str_t){buf, (size_t)n};
}

/* A user's first connection arrived in (join) or last one left (!join) a room. Small rooms get
 * the original's enter/exit push at once; big ones collect it for the next presence push. */
static void notice(int room, bool join, const char *user, size_t len) {
    if (!g_cfg->room_notices)
        return;
    hub_room_t *r = &g_rooms[room];
    uint32_t online = atomic_load_explicit(&r->online, memory_order_relaxed);
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
    char seq[16];
    im_str_t from = {user, len};
    sbuf_t *f = im_frame_push(notice_seq(seq), im_str(join ? "enter" : "exit"),
                              im_str(join ? "hello~" : "bye~"), from);
    if (!f)
        return;
    hub_send_room(g_cfg->app_ids[room], f, join ? user : NULL, join ? len : 0);
    sbuf_unref(f);
}

void hub_flush_notices(void) {
    for (int i = 0; i < g_cfg->app_id_count; i++) {
        hub_room_t *r = &g_rooms[i];
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

int hub_login(conn_t *c, uint32_t app_id, const char *user, size_t len) {
    session_t *s = session_of(c);
    worker_t *w = conn_worker(c);
    hub_worker_t *hw = worker_state(w);
    int room = room_index(app_id);
    if (room < 0 || len == 0 || len > IM_USER_ID_MAX || s->user)
        return -EINVAL;
    char key[HUB_KEY_MAX + 1];
    size_t klen;
    hub_user_t *u;
    hub_shard_t *sh = lock_user(app_id, user, len, key, &klen, &u);
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u) {
            pthread_mutex_unlock(&sh->lock);
            return -ENOMEM;
        }
        memcpy(u->key, key, klen + 1);
        u->key_len = (uint8_t)klen;
        u->app_id = app_id;
        HASH_ADD_KEYPTR(hh, sh->users, u->key, klen, u);
    }
    if (u->nconns == u->cap) {
        uint32_t cap = u->cap ? u->cap * 2 : 1;
        conn_ref_t *conns = realloc(u->conns, cap * sizeof *conns);
        if (!conns) {
            if (u->nconns == 0) {
                HASH_DEL(sh->users, u);
                free(u);
            }
            pthread_mutex_unlock(&sh->lock);
            return -ENOMEM;
        }
        u->conns = conns;
        u->cap = cap;
    }
    u->conns[u->nconns++] = conn_ref(c);
    bool first = u->nconns == 1;
    pthread_mutex_unlock(&sh->lock);

    s->user = u;
    s->_room = (uint8_t)room;
    s->_prev = NULL;
    s->_next = hw->rooms[room];
    if (s->_next)
        s->_next->_prev = s;
    hw->rooms[room] = s;
    atomic_fetch_add_explicit(&hw->logged_in, 1, memory_order_relaxed);
    if (first) {
        atomic_fetch_add_explicit(&g_user_count, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_rooms[room].online, 1, memory_order_relaxed);
        notice(room, true, user, len);
    }
    return 0;
}

void hub_logout(conn_t *c) {
    session_t *s = session_of(c);
    hub_user_t *u = s->user;
    if (!u)
        return;
    worker_t *w = conn_worker(c);
    hub_worker_t *hw = worker_state(w);
    if (s->_prev)
        s->_prev->_next = s->_next;
    else
        hw->rooms[s->_room] = s->_next;
    if (s->_next)
        s->_next->_prev = s->_prev;
    s->_next = s->_prev = NULL;
    s->user = NULL;
    int s_room = s->_room;
    atomic_fetch_sub_explicit(&hw->logged_in, 1, memory_order_relaxed);

    conn_ref_t ref = conn_ref(c);
    hub_shard_t *sh = shard_of(u->key, u->key_len);
    pthread_mutex_lock(&sh->lock);
    for (uint32_t i = 0; i < u->nconns; i++) {
        if (u->conns[i] == ref) {
            u->conns[i] = u->conns[--u->nconns];
            break;
        }
    }
    bool last = u->nconns == 0;
    if (last)
        HASH_DEL(sh->users, u);
    pthread_mutex_unlock(&sh->lock);
    if (!last)
        return;
    /* Nobody else can reach u now: it left the registry and this was its last session. */
    atomic_fetch_sub_explicit(&g_user_count, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&g_rooms[s_room].online, 1, memory_order_relaxed);
    size_t len;
    const char *uid = hub_user_id(u, &len);
    notice(s_room, false, uid, len);
    free(u->conns);
    free(u);
}

/* ---- queries ---- */

bool hub_user_online(uint32_t app_id, const char *user, size_t len) {
    if (len == 0 || len > IM_USER_ID_MAX)
        return false;
    if (app_id == 0) {
        for (int i = 0; i < g_cfg->app_id_count; i++)
            if (hub_user_online(g_cfg->app_ids[i], user, len))
                return true;
        return false;
    }
    char key[HUB_KEY_MAX + 1];
    size_t klen;
    hub_user_t *u;
    hub_shard_t *sh = lock_user(app_id, user, len, key, &klen, &u);
    pthread_mutex_unlock(&sh->lock);
    return u != NULL;
}

/* Appends a JSON array of the users of room app_id (0 = all rooms); with `keys`, each as
 * "<appId>_<userId>" as the original's debug list. Returns the count. */
static size_t list_users(uint32_t app_id, bool keys, buf_t *out) {
    size_t count = 0;
    buf_append_str(out, "[");
    for (int i = 0; i < HUB_SHARDS; i++) {
        hub_shard_t *sh = &g_shards[i];
        pthread_mutex_lock(&sh->lock);
        for (hub_user_t *u = sh->users; u; u = u->hh.next) {
            if (app_id && u->app_id != app_id)
                continue;
            if (count++)
                buf_append_str(out, ",");
            char key[16 + IM_USER_ID_MAX];
            int n = keys ? snprintf(key, sizeof key, "%u_%s", u->app_id, u->key + 4) : 0;
            if (keys)
                im_json_escape(out, key, (size_t)n);
            else
                im_json_escape(out, u->key + 4, (size_t)u->key_len - 4);
        }
        pthread_mutex_unlock(&sh->lock);
    }
    buf_append_str(out, "]");
    return count;
}

size_t hub_list_users(uint32_t app_id, buf_t *out) {
    return app_id ? list_users(app_id, false, out) : (buf_append_str(out, "[]"), 0);
}

size_t hub_list_user_keys(buf_t *out) {
    return list_users(0, true, out);
}
