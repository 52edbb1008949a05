#include "msgbody.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int msgbody_encode(char *dst, size_t cap, const msgbody_t *m, size_t pad_to) {
    /* Formatted apart and copied when it fits: a too-small dst is an answer (-1), not a
     * truncation (which gcc -O3 rightly warns about once it sees a small cap). */
    char tmp[80];
    int n;
    if (m->kind == 'd')
        n = snprintf(tmp, sizeof tmp, "d.%" PRIu64 ".%" PRIu64 ".%" PRId64, m->index, m->user,
                     m->sent_ns);
    else
        n = snprintf(tmp, sizeof tmp, "b.%" PRIu64 ".%" PRId64, m->index, m->sent_ns);
    if (n < 0 || (size_t)n >= cap || pad_to >= cap)
        return -1;
    memcpy(dst, tmp, (size_t)n + 1);
    if ((size_t)n + 1 < pad_to) {
        dst[n++] = '.';
        memset(dst + n, 'x', pad_to - (size_t)n);
        n = (int)pad_to;
        dst[n] = '\0';
    }
    return n;
}

/* Parses a decimal number at *p (advancing it); -1 if there is none. */
static int num(const char **p, const char *end, uint64_t *out) {
    const char *q = *p;
    uint64_t x = 0;
    while (q < end && *q >= '0' && *q <= '9' && x < UINT64_MAX / 10)
        x = x * 10 + (uint64_t)(*q++ - '0');
    if (q == *p)
        return -1;
    *p = q;
    *out = x;
    return 0;
}

int msgbody_decode(const char *p, size_t n, msgbody_t *m) {
    const char *end = p + n;
    if (n < 4 || (p[0] != 'b' && p[0] != 'd') || p[1] != '.')
        return -1;
    m->kind = p[0];
    p += 2;
    uint64_t t;
    if (num(&p, end, &m->index) != 0 || p >= end || *p++ != '.')
        return -1;
    m->user = 0;
    if (m->kind == 'd' && (num(&p, end, &m->user) != 0 || p >= end || *p++ != '.'))
        return -1;
    if (num(&p, end, &t) != 0 || (p < end && *p != '.'))
        return -1;
    m->sent_ns = (int64_t)t;
    return 0;
}
