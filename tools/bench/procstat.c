#include "procstat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

static int read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return 0;
}

/* VmRSS of one process in KiB, -1 if unreadable. */
static long rss_kb(pid_t pid) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (read_file(path, buf, sizeof buf) != 0)
        return -1;
    const char *p = strstr(buf, "VmRSS:");
    return p ? strtol(p + 6, NULL, 10) : -1;
}

/* utime + stime of one process in clock ticks, -1 if unreadable. Fields 14 and 15 of
 * /proc/PID/stat, counted after the command name, which may itself hold spaces and parens. */
static long long cpu_ticks(pid_t pid) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_file(path, buf, sizeof buf) != 0)
        return -1;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2; /* field 3, state */
    for (int field = 3; field < 14; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    char *end;
    long long utime = strtoll(p, &end, 10);
    long long stime = strtoll(end, NULL, 10);
    return utime + stime;
}

void procstat_sample(const pid_t *pids, int n, procstat_t *out) {
    memset(out, 0, sizeof *out);
    out->t_ns = now_ns();
    out->ok = n > 0;
    long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < n; i++) {
        long rss = rss_kb(pids[i]);
        long long ticks = cpu_ticks(pids[i]);
        if (rss < 0 || ticks < 0) {
            out->ok = 0;
            continue;
        }
        out->rss_kb += (uint64_t)rss;
        out->cpu_s += (double)ticks / (double)(hz > 0 ? hz : 100);
    }
}
