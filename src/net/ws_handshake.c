/* RFC 6455 §4.2 opening handshake helpers. */
#include "net/ws_handshake.h"

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "net/ws_error.h"

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
    /* EVP_DecodeBlock counts the padding as zero bytes: 24 characters always give 18. */
    unsigned char raw[18];
    if (EVP_DecodeBlock(raw, (const unsigned char *)key, WS_KEY_B64_LEN) != 18)
        return WS_ERR_BAD_KEY;

    unsigned char text[WS_KEY_B64_LEN + sizeof ws_guid - 1];
    memcpy(text, key, WS_KEY_B64_LEN);
    memcpy(text + WS_KEY_B64_LEN, ws_guid, sizeof ws_guid - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_Digest(text, sizeof text, md, &md_len, EVP_sha1(), NULL) || md_len != 20)
        return WS_ERR_NOMEM;
    if (EVP_EncodeBlock((unsigned char *)out, md, 20) != WS_ACCEPT_KEY_LEN)
        return WS_ERR_NOMEM;
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
