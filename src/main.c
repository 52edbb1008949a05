/* imgate: start-up and shutdown of one node. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "api/http_api.h"
#include "api/web_files.h"
#include "cluster/cluster.h"
#include "config.h"
#include "im/auth.h"
#include "im/dedup.h"
#include "im/hub.h"
#include "im/notices.h"
#include "im/registry.h"
#include "im/router.h"
#include "im/session.h"
#include "net/worker.h"
#include "supervisor.h"
#include "util/log.h"

extern char **environ;

/* idle HTTP keep-alive connections: nginx's default keepalive_timeout */
#define KEEPALIVE_TIMEOUT_S 75

/* SIGTERM waits this long for the node's users to leave cluster presence (a few script calls;
 * Redis answers in milliseconds), then shuts down anyway: they leave when the registration
 * expires. */
#define LEAVE_TIMEOUT_MS 2000

static const net_hooks_t hooks = {
    .on_http = api_handle,
    .on_ws_open = router_on_open,
    .on_ws_timeout = router_on_timeout,
    .on_ws_message = router_on_message,
    .on_ws_close = router_on_close,
};

static void on_notice_timer(uv_timer_t *h) {
    notices_flush();
}

/* Memory freed after a burst (queued pushes, a login storm's notices) stays in each worker
 * thread's glibc arena, so RSS would stay at the burst's peak. malloc_trim hands it back, but it
 * holds each arena's lock while it works (up to ~300 ms after big bursts), stalling the workers:
 * so it runs only once per quiet spell — an interval with less traffic than idle clients make
 * (a heartbeat per connection every 30 s is 1/15 of the connections per 2-s interval; quiet is
 * below 1/5, at least 1000 events). */
#define TRIM_INTERVAL_MS 2000

static void on_trim_timer(uv_timer_t *h) {
    static uint64_t last;
    static bool trimmed;
    uint64_t events = 0, conns = 0;
    for (int i = 0; i < net_worker_count(); i++) {
        worker_t *w = net_worker(i);
        events += STAT_GET(&w->stats, messagesOut) + STAT_GET(&w->stats, messagesIn) +
                  STAT_GET(&w->stats, connectionsAccepted) + STAT_GET(&w->stats, httpRequests);
        conns += worker_conn_count(w);
    }
    uint64_t quiet = conns / 5 > 1000 ? conns / 5 : 1000;
    bool busy = events - last >= quiet;
    last = events;
    if (busy) {
        trimmed = false;
        return;
    }
    if (!trimmed)
        malloc_trim(0);
    trimmed = true;
}

/* The drain runs while this loop keeps turning (room notices, the main mailbox); once the last
 * WebSocket is closed, the loop ends and the shutdown goes on in main. */
#define DRAIN_CHECK_MS 50

static uv_timer_t g_drain_check;

static void on_drain_check(uv_timer_t *h) {
    if (net_websockets() > 0)
        return;
    uv_timer_stop(h);
    uv_stop(h->loop);
}

static void on_signal(uv_signal_t *h, int signum) {
    if (net_draining()) {
        log_info("signal %d again: closing every connection now", signum);
        net_drain_now();
        return;
    }
    log_info("signal %d: draining (app.drainSeconds), then shutting down", signum);
    net_begin_drain(); /* /ready answers 503 from now on */
    uv_timer_start(&g_drain_check, on_drain_check, 0, DRAIN_CHECK_MS);
}

int main(int argc, char **argv) {
    static config_t cfg;
    char err[512];
    int r = config_load(&cfg, argc, argv, environ, stdout, err, sizeof err);
    if (r == CONFIG_EXIT_HELP)
        return 0;
    if (r != CONFIG_OK) {
        fprintf(stderr, "imgate: %s\n", err);
        return 2;
    }
    /* The keys belong to the configuration: a missing, unreadable or unusable one is an error of
     * it, before anything starts. */
    auth_t *auth;
    if ((r = auth_load(cfg.auth_jwt_secret, cfg.auth_jwt_public_key, &auth, err, sizeof err)) !=
        AUTH_OK) {
        fprintf(stderr, "imgate: %s\n", r == AUTH_ERR_NOMEM ? "out of memory" : err);
        return r == AUTH_ERR_NOMEM ? 1 : 2;
    }
    log_set_level((log_level_t)log_level_parse(cfg.log_level));
    if (auth_enabled(auth)) {
        char algs[160];
        auth_describe(auth, algs, sizeof algs);
        log_info("login needs a serviceToken (JWT) signed with %s", algs);
    } else {
        log_warn("login is NOT authenticated: auth.jwtSecret and auth.jwtPublicKey are empty, so "
                 "any client may log in as any userID");
    }
    if (!cfg.auth_api_key[0])
        log_warn("the push API is open: auth.apiKey is empty, so anyone who reaches port %d may "
                 "send to any user (and read /metrics, /system/state)",
                 cfg.http_port);
    if (!cfg.allowed_origins[0])
        log_warn("app.allowedOrigins is empty: a WebSocket from any web page's origin is accepted");
    /* app.processes > 1: this process becomes the master of that many nodes; each child comes
     * back here as one of them (its own cluster.nodeId) and starts as usual. Before anything
     * else starts: the children are forks. */
    if (cfg.processes > 1 && (r = supervisor_run(&cfg)) != SUPERVISOR_CHILD) {
        auth_free(auth);
        return r == SUPERVISOR_OK ? 0 : 1;
    }
    if ((r = log_open_access(cfg.log_file)) != 0)
        log_warn("cannot open access log %s: %s (continuing without it)", cfg.log_file,
                 strerror(-r));
    signal(SIGPIPE, SIG_IGN);

    int workers = cfg.workers ? cfg.workers : (int)uv_available_parallelism();
    net_config_t net = {
        .bind_address = cfg.bind_address,
        .http_port = cfg.http_port,
        .ws_port = cfg.ws_port,
        .workers = workers,
        .max_connections = cfg.max_connections,
        .max_connections_per_ip = cfg.max_connections_per_ip,
        .upgrade_rate = cfg.upgrade_rate,
        .upgrade_burst = cfg.upgrade_burst,
        .max_message_size = cfg.max_message_size,
        .max_write_queue = cfg.max_write_queue,
        .max_header_bytes = cfg.max_header_bytes,
        .max_body_bytes = cfg.max_body_bytes,
        .handshake_timeout = cfg.handshake_timeout,
        .close_timeout = cfg.close_timeout,
        .keepalive_timeout = KEEPALIVE_TIMEOUT_S,
        .mailbox_capacity = cfg.mailbox_capacity,
        .write_delay_ms = cfg.write_delay,
        .drain_ms = cfg.drain_seconds * 1000u,
        .subprotocols = cfg.subprotocols,
        .allowed_origins = cfg.allowed_origins,
        .conn_ext_size = sizeof(session_t),
        .hooks = &hooks,
    };
    if (hub_init(&cfg, workers) != 0) {
        log_error("out of memory at start-up");
        return 1;
    }
    notices_init(&cfg);
    if ((r = cluster_init(&cfg)) != 0) {
        log_error("cluster start-up failed: %s", strerror(-r));
        return 1;
    }
    router_init(&cfg, auth);
    api_init(&cfg);
    dedup_init(cfg.dedup_ttl, cfg.dedup_capacity);
    web_files_init(&cfg);

    /* Signals are taken by the main thread's loop; workers never see them. */
    uv_loop_t *loop = uv_default_loop();
    /* The main loop's mailbox: presence events for the room notices of a single node. */
    mailbox_t control;
    if (mailbox_init(&control, loop, cfg.mailbox_capacity, NULL) != 0) {
        log_error("cannot create the main loop's mailbox");
        return 1;
    }
    /* In a cluster, notices follow cluster-wide presence instead (src/cluster/). */
    if (cfg.room_notices && !cluster_enabled())
        registry_subscribe(&control, notices_on_presence, false);
    uv_signal_t sigint, sigterm;
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_timer_t notice_timer;
    uv_timer_init(loop, &notice_timer);
    uv_timer_start(&notice_timer, on_notice_timer, cfg.notice_batch_interval,
                   cfg.notice_batch_interval);
    uv_timer_init(loop, &g_drain_check);
    uv_timer_t trim_timer;
    uv_timer_init(loop, &trim_timer);
    uv_timer_start(&trim_timer, on_trim_timer, TRIM_INTERVAL_MS, TRIM_INTERVAL_MS);

    if ((r = net_start(&net)) != 0) {
        log_error("start-up failed: %s", uv_strerror(r));
        return 1;
    }
    if ((r = cluster_start()) != 0) {
        log_error("cannot start the cluster thread: %s", uv_strerror(r));
        return 1;
    }
    log_info("imgate listening on %s: HTTP %d, WebSocket %d (/acc), %d workers, config %s",
             cfg.bind_address, cfg.http_port, cfg.ws_port, workers,
             cfg.config_path[0] ? cfg.config_path : "(built-in defaults)");

    uv_run(loop, UV_RUN_DEFAULT);

    /* The WebSockets are closed (each logout left cluster presence as usual, so that until its
     * close a user stayed reachable from other nodes); now the node itself leaves. */
    cluster_leave(LEAVE_TIMEOUT_MS);
    net_drain();
    mailbox_close(&control);
    cluster_stop();
    cluster_free(); /* before net_free: what it still answers goes to the workers' mailboxes */
    net_free();
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&notice_timer, NULL);
    uv_close((uv_handle_t *)&trim_timer, NULL);
    uv_close((uv_handle_t *)&g_drain_check, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    uv_loop_close(loop);
    dedup_free();
    auth_free(auth); /* the workers that read it are gone */
    web_files_free();
    mailbox_free(&control); /* what the workers' last logouts queued, against closed workers */
    notices_free();
    hub_free();
    log_close_access();
    log_info("imgate stopped");
    return 0;
}
