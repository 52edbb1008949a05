# bench/lib.sh — server helpers shared by bench/run.sh and bench/profile.sh (sourced, bash).
#
# The caller sets ROOT (the repository), LOGDIR (server logs) and TMP (scratch directories) first.
# start_server / stop_server manage one server at a time in SRV_PID; cleanup_server, run from the
# caller's EXIT trap, stops it if it is still there.
# shellcheck shell=bash
# shellcheck disable=SC2034 # BENCH, SRV_RC, WS_PORT...: set here, used by the callers

IMGATE=$ROOT/build/imgate
BENCH=$ROOT/build/tools/imgate-bench
BASELINE=$ROOT/bench/ws-baseline.js

# build_all: cmake --build build (configured RelWithDebInfo on first use, as `make build`), and
# npm ci when the baseline's ws package is missing.
build_all() {
    echo "== build" >&2
    if [ ! -f "$ROOT/build/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    cmake --build "$ROOT/build" -j "$(nproc)" >/dev/null
    if [ ! -f "$ROOT/node_modules/ws/package.json" ]; then
        echo "== npm ci (the baseline needs ws)" >&2
        (cd "$ROOT" && npm ci --no-audit --no-fund >/dev/null)
    fi
}

# Ports above 65000 lie outside the ephemeral range the bench widens to (1024-65000), so no
# client socket holds them; each server start takes the next free one(s).
NEXT_PORT=65001
port_free() { ! ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q .; }
pick_port() {
    local tries=0
    while ! port_free "$NEXT_PORT"; do
        NEXT_PORT=$((NEXT_PORT >= 65535 ? 65001 : NEXT_PORT + 1))
        tries=$((tries + 1))
        [ "$tries" -lt 535 ] || { echo "bench: no free port above 65000" >&2; return 1; }
    done
    PICKED=$NEXT_PORT
    NEXT_PORT=$((NEXT_PORT >= 65535 ? 65001 : NEXT_PORT + 1))
}

# wait_listen PORT [SECONDS]: until the server listens on PORT (10 s), or fail if it died.
wait_listen() {
    for _ in $(seq $((${2:-10} * 10))); do
        ss -Hltn "( sport = :$1 )" | grep -q . && return 0
        kill -0 "$SRV_PID" 2>/dev/null || { echo "bench: server died at start" >&2; return 1; }
        sleep 0.1
    done
    echo "bench: server not listening on $1 after ${2:-10} s" >&2
    return 1
}

SRV_SEQ=0
SRV_PID=
# start_server imgate|baseline NOTICES [WRAPPER...]: a fresh server on new ports, in an empty
# directory (so imgate reads no config/app.yaml: built-in defaults + these flags). NOTICES is
# true/false for imgate, ignored for the baseline. WRAPPER (e.g. valgrind --tool=callgrind) is
# put in front of imgate. Sets SRV_PID, WS_PORT, HTTP_PORT, SRV_LOG.
# Extra imgate flags can be given in the array IMGATE_EXTRA.
start_server() {
    local kind=$1 notices=$2
    shift 2
    SRV_SEQ=$((SRV_SEQ + 1))
    SRV_LOG=$LOGDIR/server-$SRV_SEQ-$kind.log
    local dir=$TMP/srv$SRV_SEQ
    mkdir -p "$dir"
    if [ "$kind" = imgate ]; then
        pick_port; HTTP_PORT=$PICKED
        pick_port; WS_PORT=$PICKED
        (cd "$dir" && exec "$@" "$IMGATE" --app.bindAddress 127.0.0.1 --app.logLevel warn \
            --app.logFile "" --app.httpPort "$HTTP_PORT" --app.webSocketPort "$WS_PORT" \
            --app.roomNotices "$notices" ${IMGATE_EXTRA[@]+"${IMGATE_EXTRA[@]}"}) \
            >"$SRV_LOG" 2>&1 &
    else
        pick_port; HTTP_PORT=$PICKED; WS_PORT=$PICKED
        (cd "$dir" && exec node "$BASELINE" "$WS_PORT") >"$SRV_LOG" 2>&1 &
    fi
    SRV_PID=$!
    local wait_s=10
    [ $# -eq 0 ] || wait_s=60 # under valgrind start-up is slow
    wait_listen "$WS_PORT" "$wait_s"
    [ "$HTTP_PORT" = "$WS_PORT" ] || wait_listen "$HTTP_PORT" "$wait_s"
}

# stop_server [SECONDS]: SIGTERM, wait up to 20 s (then SIGKILL); sets SRV_RC to the exit
# status (137 = had to be killed; "died" = it had exited before we asked).
stop_server() {
    local wait_s=${1:-20}
    if ! kill -0 "$SRV_PID" 2>/dev/null; then
        SRV_RC=died
        wait "$SRV_PID" 2>/dev/null || true
        SRV_PID=
        return
    fi
    kill -TERM "$SRV_PID"
    for _ in $(seq $((wait_s * 10))); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SRV_PID" 2>/dev/null || true
    SRV_RC=0
    wait "$SRV_PID" 2>/dev/null || SRV_RC=$?
    SRV_PID=
}

cleanup_server() {
    if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
        kill -TERM "$SRV_PID" 2>/dev/null || true
        sleep 1
        kill -KILL "$SRV_PID" 2>/dev/null || true
    fi
}

# raise_limits CONNS: descriptors for CONNS connections; net.core.somaxconn >= 4096 (a smaller
# listen backlog drops SYNs in connect storms: 1 s retransmits).
raise_limits() {
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $(($1 + 100)) ]; then
        echo "bench: ulimit -n is $(ulimit -n), need > $(($1 + 100)) for the server" >&2
        return 1
    fi
    local somax
    somax=$(cat /proc/sys/net/core/somaxconn)
    if [ "$somax" -lt 4096 ]; then
        if [ "$(id -u)" = 0 ]; then
            sysctl -qw net.core.somaxconn=4096 && echo "== net.core.somaxconn $somax -> 4096" >&2
        else
            echo "== warning: net.core.somaxconn=$somax < 4096: connect storms see SYN drops" >&2
        fi
    fi
}
