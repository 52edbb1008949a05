/* Unit tests for tools/bench/hist.c, the latency histogram of imgate-bench: bucket arithmetic is
 * continuous and monotonic, quantiles are within the promised 1/64 of the truth, and merging
 * equals recording everything in one histogram. The .c is included: the bench is not a library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../tools/bench/hist.c"

static hist_t *new_hist(void) {
    hist_t *h = calloc(1, sizeof *h);
    assert_non_null(h);
    return h;
}

static void test_buckets_monotonic_and_tight(void **state) {
    /* Below 128 ns every value has its own bucket. */
    for (uint64_t v = 0; v < 128; v++) {
        assert_int_equal(hist_bucket_of(v), v);
        assert_int_equal(hist_bucket_high((unsigned)v), v);
    }
    /* Above, each value lies in its bucket, buckets follow each other without gaps, and a
     * bucket is at most 1/64 of its values wide. */
    unsigned prev = hist_bucket_of(127);
    for (uint64_t v = 128; v < (UINT64_C(1) << 40); v += v / 97 + 1) {
        unsigned b = hist_bucket_of(v);
        assert_true(b >= prev && b <= prev + 1 + (unsigned)(v / 97 + 1));
        assert_true(b < HIST_BUCKETS);
        uint64_t high = hist_bucket_high(b);
        uint64_t low = b ? hist_bucket_high(b - 1) + 1 : 0;
        assert_true(low <= v && v <= high);
        assert_true(high - low <= low / 64);
        prev = b;
    }
    /* Huge values are clamped into the last bucket. */
    assert_int_equal(hist_bucket_of(UINT64_MAX), HIST_BUCKETS - 1);
    assert_int_equal(hist_bucket_of(UINT64_C(1) << 50), HIST_BUCKETS - 1);
}

static void test_quantiles(void **state) {
    hist_t *h = new_hist();
    assert_int_equal(hist_quantile(h, 0.5), 0); /* empty */
    /* 1..100000 microseconds: p50 = 50 ms, p90 = 90 ms, p99 = 99 ms, within 1/64. */
    for (int64_t us = 1; us <= 100000; us++)
        hist_add(h, us * 1000);
    assert_int_equal(h->count, 100000);
    assert_int_equal(h->min_ns, 1000);
    assert_int_equal(h->max_ns, 100000000);
    const double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double want = qs[i] * 100000 * 1000;
        double got = (double)hist_quantile(h, qs[i]);
        assert_true(got >= want);
        assert_true(got <= want * (1 + 1.0 / 64));
    }
    assert_int_equal(hist_quantile(h, 1.0), h->max_ns);
    assert_int_equal(hist_quantile(h, 0.0), h->min_ns);
    free(h);
}

static void test_single_value_and_negative(void **state) {
    hist_t *h = new_hist();
    hist_add(h, 123456789);
    /* Every quantile of one value is that value: the bucket bound is capped at the max. */
    assert_int_equal(hist_quantile(h, 0.5), 123456789);
    assert_int_equal(hist_quantile(h, 0.99), 123456789);
    hist_reset(h);
    hist_add(h, -5); /* a clock step backwards counts as 0 */
    assert_int_equal(h->count, 1);
    assert_int_equal(h->max_ns, 0);
    assert_int_equal(hist_quantile(h, 0.5), 0);
    free(h);
}

static void test_merge_equals_one_histogram(void **state) {
    hist_t *a = new_hist(), *b = new_hist(), *all = new_hist(), *m = new_hist();
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 50000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t v = (int64_t)(x % 5000000000ull);
        hist_add(i % 3 ? a : b, v);
        hist_add(all, v);
    }
    hist_merge(m, a);
    hist_merge(m, b);
    static hist_t empty;
    hist_merge(m, &empty); /* no effect */
    assert_int_equal(m->count, all->count);
    assert_int_equal(m->sum_ns, all->sum_ns);
    assert_int_equal(m->min_ns, all->min_ns);
    assert_int_equal(m->max_ns, all->max_ns);
    assert_memory_equal(m->buckets, all->buckets, sizeof all->buckets);
    free(a);
    free(b);
    free(all);
    free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_monotonic_and_tight),
        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_single_value_and_negative),
        cmocka_unit_test(test_merge_equals_one_histogram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
