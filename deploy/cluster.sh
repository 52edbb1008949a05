#!/usr/bin/env bash
# A whole imgate cluster on this machine, in the foreground: one redis-server, three imgate
# nodes sharing it (cluster mode), and Debian's nginx in front of them with deploy/nginx.conf.
#
#     make cluster               # builds, installs missing Debian packages, then runs this
#     deploy/cluster.sh [-- imgate flags...]    # the same without the build; flags go to every node
#
# Then open http://127.0.0.1:8080/home/index (two tabs are two people; nginx puts their
# WebSockets on different nodes) or push through nginx:
#
#     curl -d 'appID=101&userID=alice&message=hi' http://127.0.0.1:8080/user/sendMessage
#
# What runs where (defaults; every port can be changed with the variable named):
#
#     nginx        127.0.0.1:8080            IMGATE_CLUSTER_PORT   the one public port
#     node n0      HTTP 8081, WebSocket 8091 IMGATE_CLUSTER_HTTP_BASE, IMGATE_CLUSTER_WS_BASE
#     node n1      HTTP 8082, WebSocket 8092   (node i gets BASE+1+i)
#     node n2      HTTP 8083, WebSocket 8093
#     redis-server 127.0.0.1:6390            IMGATE_CLUSTER_REDIS_PORT (not 6379, so that a
#                                            system Redis is left alone)
#     IMGATE_CLUSTER_NODES=3                 how many nodes (1-9)
#     IMGATE_CLUSTER_BIND=127.0.0.1          nginx's listen address (0.0.0.0 to reach it from
#                                            elsewhere); the nodes and Redis stay on loopback
#
# Everything it writes is under build/cluster/ (IMGATE_CLUSTER_DIR): redis/ (its log; nothing is
# persisted: --save '' --appendonly no), n0/ n1/ ... (each node's output and access log), nginx/
# (the prefix given to nginx -p: the rendered nginx.conf, logs/, temp/). The nginx.conf there is
# deploy/nginx.conf with only its "EDIT:" lines replaced (the upstream servers and the listen
# port), run with `daemon off;`.
#
# Ctrl-C or SIGTERM stops everything it started, by PID: nginx first (no new clients), then the
# nodes (SIGTERM: they close their clients with 1001 and withdraw from Redis), then Redis. If one
# of them exits on its own, the others are stopped too and the script exits 1. Each child also
# gets SIGTERM from the kernel if this script is killed outright (setpriv --pdeathsig).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=${IMGATE_BIN:-$BUILD/imgate}
DIR=${IMGATE_CLUSTER_DIR:-$BUILD/cluster}
PUBLIC_PORT=${IMGATE_CLUSTER_PORT:-8080}
HTTP_BASE=${IMGATE_CLUSTER_HTTP_BASE:-8080}
WS_BASE=${IMGATE_CLUSTER_WS_BASE:-8090}
REDIS_PORT=${IMGATE_CLUSTER_REDIS_PORT:-6390}
NODES=${IMGATE_CLUSTER_NODES:-3}
BIND=${IMGATE_CLUSTER_BIND:-127.0.0.1}
NGINX=${IMGATE_NGINX:-/usr/sbin/nginx}
REDIS_SERVER=${IMGATE_REDIS_SERVER:-/usr/bin/redis-server}
CONF_SRC=$ROOT/deploy/nginx.conf
HOST=127.0.0.1

[ "${1:-}" = "--" ] && shift
NODE_ARGS=("$@")

die() { echo "cluster.sh: $*" >&2; exit 2; }

[ -x "$BIN" ] || die "no imgate binary at $BIN: run 'make cluster' (or 'make build') first"
[ -x "$NGINX" ] || die "no nginx at $NGINX: apt-get install nginx (make cluster does it)"
[ -x "$REDIS_SERVER" ] || die "no redis-server at $REDIS_SERVER: apt-get install redis-server"
[[ $NODES =~ ^[1-9]$ ]] || die "IMGATE_CLUSTER_NODES must be 1-9, not '$NODES'"

# ---- ports ----------------------------------------------------------------------------------

HTTP_PORTS=() WS_PORTS=()
for ((i = 0; i < NODES; i++)); do
    HTTP_PORTS+=($((HTTP_BASE + 1 + i)))
    WS_PORTS+=($((WS_BASE + 1 + i)))
done

# True if something accepts connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

for p in "$PUBLIC_PORT" "$REDIS_PORT" "${HTTP_PORTS[@]}" "${WS_PORTS[@]}"; do
    port_open "$p" && die "port $p is in use; pick others with the IMGATE_CLUSTER_* variables" \
        "(see the top of $0)"
done
[ "$(printf '%s\n' "$PUBLIC_PORT" "$REDIS_PORT" "${HTTP_PORTS[@]}" "${WS_PORTS[@]}" |
    sort | uniq -d)" = "" ] || die "the chosen ports overlap"

# ---- processes --------------------------------------------------------------------------------

PIDS=() NAMES=()
SETPRIV=$(command -v setpriv || true)

# start NAME LOG CWD CMD...: runs CMD in the background in a session of its own (so that a
# Ctrl-C reaches only this script, which then stops everything in order), output to LOG.
start() {
    local name=$1 log=$2 cwd=$3
    shift 3
    local wrap=(setsid)
    [ -n "$SETPRIV" ] && wrap+=("$SETPRIV" --pdeathsig TERM --)
    # setsid and setpriv exec the command: $! is the program's own PID.
    (cd "$cwd" && exec "${wrap[@]}" "$@" </dev/null >>"$log" 2>&1) &
    PIDS+=($!)
    NAMES+=("$name")
}

alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# stop_pid NAME PID SIGNAL: signal, wait up to 15 s, then SIGKILL it (and, for nginx, its
# workers, found as the master's children).
stop_pid() {
    local name=$1 pid=$2 sig=$3 kids=""
    alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    kids=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true)
    kill -"$sig" "$pid" 2>/dev/null || true
    for ((t = 0; t < 150; t++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        echo "  $name (pid $pid) did not stop within 15 s: killed" >&2
        kill -KILL "$pid" $kids 2>/dev/null || true
        STOP_FAILED=1
    fi
    wait "$pid" 2>/dev/null || true
    echo "  stopped $name (pid $pid)"
}

STOPPING="" STOP_FAILED=0 STOPPED=""
stop_all() {
    [ -n "$STOPPED" ] && return
    STOPPED=1
    trap '' INT TERM HUP
    [ ${#PIDS[@]} -eq 0 ] && return
    echo "stopping..."
    local i
    # Reverse order of start: nginx, the nodes, Redis.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        # SIGTERM for all: nginx's fast shutdown (SIGQUIT would keep open WebSockets for its
        # worker_shutdown_timeout of 10 s), the nodes' and Redis's normal one.
        stop_pid "${NAMES[i]}" "${PIDS[i]}" TERM
    done
}
trap stop_all EXIT
trap 'STOPPING=1' INT TERM HUP

# wait_for WHAT SECONDS PID CMD...: until CMD succeeds; fails if PID exits or time runs out.
wait_for() {
    local what=$1 secs=$2 pid=$3
    shift 3
    local t
    for ((t = 0; t < secs * 10; t++)); do
        [ -n "$STOPPING" ] && exit 130
        "$@" && return 0
        alive "$pid" || { echo "cluster.sh: $what exited while starting" >&2; return 1; }
        sleep 0.1
    done
    echo "cluster.sh: $what not ready within $secs s" >&2
    return 1
}

redis_ping() {
    local reply=""
    exec 3<>"/dev/tcp/$HOST/$REDIS_PORT" || return 1
    printf 'PING\r\n' >&3
    read -r -t 1 reply <&3 || true
    exec 3<&- 3>&-
    [ "${reply%$'\r'}" = "+PONG" ]
} 2>/dev/null

# True once the node on HTTP port $1 says in /system/state that its Redis links are usable.
node_usable() {
    local body=""
    exec 3<>"/dev/tcp/$HOST/$1" || return 1
    printf 'GET /system/state HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n' \
        "$HOST" "$1" >&3
    body=$(timeout 2 cat <&3 || true)
    exec 3<&- 3>&-
    [[ $body == *'"usable":true'* ]]
} 2>/dev/null

# ---- the rendered nginx.conf ------------------------------------------------------------------

# deploy/nginx.conf with its EDIT: lines replaced: in each upstream, the first `server` line
# becomes one line per node (keeping that line's parameters), the other server lines go; the
# one `listen` line gets BIND:PUBLIC_PORT.
render_conf() {
    awk -v ws="${WS_PORTS[*]}" -v http="${HTTP_PORTS[*]}" -v host="$HOST" \
        -v listen="$BIND:$PUBLIC_PORT" '
        /^[ \t]*upstream[ \t]+imgate_ws[ \t]*\{/   { up = ws;   done = 0 }
        /^[ \t]*upstream[ \t]+imgate_http[ \t]*\{/ { up = http; done = 0 }
        up != "" && /^[ \t]*\}/ { up = "" }
        up != "" && /^[ \t]*server[ \t]+[^ \t;]+/ {
            if (!done) {
                match($0, /^[ \t]*/); indent = substr($0, 1, RLENGTH)
                rest = $0; sub(/^[ \t]*server[ \t]+[^ \t;]+/, "", rest); sub(/;.*$/, "", rest)
                n = split(up, ports, " ")
                for (k = 1; k <= n; k++) printf "%sserver %s:%s%s;\n", indent, host, ports[k], rest
                done = 1; servers++
            }
            next
        }
        /^[ \t]*listen[ \t]+[^;]+;/ {
            match($0, /^[ \t]*/); printf "%slisten %s;\n", substr($0, 1, RLENGTH), listen
            listens++; next
        }
        { print }
        END { if (servers != 2 || listens != 1) exit 1 }' "$CONF_SRC"
}

# ---- start ------------------------------------------------------------------------------------

mkdir -p "$DIR/redis" "$DIR/nginx/logs" "$DIR/nginx/temp"
# Started as root, nginx runs its workers as nobody: they must reach temp/.
chmod 755 "$DIR" "$DIR/nginx" "$DIR/nginx/temp"
render_conf >"$DIR/nginx/nginx.conf" || die "$CONF_SRC: expected two upstreams with server" \
    "lines and one listen line (its EDIT: lines)"
NGINX_ARGS=(-p "$DIR/nginx/" -e "$DIR/nginx/logs/error.log" -c "$DIR/nginx/nginx.conf")
"$NGINX" -t -q "${NGINX_ARGS[@]}" -g 'daemon off;' ||
    die "nginx -t refused $DIR/nginx/nginx.conf"

echo "starting redis-server on $HOST:$REDIS_PORT"
: >"$DIR/redis/redis.log"
start redis "$DIR/redis/redis.log" "$DIR/redis" "$REDIS_SERVER" --port "$REDIS_PORT" \
    --bind "$HOST" --save '' --appendonly no --dir "$DIR/redis" --daemonize no
REDIS_PID=${PIDS[-1]}
wait_for redis-server 10 "$REDIS_PID" redis_ping || { tail -n 20 "$DIR/redis/redis.log" >&2; exit 1; }

for ((i = 0; i < NODES; i++)); do
    id=n$i
    mkdir -p "$DIR/$id"
    : >"$DIR/$id/imgate.log"
    echo "starting node $id: HTTP $HOST:${HTTP_PORTS[i]}, WebSocket $HOST:${WS_PORTS[i]}"
    # cwd is the node's own folder, so that no config/app.yaml is read from elsewhere.
    start "node $id" "$DIR/$id/imgate.log" "$DIR/$id" "$BIN" \
        --app.bindAddress "$HOST" --app.httpPort "${HTTP_PORTS[i]}" \
        --app.webSocketPort "${WS_PORTS[i]}" --app.logFile "$DIR/$id/access.log" \
        --redis.addr "$HOST:$REDIS_PORT" --cluster.nodeId "$id" ${NODE_ARGS[@]+"${NODE_ARGS[@]}"}
done
for ((i = 0; i < NODES; i++)); do
    pid=${PIDS[i + 1]}
    wait_for "node n$i" 15 "$pid" node_usable "${HTTP_PORTS[i]}" ||
        { tail -n 20 "$DIR/n$i/imgate.log" >&2; exit 1; }
done

echo "starting nginx on $BIND:$PUBLIC_PORT"
: >"$DIR/nginx/stderr.log"
start nginx "$DIR/nginx/stderr.log" "$DIR/nginx" "$NGINX" "${NGINX_ARGS[@]}" -g 'daemon off;'
NGINX_PID=${PIDS[-1]}
wait_for nginx 10 "$NGINX_PID" port_open "$PUBLIC_PORT" ||
    { cat "$DIR/nginx/stderr.log" "$DIR/nginx/logs/error.log" >&2; exit 1; }

cat <<EOF

imgate cluster running ($NODES nodes on one Redis, nginx in front):
  chat page     http://127.0.0.1:$PUBLIC_PORT/home/index   (through nginx)
  WebSocket     ws://127.0.0.1:$PUBLIC_PORT/acc
  HTTP API      http://127.0.0.1:$PUBLIC_PORT/user/...      e.g.
                curl -d 'appID=101&userID=alice&message=hi' http://127.0.0.1:$PUBLIC_PORT/user/sendMessage
EOF
for ((i = 0; i < NODES; i++)); do
    printf '  node n%d       HTTP %s, WebSocket %s, pid %s   (%s/n%d/imgate.log)\n' "$i" \
        "${HTTP_PORTS[i]}" "${WS_PORTS[i]}" "${PIDS[i + 1]}" "$DIR" "$i"
done
cat <<EOF
  redis-server  $HOST:$REDIS_PORT, pid $REDIS_PID             (redis-cli -p $REDIS_PORT)
  nginx         $BIND:$PUBLIC_PORT, pid $NGINX_PID   ($DIR/nginx/logs/)
Ctrl-C stops them all.
EOF

# ---- run until a signal or until one of them exits --------------------------------------------

status=0
while [ -z "$STOPPING" ]; do
    gone=""
    wait -n -p gone "${PIDS[@]}" || true
    [ -n "$STOPPING" ] && break
    [ -z "$gone" ] && continue
    for ((i = 0; i < ${#PIDS[@]}; i++)); do
        [ "${PIDS[i]}" = "$gone" ] && echo "cluster.sh: ${NAMES[i]} (pid $gone) exited on its" \
            "own; stopping the others" >&2
    done
    status=1
    break
done
stop_all
[ "$STOP_FAILED" = 0 ] || status=1
exit $status
