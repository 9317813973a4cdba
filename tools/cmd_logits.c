/*
 * cmd_logits.c: `trit logits`: run token ids through the model and write every position's
 * float32 logits, shape (n_tokens, n_vocab), as a .npy file that numpy.load reads.
 *
 *   trit logits -m model.gguf --ids 1,2,3 -o out.npy
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit logits [options] --ids 1,2,3 -o OUT.npy\n"
            "\n"
            "Writes float32 logits [n_tokens, n_vocab] (one row per input position) as .npy.\n"
            "\n"
            "  --ids LIST           comma-separated token ids, used as given (no BOS is added)\n"
            "  -o, --output PATH    the .npy file to write\n"
            "%s"
            "  (-b is ignored: the ids are one batch; -c defaults to their count)\n"
            "  -h, --help           this text\n",
            tool_opts_help);
}

/* NPY format 1.0: magic, version, u16 header length, a Python dict padded with spaces to a
 * multiple of 64 bytes and ended by '\n', then the raw little-endian data. */
static int write_npy(const char *path, const float *data, long rows, long cols) {
    char header[128];
    int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %ld), }", rows, cols);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned short hlen = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fwrite(header, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(data, sizeof(float), (size_t)(rows * cols), f);
    const int err = ferror(f); /* a short write (disk full) is seen here or by fclose's flush */
    return fclose(f) == 0 && !err ? 0 : -1;
}

int cmd_logits(int argc, char **argv) {
    struct tool_opts o;
    tool_opts_init(&o);
    const char *ids_arg = NULL, *out_path = NULL;
    for (int i = 1; i < argc;) {
        int r = tool_opts_parse(&o, NULL, argc, argv, &i, "logits", usage);
        if (r == TOOL_OPT_TAKEN) continue;
        if (r != TOOL_OPT_OWN) return r;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--ids")) {
            if (!v) return tool_fail("logits", "--ids needs a list") + 1;
            ids_arg = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!v) return tool_fail("logits", "%s needs a path", a) + 1;
            out_path = v;
        } else {
            usage(stderr);
            return tool_fail("logits", "unknown option '%s'", a) + 1;
        }
        i += 2;
    }
    if (!ids_arg || !out_path) {
        usage(stderr);
        return tool_fail("logits", "--ids and -o are required") + 1;
    }
    int32_t *ids;
    long n = tool_parse_ids(ids_arg, &ids);
    if (n <= 0) return tool_fail("logits", "--ids must be a comma-separated list of token ids") + 1;
    struct tool_opts so = o;
    so.batch = (int32_t)n;
    if (so.ctx == 0) so.ctx = (int32_t)n;
    struct tool_session s;
    if (tool_session_open(&s, &so, TOOL_LOGITS_ALL | TOOL_NO_TOKENIZER, "logits")) {
        free(ids);
        return 1;
    }
    int rc = 0;
    const float *logits;
    enum trit_status st = trit_decode(s.ctx, ids, (int32_t)n, &logits);
    if (st != TRIT_OK) rc = tool_fail_status("logits", st, "decode");
    else if (write_npy(out_path, logits, n, trit_model_n_vocab(s.model)) != 0)
        rc = tool_fail("logits", "cannot write '%s'", out_path);
    else
        fprintf(stderr, "wrote %s: float32 [%ld, %d]\n", out_path, n, trit_model_n_vocab(s.model));
    tool_session_close(&s);
    free(ids);
    return rc;
}
