#include "options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msgbody.h"

static const char usage[] =
    "usage: imgate-bench --mode conns|fanout|direct|storm [options]\n"
    "\n"
    "Pressure test for imgate (and any server speaking its WebSocket protocol subset: login, "
    "ping,\n"
    "heartbeat replies; msg pushes from POST /user/sendMessageAll and /user/sendMessage), or,\n"
    "with --proto socketio, for a Socket.IO 4 server such as bench/socketio-node.js.\n"
    "Loopback only. Forks --procs worker processes, each holding its share of the connections\n"
    "(a process may hold 20000 descriptors), bound to source addresses 127.0.0.2, .3, ...\n"
    "\n"
    "modes:\n"
    "  conns   connect and log in --clients users at --rate, hold them --hold s (heartbeat every\n"
    "          --heartbeat s), report connects/s, failures and the server's memory per "
    "connection;\n"
    "          with --phases, run those on the held connections instead of the hold\n"
    "  fanout  log in --clients users, then send --messages room messages (--trigger); every\n"
    "          receiver counts each message: deliveries/s, latency send->receipt, lost, "
    "duplicated\n"
    "  direct  log in --clients users, then --messages sendMessage posts, each to a random\n"
    "          logged-in user (pipelined in --batch), each counted at its receiver\n"
    "  storm   log in --clients users as fast as possible while --probe connections send ping\n"
    "          every --probe-interval ms; then for --duration s each worker closes a random\n"
    "          connection and connects/logs in a new one, at --rate ops/s (0: as fast as "
    "possible)\n"
    "\n"
    "options (default):\n"
    "  --host A            server address, 127.x.x.x only (127.0.0.1)\n"
    "  --ws-port P[,P...]  WebSocket port(s) (8089); with several (the nodes of a cluster),\n"
    "                      user i connects to the (i mod count)-th\n"
    "  --http-port P       HTTP API port the messages are posted to: one node (8080)\n"
    "  --path P            WebSocket path (imgate: /acc, socketio: /socket.io/)\n"
    "  --proto P           what the clients speak (imgate):\n"
    "                        imgate    JSON envelopes; login, heartbeat, ping commands\n"
    "                        socketio  Engine.IO v4 over WebSocket only: the path gets\n"
    "                                  ?EIO=4&transport=websocket&userID=<user>&appID=<app>;\n"
    "                                  the server's 0{...} is answered with 40 and its\n"
    "                                  40{\"sid\":...} counts as the login; its 2 pings get 3\n"
    "                                  (counted as heartbeats); pushes are "
    "42[\"msg\",{...\"msg\":\n"
    "                                  text...}]; probes send 42<id>[\"ping\"] and wait for\n"
    "                                  its ack. Triggers: http, http-pipelined\n"
    "  --mode M            conns|fanout|direct|storm (conns)\n"
    "  --clients N         connections, one user each (1000)\n"
    "  --rate R            connects/s over all workers in the connect phase, churn ops/s in "
    "storm;\n"
    "                      0 = as fast as --inflight allows (0)\n"
    "  --inflight K        connections being set up at once per worker (1000)\n"
    "  --conn-timeout S    seconds for connect + upgrade + login, and for a close handshake (10)\n"
    "  --messages M        messages in fanout/direct (100)\n"
    "  --msg-size B        pad message texts to B bytes, <= 65536 (0: ~25 bytes, no padding)\n"
    "  --trigger T         how messages are sent (fanout: http, direct: http-pipelined):\n"
    "                        http            POSTs one after another on a keep-alive connection,\n"
    "                                        each waiting for its reply\n"
    "                        http-pipelined  --batch POSTs written at once, then their replies "
    "read\n"
    "                        ws              a sender connection (user <prefix>snd, not counted "
    "as\n"
    "                                        a receiver) sends sendMessageAll/sendMessage "
    "requests,\n"
    "                                        each waiting for its reply (imgate only)\n"
    "                        ws-pipelined    the same, --batch requests at once\n"
    "  --batch B           requests per pipelined write (fanout: all --messages; direct: 100)\n"
    "  --send-rate R       fanout/direct: messages/s; the trigger sends what is due, at most\n"
    "                      --batch at once (0: as fast as the trigger goes) (0)\n"
    "  --target-nodes K[,K...]\n"
    "                      direct: send only to users connected to these nodes (indexes into\n"
    "                      --ws-port, from 0), e.g. the posted node's own users or the others'\n"
    "                      (all)\n"
    "  --app A[,A...]      appIDs; user i logs in to the (i mod count)-th; room messages go to\n"
    "                      the first one and only its users count as receivers (101)\n"
    "  --hold S            conns: seconds to hold the connections (10)\n"
    "  --heartbeat S       seconds between heartbeats of each logged-in connection (30)\n"
    "  --procs P           client worker processes, plus one for the probes if any\n"
    "                      (ceil(clients/15000))\n"
    "  --src-ips K         source addresses 127.0.0.2 .. 127.0.0.(K+1), connection i uses the\n"
    "                      (i mod K)-th; ~28000 ports each, ~64000 with the wider port range\n"
    "                      (max(procs, ceil(clients/25000)))\n"
    "  --probe N           ping probe connections, in a process of their own (storm: 4, else 0)\n"
    "  --probe-interval MS ms between a probe's ping reply and its next ping (10)\n"
    "  --duration S        storm: seconds of churn (10)\n"
    "  --drain S           fanout/direct: stop waiting for deliveries after S s without one (10)\n"
    "  --settle S          with --server-pid: first wait up to S s until the server is idle\n"
    "                      (under 5 % CPU), e.g. done closing the previous run's clients (30)\n"
    "  --timeout S         the whole run, then it stops and reports what it has (300)\n"
    "  --server-pid PID    sample the server's RSS and CPU (/proc) before and after each phase\n"
    "  --server-pids A,B   the same for several server processes (summed)\n"
    "  --server-tree       count each --server-pids process with all its descendants, looked\n"
    "                      up at each sample (a supervisor and the children it restarts)\n"
    "  --steps N[,N...]    connect in steps: up to N logged-in users (each worker its share),\n"
    "                      wait until every set-up of the step ended, print a STEP line, run\n"
    "                      --step-cmd, go on at --rate; --clients is always the last step\n"
    "  --step-rates R[,R...]\n"
    "                      connects/s in each step, in --steps order (the last one also for\n"
    "                      any step after it); 0 = as fast as --inflight allows (--rate)\n"
    "  --step-cmd CMD      run `/bin/sh -c CMD sh LABEL` and wait for it at each milestone:\n"
    "                      start, step-<N> after each step, <kind><k> after each --phases\n"
    "                      phase (k from 1), end (after the workers exited); while it runs the\n"
    "                      connections are held. Its environment has IMGATE_BENCH_PID (this\n"
    "                      process) and IMGATE_BENCH_WORKERS (the worker pids, comma-separated)\n"
    "  --phases LIST       conns: after the connect phase, in order, on the same connections:\n"
    "                        idle:S      hold S s (heartbeats go on): the cost of idling\n"
    "                        fanout:M    M room messages (--trigger, default http) to the\n"
    "                                    first app, every logged-in user of it a receiver\n"
    "                        direct:M@R  M direct messages to random logged-in users at R/s\n"
    "                                    (--trigger, default http-pipelined; R 0: flat out)\n"
    "                      each reported on a PHASE line (at most 8 phases)\n"
    "  --user-prefix S     userIDs are S<index>, at most 10 bytes (u)\n"
    "  --quiet             no progress line and no human summary: only the RESULT line\n"
    "  --help              this text\n"
    "\n"
    "Progress goes to stderr (one updating line a second on a terminal, else a line every 5 s);\n"
    "the summary and, last, one line `RESULT k=v ...` go to stdout. RESULT keys (always all of\n"
    "them, in this order; '-' where the mode does not measure it; times in microseconds):\n"
    "  mode proto nodes clients procs src_ips trigger messages msg_size send_rate target_nodes\n"
    "  elapsed_s timed_out\n"
    "  connected connect_s connect_per_s login_p50_us login_p99_us login_max_us\n"
    "  connect_failures addr_failures timeouts handshake_failures refused_503 login_failures\n"
    "  closed_by_server protocol_errors heartbeats heartbeat_failures enter_pushes exit_pushes\n"
    "  other_pushes receivers expected deliveries lost dup misrouted deliveries_per_s\n"
    "  p50_us p90_us p99_us max_us send_s sends_per_s send_failures req_p50_us req_p99_us\n"
    "  probes pings ping_p50_us ping_p90_us ping_p99_us ping_max_us\n"
    "  ping_connect_p50_us ping_connect_p99_us ping_connect_max_us\n"
    "  ping_run_p50_us ping_run_p99_us ping_run_max_us churn_ops churn_per_s\n"
    "  server_rss_start_kb server_rss_kb server_rss_end_kb rss_per_conn_b\n"
    "  server_cpu_connect_s server_cpu_connect_pct server_cpu_run_s server_cpu_run_pct\n"
    "  server_cpu_s bench_cpu_s client_rss_kb\n"
    "handshake_failures counts every upgrade not answered 101; refused_503 is the part answered\n"
    "503 (app.maxConnections, app.upgradeRate), listed again after it.\n"
    "With --steps, one line per step `STEP k=v ...` as it ends (step target rate connected step_s\n"
    "elapsed_s logins_per_s login_p50_us login_p99_us login_max_us, the failure counters so\n"
    "far, server_rss_kb server_cpu_s server_cpu_pct client_rss_kb client_cpu_s, t_ns); with\n"
    "--phases one `PHASE k=v ...` line per phase before RESULT (index kind seconds messages\n"
    "send_rate receivers expected deliveries lost dup misrouted deliveries_per_s last_ms p50_us\n"
    "p90_us p99_us max_us send_failures req_p50_us req_p99_us heartbeats heartbeat_failures\n"
    "closed_by_server server_cpu_s server_cpu_pct client_cpu_s client_cpu_pct server_rss_kb\n"
    "client_rss_kb t_start_ns t_end_ns). last_ms: from the first request written until the\n"
    "last receiver had its message. client_rss_kb: the bench's processes' RSS summed.\n"
    "The connect phase ends when every connection is logged in or failed; the run phase is the\n"
    "hold (conns), the sending and draining (fanout, direct) or the churn (storm). lost and dup\n"
    "must be 0: expected = receivers x messages (fanout) or messages (direct).\n"
    "rss_per_conn_b = (server RSS after the connect phase - before it) / connected: measure it\n"
    "on a freshly started server, since memory freed by an earlier run is reused, not returned.\n"
    "\n"
    "Machine set-up: as root, the tool widens net.ipv4.ip_local_port_range to 1024 65000 when it\n"
    "is narrower (and says so). For connect storms, net.core.somaxconn should be >= 4096\n"
    "(sysctl -w net.core.somaxconn=4096) or SYNs are dropped and connects take 1 s more.\n"
    "Bind the server to 127.0.0.1 (or 0.0.0.0): sources 127.0.0.x reach it over loopback.\n"
    "\n"
    "Exit status: 0; 1 if the run timed out or was interrupted, no connection logged in, a\n"
    "send failed, or messages were lost or duplicated; 2 for bad options or limits.\n"
    "Connection failures are results, not errors: see the *_failures keys.\n"
    "With IMGATE_BENCH_DEBUG set in the environment, misrouted pushes are printed to stderr.\n";

static void defaults(opts_t *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->host, sizeof o->host, "127.0.0.1");
    o->ws_port = 8089;
    o->ws_ports[0] = 8089;
    o->nnodes = 1;
    o->http_port = 8080;
    snprintf(o->path, sizeof o->path, "/acc");
    o->mode = MODE_CONNS;
    o->clients = 1000;
    o->messages = 100;
    o->trigger = (trigger_kind_t)-1; /* mode's default */
    o->apps[0] = 101;
    o->napps = 1;
    o->hold = 10;
    o->timeout = 300;
    o->probes = -1; /* mode's default */
    o->probe_interval_ms = 10;
    o->duration = 10;
    o->drain = 10;
    o->settle = 30;
    o->conn_timeout = 10;
    o->inflight = 1000;
    o->heartbeat = 30;
    snprintf(o->user_prefix, sizeof o->user_prefix, "u");
}

static int bad(const char *opt, const char *val, const char *why) {
    fprintf(stderr, "imgate-bench: --%s %s: %s (see --help)\n", opt, val, why);
    return -1;
}

/* Parses a whole decimal number in [lo, hi]. */
static int parse_long(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof why, "want a whole number from %ld to %ld", lo, hi);
        return bad(opt, s, why);
    }
    *out = v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        char why[96];
        snprintf(why, sizeof why, "want a number from %g to %g", lo, hi);
        return bad(opt, s, why);
    }
    *out = v;
    return 0;
}

/* A comma-separated list of whole numbers in [lo, hi]; returns the count or -1. */
static int parse_list(const char *opt, const char *s, long lo, long hi, long *out, int max) {
    char *tmp = strdup(s); /* a list of a cluster's pids is long */
    if (!tmp)
        return bad(opt, s, "out of memory");
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(tmp, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == max) {
            free(tmp);
            return bad(opt, s, "too many values");
        }
        if (parse_long(opt, tok, lo, hi, &out[n]) != 0) {
            free(tmp);
            return -1;
        }
        n++;
    }
    free(tmp);
    return n ? n : bad(opt, s, "empty list");
}

/* --phases: idle:S, fanout:M, direct:M@R, comma-separated. */
static int parse_phases(opts_t *o, const char *opt, const char *s) {
    char *tmp = strdup(s);
    if (!tmp)
        return bad(opt, s, "out of memory");
    int n = 0, rc = 0;
    for (char *save = NULL, *tok = strtok_r(tmp, ",", &save); tok && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        char *arg = strchr(tok, ':');
        if (n == OPTS_MAX_PHASES) {
            rc = bad(opt, s, "at most 8 phases");
            break;
        }
        if (!arg) {
            rc = bad(opt, s, "want kind:value (idle:S, fanout:M, direct:M@R)");
            break;
        }
        *arg++ = '\0';
        plan_phase_t *p = &o->phases[n];
        memset(p, 0, sizeof *p);
        if (strcmp(tok, "idle") == 0) {
            p->kind = PH_IDLE;
            rc = parse_double(opt, arg, 0, 86400, &p->seconds);
        } else if (strcmp(tok, "fanout") == 0 || strcmp(tok, "direct") == 0) {
            p->kind = tok[0] == 'f' ? PH_FANOUT : PH_DIRECT;
            char *at = strchr(arg, '@');
            if (at) {
                *at++ = '\0';
                rc = parse_double(opt, at, 0, 1e7, &p->send_rate);
            }
            if (rc == 0)
                rc = parse_long(opt, arg, 1, OPTS_MAX_MESSAGES, &p->messages);
        } else {
            rc = bad(opt, s, "phase kinds are idle, fanout and direct");
        }
        n++;
    }
    free(tmp);
    if (rc == 0 && n == 0)
        rc = bad(opt, s, "empty list");
    o->nphases = rc == 0 ? n : 0;
    return rc;
}

enum {
    O_HOST = 256,
    O_WS_PORT,
    O_HTTP_PORT,
    O_PATH,
    O_PROTO,
    O_SEND_RATE,
    O_TARGET_NODES,
    O_MODE,
    O_CLIENTS,
    O_RATE,
    O_INFLIGHT,
    O_CONN_TIMEOUT,
    O_MESSAGES,
    O_MSG_SIZE,
    O_TRIGGER,
    O_BATCH,
    O_APP,
    O_HOLD,
    O_HEARTBEAT,
    O_PROCS,
    O_SRC_IPS,
    O_PROBE,
    O_PROBE_INTERVAL,
    O_DURATION,
    O_DRAIN,
    O_SETTLE,
    O_TIMEOUT,
    O_SERVER_PID,
    O_SERVER_PIDS,
    O_USER_PREFIX,
    O_SERVER_TREE,
    O_STEPS,
    O_STEP_CMD,
    O_STEP_RATES,
    O_PHASES,
    O_QUIET,
    O_HELP,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, O_HOST},
    {"ws-port", required_argument, NULL, O_WS_PORT},
    {"http-port", required_argument, NULL, O_HTTP_PORT},
    {"path", required_argument, NULL, O_PATH},
    {"proto", required_argument, NULL, O_PROTO},
    {"send-rate", required_argument, NULL, O_SEND_RATE},
    {"target-nodes", required_argument, NULL, O_TARGET_NODES},
    {"mode", required_argument, NULL, O_MODE},
    {"clients", required_argument, NULL, O_CLIENTS},
    {"rate", required_argument, NULL, O_RATE},
    {"inflight", required_argument, NULL, O_INFLIGHT},
    {"conn-timeout", required_argument, NULL, O_CONN_TIMEOUT},
    {"messages", required_argument, NULL, O_MESSAGES},
    {"msg-size", required_argument, NULL, O_MSG_SIZE},
    {"trigger", required_argument, NULL, O_TRIGGER},
    {"batch", required_argument, NULL, O_BATCH},
    {"app", required_argument, NULL, O_APP},
    {"hold", required_argument, NULL, O_HOLD},
    {"heartbeat", required_argument, NULL, O_HEARTBEAT},
    {"procs", required_argument, NULL, O_PROCS},
    {"src-ips", required_argument, NULL, O_SRC_IPS},
    {"probe", required_argument, NULL, O_PROBE},
    {"probe-interval", required_argument, NULL, O_PROBE_INTERVAL},
    {"duration", required_argument, NULL, O_DURATION},
    {"drain", required_argument, NULL, O_DRAIN},
    {"settle", required_argument, NULL, O_SETTLE},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"server-pid", required_argument, NULL, O_SERVER_PID},
    {"server-pids", required_argument, NULL, O_SERVER_PIDS},
    {"user-prefix", required_argument, NULL, O_USER_PREFIX},
    {"server-tree", no_argument, NULL, O_SERVER_TREE},
    {"steps", required_argument, NULL, O_STEPS},
    {"step-cmd", required_argument, NULL, O_STEP_CMD},
    {"step-rates", required_argument, NULL, O_STEP_RATES},
    {"phases", required_argument, NULL, O_PHASES},
    {"quiet", no_argument, NULL, O_QUIET},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static const char *const mode_names[] = {"conns", "fanout", "direct", "storm"};
static const char *const trigger_names[] = {"http", "http-pipelined", "ws", "ws-pipelined"};
static const char *const proto_names[] = {"imgate", "socketio"};
static const char *const phase_names[] = {"idle", "fanout", "direct"};

const char *opts_mode_name(bench_mode_t m) {
    return mode_names[m];
}

const char *opts_trigger_name(trigger_kind_t t) {
    return trigger_names[t];
}

const char *opts_proto_name(bench_proto_t p) {
    return proto_names[p];
}

const char *opts_phase_name(phase_kind_t k) {
    return phase_names[k];
}

/* One option's value into o; 0 or -1. */
static int set_opt(opts_t *o, int c, const char *name, const char *v) {
    long n, list[OPTS_MAX_APPS > OPTS_MAX_NODES ? OPTS_MAX_APPS : OPTS_MAX_NODES];
    _Static_assert(OPTS_MAX_STEPS <= OPTS_MAX_NODES, "list[] holds the steps too");
    int k;
    switch (c) {
    case O_HOST: {
        struct in_addr a;
        if (inet_pton(AF_INET, v, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
            return bad(name, v, "want an IPv4 loopback address (127.x.x.x)");
        snprintf(o->host, sizeof o->host, "%s", v);
        return 0;
    }
    case O_WS_PORT:
        if ((k = parse_list(name, v, 1, 65535, list, OPTS_MAX_NODES)) < 0)
            return -1;
        for (int i = 0; i < k; i++)
            o->ws_ports[i] = (int)list[i];
        o->nnodes = k;
        o->ws_port = o->ws_ports[0];
        return 0;
    case O_HTTP_PORT:
        return parse_long(name, v, 1, 65535, &n) ? -1 : (o->http_port = (int)n, 0);
    case O_PATH:
        if (v[0] != '/' || strlen(v) >= sizeof o->path || strpbrk(v, " \r\n"))
            return bad(name, v, "want a path starting with / (no spaces)");
        snprintf(o->path, sizeof o->path, "%s", v);
        o->path_set = 1;
        return 0;
    case O_PROTO:
        for (int i = 0; i < 2; i++)
            if (strcmp(v, proto_names[i]) == 0) {
                o->proto = (bench_proto_t)i;
                return 0;
            }
        return bad(name, v, "want imgate or socketio");
    case O_SEND_RATE:
        return parse_double(name, v, 0, 1e7, &o->send_rate);
    case O_TARGET_NODES:
        if ((k = parse_list(name, v, 0, OPTS_MAX_NODES - 1, list, OPTS_MAX_NODES)) < 0)
            return -1;
        o->target_nodes = 0;
        for (int i = 0; i < k; i++)
            o->target_nodes |= 1u << list[i];
        return 0;
    case O_MODE:
        for (int i = 0; i < 4; i++)
            if (strcmp(v, mode_names[i]) == 0) {
                o->mode = (bench_mode_t)i;
                return 0;
            }
        return bad(name, v, "want conns, fanout, direct or storm");
    case O_CLIENTS:
        return parse_long(name, v, 1, OPTS_MAX_CLIENTS, &o->clients);
    case O_RATE:
        return parse_double(name, v, 0, 1e7, &o->rate);
    case O_INFLIGHT:
        return parse_long(name, v, 1, 20000, &n) ? -1 : (o->inflight = (int)n, 0);
    case O_CONN_TIMEOUT:
        return parse_double(name, v, 0.1, 600, &o->conn_timeout);
    case O_MESSAGES:
        return parse_long(name, v, 1, OPTS_MAX_MESSAGES, &o->messages);
    case O_MSG_SIZE:
        return parse_long(name, v, 0, MSGBODY_MAX, &o->msg_size);
    case O_TRIGGER:
        for (int i = 0; i < 4; i++)
            if (strcmp(v, trigger_names[i]) == 0) {
                o->trigger = (trigger_kind_t)i;
                o->trigger_set = 1;
                return 0;
            }
        return bad(name, v, "want http, http-pipelined, ws or ws-pipelined");
    case O_BATCH:
        o->batch_set = 1;
        return parse_long(name, v, 1, 100000, &o->batch);
    case O_APP:
        if ((k = parse_list(name, v, 1, 4294967295L, list, OPTS_MAX_APPS)) < 0)
            return -1;
        for (int i = 0; i < k; i++)
            o->apps[i] = (uint32_t)list[i];
        o->napps = k;
        return 0;
    case O_HOLD:
        return parse_double(name, v, 0, 86400, &o->hold);
    case O_HEARTBEAT:
        return parse_double(name, v, 0.01, 3600, &o->heartbeat);
    case O_PROCS:
        return parse_long(name, v, 1, OPTS_MAX_PROCS, &n) ? -1 : (o->procs = (int)n, 0);
    case O_SRC_IPS:
        return parse_long(name, v, 1, OPTS_MAX_SRC_IPS, &n) ? -1 : (o->src_ips = (int)n, 0);
    case O_PROBE:
        return parse_long(name, v, 0, OPTS_MAX_PROBES, &n) ? -1 : (o->probes = (int)n, 0);
    case O_PROBE_INTERVAL:
        return parse_double(name, v, 0, 10000, &o->probe_interval_ms);
    case O_DURATION:
        return parse_double(name, v, 0, 86400, &o->duration);
    case O_DRAIN:
        return parse_double(name, v, 0.1, 3600, &o->drain);
    case O_SETTLE:
        return parse_double(name, v, 0, 3600, &o->settle);
    case O_TIMEOUT:
        return parse_double(name, v, 1, 86400, &o->timeout);
    case O_SERVER_PID:
    case O_SERVER_PIDS: {
        long pids[OPTS_MAX_SERVER_PIDS];
        if ((k = parse_list(name, v, 1, 4194304, pids, OPTS_MAX_SERVER_PIDS)) < 0)
            return -1;
        if (c == O_SERVER_PID && k != 1)
            return bad(name, v, "one pid (use --server-pids for several)");
        for (int i = 0; i < k; i++)
            o->server_pids[i] = (pid_t)pids[i];
        o->nserver_pids = k;
        return 0;
    }
    case O_USER_PREFIX:
        if (strlen(v) > OPTS_PREFIX_MAX || strpbrk(v, "\"\\&=%+ "))
            return bad(name, v, "at most 10 bytes, none of \" \\ & = % + space");
        snprintf(o->user_prefix, sizeof o->user_prefix, "%s", v);
        return 0;
    case O_SERVER_TREE:
        o->server_tree = 1;
        return 0;
    case O_STEPS:
        if ((k = parse_list(name, v, 1, OPTS_MAX_CLIENTS, list, OPTS_MAX_STEPS)) < 0)
            return -1;
        for (int i = 0; i < k; i++) {
            if (i > 0 && list[i] <= list[i - 1])
                return bad(name, v, "want ascending counts");
            o->steps[i] = list[i];
        }
        o->nsteps = k;
        o->steps_set = 1;
        return 0;
    case O_STEP_CMD:
        o->step_cmd = v;
        return 0;
    case O_STEP_RATES:
        if ((k = parse_list(name, v, 0, 10000000, list, OPTS_MAX_STEPS)) < 0)
            return -1;
        for (int i = 0; i < k; i++)
            o->step_rates[i] = (double)list[i];
        o->nstep_rates = k;
        return 0;
    case O_PHASES:
        return parse_phases(o, name, v);
    case O_QUIET:
        o->quiet = 1;
        return 0;
    }
    return -1;
}

/* Defaults that depend on other options, and checks across options. */
static int finish(opts_t *o) {
    if ((int)o->trigger < 0)
        o->trigger = o->mode == MODE_DIRECT ? TRIG_HTTP_PIPELINED : TRIG_HTTP;
    if (o->proto == PROTO_SOCKETIO && !o->path_set)
        snprintf(o->path, sizeof o->path, "/socket.io/");
    if (o->proto == PROTO_SOCKETIO && (o->trigger == TRIG_WS || o->trigger == TRIG_WS_PIPELINED)) {
        fprintf(stderr, "imgate-bench: --proto socketio: the triggers are http and "
                        "http-pipelined (a Socket.IO server has no sendMessage event)\n");
        return -1;
    }
    if (o->target_nodes >> o->nnodes) {
        fprintf(stderr,
                "imgate-bench: --target-nodes: an index is not below the %d node(s) of "
                "--ws-port\n",
                o->nnodes);
        return -1;
    }
    if (o->probes < 0)
        o->probes = o->mode == MODE_STORM ? 4 : 0;
    if (o->procs == 0)
        o->procs = (int)((o->clients + 14999) / 15000);
    if (o->procs > OPTS_MAX_PROCS)
        o->procs = OPTS_MAX_PROCS; /* the descriptor check in main says if they do not fit */
    if (o->procs > o->clients)
        o->procs = (int)o->clients;
    if (o->src_ips == 0) {
        long need = (o->clients + 24999) / 25000;
        o->src_ips = o->procs > need ? o->procs : (int)need;
        if (o->src_ips > OPTS_MAX_SRC_IPS)
            o->src_ips = OPTS_MAX_SRC_IPS;
    }
    if (o->batch == 0)
        o->batch = o->mode == MODE_DIRECT ? 100 : o->messages;
    if (o->batch > o->messages)
        o->batch = o->messages;
    if (o->mode == MODE_FANOUT && (double)o->clients * (double)o->messages > 4e9) {
        fprintf(stderr, "imgate-bench: fanout: clients x messages is over 4e9 (the receivers' "
                        "bitmaps would take over 500 MB)\n");
        return -1;
    }
    /* --steps: the last step is always every client. */
    if (o->nsteps && o->steps[o->nsteps - 1] > o->clients) {
        fprintf(stderr, "imgate-bench: --steps: a step is above --clients %ld\n", o->clients);
        return -1;
    }
    if (o->nsteps == 0 || o->steps[o->nsteps - 1] < o->clients) {
        if (o->nsteps == OPTS_MAX_STEPS) {
            fprintf(stderr, "imgate-bench: --steps: at most %d, --clients included\n",
                    OPTS_MAX_STEPS);
            return -1;
        }
        o->steps[o->nsteps++] = o->clients;
    }
    if (o->nphases && o->mode != MODE_CONNS) {
        fprintf(stderr, "imgate-bench: --phases goes with --mode conns\n");
        return -1;
    }
    o->fanout_total = o->mode == MODE_FANOUT ? o->messages : 0;
    o->direct_total = o->mode == MODE_DIRECT ? o->messages : 0;
    for (int i = 0; i < o->nphases; i++) {
        if (o->phases[i].kind == PH_FANOUT)
            o->fanout_total += o->phases[i].messages;
        else if (o->phases[i].kind == PH_DIRECT)
            o->direct_total += o->phases[i].messages;
    }
    if ((double)o->clients * (double)o->fanout_total > 4e9) {
        fprintf(stderr, "imgate-bench: --phases: clients x room messages is over 4e9\n");
        return -1;
    }
    if (o->fanout_total > OPTS_MAX_MESSAGES || o->direct_total > OPTS_MAX_MESSAGES) {
        fprintf(stderr, "imgate-bench: --phases: more than %d messages of a kind\n",
                OPTS_MAX_MESSAGES);
        return -1;
    }
    if (o->clients > 9999999) { /* userIDs: prefix + 7 digits */
        fprintf(stderr, "imgate-bench: --clients: at most 9999999\n");
        return -1;
    }
    return 0;
}

int opts_parse(opts_t *o, int argc, char **argv) {
    defaults(o);
    opterr = 0;
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, "", long_opts, &idx)) != -1) {
        if (c == O_HELP) {
            fputs(usage, stdout);
            return 1;
        }
        if (c == '?') {
            fprintf(stderr, "imgate-bench: unknown option or missing value: %s (see --help)\n",
                    argv[optind - 1]);
            return -1;
        }
        if (set_opt(o, c, long_opts[idx].name, optarg) != 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "imgate-bench: unexpected argument %s (see --help)\n", argv[optind]);
        return -1;
    }
    return finish(o);
}
