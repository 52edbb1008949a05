/* Unit tests for src/util/mailbox.c: order, the capacity bound and its counters, posts after
 * close, and several producer threads against one loop (this test also runs under
 * ThreadSanitizer in `make test`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/mailbox.h"

typedef struct {
    uint32_t seen[64];
    uint32_t count;
    void *ctx_seen;
} record_t;

static record_t *g_rec;

static void record(void *ctx, void *arg) {
    g_rec->ctx_seen = ctx;
    g_rec->seen[g_rec->count++ % 64] = (uint32_t)(uintptr_t)arg;
}

static void test_runs_in_order_with_ctx(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    mailbox_t mb;
    record_t rec = {0};
    g_rec = &rec;
    int ctx;
    assert_int_equal(mailbox_init(&mb, &loop, 100, &ctx), 0);
    for (uintptr_t i = 1; i <= 40; i++)
        assert_int_equal(mailbox_post(&mb, record, (void *)i), 0);
    assert_int_equal(rec.count, 0); /* deferred, even on the owner's thread */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(rec.count, 40);
    assert_ptr_equal(rec.ctx_seen, &ctx);
    for (uint32_t i = 0; i < 40; i++)
        assert_int_equal(rec.seen[i], i + 1);
    mailbox_close(&mb);
    uv_run(&loop, UV_RUN_NOWAIT);
    mailbox_free(&mb);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_capacity_is_a_bound_and_counted(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    mailbox_t mb;
    record_t rec = {0};
    g_rec = &rec;
    assert_int_equal(mailbox_init(&mb, &loop, 300, NULL), 0); /* spans two chunks */
    for (uintptr_t i = 0; i < 300; i++)
        assert_int_equal(mailbox_post(&mb, record, (void *)i), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(mailbox_post(&mb, record, NULL), MAILBOX_ERR_FULL);
    /* An answer to a request in flight is never refused for capacity. */
    assert_int_equal(mailbox_post_always(&mb, record, (void *)7), 0);
    mailbox_stats_t st;
    mailbox_get_stats(&mb, &st);
    assert_int_equal(st.posted, 301);
    assert_int_equal(st.dropped, 5);
    assert_int_equal(st.depth, 301);
    assert_int_equal(st.high_water, 301);
    assert_int_equal(mailbox_drain(&mb), 301);
    assert_int_equal(rec.count, 301);
    mailbox_get_stats(&mb, &st);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.high_water, 301);
    /* Room again once drained. */
    assert_int_equal(mailbox_post(&mb, record, NULL), 0);
    mailbox_close(&mb);
    uv_run(&loop, UV_RUN_NOWAIT);
    mailbox_free(&mb); /* runs the one still queued */
    assert_int_equal(rec.count, 302);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_post_after_close_is_an_error(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    mailbox_t mb;
    record_t rec = {0};
    g_rec = &rec;
    assert_int_equal(mailbox_init(&mb, &loop, 10, NULL), 0);
    assert_int_equal(mailbox_post(&mb, record, (void *)1), 0);
    mailbox_close(&mb);
    mailbox_close(&mb); /* idempotent */
    assert_int_equal(mailbox_post(&mb, record, (void *)2), MAILBOX_ERR_CLOSED);
    assert_int_equal(mailbox_post_always(&mb, record, (void *)3), MAILBOX_ERR_CLOSED);
    mailbox_stats_t st;
    mailbox_get_stats(&mb, &st);
    assert_int_equal(st.dropped, 2);
    /* The loop can end: the mailbox holds no handle open any more. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(rec.count, 0);
    mailbox_free(&mb); /* the task queued before the close still runs */
    assert_int_equal(rec.count, 1);
    assert_int_equal(rec.seen[0], 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- threads ---- */

#define PRODUCERS    4
#define PER_PRODUCER 50000

typedef struct {
    mailbox_t *mb;
    uint32_t id;
    uint32_t full; /* posts refused for capacity, then retried */
} producer_t;

typedef struct {
    uint32_t next[PRODUCERS]; /* the next sequence number expected from each producer */
    uint32_t total;
    uint32_t out_of_order;
    mailbox_t *mb;
} consumer_t;

static consumer_t g_cons;

/* arg packs (producer, sequence). Runs on the loop's thread only. */
static void consume(void *ctx, void *arg) {
    uintptr_t v = (uintptr_t)arg;
    uint32_t p = (uint32_t)(v >> 32), seq = (uint32_t)v;
    if (g_cons.next[p] != seq)
        g_cons.out_of_order++;
    g_cons.next[p] = seq + 1;
    if (++g_cons.total == PRODUCERS * PER_PRODUCER)
        mailbox_close(g_cons.mb); /* the loop ends once every task has run */
}

static void produce(void *arg) {
    producer_t *p = arg;
    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        void *task = (void *)(((uintptr_t)p->id << 32) | i);
        int r;
        while ((r = mailbox_post(p->mb, consume, task)) == MAILBOX_ERR_FULL) {
            p->full++;
            uv_sleep(0);
        }
        assert_int_equal(r, 0);
    }
}

static void test_many_producers_one_loop(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    mailbox_t mb;
    /* A small capacity, so that producers meet the bound and the loop drains in between. */
    assert_int_equal(mailbox_init(&mb, &loop, 1000, NULL), 0);
    memset(&g_cons, 0, sizeof g_cons);
    g_cons.mb = &mb;
    producer_t prod[PRODUCERS];
    uv_thread_t th[PRODUCERS];
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        prod[i] = (producer_t){.mb = &mb, .id = i};
        assert_int_equal(uv_thread_create(&th[i], produce, &prod[i]), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < PRODUCERS; i++)
        uv_thread_join(&th[i]);
    assert_int_equal(g_cons.total, PRODUCERS * PER_PRODUCER);
    assert_int_equal(g_cons.out_of_order, 0);
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(g_cons.next[i], PER_PRODUCER);
    mailbox_stats_t st;
    mailbox_get_stats(&mb, &st);
    assert_int_equal(st.posted, PRODUCERS * PER_PRODUCER);
    assert_true(st.high_water <= 1000);
    uint32_t full = 0;
    for (int i = 0; i < PRODUCERS; i++)
        full += prod[i].full;
    assert_int_equal(st.dropped, full);
    mailbox_free(&mb);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Producers keep posting while the owner closes: each post either queues (and then runs, at the
 * latest in mailbox_free) or fails with MAILBOX_ERR_CLOSED; nothing is lost or run twice. */
typedef struct {
    mailbox_t *mb;
    _Atomic uint32_t *ran;
    uint32_t queued;
} racer_t;

static void count_run(void *ctx, void *arg) {
    atomic_fetch_add((_Atomic uint32_t *)arg, 1);
}

static void race(void *arg) {
    racer_t *r = arg;
    for (;;) {
        int rc = mailbox_post(r->mb, count_run, (void *)r->ran);
        if (rc == MAILBOX_ERR_CLOSED)
            return;
        if (rc == 0)
            r->queued++;
    }
}

static void close_soon(uv_timer_t *t) {
    mailbox_close(t->data);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_close_while_producers_post(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    mailbox_t mb;
    _Atomic uint32_t ran = 0;
    assert_int_equal(mailbox_init(&mb, &loop, 100000, NULL), 0);
    racer_t rs[3];
    uv_thread_t th[3];
    for (int i = 0; i < 3; i++) {
        rs[i] = (racer_t){.mb = &mb, .ran = &ran};
        assert_int_equal(uv_thread_create(&th[i], race, &rs[i]), 0);
    }
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &mb;
    uv_timer_start(&t, close_soon, 50, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++)
        uv_thread_join(&th[i]);
    mailbox_free(&mb);
    uint32_t queued = rs[0].queued + rs[1].queued + rs[2].queued;
    assert_true(queued > 0);
    assert_int_equal(atomic_load(&ran), queued);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_in_order_with_ctx),
        cmocka_unit_test(test_capacity_is_a_bound_and_counted),
        cmocka_unit_test(test_post_after_close_is_an_error),
        cmocka_unit_test(test_many_producers_one_loop),
        cmocka_unit_test(test_close_while_producers_post),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
