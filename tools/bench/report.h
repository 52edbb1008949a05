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

/* One --steps step of the connect phase, as it ended. */
typedef struct {
    long target;
    uint64_t connected; /* logged in at its end */
    uint64_t logins;    /* login replies during the step */
    int64_t t_end;      /* CLOCK_MONOTONIC at its end */
    int64_t step_ns;    /* its duration (the pauses for --step-cmd left out) */
    int64_t elapsed_ns; /* since the connect phase began, pauses left out */
    uint64_t cnt[CNT_COUNT];
    hist_t login;          /* set-up latency of the step's connections */
    procstat_t srv0, srv1; /* server processes at its start and end */
    procstat_t cli0, cli1; /* the bench's own processes */
} step_result_t;

/* One --phases phase of the run. */
typedef struct {
    int ran;
    int64_t t_start, t_end;
    uint64_t c0[CNT_COUNT], c1[CNT_COUNT];
    procstat_t srv0, srv1, cli0, cli1;
    uint64_t receivers, expected; /* fanout, direct */
    int64_t last_delivery;        /* latest first receipt when the phase ended */
    trigger_result_t trig;
    hist_t delivery; /* filled by report_collect */
} phase_result_t;

typedef struct {
    const opts_t *o;
    shared_t *sh;
    int nclient_workers;
    _Atomic int phase; /* for the progress line */
    int64_t t_start, t_connect, t_connected, t_run_end, t_end;
    int timed_out;
    int interrupted;
    procstat_t srv[SRV_COUNT];
    procstat_t cli[SRV_COUNT]; /* the bench's processes (parent + workers) at the same points */
    int64_t connect_pause_ns;  /* connect phase time spent in --step-cmd */
    step_result_t steps[OPTS_MAX_STEPS];
    int nsteps_done;
    phase_result_t ph[OPTS_MAX_PHASES];
    _Atomic int plan_index; /* the --phases phase running, -1 none (progress line) */
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
/* The human summary (unless --quiet) and the RESULT line, on out; PHASE lines before it. */
void report_print(const run_t *r, FILE *out);
/* The STEP line of step i (and, unless --quiet, a human line on stderr), as it ends. */
void report_step(const run_t *r, int i, FILE *out);
/* A human line on stderr for --phases phase i, as it ends (unless --quiet). */
void report_phase_done(const run_t *r, int i);

#endif
