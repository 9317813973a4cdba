// labels: unit
/*
 * test_sampler_limits.c: the temperatures trit_sampler_init refuses. 0 is greedy; a negative, NaN or
 * infinite temperature is TRIT_ERR_INVALID_ARG with a message that names the value (before, a
 * negative one silently meant greedy), and so is a non-finite repetition penalty.
 *
 *   ctest --test-dir build -R test_sampler_limits --output-on-failure
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "trit.h"

static enum trit_status init_with_temperature(float t) {
    struct trit_sampler_params p = trit_sampler_default_params();
    p.temperature = t;
    trit_sampler *s = NULL;
    enum trit_status st = trit_sampler_init(&p, 10, &s);
    cr_assert((st == TRIT_OK) == (s != NULL));
    trit_sampler_free(s);
    return st;
}

Test(sampler_limits, zero_and_positive_temperatures_are_taken) {
    cr_assert_eq(init_with_temperature(0.0f), TRIT_OK);
    cr_assert_eq(init_with_temperature(1e-6f), TRIT_OK);
    cr_assert_eq(init_with_temperature(100.0f), TRIT_OK);
}

Test(sampler_limits, negative_and_non_finite_temperatures_are_refused) {
    const float bad[] = {-1.0f, -1e-6f, NAN, INFINITY, -INFINITY};
    const char *const shown[] = {"temperature -1 ", "temperature -1e-06 ", "temperature nan ", "temperature inf ",
                                 "temperature -inf "};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(init_with_temperature(bad[i]), TRIT_ERR_INVALID_ARG, "temperature %g", (double)bad[i]);
        cr_assert_not_null(strstr(trit_last_error(), shown[i]), "'%s' lacks '%s'", trit_last_error(), shown[i]);
        cr_assert_not_null(strstr(trit_last_error(), "0 = greedy"), "%s", trit_last_error());
    }
}

Test(sampler_limits, a_non_finite_repeat_penalty_is_refused) {
    struct trit_sampler_params p = trit_sampler_default_params();
    p.repeat_penalty = INFINITY;
    trit_sampler *s = NULL;
    cr_assert_eq(trit_sampler_init(&p, 10, &s), TRIT_ERR_INVALID_ARG);
    cr_assert_null(s);
}
