/* RFC 6455 §4.2 opening handshake helpers. */
#include "net/ws_handshake.h"

#include <string.h>
#include <strings.h>

#include "net/ws_error.h"
#include "util/sha1.h"

/* RFC 6455 §1.3: the GUID appended to the client's key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#define WS_KEY_B64_LEN 24 /* base64 of 16 bytes: 22 characters + "==" */

static bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

static bool is_b64(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

static char lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static const char b64_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 (RFC 4648 §4) of a 20-byte digest: 6 groups of 3 bytes, then 2 bytes and one '='. */
static void b64_encode_20(const uint8_t in[SHA1_DIGEST_LEN], char out[WS_ACCEPT_KEY_LEN]) {
    char *o = out;
    for (int i = 0; i < 18; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = b64_digits[v >> 18];
        *o++ = b64_digits[(v >> 12) & 63];
        *o++ = b64_digits[(v >> 6) & 63];
        *o++ = b64_digits[v & 63];
    }
    uint32_t v = (uint32_t)in[18] << 16 | (uint32_t)in[19] << 8;
    *o++ = b64_digits[v >> 18];
    *o++ = b64_digits[(v >> 12) & 63];
    *o++ = b64_digits[(v >> 6) & 63];
    *o = '=';
}

/* The key must be exactly 22 base64 characters and "==" (16 bytes, §4.1); surrounding spaces
 * and tabs (HTTP optional whitespace) are ignored. Nonzero bits in the unused low 4 bits of the
 * 22nd character are tolerated, as most decoders do: the key still decodes to 16 bytes. The accept
 * value is computed over the key text as sent (trimmed), not over its decoded bytes. */
int ws_handshake_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_KEY_LEN + 1]) {
    while (key_len && is_ows(key[0])) {
        key++;
        key_len--;
    }
    while (key_len && is_ows(key[key_len - 1]))
        key_len--;
    if (key_len != WS_KEY_B64_LEN || key[22] != '=' || key[23] != '=')
        return WS_ERR_BAD_KEY;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64(key[i]))
            return WS_ERR_BAD_KEY;
    /* 22 checked characters and "==" always decode to 16 bytes: nothing else to check. */
    uint8_t text[WS_KEY_B64_LEN + sizeof ws_guid - 1];
    memcpy(text, key, WS_KEY_B64_LEN);
    memcpy(text + WS_KEY_B64_LEN, ws_guid, sizeof ws_guid - 1);
    uint8_t md[SHA1_DIGEST_LEN];
    sha1(text, sizeof text, md);
    b64_encode_20(md, out);
    out[WS_ACCEPT_KEY_LEN] = '\0';
    return 0;
}

bool ws_header_has_token(const char *value, size_t len, const char *token) {
    size_t tlen = strlen(token);
    if (tlen == 0)
        return false;
    size_t i = 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t end = i;
        while (start < end && is_ows(value[start]))
            start++;
        while (end > start && is_ows(value[end - 1]))
            end--;
        if (end - start == tlen) {
            size_t k = 0;
            while (k < tlen && lower(value[start + k]) == lower(token[k]))
                k++;
            if (k == tlen)
                return true;
        }
        i++; /* past the comma (or past the end, ending the loop) */
    }
    return false;
}

/* One list entry e[0..el) against the origin o[0..ol). */
static bool origin_matches(const char *e, size_t el, const char *o, size_t ol) {
    if (el == 1 && e[0] == '*')
        return true;
    const char *sep = memchr(e, ':', el);
    if (!sep || (size_t)(e + el - sep) < 6 || memcmp(sep, "://*.", 5) != 0)
        return el == ol && strncasecmp(e, o, ol) == 0;
    /* A host of "*.rest": the origin's host is one or more labels, then ".rest". */
    size_t scheme = (size_t)(sep - e) + 3; /* "https://" */
    const char *rest = sep + 4;            /* ".example.com[:port]" */
    size_t rl = (size_t)(e + el - rest);
    if (ol <= scheme + rl || strncasecmp(e, o, scheme) != 0)
        return false;
    const char *host = o + scheme;
    size_t hl = ol - scheme;
    if (hl <= rl || strncasecmp(host + hl - rl, rest, rl) != 0)
        return false;
    for (const char *p = host; p < host + hl - rl; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            return false; /* only host labels (letters, digits, '-', '.') before the suffix */
    return true;
}

bool ws_origin_allowed(const char *allowed, const char *origin, size_t len) {
    if (!allowed || !*allowed)
        return true;
    for (const char *p = allowed; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n && origin_matches(p, n, origin, len))
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}
