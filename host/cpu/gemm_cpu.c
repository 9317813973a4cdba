/*
 * gemm_cpu.c: the family-independent half of the CPU ternary matmul (kernels.h): packing into the
 * kernel layout, dispatch to a family's micro-kernel, the split over threads, and the epilogues.
 *
 * Work split: the row groups of all matrices of a call, laid end to end, are cut into 4 contiguous
 * ranges per pool thread (the pool gives thread i the i-th 4, and lets a thread that is done
 * early take ranges not yet started). A thread walks its range in chunks
 * of about TRIT_CPU_CHUNK_BYTES of packed weights; for each chunk it runs every block of tokens (4
 * for the register kernels, 32 for AMX), so a chunk stays in L2 while all tokens go past it and a
 * block of activations stays in L1 while the chunk's row groups go past it. For m = 1 this is a
 * single sequential pass over the thread's weight bytes.
 *
 * Unpacked panels (AVX2, m >= TRIT_CPU_PANEL_MIN_M): a chunk is first unpacked into the thread's
 * scratch (threadpool.h), one byte a code, so that the tokens' passes over it only load, multiply and
 * add instead of decoding the same bytes again per token block (kernels.h: trit_cpu_unpack_fn).
 */
#include <string.h>

#include "cpu/kernels.h"

/* Packed bytes per chunk when the tokens take several blocks (fits L2 with room for the
 * activations); a chunk is also capped so that the int32 results of one token block fit a stack
 * buffer of TRIT_CPU_RES_ELEMS (64 KB). */
#define TRIT_CPU_CHUNK_BYTES (192 * 1024)
/* AMX: each chunk re-reads a 32-token block of activations (32 * n_cols bytes) once per pair of
 * row groups, so larger chunks reuse activations more; 768 KB of packed weights plus the block
 * still fit a 2 MB L2. */
#define TRIT_CPU_AMX_CHUNK_BYTES (768 * 1024)
#define TRIT_CPU_RES_ELEMS 16384
/* Tasks (row ranges) per pool thread. */
#define TRIT_CPU_TASKS_PER_THREAD 4
/* Most matrices one trit_cpu_gemm_f32_multi call takes. */
#define TRIT_CPU_MULTI_MAX 8
/* Calls with at most this many tokens get sum(q) of every token once, from the caller, instead of
 * from each kernel call (a stack array of 4 KB): a chunk of one row group of a wide matrix (2B-4T's
 * down_proj with unpacked panels) would otherwise sum its tokens' 6912 activations for every 16
 * rows, a quarter of the kernel's work. */
#define TRIT_CPU_QSUM_MAX 1024
/* Most k-blocks of a blocked matrix's row (65536 columns): its per-token tables are stack arrays of
 * this many k-blocks x 4 tokens (32 KB in all). */
#define TRIT_CPU_BLOCKED_MAX_KB 1024

/* ---- packing ------------------------------------------------------------------------------- */

int64_t trit_cpu_matrix_bytes(const struct trit_cpu_matrix *w) {
    return w ? w->n_rg * w->n_kb * TRIT_CPU_TILE_BYTES : 0;
}

int64_t trit_cpu_matrix_plan_bytes(int64_t n_rows, int64_t n_cols) {
    int64_t n_bytes;
    if (n_rows < 1 || n_cols < 1 ||
        !trit_mul_i64(trit_div_ceil(n_rows, TRIT_CPU_RG_ROWS), trit_div_ceil(n_cols, TRIT_CPU_KB_COLS), &n_bytes) ||
        !trit_mul_i64(n_bytes, TRIT_CPU_TILE_BYTES, &n_bytes))
        return -1;
    return n_bytes;
}

void trit_cpu_matrix_free(struct trit_cpu_matrix *w) {
    if (!w) return;
    trit_free(w->packed);
    trit_free(w->group_scales);
    memset(w, 0, sizeof *w);
}

enum trit_status trit_cpu_matrix_pack_isa(const struct trit_ternary *w, enum trit_cpu_isa isa,
                                          struct trit_cpu_matrix *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_matrix_pack: NULL out");
    memset(out, 0, sizeof *out);
    if (!w || !w->codes || w->n_rows < 1 || w->n_cols < 1 || w->row_bytes != trit_div_ceil(w->n_cols, 4))
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_matrix_pack: NULL, empty or inconsistent matrix");
    if (!trit_cpu_isa_supported(isa))
        return trit_error(TRIT_ERR_UNSUPPORTED, "trit_cpu_matrix_pack: kernel family %s cannot run here",
                          trit_cpu_isa_name(isa));
    int64_t n_kb = trit_div_ceil(w->n_cols, TRIT_CPU_KB_COLS);
    int64_t n_rg = trit_div_ceil(w->n_rows, TRIT_CPU_RG_ROWS);
    const int64_t n_bytes = trit_cpu_matrix_plan_bytes(w->n_rows, w->n_cols);
    if (n_bytes < 0 || (uint64_t)n_bytes > SIZE_MAX)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_matrix_pack: %lld x %lld is too large",
                          (long long)w->n_rows, (long long)w->n_cols);
    uint8_t *packed = trit_alloc((size_t)n_bytes); /* zeroed: padding codes are 0 */
    if (!packed)
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "trit_cpu_matrix_pack: %lld bytes", (long long)n_bytes);

    /* Canonical byte i of a row holds columns 4i .. 4i+3: k-block 4i / 64, vector (4i % 64) / 16,
     * plane (4i % 16) / 4. They land in bytes 4n .. 4n+3 of that vector, all at bit offset 2j. */
    int64_t last = w->row_bytes - 1;
    int last_valid = (int)(w->n_cols - 4 * last); /* 1..4 columns in a row's last byte */
    unsigned last_mask = last_valid == 4 ? 0xFFu : (1u << (2 * last_valid)) - 1u;
    for (int64_t r = 0; r < w->n_rows; r++) {
        const uint8_t *src = w->codes + r * w->row_bytes;
        uint8_t *dst_row = packed + (r / TRIT_CPU_RG_ROWS) * n_kb * TRIT_CPU_TILE_BYTES + 4 * (r % TRIT_CPU_RG_ROWS);
        for (int64_t i = 0; i < w->row_bytes; i++) {
            unsigned v = src[i];
            if (i == last) v &= last_mask;
            if (w->group == 0 && (v & (v >> 1) & 0x55u)) { /* code 3 (+2) only with group scales */
                trit_free(packed);
                return trit_error(TRIT_ERR_FORMAT, "trit_cpu_matrix_pack: code 3 at row %lld, byte %lld",
                                  (long long)r, (long long)i);
            }
            int64_t c = 4 * i;
            int shift = (int)(2 * ((c % 16) / 4));
            uint8_t *dst = dst_row + (c / TRIT_CPU_KB_COLS) * TRIT_CPU_TILE_BYTES + 64 * ((c % 64) / 16);
            dst[0] |= (uint8_t)((v & 3u) << shift);
            dst[1] |= (uint8_t)(((v >> 2) & 3u) << shift);
            dst[2] |= (uint8_t)(((v >> 4) & 3u) << shift);
            dst[3] |= (uint8_t)(((v >> 6) & 3u) << shift);
        }
    }
    if (w->group > 0) {
        const int64_t n_groups = trit_ternary_n_groups(w), n_scales = n_rg * n_groups * TRIT_CPU_RG_ROWS;
        if (w->group % TRIT_CPU_KB_COLS != 0 || !w->group_scales) {
            trit_free(packed);
            return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_matrix_pack: group %lld is not a multiple of %d",
                              (long long)w->group, TRIT_CPU_KB_COLS);
        }
        /* (n_rg, n_groups, 16): no larger than the canonical (n_rows, n_groups) by more than 15 rows */
        float *d = trit_alloc((size_t)n_scales * sizeof(float)); /* zeroed: padding rows */
        if (!d) {
            trit_free(packed);
            return trit_error(TRIT_ERR_OUT_OF_MEMORY, "trit_cpu_matrix_pack: %lld group scales", (long long)n_scales);
        }
        for (int64_t r = 0; r < w->n_rows; r++)
            for (int64_t g = 0; g < n_groups; g++)
                d[((r / TRIT_CPU_RG_ROWS) * n_groups + g) * TRIT_CPU_RG_ROWS + r % TRIT_CPU_RG_ROWS] =
                    w->group_scales[r * n_groups + g];
        out->group_scales = d;
        out->group = w->group;
    }
    out->n_rows = w->n_rows;
    out->n_cols = w->n_cols;
    out->n_kb = n_kb;
    out->n_rg = n_rg;
    out->packed = packed;
    out->scale = w->scale;
    out->scale_kind = w->scale_kind;
    out->isa = isa;
    return TRIT_OK;
}

const char *trit_cpu_kernel_name(void) { return trit_cpu_isa_name(trit_cpu_isa_active()); }

enum trit_status trit_cpu_matrix_pack(const struct trit_ternary *w, struct trit_cpu_matrix *out) {
    enum trit_cpu_isa asked = TRIT_CPU_ISA_SCALAR;
    enum trit_status st = trit_cpu_isa_select(&asked); /* a bad TRIT_CPU is an error here */
    if (st != TRIT_OK) {
        if (out) memset(out, 0, sizeof *out);
        return st;
    }
    return trit_cpu_matrix_pack_isa(w, trit_cpu_isa_active(), out);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

/* The micro-kernel a call runs, and how many tokens it takes at a time. */
struct kernel {
    trit_cpu_tile_fn fn;
    int tok_block;
    int64_t chunk_bytes; /* packed weight bytes per chunk when the tokens take several blocks */
    trit_cpu_unpack_fn unpack; /* non-NULL: chunks are unpacked into scratch and run by panel */
    trit_cpu_tile_fn panel;
};

static struct kernel kernel_for(enum trit_cpu_isa isa, int64_t m, bool blocked) {
    struct kernel k = {NULL, TRIT_CPU_MAX_TOKENS, TRIT_CPU_CHUNK_BYTES, NULL, NULL};
    if (!trit_cpu_isa_supported(isa)) return k;
    /* Blocked matrices run one k-block a call (run_range_blocked): the register kernels only, since
     * AMX's tile set-up and the panels' unpacking are paid per call. */
    if (blocked) m = 1;
    switch (isa) {
    case TRIT_CPU_ISA_SCALAR: k.fn = trit_cpu_tile_scalar; break;
#if defined(__x86_64__)
    case TRIT_CPU_ISA_AVX2:
        k.fn = trit_cpu_tile_avx2;
        if (m >= TRIT_CPU_PANEL_MIN_M) k.unpack = trit_cpu_unpack_avx2, k.panel = trit_cpu_panel_avx2;
        break;
    case TRIT_CPU_ISA_AVX512_VNNI: k.fn = trit_cpu_tile_avx512; break;
    case TRIT_CPU_ISA_AMX:
#ifndef TRIT_EMULATE_AVX512
        if (m >= TRIT_CPU_AMX_MIN_M) {
            k.fn = trit_cpu_tile_amx;
            k.tok_block = TRIT_CPU_AMX_TOKENS;
            k.chunk_bytes = TRIT_CPU_AMX_CHUNK_BYTES;
            break;
        }
#endif
        k.fn = trit_cpu_tile_avx512;
        break;
#endif
#if defined(__aarch64__)
    case TRIT_CPU_ISA_NEON: k.fn = trit_cpu_tile_neon; break;
    case TRIT_CPU_ISA_NEON_DOTPROD: k.fn = trit_cpu_tile_neon_dotprod; break;
#endif
    default: break;
    }
    (void)m;
    return k;
}

int32_t trit_cpu_sum_i8(enum trit_cpu_isa isa, const int8_t *q, int64_t n) {
    switch (isa) {
#if defined(__x86_64__)
    case TRIT_CPU_ISA_AVX2: return trit_cpu_sum_i8_avx2(q, n);
    case TRIT_CPU_ISA_AVX512_VNNI:
    case TRIT_CPU_ISA_AMX: return trit_cpu_sum_i8_avx512(q, n);
#endif
#if defined(__aarch64__)
    case TRIT_CPU_ISA_NEON:
    case TRIT_CPU_ISA_NEON_DOTPROD: return trit_cpu_sum_i8_neon(q, n);
#endif
    default: return trit_cpu_sum_i8_scalar(q, n);
    }
}

/* ---- the threaded driver ------------------------------------------------------------------ */

enum epilogue { EPI_I32, EPI_F32, EPI_F32_ADD };

struct gemm_job {
    int n_mats;
    const struct trit_cpu_matrix *const *w;
    int64_t rg_begin[TRIT_CPU_MULTI_MAX + 1]; /* matrix i owns global row groups [rg_begin[i], rg_begin[i+1]) */
    const int8_t *q;
    int64_t m, n_cols, n_kb, chunk_rg, n_tasks;
    int tok_block;
    enum epilogue epi;
    const float *act_scale;
    int32_t *acc;        /* EPI_I32 */
    float *const *y;     /* EPI_F32, EPI_F32_ADD: one per matrix */
    trit_cpu_tile_fn fn;
    trit_cpu_unpack_fn unpack; /* with panel: see the top of this file */
    trit_cpu_tile_fn panel;
    struct trit_pool *pool;    /* for its threads' scratch */
    const int32_t *qsum;       /* (m) sum(q) of every token, or NULL */
    bool blocked;              /* every matrix takes the group rule (run_range_blocked) */
    trit_cpu_btile_fn bfn;     /* blocked: the family's blocked kernel for group-scaled matrices, or NULL */
};

/* Writes the results of rows [r0, r1) of matrix w, tokens [t0, t0 + nt), from the tile buffer. */
static void epilogue_store(const struct gemm_job *job, int mat, const int32_t *res, int64_t ld,
                           int64_t r0, int64_t r1, int64_t t0, int nt) {
    const struct trit_cpu_matrix *w = job->w[mat];
    int64_t n = r1 - r0;
    for (int t = 0; t < nt; t++) {
        const int32_t *src = res + t * ld;
        int64_t row_off = (t0 + t) * w->n_rows + r0;
        if (job->epi == EPI_I32) {
            memcpy(job->acc + row_off, src, (size_t)n * sizeof(int32_t));
            continue;
        }
        float s = job->act_scale[t0 + t];
        float *dst = job->y[mat] + row_off;
        /* The reference's float operations, in its order: no reassociation, no FMA. */
        if (w->scale_kind == TRIT_SCALE_MUL) {
            float alpha = w->scale;
            if (job->epi == EPI_F32)
                for (int64_t i = 0; i < n; i++) dst[i] = ((float)src[i] / s) * alpha;
            else
                for (int64_t i = 0; i < n; i++) dst[i] += ((float)src[i] / s) * alpha;
        } else {
            float den = s * w->scale;
            if (job->epi == EPI_F32)
                for (int64_t i = 0; i < n; i++) dst[i] = (float)src[i] / den;
            else
                for (int64_t i = 0; i < n; i++) dst[i] += (float)src[i] / den;
        }
    }
}

/* The group rule (cpu.h trit_gemm_group_ref) for row groups [a, b) of a blocked matrix, in chunks of
 * row groups as run_range (a chunk stays in L2 while the token blocks go past it). Per token block,
 * each token's sum(q) and 1 / s of every k-block are taken once; then each row group runs either the
 * family's blocked kernel (kernels.h: the rule folded into its loop) or, for a family without one,
 * the plain micro-kernel one k-block a call (a row group's tiles are contiguous, so its k-blocks still
 * stream in order), whose int32 sums are scaled and added here in the reference's order. */
static void run_range_blocked(const struct gemm_job *job, int mat, int64_t a, int64_t b) {
    const struct trit_cpu_matrix *w = job->w[mat];
    const int64_t n_kb = job->n_kb, n_ab = w->act_block > 0 ? n_kb : 1;
    const int64_t n_groups = w->group > 0 ? trit_div_ceil(w->n_cols, w->group) : 0;
    const int64_t kb_per_group = w->group > 0 ? w->group / TRIT_CPU_KB_COLS : 1;
    const int tok_block = job->bfn ? TRIT_CPU_BLOCKED_TOKENS : job->tok_block;
    int32_t qsum[TRIT_CPU_BLOCKED_MAX_KB * TRIT_CPU_MAX_TOKENS];
    float inv[TRIT_CPU_BLOCKED_MAX_KB * TRIT_CPU_MAX_TOKENS];
    int32_t res[TRIT_CPU_MAX_TOKENS * TRIT_CPU_RG_ROWS];
    float sum[TRIT_CPU_MAX_TOKENS * TRIT_CPU_RG_ROWS];
    for (int64_t c0 = a; c0 < b; c0 += job->chunk_rg) {
        const int64_t c1 = b - c0 < job->chunk_rg ? b : c0 + job->chunk_rg;
        for (int64_t t0 = 0; t0 < job->m; t0 += tok_block) {
            const int nt = (int)(job->m - t0 < tok_block ? job->m - t0 : tok_block);
            for (int t = 0; t < nt; t++) {
                const int8_t *qt = job->q + (t0 + t) * job->n_cols;
                for (int64_t kb = 0; kb < n_kb; kb++) {
                    const int64_t col = kb * TRIT_CPU_KB_COLS, n = job->n_cols - col < TRIT_CPU_KB_COLS ? job->n_cols - col : TRIT_CPU_KB_COLS;
                    qsum[kb * TRIT_CPU_MAX_TOKENS + t] = trit_cpu_sum_i8(w->isa, qt + col, n);
                    inv[kb * TRIT_CPU_MAX_TOKENS + t] = 1.0f / job->act_scale[(t0 + t) * n_ab + (w->act_block > 0 ? kb : 0)];
                }
            }
            for (int64_t rg = c0; rg < c1; rg++) {
                const int64_t r0 = rg * TRIT_CPU_RG_ROWS;
                const int nr = (int)(w->n_rows - r0 < TRIT_CPU_RG_ROWS ? w->n_rows - r0 : TRIT_CPU_RG_ROWS);
                const uint8_t *wt = w->packed + rg * n_kb * TRIT_CPU_TILE_BYTES;
                const float *d = w->group > 0 ? w->group_scales + rg * n_groups * TRIT_CPU_RG_ROWS : NULL;
                if (job->bfn) {
                    const struct trit_cpu_btile bt = {.w = wt, .n_kb = n_kb, .n_cols = job->n_cols,
                                                      .q = job->q + t0 * job->n_cols, .ld_q = job->n_cols, .n_tok = nt,
                                                      .qsum = qsum, .inv = inv, .d = d, .kb_per_group = kb_per_group,
                                                      .out = sum, .ld_out = TRIT_CPU_RG_ROWS};
                    job->bfn(&bt);
                } else {
                    memset(sum, 0, sizeof sum);
                    for (int64_t kb = 0; kb < n_kb; kb++) {
                        const int64_t col = kb * TRIT_CPU_KB_COLS;
                        const struct trit_cpu_tile tile = {
                            .w = wt + kb * TRIT_CPU_TILE_BYTES, .n_rg = 1, .n_kb = 1,
                            .n_cols = job->n_cols - col < TRIT_CPU_KB_COLS ? job->n_cols - col : TRIT_CPU_KB_COLS,
                            .q = job->q + t0 * job->n_cols + col, .ld_q = job->n_cols, .n_tok = nt,
                            .out = res, .ld_out = TRIT_CPU_RG_ROWS, .qsum = qsum + kb * TRIT_CPU_MAX_TOKENS};
                        job->fn(&tile);
                        for (int t = 0; t < nt; t++) {
                            const int32_t *acc = res + t * TRIT_CPU_RG_ROWS;
                            float *out = sum + t * TRIT_CPU_RG_ROWS;
                            const float r_s = inv[kb * TRIT_CPU_MAX_TOKENS + t];
                            /* the reference's float operations, in its order: no reassociation, no FMA */
                            if (d) {
                                const float *dg = d + (kb / kb_per_group) * TRIT_CPU_RG_ROWS;
                                for (int r = 0; r < nr; r++) out[r] += ((float)acc[r] * r_s) * dg[r];
                            } else if (w->scale_kind == TRIT_SCALE_DIV) {
                                const float den = job->act_scale[(t0 + t) * n_ab + (w->act_block > 0 ? kb : 0)] * w->scale;
                                for (int r = 0; r < nr; r++) out[r] += (float)acc[r] / den;
                            } else {
                                for (int r = 0; r < nr; r++) out[r] += ((float)acc[r] * r_s) * w->scale;
                            }
                        }
                    }
                }
                for (int t = 0; t < nt; t++) {
                    float *dst = job->y[mat] + (t0 + t) * w->n_rows + r0;
                    const float *src = sum + t * TRIT_CPU_RG_ROWS;
                    if (job->epi == EPI_F32) memcpy(dst, src, (size_t)nr * sizeof(float));
                    else
                        for (int r = 0; r < nr; r++) dst[r] += src[r];
                }
            }
        }
    }
}

/* Row groups [a, b) of matrix `mat` (local indices), all tokens, on pool thread `thread`. */
static void run_range(const struct gemm_job *job, int mat, int64_t a, int64_t b, int thread) {
    const struct trit_cpu_matrix *w = job->w[mat];
    int32_t res[TRIT_CPU_RES_ELEMS];
    /* unpacked panels when there is scratch and one row group fits it */
    uint8_t *panel = job->unpack ? trit_pool_scratch(job->pool, thread) : NULL;
    const int64_t panel_rg = TRIT_POOL_SCRATCH_BYTES / (job->n_kb * TRIT_CPU_UNPACKED_TILE_BYTES);
    if (panel_rg < 1) panel = NULL;
    const int64_t chunk_rg = panel && panel_rg < job->chunk_rg ? panel_rg : job->chunk_rg;
    for (int64_t c0 = a; c0 < b; c0 += chunk_rg) {
        int64_t n_rg = b - c0 < chunk_rg ? b - c0 : chunk_rg;
        int64_t r0 = c0 * TRIT_CPU_RG_ROWS;
        int64_t r1 = (c0 + n_rg) * TRIT_CPU_RG_ROWS;
        if (r1 > w->n_rows) r1 = w->n_rows;
        struct trit_cpu_tile tile = {
            .w = w->packed + c0 * job->n_kb * TRIT_CPU_TILE_BYTES,
            .n_rg = n_rg,
            .n_kb = job->n_kb,
            .n_cols = job->n_cols,
            .ld_q = job->n_cols,
            .out = res,
            .ld_out = n_rg * TRIT_CPU_RG_ROWS,
        };
        trit_cpu_tile_fn fn = job->fn;
        if (panel) {
            job->unpack(tile.w, n_rg * job->n_kb, panel);
            tile.w = panel;
            fn = job->panel;
        }
        for (int64_t t0 = 0; t0 < job->m; t0 += job->tok_block) {
            int nt = (int)(job->m - t0 < job->tok_block ? job->m - t0 : job->tok_block);
            tile.n_tok = nt;
            tile.q = job->q + t0 * job->n_cols;
            tile.qsum = job->qsum ? job->qsum + t0 : NULL;
            fn(&tile);
            epilogue_store(job, mat, res, tile.ld_out, r0, r1, t0, nt);
        }
    }
}

static void gemm_task(void *ctx, int64_t task, int thread) {
    const struct gemm_job *job = ctx;
    int64_t total = job->rg_begin[job->n_mats];
    int64_t g0 = total * task / job->n_tasks, g1 = total * (task + 1) / job->n_tasks;
    for (int i = 0; i < job->n_mats && g0 < g1; i++) {
        int64_t a = g0 > job->rg_begin[i] ? g0 : job->rg_begin[i];
        int64_t b = g1 < job->rg_begin[i + 1] ? g1 : job->rg_begin[i + 1];
        if (a >= b) continue;
        if (job->blocked) run_range_blocked(job, i, a - job->rg_begin[i], b - job->rg_begin[i]);
        else run_range(job, i, a - job->rg_begin[i], b - job->rg_begin[i], thread);
    }
}

static enum trit_status gemm_run(struct trit_pool *pool, int n_mats, const struct trit_cpu_matrix *const *w,
                                 const int8_t *q, int64_t m, enum epilogue epi, const float *act_scale,
                                 int32_t *acc, float *const *y) {
    if (n_mats < 1 || n_mats > TRIT_CPU_MULTI_MAX || !w)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_gemm: %d matrices (1..%d)", n_mats, TRIT_CPU_MULTI_MAX);
    if (m < 0) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_gemm: m = %lld", (long long)m);
    struct gemm_job job = {.n_mats = n_mats, .w = w, .q = q, .m = m, .epi = epi,
                           .act_scale = act_scale, .acc = acc, .y = y};
    for (int i = 0; i < n_mats; i++) {
        if (!w[i] || !w[i]->packed)
            return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_gemm: matrix %d is NULL or not packed", i);
        if (w[i]->n_cols != w[0]->n_cols || w[i]->isa != w[0]->isa || w[i]->act_block != w[0]->act_block ||
            trit_cpu_matrix_blocked(w[i]) != trit_cpu_matrix_blocked(w[0]))
            return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_gemm: matrix %d differs in n_cols, isa or scaling", i);
        if (w[i]->act_block != 0 && w[i]->act_block != TRIT_CPU_KB_COLS)
            return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_gemm: activation block %lld (0 or %d)",
                              (long long)w[i]->act_block, TRIT_CPU_KB_COLS);
        if (epi != EPI_I32 && (!y || !y[i]))
            return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_gemm: NULL output %d", i);
        job.rg_begin[i + 1] = job.rg_begin[i] + w[i]->n_rg;
    }
    job.blocked = trit_cpu_matrix_blocked(w[0]);
    if (job.blocked && epi == EPI_I32)
        return trit_error(TRIT_ERR_UNSUPPORTED, "trit_cpu_gemm_i32: a group-scaled or block-quantized product has no "
                                                "single int32 per row");
    if (job.blocked && w[0]->n_kb > TRIT_CPU_BLOCKED_MAX_KB)
        return trit_error(TRIT_ERR_UNSUPPORTED, "trit_cpu_gemm: a group-scaled row of %lld columns (at most %d)",
                          (long long)w[0]->n_cols, TRIT_CPU_BLOCKED_MAX_KB * TRIT_CPU_KB_COLS);
    if (m == 0) return TRIT_OK;
    if (!q || (epi == EPI_I32 && !acc) || (epi != EPI_I32 && !act_scale))
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cpu_gemm: NULL activations or output");
    struct kernel kern = kernel_for(w[0]->isa, m, job.blocked);
    bool all_grouped = true;
    for (int i = 0; i < n_mats; i++) all_grouped = all_grouped && w[i]->group > 0;
#if defined(__x86_64__)
    if (job.blocked && all_grouped && trit_cpu_isa_supported(w[0]->isa)) {
        if (w[0]->isa == TRIT_CPU_ISA_AVX2) job.bfn = trit_cpu_btile_avx2;
        if (w[0]->isa == TRIT_CPU_ISA_AVX512_VNNI || w[0]->isa == TRIT_CPU_ISA_AMX) job.bfn = trit_cpu_btile_avx512;
    }
#endif
    (void)all_grouped;
    job.fn = kern.fn;
    job.tok_block = kern.tok_block;
    job.unpack = kern.unpack;
    job.panel = kern.panel;
    job.pool = pool;
    int32_t qsum[TRIT_CPU_QSUM_MAX];
    if (m > 1 && m <= TRIT_CPU_QSUM_MAX && !job.blocked) {
        for (int64_t t = 0; t < m; t++) qsum[t] = trit_cpu_sum_i8(w[0]->isa, q + t * w[0]->n_cols, w[0]->n_cols);
        job.qsum = qsum;
    }
    if (!job.fn)
        return trit_error(TRIT_ERR_UNSUPPORTED, "trit_cpu_gemm: kernel family %s cannot run here",
                          trit_cpu_isa_name(w[0]->isa));
    job.n_cols = w[0]->n_cols;
    job.n_kb = w[0]->n_kb;
    /* the results of one chunk and token block fit res[] */
    int64_t chunk = TRIT_CPU_RES_ELEMS / (TRIT_CPU_RG_ROWS * job.tok_block);
    if (m > job.tok_block) {
        int64_t fit = kern.chunk_bytes / (job.n_kb * TRIT_CPU_TILE_BYTES);
        if (fit < chunk) chunk = fit < 1 ? 1 : fit;
    }
    job.chunk_rg = chunk;
    /* TRIT_CPU_TASKS_PER_THREAD contiguous ranges per thread: thread i owns the i-th group of them
     * (one sequential weight stream), and a thread that finishes first takes the ranges another
     * has not started (threadpool.h), which evens out a thread that was descheduled. */
    int64_t n_tasks = TRIT_CPU_TASKS_PER_THREAD * (int64_t)trit_pool_n_threads(pool);
    job.n_tasks = job.rg_begin[n_mats] < n_tasks ? job.rg_begin[n_mats] : n_tasks;
    trit_pool_parallel_for(pool, job.n_tasks, gemm_task, &job);
    return TRIT_OK;
}

/* ---- entry points ------------------------------------------------------------------------- */

enum trit_status trit_cpu_gemm_i32(struct trit_pool *pool, const struct trit_cpu_matrix *w,
                                   const int8_t *q, int64_t m, int32_t *acc) {
    return gemm_run(pool, 1, &w, q, m, EPI_I32, NULL, acc, NULL);
}

enum trit_status trit_cpu_gemm_f32(struct trit_pool *pool, const struct trit_cpu_matrix *w,
                                   const int8_t *q, int64_t m, const float *act_scale, float *y) {
    return gemm_run(pool, 1, &w, q, m, EPI_F32, act_scale, NULL, &y);
}

enum trit_status trit_cpu_gemm_f32_add(struct trit_pool *pool, const struct trit_cpu_matrix *w,
                                       const int8_t *q, int64_t m, const float *act_scale,
                                       float *y) {
    return gemm_run(pool, 1, &w, q, m, EPI_F32_ADD, act_scale, NULL, &y);
}

enum trit_status trit_cpu_gemm_f32_multi(struct trit_pool *pool, int n_mats,
                                         const struct trit_cpu_matrix *const *w, const int8_t *q,
                                         int64_t m, const float *act_scale, float *const *y) {
    return gemm_run(pool, n_mats, w, q, m, EPI_F32, act_scale, NULL, y);
}
