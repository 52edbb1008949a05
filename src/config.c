#include "config.h"

#include "util/log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#define CONFIG_DEFAULT_FILE "config/app.yaml"
#define CONFIG_ENV_PREFIX   "IMGATE_"
#define CONFIG_KEY_MAX      64   /* longest dotted key we accept from a flag or a YAML path */
#define CONFIG_YAML_DEPTH   16   /* nesting we follow in the file; app.yaml needs 2 */
#define CONFIG_YAML_NODES   1000 /* nodes we visit at most: bounds alias loops and alias bombs */

typedef enum { KEY_STR, KEY_INT, KEY_U32, KEY_BOOL, KEY_APP_IDS } key_type_t;

/* One configuration key: where its value lives in config_t, how its string form is checked and
 * converted, its default (in string form, so that defaults take the same path as every other
 * source) and the one-line meaning printed by --help. */
typedef struct {
    const char *name; /* dotted path, spelled as in the seed's app.yaml */
    key_type_t type;
    size_t offset;
    size_t size;                             /* KEY_STR: size of the char array, NUL included */
    int64_t min, max;                        /* KEY_INT, KEY_U32: inclusive range */
    const char *(*check)(const char *value); /* KEY_STR: NULL or the reason `value` is bad */
    const char *def;
    const char *meaning;
} config_key_t;

#define FIELD(f) (((config_t *)0)->f)
/* _Generic picks the type from the field itself, so a row can't disagree with config.h. */
/* clang-format off */
#define NUM_TYPE(f) _Generic(FIELD(f), int: KEY_INT, uint32_t: KEY_U32)
/* clang-format on */
#define NUM(key, f, lo, hi, def, meaning)                                                          \
    { key, NUM_TYPE(f), offsetof(config_t, f), sizeof FIELD(f), lo, hi, NULL, def, meaning }
#define STR(key, f, check, def, meaning)                                                           \
    { key, KEY_STR, offsetof(config_t, f), sizeof FIELD(f), 0, 0, check, def, meaning }

#define BOOL(key, f, def, meaning)                                                                 \
    { key, KEY_BOOL, offsetof(config_t, f), sizeof FIELD(f), 0, 1, NULL, def, meaning }

#define MIB (1024 * 1024)

static const char *check_log_level(const char *v);
static const char *check_ip_literal(const char *v);
static const char *check_host_port(const char *v);
static const char *check_node_id(const char *v);
static const char *check_subprotocols(const char *v);
static const char *check_origins(const char *v);
static const char *check_api_key(const char *v);

/* The one table of keys and defaults. Each comment says why the default is what it is. */
static const config_key_t keys[] = {
    /* The seed writes log/gin.log; ours is an access log, not gin's, hence the name. */
    STR("app.logFile", log_file, NULL, "log/access.log",
        "HTTP access log, one line per request; \"\" = none"),
    /* info: start-up, shutdown and errors, but not one line per message as the seed prints. */
    STR("app.logLevel", log_level, check_log_level, "info",
        "stderr log level: debug, info, warn, error or off"),
    /* 8080 and 8089: the seed's ports, so its clients and callers work unchanged. */
    NUM("app.httpPort", http_port, 1, 65535, "8080", "HTTP API port (also upgrades /acc)"),
    NUM("app.webSocketPort", ws_port, 1, 65535, "8089", "WebSocket port (path /acc)"),
    /* 9001: the seed's gRPC port; kept as the port part of the node's identity in Redis. */
    NUM("app.rpcPort", rpc_port, 1, 65535, "9001",
        "port part of this node's identity in the cluster (nothing listens on it)"),
    /* "": the chat page derives both URLs from its own origin, so it works behind any host name,
     * where the seed's fixed 127.0.0.1 worked only on the machine itself. */
    STR("app.httpUrl", http_url, NULL, "", "host:port the chat page calls; \"\" = its own origin"),
    STR("app.webSocketUrl", ws_url, NULL, "",
        "host:port the chat page connects to (ws://…/acc); \"\" = derived from its origin"),
    /* The web/ folder of the source tree the binary was built from, so `make run` serves the
     * chat page with no set-up; an installed node points it elsewhere. */
    STR("app.webDir", web_dir, NULL, IMGATE_WEB_DIR,
        "folder of the chat page's files (index.html, app.js, style.css)"),
    /* All interfaces, as the seed (Go's ":8080"). */
    STR("app.bindAddress", bind_address, check_ip_literal, "0.0.0.0",
        "IPv4 or IPv6 address to listen on"),
    /* 0 = one worker per CPU; 256 is far past the core counts where one loop per core pays. */
    NUM("app.workers", workers, 0, 256, "0", "worker threads (event loops); 0 = number of CPUs"),
    /* 1: this process is the node, as before. More: a supervisor runs that many nodes on the
     * same ports (src/supervisor.c), for machines where one process can't hold all sockets (the
     * fd limit here is 20 000 per process: a million connections need ~53). 1024 at most: a
     * million connections fit under even the common 1024-fd default with ~1000 processes; more
     * is a typo, and each process costs threads, a few MB and two Redis connections. */
    NUM("app.processes", processes, 1, 1024, "1",
        "node processes on this machine, all on the same ports (SO_REUSEPORT) and one Redis; "
        "> 1 needs redis.addr, and their cluster.nodeId is <nodeId>-<i>"),
    /* The seed's rooms 101, 102, 103, 104. */
    {"app.appIds", KEY_APP_IDS, offsetof(config_t, app_ids), sizeof FIELD(app_ids), 1, UINT32_MAX,
     NULL, "101,102,103,104",
     "the appIDs (rooms) clients may log in to: a YAML list or \"101,102\""},
    /* 6 minutes: the seed's heartbeat timeout; browsers send one every 30 s. A day at most: the
     * sweeper is meant for idle links, not for keeping dead ones. */
    NUM("app.heartbeatTimeout", heartbeat_timeout, 1, 86400, "360",
        "seconds without a heartbeat before a logged-in connection is closed (1001)"),
    /* 30 s: a client logs in right after its upgrade; one that does not only holds a slot (the
     * original left it for the 360-s heartbeat timeout). */
    NUM("app.loginTimeout", login_timeout, 1, 86400, "30",
        "seconds a WebSocket has to log in (at most app.heartbeatTimeout) before close 1008"),
    /* 10 s: a real client sends its upgrade request in one round trip; slowloris clients don't. */
    NUM("app.handshakeTimeout", handshake_timeout, 1, 3600, "10",
        "seconds a new connection has to complete its HTTP request"),
    /* 10 s: at SIGTERM a node holding 19 000 clients sends them elsewhere at ~2 000 a second,
     * which the other nodes take without a spike (a login storm runs at ~28 000/s on 2 cores),
     * and it is well inside the 30 s a Kubernetes pod gets before SIGKILL. */
    NUM("app.drainSeconds", drain_seconds, 0, 3600, "10",
        "seconds over which SIGTERM closes the WebSockets (1001) in batches; 0 = all at once"),
    /* 5 s: a live peer answers a close frame within a round trip; a dead one never does. */
    NUM("app.closeTimeout", close_timeout, 1, 3600, "5",
        "seconds to wait for the peer's close frame before dropping TCP"),
    /* 64 KiB: chat messages are short; the seed had no limit. 16 MiB caps what one client can
     * make us buffer. */
    NUM("app.maxMessageSize", max_message_size, 1, 16 * MIB, "65536",
        "largest WebSocket message (all fragments) in bytes; larger closes with 1009"),
    /* 1 MiB: ~16 full-size messages of backlog; past it a client is a slow consumer (1008). */
    NUM("app.maxWriteQueue", max_write_queue, 1, 1024 * MIB, "1048576",
        "unsent bytes queued per connection before it is closed as a slow consumer"),
    /* On: goWebSocket's enter/exit notices, which clients of the seed rely on. */
    BOOL("app.roomNotices", room_notices, "true",
         "push enter/exit notices to the room when users come and go"),
    /* 500: below it a login costs at most 500 pushes; above it per-user notices make filling a
     * room O(N²) (19 000 logins would cost 180 M pushes), so they are batched. */
    NUM("app.noticeBatchAbove", notice_batch_above, 0, 100000000, "500",
        "rooms with more online users get one batched presence push per interval instead of "
        "enter/exit per user; 0 = always batch"),
    /* 1 s: a person notices a join within a second; a storm costs one push per user per second. */
    NUM("app.noticeBatchInterval", notice_batch_interval, 50, 60000, "1000",
        "milliseconds between batched presence pushes"),
    /* 8 KiB: what common servers allow (nginx's large buffer); a browser's upgrade fits easily.
     * At most 64 KiB: a head is checked byte by byte as it arrives and kept whole. */
    NUM("app.maxHeaderBytes", max_header_bytes, 1, 64 * 1024, "8192",
        "largest HTTP request line + headers in bytes; larger gets 431"),
    /* 128 KiB: a form-encoded sendMessage of a full 64 KiB message, percent-encoded, fits. */
    NUM("app.maxBodyBytes", max_body_bytes, 1, 64 * MIB, "131072",
        "largest HTTP request body in bytes; larger gets 413"),
    /* 1 M: the file-descriptor limit is the real bound; this only stops runaway growth. */
    NUM("app.maxConnections", max_connections, 1, 100000000, "1000000",
        "connections per node; more are refused"),
    /* "": goWebSocket's protocol needs none. A browser fails a handshake whose answer doesn't
     * name one of the subprotocols it offered, so an offer we can't meet gets a clear 400. */
    /* "" (any): goWebSocket accepted every origin and the chat page may be served from
     * anywhere; a node without a list warns at start-up, since any web page a logged-in user
     * visits could then open a WebSocket to it in their name. */
    STR("app.allowedOrigins", allowed_origins, check_origins, "",
        "Origin values a browser's WebSocket upgrade may come from, comma-separated (\"*\" any, "
        "https://*.example.com subdomains); others get 403; \"\" = any (no Origin: allowed)"),
    STR("app.subprotocols", subprotocols, check_subprotocols, "",
        "WebSocket subprotocols accepted, comma-separated (the first the client offers is "
        "echoed); an offer of others gets 400; \"\" = none"),
    /* 30 ms: when pushes to thousands of connections follow each other a few ms apart (the
     * cluster's, each waiting for Redis), each connection's write then carries several of them:
     * on 2 cores a 3-node cluster went from ~0.3 M to ~2 M deliveries/s with 10 000 receivers
     * (bench/RESULTS.md, 10 and 20 ms gave ~0.85 M and ~1.2 M). The price: big pushes reach
     * people up to 30 ms later, far below the ~100 ms a person notices; replies, pings and
     * pushes to fewer connections never wait. */
    NUM("app.writeDelay", write_delay, 0, 1000, "30",
        "milliseconds a push to more than 1024 connections of a worker waits before it is "
        "written, so that the next pushes share its system calls; 0 = write at once"),
    /* 65 536 tasks (1 MiB of queue at most): a worker runs about a million tasks a second, so
     * this is ~60 ms of backlog; a room push costs one task per worker, a direct message one per
     * connection on another worker. Past it a send answers 503 instead of queueing more. */
    NUM("app.mailboxCapacity", mailbox_capacity, 1, 100000000, "65536",
        "tasks waiting at most in each worker's (and the cluster loop's) mailbox"),
    /* 12 h: the seed remembers a msgID in Redis for 12 hours. */
    NUM("app.dedupTtl", dedup_ttl, 1, 30 * 86400, "43200",
        "seconds a msgID is remembered for de-duplication"),
    /* 100 000 msgIDs: ~10 MB at most, far more than 12 h of API pushes of a typical node. */
    NUM("app.dedupCapacity", dedup_capacity, 1, 100000000, "100000",
        "msgIDs remembered at most (the oldest are forgotten first)"),
    /* 0 (off): carrier-grade NAT and offices put thousands of users behind one address, and
     * behind a proxy every client has the proxy's address. For a node facing clients directly. */
    NUM("app.maxConnectionsPerIp", max_connections_per_ip, 0, 100000000, "0",
        "connections per client IP address; more get 429 (0 = no limit)"),
    /* 20 000 upgrades a second, a second's worth at once: above what this node sustains with
     * logins (~28 000/s on 2 cores with Redis), so normal reconnects are never slowed, while a
     * storm from many more clients than that is spread out with 503 + Retry-After instead of
     * starving the connections already there. */
    NUM("app.upgradeRate", upgrade_rate, 0, 10000000, "20000",
        "WebSocket upgrades per second per node (token bucket); more get 503 (0 = no limit)"),
    NUM("app.upgradeBurst", upgrade_burst, 1, 10000000, "20000",
        "upgrades the node takes at once before app.upgradeRate applies"),
    /* 50 a second, 100 at once: a person types a few messages a minute and a page sends a
     * heartbeat every 30 s; a client past this is a script flooding the room. Every command
     * counts (heartbeats too). Excess gets 1011; ten in a row close the connection (1008). */
    NUM("app.messageRate", message_rate, 0, 1000, "50",
        "WebSocket messages per second per connection (token bucket; 0 = no limit)"),
    NUM("app.messageBurst", message_burst, 1, 100000, "100",
        "messages a connection may send at once before app.messageRate applies"),
    /* 1 a second, 5 at once: a client logs in once per connection; a retry after a wrong token
     * is fine, a loop making the node verify signatures is not. Only logins that reach the token
     * check count (with auth.jwtSecret or auth.jwtPublicKey set); the others are cheap and
     * app.messageRate bounds them. */
    NUM("app.loginRate", login_rate, 0, 1000, "1",
        "token checks per second per connection (token bucket; 0 = no limit)"),
    NUM("app.loginBurst", login_burst, 1, 1000, "5", "token checks a connection may make at once"),
    /* "": one node needs nothing else; presence lives in memory. The seed used localhost:6379. */
    STR("redis.addr", redis_addr, check_host_port, "",
        "Redis host:port (or unix:/path) shared by the nodes of a cluster; \"\" = single node"),
    STR("redis.password", redis_password, NULL, "", "Redis password; \"\" = none"),
    /* 0: the seed's DB and Redis' own default. */
    NUM("redis.DB", redis_db, 0, 65535, "0", "Redis database number"),
    /* 30 and 30: the seed's go-redis pool. */
    NUM("redis.poolSize", redis_pool_size, 1, 1024, "30", "Redis connections at most"),
    NUM("redis.minIdleConns", redis_min_idle_conns, 0, 1024, "30",
        "Redis connections kept open while idle"),
    /* "": host, HTTP port and a random suffix, new at every start: a restarted node is a new
     * node, so cleaning up after its old self can never remove its new users. */
    STR("cluster.nodeId", cluster_node_id, check_node_id, "",
        "this node's id in the cluster (unique); \"\" = <host>:<httpPort>-<random>"),
    /* 15 s: a node killed with -9 leaves cluster presence within this (its alive key lives
     * half of it, refreshed every sixth; live nodes look for dead ones every sixth), while a
     * node stalled for a few seconds is not declared dead. The bound is 30 s. */
    NUM("cluster.nodeTimeout", cluster_node_timeout, 1, 3600, "15",
        "seconds after which a node that stopped refreshing its registration is removed, with "
        "its users"),
    /* 60 s: keeps heartbeatTime of the seed's presence record within a minute of now (tools of
     * the seed count a record as online for 180 s); one batched script call per 500 users, two
     * Redis commands per user (GET, SET). */
    NUM("cluster.presenceRefresh", cluster_presence_refresh, 1, 3600, "60",
        "seconds between refreshes of this node's presence records in Redis"),
    /* 600 s: a full re-announce (every set rebuilt, users Redis has but the node has not taken
     * down) also runs whenever changes were lost (reconnect, failed call, full mailbox); the
     * periodic one only repairs what someone else changed in Redis. ~8 commands per user, so
     * not every minute: at 1 M users that alone was ~170 000 commands/s. */
    NUM("cluster.presenceSync", cluster_presence_sync, 1, 86400, "600",
        "seconds between full re-announces of this node's users in Redis (repairs drift)"),
    /* 3 s: Redis answers in well under a millisecond; a link that has not answered for 3 s is
     * broken: it is dropped and reconnected, and what waited on it answers 503 / 1004. */
    NUM("cluster.requestTimeout", cluster_request_timeout, 100, 60000, "3000",
        "milliseconds a Redis command may wait for its answer before the link is reset"),
    /* 100 000 commands in flight (a few MB): far above what a node sends in a round trip; past
     * it a request answers 503 instead of queueing more towards a Redis that can't keep up. */
    NUM("cluster.maxPending", cluster_max_pending, 1, 10000000, "100000",
        "Redis commands waiting for their answer at most"),
    /* "": goWebSocket never checked serviceToken, so its clients log in unchanged; a node without
     * a key says at start-up that any client may log in as any userID. The secret's bytes are
     * the HMAC key as they are: at least 32 (RFC 7518 3.2; im/auth refuses fewer at start-up),
     * at most 255, the bound of every string here (a longer one is refused, not cut). Both keys
     * may be set: a token's alg picks the key (HS256 the secret, RS* or ES* the public key), so
     * a deployment can move from one to the other without a flag day. */
    STR("auth.jwtSecret", auth_jwt_secret, NULL, "",
        "HS256 secret login's serviceToken must be signed with (32-255 bytes); \"\" = none"),
    /* "": goWebSocket's API is open, and a node behind a private network may keep it so; a node
     * with a key says so at start-up. At least 16 bytes: a key is a password nobody types. */
    STR("auth.apiKey", auth_api_key, check_api_key, "",
        "key the push API (sendMessage, sendMessageAll), /metrics and /system/state require as "
        "Authorization: Bearer <key>; \"\" = open"),
    STR("auth.jwtPublicKey", auth_jwt_public_key, NULL, "",
        "PEM public key file (RSA: RS256/384/512, EC P-256/384/521: ES256/384/512) login's "
        "serviceToken must be signed for; \"\" = none"),
};

#define NKEYS (sizeof keys / sizeof keys[0])

/* Writes a message into err (if any) and returns CONFIG_ERR, so that callers can
 * `return fail(...)`. */
__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return CONFIG_ERR;
}

/* Puts `prefix` in front of the message already in err: "config/app.yaml:3: app.httpPort: …". */
static int fail_prefix(char *err, size_t errlen, const char *prefix) {
    if (err && errlen) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err);
        snprintf(err, errlen, "%s: %s", prefix, msg);
    }
    return CONFIG_ERR;
}

static const config_key_t *find_key(const char *name) {
    for (size_t i = 0; i < NKEYS; i++)
        if (strcasecmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* "app.httpPort" -> "IMGATE_APP_HTTPPORT". */
static void env_name(const config_key_t *k, char *out, size_t outlen) {
    size_t n = (size_t)snprintf(out, outlen, "%s", CONFIG_ENV_PREFIX);
    for (const char *p = k->name; *p && n + 1 < outlen; p++)
        out[n++] = *p == '.' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    out[n < outlen ? n : outlen - 1] = '\0';
}

static const char *check_log_level(const char *v) {
    return log_level_parse(v) < 0 ? "must be one of debug, info, warn, error, off" : NULL;
}

static const char *check_ip_literal(const char *v) {
    unsigned char addr[16];
    if (inet_pton(AF_INET, v, addr) == 1 || inet_pton(AF_INET6, v, addr) == 1)
        return NULL;
    return "is not an IPv4 or IPv6 address";
}

/* Parses a decimal integer: optional sign, digits, nothing else (no spaces, no "0x", no "1e3").
 * Values past int64 saturate, so the caller's range check reports them. Returns 0 or -1. */
static int parse_int(const char *s, int64_t *out) {
    const char *p = s;
    int neg = *p == '-';
    if (*p == '-' || *p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (v <= (uint64_t)INT64_MAX)
            v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        v = (uint64_t)INT64_MAX;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

static const char *check_host_port(const char *v) {
    if (!*v)
        return NULL;
    if (strncmp(v, "unix:", 5) == 0)
        return v[5] == '/' ? NULL : "a Unix socket must be unix:/absolute/path";
    const char *colon = strrchr(v, ':');
    int64_t port;
    if (!colon || colon == v || parse_int(colon + 1, &port) < 0 || port < 1 || port > 65535)
        return "must be host:port (port 1..65535), or \"\"";
    return NULL;
}

/* Subprotocol names are HTTP tokens (RFC 6455 §4.1); the list is separated by commas. */
static const char *check_subprotocols(const char *v) {
    for (const char *p = v; *p; p++)
        if (*p != ',' && (*p <= ' ' || *p > '~' || strchr("()<>@;:\\\"/[]?={}", *p)))
            return "must be comma-separated tokens (letters, digits, !#$%&'*+-.^_`|~)";
    return NULL;
}

/* Origins as browsers send them: scheme://host[:port], or "*"; a host may start with "*.". */
static const char *check_origins(const char *v) {
    for (const char *p = v; *p; p++)
        if (*p != ',' && (*p <= ' ' || *p > '~'))
            return "must be comma-separated origins (https://chat.example.com) without spaces";
    for (const char *p = v; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (!(n == 1 && *p == '*') && (!memmem(p, n, "://", 3) || p[n - 1] == '/'))
            return "each origin is scheme://host[:port] (no path, no trailing /), or *";
        if (!end)
            break;
        p = end + 1;
    }
    return NULL;
}

static const char *check_api_key(const char *v) {
    size_t n = strlen(v);
    if (n && n < 16)
        return "must be at least 16 bytes (or \"\" for an open API)";
    for (size_t i = 0; i < n; i++)
        if (v[i] <= ' ' || v[i] > '~')
            return "must be printable ASCII without spaces (it travels in a header)";
    return NULL;
}

/* Node ids appear in Redis key names and channels: printable ASCII without spaces, at most
 * CONFIG_NODE_ID_MAX (64) bytes. */
static const char *check_node_id(const char *v) {
    size_t n = strlen(v);
    if (n > CONFIG_NODE_ID_MAX)
        return "must be at most 64 bytes";
    for (size_t i = 0; i < n; i++)
        if (v[i] <= ' ' || v[i] > '~')
            return "must be printable ASCII without spaces";
    return NULL;
}

/* Parses "101,102" (optionally in [brackets], spaces allowed around items) into ids.
 * Returns the count, or CONFIG_ERR with a message. */
static int parse_app_ids(const config_key_t *k, const char *value, uint32_t *ids, char *err,
                         size_t errlen) {
    const char *p = value;
    const char *end = value + strlen(value);
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end > p && *p == '[' && end[-1] == ']') {
        p++;
        end--;
    }
    int n = 0;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        const char *a = p, *b = item_end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a == b) {
            if (n == 0 && !comma)
                break; /* an empty list: reported below */
            return fail(err, errlen, "%s: empty item in \"%.64s\"", k->name, value);
        }
        char item[24];
        int64_t v;
        if ((size_t)(b - a) >= sizeof item)
            v = INT64_MAX;
        else {
            memcpy(item, a, (size_t)(b - a));
            item[b - a] = '\0';
            if (parse_int(item, &v) < 0)
                return fail(err, errlen, "%s: \"%.*s\" is not a whole number", k->name,
                            (int)(b - a > 32 ? 32 : b - a), a);
        }
        if (v < k->min || v > k->max)
            return fail(err, errlen, "%s: %.*s is out of range %lld..%lld", k->name,
                        (int)(b - a > 32 ? 32 : b - a), a, (long long)k->min, (long long)k->max);
        if (n == CONFIG_MAX_APPS)
            return fail(err, errlen, "%s: more than %d appIds", k->name, CONFIG_MAX_APPS);
        for (int i = 0; i < n; i++)
            if (ids[i] == (uint32_t)v)
                return fail(err, errlen, "%s: appId %lld is listed twice", k->name, (long long)v);
        ids[n++] = (uint32_t)v;
        if (!comma)
            break;
        p = comma + 1;
    }
    if (n == 0)
        return fail(err, errlen, "%s: needs 1..%d appIds", k->name, CONFIG_MAX_APPS);
    return n;
}

/* Keys whose values are never repeated in an error message (it may end up in a log). */
static bool is_secret(const config_key_t *k) {
    return strcmp(k->name, "auth.apiKey") == 0 || strcmp(k->name, "auth.jwtSecret") == 0 ||
           strcmp(k->name, "redis.password") == 0;
}

/* The one place where a string becomes a field. On error cfg is left unchanged. */
int config_set(config_t *cfg, const char *key, const char *value, char *err, size_t errlen) {
    const config_key_t *k = find_key(key);
    if (!k)
        return fail(err, errlen, "unknown key \"%.64s\"", key);
    void *field = (char *)cfg + k->offset;
    switch (k->type) {
    case KEY_STR: {
        size_t len = strlen(value);
        if (len >= k->size)
            return fail(err, errlen, "%s: longer than %zu bytes", k->name, k->size - 1);
        const char *why = k->check ? k->check(value) : NULL;
        if (why && is_secret(k))
            return fail(err, errlen, "%s: the value %s", k->name, why);
        if (why)
            return fail(err, errlen, "%s: \"%.64s\" %s", k->name, value, why);
        memcpy(field, value, len + 1);
        return CONFIG_OK;
    }
    case KEY_INT:
    case KEY_U32: {
        int64_t v;
        if (parse_int(value, &v) < 0)
            return fail(err, errlen, "%s: \"%.64s\" is not a whole number", k->name, value);
        if (v < k->min || v > k->max)
            return fail(err, errlen, "%s: %.64s is out of range %lld..%lld", k->name, value,
                        (long long)k->min, (long long)k->max);
        if (k->type == KEY_INT)
            *(int *)field = (int)v;
        else
            *(uint32_t *)field = (uint32_t)v;
        return CONFIG_OK;
    }
    case KEY_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
                                                                                    "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(value, yes[i]) == 0 || strcasecmp(value, no[i]) == 0) {
                *(bool *)field = strcasecmp(value, yes[i]) == 0;
                return CONFIG_OK;
            }
        }
        return fail(err, errlen, "%s: \"%.64s\" is not true or false", k->name, value);
    }
    case KEY_APP_IDS: {
        uint32_t ids[CONFIG_MAX_APPS];
        int n = parse_app_ids(k, value, ids, err, errlen);
        if (n < 0)
            return CONFIG_ERR;
        memcpy(cfg->app_ids, ids, (size_t)n * sizeof ids[0]);
        cfg->app_id_count = n;
        return CONFIG_OK;
    }
    }
    return fail(err, errlen, "%s: unsupported type", k->name);
}

void config_defaults(config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++) {
        char err[256];
        int rc = config_set(cfg, keys[i].name, keys[i].def, err, sizeof err);
        assert(rc == CONFIG_OK && "a default in the key table does not pass its own check");
        (void)rc;
    }
}

int config_app_index(const config_t *cfg, uint32_t app_id) {
    for (int i = 0; i < cfg->app_id_count; i++)
        if (cfg->app_ids[i] == app_id)
            return i;
    return -1;
}

int config_app_allowed(const config_t *cfg, uint32_t app_id) {
    return config_app_index(cfg, app_id) >= 0;
}

void config_print_help(FILE *out) {
    fprintf(out,
            "Usage: imgate [--config FILE] [--KEY VALUE | --KEY=VALUE]...\n"
            "       imgate --help | --version\n"
            "\n"
            "Each level overrides the one before: built-in defaults < " CONFIG_DEFAULT_FILE
            " (or --config FILE)\n"
            "< environment (" CONFIG_ENV_PREFIX "KEY: the key upper-cased, '.' -> '_') < flags.\n"
            "Keys are case-insensitive.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE  read FILE instead of " CONFIG_DEFAULT_FILE "\n"
            "  -h, --help         print this help and exit\n"
            "      --version      print the version and exit\n"
            "      --processes M  short for --app.processes M\n"
            "\n"
            "Keys (flag, environment variable, default):\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const config_key_t *k = &keys[i];
        char env[CONFIG_KEY_MAX + sizeof CONFIG_ENV_PREFIX];
        env_name(k, env, sizeof env);
        const char *q = k->type == KEY_STR ? "\"" : "";
        fprintf(out, "  --%-22s %-28s default %s%s%s\n      %s\n", k->name, env, q, k->def, q,
                k->meaning);
    }
}

/* ---- YAML ---- */

typedef struct {
    config_t *cfg;
    yaml_document_t *doc;
    const char *file;
    char *err;
    size_t errlen;
    int nodes; /* visited so far, against CONFIG_YAML_NODES */
} yaml_walk_t;

/* Fails with "FILE:LINE: message" for the node. */
__attribute__((format(printf, 3, 4))) static int yaml_fail(yaml_walk_t *w, const yaml_node_t *node,
                                                           const char *fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail(w->err, w->errlen, "%s:%zu: %s", w->file, node->start_mark.line + 1, msg);
}

/* A plain empty, "~" or "null" scalar: the key is present without a value. As viper does, it
 * leaves the key at its lower-level value. */
static int yaml_is_null(const yaml_node_t *n) {
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

/* Applies a sequence to a list key by joining its scalars with commas, so that config_set stays
 * the only converter. */
static int yaml_apply_list(yaml_walk_t *w, const config_key_t *k, yaml_node_t *node) {
    char joined[CONFIG_MAX_APPS * 12 + 16];
    size_t n = 0;
    joined[0] = '\0';
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(w->doc, *it);
        if (!item || item->type != YAML_SCALAR_NODE)
            return yaml_fail(w, node, "%s: every item must be a single value", k->name);
        const char *v = (const char *)item->data.scalar.value;
        size_t len = strlen(v);
        if (n + len + 2 > sizeof joined)
            return yaml_fail(w, node, "%s: more than %d appIds", k->name, CONFIG_MAX_APPS);
        if (n)
            joined[n++] = ',';
        memcpy(joined + n, v, len + 1);
        n += len;
    }
    char msg[384];
    if (config_set(w->cfg, k->name, joined, msg, sizeof msg) < 0)
        return yaml_fail(w, node, "%s", msg);
    return CONFIG_OK;
}

/* Walks a mapping whose path so far is `prefix` ("" at the top). Known keys are set; unknown
 * keys are ignored, as viper ignores keys nobody reads. */
static int yaml_walk_mapping(yaml_walk_t *w, yaml_node_t *map, const char *prefix, int depth) {
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *kn = yaml_document_get_node(w->doc, pair->key);
        yaml_node_t *vn = yaml_document_get_node(w->doc, pair->value);
        if (++w->nodes > CONFIG_YAML_NODES)
            return yaml_fail(w, map, "more than %d entries (an alias loop?)", CONFIG_YAML_NODES);
        if (!kn || !vn || kn->type != YAML_SCALAR_NODE)
            continue;
        char path[CONFIG_KEY_MAX + 1];
        int len = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "",
                           (const char *)kn->data.scalar.value);
        if (len < 0 || (size_t)len >= sizeof path)
            continue; /* longer than any key we know */
        const config_key_t *k = find_key(path);
        switch (vn->type) {
        case YAML_SCALAR_NODE:
            if (k && !yaml_is_null(vn)) {
                char msg[384];
                if (config_set(w->cfg, k->name, (const char *)vn->data.scalar.value, msg,
                               sizeof msg) < 0)
                    return yaml_fail(w, vn, "%s", msg);
            }
            break;
        case YAML_SEQUENCE_NODE:
            if (k && k->type == KEY_APP_IDS) {
                if (yaml_apply_list(w, k, vn) < 0)
                    return CONFIG_ERR;
            } else if (k) {
                return yaml_fail(w, vn, "%s: expected a single value, found a list", k->name);
            }
            break;
        case YAML_MAPPING_NODE:
            if (k)
                return yaml_fail(w, vn, "%s: expected a value, found a mapping", k->name);
            if (depth + 1 >= CONFIG_YAML_DEPTH)
                return yaml_fail(w, vn, "nested deeper than %d levels", CONFIG_YAML_DEPTH);
            if (yaml_walk_mapping(w, vn, path, depth + 1) < 0)
                return CONFIG_ERR;
            break;
        default:
            break;
        }
    }
    return CONFIG_OK;
}

/* Reads one YAML file into cfg. `optional`: a missing file is not an error (the default path).
 * Only the first document of the file is read. */
static int load_file(config_t *cfg, const char *file, int optional, char *err, size_t errlen) {
    FILE *f = fopen(file, "rb");
    if (!f) {
        if (optional && errno == ENOENT)
            return CONFIG_OK;
        return fail(err, errlen, "cannot open config file %s: %s", file, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return fail(err, errlen, "cannot read config file %s: it is a directory", file);
    }
    snprintf(cfg->config_path, sizeof cfg->config_path, "%s", file);

    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = CONFIG_OK;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return fail(err, errlen, "%s: out of memory", file);
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        if (parser.error == YAML_READER_ERROR)
            rc = fail(err, errlen, "%s: byte %zu: %s", file, parser.problem_offset,
                      parser.problem ? parser.problem : "cannot read");
        else
            rc = fail(err, errlen, "%s:%zu:%zu: YAML syntax error: %s%s%s", file,
                      parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                      parser.problem ? parser.problem : "unknown problem",
                      parser.context ? " " : "", parser.context ? parser.context : "");
        goto out;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        yaml_walk_t w = {cfg, &doc, file, err, errlen, 0};
        if (root->type == YAML_MAPPING_NODE)
            rc = yaml_walk_mapping(&w, root, "", 0);
        else if (root->type != YAML_SCALAR_NODE || !yaml_is_null(root))
            rc = yaml_fail(&w, root, "the top level must be a mapping (app: …, redis: …)");
    }
    yaml_document_delete(&doc);
out:
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

/* ---- environment ---- */

/* Applies every IMGATE_<KEY>=value of envp. Other IMGATE_ variables (the test harness' IMGATE_BIN,
 * keys of a newer version) are ignored: the environment is shared with other programs. */
static int load_env(config_t *cfg, char **envp, char *err, size_t errlen) {
    if (!envp)
        return CONFIG_OK;
    for (char **e = envp; *e; e++) {
        if (strncmp(*e, CONFIG_ENV_PREFIX, sizeof CONFIG_ENV_PREFIX - 1) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        size_t nlen = (size_t)(eq - *e);
        for (size_t i = 0; i < NKEYS; i++) {
            char name[CONFIG_KEY_MAX + sizeof CONFIG_ENV_PREFIX];
            env_name(&keys[i], name, sizeof name);
            if (strlen(name) != nlen || memcmp(name, *e, nlen) != 0)
                continue;
            if (config_set(cfg, keys[i].name, eq + 1, err, errlen) < 0) {
                char prefix[CONFIG_KEY_MAX + 32];
                snprintf(prefix, sizeof prefix, "environment %s", name);
                return fail_prefix(err, errlen, prefix);
            }
            break;
        }
    }
    return CONFIG_OK;
}

/* ---- flags ---- */

typedef enum { FLAG_CONFIG, FLAG_HELP, FLAG_VERSION, FLAG_KEY } flag_kind_t;

typedef struct {
    flag_kind_t kind;
    const char *arg;         /* as given, for messages */
    const config_key_t *key; /* FLAG_KEY */
    const char *value;       /* FLAG_CONFIG, FLAG_KEY */
} flag_t;

/* Reads the flag at argv[*i] and its value (the rest after '=', else the next argument, whatever
 * it looks like, so that `--app.workers -1` is a range error and not a missing value).
 * Advances *i past what it used. Returns 0 or CONFIG_ERR. */
static int next_flag(int argc, char **argv, int *i, flag_t *fl, char *err, size_t errlen) {
    const char *a = argv[(*i)++];
    memset(fl, 0, sizeof *fl);
    fl->arg = a;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
        fl->kind = FLAG_HELP;
        return CONFIG_OK;
    }
    if (strcmp(a, "--version") == 0) {
        fl->kind = FLAG_VERSION;
        return CONFIG_OK;
    }
    int short_config = strcmp(a, "-c") == 0;
    if (!short_config && strncmp(a, "--", 2) != 0)
        return fail(err, errlen, "unknown flag \"%.64s\" (see --help)", a);

    const char *name = short_config ? "config" : a + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    char key[CONFIG_KEY_MAX + 1];
    if (nlen == 0 || nlen >= sizeof key)
        return fail(err, errlen, "unknown flag \"%.64s\" (see --help)", a);
    memcpy(key, name, nlen);
    key[nlen] = '\0';

    /* --processes M is short for --app.processes M: the one key typed often enough by hand. */
    const char *full = strcasecmp(key, "processes") == 0 ? "app.processes" : key;
    if (strcasecmp(key, "config") == 0)
        fl->kind = FLAG_CONFIG;
    else if ((fl->key = find_key(full)) != NULL)
        fl->kind = FLAG_KEY;
    else
        return fail(err, errlen, "unknown flag \"--%s\" (see --help)", key);

    if (eq) {
        fl->value = eq + 1;
    } else if (*i < argc) {
        fl->value = argv[(*i)++];
    } else {
        return fail(err, errlen, "flag \"%.64s\" needs a value", a);
    }
    return CONFIG_OK;
}

/* First pass over argv, before anything is read: finds --config, answers --help and --version,
 * and rejects unknown flags, so that a typo fails before the file is even opened. */
static int scan_flags(int argc, char **argv, FILE *out, const char **config_file, char *err,
                      size_t errlen) {
    for (int i = 1; i < argc;) {
        flag_t fl;
        if (next_flag(argc, argv, &i, &fl, err, errlen) < 0)
            return CONFIG_ERR;
        switch (fl.kind) {
        case FLAG_HELP:
            config_print_help(out);
            return CONFIG_EXIT_HELP;
        case FLAG_VERSION:
            fprintf(out, "imgate %s\n", IMGATE_VERSION);
            return CONFIG_EXIT_HELP;
        case FLAG_CONFIG:
            if (!*fl.value)
                return fail(err, errlen, "flag \"%.64s\" needs a file name", fl.arg);
            *config_file = fl.value; /* the last one wins */
            break;
        case FLAG_KEY:
            break;
        }
    }
    return CONFIG_OK;
}

/* Second pass: applies the key flags, after the file and the environment. */
static int apply_flags(config_t *cfg, int argc, char **argv, char *err, size_t errlen) {
    for (int i = 1; i < argc;) {
        flag_t fl;
        if (next_flag(argc, argv, &i, &fl, err, errlen) < 0)
            return CONFIG_ERR;
        if (fl.kind == FLAG_KEY && config_set(cfg, fl.key->name, fl.value, err, errlen) < 0)
            return fail_prefix(err, errlen, "flag");
    }
    return CONFIG_OK;
}

/* Checks that involve more than one key, once every level is applied. */
static int check_all(const config_t *cfg, char *err, size_t errlen) {
    /* Both listeners use SO_REUSEPORT: on one port the kernel would split connections between
     * them at random instead of failing to bind. */
    if (cfg->http_port == cfg->ws_port)
        return fail(err, errlen, "app.httpPort and app.webSocketPort are both %d; they must differ",
                    cfg->http_port);
    /* Without a shared Redis, M processes would be M separate nodes on the same ports, each
     * knowing only its own users: a send would reach a user only if the kernel happened to give
     * the request to the right process. */
    if (cfg->processes > 1 && !cfg->redis_addr[0])
        return fail(err, errlen,
                    "app.processes is %d but redis.addr is empty: the processes share their users "
                    "only through Redis (set redis.addr, or use app.processes 1)",
                    cfg->processes);
    /* Each process is <nodeId>-<i>; with a given nodeId the suffix must still fit. */
    if (cfg->processes > 1 && cfg->cluster_node_id[0]) {
        int digits = snprintf(NULL, 0, "%d", cfg->processes - 1);
        if (strlen(cfg->cluster_node_id) + 1 + (size_t)digits > CONFIG_NODE_ID_MAX)
            return fail(err, errlen,
                        "cluster.nodeId is %zu bytes: with app.processes %d its processes' ids "
                        "<nodeId>-<i> would pass %d bytes",
                        strlen(cfg->cluster_node_id), cfg->processes, CONFIG_NODE_ID_MAX);
    }
    return CONFIG_OK;
}

int config_load(config_t *cfg, int argc, char **argv, char **envp, FILE *out, char *err,
                size_t errlen) {
    if (err && errlen)
        err[0] = '\0';
    if (!out)
        out = stdout;
    config_defaults(cfg);

    const char *file = NULL;
    int rc = scan_flags(argc, argv, out, &file, err, errlen);
    if (rc != CONFIG_OK)
        return rc;
    if (load_file(cfg, file ? file : CONFIG_DEFAULT_FILE, file == NULL, err, errlen) < 0)
        return CONFIG_ERR;
    if (load_env(cfg, envp, err, errlen) < 0)
        return CONFIG_ERR;
    if (apply_flags(cfg, argc, argv, err, errlen) < 0)
        return CONFIG_ERR;
    return check_all(cfg, err, errlen);
}
