/* Unit tests for src/util/slab.{h,c}: alloc/free patterns, alignment, indexes (slab_index /
 * slab_at), chunk reuse, empty chunks unmapped past the spare limit, a million objects freed in
 * random order, calloc zeroing and, in the ASan build, free objects poisoned. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/slab.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

static slab_stats_t stats(const slab_t *s) {
    slab_stats_t st;
    slab_stats(s, &st);
    return st;
}

/* Objects per chunk, as the slab computed it. */
static uint32_t per_chunk(const slab_t *s) {
    return s->_per_chunk;
}

/* xorshift: a reproducible order. */
static uint64_t rnd(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void shuffle(void **v, size_t n, uint64_t *seed) {
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd(seed) % i;
        void *t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static void test_init_refuses_bad_sizes(void **state) {
    slab_t s;
    assert_int_equal(slab_init(&s, 0, 8, 1), -EINVAL);
    assert_int_equal(slab_init(&s, SLAB_MAX_OBJECT + 1, 8, 1), -EINVAL);
    assert_int_equal(slab_init(&s, 16, 4, 1), -EINVAL);
    assert_int_equal(slab_init(&s, 16, 24, 1), -EINVAL);
    assert_int_equal(slab_init(&s, 16, 8192, 1), -EINVAL);
    assert_int_equal(slab_init(&s, 1, 8, 1), 0); /* rounded up to 8 */
    assert_int_equal(stats(&s).chunks, 0);       /* nothing mapped before the first alloc */
    slab_destroy(&s);
}

/* Objects don't overlap, keep what was written, and the counts follow. */
static void test_alloc_free_patterns(void **state) {
    slab_t s;
    assert_int_equal(slab_init(&s, 104, 8, 2), 0);
    enum { N = 3000 };
    uint8_t **p = calloc(N, sizeof *p);
    for (int i = 0; i < N; i++) {
        p[i] = slab_alloc(&s);
        assert_non_null(p[i]);
        memset(p[i], i & 0xFF, 104);
    }
    assert_int_equal(stats(&s).live, N);
    uint32_t pc = per_chunk(&s);
    assert_true(pc >= 600); /* 64 KiB / 104: only a small header is lost */
    assert_int_equal(stats(&s).chunks, (N + pc - 1) / pc);
    assert_int_equal(stats(&s).objects, stats(&s).chunks * pc);
    assert_int_equal(stats(&s).bytes, stats(&s).chunks * SLAB_CHUNK_SIZE);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 104; k++)
            assert_int_equal(p[i][k], i & 0xFF);
    /* Every other one, then the rest backwards. */
    for (int i = 0; i < N; i += 2)
        slab_free(&s, p[i]);
    assert_int_equal(stats(&s).live, N / 2);
    for (int i = N - 1; i >= 0; i -= 2) {
        for (int k = 0; k < 104; k++)
            assert_int_equal(p[i][k], i & 0xFF); /* neighbours' frees touched nothing here */
        slab_free(&s, p[i]);
    }
    assert_int_equal(stats(&s).live, 0);
    assert_int_equal(stats(&s).chunks, 2); /* the spares */
    assert_int_equal(stats(&s).spare, 2);
    slab_free(&s, NULL);
    slab_destroy(&s);
    free(p);
}

static void test_object_alignment(void **state) {
    static const size_t sizes[] = {8, 16, 24, 100, 104, 1000, 4096, SLAB_MAX_OBJECT};
    static const size_t aligns[] = {8, 16, 64, 4096};
    for (size_t a = 0; a < sizeof aligns / sizeof *aligns; a++) {
        for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
            slab_t s;
            assert_int_equal(slab_init(&s, sizes[z], aligns[a], 0), 0);
            size_t size = (sizes[z] + aligns[a] - 1) / aligns[a] * aligns[a];
            uint32_t pc = per_chunk(&s);
            assert_true(pc >= 1);
            /* Header plus objects fit the chunk, and no more would. */
            assert_true(s._first + (size_t)pc * size <= SLAB_CHUNK_SIZE);
            uint8_t *prev = NULL;
            for (uint32_t i = 0; i < pc + 2; i++) {
                uint8_t *o = slab_alloc(&s);
                assert_non_null(o);
                assert_int_equal((uintptr_t)o % aligns[a], 0);
                if (prev && i != pc) /* within a chunk, objects are `size` apart */
                    assert_int_equal(o - prev, (ptrdiff_t)size);
                memset(o, 0x5A, size);
                prev = o;
            }
            slab_destroy(&s);
        }
    }
}

/* Freed objects and empty chunks are used again before anything new is mapped. */
static void test_chunk_reuse(void **state) {
    slab_t s;
    assert_int_equal(slab_init(&s, 16, 8, 1), 0);
    uint32_t pc = per_chunk(&s);
    void **p = calloc(2 * (size_t)pc, sizeof *p);
    for (uint32_t i = 0; i < pc; i++)
        p[i] = slab_alloc(&s);
    assert_int_equal(stats(&s).chunks, 1);
    /* A hole in the full chunk is refilled; nothing is mapped for it. */
    void *hole = p[7];
    slab_free(&s, hole);
    p[7] = slab_alloc(&s);
    assert_ptr_equal(p[7], hole);
    assert_int_equal(stats(&s).mapped, 1);
    p[pc] = slab_alloc(&s);
    assert_int_equal(stats(&s).chunks, 2);
    /* A chunk that gets a hole queues behind those already partly free: the second chunk
     * serves first, the hole once that one is full. */
    slab_free(&s, hole);
    for (uint32_t i = pc + 1; i < 2 * pc; i++) {
        p[i] = slab_alloc(&s);
        assert_ptr_not_equal(p[i], hole);
    }
    p[7] = slab_alloc(&s);
    assert_ptr_equal(p[7], hole);
    assert_int_equal(stats(&s).mapped, 2);
    /* All free: one chunk kept as the spare, one unmapped. */
    for (uint32_t i = 0; i < 2 * pc; i++)
        slab_free(&s, p[i]);
    assert_int_equal(stats(&s).chunks, 1);
    assert_int_equal(stats(&s).spare, 1);
    assert_int_equal(stats(&s).released, 1);
    /* The spare serves the next allocations without a new mapping. */
    for (uint32_t i = 0; i < pc; i++)
        p[i] = slab_alloc(&s);
    assert_int_equal(stats(&s).mapped, 2);
    assert_int_equal(stats(&s).chunks, 1);
    assert_int_equal(stats(&s).spare, 0);
    slab_destroy(&s);
    free(p);
}

/* A burst maps many chunks; once it is over only spare_max of them stay mapped. */
static void test_empty_chunks_released_past_spare_limit(void **state) {
    slab_t s;
    assert_int_equal(slab_init(&s, 16, 8, 3), 0);
    uint32_t pc = per_chunk(&s);
    size_t n = (size_t)pc * 10;
    void **p = calloc(n, sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = slab_alloc(&s);
    assert_int_equal(stats(&s).chunks, 10);
    /* Chunk by chunk: the first three empties are kept, the others unmapped as they empty. */
    for (size_t i = 0; i < n; i++) {
        slab_free(&s, p[i]);
        if ((i + 1) % pc == 0) {
            uint64_t emptied = (i + 1) / pc;
            assert_int_equal(stats(&s).spare, emptied < 3 ? emptied : 3);
            assert_int_equal(stats(&s).released, emptied > 3 ? emptied - 3 : 0);
            assert_int_equal(stats(&s).chunks, 10 - (emptied > 3 ? emptied - 3 : 0));
        }
    }
    assert_int_equal(stats(&s).live, 0);
    assert_int_equal(stats(&s).chunks, 3);
    assert_int_equal(stats(&s).bytes, 3 * SLAB_CHUNK_SIZE);
    /* With no spares at all, an emptied chunk goes at once. */
    slab_t z;
    assert_int_equal(slab_init(&z, 16, 8, 0), 0);
    void *o = slab_alloc(&z);
    assert_int_equal(stats(&z).chunks, 1);
    slab_free(&z, o);
    assert_int_equal(stats(&z).chunks, 0);
    assert_int_equal(stats(&z).released, 1);
    slab_destroy(&z);
    slab_destroy(&s);
    free(p);
}

/* Indexes name live objects only, and the lowest chunk numbers are reused first. */
static void test_index_and_lookup(void **state) {
    slab_t s;
    assert_int_equal(slab_init(&s, 104, 8, 0), 0);
    uint32_t pc = per_chunk(&s);
    assert_null(slab_at(&s, 0)); /* nothing mapped */
    size_t n = (size_t)pc * 3;
    void **p = calloc(n, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        p[i] = slab_alloc(&s);
        assert_ptr_equal(slab_at(&s, slab_index(&s, p[i])), p[i]);
    }
    assert_int_equal(slab_index(&s, p[0]), 0);
    assert_int_equal(slab_index(&s, p[1]), 1);
    assert_null(slab_at(&s, 3u << s._shift)); /* past the chunks mapped */
    assert_null(slab_at(&s, pc));             /* the gap past a chunk's last object */
    assert_null(slab_at(&s, UINT32_MAX));
    uint32_t idx5 = slab_index(&s, p[5]);
    slab_free(&s, p[5]);
    assert_null(slab_at(&s, idx5)); /* freed: found no more */
    p[5] = slab_alloc(&s);          /* the hole is reused, under the same index */
    assert_int_equal(slab_index(&s, p[5]), idx5);
    /* Empty the first chunk: unmapped (no spares), its indexes find nothing. */
    uint32_t first_idx = slab_index(&s, p[0]);
    for (size_t i = 0; i < pc; i++)
        slab_free(&s, p[i]);
    assert_int_equal(stats(&s).chunks, 2);
    assert_null(slab_at(&s, first_idx));
    assert_ptr_equal(slab_at(&s, slab_index(&s, p[pc])), p[pc]);
    /* Chunk number 0 is free again: the next chunk mapped takes it. */
    for (size_t i = 0; i < pc; i++)
        p[i] = slab_alloc(&s);
    assert_int_equal(slab_index(&s, p[0]) >> s._shift, 0);
    slab_destroy(&s);
    free(p);
}

/* A million small objects, freed in random order in two rounds with allocations in between:
 * every live object stays findable and intact, and at the end only the spares are mapped. */
static void test_million_random_order(void **state) {
    slab_t s;
    assert_int_equal(slab_init(&s, 16, 8, 4), 0);
    enum { N = 1 << 20 };
    uint64_t **p = malloc(N * sizeof *p);
    for (size_t i = 0; i < N; i++) {
        p[i] = slab_alloc(&s);
        assert_non_null(p[i]);
        p[i][0] = i;
        p[i][1] = ~(uint64_t)i;
    }
    assert_int_equal(stats(&s).live, N);
    uint64_t seed = 88172645463325252ull;
    shuffle((void **)p, N, &seed);
    /* Free half (random), check the other half, allocate the half again. */
    for (size_t i = 0; i < N / 2; i++)
        slab_free(&s, p[i]);
    for (size_t i = N / 2; i < N; i++) {
        assert_int_equal(p[i][0], ~p[i][1]);
        assert_ptr_equal(slab_at(&s, slab_index(&s, p[i])), p[i]);
    }
    uint64_t chunks_before = stats(&s).chunks;
    for (size_t i = 0; i < N / 2; i++) {
        p[i] = slab_alloc(&s);
        p[i][0] = i;
        p[i][1] = ~(uint64_t)i;
    }
    assert_int_equal(stats(&s).chunks, chunks_before); /* the holes took them all */
    shuffle((void **)p, N, &seed);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(p[i][0], ~p[i][1]);
        slab_free(&s, p[i]);
    }
    assert_int_equal(stats(&s).live, 0);
    assert_int_equal(stats(&s).chunks, 4);
    assert_int_equal(stats(&s).released + 4, stats(&s).mapped);
    slab_destroy(&s);
    free(p);
}

static void test_calloc_zeroes(void **state) {
    slab_t s;
    assert_int_equal(slab_init(&s, 104, 8, 1), 0);
    uint8_t *a = slab_calloc(&s); /* fresh */
    for (int k = 0; k < 104; k++)
        assert_int_equal(a[k], 0);
    memset(a, 0xAB, 104);
    slab_free(&s, a);
    uint8_t *b = slab_calloc(&s); /* the same object, reused */
    assert_ptr_equal(a, b);
    for (int k = 0; k < 104; k++)
        assert_int_equal(b[k], 0);
    /* A spare chunk's objects, used before, come back zeroed too. */
    memset(b, 0xCD, 104);
    slab_free(&s, b);
    assert_int_equal(stats(&s).spare, 1);
    uint8_t *c = slab_calloc(&s);
    for (int k = 0; k < 104; k++)
        assert_int_equal(c[k], 0);
    slab_destroy(&s);
}

/* ASan build: a free object is poisoned (a use after free is reported), a live one is not. */
static void test_asan_poisons_free_objects(void **state) {
#ifdef TEST_ASAN
    slab_t s;
    assert_int_equal(slab_init(&s, 40, 8, 1), 0);
    uint8_t *a = slab_alloc(&s), *b = slab_alloc(&s);
    assert_false(__asan_region_is_poisoned(a, 40));
    assert_true(__asan_address_is_poisoned(b + 40)); /* not carved yet */
    slab_free(&s, a);
    assert_true(__asan_address_is_poisoned(a));
    assert_true(__asan_address_is_poisoned(a + 39));
    assert_false(__asan_region_is_poisoned(b, 40));
    a = slab_alloc(&s);
    assert_false(__asan_region_is_poisoned(a, 40));
    slab_destroy(&s);
#else
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_refuses_bad_sizes),
        cmocka_unit_test(test_alloc_free_patterns),
        cmocka_unit_test(test_object_alignment),
        cmocka_unit_test(test_chunk_reuse),
        cmocka_unit_test(test_empty_chunks_released_past_spare_limit),
        cmocka_unit_test(test_index_and_lookup),
        cmocka_unit_test(test_million_random_order),
        cmocka_unit_test(test_calloc_zeroes),
        cmocka_unit_test(test_asan_poisons_free_objects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
