#include "scan.h"

#include <string.h>

/* Points at the first byte after `"key":`, or NULL. */
static const char *after_key(const char *p, size_t n, const char *key) {
    char pat[64];
    size_t kl = strlen(key);
    if (kl + 3 > sizeof pat)
        return NULL;
    pat[0] = '"';
    memcpy(pat + 1, key, kl);
    pat[kl + 1] = '"';
    pat[kl + 2] = ':';
    const char *hit = memmem(p, n, pat, kl + 3);
    return hit ? hit + kl + 3 : NULL;
}

int scan_str(const char *p, size_t n, const char *key, const char **val) {
    const char *v = after_key(p, n, key);
    const char *end = p + n;
    if (!v || v >= end || *v != '"')
        return -1;
    v++;
    const char *q = v;
    while (q < end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
    }
    if (q >= end)
        return -1;
    *val = v;
    return (int)(q - v);
}

int scan_int(const char *p, size_t n, const char *key, int64_t *out) {
    const char *v = after_key(p, n, key);
    const char *end = p + n;
    if (!v || v >= end)
        return -1;
    int neg = 0;
    if (*v == '-') {
        neg = 1;
        v++;
    }
    if (v >= end || *v < '0' || *v > '9')
        return -1;
    int64_t x = 0;
    while (v < end && *v >= '0' && *v <= '9' && x < INT64_MAX / 10)
        x = x * 10 + (*v++ - '0');
    *out = neg ? -x : x;
    return 0;
}

int scan_eq(const char *s, int n, const char *lit) {
    return n >= 0 && strlen(lit) == (size_t)n && memcmp(s, lit, (size_t)n) == 0;
}
