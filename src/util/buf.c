#include "util/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int buf_reserve(buf_t *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf_t *b, const void *p, size_t n) {
    if (n == 0)
        return 0;
    if (buf_reserve(b, n))
        return -ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int buf_append_str(buf_t *b, const char *s) {
    return buf_append(b, s, strlen(s));
}

int buf_printf(buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof small)
        return buf_append(b, small, (size_t)n);
    if (buf_reserve(b, (size_t)n + 1))
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void buf_consume(buf_t *b, size_t n) {
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void buf_free(buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

sbuf_t *sbuf_new(size_t cap) {
    sbuf_t *s = malloc(sizeof *s + cap);
    if (!s)
        return NULL;
    atomic_init(&s->_refs, 1);
    s->len = 0;
    s->off = 0;
    return s;
}

sbuf_t *sbuf_from(const void *p, size_t n) {
    sbuf_t *s = sbuf_new(n);
    if (!s)
        return NULL;
    memcpy(s->data, p, n);
    s->len = (uint32_t)n;
    return s;
}

void sbuf_unref(sbuf_t *s) {
    if (s && atomic_fetch_sub_explicit(&s->_refs, 1, memory_order_acq_rel) == 1)
        free(s);
}
