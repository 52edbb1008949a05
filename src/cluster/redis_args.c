#include "cluster/redis_args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(redis_args_t *a) {
    if (a->count < a->_cap)
        return 0;
    int cap = a->_cap ? a->_cap * 2 : 64;
    size_t *off = realloc(a->_off, (size_t)cap * sizeof *off);
    if (!off)
        return -ENOMEM;
    a->_off = off;
    size_t *len = realloc(a->_len, (size_t)cap * sizeof *len);
    if (!len)
        return -ENOMEM;
    a->_len = len;
    a->_cap = cap;
    return 0;
}

void redis_args_add(redis_args_t *a, const void *p, size_t n) {
    if (grow(a) != 0 || buf_append(&a->_bytes, p, n) != 0) {
        a->_failed = 1;
        return;
    }
    a->_off[a->count] = a->_bytes.len - n;
    a->_len[a->count] = n;
    a->count++;
}

void redis_args_add_str(redis_args_t *a, const char *s) {
    redis_args_add(a, s, strlen(s));
}

void redis_args_addf(redis_args_t *a, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        a->_failed = 1;
        return;
    }
    redis_args_add(a, tmp, (size_t)n);
}

void redis_args_reset(redis_args_t *a) {
    a->_bytes.len = 0;
    a->count = 0;
    a->_failed = 0;
}

/* The argument pointers, for hiredis (which copies the bytes at once). NULL on OOM. */
static const char **argv_of(const redis_args_t *a) {
    const char **argv = a->_failed ? NULL : malloc((size_t)a->count * sizeof *argv);
    if (argv)
        for (int i = 0; i < a->count; i++)
            argv[i] = (const char *)a->_bytes.data + a->_off[i];
    return argv;
}

int redis_args_send(redis_args_t *a, redis_link_t *l, redis_reply_fn fn, void *priv) {
    int rc = -ENOMEM;
    const char **argv = argv_of(a);
    if (argv)
        rc = redis_link_command(l, fn, priv, a->count, argv, a->_len);
    free(argv);
    redis_args_reset(a);
    return rc;
}

int redis_args_subscribe(redis_args_t *a, redis_link_t *l, redisCallbackFn *fn, void *priv) {
    int rc = -ENOMEM;
    const char **argv = argv_of(a);
    if (argv)
        rc = redis_link_subscribe(l, fn, priv, a->count, argv, a->_len);
    free(argv);
    redis_args_reset(a);
    return rc;
}

void redis_args_free(redis_args_t *a) {
    buf_free(&a->_bytes);
    free(a->_off);
    free(a->_len);
    *a = (redis_args_t){0};
}
