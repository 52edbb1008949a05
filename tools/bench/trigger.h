/* The trigger, run by the parent once every receiver is logged in: sends the fanout or direct
 * messages over HTTP (one keep-alive connection, one request at a time or pipelined batches) or
 * over a sender WebSocket connection, stamping each with its send time, and checks each reply. */
#ifndef IMGATE_BENCH_TRIGGER_H
#define IMGATE_BENCH_TRIGGER_H

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "hist.h"
#include "options.h"
#include "shared.h"

typedef struct {
    _Atomic uint64_t answered; /* replies read so far (live, for the progress line) */
    uint64_t ok;               /* replies that say delivered */
    uint64_t failures;         /* error replies, sendResults false, requests lost to errors */
    int64_t t_first;           /* first request written */
    int64_t t_last;            /* last reply read */
    hist_t rtt;                /* request written -> its reply */
    char error[160];           /* the first error, for the summary */
} trigger_result_t;

/* Sends --messages messages; returns 0, or -1 if it had to stop early (connection failure,
 * deadline, *stop set), with r->error saying why. */
int trigger_run(const opts_t *o, shared_t *sh, int64_t deadline, volatile sig_atomic_t *stop,
                trigger_result_t *r);

#endif
