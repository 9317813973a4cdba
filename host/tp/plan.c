/*
 * plan.c: tensor-parallel sharding plans and shard extraction (plan.h).
 */
#include <math.h>
#include <string.h>

#include "tp/plan.h"

void trit_tp_split(int64_t n, int n_parts, int part, int64_t *begin, int64_t *count) {
    const int64_t base = n / n_parts, extra = n % n_parts;
    *begin = part * base + (part < extra ? part : extra);
    *count = base + (part < extra ? 1 : 0);
}

static enum trit_status too_many(int n_ranks, const char *dim, int64_t value, const char *unit) {
    return trit_error(TRIT_ERR_UNSUPPORTED,
                      "tensor parallel over %d ranks: %s = %lld cannot give every rank at least one whole %s; "
                      "use at most %lld ranks",
                      n_ranks, dim, (long long)value, unit, (long long)value);
}

enum trit_status trit_tp_plan_make(const struct trit_hparams *hp, int rank, int n_ranks, struct trit_tp_plan *out) {
    memset(out, 0, sizeof *out);
    if (n_ranks < 1 || rank < 0 || rank >= n_ranks)
        return trit_error(TRIT_ERR_INVALID_ARG, "tensor parallel: rank %d of %d", rank, n_ranks);
    if (hp->n_heads <= 0 || hp->n_kv_heads <= 0 || hp->n_heads % hp->n_kv_heads != 0)
        return trit_error(TRIT_ERR_UNSUPPORTED, "tensor parallel: n_heads %lld is not a multiple of n_kv_heads %lld",
                          (long long)hp->n_heads, (long long)hp->n_kv_heads);
    if (n_ranks > hp->n_heads) return too_many(n_ranks, "n_heads", hp->n_heads, "query head");
    if (n_ranks > hp->ffn_dim) return too_many(n_ranks, "ffn_dim", hp->ffn_dim, "FFN row");
    if (n_ranks > hp->n_vocab) return too_many(n_ranks, "n_vocab", hp->n_vocab, "vocabulary row");
    out->rank = rank;
    out->n_ranks = n_ranks;
    trit_tp_split(hp->n_heads, n_ranks, rank, &out->head0, &out->n_heads);
    const int64_t group = hp->n_heads / hp->n_kv_heads;
    const int64_t kv_first = out->head0 / group, kv_last = (out->head0 + out->n_heads - 1) / group;
    out->kv_head0 = kv_first;
    out->n_kv_heads = kv_last - kv_first + 1;
    out->kv_replicated = out->head0 % group != 0 || (out->head0 + out->n_heads) % group != 0;
    out->head_c0 = out->kv_head0 * group;
    out->n_heads_c = out->n_kv_heads * group;
    trit_tp_split(hp->ffn_dim, n_ranks, rank, &out->ffn0, &out->n_ffn);
    trit_tp_split(hp->n_vocab, n_ranks, rank, &out->vocab0, &out->n_vocab);
    out->vocab_stride = trit_div_ceil(hp->n_vocab, n_ranks);
    return TRIT_OK;
}

/* ---- shards ------------------------------------------------------------------------------------ */

struct trit_tp_shard trit_tp_shard_of(const struct trit_tp_plan *pl, const struct trit_hparams *hp, enum trit_weight w,
                                      bool whole_groups) {
    const int64_t hd = hp->head_dim;
    switch (w) {
    case TRIT_W_Q:
        return whole_groups ? (struct trit_tp_shard){true, pl->head_c0 * hd, pl->n_heads_c * hd}
                            : (struct trit_tp_shard){true, pl->head0 * hd, pl->n_heads * hd};
    case TRIT_W_K:
    case TRIT_W_V: return (struct trit_tp_shard){true, pl->kv_head0 * hd, pl->n_kv_heads * hd};
    case TRIT_W_O: return (struct trit_tp_shard){false, pl->head0 * hd, pl->n_heads * hd};
    case TRIT_W_GATE:
    case TRIT_W_UP: return (struct trit_tp_shard){true, pl->ffn0, pl->n_ffn};
    case TRIT_W_DOWN:
    default: return (struct trit_tp_shard){false, pl->ffn0, pl->n_ffn};
    }
}

enum trit_status trit_tp_ternary_rows(const struct trit_ternary *w, int64_t r0, int64_t n, struct trit_ternary *out) {
    memset(out, 0, sizeof *out);
    if (!w || !w->codes || r0 < 0 || n < 1 || r0 + n > w->n_rows)
        return trit_error(TRIT_ERR_INVALID_ARG, "tensor parallel: rows [%lld, %lld) of a %lld-row matrix", (long long)r0,
                          (long long)(r0 + n), w ? (long long)w->n_rows : 0LL);
    TRIT_TRY(trit_ternary_init(out, n, w->n_cols));
    memcpy(out->codes, w->codes + r0 * w->row_bytes, (size_t)(n * w->row_bytes));
    out->scale = w->scale;
    out->scale_kind = w->scale_kind;
    return TRIT_OK;
}

enum trit_status trit_tp_ternary_cols(const struct trit_ternary *w, int64_t c0, int64_t n, struct trit_ternary *out) {
    memset(out, 0, sizeof *out);
    if (!w || !w->codes || c0 < 0 || n < 1 || c0 + n > w->n_cols)
        return trit_error(TRIT_ERR_INVALID_ARG, "tensor parallel: columns [%lld, %lld) of a %lld-column matrix",
                          (long long)c0, (long long)(c0 + n), w ? (long long)w->n_cols : 0LL);
    TRIT_TRY(trit_ternary_init(out, w->n_rows, n));
    out->scale = w->scale;
    out->scale_kind = w->scale_kind;
    /* Column c of a row is bit pair c % 4 of byte c / 4 (quant.h). Shifting the source row right by
     * 2 (c0 % 4) bits lines column c0 up with bit pair 0 of the first output byte. */
    const int64_t b0 = c0 / 4, n_bytes = out->row_bytes;
    const unsigned sh = (unsigned)(2 * (c0 % 4));
    const uint8_t zero4 = 0x55; /* four TRIT_CODE_ZERO */
    for (int64_t r = 0; r < w->n_rows; r++) {
        const uint8_t *src = w->codes + r * w->row_bytes;
        uint8_t *dst = out->codes + r * n_bytes;
        for (int64_t j = 0; j < n_bytes; j++) {
            const unsigned lo = src[b0 + j];
            const unsigned hi = b0 + j + 1 < w->row_bytes ? src[b0 + j + 1] : zero4;
            dst[j] = (uint8_t)(sh ? (lo >> sh) | (hi << (8 - sh)) : lo);
        }
        /* Padding codes past column n of the last byte are zero (quant.h). */
        for (int64_t c = n; c < n_bytes * 4; c++) trit_ternary_set(out, r, c, 0);
    }
    return TRIT_OK;
}

/* ---- exact-mode sum of squares ------------------------------------------------------------------ */

/* Neumaier's step: s + v with the rounding error of the addition added to *comp. */
static inline void neumaier_add(double *s, double *comp, double v) {
    const double t = *s + v;
    if (fabs(*s) >= fabs(v)) *comp += (*s - t) + v;
    else *comp += (v - t) + *s;
    *s = t;
}

void trit_tp_sumsq_partial(const float *x, int64_t n, double pair[2]) {
    double s = 0.0, comp = 0.0;
    for (int64_t i = 0; i < n; i++) neumaier_add(&s, &comp, (double)x[i] * (double)x[i]); /* exact product */
    pair[0] = s;
    pair[1] = comp;
}

float trit_tp_sumsq_combine(const double *pairs, int n_pairs) {
    double s = 0.0, comp = 0.0;
    for (int i = 0; i < 2 * n_pairs; i++) neumaier_add(&s, &comp, pairs[i]);
    return (float)(s + comp);
}

/* ---- agreement between ranks ------------------------------------------------------------------- */

/* FNV-1a over what every rank must agree on. */
static uint32_t fnv1a(uint32_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

uint32_t trit_tp_fingerprint(const struct trit_model *m, int64_t n_ctx, int64_t n_batch, bool logits_all, int quant) {
    const struct trit_hparams *hp = &m->hp;
    const int64_t v[] = {hp->family, hp->n_vocab, hp->dim, hp->n_layers, hp->n_heads, hp->n_kv_heads, hp->head_dim,
                         hp->ffn_dim, hp->act, hp->rope_style, hp->sub_norms, hp->tied_embeddings, n_ctx,
                         n_batch, logits_all, quant};
    uint32_t h = fnv1a(2166136261u, v, sizeof v);
    h = fnv1a(h, &hp->norm_eps, sizeof hp->norm_eps);
    h = fnv1a(h, &hp->rope_theta, sizeof hp->rope_theta);
    for (int64_t i = 0; i < hp->n_layers; i++) {
        for (int j = 0; j < TRIT_N_W; j++) {
            const struct trit_ternary *w = &m->layers[i].w[j];
            h = fnv1a(h, &w->scale, sizeof w->scale);
            h = fnv1a(h, w->codes, (size_t)(w->row_bytes < 64 ? w->row_bytes : 64));
        }
    }
    return h & 0x7fffffffu;
}
