/*
 * convert.h: `trit convert`: any model trit loads (a Hugging Face folder, a bitnet.cpp or llama.cpp
 * GGUF, a file of its own) to a GGUF in trit's preferred layout, carrying the tokenizer.
 *
 * The layout is specified in docs/formats.md ("The trit GGUF layout"). In short:
 *   general.architecture   "bitnet-b1.58" (2B-4T graph), "bitnet" (1bitLLM graph), "llama"
 *                          (Llama with BitLinear; Q/K rows permuted as llama.cpp's converter does)
 *                          or "qwen3" (q/k norms as blk.N.attn_q_norm / attn_k_norm)
 *   <arch>.*               llama.cpp's hyperparameter keys
 *   ternary weights        TQ2_0 (or TQ1_0) blocks with d = 1, plus blk.N.<w>.scale, F32 {1}, holding
 *                          the exact fp32 scale; trit.weight_scale_kind = "multiply" | "divide".
 *                          A weight whose row length is not a multiple of 256 is stored as F16
 *                          holding -1/0/+1 (exact), with the same .scale tensor.
 *                          Group-scaled weights: Q2_0 (type 42) in blocks of the model's group (64
 *                          or 128; the reader tells them apart by the byte span), no .scale; one
 *                          whose row or scales Q2_0 cannot hold exactly is stored as F32 t * d.
 *   embedding, head        the source's bytes, in its dtype (F32, F16 or BF16)
 *   norms                  F32 (exact: every source dtype widens to fp32 without rounding)
 *   tokenizer              tokenizer.ggml.* (+ tokenizer.chat_template): copied key for key from a
 *                          GGUF, or built from tokenizer.json (model "gpt2")
 *
 * Conversion keeps the exact integers and scales: after writing, the output is loaded back and
 * compared with the source, tensor by tensor and bit by bit (trit_convert_check), and its
 * tokenizer is compared with the source's; the file only appears under its name when that holds.
 */
#ifndef TRIT_CONVERT_H
#define TRIT_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* How ternary weights are packed (when the row length allows; else F16 -1/0/+1). */
enum trit_convert_weights {
    TRIT_CONVERT_TQ2_0 = 0, /* 2.0625 bits a weight; general.file_type 37 (MOSTLY_TQ2_0) */
    TRIT_CONVERT_TQ1_0 = 1, /* 1.6875 bits a weight; general.file_type 36 (MOSTLY_TQ1_0) */
};

/* Progress stages, in order. */
enum trit_convert_stage {
    TRIT_CONVERT_LOADING = 0,   /* reading the source */
    TRIT_CONVERT_ENCODING = 1,  /* packing the weights */
    TRIT_CONVERT_WRITING = 2,   /* writing the file (fraction 0, then 1) */
    TRIT_CONVERT_CHECKING = 3,  /* loading the output back and comparing */
};

struct trit_convert_params {
    enum trit_convert_weights weights;
    /* Where the tokenizer comes from: NULL = the source itself. Else a GGUF file (its tokenizer.*
     * keys are copied), a tokenizer.json, or a folder holding one. */
    const char *tokenizer;
    bool no_tokenizer; /* write no tokenizer keys at all */
    bool check;        /* load the output back and compare (default true) */
    /* Called with the stage and a fraction in [0, 1]; NULL for none. */
    void (*progress)(enum trit_convert_stage stage, float fraction, void *user);
    void *progress_user;
};
struct trit_convert_params trit_convert_default_params(void);

/* What a conversion did, for the tool's summary line. */
struct trit_convert_report {
    char arch[32];               /* general.architecture written */
    int64_t n_tensors;
    int64_t n_ternary;           /* ternary weight tensors */
    int64_t n_ternary_f16;       /* of which stored as F16 (row length not a multiple of 256) */
    int64_t n_ternary_q2_0;      /* of which group-scaled, stored as Q2_0 */
    int64_t q2_0_group;          /* their block: 64 or 128 (0 when none) */
    int64_t n_ternary_f32;       /* of which group-scaled but stored as F32 (Q2_0 cannot hold them exactly) */
    uint64_t file_bytes;
    bool permuted_qk;            /* Q/K rows were permuted for the llama architecture */
    bool has_tokenizer;
    bool checked;
};

/* Converts `src` (a GGUF file or an HF folder) to a new GGUF at `dst`, written through trit_out
 * (core.h): a temporary beside dst that replaces it only when everything (the check included)
 * succeeded. dst must be a regular file, a link to one, or not exist; a device, FIFO, socket,
 * folder or dangling link is refused before the source is read. On any failure no file is left
 * behind, an existing dst is untouched, and trit_last_error() says why. A tokenizer with more
 * tokens than the model's n_vocab is refused (TRIT_ERR_FORMAT, both numbers in the message).
 * `report` may be NULL. */
enum trit_status trit_convert(const char *src, const char *dst, const struct trit_convert_params *params,
                              struct trit_convert_report *report);

/* trit_convert for a model already in memory (built by hand, or loaded by the caller): the same
 * file, check and guarantees. The tokenizer comes from params->tokenizer when given; else none is
 * written (params->no_tokenizer is implied). general.name is m->path's base name when m->path is set. */
enum trit_status trit_convert_model(const struct trit_model *m, const char *dst, const struct trit_convert_params *params,
                                    struct trit_convert_report *report);

/* The model-side comparison the check runs: TRIT_OK when `out` (loaded from a converted file)
 * holds what `src` holds: the same hyperparameters (rope style aside: the llama architecture
 * rotates pairs, and then Q/K rows must be the permuted source rows), bit-identical canonical
 * ternary codes, scales and scale kinds for every layer (a group-scaled weight: every weight's value
 * t * d, bit for bit, whatever the grouping that holds it), bit-identical norm and q/k norm weights
 * (as fp32), embedding and head bytes (and dtype), qk_norm and act_block. TRIT_ERR_FORMAT names the first difference. */
enum trit_status trit_convert_compare_models(const struct trit_model *src, const struct trit_model *out);

/* The tokenizer-side comparison: kind, vocabulary size, every token's text and type, the special
 * ids, the add_bos / add_eos / add_space_prefix flags, and the ids of a fixed set of probe texts
 * (with and without special-token parsing). TRIT_ERR_FORMAT names the first difference. */
enum trit_status trit_convert_compare_tokenizers(const struct trit_tokenizer *a, const struct trit_tokenizer *b);

/* llama.cpp's Q/K row permutation (convert_hf_to_gguf.py `permute`): within each of n_head heads
 * of head_dim rows, source row (a * head_dim/2 + j) becomes row (2 * j + a), a in {0, 1}. Returns the
 * destination row of source row r. */
int64_t trit_convert_permute_row(int64_t r, int64_t head_dim);

/* The tokenizer.ggml.pre name trit_convert writes for a tokenizer.json ("llama-bpe" for the Llama-3
 * Split regex + ByteLevel without a normalizer, "qwen2" for Qwen2's Split regex + ByteLevel with the
 * NFC normalizer, "gpt2" for a plain ByteLevel pre-tokenizer without a normalizer);
 * TRIT_ERR_UNSUPPORTED, with the reason, for any other pre-tokenizer or normalizer. *name is a
 * static string. */
enum trit_status trit_convert_pre_name(const char *tokenizer_json, const char **name);

/* GGUF architecture name for a family ("bitnet-b1.58", "bitnet", "llama", "qwen3"). */
const char *trit_convert_arch_name(enum trit_family family);

#endif /* TRIT_CONVERT_H */
