/* HTTP/1.1 responses, built into one shared buffer ready to queue on a connection. */
#ifndef IMGATE_NET_HTTP_RESP_H
#define IMGATE_NET_HTTP_RESP_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Reason phrase for a status code ("Unknown" if we never send it). */
const char *http_status_text(int status);

/* A complete response: status line, Content-Type (if non-NULL, then also X-Content-Type-Options:
 * nosniff), Content-Length, Connection,
 * `extra_headers` (zero or more "Name: value\r\n" lines, may be NULL), blank line, body.
 * NULL on OOM. */
sbuf_t *http_resp_build(int status, const char *content_type, const char *extra_headers,
                        const void *body, size_t body_len, bool keep_alive);

/* A JSON error body {"code":<status>,"msg":"<msg>","data":null} as a complete response. */
sbuf_t *http_resp_error(int status, const char *msg, const char *extra_headers, bool keep_alive);

#endif
