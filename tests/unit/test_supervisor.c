/* Unit tests for src/supervisor.c (the parts that need no processes: the restart backoff and the
 * children's node ids) and for the configuration it depends on (app.processes, its --processes
 * flag, the checks against redis.addr and cluster.nodeId). The processes themselves are tested
 * in tests/integration/test_supervisor.py. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "supervisor.h"

/* A child that dies at once again and again waits 100, 200, 400 ... ms, never more than 5 s. */
static void test_backoff_doubles_to_the_cap(void **state) {
    uint32_t want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    uint32_t b = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        b = supervisor_backoff(b, 20);
        assert_int_equal(b, want[i]);
    }
}

/* A run of 10 s or more starts the sequence again; a shorter one does not. */
static void test_backoff_resets_after_a_stable_run(void **state) {
    assert_int_equal(supervisor_backoff(5000, 10000), 100);
    assert_int_equal(supervisor_backoff(5000, 3600 * 1000ull), 100);
    assert_int_equal(supervisor_backoff(1600, 9999), 3200);
    assert_int_equal(supervisor_backoff(0, 0), 100); /* the first death, however quick */
}

static void test_node_ids(void **state) {
    char id[CONFIG_NODE_ID_MAX + 1];
    assert_int_equal(supervisor_node_id("sv", 0, id, sizeof id), 0);
    assert_string_equal(id, "sv-0");
    assert_int_equal(supervisor_node_id("host:8080-0a1b2c3d", 1023, id, sizeof id), 0);
    assert_string_equal(id, "host:8080-0a1b2c3d-1023");
    /* 64 bytes fit (CONFIG_NODE_ID_MAX), 65 do not, nor anything past the buffer. */
    char base[CONFIG_STR];
    memset(base, 'x', 62);
    base[62] = '\0';
    assert_int_equal(supervisor_node_id(base, 9, id, sizeof id), 0);
    assert_int_equal(strlen(id), 64);
    assert_int_equal(supervisor_node_id(base, 10, id, sizeof id), -ENAMETOOLONG);
    char small[8];
    assert_int_equal(supervisor_node_id("sv", 1, small, sizeof small), 0);
    assert_int_equal(supervisor_node_id("abcdef", 1, small, sizeof small), -ENAMETOOLONG);
}

/* config_load with argv = {"imgate", "--config", "/dev/null", args...} (an empty file, so that no
 * config/app.yaml of the working directory counts) and an empty environment. */
static int load(config_t *cfg, char *err, size_t errlen, int argc, char **args) {
    char *argv[16] = {"imgate", "--config", "/dev/null"};
    for (int i = 0; i < argc; i++)
        argv[i + 3] = args[i];
    char *envp[] = {NULL};
    return config_load(cfg, argc + 3, argv, envp, NULL, err, errlen);
}

static void test_config_processes(void **state) {
    static config_t cfg;
    char err[512];
    assert_int_equal(load(&cfg, err, sizeof err, 0, NULL), CONFIG_OK);
    assert_int_equal(cfg.processes, 1); /* one process, today's behaviour */

    char *a1[] = {"--processes", "3", "--redis.addr", "127.0.0.1:6379"};
    assert_int_equal(load(&cfg, err, sizeof err, 4, a1), CONFIG_OK);
    assert_int_equal(cfg.processes, 3);
    char *a2[] = {"--app.processes=1024", "--redis.addr", "127.0.0.1:6379"};
    assert_int_equal(load(&cfg, err, sizeof err, 3, a2), CONFIG_OK);
    assert_int_equal(cfg.processes, 1024);
    char *a3[] = {"--PROCESSES", "2", "--redis.addr", "127.0.0.1:6379"};
    assert_int_equal(load(&cfg, err, sizeof err, 4, a3), CONFIG_OK);
    assert_int_equal(cfg.processes, 2);

    char *bad[][2] = {{"--processes", "0"},
                      {"--processes", "1025"},
                      {"--processes", "-3"},
                      {"--processes", "2x"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *a[] = {bad[i][0], bad[i][1], "--redis.addr", "127.0.0.1:6379"};
        assert_int_equal(load(&cfg, err, sizeof err, 4, a), CONFIG_ERR);
        assert_non_null(strstr(err, "app.processes"));
    }
    char *a4[] = {"--processes"};
    assert_int_equal(load(&cfg, err, sizeof err, 1, a4), CONFIG_ERR);
    assert_non_null(strstr(err, "needs a value"));
}

/* Several processes without a shared Redis would be separate nodes: refused, naming both keys. */
static void test_config_processes_need_redis(void **state) {
    static config_t cfg;
    char err[512];
    char *a[] = {"--processes", "3"};
    assert_int_equal(load(&cfg, err, sizeof err, 2, a), CONFIG_ERR);
    assert_non_null(strstr(err, "app.processes is 3"));
    assert_non_null(strstr(err, "redis.addr"));
    char *one[] = {"--processes", "1"};
    assert_int_equal(load(&cfg, err, sizeof err, 2, one), CONFIG_OK);
}

/* A given nodeId must leave room for "-<i>" of the last process. */
static void test_config_node_id_room_for_the_suffix(void **state) {
    static config_t cfg;
    char err[512], id[CONFIG_NODE_ID_MAX + 1];
    memset(id, 'n', 62);
    id[62] = '\0';
    char *fits[] = {"--processes", "10", "--redis.addr", "127.0.0.1:6379", "--cluster.nodeId", id};
    assert_int_equal(load(&cfg, err, sizeof err, 6, fits), CONFIG_OK);
    char *over[] = {"--processes", "11", "--redis.addr", "127.0.0.1:6379", "--cluster.nodeId", id};
    assert_int_equal(load(&cfg, err, sizeof err, 6, over), CONFIG_ERR);
    assert_non_null(strstr(err, "cluster.nodeId"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_doubles_to_the_cap),
        cmocka_unit_test(test_backoff_resets_after_a_stable_run),
        cmocka_unit_test(test_node_ids),
        cmocka_unit_test(test_config_processes),
        cmocka_unit_test(test_config_processes_need_redis),
        cmocka_unit_test(test_config_node_id_room_for_the_suffix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
