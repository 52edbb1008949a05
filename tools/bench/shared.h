/* Memory shared by the parent and its worker processes (one anonymous MAP_SHARED mapping made
 * before fork): the phase the parent has started, each worker's counters and latency histograms,
 * and which users are logged in. Each counter and histogram has exactly one writer (its worker);
 * the parent reads counters live with relaxed atomics and histograms only after the workers
 * exited. */
#ifndef IMGATE_BENCH_SHARED_H
#define IMGATE_BENCH_SHARED_H

#include <stdatomic.h>
#include <stdint.h>

#include "hist.h"
#include "options.h"

/* Phases, in order. The parent sets shared_t.phase; a worker sets its ack to a phase when it has
 * finished that phase's own work (connect phase: every connection logged in or failed). */
typedef enum {
    PHASE_INIT,
    PHASE_CONNECT, /* connect and log in the worker's share (probes connect first) */
    PHASE_RUN,     /* hold (conns), receive (fanout/direct), churn (storm) */
    PHASE_STOP,    /* close everything, exit */
} phase_t;

/* Counters of one worker. */
typedef enum {
    CNT_CONNECTING,     /* TCP connects started */
    CNT_LOGGED_IN,      /* login replies with code 200 (churn re-logins included) */
    CNT_OPEN,           /* logged in now (gauge) */
    CNT_FAIL_CONNECT,   /* connect() failed: refused, reset, unreachable */
    CNT_FAIL_ADDR,      /* no source address/port: EADDRNOTAVAIL, EADDRINUSE */
    CNT_FAIL_TIMEOUT,   /* connect + upgrade + login not done within --conn-timeout */
    CNT_FAIL_HANDSHAKE, /* upgrade answered with a status other than 101 */
    CNT_FAIL_REFUSED,   /* ... of which 503: the server's app.maxConnections or upgradeRate */
    CNT_FAIL_LOGIN,     /* login answered with a code other than 200 */
    CNT_FAIL_CLOSED,    /* the server closed or reset a connection we did not close */
    CNT_FAIL_PROTO,     /* a frame or reply the client cannot read */
    CNT_HEARTBEATS,     /* heartbeat replies with code 200 */
    CNT_HEARTBEAT_FAIL, /* heartbeat replies with another code */
    CNT_PUSH_MSG,       /* msg pushes received (duplicates included) */
    CNT_UNIQUE,         /* first receipts of a message on its connection */
    CNT_DUP,            /* repeated receipts */
    CNT_MISROUTED,      /* a msg push that is not ours or not for this receiver */
    CNT_PUSH_ENTER,     /* enter pushes (counted, otherwise ignored) */
    CNT_PUSH_EXIT,      /* exit pushes */
    CNT_PUSH_OTHER,     /* other pushes (imgate's presence; msg pushes to probes) */
    CNT_PINGS,          /* probe ping replies */
    CNT_CHURN_OPS,      /* storm: close + reconnect + login completed */
    CNT_COUNT,
} counter_t;

/* Latency histograms of one worker. */
typedef enum {
    H_DELIVERY,     /* message send time -> receipt */
    H_LOGIN,        /* connect start -> login reply (connect phase) */
    H_PING_CONNECT, /* probe ping round trips during the connect phase */
    H_PING_RUN,     /* ... during the run phase */
    H_COUNT,
} hist_id_t;

typedef struct {
    _Atomic uint64_t cnt[CNT_COUNT];
    _Atomic int64_t last_delivery_ns; /* CLOCK_MONOTONIC of the latest first receipt */
    _Atomic int ack;                  /* the last phase this worker finished */
    int last_errno;                   /* of the latest connect failure, for the summary */
    _Atomic int step_ack;             /* the last --steps step (index) this worker finished */
    hist_t hist[H_COUNT];
    hist_t step_login[OPTS_MAX_STEPS];      /* H_LOGIN per step (--steps) */
    hist_t phase_delivery[OPTS_MAX_PHASES]; /* H_DELIVERY per --phases phase */
} __attribute__((aligned(64))) wstats_t;

typedef struct {
    _Atomic int phase;
    _Atomic int step;       /* connect phase: the --steps step being connected (index) */
    _Atomic int plan_phase; /* run phase: the --phases phase running (index), for histograms */
    int nworkers;           /* client workers + the probe worker, if any */
    long nusers;
    wstats_t *w;             /* [nworkers] */
    _Atomic uint8_t *logged; /* [nusers]: 1 while user i is logged in */
} shared_t;

/* Maps the shared memory for nworkers and nusers. NULL (errno set) on failure. */
shared_t *shared_create(int nworkers, long nusers);
/* Sum of one counter over all workers (relaxed). */
uint64_t shared_sum(const shared_t *s, counter_t c);
/* Max of last_delivery_ns over all workers. */
int64_t shared_last_delivery(const shared_t *s);
/* Whether every worker acknowledged --steps step `step` (the probe worker acks them all). */
int shared_all_stepped(const shared_t *s, int step);
/* Whether every worker acknowledged phase p. */
int shared_all_acked(const shared_t *s, phase_t p);

static inline void cnt_add(wstats_t *w, counter_t c, uint64_t n) {
    atomic_fetch_add_explicit(&w->cnt[c], n, memory_order_relaxed);
}
static inline void cnt_sub(wstats_t *w, counter_t c, uint64_t n) {
    atomic_fetch_sub_explicit(&w->cnt[c], n, memory_order_relaxed);
}

#endif
