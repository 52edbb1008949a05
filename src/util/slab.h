/* A fixed-size object allocator owned by one thread (one per worker: no locks). Objects are
 * carved from 64 KiB chunks mapped from the system and aligned to their size, so an object's
 * chunk is found by masking its address. Each chunk keeps its own free list and a bit per
 * object; allocation takes from the first chunk with a free object, so chunks fill up before a
 * new one is mapped. A chunk whose objects are all free is kept as a spare, up to a small number
 * per slab; past it, it is unmapped at once: the memory of a burst goes back to the system
 * instead of staying in a malloc arena. alloc and free are O(1) and never copy.
 *
 * Why not malloc: a 16-byte malloc is a 32-byte glibc chunk plus the allocator's work, and a
 * burst's worth of them, once freed, fragments the arena so that RSS stays (docs/design.md,
 * "Connections"). A slab object has no header, and its position is a stable index (slab_index,
 * slab_at) that lets a table of objects need no table of its own.
 *
 * Under AddressSanitizer free objects are poisoned, so a use after free is still reported. */
#ifndef IMGATE_UTIL_SLAB_H
#define IMGATE_UTIL_SLAB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* 64 KiB: 630 objects of 104 bytes, 4 000 of 16, a few hundred bytes of header each; small
 * enough that a few spares per worker cost little, big enough that mapping one is rare. */
#define SLAB_CHUNK_SIZE ((size_t)64 * 1024)
/* Objects up to this size (a quarter of a chunk, so little of a chunk is wasted). */
#define SLAB_MAX_OBJECT (SLAB_CHUNK_SIZE / 4)

struct slab_chunk;

/* A list link; the first member of a chunk. */
typedef struct slab_link {
    struct slab_link *next, *prev;
} slab_link_t;

/* The counts of a slab, as slab_stats reads them. */
typedef struct {
    uint64_t live;     /* objects allocated now */
    uint64_t objects;  /* objects the mapped chunks hold (live + free) */
    uint64_t chunks;   /* chunks mapped now */
    uint64_t spare;    /* of those, empty chunks kept for reuse */
    uint64_t bytes;    /* memory mapped: chunks * SLAB_CHUNK_SIZE */
    uint64_t mapped;   /* chunks mapped since slab_init */
    uint64_t released; /* chunks returned to the system since slab_init */
} slab_stats_t;

typedef struct slab {
    uint32_t _size;      /* object size: the requested one rounded up to the alignment */
    uint32_t _first;     /* offset of the first object in a chunk (after the header) */
    uint32_t _per_chunk; /* objects per chunk */
    uint32_t _shift;     /* an index is chunk number << _shift | object number */
    uint32_t _recip;     /* ceil(2^32 / _size): offset * _recip >> 32 = object number */
    uint32_t _spare_max; /* empty chunks kept before one is unmapped */
    uint32_t _spare_count;
    slab_link_t _partial; /* chunks with a free object and a live one; alloc takes the first */
    slab_link_t _spare;   /* empty chunks */
    struct slab_chunk **_table; /* chunk number -> chunk (NULL once unmapped), for slab_at */
    uint32_t _table_len, _table_cap, _table_holes;
    /* Written by the owner only, readable from any thread (slab_stats). */
    _Atomic uint64_t _live, _chunks, _spares, _mapped, _released;
} slab_t;

/* A slab of objects of `size` bytes aligned to `align` (a power of two, 8 to 4096; objects are
 * size rounded up to it), keeping up to spare_max empty chunks. Returns 0 or -EINVAL (size 0 or
 * above SLAB_MAX_OBJECT, bad alignment). Maps nothing yet. */
int slab_init(slab_t *s, size_t size, size_t align, uint32_t spare_max);

/* Unmaps every chunk, live objects or not. The slab can be initialised again. */
void slab_destroy(slab_t *s);

/* An object (contents undefined), or NULL when no chunk can be mapped. */
void *slab_alloc(slab_t *s);

/* The same, zeroed. */
void *slab_calloc(slab_t *s);

/* Gives an object of this slab back (NULL: nothing). It must be live (asserted). */
void slab_free(slab_t *s, void *obj);

/* A live object's index: stable while it lives, reused after it is freed. The lowest free
 * chunk numbers are taken first, so indexes stay small: below (chunks mapped at the peak) <<
 * _shift, where 1 << _shift is per_chunk rounded up to a power of two. */
uint32_t slab_index(const slab_t *s, const void *obj);

/* The live object at index, or NULL (free, never allocated, its chunk unmapped, out of range).
 * Reads only the slab's own bookkeeping, never a free object's memory. */
void *slab_at(const slab_t *s, uint32_t index);

/* The slab's counts. Any thread (each count is read atomically; together they may be a moment
 * apart). */
void slab_stats(const slab_t *s, slab_stats_t *out);

#endif
