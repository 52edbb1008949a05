#include "util/slab.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif

#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Where a chunk is: its list tells alloc whether it may take from it. */
enum { CHUNK_FULL, CHUNK_PARTIAL, CHUNK_SPARE };

typedef struct slab_chunk {
    slab_link_t link; /* in _partial or _spare; unlinked while full */
    void *free;       /* this chunk's free objects, linked through their first word */
    uint32_t used;    /* live objects */
    uint32_t carved;  /* objects handed out at least once; the rest were never touched */
    uint32_t number;  /* position in the slab's table */
    uint8_t where;    /* CHUNK_* */
    uint64_t live[];  /* a bit per object: allocated */
} slab_chunk_t;

static void list_init(slab_link_t *l) {
    l->next = l->prev = l;
}

static bool list_empty(const slab_link_t *l) {
    return l->next == l;
}

static void list_remove(slab_link_t *e) {
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->next = e->prev = e;
}

static void list_push_back(slab_link_t *l, slab_link_t *e) {
    e->prev = l->prev;
    e->next = l;
    l->prev->next = e;
    l->prev = e;
}

static void stat_add(_Atomic uint64_t *v, int64_t d) {
    uint64_t x = atomic_load_explicit(v, memory_order_relaxed);
    atomic_store_explicit(v, x + (uint64_t)d, memory_order_relaxed);
}

static slab_chunk_t *chunk_of(const void *obj) {
    return (slab_chunk_t *)((uintptr_t)obj & ~(uintptr_t)(SLAB_CHUNK_SIZE - 1));
}

static uint8_t *object_at(const slab_t *s, const slab_chunk_t *c, uint32_t i) {
    return (uint8_t *)c + s->_first + (size_t)i * s->_size;
}

/* The object number of obj in its chunk: exact for offsets below 2^16 and sizes up to 2^16
 * (the error of the rounded reciprocal, under size, times an offset under 2^16 stays below
 * 2^32), which a 64 KiB chunk guarantees. A multiply instead of a divide on every free. */
static uint32_t object_number(const slab_t *s, const slab_chunk_t *c, const void *obj) {
    uint32_t off = (uint32_t)((const uint8_t *)obj - (const uint8_t *)c) - s->_first;
    return (uint32_t)(((uint64_t)off * s->_recip) >> 32);
}

int slab_init(slab_t *s, size_t size, size_t align, uint32_t spare_max) {
    memset(s, 0, sizeof *s);
    if (size == 0 || size > SLAB_MAX_OBJECT || align < 8 || align > 4096 || (align & (align - 1)))
        return -EINVAL;
    size = (size + align - 1) & ~(align - 1);
    /* The header and its bitmap take the front of the chunk; as many objects as fit after. */
    uint32_t n = (uint32_t)((SLAB_CHUNK_SIZE - sizeof(slab_chunk_t)) / size);
    size_t first;
    for (;; n--) {
        first = sizeof(slab_chunk_t) + (n + 63) / 64 * sizeof(uint64_t);
        first = (first + align - 1) & ~(align - 1);
        if (first + (size_t)n * size <= SLAB_CHUNK_SIZE)
            break;
    }
    s->_size = (uint32_t)size;
    s->_first = (uint32_t)first;
    s->_per_chunk = n;
    while ((1u << s->_shift) < n)
        s->_shift++;
    s->_recip = (uint32_t)(((1ull << 32) + size - 1) / size);
    s->_spare_max = spare_max;
    list_init(&s->_partial);
    list_init(&s->_spare);
    return 0;
}

/* A chunk-aligned mapping. The kernel usually places a new mapping right below the last one, so
 * after the first aligned chunk the plain mmap is aligned too; otherwise twice the size is
 * mapped and the ends are cut off. */
static void *map_chunk(void) {
    const size_t sz = SLAB_CHUNK_SIZE;
    void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (((uintptr_t)p & (sz - 1)) == 0)
        return p;
    munmap(p, sz);
    uint8_t *q = mmap(NULL, 2 * sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED)
        return NULL;
    uint8_t *a = (uint8_t *)(((uintptr_t)q + sz - 1) & ~(uintptr_t)(sz - 1));
    if (a > q)
        munmap(q, (size_t)(a - q));
    if (a + sz < q + 2 * sz)
        munmap(a + sz, (size_t)(q + 2 * sz - (a + sz)));
    return a;
}

static void unmap_chunk(slab_chunk_t *c) {
    UNPOISON(c, SLAB_CHUNK_SIZE); /* whatever is mapped here next starts clean */
    munmap(c, SLAB_CHUNK_SIZE);
}

/* Maps a chunk into the lowest free table position and makes it the one to allocate from. */
static slab_chunk_t *new_chunk(slab_t *s) {
    uint32_t number = s->_table_len;
    if (s->_table_holes) {
        for (number = 0; s->_table[number]; number++) {
        }
    } else if (s->_table_len == s->_table_cap) {
        uint32_t cap = s->_table_cap ? s->_table_cap * 2 : 16;
        if ((uint64_t)cap << s->_shift > (1ull << 32))
            return NULL; /* indexes would not fit in 32 bits */
        slab_chunk_t **t = realloc(s->_table, cap * sizeof *t);
        if (!t)
            return NULL;
        s->_table = t;
        s->_table_cap = cap;
    }
    slab_chunk_t *c = map_chunk();
    if (!c)
        return NULL;
    /* Fresh anonymous memory is zero: the header's counts and bitmap start right. */
    c->number = number;
    c->where = CHUNK_PARTIAL;
    list_init(&c->link);
    POISON(object_at(s, c, 0), (size_t)s->_per_chunk * s->_size);
    s->_table[number] = c;
    if (number == s->_table_len)
        s->_table_len++;
    else
        s->_table_holes--;
    stat_add(&s->_chunks, 1);
    stat_add(&s->_mapped, 1);
    return c;
}

static void release_chunk(slab_t *s, slab_chunk_t *c) {
    s->_table[c->number] = NULL;
    if (c->number == s->_table_len - 1) {
        s->_table_len--;
        while (s->_table_len && !s->_table[s->_table_len - 1]) { /* trailing holes go too */
            s->_table_len--;
            s->_table_holes--;
        }
    } else {
        s->_table_holes++;
    }
    unmap_chunk(c);
    stat_add(&s->_chunks, -1);
    stat_add(&s->_released, 1);
}

void slab_destroy(slab_t *s) {
    for (uint32_t i = 0; i < s->_table_len; i++)
        if (s->_table[i])
            unmap_chunk(s->_table[i]);
    free(s->_table);
    memset(s, 0, sizeof *s);
}

/* The next object of the first chunk that has one (a spare or a new chunk if none has); zeroed
 * if asked, unless it is carved for the first time and so still the zeroes mmap gave. */
static void *take(slab_t *s, bool zero) {
    slab_chunk_t *c;
    if (!list_empty(&s->_partial)) {
        c = (slab_chunk_t *)s->_partial.next;
    } else if (!list_empty(&s->_spare)) {
        c = (slab_chunk_t *)s->_spare.next;
        list_remove(&c->link);
        s->_spare_count--;
        stat_add(&s->_spares, -1);
        c->where = CHUNK_PARTIAL;
        list_push_back(&s->_partial, &c->link);
    } else {
        c = new_chunk(s);
        if (!c)
            return NULL;
        list_push_back(&s->_partial, &c->link);
    }
    uint8_t *obj;
    uint32_t i;
    if (c->free) {
        obj = c->free;
        UNPOISON(obj, s->_size);
        memcpy(&c->free, obj, sizeof c->free);
        i = object_number(s, c, obj);
        if (zero)
            memset(obj, 0, s->_size);
    } else {
        i = c->carved++;
        obj = object_at(s, c, i);
        UNPOISON(obj, s->_size);
    }
    assert(!(c->live[i / 64] & (1ull << (i % 64))));
    c->live[i / 64] |= 1ull << (i % 64);
    if (++c->used == s->_per_chunk) {
        list_remove(&c->link);
        c->where = CHUNK_FULL;
    }
    stat_add(&s->_live, 1);
    return obj;
}

void *slab_alloc(slab_t *s) {
    return take(s, false);
}

void *slab_calloc(slab_t *s) {
    return take(s, true);
}

void slab_free(slab_t *s, void *obj) {
    if (!obj)
        return;
    slab_chunk_t *c = chunk_of(obj);
    uint32_t i = object_number(s, c, obj);
    assert(c->number < s->_table_len && s->_table[c->number] == c);
    assert(i < c->carved && (uint8_t *)obj == object_at(s, c, i));
    assert(c->live[i / 64] & (1ull << (i % 64))); /* a double free */
    c->live[i / 64] &= ~(1ull << (i % 64));
    memcpy(obj, &c->free, sizeof c->free);
    c->free = obj;
    POISON(obj, s->_size);
    stat_add(&s->_live, -1);
    if (c->where == CHUNK_FULL) {
        /* Behind the chunks already partly free: those fill up first. */
        c->where = CHUNK_PARTIAL;
        list_push_back(&s->_partial, &c->link);
    }
    if (--c->used > 0)
        return;
    list_remove(&c->link);
    if (s->_spare_count < s->_spare_max) {
        c->where = CHUNK_SPARE;
        list_push_back(&s->_spare, &c->link);
        s->_spare_count++;
        stat_add(&s->_spares, 1);
        return;
    }
    release_chunk(s, c);
}

uint32_t slab_index(const slab_t *s, const void *obj) {
    const slab_chunk_t *c = chunk_of(obj);
    return c->number << s->_shift | object_number(s, c, obj);
}

void *slab_at(const slab_t *s, uint32_t index) {
    uint32_t number = index >> s->_shift, i = index & ((1u << s->_shift) - 1);
    if (number >= s->_table_len)
        return NULL;
    const slab_chunk_t *c = s->_table[number];
    if (!c || i >= c->carved || !(c->live[i / 64] & (1ull << (i % 64))))
        return NULL;
    return object_at(s, c, i);
}

void slab_stats(const slab_t *s, slab_stats_t *out) {
    out->live = atomic_load_explicit(&s->_live, memory_order_relaxed);
    out->chunks = atomic_load_explicit(&s->_chunks, memory_order_relaxed);
    out->objects = out->chunks * s->_per_chunk;
    out->bytes = out->chunks * SLAB_CHUNK_SIZE;
    out->mapped = atomic_load_explicit(&s->_mapped, memory_order_relaxed);
    out->released = atomic_load_explicit(&s->_released, memory_order_relaxed);
    out->spare = atomic_load_explicit(&s->_spares, memory_order_relaxed);
}
