#!/usr/bin/env bash
# bench/profile.sh — where imgate's time goes in the fan-out scenario (for bench/RESULTS.md).
#
#   bench/profile.sh [--clients N] [--messages M] [--cg-clients N] [--no-perf] [--no-callgrind]
#
# For each trigger (sequential POSTs, pipelined POSTs) against a fresh imgate (notices off):
#  1. syscalls: perf stat counts imgate's system calls (tracepoints) over whole runs with N
#     (10 000) receivers and 1 or 1 + M (100) messages; the difference is the M messages' share:
#     writev per receiver and per delivery (bench/syscalls.py).
#  2. perf: perf record (cpu-clock samples, DWARF call graphs) from the moment all N clients
#     are logged in until the bench exits, with 5 x M messages (pipelined: 5 bursts of M) so
#     the sending outweighs the closes; the report lists the top symbols by self and by
#     inclusive time, user and kernel, and the split kernel / imgate / libraries.
#  3. callgrind: imgate under valgrind --tool=callgrind, with --cg-clients (2000) receivers, once
#     with 1 message and once with 1 + M; the difference is the cost of M x receivers deliveries
#     with connects, logins and closes cancelled out (bench/cgdiff.py). Instruction counts are
#     user space only and stable on a noisy machine.
# Everything goes to build/bench/profile-<stamp>/; a summary is printed at the end.
# Needs perf (perf_event_paranoid <= 1 or root) and valgrind; loopback only.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=10000 M=100 CG_N=2000 DO_PERF=1 DO_CG=1
while [ $# -gt 0 ]; do
    case "$1" in
    --clients) N=$2; shift 2 ;;
    --messages) M=$2; shift 2 ;;
    --cg-clients) CG_N=$2; shift 2 ;;
    --no-perf) DO_PERF=0; shift ;;
    --no-callgrind) DO_CG=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/profile.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

source "$ROOT/bench/lib.sh"
build_all
raise_limits "$N"
OUT=$ROOT/build/bench/profile-$(date +%Y%m%d-%H%M%S)
LOGDIR=$OUT
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/imgate-profile.XXXXXX)
PERF_PID=
BENCH_PID=
stop_pid() { [ -z "$1" ] || { kill -INT "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }; }
trap 'stop_pid "$PERF_PID"; stop_pid "$BENCH_PID"; cleanup_server; rm -rf "$TMP"' EXIT
trap 'echo "bench/profile.sh: interrupted" >&2; exit 130' INT TERM

# logged_in: the server's logged-in connections, summed over its workers.
logged_in() {
    curl -s --max-time 2 "http://127.0.0.1:$HTTP_PORT/system/state" |
        grep -o '"loggedIn":[0-9]*' | awk -F: '{s += $2} END {print s + 0}'
}

# window TAG TRIGGER PERF-ARGS...: a fresh imgate; the bench logs in N clients, then sends
# 5 x M messages (pipelined: in 5 batches of M), so that the sending outweighs the closes at the
# end; `perf PERF-ARGS -p PID` runs from the end of the logins until the bench exits.
window() {
    local tag=$1 trig=$2
    shift 2
    start_server imgate false
    "$BENCH" --quiet --server-pid "$SRV_PID" --ws-port "$WS_PORT" --http-port "$HTTP_PORT" \
        --mode fanout --clients "$N" --messages $((5 * M)) --batch "$M" --trigger "$trig" \
        --timeout 120 >"$OUT/$tag.result" 2>>"$OUT/bench-stderr.log" &
    BENCH_PID=$!
    for _ in $(seq 3000); do
        [ "$(logged_in)" -lt "$N" ] || break
        sleep 0.01
    done
    perf "$@" -p "$SRV_PID" 2>>"$OUT/perf-stderr.log" &
    PERF_PID=$!
    wait "$BENCH_PID" || true
    BENCH_PID=
    stop_pid "$PERF_PID"
    PERF_PID=
    stop_server
}

# whole TAG TRIGGER MESSAGES PERF-ARGS...: a fresh imgate under `perf PERF-ARGS -p PID` for the
# whole bench run (N clients, MESSAGES messages). Runs with 1 and 1 + M messages differ only in
# the M messages' work.
whole() {
    local tag=$1 trig=$2 msgs=$3
    shift 3
    start_server imgate false
    perf "$@" -p "$SRV_PID" 2>>"$OUT/perf-stderr.log" &
    PERF_PID=$!
    sleep 0.5 # perf attaches
    "$BENCH" --quiet --server-pid "$SRV_PID" --ws-port "$WS_PORT" --http-port "$HTTP_PORT" \
        --mode fanout --clients "$N" --messages "$msgs" --trigger "$trig" --timeout 120 \
        >"$OUT/$tag.result" 2>>"$OUT/bench-stderr.log" || true
    stop_pid "$PERF_PID"
    PERF_PID=
    stop_server
}

SYSCALLS=writev,write,read,readv,epoll_wait,epoll_ctl,accept4,close,futex
EVENTS=syscalls:sys_enter_${SYSCALLS//,/,syscalls:sys_enter_}

if [ "$DO_PERF" = 1 ]; then
    for trig in http http-pipelined; do
        for m in 1 $((M + 1)); do
            echo "== syscalls, fan-out $N x $m, $trig" >&2
            whole "syscalls-$trig-$m" "$trig" "$m" stat -e "$EVENTS" \
                -o "$OUT/syscalls-$trig-$m.txt"
        done
        /usr/bin/python3 "$ROOT/bench/syscalls.py" "$OUT/syscalls-$trig-1" \
            "$OUT/syscalls-$trig-$((M + 1))" >"$OUT/syscalls-$trig.txt"
        echo "== perf record, fan-out $N x 5 x $M, $trig (from the end of the logins)" >&2
        window "perf-$trig" "$trig" record -F 1999 --call-graph dwarf,16384 \
            -o "$OUT/perf-$trig.data"
        perf report -i "$OUT/perf-$trig.data" --stdio --no-children --sort dso,symbol \
            -g none --percent-limit 0.7 >"$OUT/perf-$trig-self.txt" 2>/dev/null
        perf report -i "$OUT/perf-$trig.data" --stdio --children --sort symbol \
            -g none --percent-limit 4 >"$OUT/perf-$trig-inclusive.txt" 2>/dev/null
        perf report -i "$OUT/perf-$trig.data" --stdio --no-children --sort dso \
            -g none >"$OUT/perf-$trig-dso.txt" 2>/dev/null
    done
fi

if [ "$DO_CG" = 1 ]; then
    IMGATE_EXTRA=(--app.handshakeTimeout 300)
    for trig in http http-pipelined; do
        for m in 1 $((M + 1)); do
            echo "== callgrind, fan-out $CG_N x $m, $trig" >&2
            start_server imgate false valgrind --tool=callgrind \
                --callgrind-out-file="$OUT/callgrind-$trig-$m.out"
            "$BENCH" --quiet --ws-port "$WS_PORT" --http-port "$HTTP_PORT" --mode fanout \
                --clients "$CG_N" --messages "$m" --trigger "$trig" --inflight 100 \
                --conn-timeout 300 --drain 60 --timeout 900 \
                >"$OUT/callgrind-$trig-$m.result" 2>>"$OUT/bench-stderr.log" || true
            stop_server 120
        done
        /usr/bin/python3 "$ROOT/bench/cgdiff.py" \
            "$OUT/callgrind-$trig-1.out" "$OUT/callgrind-$trig-1.result" \
            "$OUT/callgrind-$trig-$((M + 1)).out" "$OUT/callgrind-$trig-$((M + 1)).result" \
            >"$OUT/callgrind-$trig.txt"
    done
fi

echo "== summary ($OUT)"
for trig in http http-pipelined; do
    if [ -f "$OUT/syscalls-$trig.txt" ]; then
        echo "-- $trig: $(grep -o 'deliveries_per_s=[^ ]*' "$OUT/perf-$trig.result") under perf record"
        cat "$OUT/syscalls-$trig.txt"
        grep '%' "$OUT/perf-$trig-dso.txt" | head -n 4
        grep '%' "$OUT/perf-$trig-self.txt" | head -n 15
    fi
    [ ! -f "$OUT/callgrind-$trig.txt" ] || head -n 60 "$OUT/callgrind-$trig.txt"
done
