#!/usr/bin/python3
"""System calls per receiver and per delivery, from two `perf stat -e syscalls:sys_enter_*` runs.

usage: bench/syscalls.py A B

A and B are file stems: A.txt is perf stat's output for a whole fan-out run with few messages and
A.result its imgate-bench RESULT line; B the same with more messages. Connects, logins and closes
are the same in both, so B - A counts the extra messages' system calls alone.
"""
import re
import sys


def load(stem):
    calls = {}
    with open(stem + ".txt") as f:
        for line in f:
            m = re.match(r"\s*([\d,]+)\s+syscalls:sys_enter_(\w+)", line)
            if m:
                calls[m.group(2)] = int(m.group(1).replace(",", ""))
    with open(stem + ".result") as f:
        res = f.read()

    def get(k):
        m = re.search(r"\b%s=(\d+)" % k, res)
        return int(m.group(1)) if m else 0
    return calls, get("deliveries"), get("receivers"), get("messages")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, da, _, ma = load(sys.argv[1])
    b, db, recv, mb = load(sys.argv[2])
    dd = db - da
    print("system calls of %d extra messages = %d extra deliveries to %d receivers "
          "(run with %d messages minus run with %d):" % (mb - ma, dd, recv, mb, ma))
    print("%-11s %10s %13s %13s" % ("syscall", "count", "per receiver", "per delivery"))
    for k in b:
        d = b[k] - a.get(k, 0)
        print("%-11s %10d %13.2f %13.4f" % (k, d, d / recv if recv else 0, d / dd if dd else 0))


if __name__ == "__main__":
    main()
