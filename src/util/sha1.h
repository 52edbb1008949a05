/* SHA-1 (FIPS 180-4) of a short message, for the WebSocket accept key (RFC 6455 §4.2.2).
 * Our own so that a handshake does not page in OpenSSL's provider machinery: its first EVP
 * digest touches ~2 MB of libcrypto code, which a freshly started node then carries in its RSS
 * (~100 bytes per connection at 19 000). Not for anything that needs collision resistance. */
#ifndef IMGATE_UTIL_SHA1_H
#define IMGATE_UTIL_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_DIGEST_LEN 20

void sha1(const void *data, size_t len, uint8_t out[SHA1_DIGEST_LEN]);

#endif
