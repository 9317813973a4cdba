/*
 * cmd_convert.c: `trit convert`: a Hugging Face folder or any GGUF trit reads, to a GGUF in trit's
 * layout (docs/formats.md), tokenizer included. The conversion itself is host/model/convert.c;
 * this file parses options and prints progress and the summary.
 *
 *   trit convert tools/train/out/hf -o models/trit-kjv-4m.gguf
 *   trit convert ggml-model-i2_s.gguf -o bitnet-2b.gguf --weights tq1_0
 *   trit convert bitnet_b1_58-large/ -o large.gguf --tokenizer ggml-vocab-llama-spm.gguf
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "model/convert.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit convert SRC -o OUT.gguf [options]\n"
            "\n"
            "Writes SRC (a Hugging Face folder or a GGUF file trit loads) as a GGUF in trit's layout: ternary\n"
            "weights as TQ2_0 blocks with an exact fp32 scale tensor each, embedding and head in their source\n"
            "dtype, the tokenizer carried along (docs/formats.md). The output is then loaded back and compared\n"
            "with the source bit for bit; the file appears only if that holds.\n"
            "\n"
            "  -o, --output PATH    the GGUF file to write (required)\n"
            "  --weights T          tq2_0 (default; 2.06 bits a weight) or tq1_0 (1.69 bits); group-scaled\n"
            "                       weights (Q2_0 sources, Ternary-Bonsai) are always written as Q2_0\n"
            "  --tokenizer PATH     take the tokenizer from PATH (a GGUF with tokenizer.ggml.* keys, a\n"
            "                       tokenizer.json or a folder with one) instead of SRC\n"
            "  --no-tokenizer       write no tokenizer\n"
            "  --no-check           do not load the output back to compare it with the source\n"
            "  -q, --quiet          no progress on stderr\n"
            "  -h, --help           this text\n");
}

static const char *const STAGE_NAMES[] = {"loading", "encoding", "writing", "checking"};

struct progress {
    bool tty;
    int stage, pct;
};

/* On a terminal one line redrawn in place; elsewhere one line per stage. */
static void progress_fn(enum trit_convert_stage stage, float fraction, void *user) {
    struct progress *p = user;
    int pct = (int)(fraction * 100.0f);
    if ((int)stage == p->stage && (pct == p->pct || !p->tty)) return;
    if (p->tty) {
        fprintf(stderr, "\rconvert: %-8s %3d%%", STAGE_NAMES[stage], pct);
    } else {
        fprintf(stderr, "convert: %s\n", STAGE_NAMES[stage]);
    }
    fflush(stderr);
    p->stage = (int)stage;
    p->pct = pct;
}

int cmd_convert(int argc, char **argv) {
    struct trit_convert_params params = trit_convert_default_params();
    const char *src = NULL, *dst = NULL;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!v) return tool_fail("convert", "%s needs a path", a) + 1;
            dst = v;
            i++;
        } else if (!strcmp(a, "--weights")) {
            if (v && !strcmp(v, "tq2_0")) params.weights = TRIT_CONVERT_TQ2_0;
            else if (v && !strcmp(v, "tq1_0")) params.weights = TRIT_CONVERT_TQ1_0;
            else return tool_fail("convert", "--weights takes tq2_0 or tq1_0") + 1;
            i++;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!v) return tool_fail("convert", "%s needs a path", a) + 1;
            params.tokenizer = v;
            i++;
        } else if (!strcmp(a, "--no-tokenizer")) {
            params.no_tokenizer = true;
        } else if (!strcmp(a, "--no-check")) {
            params.check = false;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else if (a[0] == '-' && a[1]) {
            usage(stderr);
            return tool_fail("convert", "unknown option '%s'", a) + 1;
        } else if (!src) {
            src = a;
        } else {
            return tool_fail("convert", "one source only (got '%s' and '%s')", src, a) + 1;
        }
    }
    if (!src || !dst) {
        usage(stderr);
        return tool_fail("convert", "give a source and -o OUT.gguf") + 1;
    }
    if (params.tokenizer && params.no_tokenizer) return tool_fail("convert", "--tokenizer and --no-tokenizer exclude each other") + 1;

    struct progress p = {.tty = isatty(2) != 0, .stage = -1, .pct = -1};
    if (!quiet) {
        params.progress = progress_fn;
        params.progress_user = &p;
    }
    double t0 = tool_now_ms();
    struct trit_convert_report r;
    enum trit_status st = trit_convert(src, dst, &params, &r);
    if (!quiet && p.tty && p.stage >= 0) fputc('\n', stderr);
    if (st != TRIT_OK) return tool_fail_status("convert", st, src);
    char f16[96] = "", f32[96] = "", packing[32];
    if (r.n_ternary_f16)
        snprintf(f16, sizeof f16, " (%lld as F16: rows not a multiple of 256)", (long long)r.n_ternary_f16);
    if (r.n_ternary_f32)
        snprintf(f32, sizeof f32, " (%lld as F32 values: Q2_0 cannot hold them exactly)", (long long)r.n_ternary_f32);
    if (r.q2_0_group) snprintf(packing, sizeof packing, "Q2_0 in blocks of %lld", (long long)r.q2_0_group);
    else snprintf(packing, sizeof packing, "%s", params.weights == TRIT_CONVERT_TQ1_0 ? "TQ1_0" : "TQ2_0");
    fprintf(stderr, "trit convert: wrote %s: %s, %lld tensors, %lld ternary as %s%s%s, %.1f MiB, tokenizer %s%s, %s, %.1f s\n",
            dst, r.arch, (long long)r.n_tensors, (long long)r.n_ternary, packing, f16, f32, (double)r.file_bytes / (1024.0 * 1024.0),
            r.has_tokenizer ? "yes" : "no", r.permuted_qk ? ", Q/K rows permuted for llama's RoPE" : "",
            r.checked ? "checked: identical to the source" : "not checked", (tool_now_ms() - t0) / 1000.0);
    return 0;
}
