/* HTTP/1.1 requests read from a connection: bytes are collected in a per-connection buffer only
 * while the connection speaks HTTP, and parsed with Node's http_parser. Requests are handed out one
 * at a time (pipelining keeps order). Limits: request line + headers, body. */
#ifndef IMGATE_NET_HTTP_REQ_H
#define IMGATE_NET_HTTP_REQ_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define HTTP_REQ_MAX_HEADERS 64

typedef struct {
    uint32_t off, len; /* into the reader's buffer */
} http_span_t;

/* One parsed request. Strings are views into the reader's buffer (not NUL-terminated; use the
 * accessors), valid until http_reader_next is called again. */
typedef struct {
    const char *_base;
    uint8_t method; /* enum http_method */
    uint8_t http_major, http_minor;
    bool keep_alive;
    bool upgrade; /* http_parser saw Upgrade + Connection: upgrade */
    http_span_t url;
    http_span_t path;  /* url without the query */
    http_span_t query; /* after '?', without it */
    http_span_t body;
    int header_count;
    http_span_t header_names[HTTP_REQ_MAX_HEADERS];
    http_span_t header_values[HTTP_REQ_MAX_HEADERS];
} http_req_t;

enum {
    HTTP_REQ_MORE = 0,             /* need more bytes */
    HTTP_REQ_READY = 1,            /* a request is complete */
    HTTP_REQ_ERR_BAD = -400,       /* malformed */
    HTTP_REQ_ERR_TOO_LARGE = -413, /* body over the limit */
    HTTP_REQ_ERR_HEADERS = -431,   /* request line + headers over the limit, or too many */
    HTTP_REQ_ERR_NOMEM = -500,
};

typedef struct http_reader {
    http_parser _parser;
    buf_t _in;
    size_t _parsed;     /* bytes of _in given to the parser so far */
    size_t _head_bytes; /* bytes of the current request's head */
    uint32_t _max_head, _max_body;
    uint8_t _state; /* which span the parser is filling */
    bool _ready;
    bool _headers_done;
    http_req_t req;
} http_reader_t;

/* Returns a new reader or NULL on OOM. */
http_reader_t *http_reader_new(uint32_t max_head, uint32_t max_body);
void http_reader_free(http_reader_t *r);

/* Appends bytes and parses. Returns HTTP_REQ_READY when r->req is complete, HTTP_REQ_MORE, or an
 * HTTP_REQ_ERR_* (the connection should answer that status and close). */
int http_reader_feed(http_reader_t *r, const uint8_t *p, size_t n);

/* After handling a READY request: drops it and parses what follows (pipelined bytes). Same
 * return values as http_reader_feed. */
int http_reader_next(http_reader_t *r);

/* After an upgrade request: the bytes that followed its head (already WebSocket data). */
const uint8_t *http_reader_rest(const http_reader_t *r, size_t *len);

/* True if bytes of an unfinished request are buffered. */
bool http_reader_partial(const http_reader_t *r);

/* Header lookup by name (case-insensitive); the first match, or NULL. *len gets its length. */
const char *http_req_header(const http_req_t *req, const char *name, size_t *len);
/* A span as a pointer. */
static inline const char *http_span_ptr(const http_req_t *req, http_span_t s) {
    return req->_base + s.off;
}
/* True if span equals the NUL-terminated string s exactly. */
bool http_span_eq(const http_req_t *req, http_span_t s, const char *str);

#endif
