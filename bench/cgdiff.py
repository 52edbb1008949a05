#!/usr/bin/python3
"""Instructions per delivery from two callgrind runs of imgate that differ only in messages sent.

usage: bench/cgdiff.py A.out A.result B.out B.result [TOP]

A and B are callgrind output files of the same fan-out scenario with few (A) and more (B)
messages, each with the RESULT line of its imgate-bench run. Connects, logins, closes and start-up
cost the same in both, so B - A is the cost of the extra deliveries alone. Prints the total, the
instructions (Ir) per delivery, and the TOP (20) functions by self and by inclusive Ir of the
difference. Runs callgrind_annotate; standard library only otherwise.
"""
import os
import re
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.+?)\s*$")


def annotate(path, inclusive):
    # From /: run inside the source tree, callgrind_annotate lists some functions twice (once
    # under the absolute and once under the relative file name).
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100",
                          "--inclusive=" + ("yes" if inclusive else "no"), os.path.abspath(path)],
                         check=True, capture_output=True, text=True, cwd="/").stdout
    total, funcs = 0, {}
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        ir, name = int(m.group(1).replace(",", "")), m.group(2)
        if name == "PROGRAM TOTALS":
            total = ir
        elif inclusive:  # one function under two names: the same inclusive cost, not twice
            funcs[short(name)] = max(funcs.get(short(name), 0), ir)
        else:  # e.g. malloc.c:free and arena.c:free: separate parts of one name
            funcs[short(name)] = funcs.get(short(name), 0) + ir
    return total, funcs


def short(name):
    """`/src/net/conn.c:conn_flush [/work/main/build/imgate]` -> `conn_flush`."""
    m = re.match(r"^(.*?):(.+?)(?: \[(.+)\])?$", name)
    if not m:
        return name
    # callgrind_annotate names a function with or without its object; keep the object only
    # for anonymous addresses, so both spellings add up.
    func, dso = m.group(2), (m.group(3) or "").rsplit("/", 1)[-1]
    return "%s (%s)" % (func, dso) if func.startswith("0x") and dso else func


def deliveries(result_path):
    with open(result_path) as f:
        m = re.search(r"\bdeliveries=(\d+)", f.read())
    return int(m.group(1)) if m else 0


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    a_out, a_res, b_out, b_res = sys.argv[1:5]
    top = int(sys.argv[5]) if len(sys.argv) > 5 else 20
    da, db = deliveries(a_res), deliveries(b_res)
    dd = db - da
    ta, self_a = annotate(a_out, False)
    tb, self_b = annotate(b_out, False)
    _, inc_a = annotate(a_out, True)
    _, inc_b = annotate(b_out, True)
    dt = tb - ta
    print("callgrind: A %s (%d deliveries, %d Ir), B %s (%d deliveries, %d Ir)"
          % (a_out.rsplit("/", 1)[-1], da, ta, b_out.rsplit("/", 1)[-1], db, tb))
    if dd <= 0:
        print("no extra deliveries in B: nothing to divide")
        return
    print("B - A: %d deliveries, %d Ir = %.0f Ir per delivery (user space only)" % (dd, dt, dt / dd))
    for title, a, b in (("self", self_a, self_b), ("inclusive", inc_a, inc_b)):
        diff = {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}
        print()
        print("top %d by %s Ir of B - A:" % (top, title))
        print("%14s %7s %9s  %s" % ("Ir", "% B-A", "/deliv.", "function"))
        for k, v in sorted(diff.items(), key=lambda kv: -kv[1])[:top]:
            print("%14d %6.1f%% %9.1f  %s" % (v, 100.0 * v / dt, v / dd, k))


if __name__ == "__main__":
    main()
