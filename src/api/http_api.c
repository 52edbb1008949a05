#include "api/http_api.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "api/form.h"
#include "api/metrics.h"
#include "api/web_files.h"
#include "cluster/cluster.h"
#include "im/dedup.h"
#include "im/hub.h"
#include "im/protocol.h"
#include "im/registry.h"
#include "im/route.h"
#include "im/send.h"
#include "net/http_resp.h"
#include "net/worker.h"
#include "util/clock.h"
#include "util/prom.h"

static const config_t *g_cfg;
/* SHA-256 of auth.apiKey: a request's key is hashed and compared in constant time, so neither
 * its bytes nor its length show in how long the answer takes. */
static unsigned char g_api_key_hash[SHA256_DIGEST_LENGTH];
static bool g_api_key_set;

/* The original's CORS headers (spec §5), so browser callers keep working. */
#define CORS_HEADERS                                                                               \
    "Access-Control-Allow-Origin: *\r\n"                                                           \
    "Access-Control-Allow-Methods: POST, GET, OPTIONS, PUT, DELETE,UPDATE\r\n"                     \
    "Access-Control-Allow-Headers: Authorization, Content-Length, X-CSRF-Token, Token,session,"    \
    "X_Requested_With,Accept, Origin, Host, Connection, Accept-Encoding, Accept-Language,DNT, "    \
    "X-CustomHeader, Keep-Alive, User-Agent, X-Requested-With, If-Modified-Since, "                \
    "Cache-Control, Content-Type, Pragma\r\n"                                                      \
    "Access-Control-Expose-Headers: Content-Length, Access-Control-Allow-Origin, "                 \
    "Access-Control-Allow-Headers,Cache-Control,Content-Language,Content-Type,Expires,"            \
    "Last-Modified,Pragma,FooBar\r\n"                                                              \
    "Access-Control-Allow-Credentials: true\r\n"

#define JSON_TYPE "application/json; charset=utf-8"

int api_init(const config_t *cfg) {
    g_cfg = cfg;
    g_api_key_set = cfg->auth_api_key[0] != 0;
    if (g_api_key_set)
        SHA256((const unsigned char *)cfg->auth_api_key, strlen(cfg->auth_api_key), g_api_key_hash);
    return 0;
}

/* ---- replies ---- */

static void reply_ok(conn_t *c, const http_req_t *req, const char *data, size_t len) {
    buf_t body = {0};
    buf_append_str(&body, "{\"code\":200,\"msg\":\"Success\",\"data\":");
    buf_append(&body, data, len);
    buf_append_str(&body, "}");
    sbuf_t *resp = body.data ? http_resp_build(200, JSON_TYPE, CORS_HEADERS, body.data, body.len,
                                               req->keep_alive)
                             : NULL;
    buf_free(&body);
    conn_http_reply(c, req, 200, resp);
}

static void reply_error(conn_t *c, const http_req_t *req, int status, const char *msg,
                        const char *extra) {
    char headers[1024];
    snprintf(headers, sizeof headers, "%s%s", CORS_HEADERS, extra ? extra : "");
    conn_http_reply(c, req, status, http_resp_error(status, msg, headers, req->keep_alive));
}

/* ---- parameters ---- */

typedef struct {
    const char *src; /* the form: the body for POST, the query for GET */
    size_t len;
} params_t;

/* Reads field `key` into out. Returns FORM_FOUND, FORM_ABSENT or FORM_BAD. */
static int param(const params_t *p, const char *key, buf_t *out) {
    return form_get(p->src, p->len, key, out);
}

/* appID as the original parses it: a signed 32-bit decimal; absent = 0. Returns 0, or -1 if it
 * is not such a number. */
static int param_app_id(const params_t *p, uint32_t *app_id) {
    buf_t v = {0};
    int r = param(p, "appID", &v);
    if (r == FORM_ABSENT) {
        *app_id = 0;
        buf_free(&v);
        return 0;
    }
    /* Digits only, up to 2^32-1: no sign, no spaces, no NUL (a decoded %00 would end strtoll's
     * reading early and let "101%00junk" land in room 101). */
    int rc = r == FORM_FOUND && v.len > 0 && v.len <= 10 ? 0 : -1;
    uint64_t n = 0;
    for (size_t i = 0; rc == 0 && i < v.len; i++) {
        if (v.data[i] < '0' || v.data[i] > '9')
            rc = -1;
        else
            n = n * 10 + (uint64_t)(v.data[i] - '0');
    }
    if (rc == 0 && n > UINT32_MAX)
        rc = -1;
    if (rc == 0)
        *app_id = (uint32_t)n;
    buf_free(&v);
    return rc;
}

static params_t query_params(const http_req_t *req) {
    return (params_t){http_span_ptr(req, req->query), req->query.len};
}

/* A POST's form. Returns 0, or the HTTP status for a body we don't read (415). */
static int body_params(const http_req_t *req, params_t *p) {
    size_t tl;
    const char *type = http_req_header(req, "Content-Type", &tl);
    static const char form[] = "application/x-www-form-urlencoded";
    if (type && !(tl >= sizeof form - 1 && strncasecmp(type, form, sizeof form - 1) == 0))
        return 415;
    *p = (params_t){http_span_ptr(req, req->body), req->body.len};
    return 0;
}

/* ---- routes ---- */

/* Answers a route request on the connection that asked, if it still waits. */
static void reply_route(conn_t *c, const http_req_t *req, route_req_t *r) {
    if (r->result == ROUTE_UNAVAILABLE) {
        reply_error(c, req, 503, "the cluster is unavailable (Redis unreachable): try again", NULL);
        return;
    }
    if (r->result == ROUTE_NOMEM) {
        reply_error(c, req, 503, "overloaded or out of memory: try again", NULL);
        return;
    }
    buf_t data = {0};
    switch (r->kind) {
    case ROUTE_LIST:
        buf_printf(&data, "{\"userCount\":%zu,\"userList\":", r->count);
        if (r->count)
            buf_append(&data, r->list.data, r->list.len);
        else
            buf_append_str(&data, "[]");
        buf_append_str(&data, "}");
        break;
    case ROUTE_ONLINE:
        buf_printf(&data,
                   "{\"online\":%s,\"userID\":", r->result == ROUTE_DELIVERED ? "true" : "false");
        im_json_escape(&data, r->user, r->user_len);
        buf_append_str(&data, "}");
        break;
    default:
        buf_append_str(&data, send_result_json(r->result));
        break;
    }
    if (data.data)
        reply_ok(c, req, (const char *)data.data, data.len);
    else
        reply_error(c, req, 503, "out of memory", NULL);
    buf_free(&data);
}

/* route_done_fn of every API request. */
static void route_done(route_req_t *r, worker_t *w) {
    conn_t *c = w ? worker_conn(w, r->conn) : NULL;
    if (c && conn_is_deferred(c)) {
        reply_route(c, conn_http_request(c), r);
        conn_resume(c);
    }
    route_req_free(r);
}

/* Hands r to the route; the answer comes through route_done, at once or later. */
static void submit(conn_t *c, const http_req_t *req, route_req_t *r) {
    if (!r) {
        reply_error(c, req, 503, "out of memory", NULL);
        return;
    }
    conn_defer(c);
    route_submit(r);
}

static void get_user_list(conn_t *c, const http_req_t *req) {
    params_t p = query_params(req);
    uint32_t app_id;
    if (param_app_id(&p, &app_id) != 0) {
        reply_error(c, req, 400, "appID must be a whole number", NULL);
        return;
    }
    if (app_id == 0) {
        /* The original's answer for no room (spec §5). */
        const char empty[] = "{\"userCount\":0,\"userList\":[]}";
        reply_ok(c, req, empty, sizeof empty - 1);
        return;
    }
    submit(c, req,
           route_req_new(ROUTE_LIST, c, route_done, app_id, im_str(""), im_str(""), im_str("")));
}

static void get_user_online(conn_t *c, const http_req_t *req) {
    params_t p = query_params(req);
    uint32_t app_id;
    buf_t user = {0};
    if (param_app_id(&p, &app_id) != 0) {
        reply_error(c, req, 400, "appID must be a whole number", NULL);
    } else if (param(&p, "userID", &user) != FORM_FOUND || user.len == 0) {
        reply_error(c, req, 400, "userID is required", NULL);
    } else if (user.len > IM_USER_ID_MAX) {
        reply_error(c, req, 400, "userID is longer than 19 bytes", NULL);
    } else {
        im_str_t u = {(const char *)user.data, user.len};
        submit(c, req,
               route_req_new(ROUTE_ONLINE, c, route_done, app_id, u, im_str(""), im_str("")));
    }
    buf_free(&user);
}

/* The fields both send routes take, checked. */
typedef struct {
    uint32_t app_id;
    buf_t user, message, msg_id, from;
} send_params_t;

static void send_params_free(send_params_t *s) {
    buf_free(&s->user);
    buf_free(&s->message);
    buf_free(&s->msg_id);
    buf_free(&s->from);
}

/* Reads and checks the form of a send route. Returns NULL, or the error text for a 400
 * (*status gets 415 for a body that is not a form). */
static const char *read_send_params(const http_req_t *req, send_params_t *s, bool user_required,
                                    int *status) {
    params_t p;
    *status = body_params(req, &p);
    if (*status)
        return "the body must be application/x-www-form-urlencoded";
    *status = 400;
    if (param_app_id(&p, &s->app_id) != 0)
        return "appID must be a whole number";
    if (!config_app_allowed(g_cfg, s->app_id))
        return "appID is not one of the configured rooms (app.appIds)";
    int r = param(&p, "userID", &s->user);
    if (r == FORM_BAD)
        return "userID is not correctly form-encoded";
    if (user_required && (r != FORM_FOUND || s->user.len == 0))
        return "userID is required";
    if (s->user.len > IM_USER_ID_MAX)
        return "userID is longer than 19 bytes";
    if (param(&p, "message", &s->message) != FORM_FOUND)
        return "message is required";
    if (s->message.len > g_cfg->max_message_size ||
        im_json_escaped_size((const char *)s->message.data, s->message.len) >
            g_cfg->max_message_size)
        return "message is longer than app.maxMessageSize (JSON-escaped, as pushed)";
    if (param(&p, "msgID", &s->msg_id) == FORM_BAD || s->msg_id.len > DEDUP_ID_MAX)
        return "msgID must be at most 128 bytes";
    if (param(&p, "from", &s->from) == FORM_BAD || s->from.len > IM_USER_ID_MAX)
        return "from must be at most 19 bytes";
    *status = 0;
    return NULL;
}

static im_str_t buf_str(const buf_t *b) {
    return (im_str_t){b->data ? (const char *)b->data : "", b->len};
}

static void post_send_message(conn_t *c, const http_req_t *req) {
    send_params_t s = {0};
    int status;
    const char *err = read_send_params(req, &s, true, &status);
    if (err) {
        reply_error(c, req, status, err, NULL);
    } else {
        /* `from` defaults to the target itself, as the original sends. */
        im_str_t from = s.from.len ? buf_str(&s.from) : buf_str(&s.user);
        submit(c, req,
               send_user_request(c, route_done, s.app_id, buf_str(&s.user), buf_str(&s.message),
                                 buf_str(&s.msg_id), from));
    }
    send_params_free(&s);
}

static void post_send_message_all(conn_t *c, const http_req_t *req) {
    send_params_t s = {0};
    int status;
    const char *err = read_send_params(req, &s, false, &status);
    if (err)
        reply_error(c, req, status, err, NULL);
    else
        submit(c, req,
               send_room_request(c, route_done, s.app_id, buf_str(&s.message), buf_str(&s.msg_id),
                                 buf_str(&s.user)));
    send_params_free(&s);
}

static void append_counters(buf_t *b) {
    buf_append_str(b, "\"counters\":{");
    int first = 1;
#define X(name)                                                                                    \
    do {                                                                                           \
        uint64_t sum = 0;                                                                          \
        for (int i = 0; i < net_worker_count(); i++)                                               \
            sum += STAT_GET(&net_worker(i)->stats, name);                                          \
        buf_printf(b, "%s\"" #name "\":%llu", first ? "" : ",", (unsigned long long)sum);          \
        first = 0;                                                                                 \
    } while (0);
    NET_COUNTERS(X)
#undef X
    buf_append_str(b, "}");
}

/* The /system/state data: the seed's managerInfo, then ours. peers: the open WebSockets' peer
 * addresses (isDebug=true), gathered on their workers; NULL = not asked for. */
static void state_json(buf_t *data, const buf_t *peers) {
    uint64_t ws_total = 0;
    buf_t workers = {0};
    buf_append_str(&workers, "[");
    for (int i = 0; i < net_worker_count(); i++) {
        worker_t *w = net_worker(i);
        uint32_t ws = worker_ws_count(w);
        ws_total += ws;
        mailbox_stats_t mb;
        worker_mailbox_stats(w, &mb);
        buf_printf(&workers,
                   "%s{\"id\":%d,\"connections\":%u,\"webSockets\":%u,\"loggedIn\":%u,"
                   "\"mailbox\":{\"posted\":%llu,\"dropped\":%llu,\"depth\":%u,"
                   "\"highWater\":%u},\"slabs\":{",
                   i ? "," : "", i, worker_conn_count(w), ws, hub_worker_logged_in(w),
                   (unsigned long long)mb.posted, (unsigned long long)mb.dropped, mb.depth,
                   mb.high_water);
        slab_stats_t sl[2];
        worker_slab_stats(w, &sl[0], &sl[1]);
        for (int k = 0; k < 2; k++)
            buf_printf(&workers,
                       "%s\"%s\":{\"live\":%llu,\"objects\":%llu,\"chunks\":%llu,"
                       "\"spare\":%llu,\"bytes\":%llu,\"released\":%llu}",
                       k ? "," : "", k ? "writeQueue" : "conns", (unsigned long long)sl[k].live,
                       (unsigned long long)sl[k].objects, (unsigned long long)sl[k].chunks,
                       (unsigned long long)sl[k].spare, (unsigned long long)sl[k].bytes,
                       (unsigned long long)sl[k].released);
        buf_append_str(&workers, "}}");
    }
    buf_append_str(&workers, "]");
    buf_printf(data,
               "{\"managerInfo\":{\"chanBroadcastLen\":0,\"chanLoginLen\":0,"
               "\"chanRegisterLen\":0,\"chanUnregisterLen\":0,\"clientsLen\":%llu,"
               "\"usersLen\":%zu",
               (unsigned long long)ws_total, registry_user_count());
    if (peers) {
        buf_append_str(data, ",\"clients\":[");
        buf_append(data, peers->data, peers->len);
        buf_append_str(data, "],\"users\":");
        registry_list_user_keys(data);
    }
    buf_printf(data,
               "},\"numCPU\":%d,\"numGoroutine\":%d,\"workers\":", (int)uv_available_parallelism(),
               net_worker_count() + 1);
    buf_append(data, workers.data, workers.len);
    buf_printf(data, ",\"dedupEntries\":%zu,\"presenceEventsDropped\":%llu,", dedup_size(),
               (unsigned long long)registry_events_dropped());
    append_counters(data);
    buf_append_str(data, ",\"cluster\":");
    cluster_state_json(data);
    buf_append_str(data, "}");
    buf_free(&workers);
}

static void reply_state(conn_t *c, const http_req_t *req, const buf_t *peers) {
    buf_t data = {0};
    state_json(&data, peers);
    reply_ok(c, req, (const char *)data.data, data.len);
    buf_free(&data);
}

/* isDebug=true lists the peers of every open WebSocket. Only a connection's own worker may look
 * at it, so each worker lists its own and the last one hands the list back to the worker that
 * answers (the request is deferred meanwhile). */
typedef struct {
    conn_ref_t origin;
    pthread_mutex_t lock;
    int pending; /* workers still to list theirs */
    size_t count;
    buf_t peers;
} peers_job_t;

static void peers_job_free(peers_job_t *j) {
    pthread_mutex_destroy(&j->lock);
    buf_free(&j->peers);
    free(j);
}

static void peers_done(void *ctx, void *arg) {
    peers_job_t *j = arg;
    conn_t *c = worker_conn(ctx, j->origin);
    if (c && conn_is_deferred(c)) {
        reply_state(c, conn_http_request(c), &j->peers);
        conn_resume(c);
    }
    peers_job_free(j);
}

/* One worker's share is in (n peers in mine, or none if it could not be asked). */
static void peers_add(peers_job_t *j, const buf_t *mine, size_t n) {
    pthread_mutex_lock(&j->lock);
    if (n) {
        if (j->count)
            buf_append_str(&j->peers, ",");
        buf_append(&j->peers, mine->data, mine->len);
        j->count += n;
    }
    bool last = --j->pending == 0;
    pthread_mutex_unlock(&j->lock);
    if (last && worker_post_reply(net_worker((int)conn_ref_worker(j->origin)), peers_done, j) != 0)
        peers_job_free(j); /* the answering worker has stopped: nobody waits any more */
}

static void peers_task(void *ctx, void *arg) {
    buf_t mine = {0};
    size_t n = worker_list_peers(ctx, &mine);
    peers_add(arg, &mine, n);
    buf_free(&mine);
}

static void get_system_state(conn_t *c, const http_req_t *req) {
    params_t p = query_params(req);
    buf_t debug = {0};
    bool is_debug = param(&p, "isDebug", &debug) == FORM_FOUND && debug.len == 4 &&
                    memcmp(debug.data, "true", 4) == 0;
    buf_free(&debug);
    if (!is_debug) {
        reply_state(c, req, NULL);
        return;
    }
    peers_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        reply_error(c, req, 503, "out of memory", NULL);
        return;
    }
    pthread_mutex_init(&j->lock, NULL);
    j->origin = conn_ref(c);
    j->pending = net_worker_count();
    conn_defer(c);
    for (int i = 0; i < net_worker_count(); i++)
        if (worker_post_reply(net_worker(i), peers_task, j) != 0)
            peers_add(j, NULL, 0);
}

/* A worker whose once-a-second tick is this late is stuck (a tick runs every second; a long
 * malloc_trim or a burst can delay one by a fraction of that, not by seconds). */
#define HEALTH_STALL_S 5

/* Liveness: this worker answers, so it turns; the others must have ticked lately. */
static void get_health(conn_t *c, const http_req_t *req) {
    /* While draining, a worker whose clients are gone has ended its loop: not a stall. */
    for (int i = 0; i < net_worker_count() && !net_draining(); i++) {
        uint32_t age = worker_tick_age(net_worker(i));
        if (age >= HEALTH_STALL_S) {
            char msg[64];
            snprintf(msg, sizeof msg, "worker %d stalled for %u s", i, age);
            reply_error(c, req, 503, msg, NULL);
            return;
        }
    }
    static const char data[] = "{\"status\":\"ok\"}";
    reply_ok(c, req, data, sizeof data - 1);
}

/* Readiness: accepting, not draining, and Redis reachable when clustered. */
static void get_ready(conn_t *c, const http_req_t *req) {
    if (net_draining()) {
        reply_error(c, req, 503, "draining", "Retry-After: 5\r\n");
        return;
    }
    if (!cluster_reachable()) {
        reply_error(c, req, 503, "redis unreachable", "Retry-After: 1\r\n");
        return;
    }
    static const char data[] = "{\"status\":\"ready\"}";
    reply_ok(c, req, data, sizeof data - 1);
}

static void get_metrics(conn_t *c, const http_req_t *req) {
    buf_t body = {0};
    metrics_render(&body);
    sbuf_t *resp = body.data ? http_resp_build(200, PROM_CONTENT_TYPE, NULL, body.data, body.len,
                                               req->keep_alive)
                             : NULL;
    buf_free(&body);
    conn_http_reply(c, req, 200, resp);
}

/* With auth.apiKey set: "Authorization: Bearer <key>" (the scheme case-insensitive, RFC 9110
 * 11.1), the key compared in constant time. */
static bool authorized(const http_req_t *req) {
    if (!g_api_key_set)
        return true;
    size_t len;
    const char *v = http_req_header(req, "Authorization", &len);
    if (!v || len < 7 || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    size_t at = 7;
    while (at < len && v[at] == ' ')
        at++; /* 1*SP between scheme and credentials */
    unsigned char got[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)v + at, len - at, got);
    return CRYPTO_memcmp(got, g_api_key_hash, sizeof got) == 0;
}

typedef void (*route_fn)(conn_t *c, const http_req_t *req);

/* needs_key: what pushes or shows the node's internals; the chat page's reads stay open. */
static const struct {
    const char *path;
    uint8_t method;
    bool needs_key;
    route_fn fn;
} routes[] = {
    {"/user/list", HTTP_GET, false, get_user_list},
    {"/user/online", HTTP_GET, false, get_user_online},
    {"/user/sendMessage", HTTP_POST, true, post_send_message},
    {"/user/sendMessageAll", HTTP_POST, true, post_send_message_all},
    {"/system/state", HTTP_GET, true, get_system_state},
    {"/metrics", HTTP_GET, true, get_metrics},
    {"/health", HTTP_GET, false, get_health},
    {"/ready", HTTP_GET, false, get_ready},
};

void api_handle(conn_t *c, const http_req_t *req) {
    if (web_files_handle(c, req))
        return;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!http_span_eq(req, req->path, routes[i].path))
            continue;
        if (req->method == routes[i].method) {
            if (routes[i].needs_key && !authorized(req)) {
                STAT_INC(&conn_worker(c)->stats, apiAuthFailures);
                reply_error(c, req, 401, "missing or wrong API key (Authorization: Bearer)",
                            "WWW-Authenticate: Bearer realm=\"imgate\"\r\n");
                return;
            }
            routes[i].fn(c, req);
            return;
        }
        char allow[64];
        snprintf(allow, sizeof allow, "Allow: %s, OPTIONS\r\n", http_method_name(routes[i].method));
        if (req->method == HTTP_OPTIONS) {
            /* CORS preflight: the original has none, browsers need it for form POSTs. */
            char headers[1024];
            snprintf(headers, sizeof headers, "%s%s", CORS_HEADERS, allow);
            conn_http_reply(c, req, 204,
                            http_resp_build(204, NULL, headers, NULL, 0, req->keep_alive));
            return;
        }
        reply_error(c, req, 405, "method not allowed", allow);
        return;
    }
    reply_error(c, req, 404, "not found", NULL);
}
