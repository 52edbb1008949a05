/* Clocks: monotonic milliseconds for deadlines and latency, wall-clock seconds for the protocol. */
#ifndef IMGATE_UTIL_CLOCK_H
#define IMGATE_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline uint32_t clock_mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint32_t)ts.tv_sec;
}

static inline uint64_t clock_unix_s(void) {
    return (uint64_t)time(NULL);
}

#endif
