/* The supervisor (app.processes > 1): one master process, M node processes forked from it.
 *
 * The master is a plain loop around sigtimedwait, not a libuv loop. Its only inputs are four
 * signals and two kinds of deadline (a child's restart, the stop deadline), which one blocking
 * call with a timeout covers; and the children are forks of it, so a libuv loop in the master
 * (its signal pipe, its handles, its threads) would have to be undone in every child before the
 * child starts its own loops. With the signals blocked and taken synchronously, no handler runs
 * at an arbitrary point, nothing is lost between two waits (a blocked signal stays pending), and
 * the process stays single-threaded, so fork() is safe.
 *
 * A child is the ordinary node: it returns from supervisor_run into main() with the master's
 * configuration, except for its cluster.nodeId "<nodeId>-<i>". The id stays the same when the
 * child is restarted, so the new process's first re-announce (cluster/presence.c: sync_done takes
 * down the users Redis lists for this node that it does not have) cleans up after the dead one
 * at once, instead of after cluster.nodeTimeout. Two processes never hold one id at a time: a
 * child is restarted only after waitpid() has seen the old one gone. */
#include "supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "util/clock.h"
#include "util/log.h"

/* Restart backoff: 100 ms doubling to 5 s, back to 100 ms after a run of 10 s. 100 ms: a node
 * killed by accident is back before its clients' reconnect storm peaks; 5 s: a node that can't
 * start (its port taken by another program, Redis refusing it) costs one fork and a log line per
 * 5 s instead of a busy loop, and is still back within 5 s of the cause going away; 10 s: longer
 * than a start-up (well under a second), so a child that got that far was not failing to start. */
#define SUPERVISOR_BACKOFF_MIN_MS 100
#define SUPERVISOR_BACKOFF_MAX_MS 5000
#define SUPERVISOR_STABLE_MS      10000

/* The stop deadline: a child drains over app.drainSeconds, waits up to app.closeTimeout for its
 * clients' close frames, then leaves the cluster (main.c waits up to 2 s for that). 5 s more for
 * the rest of its shutdown on a loaded machine (sanitizer builds are several times slower).
 * Past it, SIGKILL; then 5 s for the kernel to take them. */
#define SUPERVISOR_LEAVE_MS       2000
#define SUPERVISOR_STOP_MARGIN_MS 5000
#define SUPERVISOR_KILL_WAIT_MS   5000

/* The longest the master sleeps without a signal: it needs no periodic work, but waking once a
 * second keeps every deadline check in one place. */
#define SUPERVISOR_WAIT_MAX_MS 1000

typedef struct {
    pid_t pid;           /* 0: not running (waiting for its restart, or gone while stopping) */
    uint64_t started_ms; /* when it was forked */
    uint64_t restart_ms; /* pid 0 and not stopping: when to start it again */
    uint32_t backoff_ms; /* the last wait before a restart, 0 = none yet */
    uint32_t restarts;   /* for the log */
    char id[CONFIG_NODE_ID_MAX + 1]; /* its cluster.nodeId, <base>-<i> */
} child_t;

typedef struct {
    config_t *cfg;
    child_t *children;
    int count;
    int live;              /* children with a pid */
    char base[CONFIG_STR]; /* the children's ids are <base>-<i> */
    pid_t master;
    sigset_t signals;     /* what the master takes with sigtimedwait */
    sigset_t old_mask;    /* the mask before, given back to each child */
    int stop_signal;      /* the first SIGTERM / SIGINT; 0 = running */
    int stop_count;       /* how many of them came */
    uint64_t deadline_ms; /* while stopping: SIGKILL what is left at this time */
    bool killed;          /* SIGKILL was sent */
    bool failed;          /* a child exited other than cleanly while stopping */
} supervisor_t;

uint32_t supervisor_backoff(uint32_t prev_ms, uint64_t lived_ms) {
    if (prev_ms == 0 || lived_ms >= SUPERVISOR_STABLE_MS)
        return SUPERVISOR_BACKOFF_MIN_MS;
    uint64_t next = (uint64_t)prev_ms * 2;
    return next > SUPERVISOR_BACKOFF_MAX_MS ? SUPERVISOR_BACKOFF_MAX_MS : (uint32_t)next;
}

int supervisor_node_id(const char *base, int index, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s-%d", base, index);
    if (n < 0 || (size_t)n >= cap || n > CONFIG_NODE_ID_MAX)
        return -ENAMETOOLONG;
    return 0;
}

/* "exited with status 1", "was killed by signal 9 (Killed)". */
static void describe_status(int status, char *out, size_t cap) {
    if (WIFEXITED(status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "was killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(out, cap, "ended with wait status %#x", (unsigned)status);
}

/* In a new child, before it becomes a node. Never returns if the master is already gone. */
static void child_setup(supervisor_t *s, int i) {
    /* A process group of its own: a terminal's Ctrl-C reaches only the master, which forwards
     * it once; a node takes a second SIGINT as "close every connection now". */
    setpgid(0, 0);
    /* The master's death, even by kill -9, stops the node (it drains as on SIGTERM): no orphans.
     * If the master died before this line no signal will come, so look. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != s->master)
        _exit(1);
    memcpy(s->cfg->cluster_node_id, s->children[i].id, sizeof s->children[i].id);
    log_info("supervisor: process %d of %d (pid %d) is node %s", i, s->count, (int)getpid(),
             s->cfg->cluster_node_id);
    free(s->children);
    s->children = NULL;
    /* Last: a SIGTERM the master sent meanwhile is delivered now, with its default action (the
     * node has no users yet). */
    sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
}

/* Forks child i. Returns SUPERVISOR_CHILD in the child, 0 in the master (a failed fork is
 * retried like a quick death). */
static int start_child(supervisor_t *s, int i) {
    child_t *c = &s->children[i];
    fflush(NULL); /* nothing buffered may be written twice, by the master and by the child */
    pid_t pid = fork();
    if (pid == 0) {
        child_setup(s, i);
        return SUPERVISOR_CHILD;
    }
    uint64_t now = clock_mono_ms();
    if (pid < 0) {
        int e = errno;
        c->backoff_ms = supervisor_backoff(c->backoff_ms, 0);
        c->restart_ms = now + c->backoff_ms;
        log_error("supervisor: cannot start process %d (node %s): %s; trying again in %u ms", i,
                  c->id, strerror(e), c->backoff_ms);
        return 0;
    }
    c->pid = pid;
    c->started_ms = now;
    s->live++;
    if (c->restarts++)
        log_info("supervisor: process %d restarted as pid %d (node %s)", i, (int)pid, c->id);
    return 0;
}

/* Collects every child that ended: while running, schedules its restart; while stopping, notes
 * whether it ended cleanly (exit 0, or killed by the very signal forwarded to it before its
 * node took over the signal). */
static void reap(supervisor_t *s) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i = 0;
        while (i < s->count && s->children[i].pid != pid)
            i++;
        if (i == s->count)
            continue; /* not ours (nothing else is forked here) */
        child_t *c = &s->children[i];
        c->pid = 0;
        s->live--;
        uint64_t now = clock_mono_ms();
        uint64_t lived = now - c->started_ms;
        char how[96];
        describe_status(status, how, sizeof how);
        if (s->stop_signal) {
            bool clean = (WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                         (WIFSIGNALED(status) && WTERMSIG(status) == s->stop_signal && !s->killed);
            if (!clean)
                s->failed = true;
            log_write(clean ? LOG_INFO : LOG_WARN, "supervisor: process %d (pid %d, node %s) %s", i,
                      (int)pid, c->id, how);
            continue;
        }
        c->backoff_ms = supervisor_backoff(c->backoff_ms, lived);
        c->restart_ms = now + c->backoff_ms;
        log_warn("supervisor: process %d (pid %d, node %s) %s after %llu ms; restarting it in "
                 "%u ms",
                 i, (int)pid, c->id, how, (unsigned long long)lived, c->backoff_ms);
    }
}

static void signal_children(supervisor_t *s, int sig) {
    for (int i = 0; i < s->count; i++)
        if (s->children[i].pid > 0)
            kill(s->children[i].pid, sig);
}

static void kill_children(supervisor_t *s, uint64_t now) {
    signal_children(s, SIGKILL);
    s->killed = true;
    s->deadline_ms = now + SUPERVISOR_KILL_WAIT_MS;
}

/* SIGTERM / SIGINT: the first is forwarded (the nodes drain); the second too (the nodes close
 * every connection at once, as a single node does on a second signal) and shortens the deadline
 * to what closing and leaving take; a third kills. */
static void on_stop_signal(supervisor_t *s, int sig) {
    const config_t *cfg = s->cfg;
    uint64_t now = clock_mono_ms();
    uint64_t close_ms =
        (uint64_t)cfg->close_timeout * 1000u + SUPERVISOR_LEAVE_MS + SUPERVISOR_STOP_MARGIN_MS;
    s->stop_count++;
    if (s->stop_count == 1) {
        s->stop_signal = sig;
        s->deadline_ms = now + (uint64_t)cfg->drain_seconds * 1000u + close_ms;
        log_info("supervisor: signal %d: stopping %d processes (they drain over "
                 "app.drainSeconds %u s)",
                 sig, s->live, cfg->drain_seconds);
        signal_children(s, sig);
    } else if (s->stop_count == 2) {
        log_info("supervisor: signal %d again: the processes close every connection now", sig);
        signal_children(s, sig);
        if (now + close_ms < s->deadline_ms)
            s->deadline_ms = now + close_ms;
    } else if (!s->killed) {
        log_warn("supervisor: signal %d a third time: killing %d processes", sig, s->live);
        kill_children(s, now);
    }
}

/* Sleeps until a signal comes or `ms` pass, and acts on SIGTERM, SIGINT and SIGHUP; SIGCHLD and
 * timeouts are handled by the caller's loop (reap, deadlines). */
static void wait_signal(supervisor_t *s, uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    siginfo_t si;
    int sig = sigtimedwait(&s->signals, &si, &ts);
    if (sig == SIGTERM || sig == SIGINT)
        on_stop_signal(s, sig);
    else if (sig == SIGHUP)
        /* Not forwarded: a node has no SIGHUP handler and would die without draining. There is
         * nothing to reload either: the configuration is read once, by the master. */
        log_info("supervisor: SIGHUP ignored (the configuration is read once; restart the master "
                 "to change it)");
}

/* The next time the loop has something to do, at most SUPERVISOR_WAIT_MAX_MS from now. */
static uint64_t next_wake(const supervisor_t *s, uint64_t now) {
    uint64_t wake = now + SUPERVISOR_WAIT_MAX_MS;
    if (s->stop_signal) {
        if (s->deadline_ms < wake)
            wake = s->deadline_ms;
        return wake;
    }
    for (int i = 0; i < s->count; i++)
        if (s->children[i].pid == 0 && s->children[i].restart_ms < wake)
            wake = s->children[i].restart_ms;
    return wake;
}

int supervisor_run(config_t *cfg) {
    supervisor_t s = {.cfg = cfg, .count = cfg->processes, .master = getpid()};
    /* An empty cluster.nodeId gets a default made once here: new for every master, the same
     * for every restart of a child. */
    cluster_node_id(cfg, s.base, sizeof s.base);

    /* SIGCHLD at its default on purpose: a parent that ran us with it ignored (inherited through
     * exec) would make the kernel reap the children itself, and waitpid() would see none. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    sigemptyset(&s.signals);
    sigaddset(&s.signals, SIGCHLD);
    sigaddset(&s.signals, SIGTERM);
    sigaddset(&s.signals, SIGINT);
    sigaddset(&s.signals, SIGHUP);
    /* The master's only output is its log on stderr, which may be a pipe that closes; the
     * nodes ignore SIGPIPE too (main.c), so the children inherit what they would set anyway. */
    signal(SIGPIPE, SIG_IGN);
    if (sigaction(SIGCHLD, &dfl, NULL) != 0 || sigprocmask(SIG_BLOCK, &s.signals, &s.old_mask)) {
        log_error("supervisor: cannot take the signals: %s", strerror(errno));
        return SUPERVISOR_ERR_SIGNALS;
    }
    s.children = calloc((size_t)s.count, sizeof *s.children);
    if (!s.children) {
        sigprocmask(SIG_SETMASK, &s.old_mask, NULL);
        return SUPERVISOR_ERR_NOMEM;
    }
    for (int i = 0; i < s.count; i++) {
        if (supervisor_node_id(s.base, i, s.children[i].id, sizeof s.children[i].id) != 0) {
            log_error("supervisor: node id %s-%d is longer than %d bytes", s.base, i,
                      CONFIG_NODE_ID_MAX); /* config.c refuses such a nodeId already */
            free(s.children);
            sigprocmask(SIG_SETMASK, &s.old_mask, NULL);
            return SUPERVISOR_ERR_CONFIG;
        }
    }
    log_info("supervisor: pid %d runs %d node processes (nodes %s-0 to %s-%d) on HTTP %d and "
             "WebSocket %d, sharing Redis at %s",
             (int)s.master, s.count, s.base, s.base, s.count - 1, cfg->http_port, cfg->ws_port,
             cfg->redis_addr);
    for (int i = 0; i < s.count; i++)
        if (start_child(&s, i) == SUPERVISOR_CHILD)
            return SUPERVISOR_CHILD;

    for (;;) {
        reap(&s);
        uint64_t now = clock_mono_ms();
        if (!s.stop_signal) {
            for (int i = 0; i < s.count; i++)
                if (s.children[i].pid == 0 && s.children[i].restart_ms <= now &&
                    start_child(&s, i) == SUPERVISOR_CHILD)
                    return SUPERVISOR_CHILD;
        } else if (s.live == 0) {
            break;
        } else if (now >= s.deadline_ms) {
            if (s.killed) {
                log_error("supervisor: %d processes still there after SIGKILL; leaving them",
                          s.live);
                break;
            }
            log_error("supervisor: %d processes still running at the stop deadline; killing them",
                      s.live);
            kill_children(&s, now);
        }
        now = clock_mono_ms();
        uint64_t wake = next_wake(&s, now);
        wait_signal(&s, wake > now ? wake - now : 0);
    }
    free(s.children);
    sigprocmask(SIG_SETMASK, &s.old_mask, NULL);
    if (s.killed) {
        log_error("supervisor: stopped; processes had to be killed");
        return SUPERVISOR_ERR_KILLED;
    }
    log_info("supervisor: every process has stopped");
    return s.failed ? SUPERVISOR_ERR_CHILD : SUPERVISOR_OK;
}
