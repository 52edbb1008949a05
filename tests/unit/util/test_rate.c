/* Unit tests for src/util/rate.{h,c}: the per-connection bucket (milliseconds, 32-bit clock that
 * wraps) and the node's shared bucket (microseconds, threads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/rate.h"

/* A fresh bucket takes `burst` at once, then one per interval. */
static void test_burst_then_rate(void **state) {
    uint32_t tat = 0, now = 5000;
    for (int i = 0; i < 10; i++)
        assert_true(rate_take_ms(&tat, now, 50, 10));
    assert_false(rate_take_ms(&tat, now, 50, 10));
    assert_false(rate_take_ms(&tat, now + 19, 50, 10));
    assert_true(rate_take_ms(&tat, now + 20, 50, 10)); /* 20 ms per token at 50/s */
    assert_false(rate_take_ms(&tat, now + 20, 50, 10));
    /* Over a whole second at that rate: exactly 50 more. */
    int ok = 0;
    for (uint32_t t = now + 21; t <= now + 1020; t++)
        ok += rate_take_ms(&tat, t, 50, 10);
    assert_int_equal(ok, 50);
}

/* Idle refills up to the burst, never past it. */
static void test_idle_refills_to_burst_only(void **state) {
    uint32_t tat = 0, now = 100;
    for (int i = 0; i < 5; i++)
        assert_true(rate_take_ms(&tat, now, 10, 5));
    assert_false(rate_take_ms(&tat, now, 10, 5));
    now += 60000;
    int ok = 0;
    for (int i = 0; i < 20; i++)
        ok += rate_take_ms(&tat, now, 10, 5);
    assert_int_equal(ok, 5);
}

/* The clock wraps at 2^32 ms: the bucket keeps working across it. */
static void test_clock_wrap(void **state) {
    uint32_t tat = 0, now = UINT32_MAX - 5; /* the stored time wraps first */
    for (int i = 0; i < 3; i++)
        assert_true(rate_take_ms(&tat, now, 100, 3));
    assert_false(rate_take_ms(&tat, now, 100, 3));
    now += 15; /* wrapped: one token back (10 ms each), not a full bucket */
    assert_true(now < 100);
    assert_true(rate_take_ms(&tat, now, 100, 3));
    assert_false(rate_take_ms(&tat, now, 100, 3));
    now += 40; /* full again: three, not more */
    for (int i = 0; i < 3; i++)
        assert_true(rate_take_ms(&tat, now, 100, 3));
    assert_false(rate_take_ms(&tat, now, 100, 3));
}

static void test_off(void **state) {
    uint32_t tat = 0;
    for (int i = 0; i < 100000; i++)
        assert_true(rate_take_ms(&tat, 7, 0, 1));
}

/* The shared bucket: exactly rate per second after the burst, and the wait it reports. */
static void test_limiter_refill_is_the_configured_rate(void **state) {
    rate_limiter_t l;
    rate_limiter_init(&l, 7, 3); /* 142 857 µs per token */
    uint64_t now = 1000000, wait = 0;
    int ok = 0;
    for (int i = 0; i < 10; i++)
        ok += rate_limiter_take(&l, now, &wait);
    assert_int_equal(ok, 3);
    assert_true(wait > 0 && wait <= 142857);
    ok = 0;
    for (uint64_t t = now; t < now + 10000000; t += 1000) /* 10 s, a try every ms */
        ok += rate_limiter_take(&l, t, NULL);
    assert_in_range(ok, 69, 71); /* 7/s, not 1/s */
    rate_limiter_free(&l);

    rate_limiter_init(&l, 0, 1);
    for (int i = 0; i < 1000; i++)
        assert_true(rate_limiter_take(&l, now, NULL));
    rate_limiter_free(&l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_idle_refills_to_burst_only),
        cmocka_unit_test(test_clock_wrap),
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_limiter_refill_is_the_configured_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
