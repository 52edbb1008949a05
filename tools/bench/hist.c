#include "hist.h"

#include <string.h>

void hist_reset(hist_t *h) {
    memset(h, 0, sizeof *h);
}

unsigned hist_bucket_of(uint64_t ns) {
    if (ns >= (UINT64_C(1) << HIST_MAX_BITS))
        ns = (UINT64_C(1) << HIST_MAX_BITS) - 1;
    if (ns < 2 * HIST_SUB)
        return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    unsigned shift = msb - HIST_SUB_BITS; /* so that ns >> shift is in [64, 128) */
    return (shift + 1) * HIST_SUB + (unsigned)((ns >> shift) - HIST_SUB);
}

uint64_t hist_bucket_high(unsigned idx) {
    if (idx < 2 * HIST_SUB)
        return idx;
    unsigned shift = idx / HIST_SUB - 1;
    uint64_t m = idx % HIST_SUB + HIST_SUB;
    return ((m + 1) << shift) - 1;
}

void hist_add(hist_t *h, int64_t ns) {
    uint64_t v = ns < 0 ? 0 : (uint64_t)ns;
    if (h->count == 0 || v < h->min_ns)
        h->min_ns = v;
    if (v > h->max_ns)
        h->max_ns = v;
    h->count++;
    h->sum_ns += v;
    h->buckets[hist_bucket_of(v)]++;
}

void hist_merge(hist_t *dst, const hist_t *src) {
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
    dst->count += src->count;
    dst->sum_ns += src->sum_ns;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
}

uint64_t hist_quantile(const hist_t *h, double q) {
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min_ns;
    double r = q * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++; /* ceil without libm */
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            if (v > h->max_ns)
                v = h->max_ns;
            if (v < h->min_ns)
                v = h->min_ns;
            return v;
        }
    }
    return h->max_ns;
}
