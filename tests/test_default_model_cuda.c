// labels: gpu
/*
 * test_default_model_cuda.c: the shipped model on the CUDA backend, against the CPU backend and
 * against transformers (see test_default_model.c for the CPU oracle). Skips without a device.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "default_model.h"
#include "support.h"
#include "trit.h"

/* The CUDA backend keeps the KV cache and the head input in fp16 (relative error 2^-11 per value),
 * which flips the odd int8 activation code downstream; 1% in perplexity (0.01 in mean NLL) is 8x
 * transformers' own fp32-vs-bf16 floor on this text (2.4e-4 x 5 for the CPU, and fp16 storage adds
 * a few times that). Unmeasured on hardware when written: the first GPU run records the real
 * difference in bench/results. */
#define DEFAULT_MODEL_CUDA_NLL_TOL 1.0e-2
/* Greedy tokens must equal the CPU backend's wherever the CPU's top1 - top2 margin exceeds this:
 * 2 x the worst logit difference the CUDA numerics gave in a CPU emulation (0.13). */
#define DEFAULT_MODEL_CUDA_DECISIVE_MARGIN 0.26f

static trit_context *make(trit_model *m, enum trit_device dev, bool all) {
    struct trit_context_params cp = trit_context_default_params();
    cp.device = dev;
    cp.n_ctx = DEFAULT_MODEL_N_CTX;
    cp.n_batch = DEFAULT_MODEL_N_CTX;
    cp.n_threads = 2;
    cp.logits_all = all;
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(m, &cp, &ctx), TRIT_OK, "%s", trit_last_error());
    return ctx;
}

Test(default_model_cuda, perplexity_and_greedy) {
    if (!test_require_gpu()) return;
    trit_model *m;
    trit_tokenizer *tok;
    cr_assert_eq(trit_model_load(DEFAULT_MODEL_PATH, NULL, &m), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_tokenizer_load(DEFAULT_MODEL_PATH, &tok), TRIT_OK, "%s", trit_last_error());
    static char text[1 << 16];
    FILE *f = fopen(test_data_path("default-model/val_excerpt.txt"), "rb");
    cr_assert_not_null(f);
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    struct trit_tokens ids = {0};
    cr_assert_eq(trit_tokenize(tok, text, len, 0, &ids), TRIT_OK);
    trit_context *g = make(m, TRIT_DEVICE_CUDA, true);
    cr_assert_str_eq(trit_context_backend(g), "cuda");
    struct trit_perplexity_result r;
    cr_assert_eq(trit_perplexity(g, ids.ids, (int64_t)ids.n, trit_tokenizer_bos(tok), 0, NULL, NULL, &r), TRIT_OK,
                 "%s", trit_last_error());
    cr_log_info("CUDA mean NLL %.6f (PPL %.4f), transformers fp32 %.6f", r.mean_nll, r.ppl, DEFAULT_MODEL_HF_MEAN_NLL);
    cr_assert_leq(fabs(r.mean_nll - DEFAULT_MODEL_HF_MEAN_NLL), DEFAULT_MODEL_CUDA_NLL_TOL);
    trit_context_free(g);

    /* greedy: CUDA against the CPU backend, step by step on the same sequence */
    trit_context *gc = make(m, TRIT_DEVICE_CUDA, false), *cc = make(m, TRIT_DEVICE_CPU, false);
    const int32_t n_vocab = trit_model_n_vocab(m);
    const float *lg, *lc;
    cr_assert_eq(trit_decode(gc, default_model_prompt, 4, &lg), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_decode(cc, default_model_prompt, 4, &lc), TRIT_OK);
    for (int i = 0; i < DEFAULT_MODEL_N_GOLDEN; i++) {
        int32_t bg = 0, b1 = 0;
        for (int32_t v = 1; v < n_vocab; v++) {
            if (lg[v] > lg[bg]) bg = v;
            if (lc[v] > lc[b1]) b1 = v;
        }
        int32_t b2 = b1 == 0 ? 1 : 0;
        for (int32_t v = 0; v < n_vocab; v++)
            if (v != b1 && lc[v] > lc[b2]) b2 = v;
        const float margin = lc[b1] - lc[b2];
        if (margin < DEFAULT_MODEL_CUDA_DECISIVE_MARGIN) break; /* a near-tie: stop comparing */
        cr_assert_eq(bg, b1, "step %d: CUDA chose %d, CPU %d (CPU margin %.3f)", i, bg, b1, (double)margin);
        cr_assert_eq(trit_decode(gc, &b1, 1, &lg), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_decode(cc, &b1, 1, &lc), TRIT_OK);
    }
    trit_context_free(gc);
    trit_context_free(cc);
    trit_tokens_free(&ids);
    trit_tokenizer_free(tok);
    trit_model_free(m);
}
