/*
 * model.h: one description of a ternary transformer, whatever file it came from.
 *
 * Data flows one way (docs/design.md section 1): file -> io/ -> model/ (this: canonical ternary
 * tensors + hyperparameters) -> a backend repacks once into its own layout.
 *
 * Three graph families (docs/formats.md section 1):
 *   TRIT_FAMILY_BITNET_B158  microsoft bitnet-b1.58-2B-4T: ReLU^2 gate, attn/ffn sub-norms, GQA,
 *                            NeoX RoPE (theta 5e5), tied embedding. GGUF arch bitnet-b1.58 / bitnet-25,
 *                            HF model_type "bitnet".
 *   TRIT_FAMILY_BITNET       1bitLLM bitnet_b1_58-*: SiLU gate, the same two sub-norms, MHA, theta
 *                            1e4. GGUF arch "bitnet", HF model_type "llama" + BitnetForCausalLM.
 *   TRIT_FAMILY_LLAMA        Llama-style with BitLinear weights (HF1BitLLM Llama3-8B-1.58,
 *                            Falcon3-*-1.58bit): SiLU gate, no sub-norms, untied head.
 *   TRIT_FAMILY_QWEN3        Qwen3 with group-scaled ternary weights (Ternary-Bonsai, llama.cpp Q2_0):
 *                            SiLU gate, RMSNorm per head on q and k before RoPE (qk_norm), NeoX RoPE,
 *                            no sub-norms, activations quantized per block of 64 (act_block).
 *                            GGUF arch "qwen3", HF model_type "qwen3".
 *   TRIT_FAMILY_GEMMA3       Gemma3 text with group-scaled ternary weights (the backbone of
 *                            bitnet-embedding-270m): GELU-tanh gate, q/k norms, sandwich norms (a
 *                            post-norm on each block's output, post_norms), embedding times
 *                            sqrt(dim), attention scale query_pre_attn_scalar^-1/2, sliding-window
 *                            layers with their own RoPE theta, activations per block of 64. Every
 *                            norm weight is stored as (1 + w) (Gemma's RMSNorm), as llama.cpp's GGUF
 *                            holds it. GGUF arch "gemma3", HF model_type "gemma3_text".
 * The forward pass is one function for all of them; the family only sets the switches below.
 */
#ifndef TRIT_MODEL_H
#define TRIT_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"
#include "quant/quant.h"

enum trit_family {
    TRIT_FAMILY_BITNET_B158 = 0,
    TRIT_FAMILY_BITNET = 1,
    TRIT_FAMILY_LLAMA = 2,
    TRIT_FAMILY_QWEN3 = 3,
    TRIT_FAMILY_GEMMA3 = 4,
};

enum trit_act {
    TRIT_ACT_RELU2 = 0, /* relu(x)^2 */
    TRIT_ACT_SILU = 1,  /* x * sigmoid(x) */
    TRIT_ACT_GELU_TANH = 2, /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): gelu_pytorch_tanh */
};

enum trit_rope_style {
    TRIT_ROPE_NEOX = 0, /* HF rotate_half: pairs (i, i + head_dim/2) */
    TRIT_ROPE_NORM = 1, /* GPT-J / llama.cpp "normal": pairs (2i, 2i+1), Q/K rows permuted */
};

struct trit_hparams {
    enum trit_family family;
    int64_t n_vocab;
    int64_t dim;        /* hidden size */
    int64_t n_layers;
    int64_t n_heads;
    int64_t n_kv_heads;
    int64_t head_dim;   /* dim / n_heads unless the file says otherwise */
    int64_t ffn_dim;    /* intermediate size */
    int64_t ctx_train;  /* max_position_embeddings / context_length */
    float norm_eps;
    float rope_theta;
    enum trit_act act;
    enum trit_rope_style rope_style;
    bool sub_norms;        /* attn_sub_norm before o_proj, ffn_sub_norm before down_proj */
    bool tied_embeddings;  /* the head is token_embd */
    bool qk_norm;          /* RMSNorm of every q and k head (head_dim weights) before RoPE */
    /* Activation quantization of the ternary matmuls' inputs (docs/design.md section 3): 0 = one
     * scale per token row (BitNet b1.58, trained with it); TRIT_GROUP_UNIT = one per 64 values
     * (models trained with float activations, whose rows have outliers a row-wide scale would
     * crush). */
    int64_t act_block;
    /* Gemma3 (zero elsewhere: the plain graph). */
    bool post_norms;        /* x += rmsnorm(block output) * attn_post_norm | ffn_post_norm */
    float embd_scale;       /* 0: none; else the embedding row times this (fp32 sqrt(dim)) */
    float attn_scale;       /* 0: 1 / sqrtf(head_dim); else the scores' scale */
    int64_t sliding_window; /* W > 0: a layer with trit_layer.sliding attends to positions > pos - W */
    float rope_theta_local; /* the sliding layers' RoPE theta (rope_theta is the full layers') */
};

/* Dense (non-ternary) matrices: the embedding and the LM head. Kept in the file's dtype; `data`
 * points into the mapped file or into `owned`. */
enum trit_dtype {
    TRIT_DTYPE_F32 = 0,
    TRIT_DTYPE_F16 = 1,
    TRIT_DTYPE_BF16 = 2,
};
struct trit_dense {
    enum trit_dtype dtype;
    int64_t n_rows, n_cols; /* (n_vocab, dim) for the embedding and the head */
    const void *data;       /* row-major; the model's embedding and head are aligned to the element
                             * size (trit_model_load_path copies a misaligned tensor of a file),
                             * other dense views a loader makes need not be */
    void *owned;            /* non-NULL when the model owns the bytes (trit_free) */
};
/* Row r of a dense matrix as fp32 (n_cols values). */
void trit_dense_row_f32(const struct trit_dense *m, int64_t r, float *out);

/* A layer's seven ternary matrices, in the order the forward pass uses them. Every list of them
 * (loaders, converter, backends, sharding plan, inspect) indexes this enum and trit_weights[]. */
enum trit_weight {
    TRIT_W_Q,    /* (n_heads * head_dim, dim) */
    TRIT_W_K,    /* (n_kv_heads * head_dim, dim) */
    TRIT_W_V,    /* (n_kv_heads * head_dim, dim) */
    TRIT_W_O,    /* (dim, n_heads * head_dim) */
    TRIT_W_GATE, /* (ffn_dim, dim) */
    TRIT_W_UP,   /* (ffn_dim, dim) */
    TRIT_W_DOWN, /* (dim, ffn_dim) */
    TRIT_N_W
};

/* Names and shape of one matrix: GGUF "blk.N.<gguf>.weight", Hugging Face
 * "model.layers.N.<hf>.weight". */
struct trit_weight_info {
    const char *gguf;
    const char *hf;
    const char *what; /* "q_proj", ... for messages */
};
extern const struct trit_weight_info trit_weights[TRIT_N_W];
/* Its (rows, cols) under hp. */
void trit_weight_shape(const struct trit_hparams *hp, enum trit_weight w, int64_t *n_rows, int64_t *n_cols);

struct trit_layer {
    float *attn_norm;                    /* (dim) */
    float *attn_sub_norm;                /* (n_heads * head_dim), NULL without sub-norms */
    float *ffn_norm;                     /* (dim) */
    float *ffn_sub_norm;                 /* (ffn_dim), NULL without sub-norms */
    float *attn_q_norm, *attn_k_norm;    /* (head_dim) each with qk_norm, else NULL */
    struct trit_ternary w[TRIT_N_W];     /* shapes at enum trit_weight */
    float *attn_post_norm, *ffn_post_norm; /* (dim) each with post_norms, else NULL */
    bool sliding;                        /* sliding-window attention (hp.sliding_window), local RoPE */
};

/* What a file held for one tensor, for `trit inspect` and error messages. */
struct trit_tensor_note {
    char name[96];
    char kind[24];      /* "I2_S", "TQ2_0", "Q2_0 g128", "HF packed u8", "F16 -> absmean", "F32", ... */
    int64_t n_rows, n_cols;
    uint64_t file_bytes;
};

struct trit_model {
    struct trit_hparams hp;
    struct trit_dense tok_embd;   /* (n_vocab, dim) */
    struct trit_dense output;     /* (n_vocab, dim); equals tok_embd's bytes when tied */
    float *out_norm;              /* (dim) */
    struct trit_layer *layers;    /* (n_layers) */

    char source[16];              /* "gguf" or "hf" */
    char arch_name[64];           /* general.architecture, or config.json model_type */
    char path[1024];
    int64_t n_notes;
    struct trit_tensor_note *notes;

    void *mapping;                /* the mapped source file(s), released by trit_model_free */
    void (*release_mapping)(void *mapping);
};

struct trit_load_params {
    /* Called with fraction in [0, 1] while tensors are decoded; NULL for none. */
    void (*progress)(float fraction, void *user);
    void *progress_user;
    enum trit_i2s_layout i2s_layout; /* bitnet.cpp I2_S weights: x86 or ARM blocks (trit.h) */
};

/* Loads a GGUF file or a Hugging Face folder. On failure *out is left zeroed and
 * trit_last_error() names the problem. */
enum trit_status trit_model_load_path(const char *path, const struct trit_load_params *params,
                                      struct trit_model *out);
enum trit_status trit_model_load_gguf(const char *path, const struct trit_load_params *params,
                                      struct trit_model *out);
enum trit_status trit_model_load_hf(const char *dir, const struct trit_load_params *params,
                                    struct trit_model *out);
/* Which published family a Hugging Face config.json describes, in words, from model_type,
 * architectures[0], hidden_act and quantization_config alone (no weight is read): one row of
 * docs/formats.md section 1, e.g. "Llama + BitLinear (quant_method bitnet): the format of
 * HF1BitLLM Llama3-8B-1.58, Falcon3-*-1.58bit and Falcon-E". For `trit inspect` and refusals;
 * a recognized family can still be refused (an unsupported option). Never NULL; static storage. */
struct json_doc;
const char *trit_hf_config_family(const struct json_doc *config);
/* A model with random weights in a named shape, built in memory (synthetic.c): "2b4t"
 * (bitnet-b1.58-2B-4T: dim 2560, ffn 6912, 30 layers, 20/5 heads, vocab 128256, tied fp16
 * embedding), "8b" (Llama-3-8B, untied), "70b-layers" (2 layers of Llama-3-70B), and "tiny",
 * "tiny-bitnet", "tiny-llama" for tests. The same name and seed give the same bytes. The logits
 * mean nothing and there is no tokenizer. TRIT_ERR_NOT_FOUND for an unknown name; *out is left
 * zeroed on failure. */
#define TRIT_SYNTHETIC_PREFIX "synthetic:"
#define TRIT_SYNTHETIC_DEFAULT_SEED 1u
enum trit_status trit_model_synthetic(const char *shape_name, uint64_t seed, struct trit_model *out);
/* "NAME" or "NAME:SEED" (the part after "synthetic:" in a model path; seed in C notation). */
enum trit_status trit_model_synthetic_spec(const char *spec, struct trit_model *out);
/* The known names, comma separated, for messages. */
const char *trit_model_synthetic_names(void);
/* Releases everything; accepts a zeroed struct. */
void trit_model_release(struct trit_model *m);

/* Checks shapes and presence of every tensor against the hyperparameters. */
enum trit_status trit_model_validate(const struct trit_model *m);

/* true when the model's ternary products take the group rule of the numerics contract (group
 * scales on any matrix, or activations quantized per block). */
bool trit_model_group_rule(const struct trit_model *m);

/* NULL, or what only the CPU backend implements in this model, in words: Gemma3's switches (post-norms,
 * GELU-tanh, a sliding window, an embedding or attention scale). trit_context_init refuses such a
 * model on CUDA and tensor parallelism (auto picks the CPU), whatever those backends' own checks. */
const char *trit_model_cpu_only(const struct trit_model *m);

/* Family <-> name. */
const char *trit_family_name(enum trit_family f);

/* Number of ternary parameters, and bytes of 2-bit codes, for reports. */
int64_t trit_model_ternary_params(const struct trit_model *m);

#endif /* TRIT_MODEL_H */
