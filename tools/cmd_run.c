/*
 * cmd_run.c: `trit run`: generate text from a prompt, streaming it to stdout, with load time,
 * prompt and generation speed, time to first token and peak memory on stderr.
 *
 *   trit run -p "In the beginning" -n 64
 *   trit run -m model.gguf -f prompt.txt --temp 0 --json
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit run [options] -p PROMPT | -f FILE\n"
            "\n"
            "Generates text after the prompt and streams it to stdout. Statistics go to stderr.\n"
            "\n"
            "  -p, --prompt TEXT    the prompt\n"
            "  -f, --file PATH      read the prompt from a file\n"
            "  -n, --n-predict N    tokens to generate (default 128; stops early at end of text)\n"
            "%s"
            "  --no-bos             do not add the BOS token\n"
            "  --json               print the statistics as one JSON object on stderr\n"
            "%s"
            "  -h, --help           this text\n",
            tool_sampling_help, tool_opts_help);
}

int cmd_run(int argc, char **argv) {
    struct tool_opts o;
    tool_opts_init(&o);
    struct trit_sampler_params sp = trit_sampler_default_params();
    sp.seed = 1;
    const char *prompt = NULL, *prompt_file = NULL;
    int32_t n_predict = 128;
    bool add_bos = true, json = false;
    for (int i = 1; i < argc;) {
        int r = tool_opts_parse(&o, &sp, argc, argv, &i, "run", usage);
        if (r == TOOL_OPT_TAKEN) continue;
        if (r != TOOL_OPT_OWN) return r;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!v) return tool_fail("run", "%s needs text", a) + 1;
            prompt = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!v) return tool_fail("run", "%s needs a path", a) + 1;
            prompt_file = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (tool_parse_i32("run", a, v, 0, INT32_MAX, &n_predict)) return 2;
        } else if (!strcmp(a, "--no-bos")) {
            add_bos = false;
            i += 1;
            continue;
        } else if (!strcmp(a, "--json")) {
            json = true;
            i += 1;
            continue;
        } else {
            usage(stderr);
            return tool_fail("run", "unknown option '%s'", a) + 1;
        }
        i += 2;
    }
    if (!prompt && !prompt_file) {
        usage(stderr);
        return tool_fail("run", "give a prompt with -p TEXT or -f FILE") + 1;
    }
    if (prompt && prompt_file) return tool_fail("run", "give -p TEXT or -f FILE, not both") + 1;
    if (tool_sampling_check(&sp, "run")) return 2;
    /* the file is checked before the model loads, and read after: a prompt longer than the context
     * could hold is refused without reading it all (it may be endless: -f /dev/stdin < /dev/zero) */
    const int prompt_fd = prompt_file ? tool_open_input("run", prompt_file) : -1;
    if (prompt_file && prompt_fd < 0) return 1;
    struct tool_session s;
    if (tool_session_open(&s, &o, 0, "run")) {
        if (prompt_fd >= 0) close(prompt_fd);
        return 1;
    }
    char *file_text = NULL;
    size_t prompt_len;
    if (prompt_file) {
        char why[96];
        const int32_t c = trit_context_n_ctx(s.ctx);
        snprintf(why, sizeof why, "more than a context of %d tokens can hold (raise -c)", c);
        file_text = tool_read_input("run", prompt_file, prompt_fd, tool_text_max_bytes(s.tok, c), why, &prompt_len);
        if (!file_text) {
            tool_session_close(&s);
            return 1;
        }
        prompt = file_text;
    } else {
        prompt_len = strlen(prompt);
    }
    int rc = 0;
    struct trit_tokens ids = {0};
    trit_sampler *sampler = NULL;
    char *out = NULL;
    unsigned flags = TRIT_TOKENIZE_PARSE_SPECIAL | (add_bos ? TRIT_TOKENIZE_ADD_SPECIAL : 0);
    enum trit_status st = trit_tokenize(s.tok, prompt, prompt_len, flags, &ids);
    if (st != TRIT_OK) {
        rc = tool_fail_status("run", st, "tokenize");
        goto done;
    }
    const int32_t n_ctx = trit_context_n_ctx(s.ctx);
    if (ids.n == 0) {
        rc = tool_fail("run", "the prompt is empty and the model adds no BOS token");
        goto done;
    }
    if ((int64_t)ids.n >= n_ctx) {
        rc = tool_fail("run", "the prompt is %zu tokens, but the context holds %d (raise -c, up to the memory you have)",
                       ids.n, n_ctx);
        goto done;
    }
    if ((int64_t)ids.n + n_predict > n_ctx) {
        fprintf(stderr, "note: the context (%d) ends after %lld generated tokens\n", n_ctx, (long long)(n_ctx - (int64_t)ids.n));
        n_predict = n_ctx - (int32_t)ids.n;
    }
    st = trit_sampler_init(&sp, trit_model_n_vocab(s.model), &sampler);
    if (st != TRIT_OK) {
        rc = tool_fail_status("run", st, "sampler");
        goto done;
    }
    for (size_t i = 0; i < ids.n; i++) trit_sampler_accept(sampler, ids.ids[i]);

    /* The prompt is echoed as given; generated text follows it. A write that does not reach stdout
     * (a full disk, a closed pipe) ends the run there: nobody would see the rest. */
    fwrite(prompt, 1, prompt_len, stdout);
    if (tool_stdout_check("run")) {
        rc = 1;
        goto done;
    }
    const size_t out_cap = trit_tok_stream_max_out(s.tok) + 8;
    out = malloc(out_cap);
    if (!out) {
        rc = tool_fail("run", "out of memory");
        goto done;
    }
    struct trit_tok_stream ts;
    trit_tok_stream_init(&ts, s.tok, 0);

    /* Greedy without a penalty: the backend takes the argmax (on the device with CUDA), no logits. */
    const bool argmax_only = sp.temperature <= 0.0f && sp.repeat_penalty == 1.0f;
    int32_t next = -1;
    double t_prompt0 = tool_now_ms();
    st = argmax_only ? trit_decode_argmax(s.ctx, ids.ids, (int32_t)ids.n, &next)
                     : trit_decode_sample(s.ctx, ids.ids, (int32_t)ids.n, sampler, &next);
    if (st != TRIT_OK) {
        rc = tool_fail_status("run", st, "prompt");
        goto done;
    }
    double t_prompt1 = tool_now_ms(), t_first = 0.0;
    int32_t n_gen = 0;
    bool stopped_eog = false;
    for (; n_gen < n_predict; n_gen++) {
        int32_t tok = next;
        if (n_gen == 0) t_first = tool_now_ms();
        if (trit_tokenizer_is_eog(s.tok, tok)) {
            stopped_eog = true;
            break;
        }
        trit_sampler_accept(sampler, tok);
        size_t n_out;
        if (trit_tok_stream_feed(&ts, tok, out, out_cap, &n_out) == TRIT_OK && n_out) {
            fwrite(out, 1, n_out, stdout);
            if (tool_stdout_check("run")) {
                rc = 1;
                goto done;
            }
        }
        if (n_gen + 1 == n_predict) {
            n_gen++;
            break;
        }
        st = argmax_only ? trit_decode_argmax(s.ctx, &tok, 1, &next) : trit_decode_sample(s.ctx, &tok, 1, sampler, &next);
        if (st != TRIT_OK) {
            rc = tool_fail_status("run", st, "decode");
            goto done;
        }
    }
    size_t n_out;
    if (trit_tok_stream_flush(&ts, out, out_cap, &n_out) == TRIT_OK && n_out) fwrite(out, 1, n_out, stdout);
    fputc('\n', stdout);
    if (tool_stdout_check("run")) {
        rc = 1;
        goto done;
    }
    double t_end = tool_now_ms();

    const double pp_ms = t_prompt1 - t_prompt0;
    /* n_gen tokens were sampled; n_gen - 1 of them were run through the model after the first. */
    const double tg_tps = n_gen > 1 ? (double)(n_gen - 1) / ((t_end - t_first) / 1e3) : 0.0;
    const double pp_tps = (double)ids.n / (pp_ms / 1e3);
    const double ttft = (n_gen > 0 || stopped_eog) ? t_first - t_prompt0 : 0.0;
    if (json) {
        fprintf(stderr,
                "{\"model\":\"%s\",\"backend\":\"%s\",\"device\":\"%s\",\"load_ms\":%.1f,\"prompt_tokens\":%zu,"
                "\"prompt_tps\":%.2f,\"gen_tokens\":%d,\"gen_tps\":%.2f,\"ttft_ms\":%.2f,\"peak_rss_mib\":%.1f,"
                "\"backend_mib\":%.1f,\"stopped\":\"%s\"}\n",
                s.path, trit_context_backend(s.ctx), trit_context_device_desc(s.ctx), s.load_ms, ids.n,
                pp_tps, n_gen, tg_tps, ttft, tool_peak_rss_mib(),
                (double)trit_context_memory_bytes(s.ctx) / (1024.0 * 1024.0), stopped_eog ? "eog" : "length");
    } else {
        fprintf(stderr,
                "\nload %.0f ms | prompt %zu tokens, %.1f tok/s | generated %d tokens, %.1f tok/s | "
                "first token %.1f ms | peak memory %.0f MiB | %s\n",
                s.load_ms, ids.n, pp_tps, n_gen, tg_tps, ttft, tool_peak_rss_mib(), trit_context_device_desc(s.ctx));
    }
done:
    free(out);
    trit_sampler_free(sampler);
    trit_tokens_free(&ids);
    tool_session_close(&s);
    free(file_text);
    return rc;
}
