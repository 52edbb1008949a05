/* HTTP/1.1 requests read from a connection (RFC 9112), parsed strictly by our own reader: bytes
 * are collected in a per-connection buffer only while the connection speaks HTTP, and requests
 * are handed out one at a time (pipelining keeps order). Everything a lenient parser would
 * guess at is refused: bare LF or CR, white space before a header's colon, folded or
 * control-character values, a second Content-Length or Host, Content-Length with
 * Transfer-Encoding, chunk extensions, anything but CRLF after chunk data. Limits: the head
 * (request line + headers, and a chunked body's trailer), the body after decoding; chunk
 * framing is dropped as it is read, so what is buffered stays within head + body. */
#ifndef IMGATE_NET_HTTP_REQ_H
#define IMGATE_NET_HTTP_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define HTTP_REQ_MAX_HEADERS 64

/* Methods routes tell apart; any other token is HTTP_OTHER (its name is in req->method_name). */
typedef enum {
    HTTP_DELETE,
    HTTP_GET,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_PUT,
    HTTP_CONNECT,
    HTTP_OPTIONS,
    HTTP_TRACE,
    HTTP_PATCH,
    HTTP_OTHER,
} http_method_t;

typedef struct {
    uint32_t off, len; /* into the reader's buffer */
} http_span_t;

/* One parsed request. Strings are views into the reader's buffer (not NUL-terminated; use the
 * accessors), valid until http_reader_next is called again. */
typedef struct {
    const char *_base;
    uint8_t method; /* http_method_t */
    uint8_t http_major, http_minor;
    bool keep_alive;
    bool upgrade; /* an Upgrade header and Connection: upgrade */
    http_span_t method_name;
    http_span_t url;   /* the request target as sent */
    http_span_t path;  /* its path: without scheme and authority (absolute form) and query */
    http_span_t query; /* after '?', without it */
    http_span_t body;  /* decoded (chunk framing removed) */
    int header_count;
    http_span_t header_names[HTTP_REQ_MAX_HEADERS];
    http_span_t header_values[HTTP_REQ_MAX_HEADERS]; /* without surrounding white space */
} http_req_t;

enum {
    HTTP_REQ_MORE = 0,             /* need more bytes */
    HTTP_REQ_READY = 1,            /* a request is complete */
    HTTP_REQ_ERR_BAD = -400,       /* malformed, or framing that could be read two ways */
    HTTP_REQ_ERR_TOO_LARGE = -413, /* body over the limit */
    HTTP_REQ_ERR_HEADERS = -431,   /* head (or trailer) over the limit, or too many headers */
    HTTP_REQ_ERR_NOMEM = -500,     /* out of memory */
    HTTP_REQ_ERR_CODING = -501,    /* a transfer coding other than chunked */
    HTTP_REQ_ERR_VERSION = -505,   /* not HTTP/1.x */
};

typedef struct http_reader {
    buf_t _in;
    size_t _pos;      /* bytes of _in read so far (the current request starts at 0) */
    size_t _scan;     /* bytes of the current line already checked */
    size_t _body_end; /* where the next decoded body byte goes */
    uint64_t _left;   /* body or chunk bytes still to come */
    uint32_t _max_head, _max_body;
    uint32_t _trailer; /* trailer bytes read */
    uint8_t _phase;
    bool _chunked;
    bool _continue; /* the client waits for "100 Continue" before sending the body */
    http_req_t req;
} http_reader_t;

/* Returns a new reader or NULL on OOM. */
http_reader_t *http_reader_new(uint32_t max_head, uint32_t max_body);
void http_reader_free(http_reader_t *r);

/* Appends bytes and parses. Returns HTTP_REQ_READY when r->req is complete, HTTP_REQ_MORE, or an
 * HTTP_REQ_ERR_* (the connection should answer that status and close). While a request is
 * READY, bytes fed are kept for after it and READY is returned again: it is still the one to
 * handle. */
int http_reader_feed(http_reader_t *r, const uint8_t *p, size_t n);

/* After handling a READY request: drops it and parses what follows (pipelined bytes). Same
 * return values as http_reader_feed. */
int http_reader_next(http_reader_t *r);

/* True once per request whose client sent "Expect: 100-continue" and waits for the interim
 * answer before it sends the body. */
bool http_reader_take_continue(http_reader_t *r);

/* After a READY request: the bytes that followed it (after an upgrade, WebSocket data). */
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
/* "GET", "POST", ... for a known method; "OTHER" for HTTP_OTHER. */
const char *http_method_name(int method);

#endif
