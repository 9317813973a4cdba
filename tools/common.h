/*
 * common.h: what the `trit` subcommands share: the model/device options, loading with a
 * progress line, error lines, file reading and resource reports.
 */
#ifndef TRIT_TOOLS_COMMON_H
#define TRIT_TOOLS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tokenizer/tokenizer.h"
#include "trit.h"

struct trit_out; /* host/core/core.h: an output file written to a temporary, then renamed */

/* The LM head a context runs: the model's own (f16/bf16/f32), int8 or 4-bit (head_int8.h). */
enum tool_head { TOOL_HEAD_MODEL = 0, TOOL_HEAD_INT8 = 1, TOOL_HEAD_Q4 = 2 };
/* "model", "int8", "q4". */
const char *tool_head_name(enum tool_head h);
/* Parses one of model, f16, bf16 (both: the model's own head, whatever its dtype), int8, q4;
 * prints why and returns -1 on anything else. */
int tool_parse_head(const char *cmd, const char *v, enum tool_head *out);
/* Parses x86 or arm (--i2s-layout); prints why and returns -1 on anything else. */
int tool_parse_i2s_layout(const char *cmd, const char *v, enum trit_i2s_layout *out);

/* Options every command that runs a model takes. */
struct tool_opts {
    const char *model;      /* -m; NULL = the shipped default model */
    int32_t threads;        /* -t; 0 = every core; never above the online CPUs (tool_threads_fit) */
    int32_t ctx;            /* -c; 0 = the model's training context */
    int32_t batch;          /* -b */
    enum trit_device device;/* --device cpu|cuda|auto */
    enum tool_head head;    /* --head model|int8|q4 (--head-int8: int8) */
    enum trit_i2s_layout i2s_layout; /* --i2s-layout x86|arm */
    bool quiet;             /* no progress line */
    int32_t tp;             /* --tp N: tensor-parallel ranks (0 = off) */
    bool tp_mpi;            /* --tp-mpi: the ranks are this MPI job's processes */
    enum trit_tp_quant tp_quant; /* --tp-quant exact|grouped */
    enum trit_cuda_gemv cuda_gemv; /* --cuda-gemv add|dp4a (AUTO: $TRIT_CUDA_GEMV, else add) */
    uint64_t mem_limit;     /* --mem-limit SIZE in bytes; 0 = what the machine has left */
};
void tool_opts_init(struct tool_opts *o);
/* One step of the option loop of a command that runs a model. When argv[*i] is a common option,
 * a sampling option (given sp) or -h/--help, consumes it (and its value, advancing *i) and returns
 * TOOL_OPT_TAKEN, or the code to exit with: 0 after -h/--help (usage(stdout) printed), 2 after a bad
 * value (why printed). Returns TOOL_OPT_OWN, consuming nothing, for any other argument. */
enum { TOOL_OPT_TAKEN = -1, TOOL_OPT_OWN = -2 };
int tool_opts_parse(struct tool_opts *o, struct trit_sampler_params *sp, int argc, char **argv, int *i, const char *cmd,
                    void (*usage)(FILE *out));
/* The help lines of the common options. */
extern const char *const tool_opts_help;

/* Option values: every number a command takes goes through one of these. On a missing or malformed
 * value (trailing text, out of range, empty) they print "trit CMD: error: FLAG needs ..." and return
 * -1; else they store it and return 0. f32 takes finite numbers only. */
int tool_parse_i32(const char *cmd, const char *flag, const char *v, int32_t lo, int32_t hi, int32_t *out);
int tool_parse_f32(const char *cmd, const char *flag, const char *v, float *out);
int tool_parse_u64(const char *cmd, const char *flag, const char *v, uint64_t *out);
/* "1,2,3": 1 to max integers from lo to hi, each as tool_parse_i32 takes it; returns the count, or
 * -1 after printing why. */
int tool_parse_i32_list(const char *cmd, const char *flag, const char *v, int32_t lo, int32_t hi, int32_t *out, int max);
/* A size in bytes, with an optional binary suffix K, M, G or T (x 1024^1..4; lower case too):
 * "512M", "8G", "1048576". Zero, junk, fractions and values past 2^64 - 1 are errors. */
int tool_parse_size(const char *cmd, const char *flag, const char *v, uint64_t *out);
/* Upper bound of -c, -b and bench's lengths: a token count no memory holds a context of. */
#define TOOL_MAX_TOKENS (1 << 30)
/* Thread counts above the machine's online CPUs (sysconf(_SC_NPROCESSORS_ONLN)) only contend for
 * them: lowers each of the n counts to that number, with one warning line on stderr naming the
 * flag's value when any was lowered. 0 (every core) stays 0. */
void tool_threads_fit(const char *cmd, const char *flag, const char *v, int32_t *threads, int n);
/* --device cpu|cuda|auto and --tp-quant exact|grouped, with the same contract. */
int tool_parse_device(const char *cmd, const char *v, enum trit_device *out);
int tool_parse_tp_quant(const char *cmd, const char *v, enum trit_tp_quant *out);
int tool_parse_cuda_gemv(const char *cmd, const char *v, enum trit_cuda_gemv *out);

/* The sampling options of run and chat (--temp, --top-k, --top-p, --min-p, --repeat-penalty,
 * --seed), parsed by tool_opts_parse. tool_sampling_check checks them together (the ranges of
 * trit_sampler_init) and prints why not, returning -1, so that a bad value is a usage error before
 * the model loads. */
int tool_sampling_check(const struct trit_sampler_params *sp, const char *cmd);
/* Their help lines. */
extern const char *const tool_sampling_help;

/* The model path to use: o->model, or the shipped default (models/, or $TRIT_MODEL). */
const char *tool_model_path(const struct tool_opts *o);

struct tool_session {
    const char *path; /* tool_model_path(o) */
    trit_model *model;
    struct trit_tokenizer *tok;
    trit_context *ctx;
    double load_ms;
};
/* What a command needs from tool_session_open. */
enum {
    TOOL_LOGITS_ALL = 1u, /* keep logits of every token of a batch (perplexity, logits) */
    TOOL_NO_TOKENIZER = 2u, /* token ids only: the model may have no tokenizer (synthetic models) */
};
/* The context parameters that o asks for; flags as below (TOOL_LOGITS_ALL). */
struct trit_context_params tool_context_params(const struct tool_opts *o, unsigned flags);
/* Loads model, tokenizer (unless TOOL_NO_TOKENIZER) and context, printing a progress line on
 * stderr. Returns 0, or prints the error and returns 1. */
int tool_session_open(struct tool_session *s, const struct tool_opts *o, unsigned flags, const char *cmd);
void tool_session_close(struct tool_session *s);

/* The model's chat template (trit_chat_template_load), or NULL when it has none or it cannot be
 * read. The caller frees it. */
char *tool_chat_template(const char *path);
/* The text of token id as the vocabulary writes it ("<|begin_of_text|>"), "" for -1 or NULL when out
 * of memory. The caller frees it. */
char *tool_token_text(const struct trit_tokenizer *tok, int32_t id);

/* Tensor parallelism over MPI: on ranks other than 0, stdout and stderr go to /dev/null, and only
 * tool errors and library warnings reach the real stderr, as "[rank N] ...". Call once the context
 * exists; nothing happens on rank 0 or without tensor parallelism. */
void tool_tp_follower(trit_context *ctx);

/* "trit CMD: error: <message>" on stderr ("trit: error: ..." for cmd ""); returns 1 (the exit code). */
int tool_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with trit_last_error() for a failed status: "trit CMD: error: WHAT: <message>", where
 * WHAT is left out when the message already starts with "WHAT:". */
int tool_fail_status(const char *cmd, enum trit_status st, const char *what);

/* Whether everything written to stdout so far reached it: flushes stdout and returns 0, or prints
 * "trit CMD: error: writing the output: <reason>" (once per process) and returns -1. Commands that
 * print while they compute call it right after each piece (errno then still holds the reason of a
 * write that failed), to stop at the first lost write; main calls it after every command, so that
 * a full disk or a closed pipe is never exit 0. */
int tool_stdout_check(const char *cmd);

/* Reads a whole file into a NUL-terminated heap buffer. The file may be a regular file, a FIFO or
 * this process's stdin (/dev/stdin, whatever it is); a folder, another device or a socket is
 * refused. On failure prints "trit CMD: error: PATH: <why>" ("PATH: is a folder, not a file") and
 * returns NULL. */
char *tool_read_file(const char *cmd, const char *path, size_t *len);
/* The same in two steps, so that a bad path is refused before a model loads and the length can be
 * bounded once it has: tool_open_input opens and checks PATH (returns the fd, or -1 after printing
 * why); tool_read_input reads it all and closes it, refusing, without reading further, more than
 * max_bytes (0: no bound) with "PATH: more than MAX bytes, <too_long>". */
int tool_open_input(const char *cmd, const char *path);
char *tool_read_input(const char *cmd, const char *path, int fd, size_t max_bytes, const char *too_long, size_t *len);
/* The most bytes a text of n_tokens tokens can hold under tok: every token covers at most
 * trit_tok_stream_max_out(tok) bytes of input. A text longer than this cannot fit. */
size_t tool_text_max_bytes(const struct trit_tokenizer *tok, int64_t n_tokens);
/* Peak resident memory of this process in MiB. */
double tool_peak_rss_mib(void);
double tool_now_ms(void);
/* Writes a float32 (rows, cols) array as .npy, NPY format 1.0: magic, version, u16 header length, a
 * Python dict ('<f4', C order) padded with spaces to a multiple of 64 bytes and ended by '\n', then the
 * raw little-endian data (the host's floats: x86-64 and aarch64 are little-endian). Written whole or
 * not at all: into out's temporary, then committed; out is released either way. */
enum trit_status tool_write_npy_f32(struct trit_out *out, const float *data, long rows, long cols);
/* Parses "1,2,3" into ids; returns the count or -1. */
long tool_parse_ids(const char *s, int32_t **out);

#endif /* TRIT_TOOLS_COMMON_H */
