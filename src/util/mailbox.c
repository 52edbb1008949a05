#include "util/mailbox.h"

#include <stdlib.h>
#include <string.h>

/* 255 tasks of 16 bytes and a link: one 4 KiB allocation. */
#define CHUNK_TASKS 255
/* Emptied chunks kept per mailbox: enough for ~1000 tasks per wake-up without malloc. */
#define SPARE_MAX 4

typedef struct {
    mailbox_fn fn;
    void *arg;
} task_t;

struct mailbox_chunk {
    struct mailbox_chunk *next;
    task_t t[CHUNK_TASKS];
};

static void on_async(uv_async_t *h) {
    mailbox_drain(h->data);
}

int mailbox_init(mailbox_t *mb, uv_loop_t *loop, uint32_t capacity, void *ctx) {
    memset(mb, 0, sizeof *mb);
    mb->_capacity = capacity ? capacity : 1;
    mb->_ctx = ctx;
    int r = pthread_mutex_init(&mb->_lock, NULL);
    if (r)
        return -r;
    r = uv_async_init(loop, &mb->_async, on_async);
    if (r) {
        pthread_mutex_destroy(&mb->_lock);
        return r;
    }
    mb->_async.data = mb;
    mb->_async_live = true;
    return 0;
}

static void count(_Atomic uint64_t *c) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Called with the lock held; may drop and retake it to allocate a chunk. */
static int enqueue(mailbox_t *mb, mailbox_fn fn, void *arg, bool bounded,
                   struct mailbox_chunk **fresh) {
    for (;;) {
        if (mb->_closed)
            return MAILBOX_ERR_CLOSED;
        uint32_t depth = atomic_load_explicit(&mb->_depth, memory_order_relaxed);
        if (bounded && depth >= mb->_capacity)
            return MAILBOX_ERR_FULL;
        if (!mb->_tail || mb->_tail_len == CHUNK_TASKS) {
            struct mailbox_chunk *c = *fresh;
            if (c) {
                *fresh = NULL;
            } else if ((c = mb->_spare)) {
                mb->_spare = c->next;
                mb->_spare_count--;
            } else {
                /* Never malloc under the lock: other posters would wait on the allocator. */
                pthread_mutex_unlock(&mb->_lock);
                *fresh = malloc(sizeof **fresh);
                pthread_mutex_lock(&mb->_lock);
                if (!*fresh)
                    return MAILBOX_ERR_NOMEM;
                continue; /* the queue may have changed meanwhile */
            }
            c->next = NULL;
            if (mb->_tail)
                mb->_tail->next = c;
            else
                mb->_head = c;
            mb->_tail = c;
            mb->_tail_len = 0;
        }
        mb->_tail->t[mb->_tail_len++] = (task_t){fn, arg};
        depth++;
        atomic_store_explicit(&mb->_depth, depth, memory_order_relaxed);
        if (depth > atomic_load_explicit(&mb->_high_water, memory_order_relaxed))
            atomic_store_explicit(&mb->_high_water, depth, memory_order_relaxed);
        count(&mb->_posted);
        /* The first task of a batch wakes the loop; the rest ride along. Sent under the lock, so
         * it can't race with mailbox_close closing the handle. */
        if (depth == 1)
            uv_async_send(&mb->_async);
        return 0;
    }
}

static int post(mailbox_t *mb, mailbox_fn fn, void *arg, bool bounded) {
    struct mailbox_chunk *fresh = NULL;
    pthread_mutex_lock(&mb->_lock);
    int rc = enqueue(mb, fn, arg, bounded, &fresh);
    if (rc)
        count(&mb->_dropped);
    pthread_mutex_unlock(&mb->_lock);
    free(fresh); /* allocated, then not needed: another poster added a chunk meanwhile */
    return rc;
}

int mailbox_post(mailbox_t *mb, mailbox_fn fn, void *arg) {
    return post(mb, fn, arg, true);
}

int mailbox_post_always(mailbox_t *mb, mailbox_fn fn, void *arg) {
    return post(mb, fn, arg, false);
}

void mailbox_close(mailbox_t *mb) {
    pthread_mutex_lock(&mb->_lock);
    mb->_closed = true;
    pthread_mutex_unlock(&mb->_lock);
    if (mb->_async_live) {
        uv_close((uv_handle_t *)&mb->_async, NULL);
        mb->_async_live = false;
    }
}

uint32_t mailbox_drain(mailbox_t *mb) {
    pthread_mutex_lock(&mb->_lock);
    struct mailbox_chunk *head = mb->_head;
    uint32_t tail_len = mb->_tail_len;
    uint32_t n = atomic_load_explicit(&mb->_depth, memory_order_relaxed);
    mb->_head = mb->_tail = NULL;
    mb->_tail_len = 0;
    atomic_store_explicit(&mb->_depth, 0, memory_order_relaxed);
    pthread_mutex_unlock(&mb->_lock);

    for (struct mailbox_chunk *c = head; c; c = c->next) {
        uint32_t len = c->next ? CHUNK_TASKS : tail_len;
        for (uint32_t i = 0; i < len; i++)
            c->t[i].fn(mb->_ctx, c->t[i].arg);
    }

    /* Keep a few chunks for the next batch; free the rest outside the lock. */
    struct mailbox_chunk *extra = NULL;
    pthread_mutex_lock(&mb->_lock);
    while (head) {
        struct mailbox_chunk *next = head->next;
        if (mb->_spare_count < SPARE_MAX) {
            head->next = mb->_spare;
            mb->_spare = head;
            mb->_spare_count++;
        } else {
            head->next = extra;
            extra = head;
        }
        head = next;
    }
    pthread_mutex_unlock(&mb->_lock);
    while (extra) {
        struct mailbox_chunk *next = extra->next;
        free(extra);
        extra = next;
    }
    return n;
}

void mailbox_free(mailbox_t *mb) {
    while (atomic_load_explicit(&mb->_depth, memory_order_relaxed))
        mailbox_drain(mb);
    if (mb->_async_live) {
        uv_close((uv_handle_t *)&mb->_async, NULL);
        mb->_async_live = false;
    }
    while (mb->_spare) {
        struct mailbox_chunk *next = mb->_spare->next;
        free(mb->_spare);
        mb->_spare = next;
    }
    pthread_mutex_destroy(&mb->_lock);
}

void mailbox_get_stats(mailbox_t *mb, mailbox_stats_t *out) {
    out->posted = atomic_load_explicit(&mb->_posted, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&mb->_dropped, memory_order_relaxed);
    out->depth = atomic_load_explicit(&mb->_depth, memory_order_relaxed);
    out->high_water = atomic_load_explicit(&mb->_high_water, memory_order_relaxed);
}
