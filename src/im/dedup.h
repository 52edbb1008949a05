/* msgID de-duplication for the send routes: a msgID seen within app.dedupTtl seconds is a
 * duplicate. Bounded: at most app.dedupCapacity ids are remembered; past that the oldest is
 * forgotten first. Thread-safe (one mutex; the send routes are not a hot path per message). */
#ifndef IMGATE_IM_DEDUP_H
#define IMGATE_IM_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEDUP_ID_MAX 128 /* longer msgIDs are refused by the API (400) */

int dedup_init(uint32_t ttl_seconds, uint32_t capacity);
void dedup_free(void);

/* Records id and returns false if it is new; returns true if it was already seen within the TTL.
 * `now` is monotonic seconds. An empty id is never a duplicate (and is not recorded). */
bool dedup_check(const char *id, size_t len, uint32_t now);

/* Number of ids remembered now. */
size_t dedup_size(void);

#endif
