/*
 * bench_e2e_cpu.c: end-to-end CPU speed through the public API, as llama-bench reports it:
 * pp512 (one trit_decode of 512 random tokens, logits of the last only) and tg128 (128 single-token
 * trit_decode calls from an empty cache), against the memory-bandwidth floor measured in the same
 * run (docs/design.md section 8).
 *
 *   build/bench/bench_e2e_cpu                                  synthetic:2b4t, 2 threads
 *   build/bench/bench_e2e_cpu -m synthetic:8b -t 2 -r 3 --head int8
 *   build/bench/bench_e2e_cpu -m models/foo.gguf --pp 128 --tg 64
 *
 * Options:
 *   -m PATH       model path (default synthetic:2b4t; any path trit_model_load takes)
 *   -t N          threads (default 2)
 *   -r N          repetitions of each test (default 3); the table gives the median and the best
 *   --pp N        prompt tokens (default 512; 0 skips)
 *   --tg N        generated tokens (default 128; 0 skips)
 *   --head H      the LM head: model (default), int8 or q4 (4-bit); --head-int8 = --head int8
 *   --bw-mb N     size of the bandwidth buffer (default 1024)
 *
 * Columns:
 *   read GB/s     streaming read bandwidth: a sum over a --bw-mb buffer with -t threads (best of 5
 *                 passes; the buffer is larger than any cache, as a decode step's weights are)
 *   bytes/token   what one generated token must read: every packed ternary weight byte once, the
 *                 LM head once, and the KV cache at the mean position of the tg run
 *   floor tok/s   read GB/s / bytes per token: no decoder can beat it on this machine
 *   % floor       tg tok/s / floor tok/s
 * Timings on a shared machine are noisy: the load average is printed at start and end. A
 * benchmark never fails on speed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/core.h"
#include "core/threadpool.h"
#include "model/model.h"
#include "trit.h"

#define MAX_REPS 64

static double now_s(void) { return (double)trit_time_us() * 1e-6; }

/* CPU seconds of the whole process (every thread, user + system). */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "bench_e2e_cpu: %s: %s\n", what, trit_last_error());
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_loadavg(const char *when) {
    FILE *f = fopen("/proc/loadavg", "r");
    char line[128] = "?";
    if (f) {
        if (!fgets(line, sizeof line, f)) line[0] = '\0';
        fclose(f);
    }
    line[strcspn(line, "\n")] = '\0';
    printf("# load average %s: %s\n", when, line);
}

/* Peak resident memory of this process, from /proc (VmHWM), in MiB; -1 when unknown. */
static double peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1.0;
    char line[256];
    double kb = -1.0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = strtod(line + 6, NULL);
    fclose(f);
    return kb < 0 ? -1.0 : kb / 1024.0;
}

/* ---- streaming read bandwidth ------------------------------------------------------------- */

struct bw_job {
    const uint64_t *src;
    int64_t n_words;
    int n_tasks;
    uint64_t sink[64];
    double cpu_s[64]; /* each task's own CPU time */
};

/* 8 independent chains, which the compiler turns into wide loads. */
static void bw_task(void *ctx, int64_t task, int thread) {
    (void)thread;
    struct bw_job *j = ctx;
    int64_t a = j->n_words * task / j->n_tasks / 8 * 8, b = j->n_words * (task + 1) / j->n_tasks / 8 * 8;
    uint64_t s[8] = {0};
    const double c0 = thread_cpu_s();
    for (int64_t i = a; i < b; i += 8)
        for (int k = 0; k < 8; k++) s[k] += j->src[i + k];
    j->sink[task % 64] = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
    j->cpu_s[task % 64] = thread_cpu_s() - c0;
}

/* Best of 5 passes: *wall from the wall clock; *running from the slowest thread's own CPU time,
 * which leaves out the time other processes held our cores (a machine shared with builds). */
static void read_bandwidth_gbps(int n_threads, int64_t n_bytes, double *wall, double *running) {
    struct trit_pool *pool = NULL;
    if (trit_pool_create(n_threads, &pool) != TRIT_OK) die("thread pool");
    uint64_t *buf = trit_alloc((size_t)n_bytes); /* zeroed: every page is touched before timing */
    if (!buf) die("bandwidth buffer");
    for (int64_t i = 0; i < n_bytes / 8; i += 512) buf[i] = (uint64_t)i;
    struct bw_job j = {.src = buf, .n_words = n_bytes / 8, .n_tasks = n_threads};
    *wall = *running = 0.0;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = now_s();
        trit_pool_parallel_for(pool, n_threads, bw_task, &j);
        double gbps = (double)n_bytes / (now_s() - t0) * 1e-9, slowest = 0.0;
        for (int t = 0; t < n_threads && t < 64; t++)
            if (j.cpu_s[t] > slowest) slowest = j.cpu_s[t];
        if (gbps > *wall) *wall = gbps;
        if (slowest > 0.0 && (double)n_bytes / slowest * 1e-9 > *running) *running = (double)n_bytes / slowest * 1e-9;
    }
    trit_free(buf);
    trit_pool_free(pool);
}

/* ---- bytes a generated token reads ------------------------------------------------------------ */

/* Packed bytes of one ternary matrix in the CPU layout (kernels.h): 4-row groups x 256-column
 * blocks of 256 bytes. */
static double packed_bytes(const struct trit_ternary *w) {
    return (double)trit_div_ceil(w->n_rows, 4) * (double)trit_div_ceil(w->n_cols, 256) * 256.0;
}

struct token_bytes {
    double ternary, head, kv;
};

static struct token_bytes bytes_per_token(const struct trit_model *m, const char *head, double mean_pos) {
    const struct trit_hparams *hp = &m->hp;
    struct token_bytes b = {0};
    for (int64_t i = 0; i < hp->n_layers; i++) {
        for (int j = 0; j < TRIT_N_W; j++) b.ternary += packed_bytes(&m->layers[i].w[j]);
    }
    const double head_elems = (double)hp->n_vocab * (double)hp->dim;
    /* int8: one byte per weight plus an fp32 scale and an int32 row sum per row; 4 bits: half a
     * byte per weight and a sub-scale byte per 32, the same 8 bytes per row (cpu/head_int8.h) */
    const double pad = (double)trit_align_up(hp->dim, 64) / (double)hp->dim;
    if (!strcmp(head, "int8")) b.head = head_elems * pad + 8.0 * (double)hp->n_vocab;
    else if (!strcmp(head, "q4")) b.head = head_elems * pad * (17.0 / 32.0) + 8.0 * (double)hp->n_vocab;
    else b.head = head_elems * (m->output.dtype == TRIT_DTYPE_F32 ? 4.0 : 2.0);
    b.kv = 2.0 * (double)hp->n_layers * mean_pos * (double)(hp->n_kv_heads * hp->head_dim) * 4.0;
    return b;
}

/* ---- main -------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    const char *path = "synthetic:2b4t";
    int n_threads = 2, reps = 3, n_pp = 512, n_tg = 128;
    const char *head = "model";
    int64_t bw_mb = 1024;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--head-int8")) head = "int8";
        else if (!v) {
            fprintf(stderr, "usage: see the header of bench/bench_e2e_cpu.c\n");
            return 2;
        } else if (!strcmp(a, "--head") && (!strcmp(v, "model") || !strcmp(v, "int8") || !strcmp(v, "q4"))) {
            head = v, i++;
        } else if (!strcmp(a, "-m")) path = v, i++;
        else if (!strcmp(a, "-t")) n_threads = atoi(v), i++;
        else if (!strcmp(a, "-r")) reps = atoi(v), i++;
        else if (!strcmp(a, "--pp")) n_pp = atoi(v), i++;
        else if (!strcmp(a, "--tg")) n_tg = atoi(v), i++;
        else if (!strcmp(a, "--bw-mb")) bw_mb = atoll(v), i++;
        else {
            fprintf(stderr, "unknown option %s (see the header of bench/bench_e2e_cpu.c)\n", a);
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (reps > MAX_REPS) reps = MAX_REPS;
    trit_log_set_level(TRIT_LOG_WARN);
    print_loadavg("at start");

    double bw, bw_run;
    read_bandwidth_gbps(n_threads, bw_mb << 20, &bw, &bw_run);
    printf("# streaming read, %d threads, %lld MiB: %.1f GB/s wall clock, %.1f GB/s over the threads' own CPU time\n",
           n_threads, (long long)bw_mb, bw, bw_run);

    double t0 = now_s();
    trit_model *model = NULL;
    if (trit_model_load(path, NULL, &model) != TRIT_OK) die(path);
    const double load_s = now_s() - t0;
    struct trit_context_params cp = trit_context_default_params();
    cp.device = TRIT_DEVICE_CPU;
    cp.n_threads = n_threads;
    cp.n_ctx = (n_pp > n_tg ? n_pp : n_tg) + 1;
    cp.n_batch = n_pp > 0 ? n_pp : 1;
    cp.head_int8 = !strcmp(head, "int8");
    cp.head_q4 = !strcmp(head, "q4");
    trit_context *ctx = NULL;
    t0 = now_s();
    if (trit_context_init(model, &cp, &ctx) != TRIT_OK) die("context");
    const double init_s = now_s() - t0;
    printf("# model %s: %s\n# load %.2f s, context init (repack%s) %.2f s, %s\n", path, trit_model_desc(model),
           load_s, !strcmp(head, "model") ? "" : !strcmp(head, "int8") ? ", int8 head" : ", 4-bit head", init_s,
           trit_context_device_desc(ctx));

    const int32_t n_vocab = trit_model_n_vocab(model);
    const int n_tok = n_pp > n_tg ? n_pp : n_tg;
    int32_t *tokens = malloc((size_t)(n_tok > 0 ? n_tok : 1) * sizeof *tokens);
    uint64_t r = 0x2545F4914F6CDD1Dull;
    for (int i = 0; i < n_tok; i++) {
        r ^= r >> 12, r ^= r << 25, r ^= r >> 27;
        tokens[i] = (int32_t)((r * 0x2545F4914F6CDD1Dull >> 33) % (uint64_t)n_vocab);
    }

    /* a warm-up token: pages of every buffer touched, threads started */
    const float *logits = NULL;
    if (trit_decode(ctx, tokens, 1, &logits) != TRIT_OK) die("warm-up");

    /* tok/s by the wall clock, and by CPU time / n_threads ("cpu"): the speed the threads had while
     * they ran, an estimate for an idle machine (spinning threads count as busy, so it errs low). */
    double pp[MAX_REPS], tg[MAX_REPS], pp_cpu[MAX_REPS], tg_cpu[MAX_REPS];
    for (int rep = 0; rep < reps; rep++) {
        if (n_pp > 0) {
            trit_context_truncate(ctx, 0);
            t0 = now_s();
            double c0 = cpu_s();
            if (trit_decode(ctx, tokens, n_pp, &logits) != TRIT_OK) die("pp");
            pp[rep] = (double)n_pp / (now_s() - t0);
            pp_cpu[rep] = (double)n_pp * n_threads / (cpu_s() - c0);
        }
        if (n_tg > 0) {
            trit_context_truncate(ctx, 0);
            t0 = now_s();
            double c0 = cpu_s();
            for (int i = 0; i < n_tg; i++)
                if (trit_decode(ctx, &tokens[i], 1, &logits) != TRIT_OK) die("tg");
            tg[rep] = (double)n_tg / (now_s() - t0);
            tg_cpu[rep] = (double)n_tg * n_threads / (cpu_s() - c0);
        }
        printf("# rep %d: pp%d %.2f tok/s (cpu %.2f), tg%d %.2f tok/s (cpu %.2f)\n", rep, n_pp, n_pp > 0 ? pp[rep] : 0.0,
               n_pp > 0 ? pp_cpu[rep] : 0.0, n_tg, n_tg > 0 ? tg[rep] : 0.0, n_tg > 0 ? tg_cpu[rep] : 0.0);
        fflush(stdout);
    }

    const struct token_bytes b = bytes_per_token(model, head, 0.5 * (double)n_tg);
    const double per_tok = b.ternary + b.head + b.kv;
    const double floor_tps = bw * 1e9 / per_tok, floor_run = bw_run * 1e9 / per_tok;
    printf("# bytes/token: ternary %.1f MB + head %.1f MB (%s) + KV %.1f MB = %.1f MB; floor %.1f tok/s wall, %.1f cpu\n",
           b.ternary * 1e-6, b.head * 1e-6, !strcmp(head, "model") ? trit_model_head_dtype(model) : head, b.kv * 1e-6,
           per_tok * 1e-6, floor_tps, floor_run);
    printf("%-8s %5s %9s %9s %9s %8s | %9s %9s %9s %8s\n", "test", "kind", "median", "best", "floor", "% floor", "cpu med",
           "cpu best", "cpu floor", "% floor");
    if (n_pp > 0) {
        qsort(pp, (size_t)reps, sizeof pp[0], cmp_double);
        qsort(pp_cpu, (size_t)reps, sizeof pp_cpu[0], cmp_double);
        printf("pp%-6d %5s %9.2f %9.2f %9s %8s | %9.2f %9.2f %9s %8s\n", n_pp, "tok/s", pp[reps / 2], pp[reps - 1], "-", "-",
               pp_cpu[reps / 2], pp_cpu[reps - 1], "-", "-");
    }
    if (n_tg > 0) {
        qsort(tg, (size_t)reps, sizeof tg[0], cmp_double);
        qsort(tg_cpu, (size_t)reps, sizeof tg_cpu[0], cmp_double);
        printf("tg%-6d %5s %9.2f %9.2f %9.1f %7.1f%% | %9.2f %9.2f %9.1f %7.1f%%\n", n_tg, "tok/s", tg[reps / 2],
               tg[reps - 1], floor_tps, 100.0 * tg[reps / 2] / floor_tps, tg_cpu[reps / 2], tg_cpu[reps - 1], floor_run,
               100.0 * tg_cpu[reps / 2] / floor_run);
    }
    printf("# peak RSS %.0f MiB\n", peak_rss_mib());
    print_loadavg("at end");
    free(tokens);
    trit_context_free(ctx);
    trit_model_free(model);
    return 0;
}
