/*
 * bench_cpu_gemm.c: the CPU ternary matmul kernels (cpu/kernels.h) against the scalar reference,
 * with the memory bandwidth of this machine measured in the same run.
 *
 *   build/bench/bench_cpu_gemm                                   all shapes, m, threads, families
 *   build/bench/bench_cpu_gemm --shapes 2560x6912,6912x2560 --m 1 --threads 2
 *   build/bench/bench_cpu_gemm --m 512 --variants avx512 --csv out.csv
 *
 * Options:
 *   --shapes LIST     NxK[,...]; N1+N2+...xK is a fused call (trit_cpu_gemm_f32_multi) over
 *                     matrices sharing the activations (default: the 2B-4T and Llama-8B shapes)
 *   --m LIST          tokens per call (default 1,4,16,64,512)
 *   --threads LIST    pool sizes (default 1..online CPUs)
 *   --variants LIST   ref and kernel families: ref,scalar,avx2,avx512,neon,neon_dotprod
 *                     (default: ref + every family this machine runs)
 *   --min-ms X        measuring time per row (default 300)
 *   --rotate-mb X     weight copies cycled through, so that a call finds its weights in DRAM and
 *                     not in the last-level cache, as in a real decode step (default 1024)
 *   --ref-max-s X     skip reference rows estimated to take longer than X seconds (default 2)
 *   --csv FILE        also write the rows as CSV
 *   --quick           short rows for smoke tests: --min-ms 20 --rotate-mb 32 --ref-max-s 0.2
 *                     unless those are given (tests/ctest_bench.cmake)
 *
 * Validation: before a kernel row is timed, one call's fp32 outputs are compared bit for bit with
 * trit_gemm_ref + trit_epilogue_ref on up to 64 sampled rows of every matrix x 16 sampled tokens
 * (first and last always in; the whole output when it is that small). A row that differs is
 * printed as INVALID, is not timed and is not in the CSV, and the program exits 1; otherwise it
 * ends with "# validation passed". TRIT_BENCH_CORRUPT=1 flips one bit of one checked output
 * element before the comparison, to show that the gate works (tests/ctest_bench.cmake).
 *
 * Columns: median and fastest time of one call (on a shared machine a call longer than a scheduler
 * slice is often preempted, and min_us shows what the kernel does undisturbed); the rest use the
 * median: GB/s = packed weight bytes / time (the kernels read every
 * weight byte once per call); %read = that against the streaming-read bandwidth measured at
 * start with the same thread count; GOPS = 2 * m * N * K / time (one multiply and one add per
 * weight and token, as for a dense matmul). Every call goes through the fp32 epilogue
 * (trit_cpu_gemm_f32 / _multi), as the forward pass does; ref = trit_gemm_ref + trit_epilogue_ref
 * on the canonical layout, single thread.
 *
 * The numbers are only as quiet as the machine: the load average is printed at start and end.
 * A benchmark never fails on speed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "cpu/cpu.h"
#include "cpu/kernels.h"
#include "quant/quant.h"

#define MAX_LIST 32
#define MAX_PARTS 4
#define VARIANT_REF (-1)

static const char *const default_shapes[] = {
    "2560x2560", "640x2560", "6912x2560", "2560x6912", /* 2B-4T: q/o, k/v, gate/up, down */
    "2560+640+640x2560", "6912+6912x2560",            /* 2B-4T fused QKV (3840) and gate+up (13824) */
    "4096x4096", "14336x4096", "4096x14336",          /* Llama-3-8B-1.58 */
};

struct options {
    const char *shapes[MAX_LIST];
    int n_shapes;
    int64_t ms[MAX_LIST];
    int n_ms;
    int threads[MAX_LIST];
    int n_threads;
    int variants[MAX_LIST]; /* VARIANT_REF or an enum trit_cpu_isa */
    int n_variants;
    double min_ms, rotate_mb, ref_max_s;
    const char *csv;
    bool quick;
};

/* ---- small helpers ------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) {
    uint64_t x = rng_state;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what) {
    fprintf(stderr, "bench_cpu_gemm: %s (%s)\n", what, trit_last_error());
    exit(1);
}

static int split_list(char *s, char **out) {
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < MAX_LIST; tok = strtok(NULL, ",")) out[n++] = tok;
    return n;
}

/* ---- memory bandwidth ----------------------------------------------------------------------- */

struct bw_ctx {
    const uint64_t *src;
    uint64_t *dst;
    int64_t n_words;
    int n_tasks;
    uint64_t sink[64];
};

/* Streaming read: wide loads into independent xor chains, with the software prefetch the GEMV
 * kernel uses (1 KB ahead), so that the reference is at least as good a reader as the kernel. */
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, int64_t n) {
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t i = 0; i + 128 <= n; i += 128) {
        _mm_prefetch((const char *)p + i + 1024, _MM_HINT_T0);
        _mm_prefetch((const char *)p + i + 1088, _MM_HINT_T0);
        s0 = _mm256_xor_si256(s0, _mm256_loadu_si256((const __m256i *)(p + i)));
        s1 = _mm256_xor_si256(s1, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        s2 = _mm256_xor_si256(s2, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        s3 = _mm256_xor_si256(s3, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    __m256i s = _mm256_xor_si256(_mm256_xor_si256(s0, s1), _mm256_xor_si256(s2, s3));
    return (uint64_t)_mm256_extract_epi64(s, 0) ^ (uint64_t)_mm256_extract_epi64(s, 3);
}
#endif

static uint64_t read_plain(const uint64_t *p, int64_t n_words) {
    uint64_t s[8] = {0};
    for (int64_t i = 0; i + 8 <= n_words; i += 8)
        for (int k = 0; k < 8; k++) s[k] ^= p[i + k];
    return s[0] ^ s[1] ^ s[2] ^ s[3] ^ s[4] ^ s[5] ^ s[6] ^ s[7];
}

static void read_task(void *vctx, int64_t task, int thread) {
    (void)thread;
    struct bw_ctx *ctx = vctx;
    int64_t a = ctx->n_words * task / ctx->n_tasks, b = ctx->n_words * (task + 1) / ctx->n_tasks;
#if defined(__x86_64__)
    if (trit_cpu_features_get()->avx2) {
        ctx->sink[task] = read_avx2((const uint8_t *)(ctx->src + a), (b - a) * 8);
        return;
    }
#endif
    ctx->sink[task] = read_plain(ctx->src + a, b - a);
}

static void copy_task(void *vctx, int64_t task, int thread) {
    (void)thread;
    struct bw_ctx *ctx = vctx;
    int64_t a = ctx->n_words * task / ctx->n_tasks, b = ctx->n_words * (task + 1) / ctx->n_tasks;
    memcpy(ctx->dst + a, ctx->src + a, (size_t)(b - a) * sizeof(uint64_t));
}

/* GB/s of bytes read (read) or read + written (copy), measured like the kernels: calls of
 * BW_CHUNK bytes each, cycling through the region, median call time. (One long pass over the
 * region would be timed across the scheduler's preemptions on a busy machine.) */
#define BW_CHUNK (8 << 20)
static double measure_bw(struct trit_pool *pool, uint8_t *buf, int64_t n_bytes, bool copy, double min_s) {
    static double times[1 << 16];
    int64_t half = n_bytes / 2 / BW_CHUNK * BW_CHUNK;
    int64_t n_chunks = (copy ? half : n_bytes) / BW_CHUNK;
    if (n_chunks < 1) return 0.0;
    int n = 0;
    double start = now_s();
    for (int64_t c = 0; n < (1 << 16) && (n < 8 || now_s() - start < min_s); c = (c + 1) % n_chunks) {
        struct bw_ctx ctx = {.src = (const uint64_t *)(buf + c * BW_CHUNK),
                             .dst = (uint64_t *)(buf + half + c * BW_CHUNK),
                             .n_words = BW_CHUNK / 8,
                             .n_tasks = trit_pool_n_threads(pool)};
        double t0 = now_s();
        trit_pool_parallel_for(pool, ctx.n_tasks, copy ? copy_task : read_task, &ctx);
        times[n++] = now_s() - t0;
    }
    qsort(times, (size_t)n, sizeof times[0], cmp_double);
    return (double)BW_CHUNK * (copy ? 2.0 : 1.0) / times[n / 2] * 1e-9;
}

/* Round trip of an empty parallel_for (wake the workers, run nothing, wait): the fixed cost every
 * threaded matmul pays, median of 2000 back-to-back calls. */
static void noop_task(void *ctx, int64_t task, int thread) {
    (void)ctx, (void)task, (void)thread;
}
static double pool_round_trip_us(struct trit_pool *pool) {
    static double times[2000];
    int n_tasks = trit_pool_n_threads(pool);
    for (int i = 0; i < 2000; i++) {
        double t0 = now_s();
        trit_pool_parallel_for(pool, n_tasks, noop_task, NULL);
        times[i] = now_s() - t0;
    }
    qsort(times, 2000, sizeof times[0], cmp_double);
    return times[1000] * 1e6;
}

/* ---- one shape ---------------------------------------------------------------------------- */

struct shape {
    const char *name;
    int n_parts;
    int64_t rows[MAX_PARTS], n_cols, n_rows_total;
    struct trit_ternary canon[MAX_PARTS];
};

static bool parse_shape(const char *text, struct shape *sh) {
    memset(sh, 0, sizeof *sh);
    sh->name = text;
    const char *x = strchr(text, 'x');
    if (!x) return false;
    const char *p = text;
    while (p < x && sh->n_parts < MAX_PARTS) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 1) return false;
        sh->rows[sh->n_parts++] = v;
        sh->n_rows_total += v;
        p = *end == '+' ? end + 1 : end;
        if (end == x) break;
    }
    sh->n_cols = strtoll(x + 1, NULL, 10);
    return sh->n_cols > 0 && p == x;
}

struct timing {
    double med_s, min_s;
    int n_calls;
};

struct fp_out {
    int8_t *q;
    float *s;
    float *y[MAX_PARTS];
    int32_t *acc;
};

static struct timing time_ref(const struct shape *sh, int64_t m, struct fp_out *io, double min_s) {
    double times[4096];
    int n = 0;
    double start = now_s();
    while (n < 4096 && (n < 2 || now_s() - start < min_s)) {
        double t0 = now_s();
        for (int i = 0; i < sh->n_parts; i++) {
            trit_gemm_ref(&sh->canon[i], io->q, m, io->acc);
            trit_epilogue_ref(io->acc, m, sh->rows[i], io->s, sh->canon[i].scale, sh->canon[i].scale_kind, io->y[i]);
        }
        times[n++] = now_s() - t0;
    }
    qsort(times, (size_t)n, sizeof times[0], cmp_double);
    return (struct timing){times[n / 2], times[0], n};
}

static struct timing time_kernel(struct trit_pool *pool, struct trit_cpu_matrix *copies, int n_copies,
                                 int n_parts, int64_t m, struct fp_out *io, double min_s) {
    static double times[1 << 16];
    int n = 0, c = 0;
    const struct trit_cpu_matrix *ws[MAX_PARTS];
    /* one warm-up call (wakes the workers, faults the outputs in) */
    for (int i = 0; i < n_parts; i++) ws[i] = &copies[i];
    if (trit_cpu_gemm_f32_multi(pool, n_parts, ws, io->q, m, io->s, io->y) != TRIT_OK) die("gemm");
    double start = now_s();
    while (n < (1 << 16) && (n < 3 || now_s() - start < min_s)) {
        c = (c + 1) % n_copies;
        for (int i = 0; i < n_parts; i++) ws[i] = &copies[c * n_parts + i];
        double t0 = now_s();
        trit_cpu_gemm_f32_multi(pool, n_parts, ws, io->q, m, io->s, io->y);
        times[n++] = now_s() - t0;
    }
    qsort(times, (size_t)n, sizeof times[0], cmp_double);
    return (struct timing){times[n / 2], times[0], n};
}

/* ---- validation: nothing is timed before its output matched the reference -------------------- */

static bool corrupt_requested(void) {
    const char *e = getenv("TRIT_BENCH_CORRUPT");
    return e && strcmp(e, "1") == 0;
}

/* Indices to check out of [0, n): all of them when n <= max, else 0, n - 1 and max - 2 random. */
static int sample_indices(int64_t n, int max, uint64_t *state, int64_t *out) {
    if (n <= max) {
        for (int64_t i = 0; i < n; i++) out[i] = i;
        return (int)n;
    }
    out[0] = 0, out[1] = n - 1;
    for (int i = 2; i < max; i++) {
        uint64_t x = *state;
        x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
        *state = x;
        out[i] = (int64_t)((x * 0x2545F4914F6CDD1Dull) % (uint64_t)n);
    }
    return max;
}

/* One call of the kernel on the first weight copy, then its outputs io->y against trit_gemm_ref +
 * trit_epilogue_ref, bit for bit, on sampled rows x tokens of every matrix. On a difference, *why
 * says where. */
static bool validate_kernel(struct trit_pool *pool, const struct trit_cpu_matrix *copies, const struct shape *sh,
                            int64_t m, struct fp_out *io, char *why, size_t why_len) {
    const struct trit_cpu_matrix *ws[MAX_PARTS];
    for (int i = 0; i < sh->n_parts; i++) ws[i] = &copies[i];
    if (trit_cpu_gemm_f32_multi(pool, sh->n_parts, ws, io->q, m, io->s, io->y) != TRIT_OK) die("gemm");
    uint64_t state = 0x5DEECE66Dull ^ (uint64_t)m;
    int64_t toks[16], rows[64];
    int n_toks = sample_indices(m, 16, &state, toks);
    const int64_t k = sh->n_cols;
    int8_t *qs = malloc((size_t)(n_toks * k));
    float ss[16];
    if (!qs) die("out of memory");
    for (int t = 0; t < n_toks; t++) {
        memcpy(qs + t * k, io->q + toks[t] * k, (size_t)k);
        ss[t] = io->s[toks[t]];
    }
    bool ok = true;
    for (int i = 0; i < sh->n_parts && ok; i++) {
        const struct trit_ternary *w = &sh->canon[i];
        int n_rows = sample_indices(w->n_rows, 64, &state, rows);
        struct trit_ternary sub;
        if (trit_ternary_init(&sub, n_rows, k) != TRIT_OK) die("trit_ternary_init");
        for (int r = 0; r < n_rows; r++)
            memcpy(sub.codes + r * sub.row_bytes, w->codes + rows[r] * w->row_bytes, (size_t)w->row_bytes);
        sub.scale = w->scale, sub.scale_kind = w->scale_kind;
        int32_t acc[16 * 64];
        float want[16 * 64];
        trit_gemm_ref(&sub, qs, n_toks, acc);
        trit_epilogue_ref(acc, n_toks, n_rows, ss, sub.scale, sub.scale_kind, want);
        trit_ternary_free(&sub);
        if (i == 0 && corrupt_requested()) { /* fault injection: one output bit of the kernel's */
            uint32_t bits;
            float *y0 = &io->y[0][toks[0] * sh->rows[0] + rows[0]];
            memcpy(&bits, y0, 4);
            bits ^= 1u;
            memcpy(y0, &bits, 4);
        }
        for (int t = 0; t < n_toks && ok; t++)
            for (int r = 0; r < n_rows && ok; r++) {
                const float *got = &io->y[i][toks[t] * sh->rows[i] + rows[r]];
                if (memcmp(got, &want[t * n_rows + r], sizeof(float)) != 0) {
                    snprintf(why, why_len, "matrix %d token %lld row %lld: %.9g, reference %.9g", i, (long long)toks[t],
                             (long long)rows[r], (double)*got, (double)want[t * n_rows + r]);
                    ok = false;
                }
            }
    }
    free(qs);
    return ok;
}

static void emit(FILE *csv, const struct shape *sh, const char *variant, int threads, int64_t m,
                 struct timing tm, double w_bytes, double read_gbps) {
    double gbps = w_bytes / tm.med_s * 1e-9;
    double gops = 2.0 * (double)m * (double)sh->n_rows_total * (double)sh->n_cols / tm.med_s * 1e-9;
    double pct = read_gbps > 0 ? 100.0 * gbps / read_gbps : 0.0;
    printf("%-20s %-8s %3d %5lld %10.1f %10.1f %8.1f %6.1f %9.1f %7d\n", sh->name, variant, threads, (long long)m,
           tm.med_s * 1e6, tm.min_s * 1e6, gbps, pct, gops, tm.n_calls);
    fflush(stdout);
    if (csv)
        fprintf(csv, "%s,%lld,%lld,%s,%d,%lld,%.3f,%.3f,%.3f,%.2f,%.3f,%.3f,%d\n", sh->name,
                (long long)sh->n_rows_total, (long long)sh->n_cols, variant, threads, (long long)m,
                tm.med_s * 1e6, tm.min_s * 1e6, gbps, pct, gops, read_gbps, tm.n_calls);
}

/* ---- main --------------------------------------------------------------------------------- */

static void print_load(const char *when) {
    FILE *f = fopen("/proc/loadavg", "r");
    char line[128] = "?";
    if (f) {
        if (!fgets(line, sizeof line, f)) strcpy(line, "?\n");
        fclose(f);
    }
    printf("# load average at %s: %s", when, line);
}

static void print_cpu(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                printf("# cpu: %s", strchr(line, ':') ? strchr(line, ':') + 2 : line);
                break;
            }
        fclose(f);
    }
    const struct trit_cpu_features *ft = trit_cpu_features_get();
    printf("# features: avx2 %d avx512f %d avx512bw %d avx512vl %d avx512_vnni %d avx_vnni %d vpopcntdq %d "
           "amx_int8 %d neon %d dotprod %d; best family %s\n", ft->avx2, ft->avx512f, ft->avx512bw, ft->avx512vl,
           ft->avx512_vnni, ft->avx_vnni, ft->avx512_vpopcntdq, ft->amx_int8, ft->neon, ft->dotprod,
           trit_cpu_isa_name(trit_cpu_isa_best()));
}

static void parse_args(int argc, char **argv, struct options *o) {
    memset(o, 0, sizeof *o);
    o->min_ms = 300, o->rotate_mb = 1024, o->ref_max_s = 2;
    for (size_t i = 0; i < sizeof default_shapes / sizeof default_shapes[0]; i++) o->shapes[o->n_shapes++] = default_shapes[i];
    const int64_t ms[] = {1, 4, 16, 64, 512};
    for (int i = 0; i < 5; i++) o->ms[o->n_ms++] = ms[i];
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (int t = 1; t <= (n_cpu > 0 ? n_cpu : 1) && t <= MAX_LIST; t++) o->threads[o->n_threads++] = t;
    o->variants[o->n_variants++] = VARIANT_REF;
    for (int i = 0; i < TRIT_CPU_ISA_COUNT; i++)
        if (trit_cpu_isa_supported((enum trit_cpu_isa)i)) o->variants[o->n_variants++] = i;
    for (int i = 1; i < argc; i++) /* --quick sets defaults, whatever its position */
        if (strcmp(argv[i], "--quick") == 0) o->quick = true, o->min_ms = 20, o->rotate_mb = 32, o->ref_max_s = 0.2;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quick") == 0) continue;
        char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *items[MAX_LIST];
        if (!v) {
            fprintf(stderr, "bench_cpu_gemm: %s needs a value (see the header of bench/bench_cpu_gemm.c)\n", a);
            exit(2);
        }
        i++;
        if (strcmp(a, "--shapes") == 0) {
            o->n_shapes = split_list(v, items);
            for (int k = 0; k < o->n_shapes; k++) o->shapes[k] = items[k];
        } else if (strcmp(a, "--m") == 0) {
            o->n_ms = split_list(v, items);
            for (int k = 0; k < o->n_ms; k++) o->ms[k] = strtoll(items[k], NULL, 10);
        } else if (strcmp(a, "--threads") == 0) {
            o->n_threads = split_list(v, items);
            for (int k = 0; k < o->n_threads; k++) o->threads[k] = atoi(items[k]);
        } else if (strcmp(a, "--variants") == 0) {
            o->n_variants = split_list(v, items);
            for (int k = 0; k < o->n_variants; k++) {
                enum trit_cpu_isa isa;
                if (strcmp(items[k], "ref") == 0) o->variants[k] = VARIANT_REF;
                else if (trit_cpu_isa_parse(items[k], &isa) == TRIT_OK && trit_cpu_isa_supported(isa)) o->variants[k] = isa;
                else {
                    fprintf(stderr, "bench_cpu_gemm: variant %s is unknown or cannot run here\n", items[k]);
                    exit(2);
                }
            }
        } else if (strcmp(a, "--min-ms") == 0) o->min_ms = atof(v);
        else if (strcmp(a, "--rotate-mb") == 0) o->rotate_mb = atof(v);
        else if (strcmp(a, "--ref-max-s") == 0) o->ref_max_s = atof(v);
        else if (strcmp(a, "--csv") == 0) o->csv = v;
        else {
            fprintf(stderr, "bench_cpu_gemm: unknown option %s\n", a);
            exit(2);
        }
    }
}

int main(int argc, char **argv) {
    struct options o;
    parse_args(argc, argv, &o);
    FILE *csv = NULL;
    if (o.csv) {
        csv = fopen(o.csv, "w");
        if (!csv) die("cannot open the --csv file");
        fprintf(csv, "shape,n,k,variant,threads,m,median_us,min_us,weight_gbps,pct_read,gops,read_gbps,calls\n");
    }
    print_cpu();
    print_load("start");
    if (corrupt_requested()) printf("# TRIT_BENCH_CORRUPT=1: one output bit of every kernel call is flipped before validation\n");

    struct trit_pool *pools[MAX_LIST];
    for (int t = 0; t < o.n_threads; t++)
        if (trit_pool_create(o.threads[t], &pools[t]) != TRIT_OK) die("trit_pool_create");

    /* One region serves the bandwidth measurement and the rotating weight copies. */
    int64_t region_bytes = (int64_t)(o.rotate_mb * 1048576.0) & ~(int64_t)4095;
    if (region_bytes < (1 << 20)) region_bytes = 1 << 20;
    uint8_t *region = trit_alloc((size_t)region_bytes);
    if (!region) die("cannot allocate the rotation region");
    memset(region, 1, (size_t)region_bytes); /* fault every page in */
    double read_gbps[MAX_LIST];
    printf("# bandwidth, 8 MB calls over %.0f MB, median:", (double)region_bytes / 1048576.0);
    for (int t = 0; t < o.n_threads; t++) {
        read_gbps[t] = measure_bw(pools[t], region, region_bytes, false, o.min_ms * 1e-3);
        double copy = measure_bw(pools[t], region, region_bytes, true, o.min_ms * 1e-3);
        printf("  %d thr read %.1f GB/s copy %.1f GB/s;", o.threads[t], read_gbps[t], copy);
    }
    printf("\n# empty parallel_for round trip, median:");
    for (int t = 0; t < o.n_threads; t++) printf("  %d thr %.2f us;", o.threads[t], pool_round_trip_us(pools[t]));
    printf("\n# variants: ref = trit_gemm_ref (1 thread); amx = AMX tiles for m >= %d, avx512 below", TRIT_CPU_AMX_MIN_M);
    printf("\n");
    printf("%-20s %-8s %3s %5s %10s %10s %8s %6s %9s %7s\n", "shape", "variant", "thr", "m", "median_us", "min_us",
           "GB/s", "%read", "GOPS", "calls");

    int n_checked = 0, n_invalid = 0;
    int64_t m_max = 1;
    for (int i = 0; i < o.n_ms; i++) m_max = o.ms[i] > m_max ? o.ms[i] : m_max;

    for (int si = 0; si < o.n_shapes; si++) {
        struct shape sh;
        if (!parse_shape(o.shapes[si], &sh)) {
            fprintf(stderr, "bench_cpu_gemm: bad shape %s (NxK or N1+N2xK)\n", o.shapes[si]);
            return 2;
        }
        /* random canonical weights and activations */
        for (int i = 0; i < sh.n_parts; i++) {
            if (trit_ternary_init(&sh.canon[i], sh.rows[i], sh.n_cols) != TRIT_OK) die("trit_ternary_init");
            struct trit_ternary *w = &sh.canon[i];
            for (int64_t b = 0; b < w->n_rows * w->row_bytes; b++) {
                uint64_t r = rng_next();
                uint8_t v = 0;
                for (int k = 0; k < 4; k++) v |= (uint8_t)(((r >> (8 * k)) % 3) << (2 * k));
                w->codes[b] = v;
            }
            if (w->n_cols % 4) /* the padding codes of each row's last byte are zero (01) */
                for (int64_t r = 0; r < w->n_rows; r++)
                    for (int64_t c = w->n_cols; c < w->row_bytes * 4; c++) trit_ternary_set(w, r, c, 0);
            w->scale = 0.5f;
        }
        struct fp_out io;
        io.q = trit_alloc((size_t)(m_max * sh.n_cols));
        io.s = trit_alloc((size_t)m_max * sizeof(float));
        io.acc = trit_alloc((size_t)(m_max * sh.n_rows_total) * sizeof(int32_t));
        for (int i = 0; i < sh.n_parts; i++) io.y[i] = trit_alloc((size_t)(m_max * sh.rows[i]) * sizeof(float));
        for (int64_t i = 0; i < m_max * sh.n_cols; i++) io.q[i] = (int8_t)(rng_next() & 0xFF);
        for (int64_t i = 0; i < m_max; i++) io.s[i] = 1.0f + (float)i;

        double ref_ops_per_s = 0;
        for (int vi = 0; vi < o.n_variants; vi++) {
            int variant = o.variants[vi];
            if (variant == VARIANT_REF) {
                double canon_bytes = 0;
                for (int i = 0; i < sh.n_parts; i++) canon_bytes += (double)(sh.canon[i].n_rows * sh.canon[i].row_bytes);
                for (int mi = 0; mi < o.n_ms; mi++) {
                    double ops = 2.0 * (double)o.ms[mi] * (double)sh.n_rows_total * (double)sh.n_cols;
                    if (ref_ops_per_s > 0 && ops / ref_ops_per_s > o.ref_max_s) {
                        printf("%-20s %-8s %3d %5lld   (skipped: about %.0f s a call; --ref-max-s)\n", sh.name, "ref",
                               1, (long long)o.ms[mi], ops / ref_ops_per_s);
                        continue;
                    }
                    struct timing tm = time_ref(&sh, o.ms[mi], &io, o.min_ms * 1e-3);
                    ref_ops_per_s = ops / tm.med_s;
                    emit(csv, &sh, "ref", 1, o.ms[mi], tm, canon_bytes, read_gbps[0]);
                }
                continue;
            }
            /* pack once, then copy the packed bytes into the rotation region */
            struct trit_cpu_matrix packed[MAX_PARTS];
            int64_t copy_bytes = 0;
            for (int i = 0; i < sh.n_parts; i++) {
                if (trit_cpu_matrix_pack_isa(&sh.canon[i], (enum trit_cpu_isa)variant, &packed[i]) != TRIT_OK)
                    die("trit_cpu_matrix_pack_isa");
                copy_bytes += trit_cpu_matrix_bytes(&packed[i]);
            }
            int n_copies = (int)(region_bytes / copy_bytes);
            if (n_copies < 1) n_copies = 1;
            struct trit_cpu_matrix *copies = calloc((size_t)n_copies * (size_t)sh.n_parts, sizeof *copies);
            if (!copies) die("out of memory");
            for (int c = 0; c < n_copies; c++) {
                uint8_t *dst = region_bytes >= copy_bytes ? region + (int64_t)c * copy_bytes : NULL;
                for (int i = 0; i < sh.n_parts; i++) {
                    struct trit_cpu_matrix *cm = &copies[c * sh.n_parts + i];
                    *cm = packed[i];
                    if (dst) {
                        memcpy(dst, packed[i].packed, (size_t)trit_cpu_matrix_bytes(&packed[i]));
                        cm->packed = dst;
                        dst += trit_cpu_matrix_bytes(&packed[i]);
                    }
                }
            }
            for (int ti = 0; ti < o.n_threads; ti++)
                for (int mi = 0; mi < o.n_ms; mi++) {
                    char why[256];
                    n_checked++;
                    if (!validate_kernel(pools[ti], copies, &sh, o.ms[mi], &io, why, sizeof why)) {
                        n_invalid++;
                        printf("%-20s %-8s %3d %5lld   INVALID, not timed: %s\n", sh.name,
                               trit_cpu_isa_name((enum trit_cpu_isa)variant), o.threads[ti], (long long)o.ms[mi], why);
                        fflush(stdout);
                        continue;
                    }
                    struct timing tm = time_kernel(pools[ti], copies, n_copies, sh.n_parts, o.ms[mi], &io, o.min_ms * 1e-3);
                    emit(csv, &sh, trit_cpu_isa_name((enum trit_cpu_isa)variant), o.threads[ti], o.ms[mi], tm,
                         (double)copy_bytes, read_gbps[ti]);
                }
            free(copies);
            for (int i = 0; i < sh.n_parts; i++) trit_cpu_matrix_free(&packed[i]);
        }
        for (int i = 0; i < sh.n_parts; i++) {
            trit_free(io.y[i]);
            trit_ternary_free(&sh.canon[i]);
        }
        trit_free(io.acc);
        trit_free(io.s);
        trit_free(io.q);
    }
    print_load("end");
    if (n_invalid)
        printf("# validation FAILED: %d of %d kernel rows differ from trit_gemm_ref + trit_epilogue_ref (not timed)\n",
               n_invalid, n_checked);
    else
        printf("# validation passed: %d of %d kernel rows bit-exact against trit_gemm_ref + trit_epilogue_ref before "
               "timing\n", n_checked, n_checked);
    trit_free(region);
    for (int t = 0; t < o.n_threads; t++) trit_pool_free(pools[t]);
    if (csv) fclose(csv);
    return n_invalid ? 1 : 0;
}
