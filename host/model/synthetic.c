/*
 * synthetic.c: models named by shape, with random ternary weights, norms and embeddings, built in
 * memory without any file. They exist to measure the engine on the shapes that matter (a 2B-4T,
 * a Llama-3-8B, two layers of a 70B) on machines that hold no checkpoint, and to give tests a
 * model of each graph family:
 *
 *   trit_model_synthetic("2b4t", seed, &m);      or any command with   -m synthetic:2b4t[:seed]
 *
 * The numbers are random but shaped so that a forward pass stays finite and its activations stay
 * near unit RMS at every depth (see "scales" below); the logits mean nothing.
 *
 * Speed: the 2-bit codes (32 per 64-bit draw pair) and the fp16 embedding (4 per draw) are built
 * from xorshift bits with word-parallel integer operations, nothing goes through floats: 2B-4T
 * (0.5 GB of codes, 657 MB of embedding) takes under a second of CPU, most of it page faults.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

/* ---- shapes ------------------------------------------------------------------------------------ */

struct synth_shape {
    const char *name;
    const char *about;
    struct trit_hparams hp;
    int64_t group; /* 0: one scale per matrix; else group scales (Q2_0-style) per this many columns */
};

/* norm_eps and rope theta follow the real checkpoints of each shape (config.json). */
static const struct synth_shape synth_shapes[] = {
    {"2b4t", "microsoft bitnet-b1.58-2B-4T shape",
     {.family = TRIT_FAMILY_BITNET_B158, .n_vocab = 128256, .dim = 2560, .n_layers = 30, .n_heads = 20,
      .n_kv_heads = 5, .head_dim = 128, .ffn_dim = 6912, .ctx_train = 4096, .norm_eps = 1e-5f,
      .rope_theta = 500000.0f, .act = TRIT_ACT_RELU2, .rope_style = TRIT_ROPE_NEOX, .sub_norms = true,
      .tied_embeddings = true},
     0},
    {"8b", "Llama-3-8B shape (HF1BitLLM Llama3-8B-1.58)",
     {.family = TRIT_FAMILY_LLAMA, .n_vocab = 128256, .dim = 4096, .n_layers = 32, .n_heads = 32,
      .n_kv_heads = 8, .head_dim = 128, .ffn_dim = 14336, .ctx_train = 8192, .norm_eps = 1e-5f,
      .rope_theta = 500000.0f, .act = TRIT_ACT_SILU, .rope_style = TRIT_ROPE_NEOX, .sub_norms = false,
      .tied_embeddings = false},
     0},
    {"70b-layers", "2 layers of a Llama-3-70B shape",
     {.family = TRIT_FAMILY_LLAMA, .n_vocab = 128256, .dim = 8192, .n_layers = 2, .n_heads = 64,
      .n_kv_heads = 8, .head_dim = 128, .ffn_dim = 28672, .ctx_train = 8192, .norm_eps = 1e-5f,
      .rope_theta = 500000.0f, .act = TRIT_ACT_SILU, .rope_style = TRIT_ROPE_NEOX, .sub_norms = false,
      .tied_embeddings = false},
     0},
    /* Group-scaled ternary (llama.cpp Q2_0, Ternary-Bonsai's Qwen3 graph) in the same two shapes: groups
     * of 64 (mainline Q2_0) on the 2B-4T shape, of 128 (the Bonsai files) on the 8B shape. */
    {"2b4t-q2", "bitnet-b1.58-2B-4T shape, Qwen3 graph, Q2_0 groups of 64",
     {.family = TRIT_FAMILY_QWEN3, .n_vocab = 128256, .dim = 2560, .n_layers = 30, .n_heads = 20,
      .n_kv_heads = 5, .head_dim = 128, .ffn_dim = 6912, .ctx_train = 4096, .norm_eps = 1e-6f,
      .rope_theta = 1000000.0f, .act = TRIT_ACT_SILU, .rope_style = TRIT_ROPE_NEOX, .tied_embeddings = true,
      .qk_norm = true, .act_block = TRIT_GROUP_UNIT},
     64},
    {"8b-q2", "Llama-3-8B shape, Qwen3 graph, Q2_0 groups of 128",
     {.family = TRIT_FAMILY_QWEN3, .n_vocab = 128256, .dim = 4096, .n_layers = 32, .n_heads = 32,
      .n_kv_heads = 8, .head_dim = 128, .ffn_dim = 14336, .ctx_train = 8192, .norm_eps = 1e-6f,
      .rope_theta = 1000000.0f, .act = TRIT_ACT_SILU, .rope_style = TRIT_ROPE_NEOX, .tied_embeddings = false,
      .qk_norm = true, .act_block = TRIT_GROUP_UNIT},
     128},
    /* For tests: odd sizes on purpose (ffn 160 and dim 96 are not multiples of 256, so the kernels
     * run their tails), one of each family. */
    {"tiny", "tiny bitnet-b1.58 (2B-4T graph)",
     {.family = TRIT_FAMILY_BITNET_B158, .n_vocab = 300, .dim = 96, .n_layers = 2, .n_heads = 6,
      .n_kv_heads = 2, .head_dim = 16, .ffn_dim = 160, .ctx_train = 256, .norm_eps = 1e-5f,
      .rope_theta = 500000.0f, .act = TRIT_ACT_RELU2, .rope_style = TRIT_ROPE_NEOX, .sub_norms = true,
      .tied_embeddings = true},
     0},
    {"tiny-bitnet", "tiny bitnet (1bitLLM graph)",
     {.family = TRIT_FAMILY_BITNET, .n_vocab = 300, .dim = 96, .n_layers = 2, .n_heads = 4,
      .n_kv_heads = 4, .head_dim = 24, .ffn_dim = 160, .ctx_train = 256, .norm_eps = 1e-6f,
      .rope_theta = 10000.0f, .act = TRIT_ACT_SILU, .rope_style = TRIT_ROPE_NEOX, .sub_norms = true,
      .tied_embeddings = false},
     0},
    {"tiny-llama", "tiny llama with BitLinear weights",
     {.family = TRIT_FAMILY_LLAMA, .n_vocab = 300, .dim = 96, .n_layers = 2, .n_heads = 6,
      .n_kv_heads = 2, .head_dim = 16, .ffn_dim = 160, .ctx_train = 256, .norm_eps = 1e-5f,
      .rope_theta = 500000.0f, .act = TRIT_ACT_SILU, .rope_style = TRIT_ROPE_NORM, .sub_norms = false,
      .tied_embeddings = false},
     0},
    /* Group-scaled rows must be whole groups: dims are multiples of 64; ffn 192 is three groups of 64. */
    {"tiny-qwen3", "tiny qwen3 with Q2_0-style group scales",
     {.family = TRIT_FAMILY_QWEN3, .n_vocab = 300, .dim = 128, .n_layers = 2, .n_heads = 4,
      .n_kv_heads = 2, .head_dim = 32, .ffn_dim = 192, .ctx_train = 256, .norm_eps = 1e-6f,
      .rope_theta = 1000000.0f, .act = TRIT_ACT_SILU, .rope_style = TRIT_ROPE_NEOX, .tied_embeddings = true,
      .qk_norm = true, .act_block = TRIT_GROUP_UNIT},
     64},
};
#define N_SYNTH_SHAPES ((int)(sizeof synth_shapes / sizeof synth_shapes[0]))

const char *trit_model_synthetic_names(void) {
    return "2b4t, 8b, 70b-layers, 2b4t-q2, 8b-q2, tiny, tiny-bitnet, tiny-llama, tiny-qwen3";
}

/* ---- random streams ---------------------------------------------------------------------------- */

/* splitmix64: the stream seed of each tensor, from (seed, tensor index), and the bulk bits as
 * splitmix64(stream seed + word index), a counter-based generator: no chain from one word to the
 * next, so the loops run at the core's integer throughput rather than a generator's latency. */
static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* xorshift64*: the small sequential draws (norm weights). */
static inline uint64_t xs_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t stream_seed(uint64_t seed, uint64_t tensor) {
    uint64_t s = splitmix64(seed ^ splitmix64(tensor + 1));
    return s ? s : 1; /* xorshift's one forbidden state */
}

/* ---- ternary codes ------------------------------------------------------------------------------
 * 32 codes per 64-bit word, word-parallel: the 2-bit fields of a draw r1 are kept where they are 0,
 * 1 or 2; a field equal to 3 takes the field of a second draw r2 instead, with r2's own 3s turned
 * into 1 (clear their high bit). So P(t = -1) = P(t = +1) = 1/4 + 1/16 = 5/16 and P(t = 0) = 6/16,
 * close to a real checkpoint (absmean ternarization of a Gaussian: 0.35 / 0.31 / 0.35), never code 3. */
#define LO_BITS 0x5555555555555555ull

static inline uint64_t random_codes(uint64_t seed, uint64_t i) {
    const uint64_t r1 = splitmix64(seed + 2 * i), r2 = splitmix64(seed + 2 * i + 1);
    const uint64_t three1 = (r1 >> 1) & r1 & LO_BITS, three2 = (r2 >> 1) & r2 & LO_BITS;
    const uint64_t r2_fixed = r2 & ~(three2 << 1);
    const uint64_t m = three1 | (three1 << 1);
    return (r1 & ~m) | (r2_fixed & m);
}

static void fill_codes(struct trit_ternary *w, uint64_t seed) {
    const int64_t n = w->n_rows * w->row_bytes;
    uint8_t *c = w->codes;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint64_t v = random_codes(seed, (uint64_t)i / 8);
        memcpy(c + i, &v, 8); /* little-endian or not, any byte order of random codes is random codes */
    }
    if (i < n) {
        const uint64_t v = random_codes(seed, (uint64_t)i / 8);
        memcpy(c + i, &v, (size_t)(n - i));
    }
    /* the canonical padding of a row's last byte is the zero code 0b01 */
    const int64_t tail = w->n_cols % 4;
    if (tail) {
        const unsigned keep = (1u << (2 * tail)) - 1u;
        for (int64_t r = 0; r < w->n_rows; r++) {
            uint8_t *b = &c[r * w->row_bytes + w->row_bytes - 1];
            *b = (uint8_t)((*b & keep) | (0x55u & ~keep));
        }
    }
}

/* ---- fp16 values ------------------------------------------------------------------------------
 * A random fp16 of magnitude in [2^(e-2), 2^(e+2)): random sign, exponent e-2 .. e+1, random
 * 10-bit mantissa; 4 per 64-bit draw, word-parallel (the biased exponent stays below 31, so no
 * field carries into the next). e = -7 gives an RMS near 0.01, so the head's logits are O(1) for
 * unit-RMS hidden states of dim 2560..8192. */
#define F16_FIELDS(x) ((x) * 0x0001000100010001ull)

static void fill_f16(uint16_t *v, int64_t n, int e, uint64_t seed) {
    const uint64_t base = F16_FIELDS((uint64_t)(15 + e - 2));
    for (int64_t i = 0; i < n; i += 4) {
        const uint64_t r = splitmix64(seed + (uint64_t)i / 4);
        const uint64_t word = (r & F16_FIELDS(0x83FFull)) | ((((r >> 10) & F16_FIELDS(3ull)) + base) << 10);
        memcpy(v + i, &word, (size_t)(n - i < 4 ? n - i : 4) * sizeof(uint16_t));
    }
}

/* Norm weights: uniform in [0.5, 1.5), from 24 random bits each. */
static float *random_norm(int64_t n, uint64_t seed, enum trit_status *status) {
    float *w = trit_alloc((size_t)n * sizeof(float));
    if (!w) {
        if (*status == TRIT_OK)
            *status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "synthetic model: out of memory (norm of %lld)", (long long)n);
        return NULL;
    }
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) w[i] = 0.5f + (float)(xs_next(&s) >> 40) * (1.0f / 16777216.0f);
    return w;
}

/* ---- assembly ---------------------------------------------------------------------------------- */

/* scales: t has about 2/3 nonzeros, so one output of an n_cols-long ternary row with unit-RMS
 * inputs has RMS sqrt(2/3 n_cols) * alpha; alpha = 1 / sqrt(2/3 n_cols) keeps every projection
 * near unit RMS, and the residual stream grows like sqrt(2 n_layers). Divide-style families store
 * the reciprocal, as BitLinear checkpoints do. */
static enum trit_status random_ternary(int64_t n_rows, int64_t n_cols, enum trit_scale_kind kind, uint64_t seed,
                                       struct trit_ternary *w) {
    TRIT_TRY(trit_ternary_init(w, n_rows, n_cols));
    fill_codes(w, seed);
    const float alpha = 1.0f / sqrtf((2.0f / 3.0f) * (float)n_cols);
    w->scale_kind = kind;
    w->scale = kind == TRIT_SCALE_MUL ? alpha : 1.0f / alpha;
    return TRIT_OK;
}

/* Group scales: alpha (as above) times a factor in [0.75, 1.25) per row and group, so that groups
 * differ as a real checkpoint's do. */
static enum trit_status random_ternary_grouped(int64_t n_rows, int64_t n_cols, int64_t group, uint64_t seed,
                                               struct trit_ternary *w) {
    TRIT_TRY(trit_ternary_init_grouped(w, n_rows, n_cols, group));
    fill_codes(w, seed);
    const float alpha = 1.0f / sqrtf((2.0f / 3.0f) * (float)n_cols);
    uint64_t s = seed ^ 0x5bd1e995u;
    if (!s) s = 1;
    for (int64_t i = 0; i < n_rows * trit_ternary_n_groups(w); i++)
        w->group_scales[i] = alpha * (0.75f + (float)(xs_next(&s) >> 40) * (0.5f / 16777216.0f));
    return TRIT_OK;
}

static enum trit_status random_dense(int64_t n_rows, int64_t n_cols, uint64_t seed, struct trit_dense *d) {
    const int64_t n = n_rows * n_cols;
    uint16_t *v = trit_alloc((size_t)n * sizeof(uint16_t));
    if (!v)
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "synthetic model: out of memory (%lld MiB of fp16 embedding)",
                          (long long)((n * 2) >> 20));
    fill_f16(v, n, -7, seed);
    d->dtype = TRIT_DTYPE_F16;
    d->n_rows = n_rows;
    d->n_cols = n_cols;
    d->data = v;
    d->owned = v;
    return TRIT_OK;
}

static const struct synth_shape *find_shape(const char *name) {
    for (int i = 0; i < N_SYNTH_SHAPES; i++)
        if (strcmp(synth_shapes[i].name, name) == 0) return &synth_shapes[i];
    return NULL;
}

static enum trit_status build(const struct synth_shape *shape, uint64_t seed, struct trit_model *m) {
    const struct trit_hparams *hp = &shape->hp;
    m->hp = *hp;
    snprintf(m->source, sizeof m->source, "synthetic");
    snprintf(m->arch_name, sizeof m->arch_name, "synthetic %s (%s)", shape->name, shape->about);
    snprintf(m->path, sizeof m->path, "synthetic:%s:%llu", shape->name, (unsigned long long)seed);

    /* Tensor k of the model draws from stream_seed(seed, k): the same seed gives the same model
     * whatever the order of construction. */
    uint64_t k = 0;
    TRIT_TRY(random_dense(hp->n_vocab, hp->dim, stream_seed(seed, k++), &m->tok_embd));
    if (hp->tied_embeddings) {
        m->output = m->tok_embd;
        m->output.owned = NULL; /* the bytes belong to tok_embd */
    } else {
        TRIT_TRY(random_dense(hp->n_vocab, hp->dim, stream_seed(seed, k++), &m->output));
    }
    enum trit_status st = TRIT_OK;
    m->out_norm = random_norm(hp->dim, stream_seed(seed, k++), &st);
    TRIT_TRY(st);

    m->layers = trit_alloc((size_t)hp->n_layers * sizeof *m->layers);
    if (!m->layers) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "synthetic model: out of memory");
    const enum trit_scale_kind kind = hp->family == TRIT_FAMILY_LLAMA ? TRIT_SCALE_DIV : TRIT_SCALE_MUL;
    const int64_t D = hp->dim, F = hp->ffn_dim, qd = hp->n_heads * hp->head_dim;
    for (int64_t i = 0; i < hp->n_layers; i++) {
        struct trit_layer *l = &m->layers[i];
        k = 16 + 16 * (uint64_t)i;
        l->attn_norm = random_norm(D, stream_seed(seed, k + 0), &st);
        l->ffn_norm = random_norm(D, stream_seed(seed, k + 1), &st);
        if (hp->sub_norms) {
            l->attn_sub_norm = random_norm(qd, stream_seed(seed, k + 2), &st);
            l->ffn_sub_norm = random_norm(F, stream_seed(seed, k + 3), &st);
        }
        if (hp->qk_norm) {
            l->attn_q_norm = random_norm(hp->head_dim, stream_seed(seed, k + 11), &st);
            l->attn_k_norm = random_norm(hp->head_dim, stream_seed(seed, k + 12), &st);
        }
        TRIT_TRY(st);
        for (int j = 0; j < TRIT_N_W; j++) {
            int64_t rows, cols;
            trit_weight_shape(hp, (enum trit_weight)j, &rows, &cols);
            const uint64_t ws = stream_seed(seed, k + 4 + (uint64_t)j);
            TRIT_TRY(shape->group > 0 ? random_ternary_grouped(rows, cols, shape->group, ws, &l->w[j])
                                      : random_ternary(rows, cols, kind, ws, &l->w[j]));
        }
    }
    return trit_model_validate(m);
}

enum trit_status trit_model_synthetic(const char *shape_name, uint64_t seed, struct trit_model *out) {
    if (!shape_name || !out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_model_synthetic: NULL argument");
    memset(out, 0, sizeof *out);
    const struct synth_shape *shape = find_shape(shape_name);
    if (!shape)
        return trit_error(TRIT_ERR_NOT_FOUND, "no synthetic model named '%s' (known: %s)", shape_name,
                          trit_model_synthetic_names());
    enum trit_status st = build(shape, seed, out);
    if (st != TRIT_OK) trit_model_release(out);
    return st;
}

enum trit_status trit_model_synthetic_spec(const char *spec, struct trit_model *out) {
    if (!spec || !out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_model_synthetic: NULL argument");
    char name[64];
    const char *colon = strchr(spec, ':');
    const size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (len == 0 || len >= sizeof name)
        return trit_error(TRIT_ERR_INVALID_ARG, "synthetic model '%s': expected synthetic:NAME[:SEED] (NAME one of %s)",
                          spec, trit_model_synthetic_names());
    memcpy(name, spec, len);
    name[len] = '\0';
    uint64_t seed = TRIT_SYNTHETIC_DEFAULT_SEED;
    if (colon) {
        char *end = NULL;
        seed = strtoull(colon + 1, &end, 0);
        if (colon[1] == '\0' || colon[1] == '-' || !end || *end != '\0')
            return trit_error(TRIT_ERR_INVALID_ARG, "synthetic model '%s': the seed '%s' is not an unsigned integer", spec,
                              colon + 1);
    }
    return trit_model_synthetic(name, seed, out);
}
