/* A mailbox: the one way for other threads to hand work to a thread that runs a libuv loop.
 * Any thread posts (fn, arg); the loop's thread runs the tasks in the order they were posted,
 * soon after (one uv_async_t wake-up per batch). It is bounded: a post past the capacity is
 * refused and counted, so a burst can't grow memory without limit. Once the owner has closed
 * it, posts return MAILBOX_ERR_CLOSED instead of touching a loop that is gone.
 *
 * Storage is a list of fixed-size chunks (4 KiB) taken from a small spare list, so a post never
 * copies the queue and never calls malloc while holding the lock. */
#ifndef IMGATE_UTIL_MAILBOX_H
#define IMGATE_UTIL_MAILBOX_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* A task: runs on the owner's thread with the mailbox's ctx and the poster's arg. */
typedef void (*mailbox_fn)(void *ctx, void *arg);

enum {
    MAILBOX_ERR_FULL = -EAGAIN,  /* capacity reached; the task was not queued */
    MAILBOX_ERR_CLOSED = -EPIPE, /* the owner closed the mailbox */
    MAILBOX_ERR_NOMEM = -ENOMEM,
};

/* Counters, readable from any thread. */
typedef struct {
    uint64_t posted;     /* tasks queued */
    uint64_t dropped;    /* posts refused: full, closed or out of memory */
    uint32_t depth;      /* tasks waiting now */
    uint32_t high_water; /* the greatest depth seen */
} mailbox_stats_t;

struct mailbox_chunk;

typedef struct {
    pthread_mutex_t _lock;
    struct mailbox_chunk *_head, *_tail; /* queued tasks, oldest first */
    struct mailbox_chunk *_spare;        /* emptied chunks kept for reuse */
    uint32_t _tail_len;                  /* tasks in _tail (every other chunk is full) */
    uint32_t _spare_count;
    uint32_t _capacity;
    bool _closed;
    bool _async_live; /* _async is initialised and not yet closed */
    uv_async_t _async;
    void *_ctx;
    _Atomic uint64_t _posted, _dropped;
    _Atomic uint32_t _depth, _high_water;
} mailbox_t;

/* Binds mb to loop (call on the loop's thread, or before the loop runs). capacity: most tasks
 * waiting at once (>= 1). ctx is passed to every task. Returns 0 or a negative errno. */
int mailbox_init(mailbox_t *mb, uv_loop_t *loop, uint32_t capacity, void *ctx);

/* Queues fn(ctx, arg) to run on the owner's thread. Any thread, any time before mailbox_free.
 * Returns 0, MAILBOX_ERR_FULL, MAILBOX_ERR_CLOSED or MAILBOX_ERR_NOMEM; on error fn will not
 * run and arg still belongs to the caller. Posting from the owner's own thread also defers. */
int mailbox_post(mailbox_t *mb, mailbox_fn fn, void *arg);

/* The same, but not refused for capacity: for answers whose number is bounded elsewhere (one
 * per request in flight), which must not be lost when the mailbox is full of other work. */
int mailbox_post_always(mailbox_t *mb, mailbox_fn fn, void *arg);

/* Owner's thread: refuses every later post and closes the wake-up handle, so the loop can end.
 * Tasks already queued stay; run them with mailbox_drain. Idempotent. */
void mailbox_close(mailbox_t *mb);

/* Runs the tasks queued so far (the owner's thread, or any thread once the loop has ended).
 * Tasks posted meanwhile wait for the next wake-up. Returns how many ran. */
uint32_t mailbox_drain(mailbox_t *mb);

/* Frees the mailbox. Only when no thread can post any more; tasks still queued are run first
 * (they own their arguments). */
void mailbox_free(mailbox_t *mb);

void mailbox_get_stats(mailbox_t *mb, mailbox_stats_t *out);

#endif
