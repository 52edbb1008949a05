#include "im/dedup.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

typedef struct dedup_entry {
    UT_hash_handle hh;
    struct dedup_entry *next; /* FIFO by insertion time = by expiry time (one TTL for all) */
    uint32_t expires;
    uint8_t len;
    char id[];
} dedup_entry_t;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static dedup_entry_t *g_table;
static dedup_entry_t *g_oldest, *g_newest;
static size_t g_count;
static uint32_t g_ttl, g_capacity;

int dedup_init(uint32_t ttl_seconds, uint32_t capacity) {
    g_ttl = ttl_seconds;
    g_capacity = capacity;
    return 0;
}

static void drop_oldest(void) {
    dedup_entry_t *e = g_oldest;
    g_oldest = e->next;
    if (!g_oldest)
        g_newest = NULL;
    HASH_DEL(g_table, e);
    free(e);
    g_count--;
}

void dedup_free(void) {
    pthread_mutex_lock(&g_lock);
    while (g_oldest)
        drop_oldest();
    pthread_mutex_unlock(&g_lock);
}

bool dedup_check(const char *id, size_t len, uint32_t now) {
    if (len == 0 || len > DEDUP_ID_MAX)
        return false;
    bool dup = false;
    pthread_mutex_lock(&g_lock);
    while (g_oldest && (int32_t)(g_oldest->expires - now) <= 0)
        drop_oldest();
    dedup_entry_t *e;
    HASH_FIND(hh, g_table, id, len, e);
    if (e) {
        dup = true;
    } else if ((e = malloc(sizeof *e + len))) {
        while (g_count >= g_capacity && g_oldest)
            drop_oldest();
        memcpy(e->id, id, len);
        e->len = (uint8_t)len;
        e->expires = now + g_ttl;
        e->next = NULL;
        HASH_ADD(hh, g_table, id, len, e);
        if (g_newest)
            g_newest->next = e;
        else
            g_oldest = e;
        g_newest = e;
        g_count++;
    }
    pthread_mutex_unlock(&g_lock);
    return dup;
}

size_t dedup_size(void) {
    pthread_mutex_lock(&g_lock);
    size_t n = g_count;
    pthread_mutex_unlock(&g_lock);
    return n;
}
