/* A worker process: one epoll loop driving its share of the connections through the phases the
 * parent sets in shared memory (see shared.h), counting into its own wstats_t.
 *
 * A client worker owns users [first, first+count): it connects and logs them in at its part of
 * --rate, heartbeats them, counts the pushes they receive and, in storm mode, churns them. The
 * probe worker owns the --probe connections, which never log in and only ping: it has nothing
 * else to do, so the round trips it measures are the server's, not the bench's own queueing. */
#ifndef IMGATE_BENCH_WORKER_H
#define IMGATE_BENCH_WORKER_H

#include "options.h"
#include "shared.h"

typedef struct {
    int index;   /* into shared_t.w */
    int probe;   /* 1: the probe worker */
    int nclient; /* client workers in all, to split --rate */
    long first;  /* first user index (client worker) */
    long count;  /* users, or probes */
} worker_spec_t;

/* Runs the worker until the parent sets PHASE_STOP (or dies); never returns. */
void worker_main(const opts_t *o, shared_t *sh, const worker_spec_t *spec)
    __attribute__((noreturn));

#endif
