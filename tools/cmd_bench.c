/*
 * cmd_bench.c: `trit bench`: end-to-end speed in the manner of llama-bench. For every
 * combination of threads and head precision it runs, after one warm-up:
 *   ppN  prompt processing: N random tokens in one batch from an empty cache
 *   tgN  generation: N single-token decodes from an empty cache
 *   tgNxS  with --seqs S: S sequences generating N tokens each, one batch of S tokens per step
 *        (trit_decode_batch), tokens/s summed over the sequences
 * r times each, and prints tokens/s as mean +/- standard deviation.
 *
 *   trit bench -m synthetic:2b4t -t 2
 *   trit bench -m model.gguf -p 128,512 -n 128 -r 3 -o json
 *   trit bench -m synthetic:2b4t -t 2 -p 0 -s 1,2,4,8,16
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit bench [options]\n"
            "\n"
            "Measures prompt processing (ppN) and generation (tgN) speed, llama-bench style.\n"
            "\n"
            "  -m, --model PATH     a model file or folder, or synthetic:2b4t | synthetic:8b |\n"
            "                       synthetic:70b-layers (random ternary weights of that shape), or\n"
            "                       synthetic:2b4t-q2 | synthetic:8b-q2 (the same shapes as Qwen3 graphs\n"
            "                       with Q2_0-style group scales: groups of 64 and of 128)\n"
            "  -p, --n-prompt LIST  prompt lengths, comma-separated (default 512; 0 = none)\n"
            "  -n, --n-gen LIST     generation lengths (default 128; 0 = none)\n"
            "  -s, --seqs LIST      sequences decoded together in the tg tests, comma-separated\n"
            "                       (default 1; S > 1 runs tgNxS: one batch of S tokens per step)\n"
            "  -r, --reps N         repetitions (default 5)\n"
            "  -t, --threads LIST   CPU thread counts (default: every core; at most the online CPUs)\n"
            "  --head LIST          LM heads, comma-separated: model (the model's own f16/bf16; also\n"
            "                       written f16 or bf16), int8, q4 (default model)\n"
            "  --device D           cpu, cuda or auto (default auto)\n"
            "  --i2s-layout L       x86 (default) or arm: a bitnet.cpp I2_S file's block layout\n"
            "  --tp-mpi, --tp N, --tp-quant Q   tensor parallelism, as for trit run\n"
            "  --mem-limit SIZE     most memory a context may take (512M, 8G; as for trit run)\n"
            "  --cuda-gemv K        the CUDA decode GEMV, add (default) or dp4a, as for trit run\n"
            "  -o, --output FMT     md, json or csv (default md)\n"
            "  -h, --help           this text\n");
}

struct result {
    char test[32];
    char device[160]; /* the context's description: backend, kernels, threads */
    int threads;
    enum tool_head head;
    double mean_tps, sd_tps, mean_ns;
    double samples_tps[64];
    int n_samples;
};

/* --head LIST: up to 3 distinct heads. */
static int parse_heads(const char *v, enum tool_head *heads, int *n) {
    char buf[64];
    if (!v || strlen(v) >= sizeof buf) return tool_fail("bench", "--head takes a list of model, int8, q4"), 1;
    snprintf(buf, sizeof buf, "%s", v);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        enum tool_head h;
        if (tool_parse_head("bench", tok, &h) < 0) return 1;
        for (int i = 0; i < *n; i++)
            if (heads[i] == h) return tool_fail("bench", "--head lists %s twice", tok), 1;
        if (*n == 3) return tool_fail("bench", "--head takes at most 3 heads"), 1;
        heads[(*n)++] = h;
    }
    if (*n == 0) return tool_fail("bench", "--head takes a list of model, int8, q4"), 1;
    return 0;
}

/* Drops repeated values (a -t list capped at the CPU count: "4,8" on 2 CPUs is "2"), keeping the
 * order of first appearance; returns the new count. */
static int unique(int32_t *v, int n) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < m && v[j] != v[i]) j++;
        if (j == m) v[m++] = v[i];
    }
    return m;
}

/* The head's name in the tables: the model's own by its dtype. */
static const char *head_label(const trit_model *m, enum tool_head h) {
    return h == TOOL_HEAD_MODEL ? trit_model_head_dtype(m) : tool_head_name(h);
}

static uint64_t rng_state = 0x12345678;
static int32_t rand_token(int32_t n_vocab) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (int32_t)(rng_state % (uint64_t)n_vocab);
}

/* One sample: seconds to run the test (n_seqs > 1: n steps of one batch of n_seqs tokens). */
static int run_once(trit_context *ctx, int32_t n_vocab, bool prompt, int n, int n_seqs, double *seconds) {
    const int total = n * n_seqs;
    int32_t *toks = malloc((size_t)total * 3 * sizeof *toks);
    if (!toks) return -1;
    int32_t *pos = toks + total, *seq = pos + total;
    for (int i = 0; i < total; i++) toks[i] = rand_token(n_vocab);
    for (int k = 0; k < n_seqs; k++) trit_seq_remove(ctx, k);
    const float *logits;
    double t0 = tool_now_ms();
    enum trit_status st = TRIT_OK;
    if (prompt) {
        st = trit_decode(ctx, toks, n, &logits);
    } else if (n_seqs == 1) {
        for (int i = 0; i < n && st == TRIT_OK; i++) st = trit_decode(ctx, &toks[i], 1, &logits);
    } else {
        for (int i = 0; i < n && st == TRIT_OK; i++) {
            for (int k = 0; k < n_seqs; k++) pos[k] = i, seq[k] = k;
            const struct trit_batch b = {.n_tokens = n_seqs, .token = toks + i * n_seqs, .pos = pos, .seq_id = seq};
            st = trit_decode_batch(ctx, &b, &logits, NULL);
        }
    }
    *seconds = (tool_now_ms() - t0) / 1e3;
    free(toks);
    if (st != TRIT_OK) tool_fail_status("bench", st, prompt ? "prompt" : "generation");
    return st == TRIT_OK ? 0 : -1;
}

int cmd_bench(int argc, char **argv) {
    struct tool_opts o; /* model, device and tensor parallelism; threads, head and lengths per test */
    tool_opts_init(&o);
    const char *fmt = "md";
    int32_t pp[16] = {512}, tg[16] = {128}, threads[16] = {0}; /* threads 0: every core */
    int n_pp = 1, n_tg = 1, n_threads = 1;
    int32_t reps = 5, seqs[16] = {1};
    int n_seqs = 1;
    enum tool_head heads[3] = {TOOL_HEAD_MODEL};
    int n_heads = 1;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--tp-mpi")) { /* the one option without a value */
            o.tp_mpi = true;
            i -= 1;
            continue;
        }
        if (!v) return tool_fail("bench", "%s needs a value", a) + 1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) o.model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            if ((n_pp = tool_parse_i32_list("bench", a, v, 0, TOOL_MAX_TOKENS, pp, 16)) < 0) return 2;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            if ((n_tg = tool_parse_i32_list("bench", a, v, 0, TOOL_MAX_TOKENS, tg, 16)) < 0) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if ((n_threads = tool_parse_i32_list("bench", a, v, 1, INT32_MAX, threads, 16)) < 0) return 2;
            tool_threads_fit("bench", a, v, threads, n_threads);
            n_threads = unique(threads, n_threads);
        } else if (!strcmp(a, "--mem-limit")) {
            if (tool_parse_size("bench", a, v, &o.mem_limit)) return 2;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seqs")) {
            if ((n_seqs = tool_parse_i32_list("bench", a, v, 1, TRIT_SEQ_MAX, seqs, 16)) < 0) return 2;
            n_seqs = unique(seqs, n_seqs);
        } else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) {
            if (tool_parse_i32("bench", a, v, 1, 64, &reps)) return 2;
        } else if (!strcmp(a, "--head")) {
            if (parse_heads(v, heads, &n_heads)) return 2;
        } else if (!strcmp(a, "--device")) {
            if (tool_parse_device("bench", v, &o.device)) return 2;
        } else if (!strcmp(a, "--i2s-layout")) {
            if (tool_parse_i2s_layout("bench", v, &o.i2s_layout)) return 2;
        } else if (!strcmp(a, "--tp")) {
            if (tool_parse_i32("bench", a, v, 1, TOOL_MAX_TOKENS, &o.tp)) return 2;
        } else if (!strcmp(a, "--tp-quant")) {
            if (tool_parse_tp_quant("bench", v, &o.tp_quant)) return 2;
        } else if (!strcmp(a, "--cuda-gemv")) {
            if (tool_parse_cuda_gemv("bench", v, &o.cuda_gemv)) return 2;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (strcmp(v, "md") && strcmp(v, "json") && strcmp(v, "csv")) return tool_fail("bench", "-o takes md, json or csv") + 1;
            fmt = v;
        } else {
            usage(stderr);
            return tool_fail("bench", "unknown option '%s'", a) + 1;
        }
    }
    const char *path = tool_model_path(&o);
    trit_model *m = NULL;
    double t0 = tool_now_ms();
    struct trit_model_params mp = trit_model_default_params();
    mp.i2s_layout = o.i2s_layout;
    enum trit_status st = trit_model_load(path, &mp, &m);
    if (st != TRIT_OK) return tool_fail_status("bench", st, path);
    fprintf(stderr, "bench: %s loaded in %.0f ms: %s\n", path, tool_now_ms() - t0, trit_model_desc(m));
    const int32_t n_vocab = trit_model_n_vocab(m);
    int max_len = 1;
    for (int i = 0; i < n_pp; i++) max_len = pp[i] > max_len ? pp[i] : max_len;
    for (int i = 0; i < n_tg; i++) max_len = tg[i] > max_len ? tg[i] : max_len;
    o.ctx = o.batch = max_len;
    int32_t max_seqs = 1;
    for (int i = 0; i < n_seqs; i++) max_seqs = seqs[i] > max_seqs ? seqs[i] : max_seqs;
    if (o.batch < max_seqs) o.batch = max_seqs;

    struct result res[256];
    int n_res = 0, rc = 0;
    char backend[64] = "", device_desc[160] = "";
    for (int ti = 0; ti < n_threads && rc == 0; ti++) {
        for (int hi = 0; hi < n_heads && rc == 0; hi++) {
            o.threads = threads[ti];
            o.head = heads[hi];
            struct trit_context_params cp = tool_context_params(&o, 0);
            cp.n_seq_max = max_seqs;
            trit_context *ctx = NULL;
            st = trit_context_init(m, &cp, &ctx);
            if (st != TRIT_OK) {
                rc = tool_fail_status("bench", st, "context");
                break;
            }
            tool_tp_follower(ctx);
            snprintf(backend, sizeof backend, "%s", trit_context_backend(ctx));
            snprintf(device_desc, sizeof device_desc, "%s", trit_context_device_desc(ctx));
            for (int kind = 0; kind < 2 && rc == 0; kind++) {
                const int32_t *lens = kind == 0 ? pp : tg;
                int n_lens = kind == 0 ? n_pp : n_tg;
                for (int li = 0; li < n_lens * (kind == 0 ? 1 : n_seqs) && rc == 0; li++) {
                    const int len = lens[li % n_lens], S = kind == 0 ? 1 : seqs[li / n_lens];
                    if (len == 0 || n_res == 256) continue;
                    struct result *r = &res[n_res++];
                    memset(r, 0, sizeof *r);
                    if (S == 1) snprintf(r->test, sizeof r->test, "%s%d", kind == 0 ? "pp" : "tg", len);
                    else snprintf(r->test, sizeof r->test, "tg%dx%d", len, S);
                    r->threads = threads[ti];
                    snprintf(r->device, sizeof r->device, "%s", device_desc);
                    r->head = heads[hi];
                    double sec;
                    if (run_once(ctx, n_vocab, kind == 0, len, S, &sec)) { /* warm-up */
                        rc = tool_fail_status("bench", TRIT_ERR_INTERNAL, r->test);
                        break;
                    }
                    double sum = 0, sum2 = 0, sum_ns = 0;
                    for (int k = 0; k < reps; k++) {
                        if (run_once(ctx, n_vocab, kind == 0, len, S, &sec)) {
                            rc = tool_fail_status("bench", TRIT_ERR_INTERNAL, r->test);
                            break;
                        }
                        double tps = (double)len * S / sec;
                        r->samples_tps[r->n_samples++] = tps;
                        sum += tps;
                        sum2 += tps * tps;
                        sum_ns += sec * 1e9;
                    }
                    r->mean_tps = sum / reps;
                    r->sd_tps = reps > 1 ? sqrt(fmax(0.0, (sum2 - sum * sum / reps) / (reps - 1))) : 0.0;
                    r->mean_ns = sum_ns / reps;
                    fprintf(stderr, "  %s t=%d head=%s: %.2f tok/s\n", r->test, r->threads, head_label(m, r->head), r->mean_tps);
                }
            }
            trit_context_free(ctx);
        }
    }
    if (rc == 0) {
        if (!strcmp(fmt, "md")) {
            printf("| model | backend | device | head | test | t/s |\n");
            printf("| --- | --- | --- | --- | ---: | ---: |\n");
            for (int i = 0; i < n_res; i++)
                printf("| %s | %s | %s | %s | %s | %.2f ± %.2f |\n", path, backend, res[i].device,
                       head_label(m, res[i].head), res[i].test, res[i].mean_tps, res[i].sd_tps);
        } else if (!strcmp(fmt, "csv")) {
            printf("model,backend,device,threads,head,test,avg_ts,stddev_ts,avg_ns\n");
            for (int i = 0; i < n_res; i++)
                printf("\"%s\",%s,\"%s\",%d,%s,%s,%.4f,%.4f,%.0f\n", path, backend, res[i].device, res[i].threads,
                       head_label(m, res[i].head), res[i].test, res[i].mean_tps, res[i].sd_tps, res[i].mean_ns);
        } else {
            printf("[\n");
            for (int i = 0; i < n_res; i++) {
                printf("  {\"model\": \"%s\", \"desc\": \"%s\", \"backend\": \"%s\", \"device\": \"%s\", \"threads\": %d, "
                       "\"head\": \"%s\", \"test\": \"%s\", \"avg_ts\": %.4f, \"stddev_ts\": %.4f, \"avg_ns\": %.0f, \"samples_ts\": [",
                       path, trit_model_desc(m), backend, res[i].device, res[i].threads, head_label(m, res[i].head),
                       res[i].test, res[i].mean_tps, res[i].sd_tps, res[i].mean_ns);
                for (int k = 0; k < res[i].n_samples; k++) printf("%s%.4f", k ? ", " : "", res[i].samples_tps[k]);
                printf("]}%s\n", i + 1 < n_res ? "," : "");
            }
            printf("]\n");
        }
    }
    trit_model_free(m);
    return rc;
}
