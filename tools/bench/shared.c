#include "shared.h"

#include <stddef.h>
#include <sys/mman.h>

shared_t *shared_create(int nworkers, long nusers) {
    size_t head = (sizeof(shared_t) + 63) & ~(size_t)63;
    size_t size = head + sizeof(wstats_t) * (size_t)nworkers + (size_t)nusers;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    shared_t *s = p; /* the mapping is zero-filled: every counter 0, phase INIT */
    s->nworkers = nworkers;
    s->nusers = nusers;
    s->w = (wstats_t *)((char *)p + head);
    s->logged = (_Atomic uint8_t *)(s->w + nworkers);
    for (int i = 0; i < nworkers; i++) {
        atomic_init(&s->w[i].ack, -1); /* not even set up */
        atomic_init(&s->w[i].step_ack, -1);
    }
    return s;
}

uint64_t shared_sum(const shared_t *s, counter_t c) {
    uint64_t n = 0;
    for (int i = 0; i < s->nworkers; i++)
        n += atomic_load_explicit(&s->w[i].cnt[c], memory_order_relaxed);
    return n;
}

int64_t shared_last_delivery(const shared_t *s) {
    int64_t t = 0;
    for (int i = 0; i < s->nworkers; i++) {
        int64_t x = atomic_load_explicit(&s->w[i].last_delivery_ns, memory_order_relaxed);
        if (x > t)
            t = x;
    }
    return t;
}

int shared_all_stepped(const shared_t *s, int step) {
    for (int i = 0; i < s->nworkers; i++)
        if (atomic_load_explicit(&s->w[i].step_ack, memory_order_acquire) < step)
            return 0;
    return 1;
}

int shared_all_acked(const shared_t *s, phase_t p) {
    for (int i = 0; i < s->nworkers; i++)
        if (atomic_load_explicit(&s->w[i].ack, memory_order_acquire) < (int)p)
            return 0;
    return 1;
}
