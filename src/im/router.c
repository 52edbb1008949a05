#include "im/router.h"

#include <stdlib.h>
#include <string.h>

#include "im/dedup.h"
#include "im/hub.h"
#include "im/protocol.h"
#include "im/send.h"
#include "im/session.h"
#include "net/worker.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/rate.h"

static const config_t *g_cfg;
static const auth_t *g_auth; /* read-only once the workers run */

int router_init(const config_t *cfg, const auth_t *auth) {
    g_cfg = cfg;
    g_auth = auth;
    return 0;
}

/* A handler returns the response code and may point *data at raw JSON for the reply. */
typedef int (*cmd_handler_t)(conn_t *c, const im_request_t *req, const char **data);

static int cmd_ping(conn_t *c, const im_request_t *req, const char **data) {
    *data = "\"pong\"";
    return IM_OK;
}

/* Commands whose answer comes from the route (im/route.h), at once or later: the connection
 * waits for it (conn_defer), so replies keep the order of the requests. */
#define ANSWERED_LATER 0 /* a handler's "no reply now" */

/* What a later reply needs of the request: its seq and cmd. */
typedef struct {
    size_t seq_len, cmd_len;
    char text[]; /* seq then cmd */
} pending_t;

static void reply(conn_t *c, im_str_t seq, im_str_t cmd, int code, const char *data);

static void later_done(route_req_t *r, worker_t *w) {
    pending_t *p = r->ctx;
    conn_t *c = w ? worker_conn(w, r->conn) : NULL;
    if (c && conn_is_deferred(c)) {
        int code = IM_OK;
        const char *data = NULL;
        if (r->kind != ROUTE_ANNOUNCE) {
            data = send_result_json(r->result);
            code = data ? IM_OK : IM_SYSTEM_ERROR;
        }
        reply(c, (im_str_t){p->text, p->seq_len}, (im_str_t){p->text + p->seq_len, p->cmd_len},
              code, data);
        conn_resume(c);
    }
    route_req_free(r); /* and p, its ctx */
}

/* Submits r and answers the command from its done. Out of memory: `oom_code` at once. */
static int answer_later(conn_t *c, const im_request_t *req, route_req_t *r, int oom_code) {
    pending_t *p = r ? malloc(sizeof *p + req->seq.len + req->cmd.len) : NULL;
    if (!p) {
        route_req_free(r);
        return oom_code;
    }
    p->seq_len = req->seq.len;
    p->cmd_len = req->cmd.len;
    memcpy(p->text, req->seq.p, req->seq.len);
    memcpy(p->text + req->seq.len, req->cmd.p, req->cmd.len);
    r->ctx = p;
    conn_defer(c);
    route_submit(r);
    return ANSWERED_LATER;
}

/* Ten refusals in a row: a client that does not slow down when told to is closed (1008). */
#define RATE_STRIKES_MAX 10

/* Takes a token of one of c's buckets; a refusal is a strike, and the last one closes c. The
 * strikes start again only once a message passes every bucket (router_on_message). */
static bool rate_allows(conn_t *c, uint32_t *tat, uint32_t rate, uint32_t burst) {
    session_t *s = session_of(c);
    if (rate_take_ms(tat, (uint32_t)uv_now(&conn_worker(c)->loop), rate, burst))
        return true;
    if (++s->_strikes >= RATE_STRIKES_MAX) {
        STAT_INC(&conn_worker(c)->stats, rateLimitCloses);
        conn_close(c, WS_CLOSE_POLICY, "rate limit");
    }
    return false;
}

/* The original's checks, in its order: types, userID, appID, already logged in; then, with a
 * key configured, the serviceToken (last: it is the only costly one). A refused token changes
 * nothing: no login, no presence. The reply comes once the user can be reached from every node
 * (at once on a single node), so that a client told "logged in" is never "offline" to a send
 * from elsewhere. */
static int cmd_login(conn_t *c, const im_request_t *req, const char **data) {
    im_login_t login;
    if (im_login_decode(req->data, &login) != 0)
        return IM_BAD_PARAM;
    if (login.user_id.len == 0 || login.user_id.len > IM_USER_ID_MAX)
        return IM_BAD_USER_ID;
    if (!config_app_allowed(g_cfg, login.app_id))
        return IM_UNAUTHORIZED;
    if (session_of(c)->user)
        return IM_OP_FAILED;
    if (auth_enabled(g_auth)) {
        /* Token checks cost (an RSA verify is tens of µs): they have a bucket of their own. */
        if (!rate_allows(c, &session_of(c)->_login_tat, g_cfg->login_rate, g_cfg->login_burst)) {
            STAT_INC(&conn_worker(c)->stats, loginRateHits);
            return IM_TOO_MANY;
        }
        int rc = auth_check(g_auth, login.service_token.p, login.service_token.len, login.user_id.p,
                            login.user_id.len, login.app_id, (int64_t)clock_unix_s());
        if (rc == AUTH_ERR_NOMEM)
            return IM_SYSTEM_ERROR;
        if (rc != AUTH_OK) {
            STAT_INC(&conn_worker(c)->stats, authFailures);
            log_debug("login to app %u refused: %s", login.app_id, auth_strerror(rc));
            return IM_UNAUTHORIZED;
        }
    }
    if (hub_login(c, login.app_id, login.user_id.p, login.user_id.len) != 0)
        return IM_SYSTEM_ERROR;
    conn_set_timeout(c, g_cfg->heartbeat_timeout);
    return answer_later(c, req,
                        route_req_new(ROUTE_ANNOUNCE, c, later_done, login.app_id, login.user_id,
                                      im_str(""), im_str("")),
                        IM_OK /* logged in all the same */);
}

static int cmd_heartbeat(conn_t *c, const im_request_t *req, const char **data) {
    if (im_heartbeat_decode(req->data) != 0)
        return IM_BAD_PARAM;
    if (!session_of(c)->user)
        return IM_NOT_LOGGED_IN;
    conn_set_timeout(c, g_cfg->heartbeat_timeout);
    return IM_OK;
}

/* Checks the common fields; returns 0 or the response code. */
static int check_send(conn_t *c, const im_request_t *req, im_send_t *m) {
    if (im_send_decode(req->data, m) != 0)
        return IM_BAD_PARAM;
    if (!session_of(c)->user)
        return IM_NOT_LOGGED_IN;
    if (!m->has_message || m->message.len > g_cfg->max_message_size || m->msg_id.len > DEDUP_ID_MAX)
        return IM_BAD_PARAM;
    /* As pushed: escaping must not make each receiver's frame larger than the limit. */
    if (im_json_escaped_size(m->message.p, m->message.len) > g_cfg->max_message_size)
        return IM_BAD_PARAM;
    return 0;
}

static int cmd_send_message(conn_t *c, const im_request_t *req, const char **data) {
    im_send_t m;
    int code = check_send(c, req, &m);
    if (code)
        return code;
    if (m.user_id.len == 0 || m.user_id.len > IM_USER_ID_MAX)
        return IM_BAD_USER_ID;
    session_t *s = session_of(c);
    im_str_t from;
    from.p = hub_session_user(s, &from.len);
    return answer_later(
        c, req,
        send_user_request(c, later_done, hub_session_app(s), m.user_id, m.message, m.msg_id, from),
        IM_SYSTEM_ERROR);
}

static int cmd_send_message_all(conn_t *c, const im_request_t *req, const char **data) {
    im_send_t m;
    int code = check_send(c, req, &m);
    if (code)
        return code;
    session_t *s = session_of(c);
    im_str_t from;
    from.p = hub_session_user(s, &from.len);
    return answer_later(
        c, req, send_room_request(c, later_done, hub_session_app(s), m.message, m.msg_id, from),
        IM_SYSTEM_ERROR);
}

static const struct {
    const char *name;
    cmd_handler_t fn;
} commands[] = {
    {"login", cmd_login},
    {"heartbeat", cmd_heartbeat},
    {"ping", cmd_ping},
    {"sendMessage", cmd_send_message},
    {"sendMessageAll", cmd_send_message_all},
};

static cmd_handler_t find_command(im_str_t cmd) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strlen(commands[i].name) == cmd.len && memcmp(commands[i].name, cmd.p, cmd.len) == 0)
            return commands[i].fn;
    return NULL;
}

static void reply(conn_t *c, im_str_t seq, im_str_t cmd, int code, const char *data) {
    sbuf_t *f = im_frame_response(seq, cmd, code, data);
    if (!f) {
        conn_close(c, 1011, "out of memory");
        return;
    }
    conn_send(c, f);
    sbuf_unref(f);
}

void router_on_open(conn_t *c, const http_req_t *req) {
    memset(session_of(c), 0, sizeof(session_t));
    /* A connection that does not log in holds a slot for nothing: it gets loginTimeout (the
     * original left it for the heartbeat timeout, which is longer by default). */
    uint32_t t = g_cfg->login_timeout;
    conn_set_timeout(c, t < g_cfg->heartbeat_timeout ? t : g_cfg->heartbeat_timeout);
}

bool router_on_timeout(conn_t *c) {
    if (session_of(c)->user)
        return false; /* logged in: the heartbeat timeout */
    STAT_INC(&conn_worker(c)->stats, loginTimeouts);
    conn_close(c, WS_CLOSE_POLICY, "login timeout");
    return true;
}

void router_on_message(conn_t *c, uint8_t *data, size_t len, bool binary) {
    /* Every message counts, whatever it is (heartbeats too, and what does not parse). */
    bool allowed =
        rate_allows(c, &session_of(c)->_msg_tat, g_cfg->message_rate, g_cfg->message_burst);
    if (!allowed)
        STAT_INC(&conn_worker(c)->stats, messageRateHits);
    im_request_t req;
    if (im_request_parse(&req, data, len) != IM_PARSE_OK) {
        /* The original answers bare text here; an envelope is what clients can parse. */
        STAT_INC(&conn_worker(c)->stats, badRequests);
        if (allowed)
            session_of(c)->_strikes = 0;
        reply(c, im_str(""), im_str(""), allowed ? IM_BAD_PARAM : IM_TOO_MANY, NULL);
        return;
    }
    const char *out = NULL;
    int code;
    if (!allowed) {
        code = IM_TOO_MANY;
    } else {
        cmd_handler_t fn = find_command(req.cmd);
        code = fn ? fn(c, &req, &out) : IM_NO_ROUTE;
        if (code != IM_TOO_MANY)
            session_of(c)->_strikes = 0;
    }
    if (code != ANSWERED_LATER)
        reply(c, req.seq, req.cmd, code, out);
    im_request_free(&req);
}

void router_on_close(conn_t *c) {
    hub_logout(c);
}
