/*
 * trit.h: the public C API of trit, an inference engine for ternary-weight ("1.58-bit",
 * BitNet b1.58) language models.
 *
 * Conventions (see docs/api.md):
 *   - every fallible function returns enum trit_status; TRIT_OK is 0;
 *   - on failure, trit_last_error() returns a one-line message naming the problem (and, for
 *     files, the byte offset); it is per thread and valid until the next failing call;
 *   - objects are opaque handles; every *_load / *_init has a *_free that accepts NULL;
 *   - parameters come from *_default_params() and are then edited by the caller;
 *   - the library never exits and never writes to stdout. Log lines go to the callback set with
 *     trit_log_set_callback (stderr by default).
 *
 * No CUDA types appear here; the header compiles as C11 and as C++.
 */
#ifndef TRIT_H
#define TRIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TRIT_VERSION_MAJOR 0
#define TRIT_VERSION_MINOR 1
#define TRIT_VERSION_PATCH 0
#define TRIT_VERSION_STRING "0.1.0"
/* A single integer that orders versions: 0.1.0 -> 100. */
#define TRIT_VERSION (TRIT_VERSION_MAJOR * 10000 + TRIT_VERSION_MINOR * 100 + TRIT_VERSION_PATCH)

/* ----------------------------------------------------------------------------------------------
 * Status codes. Append only: the numeric values are part of the ABI.
 */
enum trit_status {
    TRIT_OK = 0,
    TRIT_ERR_INVALID_ARG = 1,   /* a NULL or out-of-range argument from the caller */
    TRIT_ERR_OUT_OF_MEMORY = 2, /* host or device allocation failed */
    TRIT_ERR_IO = 3,            /* open, read, mmap or write failed */
    TRIT_ERR_FORMAT = 4,        /* the input file is malformed, truncated or inconsistent */
    TRIT_ERR_UNSUPPORTED = 5,   /* well formed, but a type, architecture or shape we do not handle */
    TRIT_ERR_NO_DEVICE = 6,     /* a CUDA device was asked for and none exists (or no CUDA build) */
    TRIT_ERR_DEVICE = 7,        /* a CUDA, cuBLAS or NCCL call failed */
    TRIT_ERR_CONTEXT_FULL = 8,  /* more tokens than the context length */
    TRIT_ERR_NOT_FOUND = 9,     /* a named tensor, key or file is missing */
    TRIT_ERR_COMM = 10,         /* a tensor-parallel collective failed or timed out */
    TRIT_ERR_INTERNAL = 11,     /* a broken invariant inside trit: a bug, please report it */
};

/* A short, static, human-readable name for a status ("invalid argument"). Never NULL. */
const char *trit_status_str(enum trit_status status);

/* The message of the last failure on this thread, or "" if none. The pointer stays valid until the
 * next trit call on this thread that fails. */
const char *trit_last_error(void);

/* The library version as a string, e.g. "0.1.0". */
const char *trit_version(void);

/* ----------------------------------------------------------------------------------------------
 * Logging. Lines carry no trailing newline. The default callback writes to stderr lines at or
 * above TRIT_LOG_INFO. The callback is process-wide; set it before loading models.
 */
enum trit_log_level {
    TRIT_LOG_DEBUG = 0,
    TRIT_LOG_INFO = 1,
    TRIT_LOG_WARN = 2,
    TRIT_LOG_ERROR = 3,
};
typedef void (*trit_log_callback)(enum trit_log_level level, const char *line, void *user);
/* Pass NULL to restore the default. `user` is handed back to every call. */
void trit_log_set_callback(trit_log_callback callback, void *user);
/* Lines below `level` are dropped before they reach the callback. */
void trit_log_set_level(enum trit_log_level level);

/* ----------------------------------------------------------------------------------------------
 * Opaque handles. Each is created by its *_load / *_init and released by its *_free.
 */
typedef struct trit_model trit_model;         /* weights and hyperparameters; read-only once loaded */
typedef struct trit_context trit_context;     /* one generation session: KV cache, buffers, backend */
typedef struct trit_sampler trit_sampler;     /* the token-choice policy and its random state */
typedef struct trit_tokenizer trit_tokenizer; /* vocabulary, merges and special tokens */

/* ----------------------------------------------------------------------------------------------
 * Devices.
 */
/* The number of CUDA devices visible to this process; 0 when there is none or when trit was built
 * without CUDA. Never fails. */
int trit_cuda_device_count(void);
/* 1 when this build contains the CUDA backend, else 0. */
int trit_cuda_compiled(void);

/* ----------------------------------------------------------------------------------------------
 * Models. A model is the weights and hyperparameters of one checkpoint, read from a GGUF file
 * (bitnet.cpp I2_S, llama.cpp TQ1_0/TQ2_0/F16, trit's own) or a Hugging Face folder
 * (config.json + *.safetensors). It is read-only once loaded and may be shared by contexts.
 */
/* The block layout of bitnet.cpp I2_S weights (docs/formats.md). Its converter and the published
 * files use the x86 layout; a file that bitnet.cpp's llama-quantize wrote on an ARM machine uses the
 * ARM one. Nothing in a file tells them apart, so a wrong choice loads and gives nonsense. */
enum trit_i2s_layout {
    TRIT_I2S_X86 = 0, /* blocks of 128 elements (the default) */
    TRIT_I2S_ARM = 1, /* blocks of 64 elements */
};

struct trit_model_params {
    /* Called while tensors are decoded, with fraction in [0, 1]; NULL for none. */
    void (*progress)(float fraction, void *user);
    void *progress_user;
    enum trit_i2s_layout i2s_layout; /* I2_S files only (default TRIT_I2S_X86) */
};
struct trit_model_params trit_model_default_params(void);
/* Loads `path` (a .gguf file or a folder). *out is NULL on failure. */
enum trit_status trit_model_load(const char *path, const struct trit_model_params *params, trit_model **out);
/* Frees the model. Every context made from it must be freed first. Accepts NULL. */
void trit_model_free(trit_model *model);
int32_t trit_model_n_vocab(const trit_model *model);
int32_t trit_model_n_ctx_train(const trit_model *model);
/* The storage type of the model's own LM head: "f32", "f16" or "bf16" (quantized file heads are
 * widened to f16 at load). */
const char *trit_model_head_dtype(const trit_model *model);
/* A one-line description ("bitnet-b1.58, 30 layers, dim 2560, 2.08 B ternary params"), in a
 * per-thread buffer: valid until the next trit_model_desc call on this thread. */
const char *trit_model_desc(const trit_model *model);
/* The model's shape, field by field (what trit_model_desc prints). */
struct trit_model_shape {
    const char *architecture; /* "bitnet-b1.58", "llama", ...: valid while the model lives */
    int32_t n_layers, dim, n_heads, n_kv_heads, head_dim, ffn_dim, n_vocab, n_ctx_train;
    int64_t n_ternary_params; /* weights of the ternary linear layers */
};
void trit_model_shape(const trit_model *model, struct trit_model_shape *out);

/* ----------------------------------------------------------------------------------------------
 * Contexts. A context runs a model on one device: it owns the repacked weights of its backend,
 * the KV cache and every buffer, all allocated by trit_context_init. trit_decode allocates
 * nothing.
 */
enum trit_device {
    TRIT_DEVICE_AUTO = 0, /* CUDA when a device exists, else the CPU; the choice is logged */
    TRIT_DEVICE_CPU = 1,
    TRIT_DEVICE_CUDA = 2, /* an error (TRIT_ERR_NO_DEVICE) when there is no device */
};
/* Tensor parallelism (docs/tensor-parallel.md): how a rank quantizes the shard of a row. */
enum trit_tp_quant {
    TRIT_TP_QUANT_EXACT = 0,   /* global RMS and absmax: the int32 accumulators of one device */
    TRIT_TP_QUANT_GROUPED = 1, /* the shard's own RMS, absmax and alpha (BitNet paper): less traffic */
};
/* The CUDA decode GEMV (1 to 8 tokens per matmul). Both give the same int32 results, bit for bit. */
enum trit_cuda_gemv {
    TRIT_CUDA_GEMV_AUTO = 0, /* $TRIT_CUDA_GEMV (add or dp4a) when set, else ADD */
    TRIT_CUDA_GEMV_ADD = 1,  /* adds and subtracts only: no weight x activation multiply */
    TRIT_CUDA_GEMV_DP4A = 2, /* int8 dot products (dp4a) */
};
struct trit_context_params {
    int32_t n_ctx;         /* KV cache length; 0 = the model's training context (default 0) */
    int32_t n_batch;       /* most tokens per forward pass; trit_decode splits longer calls (default 512) */
    int32_t n_threads;     /* CPU threads; 0 = every online core (default 0); per rank with tp_mpi */
    enum trit_device device;
    bool logits_all;       /* keep logits of every token in a batch, for perplexity (default false) */
    bool head_int8;        /* int8 LM head: faster, slightly less exact (default false) */
    bool head_q4;          /* 4-bit LM head, CPU only: fastest, least exact (default false; docs/perf.md) */
    /* Tensor parallelism. tp_mpi: the ranks are the processes of an MPI job (mpirun -np N), each
     * running the CPU forward on its shard, or with device TRIT_DEVICE_CUDA the CUDA forward on one
     * GPU (NCCL); every rank must create its context with the same model and parameters, and
     * trit_decode is then collective. tp_size: the number of ranks (0 = every MPI process with
     * tp_mpi; without tp_mpi, > 1 runs that many GPUs of this process over NCCL, devices 0 .. N-1).
     * Default 0 / false / exact: off. */
    int32_t tp_size;
    bool tp_mpi;
    enum trit_tp_quant tp_quant;
    /* The memory plan: what the context will hold (the weights in the backend's layout, the KV
     * cache, activations and scratch) is counted before anything is allocated, and
     * trit_context_init fails at once with TRIT_ERR_OUT_OF_MEMORY, naming both numbers, when it
     * exceeds mem_limit bytes, or what the machine has left when that is less. 0 = what the machine
     * has left (default). With n_ctx 0, the context is the training context cut to what fits. */
    uint64_t mem_limit;
    /* Which decode GEMV the CUDA backend runs (default AUTO); which is faster on a GPU is what
     * bench_kernels measures (docs/perf.md). The CPU backends ignore it. */
    enum trit_cuda_gemv cuda_gemv;
    /* Sequences (trit_decode_batch). n_seq_max: how many sequences the context holds at once, ids
     * 0 .. n_seq_max - 1 (default 1; the single-sequence calls below use sequence 0). Every backend
     * decodes batches of sequences: the CPU, its MPI ranks, one GPU and tensor parallelism on GPUs.
     * n_kv: tokens of KV cache that all sequences share, a pool of blocks of TRIT_KV_BLOCK tokens,
     * rounded up to whole blocks (0 = room for every sequence to reach n_ctx; default 0); n_ctx stays
     * the longest one sequence may grow. The memory plan counts the pool. */
    int32_t n_seq_max;
    int32_t n_kv;
};
struct trit_context_params trit_context_default_params(void);
enum trit_status trit_context_init(const trit_model *model, const struct trit_context_params *params,
                                   trit_context **out);
void trit_context_free(trit_context *ctx);
/* Runs n_tokens tokens after the ones already in the cache, and returns their logits through
 * *logits: (n_tokens, n_vocab) with logits_all, else (1, n_vocab) for the last token. The
 * logits stay valid until the next trit_decode or trit_context_free. Batches longer than
 * n_batch are split internally, except with logits_all, where they are TRIT_ERR_INVALID_ARG.
 * TRIT_ERR_CONTEXT_FULL when the cache would overflow (nothing is run). When a later piece of a
 * split batch fails, the pieces before it stay in the cache: trit_context_n_past says how many. */
enum trit_status trit_decode(trit_context *ctx, const int32_t *tokens, int32_t n_tokens, const float **logits);
/* Greedy decoding without the logits: runs the tokens exactly as trit_decode does (same cache,
 * same splitting, same errors) and sets *token to the argmax of the last token's logits, the lowest
 * id among equal maxima: equal to the argmax of the last row trit_decode would return (no
 * repetition penalty or any other sampling). Backends that can (CUDA) take the argmax on the
 * device and copy back one id instead of the vocabulary's logits. Logits an earlier trit_decode
 * returned are not valid after this call. */
enum trit_status trit_decode_argmax(trit_context *ctx, const int32_t *tokens, int32_t n_tokens, int32_t *token);
/* Decoding with a sampler: runs the tokens exactly as trit_decode does and sets *token to what
 * trit_sampler_sample would draw from the last row: the result (token and RNG advance) equals
 * trit_decode + trit_sampler_sample exactly. It does not call trit_sampler_accept. When the
 * sampler's top_k is 1..256 and the backend can (CUDA), the penalty and the top-k run on the
 * device and only k candidates come back (trit_sampler_sample_candidates). Logits an earlier
 * trit_decode returned are not valid after this call. */
enum trit_status trit_decode_sample(trit_context *ctx, const int32_t *tokens, int32_t n_tokens, trit_sampler *sampler,
                                    int32_t *token);
/* Tokens in the cache (of sequence 0, which the single-sequence calls use). */
int32_t trit_context_n_past(const trit_context *ctx);
/* The model the context runs, and whether it keeps logits for every token of a batch. */
const trit_model *trit_context_model(const trit_context *ctx);
bool trit_context_logits_all(const trit_context *ctx);
int32_t trit_context_n_ctx(const trit_context *ctx);
/* Keeps the first n_keep tokens of the cache (sequence 0) and forgets the rest (0 clears it). */
enum trit_status trit_context_truncate(trit_context *ctx, int32_t n_keep);
/* "cpu", "cuda" or "cpu-tp" (tensor parallel), and a line about the device ("CPU avx512-vnni,
 * 2 threads"). */
const char *trit_context_backend(const trit_context *ctx);
const char *trit_context_device_desc(const trit_context *ctx);
/* Bytes of weights and KV cache the backend holds (device memory for CUDA). */
uint64_t trit_context_memory_bytes(const trit_context *ctx);
/* Tensor parallelism: this process's rank and the number of ranks (0 and 1 without it), and the
 * microseconds this context has spent in collectives. Every rank gets the same logits; print from
 * rank 0. */
int32_t trit_context_tp_rank(const trit_context *ctx);
int32_t trit_context_tp_size(const trit_context *ctx);
int64_t trit_context_comm_us(const trit_context *ctx);
/* One rank decides, the others follow (docs/serve.md "Tensor parallelism"): for a program whose
 * work arrives at one process of an MPI job (a server), where the ranks cannot each make the same
 * calls by themselves. On rank 0, trit_tp_lead makes the context send every trit_decode_batch,
 * trit_seq_trim, trit_seq_remove and trit_seq_fork that passes its checks to the other ranks before
 * running it, and trit_context_free tell them to stop; trit_decode, trit_decode_argmax,
 * trit_decode_sample and trit_perplexity are then refused (they would not be sent). On every other
 * rank, trit_tp_follow runs those calls as they arrive, waiting between them as long as it takes
 * (sleeping, not spinning, and without the collective timeout), and returns TRIT_OK when rank 0
 * frees its context, or the first error (a step that failed here but not on rank 0 leaves the
 * ranks out of step: the program should exit, which ends the MPI job). With one process (no
 * tp_mpi, or one rank) both return TRIT_OK at once. TRIT_ERR_INVALID_ARG: trit_tp_lead on a rank
 * other than 0, trit_tp_follow on rank 0. */
enum trit_status trit_tp_lead(trit_context *ctx);
enum trit_status trit_tp_follow(trit_context *ctx);

/* ----------------------------------------------------------------------------------------------
 * Batches of several sequences (docs/design.md section 9). A batch holds tokens of any of the
 * context's sequences, in any order, each with its sequence id and position; one forward pass runs
 * all of them: the ternary matmuls see every token, attention reads each sequence's own cache. A
 * token's logits are bit-identical to what running its sequence alone gives (the integer core does
 * not depend on batching, and every fp32 sum has a fixed order per row; tests/test_batch.c).
 *
 * The KV cache is a pool of blocks of TRIT_KV_BLOCK tokens shared by the sequences: a sequence takes
 * blocks as it grows and returns them when it is trimmed or removed; a fork shares the source's
 * blocks (a shared block is copied only when one of its sequences writes into it).
 */
#define TRIT_KV_BLOCK 64
/* The most sequences one context holds (n_seq_max). */
#define TRIT_SEQ_MAX 1024

struct trit_batch {
    int32_t n_tokens;      /* 1 .. n_batch */
    const int32_t *token;  /* [n_tokens] token ids */
    const int32_t *pos;    /* [n_tokens] positions: a sequence's tokens continue it, in order, without gaps
                            * (its k-th token in the batch is at trit_seq_length + k) */
    const int32_t *seq_id; /* [n_tokens] 0 .. n_seq_max - 1 */
    const int8_t *logits;  /* [n_tokens] nonzero: return this token's logits; NULL: each sequence's last token */
};
/* Runs the batch. *logits (may be NULL) is (*n_rows, n_vocab): one row per token whose logits were
 * asked for, in batch order, valid until the next decode call. At most n_seq_max rows (n_batch with
 * logits_all) may be asked for. Errors (nothing is run, no sequence changes): TRIT_ERR_INVALID_ARG
 * for a bad id, position or count; TRIT_ERR_CONTEXT_FULL when a sequence would pass n_ctx or the
 * pool has too few free blocks (trit_kv_stats says how many). When the forward pass itself fails,
 * the sequences keep their lengths from before the call. */
enum trit_status trit_decode_batch(trit_context *ctx, const struct trit_batch *batch, const float **logits,
                                   int32_t *n_rows);
/* Tokens in sequence seq's cache (0 for a sequence never used; -1 for an id out of range). */
int32_t trit_seq_length(const trit_context *ctx, int32_t seq);
/* Forgets the sequence: its blocks go back to the pool (those another sequence shares stay). */
enum trit_status trit_seq_remove(trit_context *ctx, int32_t seq);
/* Keeps the first n_keep tokens of the sequence (0 <= n_keep <= its length). */
enum trit_status trit_seq_trim(trit_context *ctx, int32_t seq, int32_t n_keep);
/* Makes dst (which must be empty) a copy of src's first n_keep tokens (n_keep <= src's length),
 * sharing its blocks: a prompt's prefix is computed once for several continuations. */
enum trit_status trit_seq_fork(trit_context *ctx, int32_t src, int32_t dst, int32_t n_keep);
/* The pool: tokens per block (TRIT_KV_BLOCK), blocks in all, blocks free. */
struct trit_kv_stats {
    int32_t block_tokens, n_blocks, n_free;
};
void trit_kv_stats(const trit_context *ctx, struct trit_kv_stats *out);
/* Blocks a sequence of n_tokens holds: what the pool must have free to admit it. */
int32_t trit_kv_blocks_for(int32_t n_tokens);

/* ----------------------------------------------------------------------------------------------
 * Perplexity, computed the way llama.cpp's llama-perplexity does so that numbers compare: the
 * tokens are cut into non-overlapping chunks of n_ctx (the remainder is dropped); each chunk runs
 * from an empty cache with its first token replaced by `bos` (when bos >= 0); the predictions at
 * positions n_ctx/2 .. n_ctx-2 are scored. ppl = exp(mean NLL), ppl_err = ppl x the standard error
 * of the mean NLL. The context needs logits_all and n_batch >= its n_ctx. Its cache is cleared.
 */
struct trit_perplexity_result {
    double ppl, ppl_err;
    double mean_nll;
    int64_t n_chunks, n_scored;
};
/* on_chunk (may be NULL) is called after each chunk with the running perplexity; returning false
 * stops the run there, and *out then holds the chunks scored so far. max_chunks <= 0 scores every
 * chunk. TRIT_ERR_INVALID_ARG when fewer than n_ctx tokens are given, or when n_ctx is below 3
 * (nothing would be scored). */
enum trit_status trit_perplexity(trit_context *ctx, const int32_t *tokens, int64_t n_tokens, int32_t bos,
                                 int64_t max_chunks, bool (*on_chunk)(int64_t chunk, double ppl, void *user),
                                 void *user, struct trit_perplexity_result *out);

/* ----------------------------------------------------------------------------------------------
 * Embeddings: a decoder read as a sentence encoder, with last-token pooling (Qwen3-Embedding's
 * recipe; it applies to every family trit runs). The vector of a token sequence is the hidden state
 * of its last token after the final norm, rmsnorm(x) * out_norm: the row the LM head would read.
 * Its length is the model's dim (trit_model_shape). No logits are computed.
 *
 * Normalization (unless TRIT_EMBED_RAW): out = h / max(||h||_2, 1e-12), the formula of
 * torch.nn.functional.normalize(p=2, eps=1e-12), in double: ss = sum over i ascending of
 * (double)h[i] * (double)h[i], n = max(sqrt(ss), 1e-12), out[i] = (float)((double)h[i] / n). Double
 * makes the norm independent of summation order (torch's fp32 reduction order is its own) and each
 * output the correctly rounded quotient of h[i] by the norm; the result is within an fp32 rounding of
 * torch's.
 *
 * The cache: the tokens run through sequence `seq`, which must be empty (trit_seq_length 0; sequence
 * 0 is the one trit_decode uses), from position 0, in pieces of n_batch; the sequence is emptied again
 * before the call returns, whatever happened. Other sequences are untouched: a server can embed in a
 * free sequence of a context that is generating. The CPU backend only, in one process (TRIT_ERR_
 * UNSUPPORTED on the others; refused on a context that leads other ranks, trit_tp_lead).
 */
/* Return the final-norm hidden state as it is, not L2-normalized. */
#define TRIT_EMBED_RAW 1u
/* out: dim floats (unspecified after a failure). Errors: TRIT_ERR_INVALID_ARG for NULL pointers, n_tokens
 * below 1, unknown flags, a sequence out of range or not empty, a token id outside the vocabulary;
 * TRIT_ERR_CONTEXT_FULL when n_tokens exceeds the context or the pool has too few free blocks;
 * TRIT_ERR_UNSUPPORTED on a backend without embeddings (CUDA, tensor parallelism). */
enum trit_status trit_embed(trit_context *ctx, int32_t seq, const int32_t *tokens, int32_t n_tokens, unsigned flags,
                            float *out);


/* ----------------------------------------------------------------------------------------------
 * Chat templates: the Jinja template a model ships turns a conversation into the text it was
 * trained on. trit renders the subset of Jinja that chat templates use (host/chat/template.h lists
 * it); anything else is an error that names the construct and its offset.
 */
struct trit_chat_message {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
};
struct trit_chat_vars {
    const struct trit_chat_message *messages;
    size_t n_messages;
    const char *bos_token; /* text of BOS, "" when none */
    const char *eos_token;
    bool add_generation_prompt;
};
/* The chat template of the model at `path`: a GGUF file's tokenizer.chat_template; a Hugging Face
 * folder's chat_template.jinja, else tokenizer_config.json's "chat_template" (a string, or the
 * "default" entry of a list). *out: a new string (free with free()), or NULL when the model has
 * none. Errors: the file or folder cannot be read or parsed. */
enum trit_status trit_chat_template_load(const char *path, char **out);
/* Renders `tmpl` with vars into a new NUL-terminated string (*out, free with free()). */
enum trit_status trit_chat_render(const char *tmpl, const struct trit_chat_vars *vars, char **out);
/* The template trit uses when a model has none: "<role>: <content>\n" per message, and
 * "assistant: " as the generation prompt, after BOS. */
extern const char *const trit_chat_template_plain;

/* ----------------------------------------------------------------------------------------------
 * Tokenizers: byte-level BPE (GPT-2, Llama 3) and SentencePiece BPE (LLaMA), loaded from a GGUF
 * file's tokenizer.ggml.* keys, a Hugging Face tokenizer.json or a SentencePiece tokenizer.model.
 * A tokenizer is read-only once loaded and may be shared between threads.
 */
/* Loads from `path`: a GGUF file (recognized by its magic), a tokenizer.json file, a .model file
 * (SentencePiece), or a folder that holds tokenizer.json, else tokenizer.model; tokenizer_config.json
 * and (with tokenizer.model) added_tokens.json beside them are read too. *out is NULL on failure. */
enum trit_status trit_tokenizer_load(const char *path, trit_tokenizer **out);
/* Frees a tokenizer; accepts NULL. */
void trit_tokenizer_free(trit_tokenizer *tok);
int32_t trit_tokenizer_n_vocab(const trit_tokenizer *tok);
/* Special ids; -1 when the vocab has none. */
int32_t trit_tokenizer_bos(const trit_tokenizer *tok);
int32_t trit_tokenizer_eos(const trit_tokenizer *tok);
int32_t trit_tokenizer_eot(const trit_tokenizer *tok);
/* Whether TRIT_TOKENIZE_ADD_SPECIAL prepends BOS. */
bool trit_tokenizer_add_bos(const trit_tokenizer *tok);
/* End of generation: EOS, EOT, EOM and the control tokens named like them (<|eot_id|>, <|im_end|>,
 * <|end|>, <end_of_turn>, <|endoftext|>, <|eom_id|>). False for ids out of range. */
bool trit_tokenizer_is_eog(const trit_tokenizer *tok, int32_t id);
/* Add BOS / EOS as the vocab's add_bos / add_eos flags say (llama.cpp's add_special). */
#define TRIT_TOKENIZE_ADD_SPECIAL 1u
/* Match control tokens (<|begin_of_text|>) written in the text. User-defined tokens are matched
 * always, as in transformers and llama.cpp. */
#define TRIT_TOKENIZE_PARSE_SPECIAL 2u

/* A growable id buffer. Zero-initialize it; release with trit_tokens_free. */
struct trit_tokens {
    int32_t *ids;
    size_t n;
    size_t cap;
};
void trit_tokens_free(struct trit_tokens *t);

/* Appends the tokens of text[0..len) to *out. Any bytes are accepted, invalid UTF-8 included:
 * byte-level BPE keeps them as byte tokens, SPM emits <0xXX> byte tokens. */
enum trit_status trit_tokenize(const trit_tokenizer *tok, const char *text, size_t len,
                               unsigned flags, struct trit_tokens *out);
/* Same into a caller buffer. *n_out is always the number of tokens the text needs; when it exceeds
 * `capacity`, the call fails with TRIT_ERR_INVALID_ARG and ids[] holds the first `capacity`. */
enum trit_status trit_tokenize_into(const trit_tokenizer *tok, const char *text, size_t len,
                                    unsigned flags, int32_t *ids, size_t capacity, size_t *n_out);

/* The tokens of a text for trit_embed, as `trit embed`, trit serve's /v1/embeddings and the Python
 * package make them: BOS when the vocabulary adds one, the text with the control tokens written in
 * it matched (TRIT_TOKENIZE_PARSE_SPECIAL), then the end-of-text token (<|endoftext|> when the
 * vocabulary has it, as Qwen3-Embedding's tokenizer appends it, else EOS; none without either)
 * unless the tokens already end with it or flags hold TRIT_EMBED_NO_END. Appended to *out; on a
 * failure *out is as it was. Errors: trit_tokenize's, and TRIT_ERR_INVALID_ARG for unknown flags. */
#define TRIT_EMBED_NO_END 2u
enum trit_status trit_embed_tokenize(const trit_tokenizer *tok, const char *text, size_t len, unsigned flags,
                                     struct trit_tokens *out);
/* Render control and unknown tokens as their text (else they decode to nothing). */
#define TRIT_DECODE_SPECIAL 1u
/* For vocabs with add_space_prefix (SPM): drop the one leading space of the first token that
 * decodes to something, undoing the prefix encoding added (llama.cpp detokenize does the same). */
#define TRIT_DECODE_STRIP_SPACE 2u

/* The bytes token `id` decodes to (byte-level BPE: inverse GPT-2 map; SPM: U+2581 -> ' ', <0xXX> ->
 * the byte). Control/unknown tokens give their text with TRIT_DECODE_SPECIAL, else "" (len 0).
 * Points into the tokenizer, not NUL-terminated. NULL (and *len = 0) when id is out of range. */
const char *trit_tokenizer_piece(const trit_tokenizer *tok, int32_t id, unsigned flags,
                                 size_t *len);
/* Concatenates the pieces of ids[0..n) into out[0..capacity). The bytes are raw: decoding the
 * encoding of any byte string gives it back (SPM: with TRIT_DECODE_STRIP_SPACE). *n_out is always
 * the length needed; TRIT_ERR_INVALID_ARG when it exceeds capacity or an id is out of range. */
enum trit_status trit_detokenize(const trit_tokenizer *tok, const int32_t *ids, size_t n,
                                 unsigned flags, char *out, size_t capacity, size_t *n_out);

/* Streaming decode for generation: feed one token at a time, get back text that is always valid
 * UTF-8. A multi-byte character split across byte tokens is held back until its last byte arrives.
 * Bytes that can never form a character are replaced by U+FFFD (one per maximal ill-formed
 * subsequence, the Unicode recommendation), and so is an incomplete character at flush. */
struct trit_tok_stream {
    const trit_tokenizer *tok;
    unsigned flags;   /* TRIT_DECODE_* */
    bool strip_space; /* a leading space is still to be removed (TRIT_DECODE_STRIP_SPACE) */
    uint8_t n_pending;
    uint8_t pending[4]; /* the start of an incomplete UTF-8 sequence */
};
/* Output bytes one feed can produce at most: size `out` with this. */
size_t trit_tok_stream_max_out(const trit_tokenizer *tok);
void trit_tok_stream_init(struct trit_tok_stream *s, const trit_tokenizer *tok, unsigned flags);
/* Decodes token `id`, writes the text that is now complete to out and its length to *n_out. Fails
 * with TRIT_ERR_INVALID_ARG, state unchanged, for an id out of range or when capacity is below
 * 3 * (pending + piece bytes) (trit_tok_stream_max_out always suffices). */
enum trit_status trit_tok_stream_feed(struct trit_tok_stream *s, int32_t id, char *out, size_t capacity,
                                      size_t *n_out);
/* Emits what is still held back (as U+FFFD: it is an incomplete character); capacity >= 3. */
enum trit_status trit_tok_stream_flush(struct trit_tok_stream *s, char *out, size_t capacity,
                                       size_t *n_out);

/* ----------------------------------------------------------------------------------------------
 * Sampling. A sampler picks the next token from a row of logits. The chain follows llama.cpp's
 * default order: repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw.
 * temperature 0 means greedy: the argmax after the repetition penalty (the lowest id wins a tie);
 * top-k, top-p and min-p are then ignored. A negative or non-finite temperature is
 * TRIT_ERR_INVALID_ARG at trit_sampler_init.
 */
struct trit_sampler_params {
    float temperature;      /* default 0.8; 0 = greedy; negative, NaN or infinite: TRIT_ERR_INVALID_ARG */
    int32_t top_k;          /* 0 = off; default 40 */
    float top_p;            /* 1 = off; default 0.95 */
    float min_p;            /* 0 = off; default 0.05 */
    float repeat_penalty;   /* 1 = off; default 1.0. >1 discourages tokens seen recently */
    int32_t repeat_last_n;  /* how many recent tokens the penalty looks at; default 64 */
    uint64_t seed;          /* the same seed, logits and accepted tokens give the same draws */
};
struct trit_sampler_params trit_sampler_default_params(void);
/* Creates a sampler for a vocabulary of n_vocab tokens. All its memory is allocated here. */
enum trit_status trit_sampler_init(const struct trit_sampler_params *params, int32_t n_vocab,
                                   trit_sampler **out);
void trit_sampler_free(trit_sampler *sampler);
/* Picks a token from logits[n_vocab]. The logits are not modified. Records nothing: call
 * trit_sampler_accept with the token that was actually used (prompt tokens too, for the
 * penalty window). */
int32_t trit_sampler_sample(trit_sampler *sampler, const float *logits);
void trit_sampler_accept(trit_sampler *sampler, int32_t token);
/* Picks a token from n candidates: logits[i] is token ids[i]'s logit AFTER the repetition penalty
 * (NaN counts as -inf), and the candidates are the n best of the penalized row (by logit desc, id
 * asc; any order here), n >= top_k (n == n_vocab when top_k is 0 or >= n_vocab; any n >= 1 when
 * greedy). Gives exactly the token, and the same RNG advance, that trit_sampler_sample gives on
 * the full row. Returns -1 (and draws nothing) when n is too small or an argument is bad. */
int32_t trit_sampler_sample_candidates(trit_sampler *sampler, const float *logits, const int32_t *ids, int32_t n);
/* The sampler's top_k (0 = off). */
int32_t trit_sampler_top_k(const trit_sampler *sampler);
/* The repetition penalty's inputs: *recent = the ids in the window (may repeat; each is penalized
 * once), *penalty = the factor; returns how many ids (0 when the penalty is off). The pointer is
 * valid until the next trit_sampler_accept or reset. */
int32_t trit_sampler_penalty(const trit_sampler *sampler, const int32_t **recent, float *penalty);
/* Forgets accepted tokens and reseeds with the initial seed. */
void trit_sampler_reset(trit_sampler *sampler);

#ifdef __cplusplus
}
#endif

#endif /* TRIT_H */
