/* Server resource samples from /proc: resident memory and CPU time of the server's processes,
 * taken before and after each phase. */
#ifndef IMGATE_BENCH_PROCSTAT_H
#define IMGATE_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

typedef struct {
    int ok;          /* every pid could be read */
    uint64_t rss_kb; /* VmRSS summed */
    double cpu_s;    /* utime + stime summed, seconds */
    int64_t t_ns;    /* when taken */
} procstat_t;

/* Samples the given processes (n may be 0: then ok = 0). */
void procstat_sample(const pid_t *pids, int n, procstat_t *out);

#endif
