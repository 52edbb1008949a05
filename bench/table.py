#!/usr/bin/python3
"""Medians of bench/run.sh's RESULT lines as a markdown table: imgate against the Node ws baseline.

usage: bench/table.py RESULTS-FILE...

Each input line is `run=N scenario=S server=imgate|baseline notices=true|false|- ... RESULT k=v ...`
(see bench/run.sh and `imgate-bench --help` for the keys). Per (scenario, server, notices) every
metric is the median over the runs; the table also shows the range (min-max) so the noise is
visible, and "imgate advantage" = how many times better imgate's median is (baseline/imgate for
costs and latencies, imgate/baseline for rates). After the table, every non-zero failure counter
and any bench or server exit status other than 0 is listed per run. Standard library only.
"""
import statistics
import sys

FAILURE_KEYS = ["timed_out", "connect_failures", "addr_failures", "timeouts", "handshake_failures",
                "login_failures", "closed_by_server", "protocol_errors", "heartbeat_failures",
                "lost", "dup", "misrouted", "send_failures", "missing",
                "srv_connectionsRejected", "srv_handshakesFailed", "srv_handshakeTimeouts",
                "srv_protocolErrors", "srv_slowConsumers", "srv_heartbeatTimeouts",
                "srv_closeTimeouts"]


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            d = {}
            for tok in line.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    d[k] = v
            if "scenario" in d:
                rows.append(d)
    return rows


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


# Derived metrics: name -> function(row) -> float or None.
def cpu_per_m(r):
    cpu, dl = num(r.get("server_cpu_run_s")), num(r.get("deliveries"))
    return cpu / dl * 1e6 if cpu is not None and dl else None


def cold_rss(r):
    end, start, n = num(r.get("server_rss_kb")), num(r.get("cold_rss_kb")), num(r.get("connected"))
    return (end - start) * 1024 / n if None not in (end, start, n) and n else None


def cold_end_rss(r):
    end, start, n = (num(r.get("server_rss_end_kb")), num(r.get("cold_rss_kb")),
                     num(r.get("connected")))
    return (end - start) * 1024 / n if None not in (end, start, n) and n else None


def failures(r):
    return sum(num(r.get(k)) or 0 for k in FAILURE_KEYS if not k.startswith("srv_"))


DERIVED = {"cpu_per_m": cpu_per_m, "cold_rss": cold_rss, "cold_end_rss": cold_end_rss,
           "failures": failures}


def value(r, metric):
    return DERIVED[metric](r) if metric in DERIVED else num(r.get(metric))


# Units: how a metric is shown. "us->ms" divides by 1000.
def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "ms":
        v /= 1000.0
        return "%.1f" % v if v >= 10 else "%.2f" % v
    if unit == "s":
        return "%.2f" % v
    if unit == "int":
        return "{:,.0f}".format(v).replace(",", " ")
    return "%.0f" % v


# (scenario, metric, label, unit, better): better is "high", "low" or None (no ratio).
METRICS = {
    # cold_rss: from the VmRSS of the just-started process (what an outsider measures; nothing
    # warmed up), after the connect phase and at the end of the hold. rss_per_conn_b: from a
    # sample taken after two connections have logged in and left (the first connection's fixed
    # costs left out), i.e. the cost per connection alone.
    "rss": [("cold_rss", "RSS per idle logged-in connection from a fresh start, B", "int", "low"),
            ("cold_end_rss", "  same, at the end of the hold, B", "int", "low"),
            ("rss_per_conn_b", "  after a warm-up of 2 connections (fixed costs left out), B",
             "int", "low"),
            ("cold_rss_kb", "  server RSS just started, KiB", "int", "low"),
            ("server_rss_kb", "  server RSS after the connect phase, KiB", "int", "low"),
            ("server_rss_end_kb", "  server RSS at the end of the hold, KiB", "int", "low")],
    "connect": [("connect_per_s", "connects+handshakes+logins /s", "int", "high"),
                ("login_p99_us", "  set-up p99, ms", "ms", "low"),
                ("server_cpu_connect_s", "  server CPU, s", "s", "low"),
                ("bench_cpu_s", "  bench client CPU, s", "s", None)],
    "connect_i100": [("connect_per_s", "connects+logins /s, 100 in flight per process", "int",
                      "high"),
                     ("login_p99_us", "  set-up p99, ms", "ms", "low")],
    "fanout": [("deliveries_per_s", "deliveries /s", "int", "high"),
               ("p50_us", "  latency post->receipt p50, ms", "ms", "low"),
               ("p99_us", "  latency p99, ms", "ms", "low"),
               ("lost", "  lost (worst run)", "int", None),
               ("dup", "  duplicated (worst run)", "int", None),
               ("cpu_per_m", "  server CPU s per million deliveries", "s", "low"),
               ("bench_cpu_s", "  bench client CPU, s", "s", None)],
    "storm": [("connect_per_s", "logins /s (storm of N)", "int", "high"),
              ("ping_connect_p99_us", "  ping p99 during the login storm, ms", "ms", "low"),
              ("churn_per_s", "  churn close+connect+login /s", "int", "high"),
              ("ping_run_p99_us", "  ping p99 during churn, ms", "ms", "low"),
              ("ping_max_us", "  ping max (whole run), ms", "ms", "low"),
              ("failures", "  failed set-ups/closes (worst run)", "int", None),
              ("server_cpu_s", "  server CPU, s", "s", None),
              ("bench_cpu_s", "  bench client CPU, s", "s", None)],
    "storm_r": [("churn_per_s", "churn /s (target rate)", "int", None),
                ("ping_run_p99_us", "  ping p99 during churn, ms", "ms", "low"),
                ("ping_max_us", "  ping max (whole run), ms", "ms", "low"),
                ("failures", "  failed set-ups/closes (worst run)", "int", None)],
}
WORST = {"lost", "dup", "failures"}  # shown as the maximum over runs, not the median


def family(scenario):
    if scenario.startswith("fanout"):
        return "fanout"
    if scenario.startswith("storm_r"):
        return "storm_r"
    return scenario


def title(scenario, r):
    c, m = r.get("clients", "?"), r.get("messages", "?")
    return {
        "rss": "%s idle logged-in, held %s s" % (c, r.get("hold_s", "3")),
        "connect": "%s connects+logins, rate 0" % c,
        "connect_i100": "%s connects+logins, --inflight 100" % c,
        "fanout_http": "fan-out %s x %s, sequential POSTs" % (c, m),
        "fanout_pipe": "fan-out %s x %s, POSTs pipelined" % (c, m),
        "storm": "storm %s logins + churn max" % c,
    }.get(scenario, "storm %s logins + churn %s/s" % (c, scenario[len("storm_r"):])
          if scenario.startswith("storm_r") else scenario)


def summarize(rows, metric):
    vals = [v for v in (value(r, metric) for r in rows) if v is not None]
    if not vals:
        return None, None, None
    agg = max(vals) if metric in WORST else statistics.median(vals)
    return agg, min(vals), max(vals)


def cell(rows, metric, unit):
    if not rows:
        return "n/a", ""
    agg, lo, hi = summarize(rows, metric)
    if agg is None:
        return "n/a", ""
    rng = "" if lo == hi or metric in WORST else "%s–%s" % (fmt(lo, unit), fmt(hi, unit))
    return fmt(agg, unit), rng


def main(paths):
    rows = [r for p in paths for r in parse(p)]
    if not rows:
        sys.exit("table.py: no result lines in " + " ".join(paths))
    groups = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["server"], r["notices"]), []).append(r)
    order = []
    for r in rows:
        if r["scenario"] not in order:
            order.append(r["scenario"])
    runs = len({r["run"] for r in rows})

    out = ["| scenario | metric | imgate | baseline (Node ws) | imgate advantage "
           "| imgate range | baseline range |",
           "|---|---|---:|---:|---:|---|---|"]
    for sc in order:
        base = groups.get((sc, "baseline", "-"), [])
        for notices in ("false", "true"):
            img = groups.get((sc, "imgate", notices))
            if not img:
                continue
            name = "%s, notices %s" % (title(sc, img[0]), "on" if notices == "true" else "off")
            # The baseline has no room notices: its cells go only with imgate's notices-off rows.
            b = base if notices == "false" else []
            for metric, label, unit, better in METRICS[family(sc)]:
                iv, irng = cell(img, metric, unit)
                bv, brng = cell(b, metric, unit)
                ratio = ""
                if better and b:
                    i_agg, b_agg = summarize(img, metric)[0], summarize(b, metric)[0]
                    if i_agg and b_agg:
                        ratio = "%.1f×" % (i_agg / b_agg if better == "high" else b_agg / i_agg)
                out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                    name, label.strip(), iv, bv, ratio or ("n/a" if bv == "n/a" else ""),
                    irng, brng))
                name = ""
    print("Medians of %d run(s) per cell (lost, dup and failures: the worst run). "
          "Advantage > 1× means imgate is better." % runs)
    print()
    print("\n".join(out))

    problems = []
    for r in rows:
        bad = ["%s=%s" % (k, r[k]) for k in FAILURE_KEYS if num(r.get(k))]
        for k in ("bench_rc", "server_rc"):
            if r.get(k, "0") != "0":
                bad.append("%s=%s" % (k, r[k]))
        if r.get("server_alive") == "0":
            bad.append("server died during the run")
        if bad:
            problems.append("- run %s %s %s notices=%s: %s" % (
                r["run"], r["scenario"], r["server"], r["notices"], ", ".join(bad)))
    print()
    print("Failures and non-zero exits:" if problems else "Failures and non-zero exits: none.")
    if problems:
        print("\n".join(problems))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
