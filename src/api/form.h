/* application/x-www-form-urlencoded fields (request bodies and query strings). */
#ifndef IMGATE_API_FORM_H
#define IMGATE_API_FORM_H

#include <stddef.h>

#include "util/buf.h"

enum {
    FORM_ABSENT = 0,
    FORM_FOUND = 1,
    FORM_BAD = -1, /* a malformed %-escape */
};

/* Finds the first field named `key` in s[0..n) and decodes its value ('+' is a space, %XX a
 * byte) into out, replacing its contents and NUL-terminating it (out->len excludes the NUL).
 * Returns FORM_FOUND, FORM_ABSENT or FORM_BAD. */
int form_get(const char *s, size_t n, const char *key, buf_t *out);

#endif
