/* HTTP/1.1 client framing for the trigger: form POST requests and a response splitter, without
 * I/O. Responses are delimited by Content-Length or chunked encoding, so that many can be read
 * back from one keep-alive (or pipelined) connection. */
#ifndef IMGATE_BENCH_HTTPC_H
#define IMGATE_BENCH_HTTPC_H

#include <stddef.h>

#include "util/buf.h"

#define HTTPC_HEAD_MAX 16384 /* a response head longer than this is an error */

typedef struct {
    int status;
    int close;        /* "Connection: close" */
    const char *body; /* for chunked bodies: the raw chunked bytes (enough to scan) */
    size_t body_len;
} httpc_resp_t;

/* Appends a POST of an application/x-www-form-urlencoded body to out. 0 or -ENOMEM. */
int httpc_post(buf_t *out, const char *host_port, const char *path, const char *body,
               size_t body_len);
/* Splits one response off p[0..n): returns its total length and fills *r, 0 if incomplete, -1 if
 * it is malformed. */
long httpc_response(const char *p, size_t n, httpc_resp_t *r);

#endif
