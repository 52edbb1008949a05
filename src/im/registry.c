#include "im/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHARDS 64 /* enough that 2–64 threads rarely meet on one lock */
#define ROOMS  64 /* CONFIG_MAX_APPS */

/* One (appId, userId) logged in here. Most users have one connection, kept inline; a second one
 * moves them to an array. The room is an index into app.appIds (its appId is g_rooms[room]) and
 * the userId follows the header: 26 bytes + the id, a 48-byte malloc chunk for ids up to 14
 * bytes, 64 up to 19 (uthash's handle alone was 56). */
typedef struct reg_user {
    struct reg_user *next; /* the shard's bucket chain */
    union {
        conn_ref_t one;   /* cap <= 1 */
        conn_ref_t *many; /* cap > 1 */
    } conns;
    uint32_t seq;         /* low 32 bits of the transition that brought it up */
    uint16_t nconns, cap; /* REGISTRY_DEVICES_MAX at most */
    uint8_t room;
    uint8_t user_len;
    char user[]; /* NUL-terminated */
} reg_user_t;

/* A shard: chained buckets (a power of two, grown when the chains average 2 entries). */
typedef struct {
    pthread_mutex_t lock;
    reg_user_t **buckets;
    uint32_t nbuckets, count;
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

static conn_ref_t *user_conns(reg_user_t *u) {
    return u->cap > 1 ? u->conns.many : &u->conns.one;
}

static void user_free(reg_user_t *u) {
    if (u->cap > 1)
        free(u->conns.many);
    free(u);
}

const char *registry_user_id(const reg_user_t *u, size_t *len) {
    *len = u->user_len;
    return u->user;
}

uint32_t registry_user_app(const reg_user_t *u) {
    return g_rooms[u->room];
}

int registry_init(const uint32_t *rooms, int room_count) {
    if (room_count > ROOMS)
        return -EINVAL;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&g_shards[i].lock, NULL);
        g_shards[i].buckets = NULL;
        g_shards[i].nbuckets = g_shards[i].count = 0;
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
        shard_t *sh = &g_shards[i];
        for (uint32_t b = 0; b < sh->nbuckets; b++) {
            for (reg_user_t *u = sh->buckets[b], *next; u; u = next) {
                next = u->next;
                user_free(u);
            }
        }
        free(sh->buckets);
        sh->buckets = NULL;
        sh->nbuckets = sh->count = 0;
        pthread_mutex_destroy(&sh->lock);
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

/* FNV-1a of the appId's 4 bytes and the userId: the low bits pick the shard, the rest the
 * bucket in it. */
static uint32_t user_hash(uint32_t app_id, const char *user, size_t len) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < 4; i++)
        h = (h ^ ((app_id >> (8 * i)) & 0xff)) * 16777619u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)user[i]) * 16777619u;
    return h;
}

/* Every entry of a locked shard, bucket by bucket. */
#define SHARD_FOREACH(sh, u)                                                                       \
    for (uint32_t b_ = 0; b_ < (sh)->nbuckets; b_++)                                               \
        for (reg_user_t *u = (sh)->buckets[b_]; u; u = u->next)

static shard_t *shard_of(uint32_t h) {
    return &g_shards[h % SHARDS];
}

static reg_user_t **bucket_of(shard_t *sh, uint32_t h) {
    return &sh->buckets[(h / SHARDS) & (sh->nbuckets - 1)];
}

/* Doubles the shard's buckets (16 at first) once its chains average 2 entries. Under the shard
 * lock: a few times in a shard's life, and a failed malloc just keeps the longer chains. */
static int shard_grow(shard_t *sh) {
    if (sh->nbuckets && sh->count < 2 * sh->nbuckets)
        return 0;
    uint32_t nb = sh->nbuckets ? sh->nbuckets * 2 : 16;
    reg_user_t **fresh = calloc(nb, sizeof *fresh);
    if (!fresh)
        return sh->nbuckets ? 0 : -ENOMEM;
    reg_user_t **old = sh->buckets;
    uint32_t old_n = sh->nbuckets;
    sh->buckets = fresh;
    sh->nbuckets = nb;
    for (uint32_t b = 0; b < old_n; b++) {
        for (reg_user_t *u = old[b], *next; u; u = next) {
            next = u->next;
            reg_user_t **head = bucket_of(sh, user_hash(g_rooms[u->room], u->user, u->user_len));
            u->next = *head;
            *head = u;
        }
    }
    free(old);
    return 0;
}

/* Locks the shard of (room, user) and finds its entry (NULL if absent). The caller unlocks the
 * returned shard. */
static shard_t *lock_user(int room, const char *user, size_t len, reg_user_t **out) {
    uint32_t h = user_hash(g_rooms[room], user, len);
    shard_t *sh = shard_of(h);
    pthread_mutex_lock(&sh->lock);
    reg_user_t *u = sh->nbuckets ? *bucket_of(sh, h) : NULL;
    while (u && !(u->room == room && u->user_len == len && memcmp(u->user, user, len) == 0))
        u = u->next;
    *out = u;
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
    ev->app_id = g_rooms[u->room];
    ev->online = online;
    ev->seq = seq;
    ev->time = (uint64_t)time(NULL);
    ev->user_len = u->user_len;
    memcpy(ev->user, u->user, u->user_len);
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
    reg_user_t *u;
    shard_t *sh = lock_user(room, user, len, &u);
    if (!u) {
        if (shard_grow(sh) != 0 || !(u = malloc(offsetof(reg_user_t, user) + len + 1))) {
            pthread_mutex_unlock(&sh->lock);
            free(ev);
            return -ENOMEM;
        }
        memset(u, 0, offsetof(reg_user_t, user));
        memcpy(u->user, user, len);
        u->user[len] = '\0';
        u->user_len = (uint8_t)len;
        u->room = (uint8_t)room;
        u->cap = 1;
        reg_user_t **head = bucket_of(sh, user_hash(app_id, user, len));
        u->next = *head;
        *head = u;
        sh->count++;
    }
    if (u->nconns == REGISTRY_DEVICES_MAX) {
        pthread_mutex_unlock(&sh->lock);
        free(ev);
        return -EMLINK;
    }
    if (u->nconns == u->cap) {
        /* A second device: from the inline reference to an array, doubled as it fills. */
        uint32_t cap = (uint32_t)u->cap * 2;
        cap = cap > REGISTRY_DEVICES_MAX ? REGISTRY_DEVICES_MAX : cap;
        conn_ref_t *conns =
            u->cap > 1 ? realloc(u->conns.many, cap * sizeof *conns) : malloc(cap * sizeof *conns);
        if (!conns) {
            pthread_mutex_unlock(&sh->lock);
            free(ev);
            return -ENOMEM;
        }
        if (u->cap == 1)
            conns[0] = u->conns.one;
        u->conns.many = conns;
        u->cap = (uint16_t)cap;
    }
    user_conns(u)[u->nconns++] = ref;
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
    uint32_t h = user_hash(g_rooms[u->room], u->user, u->user_len);
    shard_t *sh = shard_of(h);
    pthread_mutex_lock(&sh->lock);
    conn_ref_t *conns = user_conns(u);
    for (uint32_t i = 0; i < u->nconns; i++) {
        if (conns[i] == ref) {
            conns[i] = conns[--u->nconns];
            break;
        }
    }
    bool last = u->nconns == 0;
    if (last) {
        reg_user_t **p = bucket_of(sh, h);
        while (*p != u)
            p = &(*p)->next;
        *p = u->next;
        sh->count--;
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
        user_free(u);
    }
}

/* ---- queries ---- */

uint32_t registry_lookup(uint32_t app_id, const char *user, size_t len, conn_ref_t *refs,
                         uint32_t max) {
    if (len == 0 || len > IM_USER_ID_MAX)
        return 0;
    int room = room_index(app_id);
    if (room < 0)
        return 0;
    reg_user_t *u;
    shard_t *sh = lock_user(room, user, len, &u);
    uint32_t n = u ? u->nconns : 0;
    if (n)
        memcpy(refs, user_conns(u), (n < max ? n : max) * sizeof *refs);
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
        SHARD_FOREACH(sh, u) {
            if (app_id && g_rooms[u->room] != app_id)
                continue;
            if (count++)
                buf_append_str(out, ",");
            char key[16 + IM_USER_ID_MAX];
            int n = keys ? snprintf(key, sizeof key, "%u_%s", g_rooms[u->room], u->user) : 0;
            if (keys)
                im_json_escape(out, key, (size_t)n);
            else
                im_json_escape(out, u->user, u->user_len);
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
        SHARD_FOREACH(sh, u)
        fn(ctx, g_rooms[u->room], u->user, u->user_len, u->seq);
        pthread_mutex_unlock(&sh->lock);
    }
}

int registry_snapshot(mailbox_t *mb, mailbox_fn fn) {
    for (int i = 0; i < SHARDS; i++) {
        shard_t *sh = &g_shards[i];
        pthread_mutex_lock(&sh->lock);
        uint32_t n = sh->count;
        /* One allocation per shard, under its lock: 64 per snapshot, a few per minute. */
        registry_snapshot_t *part = malloc(sizeof *part + n * sizeof part->users[0]);
        if (!part) {
            pthread_mutex_unlock(&sh->lock);
            return -ENOMEM;
        }
        part->count = 0;
        part->last = i == SHARDS - 1;
        SHARD_FOREACH(sh, u) {
            uint32_t k = part->count++;
            part->users[k].app_id = g_rooms[u->room];
            part->users[k].user_len = u->user_len;
            memcpy(part->users[k].user, u->user, (size_t)u->user_len + 1);
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
