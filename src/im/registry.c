#include "im/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#define SHARDS  64 /* enough that 2–64 threads rarely meet on one lock */
#define KEY_MAX (4 + IM_USER_ID_MAX)
#define ROOMS   64 /* CONFIG_MAX_APPS */

typedef struct reg_user {
    UT_hash_handle hh;
    conn_ref_t *conns;    /* every connection of this user on this node */
    uint32_t seq;         /* low 32 bits of the transition that brought it up */
    uint16_t nconns, cap; /* REGISTRY_DEVICES_MAX at most */
    uint32_t app_id;
    uint8_t room;
    uint8_t key_len;
    char key[KEY_MAX + 1]; /* appId (4 bytes) then the userId, NUL-terminated */
} reg_user_t;

typedef struct {
    pthread_mutex_t lock;
    reg_user_t *users;
} shard_t;

typedef struct {
    mailbox_t *mb;
    mailbox_fn fn;
} subscriber_t;

static shard_t g_shards[SHARDS];
static uint32_t g_rooms[ROOMS];
static int g_room_count;
static _Atomic uint32_t g_online[ROOMS];
static atomic_size_t g_user_count;
static _Atomic uint64_t g_seq;
static subscriber_t g_subs[REGISTRY_MAX_SUBSCRIBERS];
static int g_sub_count;
static bool g_want_client;
static _Atomic uint64_t g_dropped;

const char *registry_user_id(const reg_user_t *u, size_t *len) {
    *len = (size_t)u->key_len - 4;
    return u->key + 4;
}

uint32_t registry_user_app(const reg_user_t *u) {
    return u->app_id;
}

int registry_init(const uint32_t *rooms, int room_count) {
    if (room_count > ROOMS)
        return -EINVAL;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&g_shards[i].lock, NULL);
        g_shards[i].users = NULL;
    }
    memcpy(g_rooms, rooms, (size_t)room_count * sizeof *rooms);
    g_room_count = room_count;
    for (int i = 0; i < ROOMS; i++)
        atomic_store(&g_online[i], 0);
    atomic_store(&g_user_count, 0);
    atomic_store(&g_dropped, 0);
    g_sub_count = 0;
    g_want_client = false;
    return 0;
}

void registry_free(void) {
    for (int i = 0; i < SHARDS; i++) {
        reg_user_t *u, *tmp;
        HASH_ITER(hh, g_shards[i].users, u, tmp) {
            HASH_DEL(g_shards[i].users, u);
            free(u->conns);
            free(u);
        }
        pthread_mutex_destroy(&g_shards[i].lock);
    }
}

int registry_subscribe(mailbox_t *mb, mailbox_fn fn, bool want_client) {
    if (g_sub_count == REGISTRY_MAX_SUBSCRIBERS)
        return -ENOSPC;
    g_subs[g_sub_count++] = (subscriber_t){mb, fn};
    g_want_client |= want_client;
    return 0;
}

bool registry_wants_client(void) {
    return g_want_client;
}

uint64_t registry_events_dropped(void) {
    return atomic_load_explicit(&g_dropped, memory_order_relaxed);
}

void presence_event_unref(presence_event_t *ev) {
    if (ev && atomic_fetch_sub_explicit(&ev->_refs, 1, memory_order_acq_rel) == 1)
        free(ev);
}

static int room_index(uint32_t app_id) {
    for (int i = 0; i < g_room_count; i++)
        if (g_rooms[i] == app_id)
            return i;
    return -1;
}

/* Registry key: the appId's 4 bytes then the userId. Returns its length. */
static size_t make_key(char key[KEY_MAX + 1], uint32_t app_id, const char *user, size_t len) {
    memcpy(key, &app_id, 4);
    memcpy(key + 4, user, len);
    key[4 + len] = '\0';
    return 4 + len;
}

/* FNV-1a, only to pick a shard; uthash hashes again inside it. */
static shard_t *shard_of(const char *key, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)key[i]) * 16777619u;
    return &g_shards[h % SHARDS];
}

/* Locks the shard of (app_id, user) and finds its entry (NULL if absent). The caller unlocks
 * the returned shard; key/klen receive the registry key. */
static shard_t *lock_user(uint32_t app_id, const char *user, size_t len, char key[KEY_MAX + 1],
                          size_t *klen, reg_user_t **u) {
    *klen = make_key(key, app_id, user, len);
    shard_t *sh = shard_of(key, *klen);
    pthread_mutex_lock(&sh->lock);
    HASH_FIND(hh, sh->users, key, *klen, *u);
    return sh;
}

/* ---- presence events ---- */

/* An event allocated before the shard lock is taken (no malloc under it), filled and queued
 * under it if the change turns out to be a transition. NULL if nobody listens. */
static presence_event_t *event_new(void) {
    return g_sub_count ? calloc(1, sizeof(presence_event_t)) : NULL;
}

/* With the shard lock held: stamps the transition of u and queues it to every subscriber, so
 * that per user the mailboxes see the transitions in order. Takes ev. */
static void event_post(presence_event_t *ev, const reg_user_t *u, bool up, uint64_t seq,
                       uint32_t online) {
    if (!ev)
        return;
    ev->up = up;
    ev->app_id = u->app_id;
    ev->online = online;
    ev->seq = seq;
    ev->time = (uint64_t)time(NULL);
    ev->user_len = (uint8_t)(u->key_len - 4);
    memcpy(ev->user, u->key + 4, ev->user_len);
    atomic_store_explicit(&ev->_refs, (uint32_t)g_sub_count + 1, memory_order_relaxed);
    for (int i = 0; i < g_sub_count; i++) {
        if (mailbox_post(g_subs[i].mb, g_subs[i].fn, ev) != 0) {
            atomic_fetch_add_explicit(&g_dropped, 1, memory_order_relaxed);
            presence_event_unref(ev);
        }
    }
    presence_event_unref(ev); /* ours */
}

/* ---- add and remove ---- */

int registry_add(uint32_t app_id, const char *user, size_t len, conn_ref_t ref, const char *client,
                 reg_user_t **out, uint64_t *since) {
    int room = room_index(app_id);
    if (room < 0 || len == 0 || len > IM_USER_ID_MAX)
        return -EINVAL;
    presence_event_t *ev = event_new();
    if (ev && client && g_want_client)
        snprintf(ev->client, sizeof ev->client, "%s", client);
    char key[KEY_MAX + 1];
    size_t klen;
    reg_user_t *u;
    shard_t *sh = lock_user(app_id, user, len, key, &klen, &u);
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u) {
            pthread_mutex_unlock(&sh->lock);
            free(ev);
            return -ENOMEM;
        }
        memcpy(u->key, key, klen + 1);
        u->key_len = (uint8_t)klen;
        u->app_id = app_id;
        u->room = (uint8_t)room;
        HASH_ADD_KEYPTR(hh, sh->users, u->key, klen, u);
    }
    if (u->nconns == REGISTRY_DEVICES_MAX) {
        pthread_mutex_unlock(&sh->lock);
        free(ev);
        return -EMLINK;
    }
    if (u->nconns == u->cap) {
        uint32_t cap = u->cap ? (uint32_t)u->cap * 2 : 1;
        cap = cap > REGISTRY_DEVICES_MAX ? REGISTRY_DEVICES_MAX : cap;
        conn_ref_t *conns = realloc(u->conns, cap * sizeof *conns);
        if (!conns) {
            if (u->nconns == 0) {
                HASH_DEL(sh->users, u);
                free(u);
            }
            pthread_mutex_unlock(&sh->lock);
            free(ev);
            return -ENOMEM;
        }
        u->conns = conns;
        u->cap = (uint16_t)cap;
    }
    u->conns[u->nconns++] = ref;
    if (u->nconns == 1) {
        uint64_t seq = atomic_fetch_add_explicit(&g_seq, 1, memory_order_relaxed) + 1;
        u->seq = (uint32_t)seq;
        atomic_fetch_add_explicit(&g_user_count, 1, memory_order_relaxed);
        uint32_t online = atomic_fetch_add_explicit(&g_online[room], 1, memory_order_relaxed) + 1;
        event_post(ev, u, true, seq, online);
        ev = NULL;
    }
    /* A first connection: exactly its own transition's seq (a concurrent transition of another
     * user may have moved the counter on already, and it must still be heard). */
    if (since)
        *since = u->nconns == 1 ? u->seq : atomic_load_explicit(&g_seq, memory_order_relaxed);
    pthread_mutex_unlock(&sh->lock);
    free(ev); /* not a transition: another connection of a user already here */
    *out = u;
    return 0;
}

void registry_remove(reg_user_t *u, conn_ref_t ref) {
    presence_event_t *ev = event_new();
    shard_t *sh = shard_of(u->key, u->key_len);
    pthread_mutex_lock(&sh->lock);
    for (uint32_t i = 0; i < u->nconns; i++) {
        if (u->conns[i] == ref) {
            u->conns[i] = u->conns[--u->nconns];
            break;
        }
    }
    bool last = u->nconns == 0;
    if (last) {
        HASH_DEL(sh->users, u);
        uint64_t seq = atomic_fetch_add_explicit(&g_seq, 1, memory_order_relaxed) + 1;
        atomic_fetch_sub_explicit(&g_user_count, 1, memory_order_relaxed);
        uint32_t online =
            atomic_fetch_sub_explicit(&g_online[u->room], 1, memory_order_relaxed) - 1;
        event_post(ev, u, false, seq, online);
        ev = NULL;
    }
    pthread_mutex_unlock(&sh->lock);
    free(ev);
    if (last) {
        /* Nobody else can reach u now: it left the registry with its last connection. */
        free(u->conns);
        free(u);
    }
}

/* ---- queries ---- */

uint32_t registry_lookup(uint32_t app_id, const char *user, size_t len, conn_ref_t *refs,
                         uint32_t max) {
    if (len == 0 || len > IM_USER_ID_MAX)
        return 0;
    char key[KEY_MAX + 1];
    size_t klen;
    reg_user_t *u;
    shard_t *sh = lock_user(app_id, user, len, key, &klen, &u);
    uint32_t n = u ? u->nconns : 0;
    if (n)
        memcpy(refs, u->conns, (n < max ? n : max) * sizeof *refs);
    pthread_mutex_unlock(&sh->lock);
    return n;
}

bool registry_online(uint32_t app_id, const char *user, size_t len) {
    if (len == 0 || len > IM_USER_ID_MAX)
        return false;
    if (app_id == 0) {
        for (int i = 0; i < g_room_count; i++)
            if (registry_online(g_rooms[i], user, len))
                return true;
        return false;
    }
    conn_ref_t ref;
    return registry_lookup(app_id, user, len, &ref, 1) > 0;
}

/* Appends a JSON array of the users of room app_id (0 = all rooms); with `keys`, each as
 * "<appId>_<userId>" as the original's debug list. Returns the count. */
static size_t list_users(uint32_t app_id, bool keys, buf_t *out) {
    size_t count = 0;
    buf_append_str(out, "[");
    for (int i = 0; i < SHARDS; i++) {
        shard_t *sh = &g_shards[i];
        pthread_mutex_lock(&sh->lock);
        for (reg_user_t *u = sh->users; u; u = u->hh.next) {
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

size_t registry_list_users(uint32_t app_id, buf_t *out) {
    return app_id ? list_users(app_id, false, out) : (buf_append_str(out, "[]"), 0);
}

size_t registry_list_user_keys(buf_t *out) {
    return list_users(0, true, out);
}

size_t registry_user_count(void) {
    return atomic_load_explicit(&g_user_count, memory_order_relaxed);
}

uint32_t registry_room_online(int room) {
    return room >= 0 && room < g_room_count
               ? atomic_load_explicit(&g_online[room], memory_order_relaxed)
               : 0;
}

void registry_foreach_user(registry_visit_fn fn, void *ctx) {
    for (int i = 0; i < SHARDS; i++) {
        shard_t *sh = &g_shards[i];
        pthread_mutex_lock(&sh->lock);
        for (reg_user_t *u = sh->users; u; u = u->hh.next)
            fn(ctx, u->app_id, u->key + 4, (size_t)u->key_len - 4, u->seq);
        pthread_mutex_unlock(&sh->lock);
    }
}

int registry_snapshot(mailbox_t *mb, mailbox_fn fn) {
    for (int i = 0; i < SHARDS; i++) {
        shard_t *sh = &g_shards[i];
        pthread_mutex_lock(&sh->lock);
        uint32_t n = HASH_COUNT(sh->users);
        /* One allocation per shard, under its lock: 64 per snapshot, a few per minute. */
        registry_snapshot_t *part = malloc(sizeof *part + n * sizeof part->users[0]);
        if (!part) {
            pthread_mutex_unlock(&sh->lock);
            return -ENOMEM;
        }
        part->count = 0;
        part->last = i == SHARDS - 1;
        for (reg_user_t *u = sh->users; u; u = u->hh.next) {
            uint32_t k = part->count++;
            part->users[k].app_id = u->app_id;
            part->users[k].user_len = (uint8_t)(u->key_len - 4);
            memcpy(part->users[k].user, u->key + 4, (size_t)u->key_len - 4 + 1);
            part->users[k].seq = u->seq;
        }
        int r = mailbox_post_always(mb, fn, part);
        pthread_mutex_unlock(&sh->lock);
        if (r) {
            free(part);
            return r;
        }
    }
    return 0;
}
