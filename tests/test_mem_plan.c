// labels: unit
/* test_mem_plan.c: the memory plan of trit_context_init. What the CPU backend says it will take is
 * what it takes; a context that does not fit fails before anything large is allocated, with both
 * numbers; a training context that does not fit is cut to one that does, with a warning. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backend.h"
#include "model/model.h"
#include "support.h"
#include "trit.h"
#include "trit_cuda_backend.h"

static trit_model *load_fixture(void) {
    trit_model *m = NULL;
    cr_assert_eq(trit_model_load(test_data_path("fixtures/bitnet-2b4t-tiny"), NULL, &m), TRIT_OK, "%s",
                 trit_last_error());
    return m;
}

static struct trit_context_params params(int32_t n_ctx, uint64_t mem_limit) {
    struct trit_context_params p = trit_context_default_params();
    p.device = TRIT_DEVICE_CPU;
    p.n_ctx = n_ctx;
    p.n_threads = 2;
    p.mem_limit = mem_limit;
    return p;
}

/* What trit_context_init compares with the limit: the backend's plan and the logits. */
static uint64_t need_bytes(const trit_model *m, int64_t n_ctx, int64_t n_batch, bool logits_all) {
    struct trit_backend_config cfg = {.n_ctx = n_ctx, .n_batch = n_batch < n_ctx ? n_batch : n_ctx, .n_threads = 2,
                                      .logits_all = logits_all};
    struct trit_mem_plan p;
    trit_cpu_backend.plan(m, &cfg, &p);
    return trit_mem_plan_total(&p) + (uint64_t)(logits_all ? cfg.n_batch : 1) * (uint64_t)m->hp.n_vocab * 4;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* The warnings the library logs, kept for the test to read. */
static char warned[2048];
static void keep_warnings(enum trit_log_level level, const char *line, void *user) {
    (void)user;
    if (level == TRIT_LOG_WARN) snprintf(warned + strlen(warned), sizeof warned - strlen(warned), "%s\n", line);
}

/* The plan's weights and KV cache are exactly the bytes the backend reports holding, for every head
 * and both logits modes: the plan counts the buffers init allocates, not an estimate. */
Test(mem_plan, plan_is_what_the_cpu_backend_holds) {
    trit_model *m = load_fixture();
    for (int head = 0; head < 3; head++) {
        for (int all = 0; all < 2; all++) {
            struct trit_context_params p = params(96, 0);
            p.n_batch = 40;
            p.logits_all = all;
            p.head_int8 = head == 1;
            p.head_q4 = head == 2;
            trit_context *ctx = NULL;
            cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_OK, "%s", trit_last_error());
            struct trit_backend_config cfg = {.n_ctx = 96, .n_batch = 40, .n_threads = 2, .logits_all = all,
                                              .head_int8 = head == 1, .head_q4 = head == 2};
            struct trit_mem_plan plan;
            trit_cpu_backend.plan(m, &cfg, &plan);
            cr_assert_eq(plan.weights_bytes + plan.kv_bytes, trit_context_memory_bytes(ctx), "head %d, logits_all %d",
                         head, all);
            /* the pool: 96 tokens take two blocks of TRIT_KV_BLOCK */
            cr_assert_eq(plan.kv_bytes, 2ull * (uint64_t)(m->hp.n_layers * trit_kv_blocks_for(96) * TRIT_KV_BLOCK *
                                                          m->hp.n_kv_heads * m->hp.head_dim) * 4);
            cr_assert_gt(plan.scratch_bytes, 0);
            trit_context_free(ctx);
        }
    }
    trit_model_free(m);
}

/* The reported case: a context of 2^30 tokens asked for. It fails at once, naming what it needs and
 * what there is, and nothing large was touched. */
Test(mem_plan, a_context_that_does_not_fit_fails_before_allocating) {
    trit_model *m = load_fixture();
    const double rss0 = peak_rss_mib();
    struct trit_context_params p = params(1 << 30, 0);
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_ERR_OUT_OF_MEMORY);
    cr_assert_null(ctx);
    const char *e = trit_last_error();
    cr_assert(strstr(e, "1073741824 tokens need") && strstr(e, "KV cache") && strstr(e, "this machine has left") &&
                  strstr(e, "at most"),
              "%s", e);
    cr_assert_lt(peak_rss_mib() - rss0, 64.0, "the failed init grew the peak RSS by %.0f MiB", peak_rss_mib() - rss0);
    trit_model_free(m);
}

/* --mem-limit: the plan's total is the boundary, one byte less fails and names the limit; a limit
 * below the weights says so. */
Test(mem_plan, the_memory_limit_is_the_boundary) {
    trit_model *m = load_fixture();
    const uint64_t need = need_bytes(m, 200, 512, false);
    trit_context *ctx = NULL;
    struct trit_context_params p = params(200, need);
    cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_context_n_ctx(ctx), 200);
    trit_context_free(ctx);
    ctx = NULL;
    p.mem_limit = need - 1;
    cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_ERR_OUT_OF_MEMORY);
    cr_assert_null(ctx);
    cr_assert(strstr(trit_last_error(), "the memory limit of") && strstr(trit_last_error(), "at most 199"),
              "%s", trit_last_error());
    p.mem_limit = 4096;
    cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_ERR_OUT_OF_MEMORY);
    cr_assert(strstr(trit_last_error(), "not even a context of 1 token fits"), "%s", trit_last_error());
    trit_model_free(m);
}

/* The reported case: a file whose context_length is 2^31 - 1, run with no context asked for. The
 * context becomes the longest multiple of 256 tokens that fits, with a warning, at once. */
Test(mem_plan, a_huge_training_context_is_cut_to_what_fits) {
    trit_model *m = load_fixture();
    m->hp.ctx_train = INT32_MAX;
    const uint64_t limit = 48ull << 20;
    warned[0] = '\0';
    trit_log_set_callback(keep_warnings, NULL);
    const double rss0 = peak_rss_mib();
    struct trit_context_params p = params(0, limit);
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_OK, "%s", trit_last_error());
    trit_log_set_callback(NULL, NULL);
    const int64_t n = trit_context_n_ctx(ctx);
    cr_assert(n >= 256 && n % 256 == 0 && n < INT32_MAX, "context %lld", (long long)n);
    cr_assert_leq(need_bytes(m, n, 512, false), limit);
    cr_assert_gt(need_bytes(m, n + 256, 512, false), limit, "a longer context would have fit");
    char expect[128];
    snprintf(expect, sizeof expect, "training context of 2147483647 tokens needs");
    cr_assert(strstr(warned, expect) && strstr(warned, "the memory limit of 48.0 MiB (--mem-limit)"), "%s", warned);
    cr_assert_lt(peak_rss_mib() - rss0, 2.0 * (double)limit / 1048576.0);
    /* it runs */
    const float *logits;
    const int32_t ids[3] = {1, 2, 3};
    cr_assert_eq(trit_decode(ctx, ids, 3, &logits), TRIT_OK, "%s", trit_last_error());
    trit_context_free(ctx);
    trit_model_free(m);
}

/* Asking for more than the training context runs, with a warning. */
Test(mem_plan, a_context_past_the_training_one_warns) {
    trit_model *m = load_fixture();
    const int32_t train = trit_model_n_ctx_train(m);
    warned[0] = '\0';
    trit_log_set_callback(keep_warnings, NULL);
    struct trit_context_params p = params(train + 1, 0);
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_OK, "%s", trit_last_error());
    trit_log_set_callback(NULL, NULL);
    cr_assert_eq(trit_context_n_ctx(ctx), train + 1);
    cr_assert(strstr(warned, "is longer than the") != NULL, "%s", warned);
    trit_context_free(ctx);
    warned[0] = '\0';
    trit_log_set_callback(keep_warnings, NULL);
    p.n_ctx = train;
    cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_OK, "%s", trit_last_error());
    trit_log_set_callback(NULL, NULL);
    cr_assert_str_empty(warned);
    trit_context_free(ctx);
    trit_model_free(m);
}

/* With no --mem-limit, a training context that does not fit is cut to what fits in half of what
 * the machine has left, not all of it. What is left is set through $TRIT_MEM_AVAILABLE (each
 * Criterion test runs in a process of its own). */
Test(mem_plan, an_unasked_context_takes_half_of_what_is_left) {
    trit_model *m = load_fixture();
    m->hp.ctx_train = INT32_MAX;
    const uint64_t room = 96ull << 20;
    char v[32];
    snprintf(v, sizeof v, "%llu", (unsigned long long)room);
    setenv("TRIT_MEM_AVAILABLE", v, 1);
    cr_assert_leq(trit_mem_available(), room);
    warned[0] = '\0';
    trit_log_set_callback(keep_warnings, NULL);
    struct trit_context_params p = params(0, 0);
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_OK, "%s", trit_last_error());
    trit_log_set_callback(NULL, NULL);
    const uint64_t left = trit_mem_available();
    const int64_t n = trit_context_n_ctx(ctx);
    cr_assert_leq(need_bytes(m, n, 512, false), left / 2, "context %lld", (long long)n);
    cr_assert_gt(need_bytes(m, n + 256, 512, false), left / 2, "context %lld is not the longest", (long long)n);
    cr_assert(strstr(warned, "this machine has left; using") && strstr(warned, "half of that"), "%s", warned);
    trit_context_free(ctx);
    unsetenv("TRIT_MEM_AVAILABLE");
    trit_model_free(m);
}

/* The CUDA backend's device check (trit_cuda_backend.h; no GPU needed): the arena plus 64 MiB, plus
 * 256 MiB more on a NCCL rank for what NCCL allocates after its warm-up (review finding 3);
 * saturating for a hostile arena size. */
Test(mem_plan, cuda_device_need_keeps_tp_headroom) {
    const uint64_t mib = (uint64_t)1 << 20, arena = (uint64_t)5 << 30;
    cr_assert_eq(trit_cuda_device_need(arena, false), arena + 64 * mib);
    cr_assert_eq(trit_cuda_device_need(arena, true), arena + 320 * mib);
    cr_assert_gt(trit_cuda_device_need(arena, true), trit_cuda_device_need(arena, false));
    cr_assert_eq(trit_cuda_device_need(UINT64_MAX - mib, false), UINT64_MAX);
    cr_assert_eq(trit_cuda_device_need(UINT64_MAX, true), UINT64_MAX);
}
