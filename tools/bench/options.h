/* Command-line options of imgate-bench: one table of defaults, parsing, validation, --help. */
#ifndef IMGATE_BENCH_OPTIONS_H
#define IMGATE_BENCH_OPTIONS_H

#include <stdint.h>
#include <sys/types.h>

#define OPTS_MAX_APPS        16
#define OPTS_MAX_SERVER_PIDS 256 /* a cluster of processes on one machine, and its Redis */
#define OPTS_MAX_PROCS       128 /* worker processes: 1 M connections at ~8 000-15 000 each */
#define OPTS_MAX_CLIENTS     2000000
#define OPTS_MAX_MESSAGES    10000000
#define OPTS_MAX_PROBES      64
#define OPTS_MAX_SRC_IPS     250 /* 127.0.0.2 .. 127.0.0.251 */
#define OPTS_PREFIX_MAX      10  /* userIDs are < 20 bytes: prefix + up to 7 digits + "snd" */
#define OPTS_MAX_NODES       16  /* --ws-port list: server nodes the clients are spread over */
#define OPTS_MAX_STEPS       8   /* --steps: connect-phase milestones */
#define OPTS_MAX_PHASES      8   /* --phases: measurements on the held connections */

typedef enum { MODE_CONNS, MODE_FANOUT, MODE_DIRECT, MODE_STORM } bench_mode_t;
typedef enum { TRIG_HTTP, TRIG_HTTP_PIPELINED, TRIG_WS, TRIG_WS_PIPELINED } trigger_kind_t;
/* What the clients speak: imgate's JSON envelopes at /acc, or Engine.IO v4 / Socket.IO (eio.h). */
typedef enum { PROTO_IMGATE, PROTO_SOCKETIO } bench_proto_t;
/* One entry of --phases (conns mode): what to do with the held connections. */
typedef enum { PH_IDLE, PH_FANOUT, PH_DIRECT } phase_kind_t;

typedef struct {
    phase_kind_t kind;
    double seconds;   /* idle: how long */
    long messages;    /* fanout, direct */
    double send_rate; /* fanout, direct: messages/s (0: as fast as the trigger goes) */
} plan_phase_t;

typedef struct {
    char host[64];
    int ws_port; /* the first of ws_ports: the WebSocket trigger's node */
    int ws_ports[OPTS_MAX_NODES];
    int nnodes; /* user i connects to ws_ports[i mod nnodes] */
    int http_port;
    char path[128];
    int path_set; /* --path given: otherwise the protocol's default */
    bench_proto_t proto;
    uint32_t target_nodes; /* direct: bit k set = send to users of node k; 0 = all */
    double send_rate; /* fanout/direct: messages/s the trigger keeps to; 0 = as fast as it can */
    bench_mode_t mode;
    long clients;
    double rate; /* connects/s over all workers; 0 = as fast as --inflight allows */
    long messages;
    long msg_size;
    trigger_kind_t trigger;
    int trigger_set; /* --trigger given (--phases: else each phase kind's default) */
    long batch;
    int batch_set; /* requests written at once by the pipelined triggers */
    uint32_t apps[OPTS_MAX_APPS];
    int napps;
    double hold;
    int procs;
    int src_ips;
    double timeout;
    pid_t server_pids[OPTS_MAX_SERVER_PIDS];
    int nserver_pids;
    int server_tree; /* each server pid counts with all its descendants, found at each sample */
    int probes;
    double probe_interval_ms;
    double duration;
    double drain;
    double settle;
    double conn_timeout;
    int inflight;
    double heartbeat;
    int quiet;
    char user_prefix[OPTS_PREFIX_MAX + 1];
    long steps[OPTS_MAX_STEPS]; /* connect-phase milestones, ascending; the last is clients */
    int nsteps;
    int steps_set;                     /* --steps given: STEP lines are printed */
    double step_rates[OPTS_MAX_STEPS]; /* --step-rates: connects/s in each step (else --rate) */
    int nstep_rates;
    plan_phase_t phases[OPTS_MAX_PHASES]; /* conns: run these instead of --hold */
    int nphases;
    const char *step_cmd; /* run through /bin/sh at each milestone, with its label as $1 */
    long msg_base;        /* index of this trigger run's first message (--phases) */
    long fanout_total;    /* room messages of the whole run: receivers' bitmaps are this long */
    long direct_total;    /* direct messages of the whole run */
} opts_t;

/* Fills o from argv (defaults first). Returns 0 to run, 1 after --help, -1 after printing an
 * error to stderr. */
int opts_parse(opts_t *o, int argc, char **argv);
const char *opts_mode_name(bench_mode_t m);
const char *opts_trigger_name(trigger_kind_t t);
const char *opts_proto_name(bench_proto_t p);
const char *opts_phase_name(phase_kind_t k);

#endif
