#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grows_exponentially_within_jitter),
        cmocka_unit_test(never_exceeds_the_cap),
        cmocka_unit_test(reset_starts_over),
        cmocka_unit_test(workers_with_different_seeds_spread_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
