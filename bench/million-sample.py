#!/usr/bin/env python3
"""bench/million-sample.py — what bench/million.sh records about the machine while it holds
connections: one process group per role and the kernel's own accounting.

    million-sample.py snap DIR LABEL      one full snapshot -> DIR/snap-LABEL.json
    million-sample.py watch DIR SECONDS   a light sample every SECONDS -> DIR/watch.jsonl, until
                                          DIR/stop-watch exists; stops the bench (SIGINT to
                                          its pid) if MemAvailable falls under 1.5 GiB

DIR/pids.json (written by million.sh) names the roles: {"server": [pid...], "redis": pid,
"redis_port": port, "bench": pid}. A role counts its processes and all their descendants (a
supervisor and its children; the bench and its workers), looked up in /proc at each sample.
The bench's pid may also come from IMGATE_BENCH_PID, which imgate-bench sets for --step-cmd.

A snapshot has, per process: utime+stime (clock ticks), VmRSS, RssAnon, RssFile, RssShmem
(/proc/PID/status), Pss, Pss_Anon (/proc/PID/smaps_rollup) and open descriptors; the whole /proc/net/sockstat,
/proc/meminfo and /proc/slabinfo; fs.file-nr; nf_conntrack_count when the table exists; /proc/stat's
cpu line; the TcpExt counters of /proc/net/netstat; and Redis INFO (all sections). A watch row also says how long its INFO took. Times are CLOCK_MONOTONIC (time.monotonic_ns), the bench's clock.
"""
import json
import os
import signal
import socket
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def stat_of(pid):
    """(ppid, utime+stime ticks, comm) or None."""
    s = read("/proc/%d/stat" % pid)
    if not s:
        return None
    r = s.rindex(")")
    comm = s[s.index("(") + 1:r]
    f = s[r + 2:].split()
    # f[0] is field 3 (state): ppid is field 4, utime 14, stime 15
    return int(f[1]), int(f[11]) + int(f[12]), comm


def all_procs():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat_of(int(d))
            if st:
                out[int(d)] = st
    return out


def tree(procs, roots):
    """roots and every descendant of them that /proc shows now."""
    members = set(p for p in roots if p in procs)
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _, _) in procs.items():
            if ppid in members and pid not in members:
                members.add(pid)
                grew = True
    return sorted(members)


def status_kb(pid, keys):
    s = read("/proc/%d/status" % pid) or ""
    out = {}
    for line in s.splitlines():
        k, _, v = line.partition(":")
        if k in keys:
            out[k] = int(v.split()[0])
    return out


def rollup_kb(pid):
    s = read("/proc/%d/smaps_rollup" % pid) or ""
    out = {}
    for line in s.splitlines():
        k, _, v = line.partition(":")
        if k in ("Pss", "Pss_Anon", "Pss_File", "Pss_Shmem", "Rss"):
            out[k] = int(v.split()[0])
    return out


def roles():
    d = json.load(open(os.path.join(DIR, "pids.json")))
    bench = d.get("bench") or os.environ.get("IMGATE_BENCH_PID")
    return {
        "server": [int(p) for p in d.get("server", [])],
        "redis": [int(d["redis"])] if d.get("redis") else [],
        "bench": [int(bench)] if bench else [],
    }, d.get("redis_port")


def redis_info(port, section="all", timeout=5):
    """INFO over RESP; None if Redis did not answer within timeout seconds."""
    if not port:
        return None
    try:
        s = socket.create_connection(("127.0.0.1", int(port)), timeout=timeout)
        s.sendall(("INFO %s\r\n" % section).encode())
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head, _, rest = buf.partition(b"\r\n")
        if not head.startswith(b"$"):
            return None
        n = int(head[1:])
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        s.close()
    except OSError:
        return None
    info = {}
    for line in rest[:n].decode(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.partition(":")
            try:
                info[k] = int(v)
            except ValueError:
                try:
                    info[k] = float(v)
                except ValueError:
                    info[k] = v
    return info


def sockstat():
    out = {}
    for line in (read("/proc/net/sockstat") or "").splitlines():
        name, _, rest = line.partition(":")
        f = rest.split()
        out[name] = {f[i]: int(f[i + 1]) for i in range(0, len(f) - 1, 2)}
    return out


def meminfo():
    out = {}
    for line in (read("/proc/meminfo") or "").splitlines():
        k, _, v = line.partition(":")
        out[k] = int(v.split()[0])
    return out


def slabinfo():
    out = {}
    for line in (read("/proc/slabinfo") or "").splitlines()[2:]:
        f = line.split()
        # name active_objs num_objs objsize objperslab pagesperslab : tunables ... : slabdata
        # active_slabs num_slabs sharedavail
        try:
            out[f[0]] = {"active_objs": int(f[1]), "num_objs": int(f[2]), "objsize": int(f[3]),
                         "bytes": int(f[14]) * int(f[5]) * PAGE}
        except (IndexError, ValueError):
            pass
    return out


def netstat():
    """TcpExt counters of /proc/net/netstat (memory pressure, drops, listen overflows)."""
    lines = (read("/proc/net/netstat") or "").splitlines()
    out = {}
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            out.update({k: int(v) for k, v in zip(head.split()[1:], vals.split()[1:])})
    return out


def cpu_stat():
    """/proc/stat: the machine's cpu line (ticks by kind) and procs_running/blocked."""
    out = {}
    for line in (read("/proc/stat") or "").splitlines():
        f = line.split()
        if f and f[0] == "cpu":
            names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
            out.update({n: int(v) for n, v in zip(names, f[1:])})
        elif f and f[0] in ("procs_running", "procs_blocked", "ctxt"):
            out[f[0]] = int(f[1])
    return out


def conntrack():
    v = read("/proc/sys/net/netfilter/nf_conntrack_count")
    return int(v) if v else None


def snap(label):
    t0 = time.monotonic_ns()
    procs = all_procs()
    r, port = roles()
    groups = {}
    for role, roots in r.items():
        members = []
        for pid in tree(procs, roots):
            st = procs[pid]
            m = {"pid": pid, "comm": st[2], "ticks": st[1]}
            m.update(status_kb(pid, ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads")))
            m.update({"smaps_" + k: v for k, v in rollup_kb(pid).items()})
            try:
                m["fds"] = len(os.listdir("/proc/%d/fd" % pid))
            except OSError:
                pass
            members.append(m)
        groups[role] = members
    out = {
        "label": label, "t_ns": t0, "wall": time.time(), "hz": HZ, "page": PAGE,
        "groups": groups, "sockstat": sockstat(), "meminfo": meminfo(), "slab": slabinfo(),
        "file_nr": (read("/proc/sys/fs/file-nr") or "").split(),
        "conntrack_count": conntrack(), "cpu": cpu_stat(), "tcpext": netstat(),
        "redis": redis_info(port, timeout=30),  # a busy Redis answers late: wait for it
    }
    out["t_end_ns"] = time.monotonic_ns()
    with open(os.path.join(DIR, "snap-%s.json" % label), "w") as f:
        json.dump(out, f)


def watch(every):
    path = os.path.join(DIR, "watch.jsonl")
    stop = os.path.join(DIR, "stop-watch")
    warned = False
    with open(path, "a") as f:
        while not os.path.exists(stop):
            t = time.monotonic_ns()
            procs = all_procs()
            r, port = roles()
            row = {"t_ns": t}
            for role, roots in r.items():
                members = tree(procs, roots)
                row[role + "_ticks"] = sum(procs[p][1] for p in members)
                row[role + "_rss_kb"] = sum(status_kb(p, ("VmRSS",)).get("VmRSS", 0)
                                            for p in members)
                row[role + "_procs"] = len(members)
            ss = sockstat()
            row["tcp"] = ss.get("TCP", {})
            mi = meminfo()
            row["mem_available_kb"] = mi.get("MemAvailable")
            t_info = time.monotonic_ns()
            info = redis_info(port, "all") or {}
            row["redis_info_ms"] = (time.monotonic_ns() - t_info) / 1e6
            row["cpu"] = cpu_stat()
            ext = netstat()
            row["tcpext"] = {k: ext.get(k, 0) for k in ("ListenOverflows", "TCPSynRetrans",
                                                        "TCPMemoryPressures", "PruneCalled",
                                                        "TCPTimeouts")}
            for k in ("instantaneous_ops_per_sec", "total_commands_processed", "used_cpu_sys",
                      "used_cpu_user", "used_memory", "connected_clients", "keyspace_hits"):
                if k in info:
                    row["redis_" + k] = info[k]
            row["loadavg"] = (read("/proc/loadavg") or "").split()[:3]
            f.write(json.dumps(row) + "\n")
            f.flush()
            # The machine is shared: never let the run eat the last memory.
            if mi.get("MemAvailable", 1 << 40) < 1536 * 1024 and not warned:
                warned = True
                f.write(json.dumps({"t_ns": t, "note": "MemAvailable under 1.5 GiB: stopping "
                                    "the bench"}) + "\n")
                f.flush()
                for pid in r["bench"]:
                    try:
                        os.kill(pid, signal.SIGINT)
                    except OSError:
                        pass
            time.sleep(max(0.05, every - (time.monotonic_ns() - t) / 1e9))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("snap", "watch"):
        sys.exit(__doc__)
    DIR = sys.argv[2]
    if sys.argv[1] == "snap":
        snap(sys.argv[3])
    else:
        watch(float(sys.argv[3]))
