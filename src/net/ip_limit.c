#include "net/ip_limit.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#define IP_STRIPES 64 /* a power of two; more than enough for 256 workers to rarely collide */

typedef struct {
    uint8_t addr[16]; /* IPv6, or IPv4 as ::ffff:a.b.c.d */
    uint32_t count;
    UT_hash_handle hh;
} ip_entry_t;

typedef struct {
    pthread_mutex_t lock;
    ip_entry_t *table;
} ip_stripe_t;

static ip_stripe_t *g_stripes;
static atomic_uint g_addresses;

int ip_limit_init(void) {
    g_stripes = calloc(IP_STRIPES, sizeof *g_stripes);
    if (!g_stripes)
        return -ENOMEM;
    for (int i = 0; i < IP_STRIPES; i++)
        pthread_mutex_init(&g_stripes[i].lock, NULL);
    return 0;
}

void ip_limit_free(void) {
    if (!g_stripes)
        return;
    for (int i = 0; i < IP_STRIPES; i++) {
        ip_entry_t *e, *tmp;
        HASH_ITER(hh, g_stripes[i].table, e, tmp) {
            HASH_DEL(g_stripes[i].table, e);
            free(e);
        }
        pthread_mutex_destroy(&g_stripes[i].lock);
    }
    free(g_stripes);
    g_stripes = NULL;
    atomic_store(&g_addresses, 0);
}

bool ip_limit_key(const struct sockaddr *sa, ip_key_t *out) {
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        memset(out->b, 0, 10);
        out->b[10] = out->b[11] = 0xff;
        memcpy(out->b + 12, &a->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

static ip_stripe_t *stripe_of(const uint8_t key[16]) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    return &g_stripes[h & (IP_STRIPES - 1)];
}

uint32_t ip_limit_acquire(const ip_key_t *k) {
    const uint8_t *key = k->b;
    if (!g_stripes)
        return 0;
    ip_stripe_t *s = stripe_of(key);
    uint32_t count = 0;
    pthread_mutex_lock(&s->lock);
    ip_entry_t *e;
    HASH_FIND(hh, s->table, key, sizeof k->b, e);
    if (!e && (e = calloc(1, sizeof *e)) != NULL) {
        memcpy(e->addr, key, sizeof e->addr);
        HASH_ADD(hh, s->table, addr, sizeof e->addr, e);
        atomic_fetch_add_explicit(&g_addresses, 1, memory_order_relaxed);
    }
    if (e)
        count = ++e->count;
    pthread_mutex_unlock(&s->lock);
    return count;
}

void ip_limit_release(const ip_key_t *k) {
    const uint8_t *key = k->b;
    if (!g_stripes)
        return;
    ip_stripe_t *s = stripe_of(key);
    pthread_mutex_lock(&s->lock);
    ip_entry_t *e;
    HASH_FIND(hh, s->table, key, sizeof k->b, e);
    if (e && --e->count == 0) {
        HASH_DEL(s->table, e);
        free(e);
        atomic_fetch_sub_explicit(&g_addresses, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&s->lock);
}

uint32_t ip_limit_addresses(void) {
    return atomic_load_explicit(&g_addresses, memory_order_relaxed);
}
