/* Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF),
 * resumable across fragments: feed the pieces of one message in order with the returned state. */
#ifndef IMGATE_NET_WS_UTF8_H
#define IMGATE_NET_WS_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_UTF8_ACCEPT 0u /* at a character boundary, all valid so far */
#define WS_UTF8_REJECT 1u /* invalid; sticky */

/* Validates p[0..n) continuing from `state` (WS_UTF8_ACCEPT for a new message). Returns the new
 * state: WS_UTF8_ACCEPT, WS_UTF8_REJECT, or another value meaning "inside a character". Fails
 * early: a prefix that can never become valid (e.g. 0xED 0xA0) is rejected at once. */
uint32_t ws_utf8_feed(uint32_t state, const uint8_t *p, size_t n);

/* True if p[0..n) is complete, valid UTF-8. */
bool ws_utf8_valid(const uint8_t *p, size_t n);

#endif
