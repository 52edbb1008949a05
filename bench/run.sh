#!/usr/bin/env bash
# bench/run.sh — imgate's standard benchmark, against the Node `ws` baseline in the same run.
#
#   bench/run.sh [--runs N] [--quick]
#
# Builds imgate and tools/imgate-bench (cmake --build build), installs the npm `ws` package for
# the baseline (npm ci) when it is missing, then for each of N runs (3) and each scenario starts a
# fresh server on free loopback ports, drives it with imgate-bench --quiet --server-pid, stops it
# (SIGTERM, wait) and appends the tagged RESULT line to build/bench/results-<stamp>.txt. At the
# end bench/table.py prints a markdown table of the medians (also saved next to the results).
#
# Scenarios (full sizes; --quick: one run, smaller sizes, for a smoke test):
#   rss          19 000 idle logged-in connections held 3 s; RSS per connection from the fresh
#                process's VmRSS (what an outsider measures) right after the connect phase and at
#                the end of the hold (imgate calls malloc_trim every 2 s, so a 3-s hold always
#                contains a trim >= 1 s after the connect phase); also from after a 2-connection
#                warm-up (imgate-bench's rss_per_conn_b: the cost per connection alone)
#   connect      10 000 connects + handshakes + logins as fast as possible (rate 0)
#   connect_i100 the same with 100 set-ups in flight per client process instead of 1000
#   fanout_http  10 000 receivers x 100 POST /user/sendMessageAll, one after another
#   fanout_pipe  the same 100 POSTs pipelined on one connection
#   storm        19 000 logins as fast as possible, then 10 s of close+reconnect churn as fast
#                as possible, 4 probe connections pinging every 10 ms throughout
#   storm_r2000  the same with the churn held at 2000 ops/s (a load both servers can carry,
#                so their ping latencies compare)
# imgate runs with app.roomNotices false (like the baseline, which has no notices) and, for
# rss, connect and storm, also true. Everything is loopback-only and bounded (--timeout).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

RUNS=3
QUICK=0
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
    --runs=*) RUNS=${1#--runs=}; shift ;;
    --quick) QUICK=1; RUNS=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
case "$RUNS" in '' | *[!0-9]* | 0) echo "bench/run.sh: --runs wants a positive number" >&2; exit 2 ;; esac

if [ "$QUICK" = 1 ]; then
    N_RSS=3000 RSS_HOLD=3 N_CONN=2000 N_FAN=2000 N_MSG=50 N_STORM=3000 STORM_S=3 CHURN_RATE=1000
else
    N_RSS=19000 RSS_HOLD=3 N_CONN=10000 N_FAN=10000 N_MSG=100 N_STORM=19000 STORM_S=10 CHURN_RATE=2000
fi

# ---- build and set-up ----

source "$ROOT/bench/lib.sh"
build_all
raise_limits "$N_RSS"

STAMP=$(date +%Y%m%d-%H%M%S)
OUTDIR=$ROOT/build/bench
LOGDIR=$OUTDIR/$STAMP
mkdir -p "$LOGDIR"
RESULTS=$OUTDIR/results-$STAMP.txt
: >"$RESULTS"
TMP=$(mktemp -d /tmp/imgate-bench.XXXXXX)
trap 'cleanup_server; rm -rf "$TMP"' EXIT
trap 'echo "bench/run.sh: interrupted" >&2; exit 130' INT TERM

# imgate's /system/state counters that mean trouble, as k=v fields (empty for the baseline).
server_counters() {
    [ "$1" = imgate ] || return 0
    curl -s --max-time 5 "http://127.0.0.1:$HTTP_PORT/system/state" >"$LOGDIR/state-$SRV_SEQ.json" ||
        return 0
    /usr/bin/python3 - "$LOGDIR/state-$SRV_SEQ.json" <<'EOF' || true
import json, sys
c = json.load(open(sys.argv[1]))["data"]["counters"]
keys = ["connectionsRejected", "handshakesFailed", "handshakeTimeouts", "protocolErrors",
        "slowConsumers", "heartbeatTimeouts", "closeTimeouts", "messagesOut"]
print(" ".join("srv_%s=%s" % (k, c.get(k, "-")) for k in keys))
EOF
}

# bench ARGS...: run imgate-bench against the current server; sets BENCH_LINE (the RESULT line,
# or empty) and BENCH_RC.
bench() {
    local out
    BENCH_RC=0
    out=$("$BENCH" --quiet --server-pid "$SRV_PID" --ws-port "$WS_PORT" --http-port "$HTTP_PORT" \
        "$@" 2>>"$LOGDIR/bench-stderr.log") || BENCH_RC=$?
    BENCH_LINE=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n 1 || true)
}

# scenario RUN NAME SERVER NOTICES BENCH-ARGS...: one fresh server, one measured bench run, one
# tagged line in the results file.
scenario() {
    local run=$1 name=$2 server=$3 notices=$4 extra="" alive t0
    shift 4
    t0=$(date +%s%N)
    printf '   run %s  %-13s %-8s notices=%-5s ' "$run" "$name" "$server" "$notices" >&2
    start_server "$server" "$notices"
    if [ "$name" = rss ]; then
        # RSS of the just-started server (the fresh-start figure counts from it, as anyone who
        # measures does), then two connections that log in and leave: the first connection of
        # each worker touches its per-worker buffers, so the warm-up figure, counted from
        # after them, is the cost per connection alone. Both are reported.
        extra="hold_s=$RSS_HOLD cold_rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$SRV_PID/status")"
        bench --mode conns --clients 2 --hold 0 --timeout 30
    fi
    bench "$@"
    local counters
    counters=$(server_counters "$server")
    kill -0 "$SRV_PID" 2>/dev/null && alive=1 || alive=0
    stop_server 20
    [ -n "$BENCH_LINE" ] || BENCH_LINE="RESULT missing=1"
    printf 'run=%s scenario=%s server=%s notices=%s bench_rc=%s server_alive=%s server_rc=%s %s %s %s\n' \
        "$run" "$name" "$server" "$notices" "$BENCH_RC" "$alive" "$SRV_RC" "$extra" \
        "$counters" "$BENCH_LINE" | tr -s ' ' >>"$RESULTS"
    printf '%6.1f s  bench_rc=%s server_rc=%s\n' "$((($(date +%s%N) - t0) / 1000000))e-3" \
        "$BENCH_RC" "$SRV_RC" >&2
}

# ---- the runs ----

echo "== $RUNS run(s); results in ${RESULTS#"$ROOT"/}, logs in ${LOGDIR#"$ROOT"/}" >&2
T_START=$(date +%s)
for run in $(seq "$RUNS"); do
    echo "== run $run/$RUNS" >&2
    # imgate and the baseline alternate inside each run so slow spells of the machine hit both.
    for srv in "imgate false" "imgate true" "baseline -"; do
        read -r kind notices <<<"$srv"
        scenario "$run" rss "$kind" "$notices" --mode conns --clients "$N_RSS" --hold "$RSS_HOLD" \
            --timeout 120
    done
    for srv in "imgate false" "imgate true" "baseline -"; do
        read -r kind notices <<<"$srv"
        scenario "$run" connect "$kind" "$notices" --mode conns --clients "$N_CONN" --rate 0 --hold 0 \
            --timeout 120
    done
    for srv in "imgate false" "baseline -"; do
        read -r kind notices <<<"$srv"
        scenario "$run" connect_i100 "$kind" "$notices" --mode conns --clients "$N_CONN" --rate 0 \
            --inflight 100 --hold 0 --timeout 120
    done
    for trig in http http-pipelined; do
        name=fanout_http
        [ "$trig" = http ] || name=fanout_pipe
        for srv in "imgate false" "baseline -"; do
            read -r kind notices <<<"$srv"
            scenario "$run" "$name" "$kind" "$notices" --mode fanout --clients "$N_FAN" \
                --messages "$N_MSG" --trigger "$trig" --timeout 180
        done
    done
    for srv in "imgate false" "imgate true" "baseline -"; do
        read -r kind notices <<<"$srv"
        scenario "$run" storm "$kind" "$notices" --mode storm --clients "$N_STORM" --rate 0 \
            --duration "$STORM_S" --timeout 120
    done
    for srv in "imgate false" "imgate true" "baseline -"; do
        read -r kind notices <<<"$srv"
        scenario "$run" "storm_r$CHURN_RATE" "$kind" "$notices" --mode storm --clients "$N_STORM" \
            --rate "$CHURN_RATE" --duration "$STORM_S" --timeout 120
    done
done
echo "== done in $(($(date +%s) - T_START)) s" >&2

TABLE=$OUTDIR/table-$STAMP.md
/usr/bin/python3 "$ROOT/bench/table.py" "$RESULTS" | tee "$TABLE"
echo >&2
echo "results: ${RESULTS#"$ROOT"/}  table: ${TABLE#"$ROOT"/}" >&2
