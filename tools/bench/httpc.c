#include "httpc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int httpc_post(buf_t *out, const char *host_port, const char *path, const char *body,
               size_t body_len) {
    int r = buf_printf(out,
                       "POST %s HTTP/1.1\r\n"
                       "Host: %s\r\n"
                       "Content-Type: application/x-www-form-urlencoded\r\n"
                       "Content-Length: %zu\r\n"
                       "\r\n",
                       path, host_port, body_len);
    return r ? r : buf_append(out, body, body_len);
}

/* Whether the header line [p, e) is `name: value` with a value containing `want`
 * (case-insensitive). */
static int header_has(const char *p, const char *e, const char *name, const char *want) {
    size_t nl = strlen(name);
    if ((size_t)(e - p) <= nl || strncasecmp(p, name, nl) != 0 || p[nl] != ':')
        return 0;
    size_t wl = strlen(want);
    for (const char *q = p + nl + 1; q + wl <= e; q++)
        if (strncasecmp(q, want, wl) == 0)
            return 1;
    return 0;
}

/* Length of a chunked body at p[0..n) through its last chunk, 0 if incomplete, -1 if bad. */
static long chunked_len(const char *p, size_t n) {
    size_t off = 0;
    for (;;) {
        const char *eol = memmem(p + off, n - off, "\r\n", 2);
        if (!eol)
            return 0;
        char *end;
        unsigned long sz = strtoul(p + off, &end, 16);
        if (end == p + off)
            return -1;
        off = (size_t)(eol - p) + 2;
        if (sz == 0) { /* no trailers from the servers we drive: expect the final CRLF */
            if (n - off < 2)
                return 0;
            return (long)(off + 2);
        }
        if (n - off < sz + 2)
            return 0;
        off += sz + 2;
    }
}

long httpc_response(const char *p, size_t n, httpc_resp_t *r) {
    if (n >= 5 && memcmp(p, "HTTP/", 5) != 0)
        return -1;
    const char *head_end = memmem(p, n, "\r\n\r\n", 4);
    if (!head_end)
        return n > HTTPC_HEAD_MAX ? -1 : 0;
    memset(r, 0, sizeof *r);
    const char *sp = memchr(p, ' ', (size_t)(head_end - p));
    if (!sp)
        return -1;
    for (const char *q = sp + 1; q < head_end && *q >= '0' && *q <= '9'; q++)
        r->status = r->status * 10 + (*q - '0');
    long content_length = -1;
    int chunked = 0;
    const char *line = memmem(p, (size_t)(head_end - p) + 2, "\r\n", 2) + 2;
    while (line < head_end) {
        const char *e = memmem(line, (size_t)(head_end + 2 - line), "\r\n", 2);
        if (strncasecmp(line, "content-length:", 15) == 0)
            content_length = strtol(line + 15, NULL, 10);
        else if (header_has(line, e, "transfer-encoding", "chunked"))
            chunked = 1;
        else if (header_has(line, e, "connection", "close"))
            r->close = 1;
        line = e + 2;
    }
    size_t head = (size_t)(head_end + 4 - p);
    long body;
    if (chunked)
        body = chunked_len(p + head, n - head);
    else if (content_length >= 0)
        body = (size_t)content_length <= n - head ? content_length : 0;
    else
        body = r->status == 204 || r->status == 304 ? 0 : -1; /* read-until-close: unsupported */
    if (body < 0)
        return -1;
    if (body == 0 && (chunked || content_length > 0))
        return 0;
    r->body = p + head;
    r->body_len = (size_t)body;
    return (long)(head + (size_t)body);
}
