#include "procstat.h"

#include <dirent.h>
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

/* Field `field` (from 4, ppid) of /proc/PID/stat as a number, counted after the command name,
 * which may itself hold spaces and parens; *next gets the one after it. -1 if unreadable. */
static long long stat_field(pid_t pid, int field, long long *next) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_file(path, buf, sizeof buf) != 0)
        return -1;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2; /* field 3, state */
    for (int f = 3; f < field; f++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    char *end;
    long long v = strtoll(p, &end, 10);
    if (next)
        *next = strtoll(end, NULL, 10);
    return v;
}

/* utime + stime of one process in clock ticks (fields 14 and 15), -1 if unreadable. */
static long long cpu_ticks(pid_t pid) {
    long long stime = 0, utime = stat_field(pid, 14, &stime);
    return utime < 0 ? -1 : utime + stime;
}

static int add_one(pid_t pid, long hz, procstat_t *out) {
    long rss = rss_kb(pid);
    long long ticks = cpu_ticks(pid);
    if (rss < 0 || ticks < 0)
        return -1;
    out->nprocs++;
    out->rss_kb += (uint64_t)rss;
    out->cpu_s += (double)ticks / (double)hz;
    return 0;
}

/* Every process whose chain of parents reaches one of roots (roots included), into *out. */
static int descendants(const pid_t *roots, int n, pid_t **out) {
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    size_t cap = 1024, np = 0;
    pid_t *pid = malloc(cap * sizeof *pid), *ppid = malloc(cap * sizeof *ppid);
    struct dirent *e;
    while (pid && ppid && (e = readdir(d))) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (*end || v <= 0)
            continue;
        long long pp = stat_field((pid_t)v, 4, NULL);
        if (pp < 0)
            continue; /* gone meanwhile */
        if (np == cap) {
            cap *= 2;
            pid_t *a = realloc(pid, cap * sizeof *pid), *b = realloc(ppid, cap * sizeof *ppid);
            pid = a ? a : pid;
            ppid = b ? b : ppid;
            if (!a || !b)
                break;
        }
        pid[np] = (pid_t)v;
        ppid[np++] = (pid_t)pp;
    }
    closedir(d);
    pid_t *set = malloc((np + (size_t)n) * sizeof *set);
    if (!pid || !ppid || !set) {
        free(pid), free(ppid), free(set);
        return -1;
    }
    int ns = 0;
    for (int i = 0; i < n; i++)
        set[ns++] = roots[i];
    /* Parents come before their children once the set stops growing: repeat until it does. */
    for (int grew = 1; grew;) {
        grew = 0;
        for (size_t i = 0; i < np; i++) {
            int in = 0, parent_in = 0;
            for (int k = 0; k < ns && !(in && parent_in); k++) {
                in |= set[k] == pid[i];
                parent_in |= set[k] == ppid[i];
            }
            if (parent_in && !in) {
                set[ns++] = pid[i];
                grew = 1;
            }
        }
    }
    free(pid);
    free(ppid);
    *out = set;
    return ns;
}

void procstat_sample(const pid_t *pids, int n, int tree, procstat_t *out) {
    memset(out, 0, sizeof *out);
    out->t_ns = now_ns();
    out->ok = n > 0;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    pid_t *all = NULL;
    int nall = tree && n > 0 ? descendants(pids, n, &all) : -1;
    if (nall >= 0) { /* a descendant that exited meanwhile is not an error; a root is */
        for (int i = 0; i < nall; i++)
            if (add_one(all[i], hz, out) != 0 && i < n)
                out->ok = 0;
        free(all);
        return;
    }
    for (int i = 0; i < n; i++)
        if (add_one(pids[i], hz, out) != 0)
            out->ok = 0;
}
