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
    int32_t threads;        /* -t; 0 = every core */
    int32_t ctx;            /* -c; 0 = the model's training context */
    int32_t batch;          /* -b */
    enum trit_device device;/* --device cpu|cuda|auto */
    enum tool_head head;    /* --head model|int8|q4 (--head-int8: int8) */
    enum trit_i2s_layout i2s_layout; /* --i2s-layout x86|arm */
    bool quiet;             /* no progress line */
    int32_t tp;             /* --tp N: tensor-parallel ranks (0 = off) */
    bool tp_mpi;            /* --tp-mpi: the ranks are this MPI job's processes */
    enum trit_tp_quant tp_quant; /* --tp-quant exact|grouped */
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

/* Option values. On a missing or malformed value (trailing text, out of range, empty) these print
 * "trit CMD: error: FLAG needs ..." and return -1; else they store it and return 0. */
int tool_parse_i32(const char *cmd, const char *flag, const char *v, int32_t lo, int32_t hi, int32_t *out);
int tool_parse_f32(const char *cmd, const char *flag, const char *v, float *out);
int tool_parse_u64(const char *cmd, const char *flag, const char *v, uint64_t *out);
/* --device cpu|cuda|auto and --tp-quant exact|grouped, with the same contract. */
int tool_parse_device(const char *cmd, const char *v, enum trit_device *out);
int tool_parse_tp_quant(const char *cmd, const char *v, enum trit_tp_quant *out);

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

/* Tensor parallelism over MPI: on ranks other than 0, stdout and stderr go to /dev/null, and only
 * tool errors and library warnings reach the real stderr, as "[rank N] ...". Call once the context
 * exists; nothing happens on rank 0 or without tensor parallelism. */
void tool_tp_follower(trit_context *ctx);

/* "trit CMD: error: <message>" on stderr; returns 1 (the exit code). */
int tool_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with trit_last_error() for a failed status. */
int tool_fail_status(const char *cmd, enum trit_status st, const char *what);

/* Reads a whole file into a NUL-terminated heap buffer; NULL (with errno) on failure. */
char *tool_read_file(const char *path, size_t *len);
/* Peak resident memory of this process in MiB. */
double tool_peak_rss_mib(void);
double tool_now_ms(void);
/* Parses "1,2,3" into ids; returns the count or -1. */
long tool_parse_ids(const char *s, int32_t **out);

#endif /* TRIT_TOOLS_COMMON_H */
