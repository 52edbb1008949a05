#!/usr/bin/env python3
"""bench/million-report.py — the Markdown tables of a bench/million.sh run.

    million-report.py build/bench/million-<stamp>      (every variant under it: default, tuned)

Reads each variant's meta.json, kernel.txt, bench.out (imgate-bench's STEP, PHASE and RESULT
lines), snap-*.json (bench/million-sample.py) and watch.jsonl, and prints:
  1. per count: memory (imgate, kernel, Redis, bench), time to establish, logins/s, CPU
  2. at the largest count: the room push, the direct messages, the idle cost
  3. Redis per phase: ops/s, CPU, memory, and the login rate where it would saturate
  4. with both variants: the kernel's memory, default against tuned buffer sizes
Memory per connection is (value at N - value at the start) / N. "Summed RSS" counts each
process's resident pages, shared library pages once per process; RssAnon (and Pss) do not.
"""
import glob
import json
import os
import sys

SLABS = ["TCP", "sock_inode_cache", "dentry", "filp", "eventpoll_epi", "ep_head",
         "eventpoll_pwq", "skbuff_head_cache", "skbuff_small_head", "request_sock_TCP",
         "tcp_bind_bucket", "tcp_bind2_bucket", "kmalloc-64", "kmalloc-128", "kmalloc-192",
         "kmalloc-256", "kmalloc-512", "kmalloc-1k", "kmalloc-2k", "kmalloc-4k", "pid"]


def kv_line(line):
    return dict(t.split("=", 1) for t in line.split()[1:] if "=" in t)


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt_int(v):
    if v is None:
        return "n/a"
    return "{:,.0f}".format(v).replace(",", " ")


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    return ("%." + str(digits) + "f") % v


def mib(kb):
    return None if kb is None else kb / 1024.0


class Variant:
    def __init__(self, d):
        self.dir = d
        self.name = os.path.basename(d)
        self.meta = json.load(open(os.path.join(d, "meta.json")))
        self.kernel = {}
        if os.path.exists(os.path.join(d, "kernel.txt")):
            for line in open(os.path.join(d, "kernel.txt")):
                k, _, v = line.partition(" = ")
                self.kernel[k.strip()] = v.strip()
        self.steps, self.phases, self.result = [], [], {}
        out = os.path.join(d, "bench.out")
        for line in open(out) if os.path.exists(out) else []:
            if line.startswith("STEP "):
                self.steps.append(kv_line(line))
            elif line.startswith("PHASE "):
                self.phases.append(kv_line(line))
            elif line.startswith("RESULT "):
                self.result = kv_line(line)
        self.snaps = {}
        for p in glob.glob(os.path.join(d, "snap-*.json")):
            s = json.load(open(p))
            self.snaps[s["label"]] = s
        self.watch = []
        w = os.path.join(d, "watch.jsonl")
        for line in open(w) if os.path.exists(w) else []:
            try:
                self.watch.append(json.loads(line))
            except ValueError:
                pass
        self.status = open(os.path.join(d, "status.txt")).read().strip() \
            if os.path.exists(os.path.join(d, "status.txt")) else "?"

    # ---- snapshot helpers ----
    def group_sum(self, snap, role, key):
        if snap is None:
            return None
        vals = [m.get(key) for m in snap["groups"].get(role, [])]
        vals = [v for v in vals if v is not None]
        return sum(vals) if vals else None

    def cpu_s(self, snap, role):
        t = self.group_sum(snap, role, "ticks")
        return None if t is None else t / snap["hz"]

    def redis(self, snap, key):
        if snap is None or not snap.get("redis"):
            return None
        return snap["redis"].get(key)

    def redis_cpu(self, snap):
        a, b = self.redis(snap, "used_cpu_sys"), self.redis(snap, "used_cpu_user")
        return None if a is None or b is None else a + b

    def slab_bytes(self, snap, name):
        if snap is None:
            return None
        s = snap["slab"].get(name)
        return None if s is None else s["bytes"]

    def tcp_mem_bytes(self, snap):
        if snap is None:
            return None
        return snap["sockstat"].get("TCP", {}).get("mem", 0) * snap["page"]

    def mem(self, snap, key):
        return None if snap is None else snap["meminfo"].get(key)

    def watch_between(self, t0, t1, key):
        return [w[key] for w in self.watch if key in w and t0 <= w["t_ns"] <= t1]

    def peak_rate(self, t0, t1, key):
        """The highest per-second rate of a counter between consecutive samples in [t0, t1]."""
        rows = [w for w in self.watch if key in w and t0 <= w["t_ns"] <= t1]
        best = None
        for a, b in zip(rows, rows[1:]):
            dt = (b["t_ns"] - a["t_ns"]) / 1e9
            if dt > 0.2:
                r = (b[key] - a[key]) / dt
                best = r if best is None or r > best else best
        return best


def delta(a, b):
    return None if a is None or b is None else b - a


def per(x, n):
    return None if x is None or not n else x / n


def counts_table(v):
    start = v.snaps.get("start")
    rows = []
    prev_snap = start
    for st in v.steps:
        target = int(st["target"])
        n = int(st["connected"])
        snap = v.snaps.get("step-%d" % target)
        r = {"target": target, "n": n, "st": st, "snap": snap}
        for key in ("VmRSS", "RssAnon", "smaps_Pss"):
            r["srv_" + key] = v.group_sum(snap, "server", key)
            r["srv0_" + key] = v.group_sum(start, "server", key)
        fds = [m.get("fds") for m in (snap or {"groups": {}})["groups"].get("server", [])
               if m.get("fds") is not None and m.get("Threads", 2) > 1]
        r["fds"] = (min(fds), max(fds)) if fds else None
        r["cli_rss"] = v.group_sum(snap, "bench", "VmRSS")
        r["cli0_rss"] = v.group_sum(start, "bench", "VmRSS")
        r["cli_anon"] = v.group_sum(snap, "bench", "RssAnon")
        r["cli0_anon"] = v.group_sum(start, "bench", "RssAnon")
        r["redis_used"] = v.redis(snap, "used_memory")
        r["redis0_used"] = v.redis(start, "used_memory")
        r["redis_rss"] = v.group_sum(snap, "redis", "VmRSS")
        r["slab"] = {s: delta(v.slab_bytes(start, s), v.slab_bytes(snap, s)) for s in SLABS}
        r["slab_total"] = delta(v.mem(start, "Slab"), v.mem(snap, "Slab"))
        r["tcp_mem"] = v.tcp_mem_bytes(snap)
        r["tcp_inuse"] = snap["sockstat"].get("TCP", {}).get("inuse") if snap else None
        r["memavail_drop"] = delta(v.mem(snap, "MemAvailable"), v.mem(start, "MemAvailable"))
        r["pagetables"] = delta(v.mem(start, "PageTables"), v.mem(snap, "PageTables"))
        r["srv_cpu"] = num(st.get("server_cpu_s"))
        r["cli_cpu"] = num(st.get("client_cpu_s"))
        r["redis_cpu"] = delta(v.redis_cpu(prev_snap), v.redis_cpu(snap))
        r["redis_cmds"] = delta(v.redis(prev_snap, "total_commands_processed"),
                                v.redis(snap, "total_commands_processed"))
        r["step_s"] = num(st.get("step_s"))
        r["prev"] = prev_snap
        r["logins"] = None
        rows.append(r)
        prev_snap = snap
    return rows


def print_counts(v, out):
    rows = counts_table(v)
    if not rows:
        print("No STEP lines in %s/bench.out: the run did not get through a step.\n" % v.dir,
              file=out)
        return rows
    m = v.meta
    print("### %s kernel buffers (tcp_rmem %s, tcp_wmem %s)\n"
          % (v.name, v.kernel.get("net.ipv4.tcp_rmem", "?"), v.kernel.get("net.ipv4.tcp_wmem", "?")),
          file=out)
    print("%d imgate processes (%s, app.workers %d, app.maxConnections %d, roomNotices %s%s), "
          "one redis-server %s%s; %d imgate-bench client processes; connect rate %d/s; "
          "commit %s.\n"
          % (m["processes"], "imgate --processes" if m["supervisor"] else "started one by one",
             m["workers"], m["max_conns"], "true" if m["notices"] else "false",
             (", " + m["imgate_args"]) if m.get("imgate_args") else "",
             m.get("redis_version", "?"),
             " (nice %d)" % m["redis_nice"] if m.get("redis_nice") else "",
             m["bench_procs"], m["rate"], m["commit"]), file=out)
    head = ["logged-in connections"] + [fmt_int(r["n"]) for r in rows]
    print("| " + " | ".join(head) + " |", file=out)
    print("|---|" + "---:|" * len(rows), file=out)

    def line(label, f):
        print("| %s | %s |" % (label, " | ".join(f(r) for r in rows)), file=out)

    def perconn(key0, key, kb=True):
        def f(r):
            d = delta(r[key0], r[key])
            return fmt_int(per(d * 1024 if kb and d is not None else d, r["n"]))
        return f

    line("imgate summed RSS, MiB", lambda r: fmt(mib(r["srv_VmRSS"])))
    line("&nbsp;&nbsp;per connection (RSS growth / N), B", perconn("srv0_VmRSS", "srv_VmRSS"))
    line("imgate summed RssAnon, MiB", lambda r: fmt(mib(r["srv_RssAnon"])))
    line("&nbsp;&nbsp;per connection, B", perconn("srv0_RssAnon", "srv_RssAnon"))
    line("imgate summed Pss, MiB", lambda r: fmt(mib(r["srv_smaps_Pss"])))
    line("descriptors per imgate process, min / max (limit 20 000)",
         lambda r: "%d / %d" % r["fds"] if r["fds"] else "n/a")
    line("kernel: TCP sockets in use (both ends)", lambda r: fmt_int(r["tcp_inuse"]))
    line("kernel: TCP buffer memory (sockstat mem), MiB",
         lambda r: fmt(None if r["tcp_mem"] is None else r["tcp_mem"] / 2**20, 2))
    line("kernel: slab growth (meminfo Slab), MiB",
         lambda r: fmt(None if r["slab_total"] is None else r["slab_total"] / 1024))
    line("&nbsp;&nbsp;per connection (2 sockets: server + client end), B",
         lambda r: fmt_int(per(None if r["slab_total"] is None else r["slab_total"] * 1024, r["n"])))
    for s in ("TCP", "sock_inode_cache", "dentry", "filp", "eventpoll_epi", "ep_head",
              "kmalloc-64", "kmalloc-128", "kmalloc-192", "kmalloc-256", "kmalloc-512",
              "kmalloc-1k"):
        if any(r["slab"].get(s) for r in rows):
            line("&nbsp;&nbsp;slab %s, per connection, B" % s,
                 lambda r, s=s: fmt_int(per(r["slab"].get(s), r["n"])))
    line("kernel: page tables growth, MiB",
         lambda r: fmt(None if r["pagetables"] is None else r["pagetables"] / 1024))
    line("Redis used_memory, MiB", lambda r: fmt(None if r["redis_used"] is None else r["redis_used"] / 2**20))
    line("&nbsp;&nbsp;per user, B", lambda r: fmt_int(per(delta(r["redis0_used"], r["redis_used"]), r["n"])))
    line("Redis RSS, MiB", lambda r: fmt(mib(r["redis_rss"])))
    line("imgate-bench summed RSS, MiB", lambda r: fmt(mib(r["cli_rss"])))
    line("&nbsp;&nbsp;per connection, B", perconn("cli0_rss", "cli_rss"))
    line("&nbsp;&nbsp;RssAnon per connection, B", perconn("cli0_anon", "cli_anon"))
    line("MemAvailable drop since the start, MiB",
         lambda r: fmt(None if r["memavail_drop"] is None else r["memavail_drop"] / 1024))
    line("&nbsp;&nbsp;per connection (everything: both ends, Redis, bench), B",
         lambda r: fmt_int(per(None if r["memavail_drop"] is None else r["memavail_drop"] * 1024, r["n"])))
    line("time to establish (cumulative, at the set rate), s", lambda r: fmt(num(r["st"]["elapsed_s"])))
    line("connect rate asked for, /s", lambda r: fmt_int(num(r["st"].get("rate"))))
    line("logins/s in the step", lambda r: fmt_int(num(r["st"]["logins_per_s"])))
    line("login p50 / p99 in the step, ms",
         lambda r: "%s / %s" % (fmt(per(num(r["st"]["login_p50_us"]), 1000), 2),
                                fmt(per(num(r["st"]["login_p99_us"]), 1000), 1)))

    def cpu(key):
        return lambda r: "%s (%s %%)" % (fmt(r[key], 1), fmt(per(r[key] * 100, r["step_s"]) if r[key] is not None else None, 0))
    line("CPU in the step: imgate, s (% of one core)", cpu("srv_cpu"))
    line("CPU in the step: Redis, s (%)", cpu("redis_cpu"))
    line("CPU in the step: imgate-bench, s (%)", cpu("cli_cpu"))
    def machine(r):
        a, b = r.get("prev"), r["snap"]
        if not a or not b or not a.get("cpu") or not b.get("cpu"):
            return "n/a"
        ca, cb = a["cpu"], b["cpu"]
        tot = sum(cb[k] - ca[k] for k in ("user", "nice", "system", "idle", "iowait", "irq",
                                          "softirq", "steal"))
        idle = cb["idle"] - ca["idle"] + cb["iowait"] - ca["iowait"]
        steal = cb["steal"] - ca["steal"]
        return "%.0f %% (steal %.0f %%)" % (200.0 * (tot - idle - steal) / tot, 200.0 * steal / tot) if tot else "n/a"
    line("machine CPU busy in the step, % of 2 cores (all processes)", machine)

    def others(r):
        a, b = r.get("prev"), r["snap"]
        if not a or not b or not a.get("cpu") or not b.get("cpu"):
            return "n/a"
        ca, cb = a["cpu"], b["cpu"]
        busy = sum(cb[k] - ca[k] for k in ("user", "nice", "system", "irq", "softirq"))
        ours = sum((v.group_sum(b, g, "ticks") or 0) - (v.group_sum(a, g, "ticks") or 0)
                   for g in ("server", "redis", "bench"))
        secs = (b["t_ns"] - a["t_ns"]) / 1e9
        return "%.0f %%" % (100.0 * (busy - ours) / b["hz"] / secs) if secs > 0 else "n/a"
    line("&nbsp;&nbsp;of which not imgate, Redis or the bench (kernel threads, other users), % of one core", others)
    line("Redis commands in the step (per login)",
         lambda r: "%s (%s)" % (fmt_int(r["redis_cmds"]),
                                fmt(per(r["redis_cmds"], num(r["st"]["logins_per_s"]) * r["step_s"]
                                        if r["step_s"] else None), 2)))

    def fails(r):
        st = r["st"]
        kinds = [("connect", "connect_failures"), ("address", "addr_failures"),
                 ("timeout", "timeouts"), ("handshake", "handshake_failures"),
                 ("503", "refused_503"), ("login", "login_failures"),
                 ("closed", "closed_by_server"), ("protocol", "protocol_errors")]
        bad = ["%s %s" % (k, st[key]) for k, key in kinds if st.get(key) not in (None, "0")]
        return ", ".join(bad) if bad else "0"
    line("failures so far, by kind", fails)
    print(file=out)
    return rows


def phase_window(v, label_before, label_after):
    return v.snaps.get(label_before), v.snaps.get(label_after)


def print_phases(v, out):
    if not v.phases:
        return
    last_step = "step-%d" % int(v.steps[-1]["target"]) if v.steps else None
    labels = [last_step] + ["%s%d" % (p["kind"], i + 1) for i, p in enumerate(v.phases)]
    n = int(v.steps[-1]["connected"]) if v.steps else 0
    print("At %s logged-in connections (%s kernel buffers), on the same connections:\n"
          % (fmt_int(n), v.name), file=out)
    print("| phase | what | result |", file=out)
    print("|---|---|---|", file=out)
    for i, p in enumerate(v.phases):
        a, b = v.snaps.get(labels[i]), v.snaps.get(labels[i + 1])
        secs = num(p["seconds"])
        rcpu = delta(v.redis_cpu(a), v.redis_cpu(b))
        scpu, ccpu = num(p.get("server_cpu_s")), num(p.get("client_cpu_s"))
        cpu = "CPU: imgate %s s (%s %% of one core, summed over processes), Redis %s s (%s %%), " \
              "bench %s s (%s %%)" % (
                  fmt(scpu, 2), fmt(per(scpu * 100, secs) if scpu is not None else None, 1),
                  fmt(rcpu, 2), fmt(per(rcpu * 100, secs) if rcpu is not None else None, 1),
                  fmt(ccpu, 2), fmt(per(ccpu * 100, secs) if ccpu is not None else None, 1))
        if p["kind"] == "idle":
            hb = num(p["heartbeats"])
            what = "%.0f s idle, heartbeats every 30 s" % secs
            res = "%s heartbeats (%s/s), %s refused, %s closed by the server; %s" % (
                fmt_int(hb), fmt_int(per(hb, secs)), p["heartbeat_failures"],
                p["closed_by_server"], cpu)
        elif p["kind"] == "fanout":
            what = "%s room push(es) (sendMessageAll) to %s receivers" % (p["messages"], fmt_int(num(p["receivers"])))
            res = ("%s deliveries/s; last receiver had it %s ms after the POST; latency p50 %s ms, "
                   "p99 %s ms; lost %s, duplicated %s, misrouted %s; POST answered in %s ms; %s") % (
                fmt_int(num(p["deliveries_per_s"])), fmt(num(p["last_ms"]), 0),
                fmt(per(num(p["p50_us"]), 1000), 0), fmt(per(num(p["p99_us"]), 1000), 0),
                p["lost"], p["dup"], p["misrouted"], fmt(per(num(p["req_p50_us"]), 1000), 1), cpu)
        else:
            what = "%s direct messages (sendMessage) to random users at %s/s" % (p["messages"], p["send_rate"])
            res = ("latency POST -> receipt p50 %s ms, p90 %s ms, p99 %s ms, max %s ms; lost %s, "
                   "send failures %s, duplicated %s; POST answer p50 %s ms p99 %s ms; %s") % (
                fmt(per(num(p["p50_us"]), 1000), 2), fmt(per(num(p["p90_us"]), 1000), 2),
                fmt(per(num(p["p99_us"]), 1000), 2), fmt(per(num(p["max_us"]), 1000), 1),
                p["lost"], p["send_failures"], p["dup"], fmt(per(num(p["req_p50_us"]), 1000), 2),
                fmt(per(num(p["req_p99_us"]), 1000), 2), cpu)
        print("| %d %s | %s | %s |" % (i + 1, p["kind"], what, res), file=out)
    print(file=out)


def print_redis(v, out):
    print("Redis (%s kernel buffers), per phase: commands/s = total_commands_processed delta / "
          "time; peak = the highest commands/s between two samples a second apart; CPU = "
          "used_cpu_sys + used_cpu_user delta (100 %% = one core: Redis runs commands on one "
          "thread).\n" % v.name, file=out)
    print("| phase | seconds | commands | commands/s | peak ops/s | Redis CPU % | CPU µs per command | used_memory at the end, MiB | slowest INFO, ms | machine: busy % / steal % of 2 CPUs |", file=out)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", file=out)
    labels = ["start"] + ["step-%d" % int(s["target"]) for s in v.steps] + \
        ["%s%d" % (p["kind"], i + 1) for i, p in enumerate(v.phases)]
    names = ["connect to %s" % fmt_int(num(s["target"])) for s in v.steps] + \
        ["%d %s" % (i + 1, p["kind"]) for i, p in enumerate(v.phases)]
    sat = []
    for i, name in enumerate(names):
        a, b = v.snaps.get(labels[i]), v.snaps.get(labels[i + 1])
        if not a or not b:
            continue
        secs = (b["t_ns"] - a["t_end_ns"]) / 1e9
        cmds = delta(v.redis(a, "total_commands_processed"), v.redis(b, "total_commands_processed"))
        cpu = delta(v.redis_cpu(a), v.redis_cpu(b))
        peak = v.peak_rate(a["t_end_ns"], b["t_ns"], "redis_total_commands_processed")
        slow = v.watch_between(a["t_end_ns"], b["t_ns"], "redis_info_ms")
        ca, cb = a.get("cpu"), b.get("cpu")
        busy = steal = None
        if ca and cb:
            tot = sum(cb[k] - ca[k] for k in ("user", "nice", "system", "idle", "iowait", "irq",
                                              "softirq", "steal"))
            if tot > 0:
                busy = 200.0 * (tot - (cb["idle"] - ca["idle"]) - (cb["iowait"] - ca["iowait"])
                                - (cb["steal"] - ca["steal"])) / tot
                steal = 200.0 * (cb["steal"] - ca["steal"]) / tot
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |" % (
            name, fmt(secs, 1), fmt_int(cmds), fmt_int(per(cmds, secs)),
            fmt_int(peak),
            fmt(per(cpu * 100, secs) if cpu is not None else None, 1),
            fmt(per(cpu * 1e6, cmds) if cpu is not None else None, 1),
            fmt(per(v.redis(b, "used_memory"), 2**20)),
            fmt(max(slow) if slow else None, 0), fmt(busy, 0), fmt(steal, 0)), file=out)
        if i < len(v.steps) and cpu:
            st = v.steps[i]
            logins = num(st["logins_per_s"]) * num(st["step_s"])
            sat.append((name, cpu * 1e6 / logins if logins else None, num(st["logins_per_s"]), per(cpu, secs)))
    print(file=out)
    for name, us, rate, frac in sat:
        if us:
            print("- %s: Redis spent %.1f µs of CPU per login (%s logins/s used %.0f %% of its "
                  "core): one Redis would saturate at about %s logins/s of this kind."
                  % (name, us, fmt_int(rate), (frac or 0) * 100, fmt_int(1e6 / us)), file=out)
    if sat:
        print(file=out)


def print_kernel_compare(vs, out):
    by = {v.name: v for v in vs}
    if "default" not in by or "tuned" not in by:
        return
    d, t = counts_table(by["default"]), counts_table(by["tuned"])
    if not d or not t:
        return
    print("Kernel memory, default against tuned buffer sizes (tcp_rmem/tcp_wmem %s / %s "
          "against %s / %s), per logged-in connection (two sockets), B:\n"
          % (by["default"].kernel.get("net.ipv4.tcp_rmem"), by["default"].kernel.get("net.ipv4.tcp_wmem"),
             by["tuned"].kernel.get("net.ipv4.tcp_rmem"), by["tuned"].kernel.get("net.ipv4.tcp_wmem")),
          file=out)
    print("| connections | slab, default | slab, tuned | TCP buffers (sockstat), default MiB | tuned MiB | MemAvailable drop per conn, default | tuned |", file=out)
    print("|---:|---:|---:|---:|---:|---:|---:|", file=out)
    for a, b in zip(d, t):
        print("| %s | %s | %s | %s | %s | %s | %s |" % (
            fmt_int(a["n"]),
            fmt_int(per(a["slab_total"] * 1024, a["n"]) if a["slab_total"] is not None else None),
            fmt_int(per(b["slab_total"] * 1024, b["n"]) if b["slab_total"] is not None else None),
            fmt(a["tcp_mem"] / 2**20 if a["tcp_mem"] is not None else None, 2),
            fmt(b["tcp_mem"] / 2**20 if b["tcp_mem"] is not None else None, 2),
            fmt_int(per(a["memavail_drop"] * 1024, a["n"]) if a["memavail_drop"] is not None else None),
            fmt_int(per(b["memavail_drop"] * 1024, b["n"]) if b["memavail_drop"] is not None else None)),
            file=out)
    # the fan-out's buffer peak, from the one-second samples
    for v in (by["default"], by["tuned"]):
        for i, p in enumerate(v.phases):
            if p["kind"] == "fanout":
                t0, t1 = int(p["t_start_ns"]), int(p["t_end_ns"])
                mem = [w["tcp"].get("mem", 0) for w in v.watch if t0 <= w["t_ns"] <= t1 + 2e9 and "tcp" in w]
                if mem:
                    print("\n- %s: TCP buffer memory peaked at %.1f MiB during the room push "
                          "(sockstat, sampled each second)" % (v.name, max(mem) * 4096 / 2**20),
                          end="", file=out)
    print("\n", file=out)


def print_notes(v, out):
    r = v.result
    notes = []
    if v.status != "?":
        notes.append(v.status)
    if r:
        notes.append("bench: elapsed %s s, timed_out %s, connected %s of %s" % (
            r.get("elapsed_s"), r.get("timed_out"), r.get("connected"), r.get("clients")))
    ct = [s.get("conntrack_count") for s in v.snaps.values() if s.get("conntrack_count") is not None]
    if ct:
        notes.append("nf_conntrack_count max over the snapshots: %d (nf_conntrack_max %s)"
                     % (max(ct), v.kernel.get("net.netfilter.nf_conntrack_max")))
    closed = v.snaps.get("closed")
    start = v.snaps.get("start")
    if closed and start:
        notes.append("after every connection closed: imgate summed RSS %.1f MiB (start %.1f), "
                     "Redis used_memory %.1f MiB, MemAvailable %.0f MiB below the start" % (
                         mib(v.group_sum(closed, "server", "VmRSS")),
                         mib(v.group_sum(start, "server", "VmRSS")),
                         (v.redis(closed, "used_memory") or 0) / 2**20,
                         (v.mem(start, "MemAvailable") - v.mem(closed, "MemAvailable")) / 1024))
    end = v.snaps.get("end") or v.snaps.get("closed")
    if start and end and start.get("tcpext") and end.get("tcpext"):
        keys = ("TCPMemoryPressures", "PruneCalled", "RcvPruned", "TCPRcvQDrop", "TCPBacklogDrop",
                "ListenOverflows", "ListenDrops", "TCPAbortOnMemory", "TCPTimeouts",
                "TCPLossProbes", "TCPSynRetrans", "TCPReqQFullDrop")
        moved = ["%s +%d" % (k, end["tcpext"].get(k, 0) - start["tcpext"].get(k, 0)) for k in keys
                 if end["tcpext"].get(k, 0) != start["tcpext"].get(k, 0)]
        notes.append("kernel TCP counters over the run (TcpExt, system-wide: other processes on the machine count too): " + (", ".join(moved) or
                                                                      "none of memory pressure, "
                                                                      "prunes, drops, listen "
                                                                      "overflows, timeouts moved"))
    mem = [w["tcp"].get("mem", 0) for w in v.watch if "tcp" in w]
    if mem:
        notes.append("TCP buffer memory peaked at %.0f MiB (sockstat, sampled each second; "
                     "tcp_mem %s pages)" % (max(mem) * 4096 / 2**20,
                                            v.kernel.get("net.ipv4.tcp_mem", "?")))
    low = [w["mem_available_kb"] for w in v.watch if w.get("mem_available_kb")]
    if low:
        notes.append("lowest MemAvailable sampled: %.1f GiB" % (min(low) / 2**20))
    for w in v.watch:
        if "note" in w:
            notes.append(w["note"])
    if notes:
        print("Notes (%s): " % v.name + "; ".join(notes) + ".\n", file=out)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    base = sys.argv[1]
    dirs = [d for d in sorted(glob.glob(os.path.join(base, "*"))) if os.path.exists(os.path.join(d, "meta.json"))]
    if os.path.exists(os.path.join(base, "meta.json")):
        dirs = [base]
    order = {"default": 0, "tuned": 1}
    vs = sorted((Variant(d) for d in dirs), key=lambda v: order.get(v.name, 9))
    out = sys.stdout
    for v in vs:
        print_counts(v, out)
        print_phases(v, out)
        print_redis(v, out)
        print_notes(v, out)
    print_kernel_compare(vs, out)


if __name__ == "__main__":
    main()
