#include "net/http_req.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { FILL_NONE, FILL_URL, FILL_FIELD, FILL_VALUE };

static http_reader_t *reader_of(http_parser *p) {
    return (http_reader_t *)((char *)p - offsetof(http_reader_t, _parser));
}

static uint32_t offset_of(const http_reader_t *r, const char *at) {
    return (uint32_t)(at - (const char *)r->_in.data);
}

/* Extends span s with at[0..len), which always directly follows it in the buffer. */
static void span_extend(http_reader_t *r, http_span_t *s, const char *at, size_t len) {
    if (s->len == 0)
        s->off = offset_of(r, at);
    s->len += (uint32_t)len;
    /* The head ends after its last span (plus the blank line); the parser keeps no count. */
    if (s->off + s->len > r->_head_bytes)
        r->_head_bytes = s->off + s->len;
}

static int on_message_begin(http_parser *p) {
    http_reader_t *r = reader_of(p);
    memset(&r->req, 0, sizeof r->req);
    r->_state = FILL_NONE;
    r->_headers_done = false;
    r->_head_bytes = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
    http_reader_t *r = reader_of(p);
    span_extend(r, &r->req.url, at, len);
    r->_state = FILL_URL;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    http_reader_t *r = reader_of(p);
    http_span_t *last = r->req.header_count ? &r->req.header_names[r->req.header_count - 1] : NULL;
    /* A new header starts after a value, or (empty value, no value callback) where the previous
     * name is not directly continued. */
    if (r->_state != FILL_FIELD || !last || last->off + last->len != offset_of(r, at)) {
        if (r->req.header_count == HTTP_REQ_MAX_HEADERS) {
            r->_state = FILL_NONE;
            r->_head_bytes = SIZE_MAX; /* too many headers: treated as too large */
            return -1;
        }
        r->req.header_count++;
        r->_state = FILL_FIELD;
    }
    span_extend(r, &r->req.header_names[r->req.header_count - 1], at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    http_reader_t *r = reader_of(p);
    /* An empty value produces no callback; a value callback always follows its field. */
    http_span_t *v = &r->req.header_values[r->req.header_count - 1];
    /* A value continued after a line break (obsolete folding, RFC 7230 §3.2.4) would hold a raw
     * CR LF: refuse it, as the RFC allows. */
    if (r->_state == FILL_VALUE && v->len && v->off + v->len != offset_of(r, at))
        return -1;
    r->_state = FILL_VALUE;
    span_extend(r, v, at, len);
    return 0;
}

static int on_headers_complete(http_parser *p) {
    http_reader_t *r = reader_of(p);
    r->_headers_done = true;
    /* The head ends at its blank line; measured so, the limit is the same however the bytes
     * arrived (a trickled head is refused once the buffered bytes pass the limit). */
    const uint8_t *end = memmem(r->_in.data, r->_in.len, "\r\n\r\n", 4);
    size_t head = end ? (size_t)(end - r->_in.data) + 4 : r->_head_bytes + 2;
    r->_head_bytes = head;
    if (head > r->_max_head)
        return -1;
    if (p->content_length != ULLONG_MAX && p->content_length > r->_max_body) {
        r->_head_bytes = 0;
        r->_state = FILL_NONE;
        r->req.body.len = UINT32_MAX; /* marks "body too large" for feed() */
        return -1;
    }
    r->req.method = (uint8_t)p->method;
    r->req.http_major = (uint8_t)p->http_major;
    r->req.http_minor = (uint8_t)p->http_minor;
    r->req.keep_alive = http_should_keep_alive(p) != 0;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    http_reader_t *r = reader_of(p);
    if ((uint64_t)r->req.body.len + len > r->_max_body) {
        r->req.body.len = UINT32_MAX;
        return -1;
    }
    /* Chunked bodies arrive in pieces separated by chunk framing: keep them contiguous by moving
     * each piece to follow the previous one (the framing bytes are already parsed). */
    if (r->req.body.len != 0 && offset_of(r, at) != r->req.body.off + r->req.body.len)
        memmove(r->_in.data + r->req.body.off + r->req.body.len, at, len);
    else if (r->req.body.len == 0)
        r->req.body.off = offset_of(r, at);
    r->req.body.len += (uint32_t)len;
    return 0;
}

static int on_message_complete(http_parser *p) {
    http_reader_t *r = reader_of(p);
    r->_ready = true;
    r->req.upgrade = p->upgrade;
    r->req.keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

http_reader_t *http_reader_new(uint32_t max_head, uint32_t max_body) {
    http_reader_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    http_parser_init(&r->_parser, HTTP_REQUEST);
    r->_max_head = max_head;
    r->_max_body = max_body;
    return r;
}

void http_reader_free(http_reader_t *r) {
    if (!r)
        return;
    buf_free(&r->_in);
    free(r);
}

/* Splits the URL into path and query once the request is complete. */
static void split_url(http_req_t *req) {
    const char *u = http_span_ptr(req, req->url);
    const char *q = memchr(u, '?', req->url.len);
    req->path = req->url;
    if (q) {
        req->path.len = (uint32_t)(q - u);
        req->query.off = req->url.off + req->path.len + 1;
        req->query.len = req->url.len - req->path.len - 1;
    }
}

/* Runs the parser over the bytes not yet parsed. */
static int parse(http_reader_t *r) {
    size_t todo = r->_in.len - r->_parsed;
    if (todo == 0)
        return HTTP_REQ_MORE;
    size_t n =
        http_parser_execute(&r->_parser, &settings, (const char *)r->_in.data + r->_parsed, todo);
    r->_parsed += n;
    enum http_errno e = HTTP_PARSER_ERRNO(&r->_parser);
    if (r->_ready) {
        r->req._base = (const char *)r->_in.data;
        split_url(&r->req);
        return HTTP_REQ_READY;
    }
    if (e != HPE_OK && e != HPE_PAUSED) {
        if (r->req.body.len == UINT32_MAX)
            return HTTP_REQ_ERR_TOO_LARGE;
        if (r->_head_bytes > r->_max_head)
            return HTTP_REQ_ERR_HEADERS;
        return HTTP_REQ_ERR_BAD;
    }
    if (!r->_headers_done && r->_in.len > r->_max_head)
        return HTTP_REQ_ERR_HEADERS;
    return HTTP_REQ_MORE;
}

int http_reader_feed(http_reader_t *r, const uint8_t *p, size_t n) {
    if (r->_ready)
        return HTTP_REQ_READY; /* the caller must call http_reader_next first */
    if (buf_append(&r->_in, p, n))
        return HTTP_REQ_ERR_NOMEM;
    return parse(r);
}

int http_reader_next(http_reader_t *r) {
    buf_consume(&r->_in, r->_parsed);
    r->_parsed = 0;
    r->_ready = false;
    r->_headers_done = false;
    r->_head_bytes = 0;
    memset(&r->req, 0, sizeof r->req);
    http_parser_pause(&r->_parser, 0);
    if (r->_in.len == 0 && r->_in.cap > 4096)
        buf_free(&r->_in); /* don't keep a large buffer on an idle keep-alive connection */
    return parse(r);
}

const uint8_t *http_reader_rest(const http_reader_t *r, size_t *len) {
    *len = r->_in.len - r->_parsed;
    return r->_in.data + r->_parsed;
}

bool http_reader_partial(const http_reader_t *r) {
    return r->_in.len > r->_parsed || (r->_parsed > 0 && !r->_ready);
}

const char *http_req_header(const http_req_t *req, const char *name, size_t *len) {
    size_t nl = strlen(name);
    for (int i = 0; i < req->header_count; i++) {
        http_span_t s = req->header_names[i];
        if (s.len == nl && strncasecmp(http_span_ptr(req, s), name, nl) == 0) {
            /* http_parser drops leading whitespace, not trailing (RFC 7230 §3.2: OWS). */
            const char *v = http_span_ptr(req, req->header_values[i]);
            size_t vl = req->header_values[i].len;
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            *len = vl;
            return v;
        }
    }
    *len = 0;
    return NULL;
}

bool http_span_eq(const http_req_t *req, http_span_t s, const char *str) {
    size_t n = strlen(str);
    return s.len == n && memcmp(http_span_ptr(req, s), str, n) == 0;
}
