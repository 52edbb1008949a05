/* hiredis async on a libuv loop: our own event glue instead of hiredis 0.14's adapter, whose
 * poll callback drops libuv's error status (a reset or refused socket), so hiredis would never
 * notice a dead connection. Here an error makes hiredis read and write, which finds the error
 * and disconnects. */
#ifndef IMGATE_CLUSTER_REDIS_UV_H
#define IMGATE_CLUSTER_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Lets loop drive ac's socket. Returns 0 or -ENOMEM / a libuv error. */
int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
