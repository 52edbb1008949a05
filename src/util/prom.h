/* Prometheus text exposition format (version 0.0.4), the few pieces /metrics is made of: a
 * family's HELP and TYPE lines, then its samples. Names follow the conventions: snake_case,
 * units in the name, counters end in _total. */
#ifndef IMGATE_UTIL_PROM_H
#define IMGATE_UTIL_PROM_H

#include <stdint.h>

#include "util/buf.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* "# HELP name help\n# TYPE name type\n"; type is "counter" or "gauge". */
void prom_family(buf_t *out, const char *name, const char *type, const char *help);

/* "name{labels} value\n"; labels is "" or the inside of the braces (`reason="x"`). */
void prom_sample(buf_t *out, const char *name, const char *labels, uint64_t value);

/* The same with a fractional value (seconds). */
void prom_sample_double(buf_t *out, const char *name, const char *labels, double value);

/* Writes prefix + the camelCase name in snake_case + suffix into out[0..len), NUL-terminated
 * (truncated if it does not fit): ("imgate_", "busIn", "_total") → "imgate_bus_in_total". */
void prom_name(char *out, size_t len, const char *prefix, const char *camel, const char *suffix);

#endif
