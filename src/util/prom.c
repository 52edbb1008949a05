#include "util/prom.h"

void prom_family(buf_t *out, const char *name, const char *type, const char *help) {
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void prom_sample(buf_t *out, const char *name, const char *labels, uint64_t value) {
    if (labels[0])
        buf_printf(out, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
    else
        buf_printf(out, "%s %llu\n", name, (unsigned long long)value);
}

void prom_sample_double(buf_t *out, const char *name, const char *labels, double value) {
    if (labels[0])
        buf_printf(out, "%s{%s} %.9g\n", name, labels, value);
    else
        buf_printf(out, "%s %.9g\n", name, value);
}

void prom_name(char *out, size_t len, const char *prefix, const char *camel, const char *suffix) {
    size_t o = 0;
    if (!len)
        return;
    for (const char *p = prefix; *p && o + 1 < len; p++)
        out[o++] = *p;
    for (const char *p = camel; *p && o + 1 < len; p++) {
        char ch = *p;
        if (ch >= 'A' && ch <= 'Z') {
            if (p != camel && o + 2 < len)
                out[o++] = '_';
            ch = (char)(ch - 'A' + 'a');
        }
        out[o++] = ch;
    }
    for (const char *p = suffix; *p && o + 1 < len; p++)
        out[o++] = *p;
    out[o] = 0;
}
