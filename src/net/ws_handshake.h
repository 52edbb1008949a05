/* RFC 6455 §4.2 opening handshake: checks of the upgrade request and the accept key. */
#ifndef IMGATE_NET_WS_HANDSHAKE_H
#define IMGATE_NET_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "net/ws_error.h"

#define WS_ACCEPT_KEY_LEN 28 /* base64 of a 20-byte SHA-1 */

/* Computes Sec-WebSocket-Accept for a client key into out (NUL-terminated). Returns 0, or
 * WS_ERR_BAD_KEY if the key is not the base64 encoding of exactly 16 bytes (RFC 6455 §4.1):
 * 22 base64 characters and "==", optionally surrounded by spaces/tabs, which are ignored.
 */
int ws_handshake_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_KEY_LEN + 1]);

/* True if a comma-separated header value (Connection, Upgrade) contains `token`, compared
 * case-insensitively, ignoring spaces and tabs around items. */
bool ws_header_has_token(const char *value, size_t len, const char *token);

/* True if an Origin header value is allowed by `allowed`, a comma-separated list of origins
 * ("https://chat.example.com", "http://localhost:8080"), where "*" allows any, and an entry
 * whose host is "*.example.com" (scheme and port written as usual) allows any subdomain of
 * example.com (not example.com itself). Scheme and host
 * compare case-insensitively, the port exactly (a default port must be written as the browser
 * sends it: browsers leave out :443 and :80). An empty list allows any. */
bool ws_origin_allowed(const char *allowed, const char *origin, size_t len);

#endif
