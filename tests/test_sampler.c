// labels: unit
// cpu families: each
/* test_sampler.c: greedy, top-k, top-p, min-p, temperature, repetition penalty and seeding. */
#include <criterion/criterion.h>
#include <math.h>

#include "support.h"
#include "trit.h"

static trit_sampler *make(struct trit_sampler_params p, int32_t n) {
    trit_sampler *s = NULL;
    cr_assert_eq(trit_sampler_init(&p, n, &s), TRIT_OK, "%s", trit_last_error());
    return s;
}

Test(sampler, greedy_takes_argmax_lowest_id_on_tie) {
    struct trit_sampler_params p = trit_sampler_default_params();
    p.temperature = 0.0f;
    trit_sampler *s = make(p, 6);
    float logits[6] = {0.1f, 3.0f, -2.0f, 3.0f, 2.9f, 0.0f};
    cr_assert_eq(trit_sampler_sample(s, logits), 1);
    trit_sampler_free(s);
}

Test(sampler, top_k_one_is_greedy_at_any_temperature) {
    struct test_rng rng;
    test_rng_seed(&rng, 11);
    struct trit_sampler_params p = trit_sampler_default_params();
    p.top_k = 1;
    p.temperature = 5.0f;
    trit_sampler *s = make(p, 100);
    float logits[100];
    for (int trial = 0; trial < 50; trial++) {
        int best = 0;
        for (int i = 0; i < 100; i++) {
            logits[i] = test_rng_normal(&rng);
            if (logits[i] > logits[best]) best = i;
        }
        cr_assert_eq(trit_sampler_sample(s, logits), best);
    }
    trit_sampler_free(s);
}

Test(sampler, top_p_and_min_p_cut_the_tail) {
    /* probabilities at temperature 1: exp(0)=1, exp(-1)=.368, exp(-10)=4.5e-5 ... */
    float logits[4] = {0.0f, -1.0f, -10.0f, -10.0f};
    struct trit_sampler_params p = trit_sampler_default_params();
    p.top_k = 0;
    p.min_p = 0.0f;
    p.top_p = 0.5f; /* token 0 alone holds 1/(1+.368+...) = 0.73 >= 0.5 */
    p.temperature = 1.0f;
    trit_sampler *s = make(p, 4);
    for (int i = 0; i < 200; i++) cr_assert_eq(trit_sampler_sample(s, logits), 0);
    trit_sampler_free(s);

    p.top_p = 1.0f;
    p.min_p = 0.01f; /* keeps tokens with p >= 0.01 * p_max: 0 and 1, never 2 or 3 */
    s = make(p, 4);
    int seen[4] = {0};
    for (int i = 0; i < 2000; i++) seen[trit_sampler_sample(s, logits)]++;
    cr_assert_eq(seen[2] + seen[3], 0);
    cr_assert_gt(seen[1], 0);
    /* P(1) = .368/1.368 = 0.269; 2000 draws -> 538 +- 3 sigma (59) */
    cr_assert(seen[1] > 538 - 80 && seen[1] < 538 + 80, "token 1 drawn %d times", seen[1]);
    trit_sampler_free(s);
}

Test(sampler, same_seed_same_draws) {
    struct trit_sampler_params p = trit_sampler_default_params();
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.temperature = 1.0f;
    p.seed = 1234;
    float logits[50];
    for (int i = 0; i < 50; i++) logits[i] = (float)(i % 7) * 0.3f;
    trit_sampler *a = make(p, 50), *b = make(p, 50);
    int differs_from_greedy = 0;
    for (int i = 0; i < 100; i++) {
        int32_t x = trit_sampler_sample(a, logits), y = trit_sampler_sample(b, logits);
        cr_assert_eq(x, y);
        differs_from_greedy += x != 6;
    }
    cr_assert_gt(differs_from_greedy, 0, "temperature 1 should not always pick the argmax");
    int32_t first = -1;
    trit_sampler_reset(a);
    first = trit_sampler_sample(a, logits);
    trit_sampler_reset(b);
    cr_assert_eq(trit_sampler_sample(b, logits), first);
    trit_sampler_free(a);
    trit_sampler_free(b);
}

Test(sampler, repetition_penalty_moves_greedy_choice) {
    struct trit_sampler_params p = trit_sampler_default_params();
    p.temperature = 0.0f;
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 4;
    trit_sampler *s = make(p, 3);
    float logits[3] = {4.0f, 3.0f, -1.0f};
    cr_assert_eq(trit_sampler_sample(s, logits), 0);
    trit_sampler_accept(s, 0); /* 4 -> 2 < 3 */
    trit_sampler_accept(s, 0); /* seen twice: still penalized once */
    cr_assert_eq(trit_sampler_sample(s, logits), 1);
    for (int i = 0; i < 4; i++) trit_sampler_accept(s, 2); /* 0 leaves the window */
    cr_assert_eq(trit_sampler_sample(s, logits), 0);
    trit_sampler_free(s);
}

Test(sampler, rejects_bad_parameters) {
    struct trit_sampler_params p = trit_sampler_default_params();
    trit_sampler *s = NULL;
    p.top_p = 0.0f;
    cr_assert_eq(trit_sampler_init(&p, 10, &s), TRIT_ERR_INVALID_ARG);
    cr_assert_null(s);
    p = trit_sampler_default_params();
    cr_assert_eq(trit_sampler_init(&p, 0, &s), TRIT_ERR_INVALID_ARG);
}

Test(sampler, nan_logits_rank_last) {
    struct trit_sampler_params p = trit_sampler_default_params();
    p.temperature = 1.0f;
    p.top_k = 2;
    trit_sampler *s = make(p, 5);
    float logits[5] = {NAN, 1.0f, NAN, 3.0f, 2.0f};
    for (int i = 0; i < 100; i++) {
        int32_t t = trit_sampler_sample(s, logits);
        cr_assert(t == 3 || t == 4, "drew %d", t);
    }
    p.temperature = 0.0f;
    trit_sampler_free(s);
    s = make(p, 5);
    cr_assert_eq(trit_sampler_sample(s, logits), 3);
    trit_sampler_free(s);
}

/* ---- the candidate path (trit_decode_sample with a backend's forward_topk) ---------------------- */
#include "backend.h"

/* trit_sampler_sample on full rows and trit_sampler_sample_candidates on the host top-k of the same
 * rows (penalty applied by trit_topk_penalized, candidates shuffled, sometimes more than top_k)
 * draw the same tokens from the same seed, 1000 times, with ties and NaNs in the rows. */
Test(sampler, candidates_match_full_row) {
    enum { V = 500, DRAWS = 1000 };
    struct test_rng rng;
    test_rng_seed(&rng, 23);
    static const int32_t ks[] = {1, 5, 40, 256};
    static const float temps[] = {0.0f, 0.8f, 1.5f};
    for (int ki = 0; ki < 4; ki++)
        for (int ti = 0; ti < 3; ti++) {
            struct trit_sampler_params p = trit_sampler_default_params();
            p.top_k = ks[ki];
            p.temperature = temps[ti];
            p.repeat_penalty = ti == 1 ? 1.0f : 1.3f;
            p.repeat_last_n = 16;
            p.top_p = ki % 2 ? 0.9f : 1.0f;
            p.min_p = ki == 2 ? 0.0f : 0.05f;
            p.seed = 1000u + (uint64_t)(ki * 3 + ti);
            trit_sampler *full = make(p, V), *cand = make(p, V);
            float row[V], vals[TRIT_TOPK_MAX + 8];
            int32_t ids[TRIT_TOPK_MAX + 8];
            for (int d = 0; d < DRAWS / 12 + 1; d++) {
                for (int i = 0; i < V; i++) {
                    /* coarse values: many exact ties, both signs */
                    row[i] = (float)test_rng_int(&rng, -40, 40) * 0.25f;
                    if (test_rng_int(&rng, 0, 99) == 0) row[i] = NAN;
                }
                const int32_t *pen;
                float penalty;
                const int32_t n_pen = trit_sampler_penalty(cand, &pen, &penalty);
                cr_assert_eq(trit_sampler_top_k(cand), ks[ki]);
                int32_t n = ks[ki] + (int32_t)test_rng_int(&rng, 0, 8);
                if (n > TRIT_TOPK_MAX) n = TRIT_TOPK_MAX;
                trit_topk_penalized(row, V, pen, n_pen, penalty, n, vals, ids);
                for (int32_t i = 1; i < n; i++)
                    cr_assert(vals[i - 1] > vals[i] || (vals[i - 1] == vals[i] && ids[i - 1] < ids[i]));
                for (int32_t i = n - 1; i > 0; i--) { /* any order is allowed */
                    int32_t j = (int32_t)test_rng_int(&rng, 0, i);
                    float tv = vals[i];
                    int32_t td = ids[i];
                    vals[i] = vals[j], ids[i] = ids[j];
                    vals[j] = tv, ids[j] = td;
                }
                int32_t a = trit_sampler_sample(full, row), b = trit_sampler_sample_candidates(cand, vals, ids, n);
                cr_assert_eq(a, b, "k %d temp %g draw %d: full row %d, candidates %d", ks[ki], temps[ti], d, a, b);
                trit_sampler_accept(full, a);
                trit_sampler_accept(cand, b);
            }
            trit_sampler_free(full);
            trit_sampler_free(cand);
        }
}

Test(sampler, candidates_reject_too_few) {
    struct trit_sampler_params p = trit_sampler_default_params();
    p.top_k = 10;
    trit_sampler *s = make(p, 50);
    float v[5] = {5, 4, 3, 2, 1};
    int32_t id[5] = {0, 1, 2, 3, 4};
    cr_assert_eq(trit_sampler_sample_candidates(s, v, id, 5), -1);
    trit_sampler_free(s);
}
