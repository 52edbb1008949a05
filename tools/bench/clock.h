/* The bench's one clock: CLOCK_MONOTONIC in nanoseconds. On Linux it is the same clock in every
 * process of the machine, so a timestamp written into a message by the parent can be subtracted
 * from the receiving worker's clock. */
#ifndef IMGATE_BENCH_CLOCK_H
#define IMGATE_BENCH_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S  INT64_C(1000000000)

#endif
