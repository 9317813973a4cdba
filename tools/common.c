/* common.c: see common.h. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

#ifndef TRIT_DEFAULT_MODEL
#define TRIT_DEFAULT_MODEL "models/trit-kjv-4m.gguf"
#endif

const char *const tool_opts_help =
    "  -m, --model PATH     a .gguf file or a Hugging Face folder (default: the shipped model,\n"
    "                       " TRIT_DEFAULT_MODEL ", or $TRIT_MODEL)\n"
    "  -t, --threads N      CPU threads (default: every core; at most the online CPUs)\n"
    "  -c, --ctx N          context length in tokens (default: the model's training context)\n"
    "  -b, --batch N        tokens per forward pass when processing a prompt (default 512)\n"
    "  --device D           cpu, cuda or auto (default auto: CUDA when a device exists)\n"
    "  --head H             LM head: model (its own f16/bf16, default), int8 or q4 (4-bit, CPU\n"
    "                       only); smaller is faster: docs/perf.md gives each one's perplexity cost\n"
    "  --head-int8          the same as --head int8\n"
    "  --cuda-gemv K        the CUDA decode GEMV: add (adds and subtracts only, default) or dp4a;\n"
    "                       the same results, bit for bit ($TRIT_CUDA_GEMV sets the default)\n"
    "  --i2s-layout L       x86 (default) or arm: the block layout of a bitnet.cpp I2_S file; one\n"
    "                       that bitnet.cpp quantized on an ARM machine needs arm (docs/formats.md)\n"
    "  --tp-mpi             tensor parallel over the ranks of mpirun -np N, rank 0 prints: CPU\n"
    "                       ranks, or one GPU each with --device cuda (NCCL)\n"
    "  --tp N               tensor-parallel ranks: with --tp-mpi, the job's size; alone, GPUs\n"
    "                       0 .. N-1 of this process (NCCL)\n"
    "  --tp-quant Q         exact (default: global statistics) or grouped (per-shard; see\n"
    "                       docs/tensor-parallel.md)\n"
    "  --mem-limit SIZE     most memory the context may take, in bytes or with K, M, G, T\n"
    "                       (powers of 1024: 512M, 8G); default: what the machine has left\n";

void tool_opts_init(struct tool_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 512;
    o->device = TRIT_DEVICE_AUTO;
}

int tool_parse_i32(const char *cmd, const char *flag, const char *v, int32_t lo, int32_t hi, int32_t *out) {
    char *end = NULL;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || errno || *end || x < lo || x > hi) {
        tool_fail(cmd, "%s needs an integer from %d to %d (got '%s')", flag, lo, hi, v ? v : "nothing");
        return -1;
    }
    *out = (int32_t)x;
    return 0;
}

int tool_parse_f32(const char *cmd, const char *flag, const char *v, float *out) {
    char *end = NULL;
    errno = 0;
    float x = v ? strtof(v, &end) : 0.0f;
    if (!v || !*v || errno || *end || !isfinite(x)) {
        tool_fail(cmd, "%s needs a number (got '%s')", flag, v ? v : "nothing");
        return -1;
    }
    *out = x;
    return 0;
}

int tool_parse_u64(const char *cmd, const char *flag, const char *v, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long x = v && *v != '-' ? strtoull(v, &end, 0) : 0;
    if (!v || !*v || *v == '-' || errno || *end) {
        tool_fail(cmd, "%s needs a non-negative integer (got '%s')", flag, v ? v : "nothing");
        return -1;
    }
    *out = x;
    return 0;
}

int tool_parse_i32_list(const char *cmd, const char *flag, const char *v, int32_t lo, int32_t hi, int32_t *out, int max) {
    char item[32];
    int n = 0;
    for (const char *p = v ? v : "";; n++) {
        const char *comma = strchr(p, ',');
        const size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (n == max || len >= sizeof item) {
            tool_fail(cmd, "%s takes 1 to %d comma-separated integers from %d to %d (got '%s')", flag, max, lo, hi,
                      v ? v : "nothing");
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (tool_parse_i32(cmd, flag, item, lo, hi, &out[n]) < 0) return -1;
        if (!comma) return n + 1;
        p = comma + 1;
    }
}

int tool_parse_size(const char *cmd, const char *flag, const char *v, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    const bool digits = v && *v >= '0' && *v <= '9'; /* strtoull alone takes " 5", "+5" and "-5" */
    unsigned long long x = digits ? strtoull(v, &end, 10) : 0;
    bool ok = digits && errno == 0;
    unsigned shift = 0;
    if (ok && *end) {
        const char *suffixes = "KMGT", *at = strchr(suffixes, end[0] & ~0x20); /* upper case */
        ok = end[0] != '\0' && at && end[1] == '\0';
        shift = ok ? 10u * (unsigned)(at - suffixes + 1) : 0;
    }
    if (!ok || x == 0 || x > (UINT64_MAX >> shift)) {
        tool_fail(cmd, "%s needs a size in bytes from 1, with an optional K, M, G or T (powers of 1024: 512M, 8G) (got '%s')",
                  flag, v ? v : "nothing");
        return -1;
    }
    *out = (uint64_t)x << shift;
    return 0;
}

void tool_threads_fit(const char *cmd, const char *flag, const char *v, int32_t *threads, int n) {
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1 || online > INT32_MAX) return;
    bool lowered = false;
    for (int i = 0; i < n; i++)
        if (threads[i] > online) {
            threads[i] = (int32_t)online;
            lowered = true;
        }
    if (lowered)
        fprintf(stderr, "trit %s: warning: %s %s: this machine has %ld online CPU%s; using %ld thread%s\n", cmd, flag, v,
                online, online == 1 ? "" : "s", online, online == 1 ? "" : "s");
}

int tool_parse_device(const char *cmd, const char *v, enum trit_device *out) {
    if (v && !strcmp(v, "cpu")) *out = TRIT_DEVICE_CPU;
    else if (v && !strcmp(v, "cuda")) *out = TRIT_DEVICE_CUDA;
    else if (v && !strcmp(v, "auto")) *out = TRIT_DEVICE_AUTO;
    else return tool_fail(cmd, "--device takes cpu, cuda or auto"), -1;
    return 0;
}

const char *tool_head_name(enum tool_head h) {
    switch (h) {
    case TOOL_HEAD_MODEL: return "model";
    case TOOL_HEAD_INT8: return "int8";
    case TOOL_HEAD_Q4: return "q4";
    }
    return "?";
}

int tool_parse_head(const char *cmd, const char *v, enum tool_head *out) {
    if (v && (!strcmp(v, "model") || !strcmp(v, "f16") || !strcmp(v, "bf16"))) *out = TOOL_HEAD_MODEL;
    else if (v && !strcmp(v, "int8")) *out = TOOL_HEAD_INT8;
    else if (v && !strcmp(v, "q4")) *out = TOOL_HEAD_Q4;
    else return tool_fail(cmd, "--head takes model (or f16, bf16: the model's own), int8 or q4"), -1;
    return 0;
}

int tool_parse_i2s_layout(const char *cmd, const char *v, enum trit_i2s_layout *out) {
    if (v && !strcmp(v, "x86")) *out = TRIT_I2S_X86;
    else if (v && !strcmp(v, "arm")) *out = TRIT_I2S_ARM;
    else return tool_fail(cmd, "--i2s-layout takes x86 or arm"), -1;
    return 0;
}

int tool_parse_cuda_gemv(const char *cmd, const char *v, enum trit_cuda_gemv *out) {
    if (v && !strcmp(v, "add")) *out = TRIT_CUDA_GEMV_ADD;
    else if (v && !strcmp(v, "dp4a")) *out = TRIT_CUDA_GEMV_DP4A;
    else return tool_fail(cmd, "--cuda-gemv takes add or dp4a"), -1;
    return 0;
}

int tool_parse_tp_quant(const char *cmd, const char *v, enum trit_tp_quant *out) {
    if (v && !strcmp(v, "exact")) *out = TRIT_TP_QUANT_EXACT;
    else if (v && !strcmp(v, "grouped")) *out = TRIT_TP_QUANT_GROUPED;
    else return tool_fail(cmd, "--tp-quant takes exact or grouped"), -1;
    return 0;
}

const char *const tool_sampling_help =
    "  --temp T             temperature; 0 = greedy (default 0.8)\n"
    "  --top-k K            keep the K most likely tokens; 0 = off (default 40)\n"
    "  --top-p P            keep the smallest set with probability >= P; 1 = off (default 0.95)\n"
    "  --min-p P            drop tokens below P x the top probability; 0 = off (default 0.05)\n"
    "  --repeat-penalty R   penalize the last 64 tokens; 1 = off (default 1.0)\n"
    "  --seed S             random seed (default 1)\n";

/* The sampling options: 1 when argv[*i] is one (consumed), 0 when not, -1 on a bad value. */
static int sampling_parse(struct trit_sampler_params *sp, int argc, char **argv, int *i, const char *cmd) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int r;
    if (!strcmp(a, "--temp")) r = tool_parse_f32(cmd, a, v, &sp->temperature);
    else if (!strcmp(a, "--top-k")) r = tool_parse_i32(cmd, a, v, 0, INT32_MAX, &sp->top_k);
    else if (!strcmp(a, "--top-p")) r = tool_parse_f32(cmd, a, v, &sp->top_p);
    else if (!strcmp(a, "--min-p")) r = tool_parse_f32(cmd, a, v, &sp->min_p);
    else if (!strcmp(a, "--repeat-penalty")) r = tool_parse_f32(cmd, a, v, &sp->repeat_penalty);
    else if (!strcmp(a, "--seed")) r = tool_parse_u64(cmd, a, v, &sp->seed);
    else return 0;
    if (r < 0) return -1;
    *i += 2;
    return 1;
}

int tool_sampling_check(const struct trit_sampler_params *sp, const char *cmd) {
    trit_sampler *s = NULL;
    enum trit_status st = trit_sampler_init(sp, 1, &s);
    trit_sampler_free(s);
    if (st == TRIT_OK) return 0;
    tool_fail_status(cmd, st, "sampling options");
    return -1;
}

/* The common options, with sampling_parse's contract. */
static int common_parse(struct tool_opts *o, int argc, char **argv, int *i, const char *cmd) {
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
        if (!v) return tool_fail(cmd, "%s needs a path", a), -1;
        o->model = v;
        *i += 2;
        return 1;
    }
    if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        if (tool_parse_i32(cmd, a, v, 1, INT32_MAX, &o->threads) < 0) return -1;
        tool_threads_fit(cmd, a, v, &o->threads, 1);
        *i += 2;
        return 1;
    }
    if (!strcmp(a, "--mem-limit")) {
        if (tool_parse_size(cmd, a, v, &o->mem_limit) < 0) return -1;
        *i += 2;
        return 1;
    }
    int32_t *target = NULL;
    if (!strcmp(a, "--tp")) target = &o->tp;
    else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) target = &o->ctx;
    else if (!strcmp(a, "-b") || !strcmp(a, "--batch")) target = &o->batch;
    if (target) {
        if (tool_parse_i32(cmd, a, v, 1, TOOL_MAX_TOKENS, target) < 0) return -1;
        *i += 2;
        return 1;
    }
    if (!strcmp(a, "--device")) {
        if (tool_parse_device(cmd, v, &o->device) < 0) return -1;
        *i += 2;
        return 1;
    }
    if (!strcmp(a, "--tp-mpi")) {
        o->tp_mpi = true;
        *i += 1;
        return 1;
    }
    if (!strcmp(a, "--tp-quant")) {
        if (tool_parse_tp_quant(cmd, v, &o->tp_quant) < 0) return -1;
        *i += 2;
        return 1;
    }
    if (!strcmp(a, "--cuda-gemv")) {
        if (tool_parse_cuda_gemv(cmd, v, &o->cuda_gemv) < 0) return -1;
        *i += 2;
        return 1;
    }
    if (!strcmp(a, "--head-int8")) {
        o->head = TOOL_HEAD_INT8;
        *i += 1;
        return 1;
    }
    if (!strcmp(a, "--head")) {
        if (tool_parse_head(cmd, v, &o->head) < 0) return -1;
        *i += 2;
        return 1;
    }
    if (!strcmp(a, "--i2s-layout")) {
        if (tool_parse_i2s_layout(cmd, v, &o->i2s_layout) < 0) return -1;
        *i += 2;
        return 1;
    }
    return 0;
}

int tool_opts_parse(struct tool_opts *o, struct trit_sampler_params *sp, int argc, char **argv, int *i, const char *cmd,
                    void (*usage)(FILE *out)) {
    if (!strcmp(argv[*i], "-h") || !strcmp(argv[*i], "--help")) {
        usage(stdout);
        return 0;
    }
    int r = common_parse(o, argc, argv, i, cmd);
    if (r == 0 && sp) r = sampling_parse(sp, argc, argv, i, cmd);
    return r < 0 ? 2 : r > 0 ? TOOL_OPT_TAKEN : TOOL_OPT_OWN;
}

const char *tool_model_path(const struct tool_opts *o) {
    if (o->model) return o->model;
    const char *env = getenv("TRIT_MODEL");
    if (env && *env) return env;
    struct stat st;
    if (stat(TRIT_DEFAULT_MODEL, &st) == 0) return TRIT_DEFAULT_MODEL;
#ifdef TRIT_SOURCE_MODEL
    if (stat(TRIT_SOURCE_MODEL, &st) == 0) return TRIT_SOURCE_MODEL;
#endif
    return TRIT_DEFAULT_MODEL;
}

char *tool_chat_template(const char *path) {
    char *t = NULL;
    return trit_chat_template_load(path, &t) == TRIT_OK ? t : NULL;
}

char *tool_token_text(const struct trit_tokenizer *tok, int32_t id) {
    size_t n = 0;
    const char *s = id >= 0 ? trit_tokenizer_token_text(tok, id, &n) : NULL;
    return s ? strndup(s, n) : strdup("");
}

/* A follower rank's real stderr (tool_tp_follower), else NULL. */
static FILE *tp_err;
static int tp_rank;

static void tp_follower_log(enum trit_log_level level, const char *line, void *user) {
    (void)user;
    if (level >= TRIT_LOG_WARN)
        fprintf(tp_err, "[rank %d] trit %s: %s\n", tp_rank, level == TRIT_LOG_WARN ? "warn" : "error", line);
}

void tool_tp_follower(trit_context *ctx) {
    const int rank = trit_context_tp_rank(ctx);
    if (rank <= 0 || tp_err) return;
    const int fd = dup(2);
    if (fd < 0 || !(tp_err = fdopen(fd, "w"))) {
        if (fd >= 0) close(fd);
        return;
    }
    setvbuf(tp_err, NULL, _IOLBF, 0);
    tp_rank = rank;
    trit_log_set_callback(tp_follower_log, NULL);
    fflush(stdout);
    fflush(stderr);
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
        fprintf(tp_err, "[rank %d] trit: cannot silence this rank's output\n", rank);
}

int tool_fail(const char *cmd, const char *fmt, ...) {
    FILE *out = tp_err ? tp_err : stderr;
    va_list ap;
    va_start(ap, fmt);
    if (tp_err) fprintf(out, "[rank %d] ", tp_rank);
    fprintf(out, "trit%s%s: error: ", *cmd ? " " : "", cmd); /* "" for trit itself */
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    va_end(ap);
    return 1;
}

int tool_fail_status(const char *cmd, enum trit_status st, const char *what) {
    const char *msg = trit_last_error();
    if (!msg || !*msg) msg = trit_status_str(st);
    const size_t n = strlen(what);
    if (strncmp(msg, what, n) == 0 && msg[n] == ':') return tool_fail(cmd, "%s", msg); /* "tokenizer: tokenizer: ..." */
    return tool_fail(cmd, "%s: %s", what, msg);
}

int tool_stdout_check(const char *cmd) {
    static bool reported; /* one message, however many checks follow the first failure */
    if (reported) return -1;
    /* glibc drops the buffer of a failed write: the reason is errno right after it, or the flush's */
    const int before = errno;
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) {
        errno = before;
        return 0;
    }
    const int err = errno ? errno : before;
    reported = true;
    if (err) tool_fail(cmd, "writing the output: %s", strerror(err));
    else tool_fail(cmd, "writing the output: a write to stdout failed");
    return -1;
}

static void progress_line(float fraction, void *user) {
    int *last = user;
    int pct = (int)(fraction * 100.0f);
    if (pct == *last) return;
    *last = pct;
    fprintf(stderr, "\rloading model: %3d%%", pct);
    fflush(stderr);
}

struct trit_context_params tool_context_params(const struct tool_opts *o, unsigned flags) {
    struct trit_context_params cp = trit_context_default_params();
    cp.n_ctx = o->ctx;
    cp.n_batch = o->batch;
    cp.n_threads = o->threads;
    cp.device = o->device;
    cp.logits_all = (flags & TOOL_LOGITS_ALL) != 0;
    cp.head_int8 = o->head == TOOL_HEAD_INT8;
    cp.head_q4 = o->head == TOOL_HEAD_Q4;
    cp.tp_size = o->tp;
    cp.tp_mpi = o->tp_mpi;
    cp.tp_quant = o->tp_quant;
    cp.mem_limit = o->mem_limit;
    cp.cuda_gemv = o->cuda_gemv;
    return cp;
}

int tool_session_open(struct tool_session *s, const struct tool_opts *o, unsigned flags, const char *cmd) {
    memset(s, 0, sizeof *s);
    const char *path = s->path = tool_model_path(o);
    if (!(flags & TOOL_NO_TOKENIZER) && !strncmp(path, "synthetic:", 10))
        return tool_fail(cmd,
                         "%s is a synthetic model (random weights of a shape) and has no tokenizer: it runs token ids "
                         "(trit logits -m %s --ids 1,2,3 -o out.npy) and speed tests (trit bench -m %s)",
                         path, path, path);
    double t0 = tool_now_ms();
    int last = -1;
    struct trit_model_params mp = trit_model_default_params();
    mp.i2s_layout = o->i2s_layout;
    if (!o->quiet && isatty(2)) {
        mp.progress = progress_line;
        mp.progress_user = &last;
    }
    enum trit_status st = trit_model_load(path, &mp, &s->model);
    if (!o->quiet && last >= 0) fputc('\n', stderr);
    if (st != TRIT_OK) return tool_fail_status(cmd, st, path);
    st = (flags & TOOL_NO_TOKENIZER) ? TRIT_OK : trit_tokenizer_load(path, &s->tok);
    if (st != TRIT_OK) {
        tool_session_close(s);
        return tool_fail_status(cmd, st, "tokenizer");
    }
    struct trit_context_params cp = tool_context_params(o, flags);
    st = trit_context_init(s->model, &cp, &s->ctx);
    if (st != TRIT_OK) {
        tool_session_close(s);
        return tool_fail_status(cmd, st, "context");
    }
    tool_tp_follower(s->ctx);
    s->load_ms = tool_now_ms() - t0;
    if (!o->quiet)
        fprintf(stderr, "model: %s\n  %s\n  device: %s (%s), context %d, %.1f MiB of weights and cache, loaded in %.0f ms\n",
                path, trit_model_desc(s->model), trit_context_backend(s->ctx), trit_context_device_desc(s->ctx),
                trit_context_n_ctx(s->ctx), (double)trit_context_memory_bytes(s->ctx) / (1024.0 * 1024.0), s->load_ms);
    return 0;
}

void tool_session_close(struct tool_session *s) {
    trit_context_free(s->ctx);
    trit_tokenizer_free(s->tok);
    trit_model_free(s->model);
    memset(s, 0, sizeof *s);
}

/* Whether fd is this process's stdin under another name (/dev/stdin, /proc/self/fd/0): the same
 * open file, whatever it is (a terminal is a character device). */
static bool is_stdin(const struct stat *sb) {
    struct stat in;
    return fstat(0, &in) == 0 && in.st_dev == sb->st_dev && in.st_ino == sb->st_ino && in.st_rdev == sb->st_rdev;
}

int tool_open_input(const char *cmd, const char *path) {
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) {
        const int err = errno;
        /* a socket cannot be opened (ENXIO): say what it is */
        if (stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode)) return tool_fail(cmd, "%s: is a socket, not a file", path), -1;
        return tool_fail(cmd, "%s: cannot open: %s", path, strerror(err)), -1;
    }
    if (fstat(fd, &sb) != 0 || !(S_ISREG(sb.st_mode) || S_ISFIFO(sb.st_mode) || is_stdin(&sb))) {
        const int err = errno;
        close(fd);
        if (S_ISDIR(sb.st_mode)) return tool_fail(cmd, "%s: is a folder, not a file", path), -1;
        if (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode))
            return tool_fail(cmd, "%s: is a %s device, not a file (give a regular file, a FIFO or /dev/stdin)", path,
                             S_ISCHR(sb.st_mode) ? "character" : "block"),
                   -1;
        return tool_fail(cmd, "%s: cannot read: %s", path, strerror(err ? err : EINVAL)), -1;
    }
    return fd;
}

char *tool_read_input(const char *cmd, const char *path, int fd, size_t max_bytes, const char *too_long, size_t *len) {
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return tool_fail(cmd, "%s: cannot read: %s", path, strerror(errno)), NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    bool over = false;
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (max_bytes && n > max_bytes) { /* read no further: the rest could be endless (/dev/zero) */
            over = true;
            break;
        }
        if (n < cap) break;
        char *bigger = realloc(buf, cap * 2 + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    const int err = ferror(f) ? errno : 0;
    fclose(f);
    if (over) {
        free(buf);
        return tool_fail(cmd, "%s: more than %zu bytes, %s", path, max_bytes, too_long), NULL;
    }
    if (!buf || err) {
        free(buf);
        return tool_fail(cmd, "%s: cannot read: %s", path, strerror(err ? err : ENOMEM)), NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

char *tool_read_file(const char *cmd, const char *path, size_t *len) {
    const int fd = tool_open_input(cmd, path);
    return fd < 0 ? NULL : tool_read_input(cmd, path, fd, 0, "", len);
}

size_t tool_text_max_bytes(const struct trit_tokenizer *tok, int64_t n_tokens) {
    return (size_t)n_tokens * trit_tok_stream_max_out(tok);
}

double tool_peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

double tool_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

long tool_parse_ids(const char *s, int32_t **out) {
    size_t cap = 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    const char *p = s;
    while (ids && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) {
            free(ids);
            return -1;
        }
        if (n == cap) {
            int32_t *bigger = realloc(ids, 2 * cap * sizeof *ids);
            if (!bigger) {
                free(ids);
                return -1;
            }
            ids = bigger;
            cap *= 2;
        }
        ids[n++] = (int32_t)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    if (!ids) return -1;
    *out = ids;
    return (long)n;
}

/* ---- .npy output ----------------------------------------------------------------------------- */

enum trit_status tool_write_npy_f32(struct trit_out *out, const float *data, long rows, long cols) {
    char header[128];
    int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %ld), }", rows, cols);
    const int total = 10 + n + 1;
    const int pad = (64 - total % 64) % 64;
    const unsigned hlen = (unsigned)(n + pad + 1);
    uint8_t head[10 + 128 + 64] = "\x93NUMPY\x01\x00";
    head[8] = (uint8_t)(hlen & 0xff);
    head[9] = (uint8_t)(hlen >> 8);
    memcpy(head + 10, header, (size_t)n);
    memset(head + 10 + n, ' ', (size_t)pad);
    head[10 + n + pad] = '\n';
    enum trit_status st = trit_out_write(out, head, (size_t)(total + pad));
    if (st == TRIT_OK) st = trit_out_write(out, data, sizeof(float) * (size_t)(rows * cols));
    if (st == TRIT_OK) return trit_out_commit(out);
    trit_out_abort(out);
    return st;
}
