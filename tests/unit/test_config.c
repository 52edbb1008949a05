/* Unit tests for src/config.c: defaults < YAML file < IMGATE_* environment < flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

/* Every key of config.h, spelled as the seed's app.yaml and the README spell them. Kept here, not
 * taken from config.c, so that the test notices a key that disappears from the table. */
static const char *const all_keys[] = {
    "app.logFile",
    "app.logLevel",
    "app.httpPort",
    "app.webSocketPort",
    "app.rpcPort",
    "app.httpUrl",
    "app.webSocketUrl",
    "app.bindAddress",
    "app.workers",
    "app.appIds",
    "app.heartbeatTimeout",
    "app.loginTimeout",
    "app.drainSeconds",
    "app.handshakeTimeout",
    "app.closeTimeout",
    "app.maxMessageSize",
    "app.maxWriteQueue",
    "app.maxHeaderBytes",
    "app.maxBodyBytes",
    "app.maxConnections",
    "app.dedupTtl",
    "app.dedupCapacity",
    "app.maxConnectionsPerIp",
    "app.upgradeRate",
    "app.upgradeBurst",
    "app.messageRate",
    "app.messageBurst",
    "app.loginRate",
    "app.loginBurst",
    "redis.addr",
    "redis.password",
    "redis.DB",
    "redis.poolSize",
    "redis.minIdleConns",
    "cluster.nodeId",
    "cluster.nodeTimeout",
    "cluster.presenceRefresh",
    "cluster.presenceSync",
    "cluster.requestTimeout",
    "cluster.maxPending",
    "app.mailboxCapacity",
    "app.writeDelay",
    "app.subprotocols",
    "app.allowedOrigins",
    "auth.apiKey",
    "auth.jwtSecret",
    "auth.jwtPublicKey",
};

/* The seed's config/app.yaml, as goWebSocket ships it. */
static const char seed_yaml[] = "app:\n"
                                "  logFile: log/gin.log\n"
                                "  httpPort: 8080\n"
                                "  webSocketPort: 8089\n"
                                "  rpcPort: 9001\n"
                                "  httpUrl: 127.0.0.1:8080\n"
                                "  webSocketUrl:  127.0.0.1:8089\n"
                                "\n"
                                "\n"
                                "redis:\n"
                                "  addr: \"localhost:6379\"\n"
                                "  password: \"\"\n"
                                "  DB: 0\n"
                                "  poolSize: 30\n"
                                "  minIdleConns: 30\n";

/* ---- helpers ---- */

typedef struct {
    char path[64];
} tmpfile_t;

/* Writes `text` to a new file under /tmp. */
static void tmp_write(tmpfile_t *t, const char *text) {
    strcpy(t->path, "/tmp/imgate_config_XXXXXX");
    int fd = mkstemp(t->path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static void tmp_remove(tmpfile_t *t) {
    unlink(t->path);
}

/* Runs config_load with argv = {"imgate", args..., NULL} and envp = env (NULL-terminated or NULL).
 * --help output goes to `out` if given, else is discarded. */
static int load(config_t *cfg, char **env, char *err, size_t errlen, FILE *out, int nargs, ...) {
    char *argv[32];
    int argc = 0;
    argv[argc++] = "imgate";
    va_list ap;
    va_start(ap, nargs);
    for (int i = 0; i < nargs; i++)
        argv[argc++] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    FILE *sink = out ? out : fopen("/dev/null", "w");
    int rc = config_load(cfg, argc, argv, env, sink, err, errlen);
    if (!out)
        fclose(sink);
    return rc;
}

/* Asserts that err contains every one of the NULL-terminated strings. */
static void assert_err_mentions(const char *err, ...) {
    va_list ap;
    va_start(ap, err);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        if (!strstr(err, s))
            fail_msg("error \"%s\" does not mention \"%s\"", err, s);
    }
    va_end(ap);
}

static void assert_defaults(const config_t *c) {
    assert_string_equal(c->log_file, "log/access.log");
    assert_string_equal(c->log_level, "info");
    assert_int_equal(c->http_port, 8080);
    assert_int_equal(c->ws_port, 8089);
    assert_int_equal(c->rpc_port, 9001);
    assert_string_equal(c->http_url, "");
    assert_string_equal(c->ws_url, "");
    assert_string_equal(c->bind_address, "0.0.0.0");
    assert_int_equal(c->workers, 0);
    assert_int_equal(c->app_id_count, 4);
    assert_int_equal(c->app_ids[0], 101);
    assert_int_equal(c->app_ids[1], 102);
    assert_int_equal(c->app_ids[2], 103);
    assert_int_equal(c->app_ids[3], 104);
    assert_int_equal(c->heartbeat_timeout, 360);
    assert_int_equal(c->handshake_timeout, 10);
    assert_int_equal(c->close_timeout, 5);
    assert_int_equal(c->max_message_size, 65536);
    assert_int_equal(c->max_write_queue, 1048576);
    assert_int_equal(c->max_header_bytes, 8192);
    assert_int_equal(c->max_body_bytes, 131072);
    assert_int_equal(c->max_connections, 1000000);
    assert_int_equal(c->dedup_ttl, 43200);
    assert_int_equal(c->dedup_capacity, 100000);
    assert_string_equal(c->redis_addr, "");
    assert_string_equal(c->redis_password, "");
    assert_int_equal(c->redis_db, 0);
    assert_int_equal(c->redis_pool_size, 30);
    assert_int_equal(c->redis_min_idle_conns, 30);
    assert_string_equal(c->auth_jwt_secret, "");
    assert_string_equal(c->auth_jwt_public_key, "");
}

/* ---- defaults and the file ---- */

static void test_defaults(void **state) {
    config_t c;
    memset(&c, 0x5a, sizeof c);
    config_defaults(&c);
    assert_defaults(&c);
    assert_string_equal(c.config_path, "");
}

/* No flags, no IMGATE_* variables, no config/app.yaml in the working directory: the defaults. */
static void test_load_without_file_gives_defaults(void **state) {
    char cwd[4096], dir[] = "/tmp/imgate_config_dir_XXXXXX";
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chdir(dir), 0);
    config_t c;
    char err[256] = "junk";
    char *env[] = {"PATH=/usr/bin", "IMGATE_BIN=/somewhere/imgate", NULL};
    int rc = load(&c, env, err, sizeof err, NULL, 0);
    assert_int_equal(chdir(cwd), 0);
    rmdir(dir);
    assert_int_equal(rc, CONFIG_OK);
    assert_string_equal(err, "");
    assert_defaults(&c);
    assert_string_equal(c.config_path, "");
}

/* The default path config/app.yaml is read from the working directory when it exists. */
static void test_default_file_is_read(void **state) {
    char cwd[4096], dir[] = "/tmp/imgate_config_dir_XXXXXX", path[128];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/config", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/config/app.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("app:\n  httpPort: 8123\n", f);
    fclose(f);
    assert_int_equal(chdir(dir), 0);
    config_t c;
    char err[256];
    int rc = load(&c, NULL, err, sizeof err, NULL, 0);
    assert_int_equal(chdir(cwd), 0);
    unlink(path);
    snprintf(path, sizeof path, "%s/config", dir);
    rmdir(path);
    rmdir(dir);
    assert_int_equal(rc, CONFIG_OK);
    assert_int_equal(c.http_port, 8123);
    assert_string_equal(c.config_path, "config/app.yaml");
}

static void test_seed_yaml_loads(void **state) {
    tmpfile_t t;
    tmp_write(&t, seed_yaml);
    config_t c;
    char err[256];
    int rc = load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path);
    assert_int_equal(rc, CONFIG_OK);
    assert_string_equal(c.config_path, t.path);
    assert_string_equal(c.log_file, "log/gin.log");
    assert_int_equal(c.http_port, 8080);
    assert_int_equal(c.ws_port, 8089);
    assert_int_equal(c.rpc_port, 9001);
    assert_string_equal(c.http_url, "127.0.0.1:8080");
    assert_string_equal(c.ws_url, "127.0.0.1:8089");
    assert_string_equal(c.redis_addr, "localhost:6379");
    assert_string_equal(c.redis_password, "");
    assert_int_equal(c.redis_db, 0);
    assert_int_equal(c.redis_pool_size, 30);
    assert_int_equal(c.redis_min_idle_conns, 30);
    /* Keys the seed's file doesn't have keep their defaults. */
    assert_int_equal(c.heartbeat_timeout, 360);
    assert_int_equal(c.app_id_count, 4);
    tmp_remove(&t);
}

/* The example config/app.yaml of the repository loads and says exactly what the defaults say. */
static void test_example_file_matches_defaults(void **state) {
#ifdef IMGATE_WEB_DIR
    const char *path = IMGATE_WEB_DIR "/../config/app.yaml";
    config_t c;
    char err[256];
    int rc = load(&c, NULL, err, sizeof err, NULL, 2, "--config", (char *)path);
    if (rc != CONFIG_OK)
        fail_msg("%s", err);
    assert_defaults(&c);
#else
    skip();
#endif
}

/* Keys match in any case, and unknown keys (the seed's own, or future ones) are ignored. */
static void test_yaml_keys_case_insensitive_unknown_ignored(void **state) {
    tmpfile_t t;
    tmp_write(&t, "APP:\n"
                  "  HTTPPORT: 8100\n"
                  "  websocketport: 8101\n"
                  "  somethingNew: 1\n"
                  "  nested:\n"
                  "    deeper: [1, 2]\n"
                  "Redis:\n"
                  "  db: 3\n"
                  "  MINIDLECONNS: 7\n"
                  "other: {a: b}\n");
    config_t c;
    char err[256];
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "-c", t.path), CONFIG_OK);
    assert_int_equal(c.http_port, 8100);
    assert_int_equal(c.ws_port, 8101);
    assert_int_equal(c.redis_db, 3);
    assert_int_equal(c.redis_min_idle_conns, 7);
    tmp_remove(&t);
}

/* A key without a value leaves the lower level's value; an empty file is no settings at all. */
static void test_yaml_null_and_empty(void **state) {
    tmpfile_t t;
    tmp_write(&t, "app:\n  httpPort:\n  rpcPort: ~\n  logFile: \"\"\n");
    config_t c;
    char err[256];
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_OK);
    assert_int_equal(c.http_port, 8080);
    assert_int_equal(c.rpc_port, 9001);
    assert_string_equal(c.log_file, ""); /* quoted: an explicit empty string */
    tmp_remove(&t);

    tmp_write(&t, "");
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_OK);
    assert_defaults(&c);
    tmp_remove(&t);
}

static void test_yaml_syntax_error_has_line(void **state) {
    tmpfile_t t;
    tmp_write(&t, "app:\n  httpPort: 8080\n  webSocketPort: [8089\nredis:\n  addr: x\n");
    config_t c;
    char err[256];
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_ERR);
    assert_err_mentions(err, t.path, "YAML syntax error", NULL);
    /* The problem is found at line 4, where "redis:" appears inside the unclosed list. */
    char where[96];
    snprintf(where, sizeof where, "%s:4:", t.path);
    assert_err_mentions(err, where, NULL);
    tmp_remove(&t);

    tmp_write(&t, "app:\n  httpPort: 1\n    bad indent: 2\n");
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_ERR);
    snprintf(where, sizeof where, "%s:3:", t.path);
    assert_err_mentions(err, where, "YAML syntax error", NULL);
    tmp_remove(&t);
}

/* Values that YAML parses fine but we don't accept name the file, the line and the key. */
static void test_yaml_bad_values(void **state) {
    tmpfile_t t;
    config_t c;
    char err[256], where[96];

    tmp_write(&t, "app:\n  logFile: x\n  httpPort: eighty\n");
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_ERR);
    snprintf(where, sizeof where, "%s:3:", t.path);
    assert_err_mentions(err, where, "app.httpPort", "eighty", "not a whole number", NULL);
    tmp_remove(&t);

    tmp_write(&t, "app:\n  httpPort:\n    inner: 1\n");
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_ERR);
    assert_err_mentions(err, "app.httpPort", "mapping", NULL);
    tmp_remove(&t);

    tmp_write(&t, "app:\n  httpPort: [1, 2]\n");
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_ERR);
    assert_err_mentions(err, "app.httpPort", "list", NULL);
    tmp_remove(&t);

    tmp_write(&t, "- just\n- a list\n");
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_ERR);
    assert_err_mentions(err, t.path, "mapping", NULL);
    tmp_remove(&t);
}

/* An alias loop must neither recurse forever nor be silently accepted. */
static void test_yaml_alias_loop_bounded(void **state) {
    tmpfile_t t;
    tmp_write(&t, "app: &a\n  x: *a\n");
    config_t c;
    char err[256];
    int rc = load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path);
    /* libyaml may refuse the recursive alias itself; either way it must end with an error. */
    assert_int_equal(rc, CONFIG_ERR);
    tmp_remove(&t);
}

static void test_missing_config_file(void **state) {
    config_t c;
    char err[256];
    assert_int_equal(
        load(&c, NULL, err, sizeof err, NULL, 2, "--config", "/tmp/imgate-no-such.yaml"),
        CONFIG_ERR);
    assert_err_mentions(err, "/tmp/imgate-no-such.yaml", "No such file", NULL);
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 1, "--config"), CONFIG_ERR);
    assert_err_mentions(err, "--config", "needs a value", NULL);
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 1, "--config="), CONFIG_ERR);
    assert_err_mentions(err, "needs a file name", NULL);
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", "/tmp"), CONFIG_ERR);
    assert_err_mentions(err, "/tmp", "directory", NULL);
}

/* ---- environment and flags ---- */

static void test_env_overrides_file(void **state) {
    tmpfile_t t;
    tmp_write(&t, seed_yaml);
    char *env[] = {"HOME=/root",
                   "IMGATE_APP_HTTPPORT=9100",
                   "IMGATE_REDIS_ADDR=redis.lan:6380",
                   "IMGATE_REDIS_DB=2",
                   "IMGATE_APP_NOSUCHKEY=1",
                   "IMGATE_BIN=/x/imgate",
                   NULL};
    config_t c;
    char err[256];
    assert_int_equal(load(&c, env, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_OK);
    assert_int_equal(c.http_port, 9100);
    assert_string_equal(c.redis_addr, "redis.lan:6380");
    assert_int_equal(c.redis_db, 2);
    assert_int_equal(c.ws_port, 8089); /* from the file */
    assert_string_equal(c.log_file, "log/gin.log");
    tmp_remove(&t);
}

static void test_env_bad_value_names_variable(void **state) {
    char *env[] = {"IMGATE_APP_WORKERS=4x", NULL};
    config_t c;
    char err[256];
    assert_int_equal(load(&c, env, err, sizeof err, NULL, 2, "--config", "/dev/null"), CONFIG_ERR);
    assert_err_mentions(err, "IMGATE_APP_WORKERS", "app.workers", "4x", NULL);
}

static void test_flag_overrides_env(void **state) {
    tmpfile_t t;
    tmp_write(&t, seed_yaml);
    char *env[] = {"IMGATE_APP_HTTPPORT=9100", "IMGATE_APP_RPCPORT=9200", NULL};
    config_t c;
    char err[256];
    assert_int_equal(
        load(&c, env, err, sizeof err, NULL, 4, "--app.httpPort", "9300", "--config", t.path),
        CONFIG_OK);
    assert_int_equal(c.http_port, 9300); /* flag beats env */
    assert_int_equal(c.rpc_port, 9200);  /* env beats file */
    assert_string_equal(c.redis_addr, "localhost:6379");
    tmp_remove(&t);
}

static void test_flag_forms(void **state) {
    config_t c;
    char err[256];
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 8, "--config=/dev/null",
                          "--app.httpPort", "9000", "--APP.WEBSOCKETPORT=9001",
                          "--redis.password=", "--app.logFile", "-", "--redis.addr=h:1=2:6379"),
                     CONFIG_OK);
    assert_int_equal(c.http_port, 9000);
    assert_int_equal(c.ws_port, 9001);
    assert_string_equal(c.redis_password, "");
    assert_string_equal(c.log_file, "-");            /* the next argument is the value, always */
    assert_string_equal(c.redis_addr, "h:1=2:6379"); /* only the first '=' splits */
    assert_string_equal(c.config_path, "/dev/null");
    /* The last of repeated flags wins. */
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 5, "-c", "/dev/null", "--app.workers=2",
                          "--app.workers", "3"),
                     CONFIG_OK);
    assert_int_equal(c.workers, 3);
}

static void test_flag_errors(void **state) {
    config_t c;
    char err[256];
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--app.nope", "1"), CONFIG_ERR);
    assert_err_mentions(err, "unknown flag", "app.nope", NULL);
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 1, "-x"), CONFIG_ERR);
    assert_err_mentions(err, "unknown flag", "-x", NULL);
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 1, "positional"), CONFIG_ERR);
    assert_err_mentions(err, "unknown flag", "positional", NULL);
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 1, "--"), CONFIG_ERR);
    assert_err_mentions(err, "unknown flag", NULL);
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 1, "--app.httpPort"), CONFIG_ERR);
    assert_err_mentions(err, "--app.httpPort", "needs a value", NULL);
    /* A typo fails before the file is read: the missing file is not what gets reported. */
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 3, "--config",
                          "/tmp/imgate-no-such.yaml", "--app.htpPort=1"),
                     CONFIG_ERR);
    assert_err_mentions(err, "unknown flag", "app.htpPort", NULL);
}

static void test_bad_number(void **state) {
    config_t c;
    char err[256];
    assert_int_equal(
        load(&c, NULL, err, sizeof err, NULL, 3, "-c", "/dev/null", "--app.httpPort=80a"),
        CONFIG_ERR);
    assert_err_mentions(err, "flag", "app.httpPort", "\"80a\"", "not a whole number", NULL);

    const char *bad[] = {
        "", " 80", "80 ", "0x50", "8e1", "+", "-", "1.5", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        config_defaults(&c);
        if (config_set(&c, "app.httpPort", bad[i], err, sizeof err) != CONFIG_ERR)
            fail_msg("\"%s\" was accepted as a port", bad[i]);
        assert_err_mentions(err, "app.httpPort", NULL);
        assert_int_equal(c.http_port, 8080); /* unchanged on error */
    }
    assert_int_equal(config_set(&c, "app.httpPort", "+81", err, sizeof err), CONFIG_OK);
    assert_int_equal(c.http_port, 81);
}

static void test_ranges(void **state) {
    config_t c;
    char err[256];
    assert_int_equal(
        load(&c, NULL, err, sizeof err, NULL, 3, "-c", "/dev/null", "--app.webSocketPort=70000"),
        CONFIG_ERR);
    assert_err_mentions(err, "app.webSocketPort", "70000", "out of range 1..65535", NULL);

    config_defaults(&c);
    struct {
        const char *key, *ok, *bad;
    } cases[] = {
        {"app.httpPort", "65535", "0"},
        {"app.rpcPort", "1", "65536"},
        {"app.workers", "256", "257"},
        {"app.workers", "0", "-1"},
        {"app.heartbeatTimeout", "1", "0"},
        {"app.loginTimeout", "86400", "86401"},
        {"app.drainSeconds", "0", "3601"},
        {"app.handshakeTimeout", "1", "0"},
        {"app.closeTimeout", "1", "0"},
        {"app.maxMessageSize", "16777216", "16777217"},
        {"app.maxMessageSize", "1", "0"},
        {"app.maxWriteQueue", "1", "0"},
        {"app.maxHeaderBytes", "65536", "65537"},
        {"app.maxBodyBytes", "1", "0"},
        {"app.maxConnections", "1", "0"},
        {"app.dedupTtl", "1", "0"},
        {"app.dedupCapacity", "1", "0"},
        {"app.maxConnectionsPerIp", "0", "-1"},
        {"app.upgradeRate", "0", "10000001"},
        {"app.upgradeBurst", "1", "0"},
        {"app.messageRate", "1000", "1001"},
        {"app.messageBurst", "1", "0"},
        {"app.loginRate", "0", "1001"},
        {"app.loginBurst", "1000", "0"},
        {"redis.DB", "15", "-1"},
        {"redis.poolSize", "1", "0"},
        {"redis.minIdleConns", "0", "-1"},
        {"app.logLevel", "DEBUG", "verbose"},
        {"app.bindAddress", "::1", "localhost"},
        {"app.bindAddress", "127.0.0.1", "127.0.0.256"},
        {"redis.addr", "[::1]:6379", "localhost"},
        {"redis.addr", "", "host:0"},
        {"app.allowedOrigins", "https://a.example,http://b.example:8080,*", "a.example"},
        {"app.allowedOrigins", "https://*.a.example", "https://a.example/"},
        {"auth.apiKey", "0123456789abcdef", "0123456789abcde"},
        {"auth.apiKey", "", "0123456789 abcdef"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (config_set(&c, cases[i].key, cases[i].ok, err, sizeof err) != CONFIG_OK)
            fail_msg("%s=%s refused: %s", cases[i].key, cases[i].ok, err);
        if (config_set(&c, cases[i].key, cases[i].bad, err, sizeof err) != CONFIG_ERR)
            fail_msg("%s=%s accepted", cases[i].key, cases[i].bad);
        assert_err_mentions(err, cases[i].key, NULL);
    }
}

static void test_strings(void **state) {
    config_t c;
    char err[256];
    config_defaults(&c);
    char longv[CONFIG_STR + 1];
    memset(longv, 'a', CONFIG_STR);
    longv[CONFIG_STR] = '\0';
    assert_int_equal(config_set(&c, "app.logFile", longv, err, sizeof err), CONFIG_ERR);
    assert_err_mentions(err, "app.logFile", "longer than 255", NULL);
    assert_string_equal(c.log_file, "log/access.log");
    longv[CONFIG_STR - 1] = '\0';
    assert_int_equal(config_set(&c, "app.logFile", longv, err, sizeof err), CONFIG_OK);
    assert_int_equal(strlen(c.log_file), CONFIG_STR - 1);
    assert_int_equal(config_set(&c, "APP.LOGLEVEL", "warn", err, sizeof err), CONFIG_OK);
    assert_string_equal(c.log_level, "warn");
    assert_int_equal(config_set(&c, "app.nope", "1", err, sizeof err), CONFIG_ERR);
    assert_err_mentions(err, "unknown key", "app.nope", NULL);
}

/* Both listeners use SO_REUSEPORT, so one port for both must be refused, not half-work. */
static void test_same_ports_refused(void **state) {
    config_t c;
    char err[256];
    assert_int_equal(
        load(&c, NULL, err, sizeof err, NULL, 3, "-c", "/dev/null", "--app.webSocketPort=8080"),
        CONFIG_ERR);
    assert_err_mentions(err, "app.httpPort", "app.webSocketPort", NULL);
}

/* ---- help and version ---- */

static void test_help_lists_every_key(void **state) {
    const char *flags[] = {"--help", "-h"};
    for (size_t f = 0; f < 2; f++) {
        char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        assert_non_null(out);
        config_t c;
        char err[256];
        /* Help wins over a broken config file named before it. */
        int rc = load(&c, NULL, err, sizeof err, out, 3, "--config", "/tmp/imgate-no-such.yaml",
                      flags[f]);
        fclose(out);
        assert_int_equal(rc, CONFIG_EXIT_HELP);
        assert_non_null(strstr(text, "Usage: imgate"));
        assert_non_null(strstr(text, "--config FILE"));
        for (size_t i = 0; i < sizeof all_keys / sizeof all_keys[0]; i++) {
            char flag[64], env[64];
            snprintf(flag, sizeof flag, "--%s ", all_keys[i]);
            size_t n = (size_t)snprintf(env, sizeof env, "IMGATE_");
            for (const char *p = all_keys[i]; *p; p++)
                env[n++] = *p == '.' ? '_' : (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : *p);
            env[n] = '\0';
            if (!strstr(text, flag))
                fail_msg("--help does not mention %s", all_keys[i]);
            if (!strstr(text, env))
                fail_msg("--help does not mention %s", env);
        }
        assert_non_null(strstr(text, "default 360"));
        assert_non_null(strstr(text, "default \"log/access.log\""));
        assert_non_null(strstr(text, "default 101,102,103,104"));
        free(text);
    }
}

static void test_version(void **state) {
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    config_t c;
    char err[256];
    assert_int_equal(load(&c, NULL, err, sizeof err, out, 1, "--version"), CONFIG_EXIT_HELP);
    fclose(out);
    assert_string_equal(text, "imgate 0.1.0\n");
    free(text);
}

/* ---- appIds ---- */

static void test_app_ids_from_yaml_list(void **state) {
    tmpfile_t t;
    tmp_write(&t, "app:\n  appIds:\n    - 7\n    - 4294967295\n    - \"9\"\n");
    config_t c;
    char err[256];
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_OK);
    assert_int_equal(c.app_id_count, 3);
    assert_int_equal(c.app_ids[0], 7);
    assert_int_equal(c.app_ids[1], 4294967295u);
    assert_int_equal(c.app_ids[2], 9);
    tmp_remove(&t);

    tmp_write(&t, "app:\n  appids: [201, 202]\n");
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_OK);
    assert_int_equal(c.app_id_count, 2);
    assert_int_equal(c.app_ids[1], 202);
    tmp_remove(&t);

    tmp_write(&t, "app:\n  appIds: \"301, 302\"\n");
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_OK);
    assert_int_equal(c.app_id_count, 2);
    assert_int_equal(c.app_ids[0], 301);
    tmp_remove(&t);

    tmp_write(&t, "app:\n  appIds: []\n");
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_ERR);
    assert_err_mentions(err, "app.appIds", "1..64", NULL);
    tmp_remove(&t);

    tmp_write(&t, "app:\n  appIds: [101, [102]]\n");
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_ERR);
    assert_err_mentions(err, "app.appIds", NULL);
    tmp_remove(&t);
}

static void test_app_ids_from_env_and_flag(void **state) {
    char *env[] = {"IMGATE_APP_APPIDS=101,102", NULL};
    config_t c;
    char err[256];
    assert_int_equal(load(&c, env, err, sizeof err, NULL, 2, "-c", "/dev/null"), CONFIG_OK);
    assert_int_equal(c.app_id_count, 2);
    assert_int_equal(c.app_ids[0], 101);
    assert_int_equal(c.app_ids[1], 102);
    assert_int_equal(load(&c, env, err, sizeof err, NULL, 4, "-c", "/dev/null", "--app.appIds",
                          " [ 5 , 6 ,7 ] "),
                     CONFIG_OK);
    assert_int_equal(c.app_id_count, 3);
    assert_int_equal(c.app_ids[2], 7);
}

static void test_app_ids_invalid(void **state) {
    config_t c;
    char err[256];
    config_defaults(&c);
    const char *bad[] = {"",         " ",       "[]",         "0",       "101,", ",101",
                         "101,,102", "101,abc", "4294967296", "101,101", "-5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (config_set(&c, "app.appIds", bad[i], err, sizeof err) != CONFIG_ERR)
            fail_msg("appIds \"%s\" accepted", bad[i]);
        assert_err_mentions(err, "app.appIds", NULL);
        assert_int_equal(c.app_id_count, 4); /* unchanged on error */
    }
    char many[1024];
    size_t n = 0;
    for (int i = 1; i <= CONFIG_MAX_APPS; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "%s%d", i > 1 ? "," : "", i);
    assert_int_equal(config_set(&c, "app.appIds", many, err, sizeof err), CONFIG_OK);
    assert_int_equal(c.app_id_count, CONFIG_MAX_APPS);
    snprintf(many + n, sizeof many - n, ",%d", CONFIG_MAX_APPS + 1);
    assert_int_equal(config_set(&c, "app.appIds", many, err, sizeof err), CONFIG_ERR);
    assert_err_mentions(err, "more than 64", NULL);
}

static void test_app_allowed(void **state) {
    config_t c;
    char err[256];
    config_defaults(&c);
    assert_true(config_app_allowed(&c, 101));
    assert_true(config_app_allowed(&c, 104));
    assert_false(config_app_allowed(&c, 100));
    assert_false(config_app_allowed(&c, 105));
    assert_false(config_app_allowed(&c, 0));
    assert_int_equal(config_set(&c, "app.appIds", "7,4294967295", err, sizeof err), CONFIG_OK);
    assert_true(config_app_allowed(&c, 7));
    assert_true(config_app_allowed(&c, 4294967295u));
    assert_false(config_app_allowed(&c, 101));
}

/* Booleans (app.roomNotices): the spellings YAML and people use, and nothing else. */
static void test_bool_keys(void **state) {
    config_t c;
    char err[256];
    config_defaults(&c);
    assert_true(c.room_notices);
    static const char *const off[] = {"false", "FALSE", "no", "off", "0"};
    static const char *const on[] = {"true", "Yes", "ON", "1"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        c.room_notices = true;
        assert_int_equal(config_set(&c, "app.roomNotices", off[i], err, sizeof err), CONFIG_OK);
        assert_false(c.room_notices);
    }
    for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
        c.room_notices = false;
        assert_int_equal(config_set(&c, "app.roomNotices", on[i], err, sizeof err), CONFIG_OK);
        assert_true(c.room_notices);
    }
    assert_int_equal(config_set(&c, "app.roomNotices", "maybe", err, sizeof err), CONFIG_ERR);
    assert_non_null(strstr(err, "app.roomNotices"));
    assert_true(c.room_notices); /* unchanged on error */
}

/* auth.jwtSecret and auth.jwtPublicKey: from the file, the environment and flags; both at once
 * is allowed (a token's alg picks the key); a secret over 255 bytes is refused, not cut, and the
 * message does not repeat it. Their checks (length, a readable key) are im/auth's, at start-up. */
static void test_auth_keys(void **state) {
    tmpfile_t t;
    tmp_write(&t, "auth:\n  jwtSecret: \"from the file, thirty-two bytes..\"\n"
                  "  jwtPublicKey: /etc/imgate/jwt.pem\n");
    config_t c;
    char err[512];
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 2, "--config", t.path), CONFIG_OK);
    assert_string_equal(c.auth_jwt_secret, "from the file, thirty-two bytes..");
    assert_string_equal(c.auth_jwt_public_key, "/etc/imgate/jwt.pem");
    char *env[] = {"IMGATE_AUTH_JWTSECRET=from the environment, 32 bytes+", NULL};
    assert_int_equal(
        load(&c, env, err, sizeof err, NULL, 3, "--config", t.path, "--auth.jwtPublicKey=/k.pem"),
        CONFIG_OK);
    assert_string_equal(c.auth_jwt_secret, "from the environment, 32 bytes+");
    assert_string_equal(c.auth_jwt_public_key, "/k.pem");
    tmp_remove(&t);

    /* 255 bytes fit; 256 are an error wherever they come from, and the value is not echoed. */
    char longv[CONFIG_STR + 1], envv[CONFIG_STR + 64];
    memset(longv, 's', CONFIG_STR);
    longv[CONFIG_STR - 1] = '\0';
    config_defaults(&c);
    assert_int_equal(config_set(&c, "auth.jwtSecret", longv, err, sizeof err), CONFIG_OK);
    assert_int_equal(strlen(c.auth_jwt_secret), CONFIG_STR - 1);
    longv[CONFIG_STR - 1] = 's';
    longv[CONFIG_STR] = '\0';
    assert_int_equal(config_set(&c, "auth.jwtSecret", longv, err, sizeof err), CONFIG_ERR);
    assert_err_mentions(err, "auth.jwtSecret", "longer than 255", NULL);
    assert_null(strstr(err, "ssssssss"));
    assert_int_equal(strlen(c.auth_jwt_secret), CONFIG_STR - 1); /* unchanged */
    snprintf(envv, sizeof envv, "IMGATE_AUTH_JWTSECRET=%s", longv);
    char *env2[] = {envv, NULL};
    assert_int_equal(load(&c, env2, err, sizeof err, NULL, 2, "--config", "/dev/null"), CONFIG_ERR);
    assert_err_mentions(err, "IMGATE_AUTH_JWTSECRET", "longer than 255", NULL);
    assert_null(strstr(err, "ssssssss"));
    assert_int_equal(load(&c, NULL, err, sizeof err, NULL, 4, "--config", "/dev/null",
                          "--auth.jwtSecret", longv),
                     CONFIG_ERR);
    assert_err_mentions(err, "flag", "auth.jwtSecret", "longer than 255", NULL);
    assert_int_equal(config_set(&c, "auth.jwtPublicKey", longv, err, sizeof err), CONFIG_ERR);
    assert_err_mentions(err, "auth.jwtPublicKey", "longer than 255", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_without_file_gives_defaults),
        cmocka_unit_test(test_default_file_is_read),
        cmocka_unit_test(test_seed_yaml_loads),
        cmocka_unit_test(test_example_file_matches_defaults),
        cmocka_unit_test(test_yaml_keys_case_insensitive_unknown_ignored),
        cmocka_unit_test(test_yaml_null_and_empty),
        cmocka_unit_test(test_yaml_syntax_error_has_line),
        cmocka_unit_test(test_yaml_bad_values),
        cmocka_unit_test(test_yaml_alias_loop_bounded),
        cmocka_unit_test(test_missing_config_file),
        cmocka_unit_test(test_env_overrides_file),
        cmocka_unit_test(test_env_bad_value_names_variable),
        cmocka_unit_test(test_flag_overrides_env),
        cmocka_unit_test(test_flag_forms),
        cmocka_unit_test(test_flag_errors),
        cmocka_unit_test(test_bad_number),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_same_ports_refused),
        cmocka_unit_test(test_help_lists_every_key),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_app_ids_from_yaml_list),
        cmocka_unit_test(test_app_ids_from_env_and_flag),
        cmocka_unit_test(test_app_ids_invalid),
        cmocka_unit_test(test_app_allowed),
        cmocka_unit_test(test_bool_keys),
        cmocka_unit_test(test_auth_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
