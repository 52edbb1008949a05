/* Token buckets as GCRA (the generic cell rate algorithm): one timestamp per bucket, the
 * "theoretical arrival time" of the next token, instead of a count and a refill time. A bucket of
 * `rate` tokens a second holding at most `burst` takes a token when that time is at most
 * (burst - 1) intervals ahead of now, and moves it one interval on. Empty → refused, and the
 * caller learns when the next token comes. */
#ifndef IMGATE_UTIL_RATE_H
#define IMGATE_UTIL_RATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* A per-connection bucket: 4 bytes, milliseconds of a 32-bit clock (rates up to 1000/s; the
 * interval is 1000 / rate whole milliseconds, so a client at or under the rate is never refused,
 * and a rate that does not divide 1000 allows a little more: 300 → 333/s). The
 * stored time must be touched at least every 24 days (2^31 ms) to compare right across the
 * clock's wrap: each connection's bucket is, since every message of a live connection counts
 * and a connection lives no longer than a day without one (app.heartbeatTimeout ≤ 86400 s).
 * A fresh bucket is 0 = full. Returns true and takes a token, or false. */
static inline bool rate_take_ms(uint32_t *tat, uint32_t now_ms, uint32_t rate, uint32_t burst) {
    if (!rate)
        return true;
    uint32_t interval = 1000u / rate;
    int32_t ahead = (int32_t)(*tat - now_ms);
    if (*tat == 0 || ahead < 0)
        ahead = 0; /* idle long enough: full */
    if ((uint64_t)ahead > (uint64_t)interval * (burst - 1))
        return false;
    uint32_t next = now_ms + (uint32_t)ahead + interval;
    *tat = next ? next : 1; /* 0 means fresh */
    return true;
}

/* A bucket shared by threads (a node's upgrades): microseconds, behind a mutex. */
typedef struct {
    pthread_mutex_t _lock;
    uint64_t _tat_us;
    uint64_t _interval_us, _tolerance_us;
    bool _off;
} rate_limiter_t;

/* rate tokens a second (0 = never refuses), burst at once. */
void rate_limiter_init(rate_limiter_t *l, uint32_t rate, uint32_t burst);
void rate_limiter_free(rate_limiter_t *l);

/* Takes a token at now_us (a monotonic clock): true, or false with *retry_us set to the wait
 * until the next one. Any thread. */
bool rate_limiter_take(rate_limiter_t *l, uint64_t now_us, uint64_t *retry_us);

#endif
