#include "net/http_req.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where the reader is in the current request. */
enum { PH_HEAD, PH_BODY, PH_CHUNK_SIZE, PH_CHUNK_DATA, PH_CHUNK_END, PH_TRAILER, PH_READY };

/* A chunk-size line: at most 16 hex digits (zero-padding included) and CRLF; no extensions. */
#define CHUNK_LINE_MAX 18
/* The longest method token taken ("BASELINE-CONTROL" is 16). */
#define METHOD_MAX 32

static const char *const method_names[] = {
    [HTTP_DELETE] = "DELETE",   [HTTP_GET] = "GET",     [HTTP_HEAD] = "HEAD",
    [HTTP_POST] = "POST",       [HTTP_PUT] = "PUT",     [HTTP_CONNECT] = "CONNECT",
    [HTTP_OPTIONS] = "OPTIONS", [HTTP_TRACE] = "TRACE", [HTTP_PATCH] = "PATCH",
    [HTTP_OTHER] = "OTHER",
};

const char *http_method_name(int method) {
    return method >= 0 && method <= HTTP_OTHER ? method_names[method] : "OTHER";
}

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(uint8_t c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* What a field line may hold besides its CRLF: SP, HTAB, VCHAR, obs-text. */
static bool is_field_byte(uint8_t c) {
    return c == '\t' || (c >= ' ' && c != 0x7f);
}

static bool is_ows(uint8_t c) {
    return c == ' ' || c == '\t';
}

static int hex_value(uint8_t c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

http_reader_t *http_reader_new(uint32_t max_head, uint32_t max_body) {
    http_reader_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
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

/* Finds the end of the line starting at _pos, looking at most `budget` bytes ahead. Every byte
 * before the LF must be a field byte, and the LF must follow a CR (a bare CR or LF is how two
 * parsers come to read one stream two ways). Returns 1 with *len = the line without its CRLF,
 * 0 for more bytes, or an error: `over` once the budget is spent. */
static int read_line(http_reader_t *r, size_t budget, int over, size_t *len) {
    const uint8_t *d = r->_in.data;
    size_t end = r->_in.len - r->_pos < budget ? r->_in.len : r->_pos + budget;
    size_t i = r->_scan > r->_pos ? r->_scan : r->_pos;
    for (; i < end && d[i] != '\n'; i++)
        if (!is_field_byte(d[i]) && d[i] != '\r')
            return HTTP_REQ_ERR_BAD;
    r->_scan = i;
    if (i == end)
        return end - r->_pos == budget ? over : 0;
    if (i == r->_pos || d[i - 1] != '\r' || memchr(d + r->_pos, '\r', i - 1 - r->_pos))
        return HTTP_REQ_ERR_BAD;
    *len = i - 1 - r->_pos;
    return 1;
}

/* Checks a field line (name ":" OWS value OWS) at d[off..off+len) and returns the colon's
 * offset in the line, or -1. A name is a token directly followed by the colon. */
static long field_colon(const uint8_t *d, size_t len) {
    size_t i = 0;
    while (i < len && is_tchar(d[i]))
        i++;
    return i > 0 && i < len && d[i] == ':' ? (long)i : -1;
}

static int add_header(http_reader_t *r, size_t off, size_t len) {
    const uint8_t *d = r->_in.data + off;
    if (is_ows(d[0]))
        return HTTP_REQ_ERR_BAD; /* obs-fold, or white space before the first header */
    long colon = field_colon(d, len);
    if (colon < 0)
        return HTTP_REQ_ERR_BAD;
    if (r->req.header_count == HTTP_REQ_MAX_HEADERS)
        return HTTP_REQ_ERR_HEADERS;
    size_t v = (size_t)colon + 1, e = len;
    while (v < e && is_ows(d[v]))
        v++;
    while (e > v && is_ows(d[e - 1]))
        e--;
    int i = r->req.header_count++;
    r->req.header_names[i] = (http_span_t){(uint32_t)off, (uint32_t)colon};
    r->req.header_values[i] = (http_span_t){(uint32_t)(off + v), (uint32_t)(e - v)};
    return 0;
}

/* Splits the target into path and query. Origin form ("/p?q"), absolute form
 * ("http://host/p?q", whose path starts after the authority), and "*" for OPTIONS. */
static int split_target(http_req_t *req, const uint8_t *d) {
    const char *t = (const char *)d + req->url.off;
    size_t n = req->url.len, p = 0;
    if (memchr(t, '#', n))
        return HTTP_REQ_ERR_BAD; /* a fragment is never sent (RFC 9112 §3.2) */
    if (t[0] == '/' || (n == 1 && t[0] == '*' && req->method == HTTP_OPTIONS)) {
        p = 0;
    } else {
        size_t s = n >= 7 && strncasecmp(t, "http://", 7) == 0    ? 7
                   : n >= 8 && strncasecmp(t, "https://", 8) == 0 ? 8
                                                                  : 0;
        if (!s)
            return HTTP_REQ_ERR_BAD;
        p = s;
        while (p < n && t[p] != '/' && t[p] != '?')
            p++;
        if (p == s)
            return HTTP_REQ_ERR_BAD; /* no authority */
    }
    const char *q = memchr(t + p, '?', n - p);
    size_t path_end = q ? (size_t)(q - t) : n;
    req->path = (http_span_t){req->url.off + (uint32_t)p, (uint32_t)(path_end - p)};
    if (q)
        req->query =
            (http_span_t){req->url.off + (uint32_t)path_end + 1, (uint32_t)(n - path_end - 1)};
    return 0;
}

/* method SP request-target SP HTTP-version (RFC 9112 §3), nothing more. */
static int request_line(http_reader_t *r, size_t off, size_t len) {
    const uint8_t *d = r->_in.data + off;
    http_req_t *req = &r->req;
    size_t i = 0;
    while (i < len && is_tchar(d[i]))
        i++;
    if (i == 0 || i > METHOD_MAX || i == len || d[i] != ' ')
        return HTTP_REQ_ERR_BAD;
    req->method_name = (http_span_t){(uint32_t)off, (uint32_t)i};
    req->method = HTTP_OTHER;
    for (int m = 0; m < HTTP_OTHER; m++)
        if (strlen(method_names[m]) == i && memcmp(d, method_names[m], i) == 0)
            req->method = (uint8_t)m;
    size_t t = ++i;
    while (i < len && d[i] > ' ' && d[i] < 0x7f)
        i++;
    if (i == t || i == len || d[i] != ' ')
        return HTTP_REQ_ERR_BAD;
    req->url = (http_span_t){(uint32_t)(off + t), (uint32_t)(i - t)};
    const uint8_t *v = d + i + 1;
    if (len - i - 1 != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return HTTP_REQ_ERR_BAD;
    req->http_major = (uint8_t)(v[5] - '0');
    req->http_minor = (uint8_t)(v[7] - '0');
    if (req->http_major != 1)
        return HTTP_REQ_ERR_VERSION;
    return split_target(req, r->_in.data);
}

/* True if a comma-separated header value holds the token (case-insensitive). */
static bool has_token(const char *v, size_t n, const char *token) {
    size_t tl = strlen(token);
    for (size_t i = 0; i < n;) {
        while (i < n && (is_ows((uint8_t)v[i]) || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && is_ows((uint8_t)v[e - 1]))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
            return true;
    }
    return false;
}

/* Transfer-Encoding must end in chunked, which is the one coding we decode. */
static int transfer_coding(const char *v, size_t n) {
    int codings = 0;
    bool last_chunked = false;
    for (size_t i = 0; i < n;) {
        while (i < n && is_ows((uint8_t)v[i]))
            i++;
        size_t s = i;
        while (i < n && is_tchar((uint8_t)v[i]))
            i++;
        size_t e = i;
        while (i < n && is_ows((uint8_t)v[i]))
            i++;
        if (e == s || (i < n && v[i] != ','))
            return HTTP_REQ_ERR_BAD; /* empty element, or parameters */
        i++;
        if (last_chunked)
            return HTTP_REQ_ERR_BAD; /* chunked applied twice, or not last */
        last_chunked = e - s == 7 && strncasecmp(v + s, "chunked", 7) == 0;
        codings++;
    }
    if (!last_chunked)
        return HTTP_REQ_ERR_BAD;
    return codings == 1 ? 0 : HTTP_REQ_ERR_CODING;
}

/* The head is complete: decides the framing (RFC 9112 §6.3), refusing every combination that
 * a proxy in front could read differently. */
static int head_done(http_reader_t *r) {
    http_req_t *req = &r->req;
    const char *base = (const char *)r->_in.data;
    int hosts = 0, lengths = 0, codings = 0;
    bool close = false, keep = false, conn_upgrade = false, upgrade = false, expect = false;
    uint64_t length = 0;
    for (int i = 0; i < req->header_count; i++) {
        http_span_t nm = req->header_names[i];
        const char *name = base + nm.off, *v = base + req->header_values[i].off;
        size_t vl = req->header_values[i].len;
#define IS(lit) (nm.len == sizeof(lit) - 1 && strncasecmp(name, lit, sizeof(lit) - 1) == 0)
        if (IS("Host")) {
            hosts++;
            for (size_t k = 0; k < vl; k++)
                if (is_ows((uint8_t)v[k]) || v[k] == ',')
                    return HTTP_REQ_ERR_BAD;
        } else if (IS("Content-Length")) {
            if (++lengths > 1 || vl == 0 || vl > 19)
                return HTTP_REQ_ERR_BAD;
            for (size_t k = 0; k < vl; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return HTTP_REQ_ERR_BAD;
                length = length * 10 + (uint64_t)(v[k] - '0');
            }
        } else if (IS("Transfer-Encoding")) {
            if (++codings > 1)
                return HTTP_REQ_ERR_BAD;
            int rc = transfer_coding(v, vl);
            if (rc)
                return rc;
        } else if (IS("Connection")) {
            close |= has_token(v, vl, "close");
            keep |= has_token(v, vl, "keep-alive");
            conn_upgrade |= has_token(v, vl, "upgrade");
        } else if (IS("Upgrade")) {
            upgrade |= vl > 0;
        } else if (IS("Expect")) {
            expect |= has_token(v, vl, "100-continue");
        }
#undef IS
    }
    bool http11 = req->http_minor >= 1;
    if (hosts > 1 || (http11 && hosts == 0))
        return HTTP_REQ_ERR_BAD; /* RFC 9112 §3.2 */
    if (codings && (lengths || !http11))
        return HTTP_REQ_ERR_BAD; /* §6.1: both, or chunked in HTTP/1.0 */
    req->keep_alive = !close && (http11 || keep);
    req->upgrade = upgrade && conn_upgrade;
    req->body.off = (uint32_t)r->_pos;
    r->_body_end = r->_pos;
    r->_continue = expect && http11 && (codings || length);
    if (codings) {
        r->_chunked = true;
        r->_phase = PH_CHUNK_SIZE;
    } else if (length > r->_max_body) {
        r->_continue = false;
        return HTTP_REQ_ERR_TOO_LARGE;
    } else {
        r->_left = length;
        r->_phase = length ? PH_BODY : PH_READY;
    }
    return 0;
}

/* Reads head lines until the blank line. The head starts at offset 0: every byte up to the
 * blank line's LF counts against max_head, however the bytes arrive. */
static int read_head(http_reader_t *r) {
    while (r->_phase == PH_HEAD) {
        size_t len;
        int rc = read_line(r, r->_max_head - r->_pos, HTTP_REQ_ERR_HEADERS, &len);
        if (rc <= 0) {
            /* Refuse what cannot become a request line at once (a TLS hello, a binary probe),
             * not at the timeout. */
            if (rc == 0 && !r->req.method_name.len) {
                const uint8_t *d = r->_in.data + r->_pos;
                size_t n = r->_in.len - r->_pos, i = 0;
                while (i < n && i <= METHOD_MAX && is_tchar(d[i]))
                    i++;
                if (i > METHOD_MAX || (i < n && d[i] != ' ' && !(i == 0 && d[0] == '\r')))
                    return HTTP_REQ_ERR_BAD;
            }
            return rc;
        }
        size_t off = r->_pos;
        r->_pos += len + 2;
        if (!r->req.method_name.len)
            rc = len ? request_line(r, off, len) : 0; /* empty lines before it are ignored */
        else
            rc = len ? add_header(r, off, len) : head_done(r);
        if (rc)
            return rc;
    }
    return 0;
}

/* Moves up to _left body bytes from _pos to the end of the decoded body. */
static void take_body(http_reader_t *r) {
    size_t n = r->_in.len - r->_pos;
    if (n > r->_left)
        n = (size_t)r->_left;
    if (r->_body_end != r->_pos)
        memmove(r->_in.data + r->_body_end, r->_in.data + r->_pos, n);
    r->_pos += n;
    r->_body_end += n;
    r->_left -= n;
    r->req.body.len += (uint32_t)n;
}

/* A chunk-size line: 1..16 hex digits, CRLF. */
static int chunk_size(http_reader_t *r) {
    size_t len;
    int rc = read_line(r, CHUNK_LINE_MAX, HTTP_REQ_ERR_BAD, &len);
    if (rc <= 0)
        return rc;
    const uint8_t *d = r->_in.data + r->_pos;
    uint64_t size = 0;
    if (len == 0 || len > 16)
        return HTTP_REQ_ERR_BAD;
    for (size_t i = 0; i < len; i++) {
        int h = hex_value(d[i]);
        if (h < 0)
            return HTTP_REQ_ERR_BAD; /* extensions (";"), white space, a sign */
        size = size << 4 | (uint64_t)h;
    }
    r->_pos += len + 2;
    if (size > r->_max_body - r->req.body.len)
        return HTTP_REQ_ERR_TOO_LARGE;
    r->_left = size;
    r->_phase = size ? PH_CHUNK_DATA : PH_TRAILER;
    return 1;
}

/* CRLF right after chunk data; anything else would hide bytes from one reader or the other. */
static int chunk_end(http_reader_t *r) {
    const uint8_t *d = r->_in.data + r->_pos;
    size_t n = r->_in.len - r->_pos;
    if ((n >= 1 && d[0] != '\r') || (n >= 2 && d[1] != '\n'))
        return HTTP_REQ_ERR_BAD;
    if (n < 2)
        return 0;
    r->_pos += 2;
    r->_phase = PH_CHUNK_SIZE;
    return 1;
}

/* Trailer fields after the last chunk: checked like headers, dropped, within max_head. */
static int trailer_line(http_reader_t *r) {
    size_t len;
    int rc = read_line(r, r->_max_head - r->_trailer, HTTP_REQ_ERR_HEADERS, &len);
    if (rc <= 0)
        return rc;
    const uint8_t *d = r->_in.data + r->_pos;
    if (len && (is_ows(d[0]) || field_colon(d, len) < 0))
        return HTTP_REQ_ERR_BAD;
    r->_pos += len + 2;
    r->_trailer += (uint32_t)(len + 2);
    if (!len)
        r->_phase = PH_READY;
    return 1;
}

/* Drops the chunk framing read so far, so that it never piles up: the bytes not yet read move
 * down to the end of the decoded body. */
static void compact(http_reader_t *r) {
    size_t gap = r->_pos - r->_body_end;
    if (!gap)
        return;
    memmove(r->_in.data + r->_body_end, r->_in.data + r->_pos, r->_in.len - r->_pos);
    r->_in.len -= gap;
    r->_scan = r->_scan > gap ? r->_scan - gap : 0;
    r->_pos = r->_body_end;
}

/* Reads as far as the bytes go. */
static int parse(http_reader_t *r) {
    if (!r->_in.len)
        return HTTP_REQ_MORE; /* nothing yet (an empty feed) */
    int rc = read_head(r);
    while (rc >= 0 && r->_phase != PH_READY && r->_phase != PH_HEAD) {
        switch (r->_phase) {
        case PH_BODY:
        case PH_CHUNK_DATA:
            take_body(r);
            rc = r->_left ? 0 : 1;
            if (!r->_left)
                r->_phase = r->_phase == PH_BODY ? PH_READY : PH_CHUNK_END;
            break;
        case PH_CHUNK_SIZE:
            rc = chunk_size(r);
            break;
        case PH_CHUNK_END:
            rc = chunk_end(r);
            break;
        case PH_TRAILER:
            rc = trailer_line(r);
            break;
        }
        if (rc == 0)
            break;
    }
    if (rc < 0)
        return rc;
    if (r->_chunked)
        compact(r);
    r->req._base = (const char *)r->_in.data;
    return r->_phase == PH_READY ? HTTP_REQ_READY : HTTP_REQ_MORE;
}

int http_reader_feed(http_reader_t *r, const uint8_t *p, size_t n) {
    if (buf_append(&r->_in, p, n))
        return HTTP_REQ_ERR_NOMEM;
    r->req._base = (const char *)r->_in.data;
    if (r->_phase == PH_READY)
        return HTTP_REQ_READY; /* the caller must call http_reader_next first */
    return parse(r);
}

int http_reader_next(http_reader_t *r) {
    buf_consume(&r->_in, r->_pos);
    r->_pos = r->_scan = r->_body_end = 0;
    r->_left = 0;
    r->_trailer = 0;
    r->_phase = PH_HEAD;
    r->_chunked = r->_continue = false;
    memset(&r->req, 0, sizeof r->req);
    if (r->_in.len == 0) {
        if (r->_in.cap > 4096)
            buf_free(&r->_in); /* don't keep a large buffer on an idle keep-alive connection */
        return HTTP_REQ_MORE;
    }
    return parse(r);
}

bool http_reader_take_continue(http_reader_t *r) {
    bool c = r->_continue && r->_phase != PH_READY;
    r->_continue = false;
    return c;
}

const uint8_t *http_reader_rest(const http_reader_t *r, size_t *len) {
    *len = r->_in.len - r->_pos;
    return r->_in.data ? r->_in.data + r->_pos : (const uint8_t *)""; /* nothing read yet */
}

bool http_reader_partial(const http_reader_t *r) {
    return r->_phase == PH_READY ? r->_in.len > r->_pos : r->_in.len > 0;
}

const char *http_req_header(const http_req_t *req, const char *name, size_t *len) {
    size_t nl = strlen(name);
    for (int i = 0; i < req->header_count; i++) {
        http_span_t s = req->header_names[i];
        if (s.len == nl && strncasecmp(http_span_ptr(req, s), name, nl) == 0) {
            *len = req->header_values[i].len;
            return http_span_ptr(req, req->header_values[i]);
        }
    }
    *len = 0;
    return NULL;
}

bool http_span_eq(const http_req_t *req, http_span_t s, const char *str) {
    size_t n = strlen(str);
    return s.len == n && memcmp(http_span_ptr(req, s), str, n) == 0;
}
