#include "cluster/redis_uv.h"

#include <errno.h>
#include <stdlib.h>

typedef struct {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis has let go (cleanup) */
    int events;            /* UV_READABLE | UV_WRITABLE that hiredis waits for */
} redis_uv_t;

static void on_poll(uv_poll_t *h, int status, int events) {
    redis_uv_t *p = h->data;
    /* libuv reports a socket error (and stops the poll) as status < 0: hand it to hiredis as
     * readiness, so that its read or write sees the error and it disconnects. */
    if (status < 0)
        events = p->events | UV_READABLE;
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE)) /* the read may have ended the context */
        redisAsyncHandleWrite(p->ac);
}

static void update(redis_uv_t *p, int events) {
    p->events = events;
    if (events)
        uv_poll_start(&p->poll, events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void add_read(void *d) {
    redis_uv_t *p = d;
    update(p, p->events | UV_READABLE);
}

static void del_read(void *d) {
    redis_uv_t *p = d;
    update(p, p->events & ~UV_READABLE);
}

static void add_write(void *d) {
    redis_uv_t *p = d;
    update(p, p->events | UV_WRITABLE);
}

static void del_write(void *d) {
    redis_uv_t *p = d;
    update(p, p->events & ~UV_WRITABLE);
}

static void on_closed(uv_handle_t *h) {
    free(h->data);
}

static void cleanup(void *d) {
    redis_uv_t *p = d;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, on_closed);
}

int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop) {
    if (ac->ev.data)
        return -EINVAL;
    redis_uv_t *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    int r = uv_poll_init(loop, &p->poll, ac->c.fd);
    if (r) {
        free(p);
        return r;
    }
    p->poll.data = p;
    p->ac = ac;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}
