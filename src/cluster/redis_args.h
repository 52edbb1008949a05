/* A Redis command being put together: its arguments are appended one by one (copied into one
 * buffer), then sent with redis_args_send. For the scripts' long argument lists (a batch of 500
 * presence changes is 2 500 arguments). */
#ifndef IMGATE_CLUSTER_REDIS_ARGS_H
#define IMGATE_CLUSTER_REDIS_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/redis_link.h"
#include "util/buf.h"

typedef struct {
    buf_t _bytes;
    size_t *_off, *_len;
    int count;
    int _cap;
    int _failed; /* an append ran out of memory: sending fails */
} redis_args_t;

void redis_args_add(redis_args_t *a, const void *p, size_t n);
void redis_args_add_str(redis_args_t *a, const char *s);
void redis_args_addf(redis_args_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sends the command (see redis_link_command) and empties a for reuse. */
int redis_args_send(redis_args_t *a, redis_link_t *l, redis_reply_fn fn, void *priv);

/* The same as SUBSCRIBE on l (see redis_link_subscribe). */
int redis_args_subscribe(redis_args_t *a, redis_link_t *l, redisCallbackFn *fn, void *priv);

/* Empties a for reuse, keeping its memory. */
void redis_args_reset(redis_args_t *a);
void redis_args_free(redis_args_t *a);

#endif
