#!/usr/bin/env bash
# bench/storm-redis.sh — the login storm on one node, with and without cluster presence in Redis.
#
#   bench/storm-redis.sh [--runs N] [--clients N] [--no-build]
#
# One redis-server on a free loopback port (--save '' --appendonly no). For each run, two fresh
# imgate nodes in turn, each driven by imgate-bench --mode storm: --clients (19 000) logins as
# fast as possible while 4 probe connections ping every 10 ms, then 10 s of close+reconnect
# churn as fast as possible:
#   alone   no redis.addr: presence in memory (the single-node numbers of bench/run.sh)
#   redis   --redis.addr: every login and logout also goes to Redis (batched presence script
#           calls), and a login is answered once the user is reachable from other nodes
# Prints logins/s, login p50/p99, ping p99 during the storm and during the churn, churn ops/s and
# the CPU of the node (and of Redis) per phase; the RESULT lines go to
# build/bench/storm-redis-<stamp>.txt. Every process is stopped by PID on exit; the sysctls the
# bench changes are put back.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

RUNS=1 CLIENTS=19000 BUILD=1 DURATION=10
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) RUNS=${2:?}; shift 2 ;;
    --clients) CLIENTS=${2:?}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/storm-redis.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

STAMP=$(date +%Y%m%d-%H%M%S)
OUTDIR=$ROOT/build/bench
LOGDIR=$OUTDIR/storm-redis-$STAMP
RESULTS=$OUTDIR/storm-redis-$STAMP.txt
TMP=$(mktemp -d /tmp/imgate-storm.XXXXXX)
mkdir -p "$LOGDIR"
: >"$RESULTS"
source "$ROOT/bench/lib.sh"

REDIS_PID=
SYSCTLS=(net.core.somaxconn net.ipv4.ip_local_port_range)
SAVED=()
for k in "${SYSCTLS[@]}"; do SAVED+=("$k=$(sysctl -n "$k" | tr -s '\t ' ' ')"); done
cleanup() {
    cleanup_server
    if [ -n "$REDIS_PID" ]; then
        kill -TERM "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    local kv
    for kv in "${SAVED[@]}"; do
        [ "$(sysctl -n "${kv%%=*}" | tr -s '\t ' ' ')" = "${kv#*=}" ] || sysctl -qw "$kv"
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$BUILD" = 0 ] || build_all
raise_limits "$CLIENTS"
pick_port; REDIS_PORT=$PICKED
mkdir -p "$TMP/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/redis" \
    --daemonize no --logfile "$LOGDIR/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

for run in $(seq "$RUNS"); do
    for kind in alone redis; do
        IMGATE_EXTRA=()
        [ "$kind" = alone ] || IMGATE_EXTRA=(--redis.addr "127.0.0.1:$REDIS_PORT" --cluster.nodeId "storm$run")
        redis-cli -p "$REDIS_PORT" flushall >/dev/null
        start_server imgate false
        sleep 0.5 # the cluster links come up
        printf '== run %s %-6s ' "$run" "$kind" >&2
        pids=$SRV_PID
        [ "$kind" = alone ] || pids="$SRV_PID,$REDIS_PID"
        out=$("$BENCH" --quiet --mode storm --clients "$CLIENTS" --rate 0 --duration "$DURATION" \
            --ws-port "$WS_PORT" --http-port "$HTTP_PORT" --server-pids "$pids" --timeout 120 \
            2>>"$LOGDIR/bench-stderr.log") || true
        line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n 1 || true)
        stop_server
        echo "run=$run kind=$kind server_rc=$SRV_RC ${line:-RESULT missing=1}" >>"$RESULTS"
        echo "done (exit $SRV_RC)" >&2
    done
done

/usr/bin/python3 - "$RESULTS" <<'EOF'
import statistics, sys
rows = [dict(t.split("=", 1) for t in l.split() if "=" in t) for l in open(sys.argv[1])]
keys = [("connect_per_s", "logins/s (connect + upgrade + login)", 1, "%.0f"),
        ("login_p50_us", "login p50, ms", 1000, "%.1f"), ("login_p99_us", "login p99, ms", 1000, "%.1f"),
        ("ping_connect_p99_us", "ping p99 during the storm, ms", 1000, "%.1f"),
        ("ping_run_p99_us", "ping p99 during the churn, ms", 1000, "%.1f"),
        ("churn_per_s", "churn ops/s (close + connect + login)", 1, "%.0f"),
        ("server_cpu_connect_s", "CPU in the storm (node + Redis), s", 1, "%.2f"),
        ("connect_failures", "connect failures", 1, "%.0f"), ("login_failures", "login failures", 1, "%.0f")]
print("| metric | alone (no Redis) | with Redis presence |")
print("|---|---:|---:|")
for k, label, div, fmt in keys:
    cells = []
    for kind in ("alone", "redis"):
        vals = [float(r[k]) / div for r in rows if r.get("kind") == kind and r.get(k) not in (None, "-")]
        cells.append((fmt % statistics.median(vals)) + (" (%s–%s)" % (fmt % min(vals), fmt % max(vals)) if len(vals) > 1 else "") if vals else "n/a")
    print("| %s | %s | %s |" % (label, cells[0], cells[1]))
EOF
echo "results: ${RESULTS#"$ROOT"/}" >&2
