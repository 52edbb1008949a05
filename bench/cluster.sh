#!/usr/bin/env bash
# bench/cluster.sh — a 3-node cluster on one Redis: imgate against Socket.IO 4 + redis-adapter.
#
#   bench/cluster.sh [--clients N] [--messages M] [--direct-rate R] [--direct-messages D]
#                    [--peers "imgate socketio"] [--nodes K] [--imgate-args "FLAGS"]
#                    [--quick] [--no-build]
#
# Starts one redis-server on a free loopback port (--save '' --appendonly no: nothing on disk),
# then for each peer in turn, on that Redis (FLUSHALL before each):
#   imgate    K nodes: build/imgate --redis.addr 127.0.0.1:PORT --app.httpPort H
#             --app.webSocketPort W --cluster.nodeId nodeN --app.roomNotices false (and
#             --app.bindAddress 127.0.0.1 --app.logLevel warn --app.logFile ""). An imgate that
#             does not know --cluster.nodeId yet (no cluster mode) is started without it: its
#             nodes are independent single nodes and cross-node deliveries are lost — the script
#             says so and goes on.
#   socketio  K nodes: node bench/socketio-node.js PORT REDIS_PORT sioN (HTTP and WebSocket on
#             one port; see the file for what it does)
# and drives them with build/tools/imgate-bench (--proto imgate|socketio), clients spread over
# the K nodes (user i on node i mod K), every message posted to node 0's HTTP port:
#   fanout    N clients (10 000) in room 101, M room messages (100) POSTed to
#             /user/sendMessageAll one after another: deliveries/s, p50/p99 latency, lost, dup
#   direct    N clients, D direct messages (3 000) POSTed to /user/sendMessage at R/s (1 000),
#             each to a random user on node 0 ("same node": the node that got the POST), then
#             again to users on the other nodes ("cross node"): latency p50/p99, lost
# --imgate-args adds flags to every imgate node (word-split), e.g. "--app.workers 1".
# Then a table of both peers and the ratio (build/bench/cluster-<stamp>.txt has the RESULT
# lines, build/bench/cluster-<stamp>/ the node logs and imgate's /system/state per node).
# The CPU and RSS numbers (--server-pids) are the K nodes plus Redis.
#
# Every process it starts is stopped by PID on exit (SIGTERM, then SIGKILL); sysctls it or the
# bench change (net.core.somaxconn, net.ipv4.ip_local_port_range) are put back. Run as root:
# the bench needs the wider port range and 4096 somaxconn for connect storms. --no-build uses
# build/ as it is (no cmake --build, e.g. while src/ is mid-change); --quick: 2 000 clients,
# 20 messages, 500 direct messages.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

CLIENTS=10000 MESSAGES=100 DIRECT_RATE=1000 DIRECT_MSGS=3000 NODES=3 PEERS="imgate socketio"
BUILD=1 IMGATE_ARGS=""
while [ $# -gt 0 ]; do
    case "$1" in
    --clients) CLIENTS=${2:?}; shift 2 ;;
    --messages) MESSAGES=${2:?}; shift 2 ;;
    --direct-rate) DIRECT_RATE=${2:?}; shift 2 ;;
    --direct-messages) DIRECT_MSGS=${2:?}; shift 2 ;;
    --peers) PEERS=${2:?}; shift 2 ;;
    --nodes) NODES=${2:?}; shift 2 ;;
    --imgate-args) IMGATE_ARGS=${2?}; shift 2 ;;
    --quick) CLIENTS=2000 MESSAGES=20 DIRECT_MSGS=500; shift ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/cluster.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
for v in "$CLIENTS" "$MESSAGES" "$DIRECT_RATE" "$DIRECT_MSGS" "$NODES"; do
    case "$v" in '' | *[!0-9]* | 0) echo "bench/cluster.sh: numbers must be positive" >&2; exit 2 ;; esac
done
[ "$NODES" -le 7 ] || { echo "bench/cluster.sh: at most 7 nodes (imgate-bench's --server-pids takes 8 with Redis)" >&2; exit 2; }
for p in $PEERS; do
    case "$p" in imgate | socketio) ;; *) echo "bench/cluster.sh: unknown peer $p" >&2; exit 2 ;; esac
done

STAMP=$(date +%Y%m%d-%H%M%S)
OUTDIR=$ROOT/build/bench
LOGDIR=$OUTDIR/cluster-$STAMP
RESULTS=$OUTDIR/cluster-$STAMP.txt
mkdir -p "$LOGDIR"
: >"$RESULTS"
TMP=$(mktemp -d /tmp/imgate-cluster.XXXXXX)
SIO=$ROOT/bench/socketio-node.js
source "$ROOT/bench/lib.sh"

# ---- processes and sysctls: everything started is in PIDS, stopped by PID on exit ----

PIDS=()
SYSCTL_SAVED=()
save_sysctl() { SYSCTL_SAVED+=("$1=$(sysctl -n "$1" | tr -s '\t ' ' ')"); }
save_sysctl net.core.somaxconn
save_sysctl net.ipv4.ip_local_port_range

# stop_pids PID...: SIGTERM, up to 10 s, then SIGKILL; reaps them.
stop_pids() {
    local p
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 100); do
        local alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 1 ] || break
        sleep 0.1
    done
    for p in "$@"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}

cleanup() {
    [ ${#PIDS[@]} -eq 0 ] || stop_pids "${PIDS[@]}"
    local kv cur
    for kv in "${SYSCTL_SAVED[@]}"; do
        cur=$(sysctl -n "${kv%%=*}" | tr -s '\t ' ' ')
        if [ "$cur" != "${kv#*=}" ]; then
            sysctl -qw "$kv" && echo "== ${kv%%=*} restored to ${kv#*=}" >&2
        fi
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "bench/cluster.sh: interrupted" >&2; exit 130' INT TERM

# wait_port PID PORT: until PORT listens (20 s), or fail if PID died.
wait_port() {
    for _ in $(seq 200); do
        ss -Hltn "( sport = :$2 )" | grep -q . && return 0
        kill -0 "$1" 2>/dev/null || { echo "bench/cluster.sh: pid $1 died at start (see $LOGDIR)" >&2; return 1; }
        sleep 0.1
    done
    echo "bench/cluster.sh: nothing listens on $2 after 20 s" >&2
    return 1
}

# ---- build, limits, Redis ----

if [ "$BUILD" = 1 ]; then
    build_all
fi
if [ ! -x "$IMGATE" ] || [ ! -x "$BENCH" ]; then
    echo "bench/cluster.sh: build/imgate or build/tools/imgate-bench missing" >&2
    exit 1
fi
if [ ! -f "$ROOT/node_modules/socket.io/package.json" ] ||
    [ ! -f "$ROOT/node_modules/@socket.io/redis-adapter/package.json" ]; then
    echo "== npm ci (the Socket.IO peer needs socket.io, @socket.io/redis-adapter, redis)" >&2
    npm ci --no-audit --no-fund >/dev/null
fi
command -v redis-server >/dev/null || { echo "bench/cluster.sh: redis-server missing (apt-get install redis-server)" >&2; exit 1; }
raise_limits $((CLIENTS / NODES + 100))

pick_port; REDIS_PORT=$PICKED
mkdir -p "$TMP/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/redis" \
    --daemonize no --logfile "$LOGDIR/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_port "$REDIS_PID" "$REDIS_PORT"
echo "== redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)" >&2

IMGATE_CLUSTER=1
if ! "$IMGATE" --help 2>&1 | grep -qi -- '--cluster\.nodeId'; then
    IMGATE_CLUSTER=0
fi

# ---- one peer: start its nodes, run the scenarios, stop them ----

NODE_PIDS=() WS_PORTS=() HTTP_PORTS=()

start_nodes() {
    local peer=$1 i
    NODE_PIDS=() WS_PORTS=() HTTP_PORTS=()
    for i in $(seq 0 $((NODES - 1))); do
        local dir=$TMP/$peer-node$i log=$LOGDIR/$peer-node$i.log
        mkdir -p "$dir"
        if [ "$peer" = imgate ]; then
            pick_port; HTTP_PORTS+=("$PICKED")
            pick_port; WS_PORTS+=("$PICKED")
            local args=(--app.bindAddress 127.0.0.1 --app.logLevel warn --app.logFile ""
                --app.httpPort "${HTTP_PORTS[i]}" --app.webSocketPort "${WS_PORTS[i]}"
                --app.roomNotices false --redis.addr "127.0.0.1:$REDIS_PORT")
            [ "$IMGATE_CLUSTER" = 0 ] || args+=(--cluster.nodeId "node$i")
            # shellcheck disable=SC2206 # word-split on purpose: a list of flags
            [ -z "$IMGATE_ARGS" ] || args+=($IMGATE_ARGS)
            (cd "$dir" && exec "$IMGATE" "${args[@]}") >"$log" 2>&1 &
        else
            pick_port; HTTP_PORTS+=("$PICKED"); WS_PORTS+=("$PICKED")
            (cd "$dir" && exec node "$SIO" "${WS_PORTS[i]}" "$REDIS_PORT" "sio$i") >"$log" 2>&1 &
        fi
        NODE_PIDS+=($!)
        PIDS+=($!)
    done
    for i in $(seq 0 $((NODES - 1))); do
        wait_port "${NODE_PIDS[i]}" "${WS_PORTS[i]}"
        wait_port "${NODE_PIDS[i]}" "${HTTP_PORTS[i]}"
    done
}

# stop_nodes: SIGTERM the peer's nodes; their exit statuses go to NODE_RCS.
stop_nodes() {
    local p rc
    NODE_RCS=""
    for p in "${NODE_PIDS[@]}"; do
        if ! kill -0 "$p" 2>/dev/null; then
            NODE_RCS+="died,"
            wait "$p" 2>/dev/null || true
            continue
        fi
        kill -TERM "$p"
        for _ in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        rc=0
        wait "$p" 2>/dev/null || rc=$?
        NODE_RCS+="$rc,"
    done
    NODE_RCS=${NODE_RCS%,}
    local keep=() q
    for q in "${PIDS[@]}"; do
        case " ${NODE_PIDS[*]} " in *" $q "*) ;; *) keep+=("$q") ;; esac
    done
    PIDS=("${keep[@]}")
}

join() { local IFS=,; echo "$*"; }

# scenario PEER NAME BENCH-ARGS...: one imgate-bench run against the running nodes, one tagged
# line in the results file.
scenario() {
    local peer=$1 name=$2 rc=0 out line t0
    shift 2
    t0=$(date +%s)
    printf '   %-8s %-13s ' "$peer" "$name" >&2
    out=$("$BENCH" --quiet --proto "$peer" --ws-port "$(join "${WS_PORTS[@]}")" \
        --http-port "${HTTP_PORTS[0]}" --server-pids "$(join "${NODE_PIDS[@]}" "$REDIS_PID")" \
        "$@" 2>>"$LOGDIR/bench-stderr.log") || rc=$?
    line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n 1 || true)
    [ -n "$line" ] || line="RESULT missing=1"
    local alive=1 p
    for p in "${NODE_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || alive=0; done
    printf 'peer=%s scenario=%s nodes=%s imgate_cluster=%s bench_rc=%s nodes_alive=%s %s\n' \
        "$peer" "$name" "$NODES" "$IMGATE_CLUSTER" "$rc" "$alive" "$line" >>"$RESULTS"
    printf '%4s s  bench_rc=%s\n' "$(($(date +%s) - t0))" "$rc" >&2
}

# imgate's /system/state of every node (its counters show what cluster mode did).
save_state() {
    local i
    for i in $(seq 0 $((NODES - 1))); do
        curl -s --max-time 5 "http://127.0.0.1:${HTTP_PORTS[i]}/system/state" \
            >"$LOGDIR/$1-node$i-state-$2.json" || true
    done
}

echo "== $NODES nodes per peer, $CLIENTS clients, $MESSAGES room messages, $DIRECT_MSGS direct at $DIRECT_RATE/s; results in ${RESULTS#"$ROOT"/}" >&2
if [ "$IMGATE_CLUSTER" = 0 ] && [[ " $PEERS " == *" imgate "* ]]; then
    echo "== note: this imgate has no --cluster.nodeId (no cluster mode yet): its nodes run as" >&2
    echo "   independent single nodes, so deliveries to clients of nodes 1..$((NODES - 1)) are lost" >&2
fi
OTHERS=$(seq -s, 1 $((NODES - 1)))
for peer in $PEERS; do
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    start_nodes "$peer"
    echo "== $peer: nodes $(join "${NODE_PIDS[@]}") on ws $(join "${WS_PORTS[@]}"), posts to http ${HTTP_PORTS[0]}" >&2
    scenario "$peer" fanout --mode fanout --clients "$CLIENTS" --messages "$MESSAGES" \
        --trigger http --timeout 240
    [ "$peer" != imgate ] || save_state "$peer" fanout
    scenario "$peer" direct_same --mode direct --clients "$CLIENTS" --messages "$DIRECT_MSGS" \
        --send-rate "$DIRECT_RATE" --target-nodes 0 --drain 5 --timeout 240
    if [ "$NODES" -gt 1 ]; then
        scenario "$peer" direct_cross --mode direct --clients "$CLIENTS" \
            --messages "$DIRECT_MSGS" --send-rate "$DIRECT_RATE" --target-nodes "$OTHERS" \
            --drain 5 --timeout 240
    fi
    [ "$peer" != imgate ] || save_state "$peer" end
    stop_nodes
    sed -i "/^peer=$peer /s/\$/ node_rcs=$NODE_RCS/" "$RESULTS"
done

# ---- the table ----

/usr/bin/python3 - "$RESULTS" <<'EOF' | tee "$OUTDIR/cluster-$STAMP.md"
import sys
rows = []
for line in open(sys.argv[1]):
    rows.append(dict(t.split("=", 1) for t in line.split() if "=" in t))
get = {(r["peer"], r["scenario"]): r for r in rows}
peers = [p for p in ("imgate", "socketio") if any(k[0] == p for k in get)]

def num(r, k):
    try:
        return float(r.get(k))
    except (TypeError, ValueError):
        return None

def cell(v, unit):
    if v is None:
        return "n/a"
    if unit == "us":
        v /= 1000.0
        return "%.1f" % v if v >= 10 else "%.2f" % v
    if unit == "s":
        return "%.2f" % v
    return "{:,.0f}".format(v).replace(",", " ")

metrics = [("fanout", "deliveries_per_s", "deliveries/s", "", True),
           ("fanout", "p50_us", "latency p50, ms", "us", False),
           ("fanout", "p99_us", "latency p99, ms", "us", False),
           ("fanout", "lost", "lost", "", None), ("fanout", "dup", "duplicated", "", None),
           ("fanout", "server_cpu_run_s", "CPU of nodes + Redis in the run, s", "s", False),
           ("direct_same", "p50_us", "same node: latency p50, ms", "us", False),
           ("direct_same", "p99_us", "same node: latency p99, ms", "us", False),
           ("direct_same", "lost", "same node: lost", "", None),
           ("direct_same", "send_failures", "same node: send failures", "", None),
           ("direct_cross", "p50_us", "cross node: latency p50, ms", "us", False),
           ("direct_cross", "p99_us", "cross node: latency p99, ms", "us", False),
           ("direct_cross", "lost", "cross node: lost", "", None),
           ("direct_cross", "send_failures", "cross node: send failures (sendResults false)", "", None)]
r0 = rows[0] if rows else {}
print("Cluster of %s nodes on one Redis; %s clients; fan-out %s x %s posts to node 0; direct %s at %s/s."
      % (r0.get("nodes", "?"), r0.get("clients", "?"), r0.get("clients", "?"),
         get.get((peers[0], "fanout"), {}).get("messages", "?") if peers else "?",
         get.get((peers[0], "direct_same"), {}).get("messages", "?") if peers else "?",
         get.get((peers[0], "direct_same"), {}).get("send_rate", "?") if peers else "?"))
print()
print("| scenario | metric | " + " | ".join(peers) + (" | imgate advantage |" if len(peers) == 2 else " |"))
print("|---|---|" + "---:|" * len(peers) + ("---:|" if len(peers) == 2 else ""))
for scen, key, label, unit, higher_better in metrics:
    vals = [num(get.get((p, scen), {}), key) for p in peers]
    if all(v is None for v in vals):
        continue
    line = "| %s | %s | " % (scen, label) + " | ".join(cell(v, unit) for v in vals)
    if len(peers) == 2:
        a, b = vals
        ratio = ""
        incomplete = any((num(get.get((p, scen), {}), k) or 0) > 0
                         for p in peers for k in ("lost", "send_failures"))
        if higher_better is not None and incomplete:
            ratio = "n/a (lost or failed)"
        elif higher_better is not None and a and b:
            ratio = "%.1f×" % (a / b if higher_better else b / a)
        line += " | " + ratio
    print(line + " |")
print()
for r in rows:
    bad = [k for k in ("bench_rc", "nodes_alive", "timed_out", "connect_failures", "timeouts",
                       "closed_by_server", "protocol_errors", "lost", "dup", "send_failures",
                       "missing")
           if r.get(k) not in (None, "0", "-") and not (k == "nodes_alive" and r[k] == "1")]
    if bad or r.get("node_rcs", "0").strip("0,"):
        print("- %s %s: %s; node exit statuses %s" % (r["peer"], r["scenario"],
              ", ".join("%s=%s" % (k, r[k]) for k in bad) or "-", r.get("node_rcs", "?")))
if rows and rows[0].get("imgate_cluster") == "0" and "imgate" in peers and rows[0].get("nodes") != "1":
    print("- imgate ran without cluster mode (no --cluster.nodeId): nodes 1..n are independent, "
          "so their clients' deliveries are lost")
EOF
echo >&2
echo "results: ${RESULTS#"$ROOT"/}  table: build/bench/cluster-$STAMP.md  logs: ${LOGDIR#"$ROOT"/}" >&2
