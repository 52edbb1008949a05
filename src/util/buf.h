/* Growable byte buffers, and refcounted shared buffers for frames queued on many sockets. */
#ifndef IMGATE_UTIL_BUF_H
#define IMGATE_UTIL_BUF_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer owned by one thread. `data` may be NULL while `cap` is 0. */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} buf_t;

/* Makes room for `extra` more bytes. Returns 0 or -ENOMEM. */
int buf_reserve(buf_t *b, size_t extra);
/* Appends bytes. Returns 0 or -ENOMEM. */
int buf_append(buf_t *b, const void *p, size_t n);
int buf_append_str(buf_t *b, const char *s);
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first `n` bytes, moving the rest to the front. */
void buf_consume(buf_t *b, size_t n);
void buf_free(buf_t *b);

/* A shared buffer: immutable bytes with an atomic reference count, so that one encoded frame can
 * be queued on thousands of sockets in several threads and freed by the last writer.
 * The bytes are data[off .. off+len); `off` leaves room to prepend a frame header in place. */
typedef struct {
    atomic_uint _refs;
    uint32_t len;
    uint32_t off;
    uint8_t data[];
} sbuf_t;

/* A new shared buffer with refcount 1 and room for `cap` bytes; len = off = 0. NULL on OOM. */
sbuf_t *sbuf_new(size_t cap);
/* A new shared buffer holding a copy of p[0..n). */
sbuf_t *sbuf_from(const void *p, size_t n);
static inline const uint8_t *sbuf_bytes(const sbuf_t *s) {
    return s->data + s->off;
}
static inline sbuf_t *sbuf_ref(sbuf_t *s) {
    atomic_fetch_add_explicit(&s->_refs, 1, memory_order_relaxed);
    return s;
}
void sbuf_unref(sbuf_t *s);

#endif
