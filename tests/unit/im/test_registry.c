/* Unit tests for src/im/registry.c: multi-device entries, presence events (first connection up,
 * last one down), their order per user when several threads log the same users in and out at
 * once, the snapshot of local users, and dropped events counted. Also run under
 * ThreadSanitizer in `make test`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "im/registry.h"

static const uint32_t rooms[] = {101, 102};

/* ---- a subscriber that records every event ---- */

#define MAX_EVENTS 400000

typedef struct {
    bool up;
    uint32_t app_id, online;
    uint64_t seq;
    char user[IM_USER_ID_MAX + 1];
    char client[PRESENCE_CLIENT_MAX];
} seen_t;

static seen_t *g_seen;
static size_t g_nseen;

static void record(void *ctx, void *arg) {
    presence_event_t *ev = arg;
    assert_true(g_nseen < MAX_EVENTS);
    seen_t *s = &g_seen[g_nseen++];
    s->up = ev->up;
    s->app_id = ev->app_id;
    s->online = ev->online;
    s->seq = ev->seq;
    memcpy(s->user, ev->user, ev->user_len);
    s->user[ev->user_len] = '\0';
    snprintf(s->client, sizeof s->client, "%s", ev->client);
    presence_event_unref(ev);
}

typedef struct {
    uv_loop_t loop;
    mailbox_t mb;
} sub_t;

static void sub_start(sub_t *s, uint32_t capacity, bool want_client) {
    g_seen = calloc(MAX_EVENTS, sizeof *g_seen);
    g_nseen = 0;
    uv_loop_init(&s->loop);
    assert_int_equal(registry_init(rooms, 2), 0);
    assert_int_equal(mailbox_init(&s->mb, &s->loop, capacity, NULL), 0);
    assert_int_equal(registry_subscribe(&s->mb, record, want_client), 0);
}

static void sub_stop(sub_t *s) {
    mailbox_close(&s->mb);
    uv_run(&s->loop, UV_RUN_NOWAIT);
    mailbox_free(&s->mb);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    registry_free();
    free(g_seen);
}

static void test_multi_device_and_events(void **state) {
    sub_t s;
    sub_start(&s, 100, true);
    struct reg_user *a1, *a2, *b1, *c1;
    assert_int_equal(registry_add(101, "alice", 5, 11, "10.0.0.1:5", &a1, NULL), 0);
    assert_int_equal(registry_add(101, "alice", 5, 12, "10.0.0.2:6", &a2, NULL), 0);
    assert_ptr_equal(a1, a2); /* one entry, two connections */
    assert_int_equal(registry_add(102, "alice", 5, 13, NULL, &b1, NULL), 0); /* another room */
    assert_int_equal(registry_add(101, "carol", 5, 14, NULL, &c1, NULL), 0);
    assert_int_equal(registry_add(103, "dave", 4, 15, NULL, &c1, NULL), -EINVAL); /* not a room */
    assert_int_equal(registry_add(101, "", 0, 16, NULL, &c1, NULL), -EINVAL);
    assert_int_equal(registry_add(101, "a-userid-of-20-bytes", 20, 16, NULL, &c1, NULL), -EINVAL);

    conn_ref_t refs[4];
    assert_int_equal(registry_lookup(101, "alice", 5, refs, 4), 2);
    assert_true((refs[0] == 11 && refs[1] == 12) || (refs[0] == 12 && refs[1] == 11));
    assert_int_equal(registry_lookup(101, "alice", 5, refs, 1), 2); /* the count, not max */
    assert_int_equal(registry_lookup(101, "bob", 3, refs, 4), 0);
    assert_true(registry_online(0, "alice", 5));
    assert_true(registry_online(102, "alice", 5));
    assert_false(registry_online(102, "carol", 5));
    assert_int_equal(registry_user_count(), 3);
    assert_int_equal(registry_room_online(0), 2);
    assert_int_equal(registry_room_online(1), 1);

    registry_remove(a1, 11); /* alice still has connection 12 in 101: no event */
    registry_remove(a2, 12);
    uv_run(&s.loop, UV_RUN_NOWAIT);
    /* up alice@101, up alice@102, up carol@101, down alice@101 */
    assert_int_equal(g_nseen, 4);
    assert_true(g_seen[0].up && g_seen[0].app_id == 101 && !strcmp(g_seen[0].user, "alice"));
    assert_string_equal(g_seen[0].client, "10.0.0.1:5"); /* the connection that brought it up */
    assert_int_equal(g_seen[0].online, 1);
    assert_true(g_seen[1].up && g_seen[1].app_id == 102);
    assert_true(g_seen[2].up && !strcmp(g_seen[2].user, "carol") && g_seen[2].online == 2);
    assert_true(!g_seen[3].up && g_seen[3].app_id == 101 && !strcmp(g_seen[3].user, "alice"));
    assert_int_equal(g_seen[3].online, 1);
    for (size_t i = 1; i < g_nseen; i++)
        assert_true(g_seen[i].seq > g_seen[i - 1].seq);
    assert_false(registry_online(101, "alice", 5));
    assert_int_equal(registry_user_count(), 2);

    buf_t b = {0};
    assert_int_equal(registry_list_users(101, &b), 1);
    assert_memory_equal(b.data, "[\"carol\"]", b.len);
    b.len = 0;
    assert_int_equal(registry_list_user_keys(&b), 2);
    buf_free(&b);
    registry_remove(b1, 13);
    registry_remove(c1, 14);
    sub_stop(&s);
}

/* The snapshot gives each user with the seq of the event that brought it up. */
typedef struct {
    int count;
    uint64_t carol_seq;
} visit_t;

static void visit(void *ctx, uint32_t app_id, const char *user, size_t len, uint32_t seq) {
    visit_t *v = ctx;
    v->count++;
    if (len == 5 && memcmp(user, "carol", 5) == 0)
        v->carol_seq = seq;
}

static void test_snapshot_carries_seq(void **state) {
    sub_t s;
    sub_start(&s, 100, false);
    struct reg_user *u[3];
    registry_add(101, "alice", 5, 1, NULL, &u[0], NULL);
    registry_add(101, "carol", 5, 2, NULL, &u[1], NULL);
    registry_add(102, "carol", 5, 3, NULL, &u[2], NULL);
    uv_run(&s.loop, UV_RUN_NOWAIT);
    visit_t v = {0};
    registry_foreach_user(visit, &v);
    assert_int_equal(v.count, 3);
    assert_true(v.carol_seq == g_seen[1].seq || v.carol_seq == g_seen[2].seq);
    assert_string_equal(g_seen[1].client, ""); /* nobody asked for it */
    for (int i = 0; i < 3; i++)
        registry_remove(u[i], (conn_ref_t)i + 1);
    sub_stop(&s);
}

static void test_full_mailbox_counts_dropped_events(void **state) {
    sub_t s;
    sub_start(&s, 2, false);
    struct reg_user *u[4];
    char name[8];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "u%d", i);
        assert_int_equal(
            registry_add(101, name, strlen(name), (conn_ref_t)i + 1, NULL, &u[i], NULL), 0);
    }
    assert_int_equal(registry_events_dropped(), 2);
    uv_run(&s.loop, UV_RUN_NOWAIT);
    assert_int_equal(g_nseen, 2);
    for (int i = 0; i < 4; i++)
        registry_remove(u[i], (conn_ref_t)i + 1);
    sub_stop(&s);
}

/* ---- threads ---- */

#define THREADS 4
#define KEYS    3
#define ROUNDS  20000

typedef struct {
    uint32_t id;
    uint32_t rng;
} churner_t;

/* Each thread logs its own connections of the same few users in and out at random: a user
 * goes up and down across threads all the time. */
static void churn(void *arg) {
    churner_t *t = arg;
    struct reg_user *mine[KEYS] = {0};
    char name[8];
    for (int r = 0; r < ROUNDS; r++) {
        t->rng ^= t->rng << 13;
        t->rng ^= t->rng >> 17;
        t->rng ^= t->rng << 5;
        int k = (int)(t->rng % KEYS);
        conn_ref_t ref = ((conn_ref_t)t->id << 32) | (conn_ref_t)k;
        if (mine[k]) {
            registry_remove(mine[k], ref);
            mine[k] = NULL;
        } else {
            snprintf(name, sizeof name, "k%d", k);
            assert_int_equal(registry_add(101, name, strlen(name), ref, NULL, &mine[k], NULL), 0);
        }
    }
    for (int k = 0; k < KEYS; k++)
        if (mine[k])
            registry_remove(mine[k], ((conn_ref_t)t->id << 32) | (conn_ref_t)k);
}

static void test_transitions_keep_their_order_across_threads(void **state) {
    sub_t s;
    sub_start(&s, MAX_EVENTS, false);
    uv_thread_t th[THREADS];
    churner_t ch[THREADS];
    for (uint32_t i = 0; i < THREADS; i++) {
        ch[i] = (churner_t){.id = i + 1, .rng = 2463534242u * (i + 1)};
        assert_int_equal(uv_thread_create(&th[i], churn, &ch[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        uv_thread_join(&th[i]);
    uv_run(&s.loop, UV_RUN_NOWAIT);
    assert_int_equal(registry_events_dropped(), 0);
    assert_int_equal(registry_user_count(), 0);
    assert_true(g_nseen > 100); /* users really went up and down many times */
    /* Per user, in the order the subscriber got them: up, down, up, down, ..., ending down,
     * each seq greater than the one before. */
    for (int k = 0; k < KEYS; k++) {
        char name[8];
        snprintf(name, sizeof name, "k%d", k);
        bool up = false;
        uint64_t last = 0;
        int n = 0;
        for (size_t i = 0; i < g_nseen; i++) {
            if (strcmp(g_seen[i].user, name) != 0)
                continue;
            if (g_seen[i].up == up)
                fail_msg("%s: event %d is %s twice in a row", name, n, up ? "up" : "down");
            if (g_seen[i].seq <= last)
                fail_msg("%s: seq %llu after %llu", name, (unsigned long long)g_seen[i].seq,
                         (unsigned long long)last);
            up = g_seen[i].up;
            last = g_seen[i].seq;
            n++;
        }
        assert_false(up);
        assert_true(n >= 2);
    }
    sub_stop(&s);
}

/* Snapshots taken while the users churn: applied in mailbox order with the events, every user a
 * part lists is up, with that very seq, in the state the earlier events built. */
typedef struct {
    bool up;
    uint64_t seq;
} model_t;

static model_t g_model[KEYS];
static int g_parts, g_checked, g_bad;

static int key_of(const char *user, size_t len) {
    return len == 2 && user[0] == 'k' ? user[1] - '0' : -1;
}

static void model_event(void *ctx, void *arg) {
    presence_event_t *ev = arg;
    int k = key_of(ev->user, ev->user_len);
    if (k >= 0)
        g_model[k] = (model_t){ev->up, ev->seq};
    presence_event_unref(ev);
}

static void model_snapshot(void *ctx, void *arg) {
    registry_snapshot_t *part = arg;
    for (uint32_t i = 0; i < part->count; i++) {
        int k = key_of(part->users[i].user, part->users[i].user_len);
        if (k < 0)
            continue;
        g_checked++;
        if (!g_model[k].up || (uint32_t)g_model[k].seq != part->users[i].seq)
            g_bad++;
    }
    g_parts++;
    free(part);
}

static void snapshots_while_churning(void *arg) {
    mailbox_t *mb = arg;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(registry_snapshot(mb, model_snapshot), 0);
        uv_sleep(1);
    }
}

static void test_snapshot_stands_between_events(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    mailbox_t mb;
    assert_int_equal(registry_init(rooms, 2), 0);
    assert_int_equal(mailbox_init(&mb, &loop, MAX_EVENTS, NULL), 0);
    assert_int_equal(registry_subscribe(&mb, model_event, false), 0);
    memset(g_model, 0, sizeof g_model);
    g_parts = g_checked = g_bad = 0;
    uv_thread_t th[THREADS + 1];
    churner_t ch[THREADS];
    for (uint32_t i = 0; i < THREADS; i++) {
        ch[i] = (churner_t){.id = i + 1, .rng = 88172645u * (i + 3)};
        assert_int_equal(uv_thread_create(&th[i], churn, &ch[i]), 0);
    }
    assert_int_equal(uv_thread_create(&th[THREADS], snapshots_while_churning, &mb), 0);
    for (int i = 0; i <= THREADS; i++)
        uv_thread_join(&th[i]);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(g_parts, 200 * 64);
    assert_true(g_checked > 0);
    assert_int_equal(g_bad, 0);
    mailbox_close(&mb);
    uv_run(&loop, UV_RUN_NOWAIT);
    mailbox_free(&mb);
    assert_int_equal(uv_loop_close(&loop), 0);
    registry_free();
}

/* Many users in both rooms: the shards' buckets grow while entries stay reachable; the same
 * userId in two rooms is two entries; removals in any order unlink the right one; a user's
 * devices move from the inline reference to an array and back down to none. */
static void test_many_users_and_devices(void **state) {
    (void)state;
    enum { USERS = 20000 };
    assert_int_equal(registry_init(rooms, 2), 0);
    static struct reg_user *entry[2][USERS];
    char name[IM_USER_ID_MAX + 1];
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < USERS; i++) {
            int n = snprintf(name, sizeof name, "user-%d", i);
            conn_ref_t ref = conn_ref_make((uint32_t)r, (uint32_t)i, 1);
            assert_int_equal(registry_add(rooms[r], name, (size_t)n, ref, NULL, &entry[r][i], NULL),
                             0);
        }
    }
    assert_int_equal(registry_user_count(), 2 * USERS);
    /* the longest id the protocol allows */
    const char *longest = "abcdefghijklmnopqrs";
    struct reg_user *lu;
    assert_int_equal(registry_add(101, longest, strlen(longest), 7, NULL, &lu, NULL), 0);
    size_t len;
    assert_string_equal(registry_user_id(lu, &len), longest);
    assert_int_equal(len, IM_USER_ID_MAX);
    assert_int_equal(registry_user_app(lu), 101);
    registry_remove(lu, 7);
    for (int i = 0; i < USERS; i++) {
        int n = snprintf(name, sizeof name, "user-%d", i);
        conn_ref_t got[2];
        assert_int_equal(registry_lookup(102, name, (size_t)n, got, 2), 1);
        assert_true(got[0] == conn_ref_make(1, (uint32_t)i, 1));
        assert_int_equal(registry_user_app(entry[1][i]), 102);
    }
    /* room 101: every odd user leaves, from the last to the first */
    for (int i = USERS - 1; i >= 0; i--)
        if (i % 2)
            registry_remove(entry[0][i], conn_ref_make(0, (uint32_t)i, 1));
    assert_int_equal(registry_user_count(), 2 * USERS - USERS / 2);
    assert_int_equal(registry_room_online(0), USERS / 2);
    for (int i = 0; i < USERS; i++) {
        int n = snprintf(name, sizeof name, "user-%d", i);
        assert_int_equal(registry_online(101, name, (size_t)n), i % 2 == 0);
        assert_true(registry_online(102, name, (size_t)n));
    }
    buf_t out = {0};
    assert_int_equal(registry_list_users(101, &out), USERS / 2);
    buf_free(&out);
    /* devices: one inline, then 5 in an array, removed in a mixed order */
    const char *dev = "user-0";
    struct reg_user *d = entry[0][0];
    for (uint32_t k = 1; k <= 4; k++) {
        struct reg_user *same;
        assert_int_equal(
            registry_add(101, dev, strlen(dev), conn_ref_make(0, 100000 + k, 1), NULL, &same, NULL),
            0);
        assert_ptr_equal(same, d);
    }
    conn_ref_t got[8];
    assert_int_equal(registry_lookup(101, dev, strlen(dev), got, 8), 5);
    uint32_t order[] = {100002, 0, 100004, 100001};
    for (int k = 0; k < 4; k++) {
        registry_remove(d, conn_ref_make(0, order[k], 1));
        assert_int_equal(registry_lookup(101, dev, strlen(dev), got, 8), (uint32_t)(4 - k));
        for (uint32_t j = 0; j < (uint32_t)(4 - k); j++)
            for (int m = 0; m <= k; m++)
                assert_false(got[j] == conn_ref_make(0, order[m], 1));
    }
    assert_true(got[0] == conn_ref_make(0, 100003, 1));
    registry_free();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multi_device_and_events),
        cmocka_unit_test(test_snapshot_carries_seq),
        cmocka_unit_test(test_full_mailbox_counts_dropped_events),
        cmocka_unit_test(test_transitions_keep_their_order_across_threads),
        cmocka_unit_test(test_snapshot_stands_between_events),
        cmocka_unit_test(test_many_users_and_devices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
