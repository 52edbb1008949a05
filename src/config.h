/* Configuration: built-in defaults < config/app.yaml (or --config FILE) < IMGATE_* environment
 * < command-line flags. Keys are the seed's app.yaml keys plus ours, matched case-insensitively.
 * Every limit has its default and the reason for it in the table in config.c. */
#ifndef IMGATE_CONFIG_H
#define IMGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define IMGATE_VERSION "0.1.0"

#define CONFIG_MAX_APPS    64
#define CONFIG_STR         256
#define CONFIG_NODE_ID_MAX 64 /* cluster.nodeId: it is part of Redis key and channel names */

typedef struct {
    /* app.* — the seed's keys */
    char log_file[CONFIG_STR]; /* app.logFile: access log, one line per HTTP request */
    int http_port;             /* app.httpPort */
    int ws_port;               /* app.webSocketPort */
    int rpc_port;              /* app.rpcPort: identity of the node in the cluster */
    char http_url[CONFIG_STR]; /* app.httpUrl: "" = the chat page uses its own origin */
    char ws_url[CONFIG_STR];   /* app.webSocketUrl: "" = derived from the page origin */
    /* app.* — ours */
    char web_dir[CONFIG_STR];          /* app.webDir: the chat page's files */
    char log_level[16];                /* app.logLevel: debug|info|warn|error|off */
    char bind_address[64];             /* app.bindAddress: IPv4 or IPv6 literal */
    int workers;                       /* app.workers: 0 = number of CPUs */
    int processes;                     /* app.processes: > 1 = a supervisor of that many nodes */
    uint32_t app_ids[CONFIG_MAX_APPS]; /* app.appIds: the rooms a client may log in to */
    int app_id_count;
    uint32_t heartbeat_timeout;       /* app.heartbeatTimeout, seconds */
    uint32_t login_timeout;           /* app.loginTimeout, seconds */
    uint32_t handshake_timeout;       /* app.handshakeTimeout, seconds */
    uint32_t close_timeout;           /* app.closeTimeout, seconds */
    uint32_t drain_seconds;           /* app.drainSeconds: SIGTERM's batched closes */
    uint32_t max_message_size;        /* app.maxMessageSize, bytes */
    uint32_t max_write_queue;         /* app.maxWriteQueue, bytes per connection */
    bool room_notices;                /* app.roomNotices: push enter/exit at all */
    uint32_t notice_batch_above;      /* app.noticeBatchAbove: batch notices above this room size */
    uint32_t notice_batch_interval;   /* app.noticeBatchInterval, milliseconds */
    uint32_t max_header_bytes;        /* app.maxHeaderBytes: request line + headers */
    uint32_t max_body_bytes;          /* app.maxBodyBytes: HTTP request body */
    uint32_t max_connections;         /* app.maxConnections per node */
    uint32_t mailbox_capacity;        /* app.mailboxCapacity: tasks per mailbox */
    uint32_t write_delay;             /* app.writeDelay: ms a big fan-out waits before writing */
    char subprotocols[CONFIG_STR];    /* app.subprotocols: accepted Sec-WebSocket-Protocol values */
    char allowed_origins[CONFIG_STR]; /* app.allowedOrigins: "" = any */
    uint32_t dedup_ttl;               /* app.dedupTtl: seconds a msgID is remembered */
    uint32_t dedup_capacity;          /* app.dedupCapacity: msgIDs remembered at most */
    uint32_t max_connections_per_ip;  /* app.maxConnectionsPerIp: 0 = no limit */
    uint32_t upgrade_rate;            /* app.upgradeRate: per second per node; 0 = no limit */
    uint32_t upgrade_burst;           /* app.upgradeBurst */
    uint32_t message_rate;            /* app.messageRate: per second per connection; 0 = none */
    uint32_t message_burst;           /* app.messageBurst */
    uint32_t login_rate;              /* app.loginRate: per second per connection; 0 = none */
    uint32_t login_burst;             /* app.loginBurst */
    /* redis.* — the seed's; the cluster layer uses addr, password and DB */
    char redis_addr[CONFIG_STR];     /* redis.addr: "" = single node, presence in memory */
    char redis_password[CONFIG_STR]; /* redis.password */
    int redis_db;                    /* redis.DB */
    int redis_pool_size;             /* redis.poolSize */
    int redis_min_idle_conns;        /* redis.minIdleConns */
    /* cluster.* — ours */
    char cluster_node_id[CONFIG_STR];  /* cluster.nodeId: "" = generated at start */
    uint32_t cluster_node_timeout;     /* cluster.nodeTimeout, seconds */
    uint32_t cluster_presence_refresh; /* cluster.presenceRefresh, seconds */
    uint32_t cluster_presence_sync;    /* cluster.presenceSync, seconds */
    uint32_t cluster_request_timeout;  /* cluster.requestTimeout, milliseconds */
    uint32_t cluster_max_pending;      /* cluster.maxPending: Redis commands in flight */
    /* auth.* — ours: login's serviceToken as a JWT (im/auth.h) */
    char auth_jwt_secret[CONFIG_STR];     /* auth.jwtSecret: HS256 secret; "" = none */
    char auth_jwt_public_key[CONFIG_STR]; /* auth.jwtPublicKey: PEM file path; "" = none */
    char auth_api_key[CONFIG_STR];        /* auth.apiKey: Bearer key of the push API; "" = open */
    /* where the file came from, for the start-up log ("" = none found, defaults used) */
    char config_path[CONFIG_STR];
} config_t;

enum {
    CONFIG_OK = 0,
    CONFIG_EXIT_HELP = 1, /* --help or --version was printed; exit 0 */
    CONFIG_ERR = -1,      /* bad file, key, value or flag; `err` says which; exit 2 */
};

/* Fills `cfg` with the built-in defaults. */
void config_defaults(config_t *cfg);

/* Loads the whole chain: defaults, then the YAML file (`--config FILE`, else config/app.yaml
 * relative to the working directory if it exists), then every IMGATE_* variable of `envp`, then
 * the flags of argv (`--app.httpPort 9000`, `--app.httpPort=9000`, `--processes M` for
 * `--app.processes M`, `--config F`, `--help`, `--version`). `out` receives --help/--version text
 * (NULL = stdout). Unknown keys in the file and unknown IMGATE_* variables are ignored; an unknown
 * flag is an error. Returns CONFIG_OK, CONFIG_EXIT_HELP or CONFIG_ERR with a one-line message in
 * err naming the source (file:line, variable or flag) and the key. */
int config_load(config_t *cfg, int argc, char **argv, char **envp, FILE *out, char *err,
                size_t errlen);

/* Sets one key (case-insensitive dotted path) from its string form, as the file, env and flags
 * do: the only place where strings become fields. Numbers are strict decimal; app.appIds is
 * "101,102". Returns 0, or CONFIG_ERR with a message in err and cfg unchanged. */
int config_set(config_t *cfg, const char *key, const char *value, char *err, size_t errlen);

/* The index of appId in app.appIds (its room number), or -1. */
int config_app_index(const config_t *cfg, uint32_t app_id);

/* True if appId is one of app.appIds. */
int config_app_allowed(const config_t *cfg, uint32_t app_id);

/* Writes the --help text: usage and every key with its default and meaning. */
void config_print_help(FILE *out);

#endif
