/*
 * tiny_model.h: tiny ternary models written as Hugging Face folders (config.json, safetensors,
 * optionally a small byte-level BPE tokenizer.json) and as GGUF files in every weight encoding
 * trit reads. No Criterion here: tests/test_convert.c and tests/make_tiny_model.c (the CLI tests'
 * fixture writer, see tests/ctest_tools.cmake) both use it.
 *
 * The ternary weights are drawn from a seed and kept in canonical form (m->w), so a test can check
 * what any loader decodes against what was written.
 */
#ifndef TRIT_TESTS_TINY_MODEL_H
#define TRIT_TESTS_TINY_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "quant/quant.h"

/* The checkpoint kinds of docs/formats.md section 1, as Hugging Face folders. */
enum tiny_kind {
    TINY_HF_AUTOBITLINEAR = 0, /* model_type bitnet, relu2 (2B-4T graph), packed u8 + weight_scale that
                                  multiplies (BF16, or F32 with scale_f32), tied BF16 embedding */
    TINY_HF_BITLINEAR_LLAMA = 1, /* model_type llama + quant_method bitnet (HF1BitLLM), packed u8 +
                                    weight_scale that divides (F32), untied F16 embedding and head */
    TINY_HF_FLOAT_1BITLLM = 2, /* model_type llama + BitnetForCausalLM (1bitLLM), F16 latent weights
                                  that trit ternarizes at load; m->w is then unused */
    TINY_HF_QWEN3_GROUPED = 3, /* model_type qwen3 (a Ternary-Bonsai folder): F16 weights t * d with one
                                  fp16 d per row and 64 columns (t = +2 now and then), q/k norms, tied
                                  F16 embedding; dim and ffn_dim multiples of 64 */
};

/* Weight encodings for tiny_write_gguf. */
enum tiny_gguf_weights {
    TINY_GGUF_TQ2_0 = 0, /* d = the scale (rounded to fp16), as llama-quantize writes it */
    TINY_GGUF_TQ1_0 = 1, /* the same */
    TINY_GGUF_I2_S = 2,  /* type 36, fp32 scale in the tail (bitnet.cpp) */
    TINY_GGUF_F16 = 3,   /* t * scale in fp16 */
    TINY_GGUF_F32 = 4,   /* t * scale in fp32 */
    TINY_GGUF_I2_S_ARM = 5, /* type 36 in bitnet.cpp's ARM block layout (64 elements) */
};

#define TINY_N_TERNARY 7 /* q, k, v, o, gate, up, down */

struct tiny_model {
    enum tiny_kind kind;
    int64_t n_vocab, dim, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim;
    struct trit_ternary *w; /* (n_layers * 7): canonical codes, scale and scale kind as written */
    bool scale_f32;         /* weight_scale stored as F32 (else BF16 for the autobitlinear kind) */
    uint64_t seed;
};

/* Draws a model. dim must be a multiple of n_heads = 4 (head_dim = dim / 4, two KV heads).
 * n_vocab is the tiny tokenizer's (264). Returns false on allocation failure. */
bool tiny_model_init(struct tiny_model *m, enum tiny_kind kind, int64_t dim, int64_t ffn_dim, int64_t n_layers,
                     uint64_t seed);
void tiny_model_free(struct tiny_model *m);

/* The HF folder `dir` (created if missing): config.json, model.safetensors and, with
 * `tokenizer`, tokenizer.json + tokenizer_config.json (tiny_write_tokenizer). */
bool tiny_write_hf(const struct tiny_model *m, const char *dir, bool tokenizer);
/* A byte-level BPE tokenizer.json (Llama-3 pre-tokenizer, 256 byte tokens, 5 merges, 3 specials:
 * 264 tokens) and a tokenizer_config.json with a chat template, in `dir`. */
bool tiny_write_tokenizer(const char *dir);
/* A GGUF model file of an autobitlinear-kind model (relu2 graph, sub-norms) under `arch`
 * ("bitnet-b1.58", or "bitnet" to build a file trit must refuse for I2_S), weights in `enc`. */
bool tiny_write_gguf(const struct tiny_model *m, const char *path, const char *arch, enum tiny_gguf_weights enc);

/* Norm weight j of a vector (exact in fp16 and bf16), shared by the writers. */
float tiny_norm_value(uint64_t seed, int64_t j);

#endif /* TRIT_TESTS_TINY_MODEL_H */
