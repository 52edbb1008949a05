#include "report.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "clock.h"

static const char *const phase_names[] = {"setup", "connect", "run", "stop"};

static double secs(int64_t ns) {
    return (double)ns / 1e9;
}

static double cpu_pct(const procstat_t *a, const procstat_t *b) {
    double w = secs(b->t_ns - a->t_ns);
    return w > 0 ? 100 * (b->cpu_s - a->cpu_s) / w : 0;
}

static uint64_t failures(const uint64_t *c) {
    return c[CNT_FAIL_CONNECT] + c[CNT_FAIL_ADDR] + c[CNT_FAIL_TIMEOUT] + c[CNT_FAIL_HANDSHAKE] +
           c[CNT_FAIL_LOGIN] + c[CNT_FAIL_CLOSED] + c[CNT_FAIL_PROTO];
}

void report_progress(run_t *r, int64_t now, int tty) {
    static int64_t last_t;
    static uint64_t last_logged, last_unique, last_churn;
    uint64_t c[CNT_COUNT];
    for (int i = 0; i < CNT_COUNT; i++)
        c[i] = shared_sum(r->sh, (counter_t)i);
    double dt = last_t ? secs(now - last_t) : secs(now - r->t_start);
    if (dt <= 0)
        dt = 1;
    int phase = atomic_load(&r->phase);
    int plan = atomic_load(&r->plan_index);
    char line[480];
    int n =
        snprintf(line, sizeof line,
                 "[%6.1fs] %-7s open %" PRIu64 "/%ld  logins %" PRIu64 " (%.0f/s)  fail %" PRIu64,
                 secs(now - r->t_start), phase_names[phase], c[CNT_OPEN], r->o->clients,
                 c[CNT_LOGGED_IN], (double)(c[CNT_LOGGED_IN] - last_logged) / dt, failures(c));
    if (c[CNT_FAIL_REFUSED])
        n +=
            snprintf(line + n, sizeof line - (size_t)n, " (503: %" PRIu64 ")", c[CNT_FAIL_REFUSED]);
    if (phase == PHASE_CONNECT && r->o->nsteps > 1) {
        int k = atomic_load(&r->sh->step);
        n += snprintf(line + n, sizeof line - (size_t)n, "  step %d/%d (to %ld)", k + 1,
                      r->o->nsteps, r->o->steps[k]);
    }
    if (plan >= 0) {
        const plan_phase_t *p = &r->o->phases[plan];
        const phase_result_t *ph = &r->ph[plan];
        n += snprintf(line + n, sizeof line - (size_t)n, "  phase %d/%d %s", plan + 1,
                      r->o->nphases, opts_phase_name(p->kind));
        if (p->kind != PH_IDLE)
            n += snprintf(line + n, sizeof line - (size_t)n,
                          ": sent %" PRIu64 "/%ld  delivered %" PRIu64 " (%.0f/s)",
                          atomic_load(&ph->trig.answered), p->messages,
                          c[CNT_UNIQUE] - ph->c0[CNT_UNIQUE],
                          (double)(c[CNT_UNIQUE] - last_unique) / dt);
        n +=
            snprintf(line + n, sizeof line - (size_t)n, "  heartbeats %" PRIu64, c[CNT_HEARTBEATS]);
    }
    if (r->o->mode == MODE_FANOUT || r->o->mode == MODE_DIRECT)
        n += snprintf(line + n, sizeof line - (size_t)n,
                      "  sent %" PRIu64 "/%ld  delivered %" PRIu64 " (%.0f/s) dup %" PRIu64,
                      atomic_load(&r->trig.answered), r->o->messages, c[CNT_UNIQUE],
                      (double)(c[CNT_UNIQUE] - last_unique) / dt, c[CNT_DUP]);
    if (r->o->mode == MODE_STORM)
        n += snprintf(line + n, sizeof line - (size_t)n, "  churn %" PRIu64 " (%.0f/s)",
                      c[CNT_CHURN_OPS], (double)(c[CNT_CHURN_OPS] - last_churn) / dt);
    if (c[CNT_PUSH_ENTER] + c[CNT_PUSH_EXIT])
        n += snprintf(line + n, sizeof line - (size_t)n, "  enter/exit %" PRIu64,
                      c[CNT_PUSH_ENTER] + c[CNT_PUSH_EXIT]);
    if (r->o->probes)
        snprintf(line + n, sizeof line - (size_t)n, "  pings %" PRIu64, c[CNT_PINGS]);
    if (tty)
        fprintf(stderr, "\r\033[K%s", line);
    else
        fprintf(stderr, "%s\n", line);
    fflush(stderr);
    last_t = now;
    last_logged = c[CNT_LOGGED_IN];
    last_unique = c[CNT_UNIQUE];
    last_churn = c[CNT_CHURN_OPS];
}

void report_collect(run_t *r) {
    memset(r->cnt, 0, sizeof r->cnt);
    for (int i = 0; i < CNT_COUNT; i++)
        r->cnt[i] = shared_sum(r->sh, (counter_t)i);
    for (int h = 0; h < H_COUNT; h++) {
        hist_reset(&r->hist[h]);
        for (int w = 0; w < r->sh->nworkers; w++)
            hist_merge(&r->hist[h], &r->sh->w[w].hist[h]);
    }
    for (int k = 0; k < r->o->nphases; k++) {
        hist_reset(&r->ph[k].delivery);
        for (int w = 0; w < r->sh->nworkers; w++)
            hist_merge(&r->ph[k].delivery, &r->sh->w[w].phase_delivery[k]);
    }
}

/* The RESULT line is built as one string of " key=value" pairs. */
typedef struct {
    char s[4096];
    size_t n;
} kv_t;

__attribute__((format(printf, 3, 4))) static void kv(kv_t *k, const char *key, const char *fmt,
                                                     ...) {
    if (k->n >= sizeof k->s)
        return;
    k->n += (size_t)snprintf(k->s + k->n, sizeof k->s - k->n, " %s=", key);
    if (k->n >= sizeof k->s)
        return;
    va_list ap;
    va_start(ap, fmt);
    k->n += (size_t)vsnprintf(k->s + k->n, sizeof k->s - k->n, fmt, ap);
    va_end(ap);
}

static void kv_na(kv_t *k, const char *key) {
    kv(k, key, "-");
}

static void kv_u(kv_t *k, const char *key, uint64_t v) {
    kv(k, key, "%" PRIu64, v);
}

/* A latency in whole microseconds, or "-" for an empty histogram. */
static void kv_us(kv_t *k, const char *key, const hist_t *h, double q) {
    if (h->count == 0)
        kv_na(k, key);
    else
        kv(k, key, "%" PRIu64, ((q >= 1 ? h->max_ns : hist_quantile(h, q)) + 500) / 1000);
}

static double ms(const hist_t *h, double q) {
    return (double)(q >= 1 ? h->max_ns : hist_quantile(h, q)) / 1e6;
}

static int delivery_mode(const opts_t *o) {
    return o->mode == MODE_FANOUT || o->mode == MODE_DIRECT;
}

static int64_t delivery_span(const run_t *r) {
    int64_t last = shared_last_delivery(r->sh);
    return last > r->trig.t_first ? last - r->trig.t_first : 0;
}

static uint64_t lost(const run_t *r) {
    return r->expected > r->cnt[CNT_UNIQUE] ? r->expected - r->cnt[CNT_UNIQUE] : 0;
}

static void summary(const run_t *r, FILE *out) {
    const opts_t *o = r->o;
    const uint64_t *c = r->cnt;
    fprintf(out, "imgate-bench %s: %ld clients, %d worker processes, %d source addresses",
            opts_mode_name(o->mode), o->clients, r->nclient_workers, o->src_ips);
    if (o->proto != PROTO_IMGATE || o->nnodes > 1)
        fprintf(out, ", %s protocol, %d node(s)", opts_proto_name(o->proto), o->nnodes);
    if (delivery_mode(o))
        fprintf(out, ", %ld messages via %s", o->messages, opts_trigger_name(o->trigger));
    if (delivery_mode(o) && o->send_rate > 0)
        fprintf(out, " at %.0f/s", o->send_rate);
    fprintf(out, "%s%s\n", r->timed_out ? " [TIMED OUT]" : "",
            r->interrupted ? " [INTERRUPTED]" : "");
    double cs = secs(r->t_connected - r->t_connect - r->connect_pause_ns);
    fprintf(out, "connect    %" PRIu64 " logged in in %.2f s (%.0f/s)", r->connected, cs,
            cs > 0 ? (double)r->connected / cs : 0);
    if (r->hist[H_LOGIN].count)
        fprintf(out, "; connect->login p50 %.2f ms p99 %.2f ms max %.2f ms",
                ms(&r->hist[H_LOGIN], .5), ms(&r->hist[H_LOGIN], .99), ms(&r->hist[H_LOGIN], 1));
    fprintf(out, "\n");
    fprintf(out,
            "failures   connect %" PRIu64 ", source address %" PRIu64 ", timeout %" PRIu64
            ", handshake %" PRIu64 " (503: %" PRIu64 "), login %" PRIu64
            ", closed by server %" PRIu64 ", protocol %" PRIu64,
            c[CNT_FAIL_CONNECT], c[CNT_FAIL_ADDR], c[CNT_FAIL_TIMEOUT], c[CNT_FAIL_HANDSHAKE],
            c[CNT_FAIL_REFUSED], c[CNT_FAIL_LOGIN], c[CNT_FAIL_CLOSED], c[CNT_FAIL_PROTO]);
    int last_errno = 0;
    for (int w = 0; w < r->sh->nworkers; w++)
        if (r->sh->w[w].last_errno)
            last_errno = r->sh->w[w].last_errno;
    if (last_errno)
        fprintf(out, " (last socket error: %s)", strerror(last_errno));
    fprintf(out, "\n");
    fprintf(out,
            "pushes     enter %" PRIu64 ", exit %" PRIu64 ", other %" PRIu64
            " (counted, ignored); heartbeats %" PRIu64 " ok, %" PRIu64 " refused\n",
            c[CNT_PUSH_ENTER], c[CNT_PUSH_EXIT], c[CNT_PUSH_OTHER], c[CNT_HEARTBEATS],
            c[CNT_HEARTBEAT_FAIL]);
    if (delivery_mode(o) && r->trig_ran) {
        const trigger_result_t *t = &r->trig;
        double ss = secs(t->t_last - t->t_first);
        fprintf(out,
                "trigger    %ld requests in %.3f s (%.0f/s): %" PRIu64 " ok, %" PRIu64
                " failed; reply p50 %.2f ms p99 %.2f ms max %.2f ms%s%s\n",
                o->messages, ss, ss > 0 ? (double)o->messages / ss : 0, t->ok, t->failures,
                ms(&t->rtt, .5), ms(&t->rtt, .99), ms(&t->rtt, 1), t->error[0] ? "; " : "",
                t->error);
        double ds = secs(delivery_span(r));
        fprintf(out,
                "delivery   %" PRIu64 "/%" PRIu64 " to %" PRIu64 " receivers in %.3f s (%.0f/s); "
                "lost %" PRIu64 ", dup %" PRIu64 ", misrouted %" PRIu64 "\n",
                c[CNT_UNIQUE], r->expected, r->receivers, ds,
                ds > 0 ? (double)c[CNT_UNIQUE] / ds : 0, lost(r), c[CNT_DUP], c[CNT_MISROUTED]);
        const hist_t *h = &r->hist[H_DELIVERY];
        if (h->count)
            fprintf(out,
                    "latency    send->receipt p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                    ms(h, .5), ms(h, .9), ms(h, .99), ms(h, 1));
    }
    if (o->mode == MODE_STORM) {
        double rs = secs(r->t_run_end - r->t_connected);
        fprintf(out, "churn      %" PRIu64 " close+connect+login ops in %.2f s (%.0f/s)\n",
                c[CNT_CHURN_OPS], rs, rs > 0 ? (double)c[CNT_CHURN_OPS] / rs : 0);
    }
    if (o->probes) {
        const hist_t *pc = &r->hist[H_PING_CONNECT], *pr = &r->hist[H_PING_RUN];
        fprintf(out,
                "probes     %d, %" PRIu64 " pings; connect phase p50 %.2f ms p99 %.2f ms max %.2f "
                "ms; run phase p50 %.2f ms p99 %.2f ms max %.2f ms\n",
                o->probes, c[CNT_PINGS], ms(pc, .5), ms(pc, .99), ms(pc, 1), ms(pr, .5),
                ms(pr, .99), ms(pr, 1));
    }
    const procstat_t *s = r->srv;
    if (s[SRV_START].ok && s[SRV_CONNECTED].ok && s[SRV_END].ok) {
        double per = r->connected
                         ? ((double)s[SRV_CONNECTED].rss_kb - (double)s[SRV_START].rss_kb) * 1024 /
                               (double)r->connected
                         : 0;
        double c1 = s[SRV_CONNECTED].cpu_s - s[SRV_START].cpu_s;
        double c2 = s[SRV_END].cpu_s - s[SRV_CONNECTED].cpu_s;
        double w1 = secs(s[SRV_CONNECTED].t_ns - s[SRV_START].t_ns);
        double w2 = secs(s[SRV_END].t_ns - s[SRV_CONNECTED].t_ns);
        fprintf(out,
                "server     RSS %.1f MiB -> %.1f MiB connected (%.0f B/conn) -> %.1f MiB; CPU "
                "connect %.2f s (%.0f%%), run %.2f s (%.0f%%)\n",
                (double)s[SRV_START].rss_kb / 1024, (double)s[SRV_CONNECTED].rss_kb / 1024, per,
                (double)s[SRV_END].rss_kb / 1024, c1, w1 > 0 ? 100 * c1 / w1 : 0, c2,
                w2 > 0 ? 100 * c2 / w2 : 0);
    } else if (o->nserver_pids) {
        fprintf(out, "server     could not read /proc of the server pid(s)\n");
    }
    fprintf(out, "bench      CPU %.2f s over %.2f s; RSS %.1f MiB connected\n", r->bench_cpu_s,
            secs(r->t_end - r->t_start), (double)r->cli[SRV_CONNECTED].rss_kb / 1024);
}

static void kv_fail(kv_t *k, const uint64_t *c) {
    kv_u(k, "connect_failures", c[CNT_FAIL_CONNECT]);
    kv_u(k, "addr_failures", c[CNT_FAIL_ADDR]);
    kv_u(k, "timeouts", c[CNT_FAIL_TIMEOUT]);
    kv_u(k, "handshake_failures", c[CNT_FAIL_HANDSHAKE]);
    kv_u(k, "refused_503", c[CNT_FAIL_REFUSED]);
    kv_u(k, "login_failures", c[CNT_FAIL_LOGIN]);
    kv_u(k, "closed_by_server", c[CNT_FAIL_CLOSED]);
    kv_u(k, "protocol_errors", c[CNT_FAIL_PROTO]);
}

void report_step(const run_t *r, int i, FILE *out) {
    const step_result_t *st = &r->steps[i];
    kv_t k = {.n = 0};
    double ss = secs(st->step_ns);
    kv(&k, "step", "%d", i + 1);
    kv(&k, "target", "%ld", st->target);
    const opts_t *o = r->o;
    kv(&k, "rate", "%g",
       o->nstep_rates ? o->step_rates[i < o->nstep_rates ? i : o->nstep_rates - 1] : o->rate);
    kv_u(&k, "connected", st->connected);
    kv(&k, "step_s", "%.3f", ss);
    kv(&k, "elapsed_s", "%.3f", secs(st->elapsed_ns));
    kv(&k, "logins_per_s", "%.1f", ss > 0 ? (double)st->logins / ss : 0);
    kv_us(&k, "login_p50_us", &st->login, .5);
    kv_us(&k, "login_p99_us", &st->login, .99);
    kv_us(&k, "login_max_us", &st->login, 1);
    kv_fail(&k, st->cnt);
    kv_u(&k, "heartbeats", st->cnt[CNT_HEARTBEATS]);
    if (st->srv0.ok && st->srv1.ok) {
        kv_u(&k, "server_rss_kb", st->srv1.rss_kb);
        kv(&k, "server_cpu_s", "%.2f", st->srv1.cpu_s - st->srv0.cpu_s);
        kv(&k, "server_cpu_pct", "%.0f", cpu_pct(&st->srv0, &st->srv1));
        kv(&k, "server_procs", "%d", st->srv1.nprocs);
    } else {
        kv_na(&k, "server_rss_kb");
        kv_na(&k, "server_cpu_s");
        kv_na(&k, "server_cpu_pct");
        kv_na(&k, "server_procs");
    }
    kv_u(&k, "client_rss_kb", st->cli1.rss_kb);
    kv(&k, "client_cpu_s", "%.2f", st->cli1.cpu_s - st->cli0.cpu_s);
    kv(&k, "t_ns", "%lld", (long long)st->t_end);
    fprintf(out, "STEP%s\n", k.s);
    fflush(out);
    if (!r->o->quiet)
        fprintf(stderr,
                "\nimgate-bench: step %d: %" PRIu64 " logged in (target %ld) after %.1f s, "
                "%.0f logins/s in the step, login p99 %.1f ms, failures %" PRIu64 "\n",
                i + 1, st->connected, st->target, secs(st->elapsed_ns),
                ss > 0 ? (double)st->logins / ss : 0, ms(&st->login, .99), failures(st->cnt));
}

static uint64_t phase_got(const phase_result_t *ph) {
    return ph->c1[CNT_UNIQUE] - ph->c0[CNT_UNIQUE];
}

/* From the phase's first request until its last receiver had its message. */
static int64_t phase_span(const phase_result_t *ph) {
    return ph->last_delivery > ph->trig.t_first && phase_got(ph)
               ? ph->last_delivery - ph->trig.t_first
               : 0;
}

void report_phase_done(const run_t *r, int i) {
    const phase_result_t *ph = &r->ph[i];
    const plan_phase_t *p = &r->o->phases[i];
    if (r->o->quiet)
        return;
    double w = secs(ph->t_end - ph->t_start);
    fprintf(stderr, "\nimgate-bench: phase %d %s: %.1f s, server CPU %.2f s (%.0f%%)", i + 1,
            opts_phase_name(p->kind), w, ph->srv1.cpu_s - ph->srv0.cpu_s,
            cpu_pct(&ph->srv0, &ph->srv1));
    if (p->kind != PH_IDLE) {
        uint64_t got = phase_got(ph);
        double span = secs(phase_span(ph));
        fprintf(stderr, "; %" PRIu64 "/%" PRIu64 " delivered, last after %.3f s (%.0f/s)", got,
                ph->expected, span, span > 0 ? (double)got / span : 0);
        if (ph->trig.failures)
            fprintf(stderr, "; %" PRIu64 " sends failed, the first: %s", ph->trig.failures,
                    ph->trig.error);
    }
    fprintf(stderr, "\n");
}

static void print_phase(const run_t *r, int i, FILE *out) {
    const phase_result_t *ph = &r->ph[i];
    const plan_phase_t *p = &r->o->phases[i];
    const uint64_t *a = ph->c0, *b = ph->c1;
    kv_t k = {.n = 0};
    double w = secs(ph->t_end - ph->t_start);
    kv(&k, "index", "%d", i + 1);
    kv(&k, "kind", "%s", opts_phase_name(p->kind));
    kv(&k, "seconds", "%.3f", w);
    if (p->kind == PH_IDLE) {
        static const char *const na[] = {
            "messages", "send_rate", "receivers",        "expected",   "deliveries", "lost",
            "dup",      "misrouted", "deliveries_per_s", "last_ms",    "p50_us",     "p90_us",
            "p99_us",   "max_us",    "send_failures",    "req_p50_us", "req_p99_us"};
        for (size_t j = 0; j < sizeof na / sizeof na[0]; j++)
            kv_na(&k, na[j]);
    } else {
        uint64_t got = phase_got(ph);
        double span = secs(phase_span(ph));
        kv(&k, "messages", "%ld", p->messages);
        kv(&k, "send_rate", "%g", p->send_rate);
        kv_u(&k, "receivers", ph->receivers);
        kv_u(&k, "expected", ph->expected);
        kv_u(&k, "deliveries", got);
        kv_u(&k, "lost", ph->expected > got ? ph->expected - got : 0);
        kv_u(&k, "dup", b[CNT_DUP] - a[CNT_DUP]);
        kv_u(&k, "misrouted", b[CNT_MISROUTED] - a[CNT_MISROUTED]);
        kv(&k, "deliveries_per_s", "%.1f", span > 0 ? (double)got / span : 0);
        kv(&k, "last_ms", "%.3f", span * 1e3);
        kv_us(&k, "p50_us", &ph->delivery, .5);
        kv_us(&k, "p90_us", &ph->delivery, .9);
        kv_us(&k, "p99_us", &ph->delivery, .99);
        kv_us(&k, "max_us", &ph->delivery, 1);
        kv_u(&k, "send_failures", ph->trig.failures);
        kv_us(&k, "req_p50_us", &ph->trig.rtt, .5);
        kv_us(&k, "req_p99_us", &ph->trig.rtt, .99);
    }
    kv_u(&k, "heartbeats", b[CNT_HEARTBEATS] - a[CNT_HEARTBEATS]);
    kv_u(&k, "heartbeat_failures", b[CNT_HEARTBEAT_FAIL] - a[CNT_HEARTBEAT_FAIL]);
    kv_u(&k, "closed_by_server", b[CNT_FAIL_CLOSED] - a[CNT_FAIL_CLOSED]);
    if (ph->srv0.ok && ph->srv1.ok) {
        kv(&k, "server_cpu_s", "%.2f", ph->srv1.cpu_s - ph->srv0.cpu_s);
        kv(&k, "server_cpu_pct", "%.1f", cpu_pct(&ph->srv0, &ph->srv1));
    } else {
        kv_na(&k, "server_cpu_s");
        kv_na(&k, "server_cpu_pct");
    }
    kv(&k, "client_cpu_s", "%.2f", ph->cli1.cpu_s - ph->cli0.cpu_s);
    kv(&k, "client_cpu_pct", "%.1f", cpu_pct(&ph->cli0, &ph->cli1));
    if (ph->srv1.ok)
        kv_u(&k, "server_rss_kb", ph->srv1.rss_kb);
    else
        kv_na(&k, "server_rss_kb");
    kv_u(&k, "client_rss_kb", ph->cli1.rss_kb);
    kv(&k, "t_start_ns", "%lld", (long long)ph->t_start);
    kv(&k, "t_end_ns", "%lld", (long long)ph->t_end);
    fprintf(out, "PHASE%s\n", k.s);
}

void report_print(const run_t *r, FILE *out) {
    const opts_t *o = r->o;
    const uint64_t *c = r->cnt;
    if (!o->quiet)
        summary(r, out);
    for (int i = 0; i < o->nphases; i++)
        if (r->ph[i].ran)
            print_phase(r, i, out);
    kv_t k = {.n = 0};
    kv(&k, "mode", "%s", opts_mode_name(o->mode));
    kv(&k, "proto", "%s", opts_proto_name(o->proto));
    kv(&k, "nodes", "%d", o->nnodes);
    kv(&k, "clients", "%ld", o->clients);
    kv(&k, "procs", "%d", r->nclient_workers);
    kv(&k, "src_ips", "%d", o->src_ips);
    int dm = delivery_mode(o);
    if (dm) {
        kv(&k, "trigger", "%s", opts_trigger_name(o->trigger));
        kv(&k, "messages", "%ld", o->messages);
        kv(&k, "msg_size", "%ld", o->msg_size);
        kv(&k, "send_rate", "%g", o->send_rate);
    } else {
        kv_na(&k, "trigger");
        kv_na(&k, "messages");
        kv_na(&k, "msg_size");
        kv_na(&k, "send_rate");
    }
    if (o->mode == MODE_DIRECT && o->target_nodes) {
        char list[OPTS_MAX_NODES * 3 + 1];
        size_t n = 0;
        list[0] = '\0';
        for (int i = 0; i < o->nnodes; i++)
            if (o->target_nodes & (1u << i))
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%d", n ? "," : "", i);
        kv(&k, "target_nodes", "%s", list);
    } else {
        kv(&k, "target_nodes", "%s", o->mode == MODE_DIRECT ? "all" : "-");
    }
    kv(&k, "elapsed_s", "%.2f", secs(r->t_end - r->t_start));
    kv(&k, "timed_out", "%d", r->timed_out);
    kv_u(&k, "connected", r->connected);
    double cs = secs(r->t_connected - r->t_connect - r->connect_pause_ns);
    kv(&k, "connect_s", "%.3f", cs);
    kv(&k, "connect_per_s", "%.1f", cs > 0 ? (double)r->connected / cs : 0);
    kv_us(&k, "login_p50_us", &r->hist[H_LOGIN], .5);
    kv_us(&k, "login_p99_us", &r->hist[H_LOGIN], .99);
    kv_us(&k, "login_max_us", &r->hist[H_LOGIN], 1);
    kv_fail(&k, c);
    kv_u(&k, "heartbeats", c[CNT_HEARTBEATS]);
    kv_u(&k, "heartbeat_failures", c[CNT_HEARTBEAT_FAIL]);
    kv_u(&k, "enter_pushes", c[CNT_PUSH_ENTER]);
    kv_u(&k, "exit_pushes", c[CNT_PUSH_EXIT]);
    kv_u(&k, "other_pushes", c[CNT_PUSH_OTHER]);
    const hist_t *h = &r->hist[H_DELIVERY];
    const trigger_result_t *t = &r->trig;
    if (dm && r->trig_ran) {
        double ds = secs(delivery_span(r));
        double ss = secs(t->t_last - t->t_first);
        kv_u(&k, "receivers", r->receivers);
        kv_u(&k, "expected", r->expected);
        kv_u(&k, "deliveries", c[CNT_UNIQUE]);
        kv_u(&k, "lost", lost(r));
        kv_u(&k, "dup", c[CNT_DUP]);
        kv_u(&k, "misrouted", c[CNT_MISROUTED]);
        kv(&k, "deliveries_per_s", "%.1f", ds > 0 ? (double)c[CNT_UNIQUE] / ds : 0);
        kv_us(&k, "p50_us", h, .5);
        kv_us(&k, "p90_us", h, .9);
        kv_us(&k, "p99_us", h, .99);
        kv_us(&k, "max_us", h, 1);
        kv(&k, "send_s", "%.3f", ss);
        kv(&k, "sends_per_s", "%.1f", ss > 0 ? (double)o->messages / ss : 0);
        kv_u(&k, "send_failures", t->failures);
        kv_us(&k, "req_p50_us", &t->rtt, .5);
        kv_us(&k, "req_p99_us", &t->rtt, .99);
    } else {
        static const char *const na[] = {
            "receivers",        "expected",      "deliveries", "lost",      "dup",    "misrouted",
            "deliveries_per_s", "p50_us",        "p90_us",     "p99_us",    "max_us", "send_s",
            "sends_per_s",      "send_failures", "req_p50_us", "req_p99_us"};
        for (size_t i = 0; i < sizeof na / sizeof na[0]; i++)
            kv_na(&k, na[i]);
    }
    hist_t all = r->hist[H_PING_CONNECT];
    hist_merge(&all, &r->hist[H_PING_RUN]);
    kv(&k, "probes", "%d", o->probes);
    kv_u(&k, "pings", c[CNT_PINGS]);
    kv_us(&k, "ping_p50_us", &all, .5);
    kv_us(&k, "ping_p90_us", &all, .9);
    kv_us(&k, "ping_p99_us", &all, .99);
    kv_us(&k, "ping_max_us", &all, 1);
    kv_us(&k, "ping_connect_p50_us", &r->hist[H_PING_CONNECT], .5);
    kv_us(&k, "ping_connect_p99_us", &r->hist[H_PING_CONNECT], .99);
    kv_us(&k, "ping_connect_max_us", &r->hist[H_PING_CONNECT], 1);
    kv_us(&k, "ping_run_p50_us", &r->hist[H_PING_RUN], .5);
    kv_us(&k, "ping_run_p99_us", &r->hist[H_PING_RUN], .99);
    kv_us(&k, "ping_run_max_us", &r->hist[H_PING_RUN], 1);
    if (o->mode == MODE_STORM) {
        double rs = secs(r->t_run_end - r->t_connected);
        kv_u(&k, "churn_ops", c[CNT_CHURN_OPS]);
        kv(&k, "churn_per_s", "%.1f", rs > 0 ? (double)c[CNT_CHURN_OPS] / rs : 0);
    } else {
        kv_na(&k, "churn_ops");
        kv_na(&k, "churn_per_s");
    }
    const procstat_t *s = r->srv;
    if (s[SRV_START].ok && s[SRV_CONNECTED].ok && s[SRV_END].ok) {
        double c1 = s[SRV_CONNECTED].cpu_s - s[SRV_START].cpu_s;
        double c2 = s[SRV_END].cpu_s - s[SRV_CONNECTED].cpu_s;
        double w1 = secs(s[SRV_CONNECTED].t_ns - s[SRV_START].t_ns);
        double w2 = secs(s[SRV_END].t_ns - s[SRV_CONNECTED].t_ns);
        kv_u(&k, "server_rss_start_kb", s[SRV_START].rss_kb);
        kv_u(&k, "server_rss_kb", s[SRV_CONNECTED].rss_kb);
        kv_u(&k, "server_rss_end_kb", s[SRV_END].rss_kb);
        kv(&k, "rss_per_conn_b", "%lld",
           r->connected
               ? (long long)(((double)s[SRV_CONNECTED].rss_kb - (double)s[SRV_START].rss_kb) *
                             1024 / (double)r->connected)
               : 0LL);
        kv(&k, "server_cpu_connect_s", "%.2f", c1);
        kv(&k, "server_cpu_connect_pct", "%.0f", w1 > 0 ? 100 * c1 / w1 : 0);
        kv(&k, "server_cpu_run_s", "%.2f", c2);
        kv(&k, "server_cpu_run_pct", "%.0f", w2 > 0 ? 100 * c2 / w2 : 0);
        kv(&k, "server_cpu_s", "%.2f", c1 + c2);
    } else {
        static const char *const na[] = {
            "server_rss_start_kb", "server_rss_kb",        "server_rss_end_kb",
            "rss_per_conn_b",      "server_cpu_connect_s", "server_cpu_connect_pct",
            "server_cpu_run_s",    "server_cpu_run_pct",   "server_cpu_s"};
        for (size_t i = 0; i < sizeof na / sizeof na[0]; i++)
            kv_na(&k, na[i]);
    }
    kv(&k, "bench_cpu_s", "%.2f", r->bench_cpu_s);
    kv_u(&k, "client_rss_kb", r->cli[SRV_CONNECTED].rss_kb);
    fprintf(out, "RESULT%s\n", k.s);
    fflush(out);
}
