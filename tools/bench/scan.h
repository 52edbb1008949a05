/* Just enough JSON for the bench: find a key's string or integer value by scanning.
 *
 * The servers the bench drives (imgate, the Node `ws` baseline) write compact JSON
 * (`"key":value`, no spaces), and the values the bench reads (seq, cmd, code, msg) are its own
 * plain ASCII strings or small integers, so a scan for `"key":` is exact enough and many times
 * faster than a parser: a receiver may see millions of pushes a second. The first occurrence
 * wins; callers pick keys that do not also appear as string values. */
#ifndef IMGATE_BENCH_SCAN_H
#define IMGATE_BENCH_SCAN_H

#include <stddef.h>
#include <stdint.h>

/* The string value of "key" in p[0..n): points *val at its first byte and returns its length
 * (escapes not decoded), or -1 if the key is missing or its value is not a string. */
int scan_str(const char *p, size_t n, const char *key, const char **val);
/* The integer value of "key": 0 and *out set, or -1. */
int scan_int(const char *p, size_t n, const char *key, int64_t *out);
/* Whether s[0..n) equals the C string lit. */
int scan_eq(const char *s, int n, const char *lit);

#endif
