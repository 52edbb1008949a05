/* The text of the messages the bench sends, which carries what a receiver needs to count it:
 *
 *     room message    b.<index>.<send time ns>[.xxx…]
 *     direct message  d.<index>.<receiver user index>.<send time ns>[.xxx…]
 *
 * The send time is CLOCK_MONOTONIC (see clock.h), so receivers in other processes compute the
 * latency; the padding brings the text to --msg-size bytes. Only unreserved characters, so the
 * text needs no escaping in a JSON string nor in a form body. */
#ifndef IMGATE_BENCH_MSGBODY_H
#define IMGATE_BENCH_MSGBODY_H

#include <stddef.h>
#include <stdint.h>

#define MSGBODY_MAX 65536 /* --msg-size limit: imgate's default app.maxMessageSize */

typedef struct {
    char kind; /* 'b' room, 'd' direct */
    uint64_t index;
    uint64_t user; /* direct only */
    int64_t sent_ns;
} msgbody_t;

/* Writes the text into dst (cap bytes, NUL-terminated); returns its length, or -1 if cap is too
 * small. pad_to = 0 means no padding. */
int msgbody_encode(char *dst, size_t cap, const msgbody_t *m, size_t pad_to);
/* Parses a text; 0 or -1 if it is not one of ours. */
int msgbody_decode(const char *p, size_t n, msgbody_t *m);

#endif
