#include "api/form.h"

#include <string.h>

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into out. Returns 0 or FORM_BAD. */
static int decode(const char *s, size_t n, buf_t *out) {
    out->len = 0;
    if (buf_reserve(out, n + 1))
        return FORM_BAD;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            if (i + 2 >= n)
                return FORM_BAD;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return FORM_BAD;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        out->data[out->len++] = (uint8_t)ch;
    }
    out->data[out->len] = '\0';
    return 0;
}

int form_get(const char *s, size_t n, const char *key, buf_t *out) {
    size_t klen = strlen(key);
    size_t i = 0;
    while (i < n) {
        const char *end = memchr(s + i, '&', n - i);
        size_t flen = end ? (size_t)(end - (s + i)) : n - i;
        const char *field = s + i;
        const char *eq = memchr(field, '=', flen);
        size_t nlen = eq ? (size_t)(eq - field) : flen;
        if (nlen == klen && memcmp(field, key, klen) == 0) {
            const char *v = eq ? eq + 1 : field + flen;
            size_t vlen = eq ? flen - nlen - 1 : 0;
            return decode(v, vlen, out) == 0 ? FORM_FOUND : FORM_BAD;
        }
        i += flen + 1;
    }
    return FORM_ABSENT;
}
