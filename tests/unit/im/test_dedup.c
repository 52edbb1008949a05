/* Unit tests for src/im/dedup.c: msgID de-duplication with a TTL and a capacity bound.
 * dedup is process-global: every test initialises it and frees it at its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "im/dedup.h"

#define T0 1000u /* an arbitrary monotonic start time */

static bool check(const char *id, uint32_t now) {
    return dedup_check(id, strlen(id), now);
}

static int teardown(void **state) {
    dedup_free();
    return 0;
}

static void test_new_then_duplicate(void **state) {
    assert_int_equal(dedup_init(60, 100), 0);
    assert_int_equal(dedup_size(), 0);
    assert_false(check("msg-1", T0));
    assert_int_equal(dedup_size(), 1);
    assert_true(check("msg-1", T0));
    assert_true(check("msg-1", T0 + 1));
    /* A duplicate is not recorded twice. */
    assert_int_equal(dedup_size(), 1);
    dedup_free();
    assert_int_equal(dedup_size(), 0);
    /* After free the id is forgotten. */
    assert_false(check("msg-1", T0));
}

static void test_different_ids(void **state) {
    assert_int_equal(dedup_init(60, 100), 0);
    assert_false(check("a", T0));
    assert_false(check("b", T0));
    assert_false(check("ab", T0));
    assert_false(check("A", T0));
    assert_int_equal(dedup_size(), 4);
    assert_true(check("a", T0));
    assert_true(check("ab", T0));
    assert_true(check("A", T0));
    /* Lengths are exact: a prefix of a known id is new, and bytes after len do not count. */
    assert_false(dedup_check("abc", 3, T0));
    assert_true(dedup_check("abz", 2, T0));
    /* Ids are bytes: an embedded NUL is part of the id. */
    assert_false(dedup_check("a\0x", 3, T0));
    assert_false(dedup_check("a\0y", 3, T0));
    assert_true(dedup_check("a\0x", 3, T0));
    assert_int_equal(dedup_size(), 7);
}

static void test_empty_id(void **state) {
    assert_int_equal(dedup_init(60, 100), 0);
    assert_false(dedup_check("", 0, T0));
    assert_false(dedup_check("", 0, T0));
    assert_false(dedup_check("ignored", 0, T0));
    assert_int_equal(dedup_size(), 0);
}

static void test_ttl_expiry(void **state) {
    assert_int_equal(dedup_init(10, 100), 0);
    assert_false(check("m", T0));
    assert_false(check("n", T0 + 5));
    /* Within the TTL: duplicate. */
    assert_true(check("m", T0 + 9));
    /* At T0 + 10 "m" is 10 seconds old: expired, new again, and recorded anew. */
    assert_false(check("m", T0 + 10));
    assert_int_equal(dedup_size(), 2);
    /* "n" (T0 + 5) expires at T0 + 15, "m" (T0 + 10) at T0 + 20. */
    assert_true(check("n", T0 + 14));
    assert_false(check("n", T0 + 15));
    assert_int_equal(dedup_size(), 2);
    assert_true(check("m", T0 + 19));
    assert_true(check("n", T0 + 24));
    assert_false(check("m", T0 + 20 + 5));
    /* A check of anything drops what expired: only "x" remains much later. */
    assert_false(check("x", T0 + 1000));
    assert_int_equal(dedup_size(), 1);
    assert_false(check("m", T0 + 1001));
    assert_false(check("n", T0 + 1001));
    assert_int_equal(dedup_size(), 3);
}

/* Monotonic seconds may wrap a uint32_t: expiry compares with wrap-around. */
static void test_ttl_across_wrap(void **state) {
    assert_int_equal(dedup_init(10, 100), 0);
    uint32_t t = UINT32_MAX - 3;
    assert_false(check("w", t)); /* expires at t + 10, which wrapped to 6 */
    assert_true(check("w", t + 1));
    assert_true(check("w", t + 5)); /* now wrapped to 1 */
    assert_false(check("w", t + 10));
}

static void test_capacity_evicts_oldest(void **state) {
    assert_int_equal(dedup_init(3600, 3), 0);
    assert_false(check("1", T0));
    assert_false(check("2", T0 + 1));
    assert_false(check("3", T0 + 2));
    assert_int_equal(dedup_size(), 3);
    /* A fourth forgets "1", the oldest. */
    assert_false(check("4", T0 + 3));
    assert_int_equal(dedup_size(), 3);
    assert_true(check("2", T0 + 3));
    assert_true(check("3", T0 + 3));
    assert_true(check("4", T0 + 3));
    /* "1" is new again, and now pushes out "2". */
    assert_false(check("1", T0 + 4));
    assert_int_equal(dedup_size(), 3);
    assert_true(check("3", T0 + 4));
    assert_true(check("4", T0 + 4));
    assert_true(check("1", T0 + 4));
    assert_false(check("2", T0 + 5)); /* evicts "3" */
    assert_true(check("4", T0 + 5));
    assert_false(check("3", T0 + 5)); /* evicts "4" */
    assert_int_equal(dedup_size(), 3);
}

static void test_capacity_never_exceeded(void **state) {
    enum { CAP = 50, N = 1000 };
    assert_int_equal(dedup_init(3600, CAP), 0);
    char id[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        assert_false(check(id, T0 + (uint32_t)i / 10));
        assert_int_equal(dedup_size(), i < CAP ? (size_t)i + 1 : (size_t)CAP);
    }
    /* Exactly the last CAP ids are remembered (checking a duplicate changes nothing)... */
    for (int i = N - CAP; i < N; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        assert_true(check(id, T0 + 200));
    }
    assert_int_equal(dedup_size(), CAP);
    /* ...and the older ones were forgotten. */
    for (int i = 0; i < N - CAP; i += 7) {
        snprintf(id, sizeof id, "id-%d", i);
        assert_false(check(id, T0 + 200));
        assert_int_equal(dedup_size(), CAP);
    }
}

static void test_id_length_limit(void **state) {
    assert_int_equal(dedup_init(60, 100), 0);
    char id[DEDUP_ID_MAX + 2];
    memset(id, 'k', sizeof id);
    /* 128 bytes: recorded like any other. */
    assert_false(dedup_check(id, DEDUP_ID_MAX, T0));
    assert_int_equal(dedup_size(), 1);
    assert_true(dedup_check(id, DEDUP_ID_MAX, T0));
    /* 127 bytes of the same is another id. */
    assert_false(dedup_check(id, DEDUP_ID_MAX - 1, T0));
    assert_int_equal(dedup_size(), 2);
    /* 129 bytes: never recorded, never a duplicate. */
    assert_false(dedup_check(id, DEDUP_ID_MAX + 1, T0));
    assert_false(dedup_check(id, DEDUP_ID_MAX + 1, T0));
    assert_int_equal(dedup_size(), 2);
    /* Nor is a much longer one. */
    assert_false(dedup_check(id, SIZE_MAX, T0));
    assert_int_equal(dedup_size(), 2);
    /* The last byte of a 128-byte id counts. */
    id[DEDUP_ID_MAX - 1] = 'z';
    assert_false(dedup_check(id, DEDUP_ID_MAX, T0));
    assert_int_equal(dedup_size(), 3);
}

/* init again changes the settings for what comes next. */
static void test_reinit(void **state) {
    assert_int_equal(dedup_init(5, 2), 0);
    assert_false(check("a", T0));
    dedup_free();
    assert_int_equal(dedup_init(100, 10), 0);
    assert_false(check("a", T0));
    assert_true(check("a", T0 + 50));
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "b%d", i);
        assert_false(check(id, T0 + 50));
    }
    assert_int_equal(dedup_size(), 6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_new_then_duplicate, teardown),
        cmocka_unit_test_teardown(test_different_ids, teardown),
        cmocka_unit_test_teardown(test_empty_id, teardown),
        cmocka_unit_test_teardown(test_ttl_expiry, teardown),
        cmocka_unit_test_teardown(test_ttl_across_wrap, teardown),
        cmocka_unit_test_teardown(test_capacity_evicts_oldest, teardown),
        cmocka_unit_test_teardown(test_capacity_never_exceeded, teardown),
        cmocka_unit_test_teardown(test_id_length_limit, teardown),
        cmocka_unit_test_teardown(test_reinit, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
