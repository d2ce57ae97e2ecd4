#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/link/backoff.h"

static void grows_exponentially_within_jitter(void **state) {
    (void) state;
    levee_backoff_t b;
    levee_backoff_init(&b, 100, 5000, 12345);
    uint32_t expected_max = 100;
    for (int i = 0; i < 6; i++) {
        uint32_t d = levee_backoff_next(&b);
        assert_in_range(d, expected_max / 2, expected_max);
        expected_max *= 2;
    }
}

static void never_exceeds_the_cap(void **state) {
    (void) state;
    levee_backoff_t b;
    levee_backoff_init(&b, 100, 5000, 7);
    for (int i = 0; i < 200; i++) {
        uint32_t d = levee_backoff_next(&b);
        assert_true(d <= 5000);
        if (i > 10) {
            assert_true(d >= 2500);
        }
    }
}

static void reset_starts_over(void **state) {
    (void) state;
    levee_backoff_t b;
    levee_backoff_init(&b, 100, 5000, 99);
    for (int i = 0; i < 10; i++) {
        levee_backoff_next(&b);
    }
    levee_backoff_reset(&b);
    assert_in_range(levee_backoff_next(&b), 50, 100);
}

static void workers_with_different_seeds_spread_out(void **state) {
    (void) state;
    levee_backoff_t a, b;
    levee_backoff_init(&a, 1000, 1000, 1);
    levee_backoff_init(&b, 1000, 1000, 2);
    int differ = 0;
    for (int i = 0; i < 20; i++) {
        differ += levee_backoff_next(&a) != levee_backoff_next(&b);
    }
    assert_true(differ > 10);
}

/* levee_backoff_delay: random 0 gives the low end (half), random = half the
 * full delay. (These were the Redis client's own backoff tests; it now uses
 * this function.) */
static void delay_grows_then_caps(void **state) {
    (void) state;
    assert_int_equal(levee_backoff_delay(0, 20, 1000, 0), 10);
    assert_int_equal(levee_backoff_delay(0, 20, 1000, 10), 20);
    assert_int_equal(levee_backoff_delay(1, 20, 1000, 20), 40);
    assert_int_equal(levee_backoff_delay(2, 20, 1000, 40), 80);
    assert_int_equal(levee_backoff_delay(49, 20, 1000, 500), 1000);
    assert_int_equal(levee_backoff_delay(999999, 20, 1000, 0), 500);
}

static void delay_stays_within_jitter_bounds(void **state) {
    (void) state;
    for (uint32_t doublings = 0; doublings < 11; doublings++) {
        for (uint32_t r = 0; r < 5000; r += 37) {
            uint32_t d = levee_backoff_delay(doublings, 20, 1000, (uint64_t) r * 2654435761u);
            assert_in_range(d, 10, 1000);
        }
    }
}

static void delay_with_degenerate_options(void **state) {
    (void) state;
    assert_true(levee_backoff_delay(0, 0, 0, 7) <= 1);
    assert_true(levee_backoff_delay(4, 100, 10, 7) <= 100);   /* cap below base: base wins */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grows_exponentially_within_jitter),
        cmocka_unit_test(never_exceeds_the_cap),
        cmocka_unit_test(reset_starts_over),
        cmocka_unit_test(workers_with_different_seeds_spread_out),
        cmocka_unit_test(delay_grows_then_caps),
        cmocka_unit_test(delay_stays_within_jitter_bounds),
        cmocka_unit_test(delay_with_degenerate_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
