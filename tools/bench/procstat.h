/* Server resource samples from /proc: resident memory and CPU time of the server's processes,
 * taken before and after each phase. */
#ifndef IMGATE_BENCH_PROCSTAT_H
#define IMGATE_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

typedef struct {
    int ok;          /* every pid could be read */
    int nprocs;      /* processes summed */
    uint64_t rss_kb; /* VmRSS summed */
    double cpu_s;    /* utime + stime summed, seconds, of the processes alive now (one that
                        exited meanwhile takes its CPU time with it) */
    int64_t t_ns;    /* when taken */
} procstat_t;

/* Samples the given processes (n may be 0: then ok = 0). With tree set, each one counts with
 * all its descendants as /proc shows them now (a supervisor's children, restarted or not). */
void procstat_sample(const pid_t *pids, int n, int tree, procstat_t *out);

#endif
