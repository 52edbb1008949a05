/* imgate-bench: the parent process. It checks the machine's limits, forks the worker processes,
 * walks them through the phases (see shared.h), runs the trigger, samples the server, shows
 * progress and prints the report. Everything it waits for has a deadline: --timeout for the
 * run, --conn-timeout per connection, --drain for deliveries. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "options.h"
#include "procstat.h"
#include "report.h"
#include "shared.h"
#include "trigger.h"
#include "worker.h"

#define FD_SLACK        64             /* descriptors a worker needs besides its connections */
#define STOP_GRACE_NS   (5 * NS_PER_S) /* workers get this long to exit, then SIGKILL */
#define PORT_RANGE_FILE "/proc/sys/net/ipv4/ip_local_port_range"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    g_stop = 1;
}

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* As root, widens the ephemeral port range to 1024..65000 when it is narrower, so that each
 * source address offers ~64000 ports instead of ~28000. */
static void widen_port_range(int quiet) {
    FILE *f = fopen(PORT_RANGE_FILE, "r");
    int lo = 0, hi = 0;
    if (!f)
        return;
    int n = fscanf(f, "%d %d", &lo, &hi);
    fclose(f);
    if (n != 2 || (lo <= 1024 && hi >= 65000) || geteuid() != 0)
        return;
    f = fopen(PORT_RANGE_FILE, "w");
    if (!f)
        return;
    int ok = fprintf(f, "1024 65000\n") > 0;
    ok = (fclose(f) == 0) && ok;
    if (ok && !quiet)
        fprintf(stderr,
                "imgate-bench: net.ipv4.ip_local_port_range was %d %d, set to 1024 65000 "
                "(more source ports per address)\n",
                lo, hi);
}

/* Raises the soft descriptor limit to the hard one and checks each worker fits. */
static int check_fd_limit(const opts_t *o, long per_worker) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)(per_worker + FD_SLACK) <= rl.rlim_cur)
        return 0;
    long procs = (o->clients + (long)rl.rlim_cur - FD_SLACK - 1) / ((long)rl.rlim_cur - FD_SLACK);
    fprintf(stderr,
            "imgate-bench: %ld connections per worker do not fit in %llu descriptors: use "
            "--procs %ld or more\n",
            per_worker, (unsigned long long)rl.rlim_cur, procs);
    return -1;
}

typedef struct {
    run_t *run;
    int tty;
    _Atomic int done;
} progress_t;

static void *progress_main(void *arg) {
    progress_t *p = arg;
    int64_t every = p->tty ? NS_PER_S : 5 * NS_PER_S;
    int64_t next = now_ns() + every;
    while (!atomic_load(&p->done)) {
        sleep_ms(50);
        int64_t now = now_ns();
        if (now >= next) {
            report_progress(p->run, now, p->tty);
            next += every;
        }
    }
    if (p->tty)
        fprintf(stderr, "\n");
    return NULL;
}

/* Forks the workers; returns how many were started. */
static int start_workers(const opts_t *o, shared_t *sh, int nclient, pid_t *pids) {
    int total = sh->nworkers;
    for (int i = 0; i < total; i++) {
        worker_spec_t spec = {.index = i, .nclient = nclient};
        if (i < nclient) {
            spec.first = o->clients * i / nclient;
            spec.count = o->clients * (i + 1) / nclient - spec.first;
        } else {
            spec.probe = 1;
            spec.count = o->probes;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "imgate-bench: fork: %s\n", strerror(errno));
            return i;
        }
        if (pid == 0)
            worker_main(o, sh, &spec);
        pids[i] = pid;
    }
    return total;
}

/* Whether the run must stop waiting: ^C, --timeout, or a worker died. */
static int must_stop(run_t *r, int64_t deadline, const pid_t *pids, int n) {
    if (g_stop) {
        r->interrupted = 1;
        return 1;
    }
    if (now_ns() >= deadline) {
        r->timed_out = 1;
        return 1;
    }
    for (int i = 0; i < n; i++) {
        int status;
        if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
            fprintf(stderr, "\nimgate-bench: worker %d exited early (status %d)\n", i, status);
            r->interrupted = 1;
            return 1;
        }
    }
    return 0;
}

/* Waits until every worker acknowledged phase p; 0, or -1 if the run must stop. */
static int wait_acks(run_t *r, phase_t p, int64_t deadline, const pid_t *pids, int n) {
    while (!shared_all_acked(r->sh, p)) {
        if (must_stop(r, deadline, pids, n))
            return -1;
        sleep_ms(5);
    }
    return 0;
}

/* Sleeps s seconds unless the run must stop. */
static void hold(run_t *r, double s, int64_t deadline, const pid_t *pids, int n) {
    int64_t until = now_ns() + (int64_t)(s * 1e9);
    while (now_ns() < until && !must_stop(r, deadline, pids, n))
        sleep_ms(20);
}

/* Fanout receivers: logged-in users of the first app. */
static uint64_t count_receivers(const run_t *r) {
    uint64_t n = 0;
    for (long u = 0; u < r->sh->nusers; u++)
        if (u % r->o->napps == 0 && atomic_load_explicit(&r->sh->logged[u], memory_order_relaxed))
            n++;
    return n;
}

/* Sends the messages of o (its mode: fanout or direct), then waits until every expected
 * delivery arrived or none came for --drain seconds. Deliveries count from the workers' total
 * when it starts, so that a --phases phase counts only its own. */
static void run_delivery(run_t *r, const opts_t *o, trigger_result_t *trig, uint64_t *receivers,
                         uint64_t *expected, int64_t deadline, const pid_t *pids, int n) {
    uint64_t base = shared_sum(r->sh, CNT_UNIQUE);
    if (o->mode == MODE_FANOUT) {
        *receivers = count_receivers(r);
        *expected = *receivers * (uint64_t)o->messages;
    } else {
        *receivers = (uint64_t)shared_sum(r->sh, CNT_OPEN);
        *expected = (uint64_t)o->messages;
    }
    trigger_run(o, r->sh, deadline, &g_stop, trig);
    if (o->mode == MODE_DIRECT) /* only messages the server accepted can arrive */
        *expected = trig->ok;
    uint64_t last = shared_sum(r->sh, CNT_UNIQUE) - base;
    int64_t last_change = now_ns();
    while (!must_stop(r, deadline, pids, n)) {
        uint64_t got = shared_sum(r->sh, CNT_UNIQUE) - base;
        if (got >= *expected)
            break;
        int64_t now = now_ns();
        if (got != last) {
            last = got;
            last_change = now;
        } else if (now - last_change >= (int64_t)(o->drain * 1e9)) {
            break;
        }
        sleep_ms(5);
    }
    /* Duplicates may still be on their way: give them a moment before the count is final. */
    if (!r->timed_out && !r->interrupted)
        hold(r, 0.2, deadline, pids, n);
}

/* Sets PHASE_STOP and reaps the workers, killing those that do not exit in time. */
static void stop_workers(shared_t *sh, pid_t *pids, int n) {
    atomic_store_explicit(&sh->phase, PHASE_STOP, memory_order_release);
    int64_t until = now_ns() + STOP_GRACE_NS;
    int left = n;
    while (left > 0) {
        for (int i = 0; i < n; i++) {
            int status;
            if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) != 0)
                pids[i] = -pids[i], left--;
        }
        if (left == 0)
            break;
        if (now_ns() >= until) {
            for (int i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGKILL);
            until = INT64_MAX;
        }
        sleep_ms(10);
    }
}

/* Waits (up to --settle s) until the server uses under 5 % of a CPU, so that its work from an
 * earlier run (closing thousands of clients) does not count against this one. */
static void settle(const opts_t *o) {
    if (o->nserver_pids == 0 || o->settle <= 0)
        return;
    int64_t t0 = now_ns(), until = t0 + (int64_t)(o->settle * 1e9);
    procstat_t a, b;
    procstat_sample(o->server_pids, o->nserver_pids, o->server_tree, &a);
    while (a.ok && !g_stop) {
        sleep_ms(200);
        procstat_sample(o->server_pids, o->nserver_pids, o->server_tree, &b);
        if (!b.ok || b.cpu_s - a.cpu_s < 0.01)
            break;
        if (now_ns() >= until) {
            fprintf(stderr, "imgate-bench: the server is still busy after %.0f s; starting\n",
                    o->settle);
            return;
        }
        a = b;
    }
    double waited = (double)(now_ns() - t0) / 1e9;
    if (waited > 1 && !o->quiet)
        fprintf(stderr, "imgate-bench: waited %.1f s for the server to go idle\n", waited);
}

static void sample_server(const opts_t *o, procstat_t *out) {
    procstat_sample(o->server_pids, o->nserver_pids, o->server_tree, out);
}

/* The bench's own processes: this one and its live workers. */
static void sample_client(const pid_t *pids, int n, procstat_t *out) {
    pid_t all[OPTS_MAX_PROCS + 2];
    int k = 0;
    all[k++] = getpid();
    for (int i = 0; i < n; i++)
        if (pids[i] > 0)
            all[k++] = pids[i];
    procstat_sample(all, k, 0, out);
}

static double cpu_of(int who);
static double g_step_cmd_cpu;      /* CPU of --step-cmd children, left out of bench_cpu_s */
static const pid_t *g_worker_pids; /* for --step-cmd's environment */
static int g_nworkers;

/* --step-cmd with its label; waits for it (it sees the connections held). */
static void step_cmd(const opts_t *o, const char *label) {
    if (!o->step_cmd)
        return;
    double before = cpu_of(RUSAGE_CHILDREN);
    char me[24], workers[(OPTS_MAX_PROCS + 1) * 12] = "";
    snprintf(me, sizeof me, "%d", (int)getpid());
    for (int i = 0, n = 0; i < g_nworkers; i++)
        if (g_worker_pids[i] > 0)
            n += snprintf(workers + n, sizeof workers - (size_t)n, "%s%d", n ? "," : "",
                          (int)g_worker_pids[i]);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("IMGATE_BENCH_PID", me, 1);
        setenv("IMGATE_BENCH_WORKERS", workers, 1);
        execl("/bin/sh", "sh", "-c", o->step_cmd, "sh", label, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "imgate-bench: --step-cmd %s failed (status %d)\n", label, status);
    g_step_cmd_cpu += cpu_of(RUSAGE_CHILDREN) - before;
}

/* The connect phase, in --steps steps: each step's share is set up at --rate, then the step is
 * recorded, reported and --step-cmd runs (its time is left out of the rates). 0, or -1 if the
 * run must stop. */
static int connect_steps(run_t *r, int64_t deadline, const pid_t *pids, int n) {
    const opts_t *o = r->o;
    int64_t paused = 0, t_prev = r->t_connect;
    uint64_t logins_prev = 0;
    procstat_t srv_prev = r->srv[SRV_START], cli_prev = r->cli[SRV_START];
    for (int k = 0; k < o->nsteps; k++) {
        atomic_store_explicit(&r->sh->step, k, memory_order_release);
        while (!shared_all_stepped(r->sh, k)) {
            if (must_stop(r, deadline, pids, n))
                return -1;
            sleep_ms(5);
        }
        step_result_t *st = &r->steps[k];
        st->t_end = now_ns();
        st->target = o->steps[k];
        st->connected = shared_sum(r->sh, CNT_OPEN);
        for (int c = 0; c < CNT_COUNT; c++)
            st->cnt[c] = shared_sum(r->sh, (counter_t)c);
        st->logins = st->cnt[CNT_LOGGED_IN] - logins_prev;
        logins_prev = st->cnt[CNT_LOGGED_IN];
        st->step_ns = st->t_end - t_prev;
        st->elapsed_ns = st->t_end - r->t_connect - paused;
        /* Every worker acked the step: none records a set-up of it any more. */
        hist_reset(&st->login);
        for (int w = 0; w < r->sh->nworkers; w++)
            hist_merge(&st->login, &r->sh->w[w].step_login[k]);
        st->srv0 = srv_prev;
        st->cli0 = cli_prev;
        sample_server(o, &st->srv1);
        sample_client(pids, n, &st->cli1);
        r->nsteps_done = k + 1;
        if (!o->steps_set)
            break; /* one step of every client: the connect phase as it always was */
        report_step(r, k, stdout);
        char label[32];
        snprintf(label, sizeof label, "step-%ld", st->target);
        step_cmd(o, label);
        t_prev = now_ns();
        paused += t_prev - st->t_end;
        sample_server(o, &srv_prev);
        sample_client(pids, n, &cli_prev);
    }
    r->connect_pause_ns = paused;
    return 0;
}

/* --phases: each phase in turn on the held connections, recorded for its PHASE line. */
static void run_plan(run_t *r, int64_t deadline, const pid_t *pids, int n) {
    const opts_t *o = r->o;
    long base_fanout = 0, base_direct = 0;
    for (int k = 0; k < o->nphases && !must_stop(r, deadline, pids, n); k++) {
        const plan_phase_t *p = &o->phases[k];
        phase_result_t *ph = &r->ph[k];
        atomic_store_explicit(&r->sh->plan_phase, k, memory_order_relaxed);
        for (int c = 0; c < CNT_COUNT; c++)
            ph->c0[c] = shared_sum(r->sh, (counter_t)c);
        sample_server(o, &ph->srv0);
        sample_client(pids, n, &ph->cli0);
        ph->t_start = now_ns();
        ph->ran = 1;
        atomic_store(&r->plan_index, k);
        if (p->kind == PH_IDLE) {
            hold(r, p->seconds, deadline, pids, n);
        } else {
            static opts_t po;
            po = *o;
            po.mode = p->kind == PH_FANOUT ? MODE_FANOUT : MODE_DIRECT;
            po.messages = p->messages;
            po.send_rate = p->send_rate;
            po.msg_base = p->kind == PH_FANOUT ? base_fanout : base_direct;
            if (!o->trigger_set)
                po.trigger = p->kind == PH_FANOUT ? TRIG_HTTP : TRIG_HTTP_PIPELINED;
            po.batch = o->batch_set ? o->batch : p->kind == PH_FANOUT ? p->messages : 100;
            if (po.batch > p->messages)
                po.batch = p->messages;
            run_delivery(r, &po, &ph->trig, &ph->receivers, &ph->expected, deadline, pids, n);
            if (p->kind == PH_FANOUT)
                base_fanout += p->messages;
            else
                base_direct += p->messages;
        }
        ph->t_end = now_ns();
        ph->last_delivery = shared_last_delivery(r->sh);
        for (int c = 0; c < CNT_COUNT; c++)
            ph->c1[c] = shared_sum(r->sh, (counter_t)c);
        sample_server(o, &ph->srv1);
        sample_client(pids, n, &ph->cli1);
        atomic_store(&r->plan_index, -1);
        report_phase_done(r, k);
        char label[32];
        snprintf(label, sizeof label, "%s%d", opts_phase_name(p->kind), k + 1);
        step_cmd(o, label);
    }
}

static double cpu_of(int who) {
    struct rusage ru;
    if (getrusage(who, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    static opts_t o;
    int pr = opts_parse(&o, argc, argv);
    if (pr != 0)
        return pr > 0 ? 0 : 2;
    int nclient = o.procs;
    long per_worker = (o.clients + nclient - 1) / nclient;
    if (check_fd_limit(&o, per_worker > o.probes ? per_worker : o.probes) != 0)
        return 2;
    widen_port_range(o.quiet);
    settle(&o);
    int nworkers = nclient + (o.probes > 0);
    shared_t *sh = shared_create(nworkers, o.clients);
    if (!sh) {
        fprintf(stderr, "imgate-bench: mmap: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    static run_t r;
    r.o = &o;
    r.sh = sh;
    r.nclient_workers = nclient;
    r.t_start = now_ns();
    int64_t deadline = r.t_start + (int64_t)(o.timeout * 1e9);
    pid_t pids[OPTS_MAX_PROCS + 1] = {0};
    int started = start_workers(&o, sh, nclient, pids);
    g_worker_pids = pids;
    g_nworkers = started;

    progress_t prog = {.run = &r, .tty = isatty(2)};
    pthread_t prog_thread;
    int have_prog = !o.quiet && pthread_create(&prog_thread, NULL, progress_main, &prog) == 0;

    atomic_init(&r.plan_index, -1);
    sample_server(&o, &r.srv[SRV_START]);
    r.t_connect = r.t_connected = r.t_run_end = now_ns();
    if (started == nworkers && wait_acks(&r, PHASE_INIT, deadline, pids, nworkers) == 0) {
        step_cmd(&o, "start");
        sample_server(&o, &r.srv[SRV_START]);
        sample_client(pids, started, &r.cli[SRV_START]);
        r.t_connect = now_ns();
        atomic_store(&r.phase, PHASE_CONNECT);
        atomic_store_explicit(&sh->phase, PHASE_CONNECT, memory_order_release);
        int ok = connect_steps(&r, deadline, pids, nworkers) == 0 &&
                 wait_acks(&r, PHASE_CONNECT, deadline, pids, nworkers) == 0;
        r.t_connected = now_ns();
        r.connected = shared_sum(sh, CNT_OPEN);
        sample_server(&o, &r.srv[SRV_CONNECTED]);
        sample_client(pids, started, &r.cli[SRV_CONNECTED]);
        if (ok && r.connected == 0) {
            fprintf(stderr, "\nimgate-bench: no connection logged in; nothing to run\n");
            r.interrupted = 1;
        } else if (ok) {
            atomic_store(&r.phase, PHASE_RUN);
            atomic_store_explicit(&sh->phase, PHASE_RUN, memory_order_release);
            if (o.mode == MODE_CONNS && o.nphases) {
                run_plan(&r, deadline, pids, nworkers);
            } else if (o.mode == MODE_CONNS) {
                hold(&r, o.hold, deadline, pids, nworkers);
            } else if (o.mode == MODE_STORM) {
                hold(&r, o.duration, deadline, pids, nworkers);
            } else {
                r.trig_ran = 1;
                run_delivery(&r, &o, &r.trig, &r.receivers, &r.expected, deadline, pids, nworkers);
            }
        }
    }
    r.t_run_end = now_ns();
    sample_server(&o, &r.srv[SRV_END]);
    sample_client(pids, started, &r.cli[SRV_END]);
    if (!r.srv[SRV_CONNECTED].t_ns)
        r.srv[SRV_CONNECTED] = r.srv[SRV_END];
    if (!r.cli[SRV_CONNECTED].t_ns)
        r.cli[SRV_CONNECTED] = r.cli[SRV_END];
    atomic_store(&r.phase, PHASE_STOP);
    stop_workers(sh, pids, started);
    if (have_prog) {
        atomic_store(&prog.done, 1);
        pthread_join(prog_thread, NULL);
    }
    r.t_end = now_ns();
    step_cmd(&o, "end");
    r.bench_cpu_s = cpu_of(RUSAGE_SELF) + cpu_of(RUSAGE_CHILDREN) - g_step_cmd_cpu;
    report_collect(&r);
    report_print(&r, stdout);
    int bad = r.timed_out || r.interrupted || r.cnt[CNT_DUP] ||
              (r.trig_ran && (r.expected > r.cnt[CNT_UNIQUE] || r.trig.failures));
    for (int k = 0; k < o.nphases; k++) {
        const phase_result_t *ph = &r.ph[k];
        uint64_t got = ph->c1[CNT_UNIQUE] - ph->c0[CNT_UNIQUE];
        if (ph->ran && o.phases[k].kind != PH_IDLE && (ph->expected > got || ph->trig.failures))
            bad = 1;
    }
    return bad ? 1 : 0;
}
