/* What a run measured, and how it is shown: the live progress line on stderr, the human summary
 * and the final `RESULT k=v ...` line on stdout (keys listed in --help). */
#ifndef IMGATE_BENCH_REPORT_H
#define IMGATE_BENCH_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "hist.h"
#include "options.h"
#include "procstat.h"
#include "shared.h"
#include "trigger.h"

enum { SRV_START, SRV_CONNECTED, SRV_END, SRV_COUNT };

typedef struct {
    const opts_t *o;
    shared_t *sh;
    int nclient_workers;
    _Atomic int phase; /* for the progress line */
    int64_t t_start, t_connect, t_connected, t_run_end, t_end;
    int timed_out;
    int interrupted;
    procstat_t srv[SRV_COUNT];
    trigger_result_t trig;
    int trig_ran;
    uint64_t connected; /* logged in when the connect phase ended */
    uint64_t receivers; /* fanout: logged-in users of the first app when sending began */
    uint64_t expected;  /* deliveries that should arrive */
    /* filled at the end from the workers' shared memory */
    uint64_t cnt[CNT_COUNT];
    hist_t hist[H_COUNT];
    double bench_cpu_s;
} run_t;

/* One progress line for the state of the run at `now` (live counters). */
void report_progress(run_t *r, int64_t now, int tty);
/* Sums the workers' counters and merges their histograms into r (after they exited). */
void report_collect(run_t *r);
/* The human summary (unless --quiet) and the RESULT line, on out. */
void report_print(const run_t *r, FILE *out);

#endif
