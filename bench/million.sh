#!/usr/bin/env bash
# bench/million.sh — one million live, logged-in WebSockets on this machine (issue 9): a cluster
# of imgate processes on one machine sharing one Redis, driven by imgate-bench.
#
#   bench/million.sh [--counts N,N...] [--processes M] [--workers W] [--max-conns C]
#                    [--rate R] [--step-rates R,R...] [--conn-timeout S]
#                    [--kernel default|tuned|both]
#                    [--idle S] [--direct-messages D] [--direct-rate R] [--notices]
#                    [--imgate-args "FLAGS"] [--redis-nice N]
#                    [--timeout S] [--imgate PATH] [--bench PATH] [--manual] [--no-build]
#                    [--quick]
#
# For each kernel variant (--kernel, both: default then tuned) it sets the kernel up, starts one
# redis-server (--save '' --appendonly no) and M imgate processes on the same WebSocket and HTTP
# ports (SO_REUSEPORT), each with --app.workers W (1), --app.maxConnections C (19 000: a process
# may hold 20 000 descriptors), --app.roomNotices false (--notices: true), --redis.addr and a
# node id of its own: `imgate --processes M` when this imgate has it (the supervisor: node ids
# m-0..m-<M-1>), else (or with --manual) M processes started here (m0..m<M-1>). M defaults to
# the largest count / 18 200 rounded up (55 for 1 M): SO_REUSEPORT spreads connections by a
# hash, not evenly (at 1 M over 55, sigma ~135), so each process is left ~800 connections of
# headroom below C. --imgate-args adds flags to every imgate process (word-split), e.g.
# "--cluster.requestTimeout 30000 --cluster.nodeTimeout 120": on these 2 shared cores a
# million-connection ramp starves Redis and the cluster threads for seconds, and with the
# defaults (3 s, 15 s) links and registrations expire under the load itself. --redis-nice N
# starts redis-server at that nice value (e.g. -10): one single-threaded Redis among ~110
# runnable threads gets ~2 % of the CPU otherwise, and answers in seconds.
#
# Then one imgate-bench run (--mode conns) connects and logs in the users at --rate (3 000/s:
# what these 2 cores sustain at the end of the ramp, when heartbeats of a million connections
# already take about half of them; --step-rates sets one per count, e.g. 3000,3000,2500,1500)
# over ceil(N / 19 000) client processes and as many source addresses (127.0.0.2...), a
# connect+upgrade+login within --conn-timeout (30 s), stopping
# at each of --counts (10 000, 100 000, 500 000, 1 000 000) to take a snapshot, and once all are
# in, on the same held connections (all users in appID 101, one room):
#   idle:S        S s (60) doing nothing but heartbeats every 30 s: CPU of imgate and Redis
#   fanout:1      one sendMessageAll to the room: deliveries/s, time until the last receiver
#                 has it, lost, duplicated
#   direct:D@R    D direct messages (10 000) to random users at R/s (1 000): p50/p99, lost
# Snapshots (bench/million-sample.py snap, at every step and phase): per process utime+stime,
# VmRSS, RssAnon, Pss; /proc/net/sockstat, /proc/slabinfo, /proc/meminfo, fs.file-nr,
# nf_conntrack_count, /proc/stat, TcpExt counters, Redis INFO. A light sample every second goes
# to watch.jsonl (and stops the bench if MemAvailable falls under 1.5 GiB). After the bench has
# closed its connections, one more snapshot once the servers are done closing theirs (and
# Redis's room is empty, at most 2 minutes). The run is one of at most one at a time on the
# machine: two of them, or a test suite beside one, starve each other.
#
# Kernel settings, each recorded before and put back on exit (also on ^C or failure):
#   fs.file-max >= 2 N + 262 144; fs.nr_open >= 65 536; net.ipv4.ip_local_port_range 1024 65000;
#   net.core.somaxconn >= 4096; net.ipv4.tcp_max_syn_backlog >= 4096;
#   net.netfilter.nf_conntrack_max >= N + 262 144 when the conntrack table exists (whether it
#   tracks anything shows in nf_conntrack_count; there is no iptables here for NOTRACK);
#   tuned only: net.ipv4.tcp_rmem and tcp_wmem "4096 4096 <max>" (this kernel's minimums are
#   already 4096: the tuned run lowers the default sizes new sockets start with).
# Every process it starts is stopped by PID (SIGTERM, then SIGKILL); nothing is looked up by name.
#
# Output: raw results under build/bench/million-<stamp>/<variant>/ (bench.out with the STEP,
# PHASE and RESULT lines, snap-*.json, watch.jsonl, logs), and the Markdown tables
# (bench/million-report.py) on stdout and in build/bench/million-<stamp>/table.md.
# --quick: counts 10 000,50 000, idle 10 s, 2 000 direct messages (a smoke test, ~2 min).
# --no-build uses build/ as it is; --imgate / --bench take other binaries (e.g. built from a
# clean `git archive` while build/ has someone's work in progress).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

COUNTS=10000,100000,500000,1000000 PROCESSES=auto WORKERS=1 MAX_CONNS=19000 RATE=3000
CONN_TIMEOUT=30 KERNEL=both IDLE=60 DIRECT_MSGS=10000 DIRECT_RATE=1000 NOTICES=false
STEP_RATES='' REDIS_NICE=0 TIMEOUT=auto BUILD=1 IMGATE_BIN='' BENCH_BIN='' PER_PROCESS=18200 MANUAL=0 IMGATE_ARGS=''
while [ $# -gt 0 ]; do
    case "$1" in
    --counts) COUNTS=${2:?}; shift 2 ;;
    --processes) PROCESSES=${2:?}; shift 2 ;;
    --workers) WORKERS=${2:?}; shift 2 ;;
    --max-conns) MAX_CONNS=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --step-rates) STEP_RATES=${2:?}; shift 2 ;;
    --conn-timeout) CONN_TIMEOUT=${2:?}; shift 2 ;;
    --kernel) KERNEL=${2:?}; shift 2 ;;
    --idle) IDLE=${2:?}; shift 2 ;;
    --direct-messages) DIRECT_MSGS=${2:?}; shift 2 ;;
    --direct-rate) DIRECT_RATE=${2:?}; shift 2 ;;
    --notices) NOTICES=true; shift ;;
    --imgate-args) IMGATE_ARGS=${2?}; shift 2 ;;
    --redis-nice) REDIS_NICE=${2:?}; shift 2 ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --imgate) IMGATE_BIN=${2:?}; shift 2 ;;
    --bench) BENCH_BIN=${2:?}; shift 2 ;;
    --manual) MANUAL=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --quick) COUNTS=10000,50000 IDLE=10 DIRECT_MSGS=2000; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/million.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
die() { echo "bench/million.sh: $*" >&2; exit 2; }
IFS=, read -r -a STEPS <<<"$COUNTS"
for v in "${STEPS[@]}" "$WORKERS" "$MAX_CONNS" "$RATE" "$CONN_TIMEOUT" "$IDLE" "$DIRECT_MSGS" \
    "$DIRECT_RATE"; do
    case "$v" in '' | *[!0-9]*) die "numbers must be whole and positive (got '$v')" ;; esac
done
case "$REDIS_NICE" in -[0-9]* | [0-9]*) ;; *) die "--redis-nice wants a number (-20..19)" ;; esac
case "$KERNEL" in default) VARIANTS=(default) ;; tuned) VARIANTS=(tuned) ;;
both) VARIANTS=(default tuned) ;; *) die "--kernel is default, tuned or both" ;; esac
N=${STEPS[${#STEPS[@]} - 1]}
[ "${#STEPS[@]}" -le 8 ] || die "at most 8 counts"
if [ "$PROCESSES" = auto ]; then
    PROCESSES=$(((N + PER_PROCESS - 1) / PER_PROCESS))
fi
case "$PROCESSES" in '' | *[!0-9]* | 0) die "--processes wants a positive number" ;; esac
[ "$PROCESSES" -le 250 ] || die "at most 250 processes (imgate-bench --server-pids)"
if [ $((PROCESSES * MAX_CONNS)) -lt "$N" ]; then
    die "$PROCESSES processes x $MAX_CONNS connections hold fewer than $N"
fi
[ "$(id -u)" = 0 ] || die "run as root: the kernel settings need it"
[ "$TIMEOUT" != auto ] || TIMEOUT=$((N * 3 / (RATE > 0 ? RATE : 5000) + IDLE + DIRECT_MSGS / DIRECT_RATE + 600))

STAMP=$(date +%Y%m%d-%H%M%S)
OUTBASE=$ROOT/build/bench/million-$STAMP
mkdir -p "$OUTBASE"
TMP=$(mktemp -d /tmp/imgate-million.XXXXXX)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
[ -z "$IMGATE_BIN" ] || IMGATE=$IMGATE_BIN
[ -z "$BENCH_BIN" ] || BENCH=$BENCH_BIN
SAMPLE=$ROOT/bench/million-sample.py

# ---- processes and sysctls: everything started is in PIDS, stopped by PID on exit ----

PIDS=()
SYSCTL_SAVED=()
save_sysctl() { # KEY: remember its value once (the first one is the original)
    local kv
    for kv in ${SYSCTL_SAVED[@]+"${SYSCTL_SAVED[@]}"}; do [ "${kv%%=*}" != "$1" ] || return 0; done
    SYSCTL_SAVED+=("$1=$(sysctl -n "$1" | tr -s '\t ' ' ')")
}
# set_sysctl KEY VALUE: records the old value, sets the new one, logs the change.
set_sysctl() {
    save_sysctl "$1"
    local cur
    cur=$(sysctl -n "$1" | tr -s '\t ' ' ')
    [ "$cur" != "$2" ] || return 0
    sysctl -qw "$1=$2"
    echo "== $1: $cur -> $2" >&2
    echo "$1 was '$cur' set '$2'" >>"$OUTBASE/sysctl.log"
}
# at_least KEY MIN: raises a single-number sysctl to MIN if it is lower.
at_least() {
    local cur
    cur=$(sysctl -n "$1")
    [ "$cur" -ge "$2" ] || set_sysctl "$1" "$2"
}
restore_sysctls() {
    local kv cur
    for kv in ${SYSCTL_SAVED[@]+"${SYSCTL_SAVED[@]}"}; do
        cur=$(sysctl -n "${kv%%=*}" | tr -s '\t ' ' ')
        if [ "$cur" != "${kv#*=}" ]; then
            sysctl -qw "$kv" && echo "== ${kv%%=*} restored to ${kv#*=}" >&2
        fi
    done
}

# stop_pids SECONDS PID...: SIGTERM, up to SECONDS, then SIGKILL; reaps them; drops them from
# PIDS.
stop_pids() {
    local wait_s=$1 p
    shift
    [ $# -gt 0 ] || return 0
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq $((wait_s * 10))); do
        local alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1 && break; done
        [ "$alive" = 1 ] || break
        sleep 0.1
    done
    for p in "$@"; do
        kill -KILL "$p" 2>/dev/null && echo "== pid $p did not stop in $wait_s s: killed" >&2
        wait "$p" 2>/dev/null || true
    done
    local keep=() q
    for q in ${PIDS[@]+"${PIDS[@]}"}; do
        case " $* " in *" $q "*) ;; *) keep+=("$q") ;; esac
    done
    PIDS=(${keep[@]+"${keep[@]}"})
}

forget_pid() { # PID: it exited and was reaped
    local keep=() q
    for q in ${PIDS[@]+"${PIDS[@]}"}; do [ "$q" = "$1" ] || keep+=("$q"); done
    PIDS=(${keep[@]+"${keep[@]}"})
}

cleanup() {
    local rc=$?
    [ -z "${RUNDIR:-}" ] || touch "$RUNDIR/stop-watch" 2>/dev/null || true
    # the bench first (its workers die with it), then the servers, Redis, the sampler
    [ ${#PIDS[@]} -eq 0 ] || stop_pids 90 "${PIDS[@]}"
    restore_sysctls
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench/million.sh: interrupted" >&2; exit 130' INT TERM

# wait_listeners PORT COUNT SECONDS PID...: until COUNT sockets listen on PORT, or fail if one of
# the PIDs died.
wait_listeners() {
    local port=$1 want=$2 secs=$3 p n=0
    shift 3
    for _ in $(seq $((secs * 10))); do
        n=$(ss -Hltn "( sport = :$port )" | wc -l)
        [ "$n" -lt "$want" ] || return 0
        for p in "$@"; do
            kill -0 "$p" 2>/dev/null || { echo "bench/million.sh: pid $p died at start" >&2; return 1; }
        done
        sleep 0.1
    done
    echo "bench/million.sh: $n of $want listeners on $port after $secs s" >&2
    return 1
}

# ---- build ----

if [ "$BUILD" = 1 ] && [ -z "$IMGATE_BIN" ] && [ -z "$BENCH_BIN" ]; then
    echo "== build" >&2
    [ -f "$ROOT/build/CMakeCache.txt" ] ||
        cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$ROOT/build" -j "$(nproc)" --target imgate imgate-bench >/dev/null
fi
if [ ! -x "$IMGATE" ] || [ ! -x "$BENCH" ]; then die "no $IMGATE or $BENCH (build first)"; fi
command -v redis-server >/dev/null || die "redis-server missing (apt-get install redis-server)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
[ "$FD_LIMIT" = unlimited ] || [ "$FD_LIMIT" -gt $((MAX_CONNS + 400)) ] ||
    die "ulimit -n is $FD_LIMIT: a process of $MAX_CONNS connections needs more (--max-conns)"
SUPERVISOR=0
# The help goes to a variable first: with pipefail, `--help | grep -q` fails when grep exits
# before imgate has written everything (SIGPIPE), and the supervisor would be missed.
IMGATE_HELP=$("$IMGATE" --help 2>&1 || true)
case "$IMGATE_HELP" in *app.processes*) [ "$MANUAL" = 1 ] || SUPERVISOR=1 ;; esac
BENCH_PROCS=$(((N + 18999) / 19000)) # 19 000 connections each: fewer processes to wake

# ---- the kernel ----

CONNTRACK=absent
[ ! -f /proc/sys/net/netfilter/nf_conntrack_max ] || CONNTRACK=present
kernel_setup() {
    local variant=$1
    at_least fs.file-max $((2 * N + 262144))
    at_least fs.nr_open 65536
    set_sysctl net.ipv4.ip_local_port_range "1024 65000"
    at_least net.core.somaxconn 4096
    at_least net.ipv4.tcp_max_syn_backlog 4096
    [ "$CONNTRACK" = absent ] || at_least net.netfilter.nf_conntrack_max $((N + 262144))
    save_sysctl net.ipv4.tcp_rmem
    save_sysctl net.ipv4.tcp_wmem
    local kv rmem wmem
    for kv in "${SYSCTL_SAVED[@]}"; do
        case "$kv" in net.ipv4.tcp_rmem=*) rmem=${kv#*=} ;; net.ipv4.tcp_wmem=*) wmem=${kv#*=} ;; esac
    done
    if [ "$variant" = tuned ]; then
        set_sysctl net.ipv4.tcp_rmem "4096 4096 ${rmem##* }"
        set_sysctl net.ipv4.tcp_wmem "4096 4096 ${wmem##* }"
    else
        set_sysctl net.ipv4.tcp_rmem "$rmem"
        set_sysctl net.ipv4.tcp_wmem "$wmem"
    fi
}

record_kernel() { # the settings the run saw, for the report
    local k
    for k in fs.file-max fs.nr_open net.ipv4.ip_local_port_range net.core.somaxconn \
        net.ipv4.tcp_max_syn_backlog net.ipv4.tcp_rmem net.ipv4.tcp_wmem net.ipv4.tcp_mem \
        net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_count net.ipv4.tcp_tw_reuse \
        net.ipv4.tcp_max_tw_buckets fs.epoll.max_user_watches; do
        printf '%s = %s\n' "$k" "$(sysctl -n "$k" 2>/dev/null | tr -s '\t ' ' ' || echo absent)"
    done
    echo "ulimit -n = $FD_LIMIT"
    echo "kernel = $(uname -r)"
    echo "cpus = $(nproc)"
    grep -E 'MemTotal|MemAvailable' /proc/meminfo
}

# ---- one run ----

run_variant() {
    local variant=$1
    RUNDIR=$OUTBASE/$variant
    mkdir -p "$RUNDIR" "$TMP/$variant"
    echo "== $variant: kernel set-up" >&2
    kernel_setup "$variant"
    record_kernel >"$RUNDIR/kernel.txt"

    pick_port; local redis_port=$PICKED
    pick_port; local http_port=$PICKED
    pick_port; local ws_port=$PICKED
    mkdir -p "$TMP/$variant/redis"
    nice -n "$REDIS_NICE" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$TMP/$variant/redis" --daemonize no --logfile "$RUNDIR/redis.log" >/dev/null 2>&1 &
    local redis_pid=$!
    PIDS+=("$redis_pid")
    wait_listeners "$redis_port" 1 20 "$redis_pid"

    local args=(--app.bindAddress 127.0.0.1 --app.logLevel warn --app.logFile ""
        --app.httpPort "$http_port" --app.webSocketPort "$ws_port" --app.roomNotices "$NOTICES"
        --app.workers "$WORKERS" --app.maxConnections "$MAX_CONNS"
        --redis.addr "127.0.0.1:$redis_port")
    # shellcheck disable=SC2206 # word-split on purpose: a list of flags
    [ -z "$IMGATE_ARGS" ] || args+=($IMGATE_ARGS)
    local servers=() i how
    mkdir -p "$TMP/$variant/srv"
    if [ "$SUPERVISOR" = 1 ]; then
        how="imgate --processes $PROCESSES (supervisor)"
        (cd "$TMP/$variant/srv" && exec "$IMGATE" "${args[@]}" --processes "$PROCESSES" \
            --cluster.nodeId m) >"$RUNDIR/imgate.log" 2>&1 &
        servers=($!)
    else
        how="$PROCESSES imgate processes started by the script (no --processes in this imgate)"
        for i in $(seq 0 $((PROCESSES - 1))); do
            (cd "$TMP/$variant/srv" && exec "$IMGATE" "${args[@]}" --cluster.nodeId "m$i") \
                >"$RUNDIR/imgate-$i.log" 2>&1 &
            servers+=($!)
        done
    fi
    PIDS+=("${servers[@]}")
    echo "== $variant: redis-server on $redis_port (pid $redis_pid); $how on ws $ws_port, http $http_port" >&2
    wait_listeners "$ws_port" $((PROCESSES * WORKERS)) 120 "${servers[@]}"
    wait_listeners "$http_port" $((PROCESSES * WORKERS)) 60 "${servers[@]}"
    for _ in $(seq 300); do # every node registered in Redis: the cluster links are up
        [ "$(redis-cli -p "$redis_port" hlen imgate:nodes 2>/dev/null || echo 0)" -lt "$PROCESSES" ] || break
        sleep 0.1
    done
    local joined
    joined=$(redis-cli -p "$redis_port" hlen imgate:nodes 2>/dev/null || echo 0)
    [ "$joined" -ge "$PROCESSES" ] || echo "== warning: $joined of $PROCESSES nodes in imgate:nodes" >&2

    local spids
    spids=$(IFS=,; echo "${servers[*]}")
    printf '{"server": [%s], "redis": %s, "redis_port": %s}\n' "$spids" "$redis_pid" \
        "$redis_port" >"$RUNDIR/pids.json"
    cat >"$RUNDIR/meta.json" <<EOF
{"variant": "$variant", "counts": [$COUNTS], "processes": $PROCESSES, "workers": $WORKERS,
 "max_conns": $MAX_CONNS, "rate": $RATE, "step_rates": "$STEP_RATES", "idle_s": $IDLE, "direct_messages": $DIRECT_MSGS,
 "direct_rate": $DIRECT_RATE, "notices": $NOTICES, "supervisor": $SUPERVISOR,
 "imgate_args": "$IMGATE_ARGS", "redis_nice": $REDIS_NICE,
 "bench_procs": $BENCH_PROCS, "commit": "$(git -C "$ROOT" rev-parse --short HEAD)",
 "imgate": "$IMGATE", "bench": "$BENCH", "stamp": "$STAMP", "conntrack": "$CONNTRACK",
 "redis_version": "$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"}
EOF
    python3 "$SAMPLE" watch "$RUNDIR" 1 2>>"$RUNDIR/sample.err" &
    local watch_pid=$!
    PIDS+=("$watch_pid")

    local tree=()
    [ "$SUPERVISOR" = 0 ] || tree=(--server-tree)
    local bench_args=(--mode conns --clients "$N" --procs "$BENCH_PROCS" --rate "$RATE"
        --conn-timeout "$CONN_TIMEOUT" --ws-port "$ws_port" --http-port "$http_port"
        --server-pids "$spids" ${tree[@]+"${tree[@]}"} --settle 60 --heartbeat 30
        --phases "idle:$IDLE,fanout:1,direct:$DIRECT_MSGS@$DIRECT_RATE"
        --step-cmd "python3 '$SAMPLE' snap '$RUNDIR' \"\$1\"" --timeout "$TIMEOUT")
    [ "${#STEPS[@]}" -le 1 ] || bench_args+=(--steps "$(IFS=,; echo "${STEPS[*]:0:${#STEPS[@]}-1}")")
    [ -z "$STEP_RATES" ] || bench_args+=(--step-rates "$STEP_RATES")
    echo "$BENCH ${bench_args[*]}" >"$RUNDIR/bench.cmd"
    echo "== $variant: imgate-bench: $N users at $RATE/s over $BENCH_PROCS client processes, steps $COUNTS (timeout $TIMEOUT s)" >&2
    "$BENCH" "${bench_args[@]}" >"$RUNDIR/bench.out" 2> >(tee "$RUNDIR/bench.err" >&2) &
    local bench_pid=$!
    PIDS+=("$bench_pid")
    printf '{"server": [%s], "redis": %s, "redis_port": %s, "bench": %s}\n' "$spids" \
        "$redis_pid" "$redis_port" "$bench_pid" >"$RUNDIR/pids.json"
    local bench_rc=0
    wait "$bench_pid" || bench_rc=$?
    forget_pid "$bench_pid"
    echo "== $variant: imgate-bench exit $bench_rc" >&2

    # The servers close their side of every connection the bench dropped, and each close is a
    # logout in Redis: wait until the room is empty there (at most 2 minutes).
    local t0 inuse left
    t0=$(date +%s)
    for _ in $(seq 240); do
        inuse=$(awk '/^TCP:/ {print $3}' /proc/net/sockstat)
        left=$(redis-cli -p "$redis_port" scard imgate:room:101 2>/dev/null || echo "?")
        [ "$inuse" -gt $((PROCESSES * WORKERS * 2 + 200)) ] || [ "$left" != 0 ] || break
        sleep 0.5
    done
    echo "== $variant: $(($(date +%s) - t0)) s after the bench: TCP sockets in use $inuse, users left in Redis's room $left" >&2
    echo "after_bench_s=$(($(date +%s) - t0)) tcp_inuse=$inuse room_left=$left" >"$RUNDIR/closed.txt"
    python3 "$SAMPLE" snap "$RUNDIR" closed || true

    local alive=0 p
    for p in "${servers[@]}" "$redis_pid"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
    echo "bench_rc=$bench_rc alive_at_end=$alive of $((${#servers[@]} + 1))" >"$RUNDIR/status.txt"
    redis-cli -p "$redis_port" info all >"$RUNDIR/redis-info-end.txt" 2>/dev/null || true
    stop_pids 90 "${servers[@]}"
    stop_pids 20 "$redis_pid"
    touch "$RUNDIR/stop-watch"
    stop_pids 10 "$watch_pid"
    RUNDIR=
}

echo "== $N users over $PROCESSES imgate processes (workers $WORKERS, maxConnections $MAX_CONNS), rate $RATE/s; kernel: ${VARIANTS[*]}; conntrack table: $CONNTRACK; out: ${OUTBASE#"$ROOT"/}" >&2
for v in "${VARIANTS[@]}"; do
    run_variant "$v"
done
restore_sysctls
python3 "$ROOT/bench/million-report.py" "$OUTBASE" | tee "$OUTBASE/table.md"
echo "results: ${OUTBASE#"$ROOT"/}/  table: ${OUTBASE#"$ROOT"/}/table.md" >&2
