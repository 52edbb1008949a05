/* Latency histogram: log-linear buckets over nanoseconds, fixed size, mergeable.
 *
 * Values below 128 ns get a bucket each; above, every power of two is split into 64 buckets, so a
 * reported percentile is within 1/64 (1.6 %) of the true value. Values are clamped at 2^40 ns
 * (18 minutes), far above any timeout of the tool. The struct is plain data, so it can live in
 * memory shared between the worker processes and the parent, which merges them at the end. */
#ifndef IMGATE_BENCH_HIST_H
#define IMGATE_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6 /* 64 buckets per power of two: 1.6 % resolution */
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_MAX_BITS 40 /* 2^40 ns = 18 min: values above are clamped */
#define HIST_BUCKETS  ((HIST_MAX_BITS - HIST_SUB_BITS + 1) * HIST_SUB)

typedef struct {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t min_ns;
    uint64_t max_ns;
    uint64_t buckets[HIST_BUCKETS];
} hist_t;

/* Empties h. A zeroed hist_t is also empty. */
void hist_reset(hist_t *h);
/* Records one value in nanoseconds (negative values count as 0). */
void hist_add(hist_t *h, int64_t ns);
/* Adds every value of src to dst. */
void hist_merge(hist_t *dst, const hist_t *src);
/* The value at quantile q (0..1): the upper bound of the bucket holding the ceil(q*count)-th
 * smallest value, never above the exact maximum. 0 for an empty histogram. */
uint64_t hist_quantile(const hist_t *h, double q);

/* Bucket arithmetic, public for the unit test. */
unsigned hist_bucket_of(uint64_t ns);
uint64_t hist_bucket_high(unsigned idx);

#endif
