#include "net/http_resp.h"

#include <stdio.h>
#include <string.h>

const char *http_status_text(int status) {
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

sbuf_t *http_resp_build(int status, const char *content_type, const char *extra_headers,
                        const void *body, size_t body_len, bool keep_alive) {
    char head[512];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nServer: imgate\r\n", status,
                     http_status_text(status));
    /* nosniff: a browser takes our types as they are (a JSON error is never run as a script). */
    if (content_type)
        n += snprintf(head + n, sizeof head - (size_t)n,
                      "Content-Type: %s\r\nX-Content-Type-Options: nosniff\r\n", content_type);
    n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\nConnection: %s\r\n",
                  body_len, keep_alive ? "keep-alive" : "close");
    size_t extra = extra_headers ? strlen(extra_headers) : 0;
    sbuf_t *s = sbuf_new((size_t)n + extra + 2 + body_len);
    if (!s)
        return NULL;
    memcpy(s->data, head, (size_t)n);
    memcpy(s->data + n, extra_headers ? extra_headers : "", extra);
    memcpy(s->data + n + extra, "\r\n", 2);
    if (body_len)
        memcpy(s->data + n + extra + 2, body, body_len);
    s->len = (uint32_t)((size_t)n + extra + 2 + body_len);
    return s;
}

sbuf_t *http_resp_error(int status, const char *msg, const char *extra_headers, bool keep_alive) {
    char body[512];
    /* msg is always one of our own constant texts: no JSON escaping is needed. */
    int n = snprintf(body, sizeof body, "{\"code\":%d,\"msg\":\"%s\",\"data\":null}", status, msg);
    if (n < 0 || (size_t)n >= sizeof body)
        n = snprintf(body, sizeof body, "{\"code\":%d,\"msg\":\"error\",\"data\":null}", status);
    return http_resp_build(status, "application/json; charset=utf-8", extra_headers, body,
                           (size_t)n, keep_alive);
}
