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
#include "core/core.h"

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
    /* The output first: /dev/null, a folder or a FIFO is refused before the model loads. */
    struct trit_out out;
    enum trit_status st = trit_out_open(out_path, &out);
    if (st == TRIT_OK) st = trit_out_check_input(&out, tool_model_path(&so));
    if (st != TRIT_OK) {
        free(ids);
        return tool_fail_status("logits", st, "output");
    }
    struct tool_session s;
    if (tool_session_open(&s, &so, TOOL_LOGITS_ALL | TOOL_NO_TOKENIZER, "logits")) {
        trit_out_abort(&out);
        free(ids);
        return 1;
    }
    int rc = 0;
    const float *logits;
    st = trit_decode(s.ctx, ids, (int32_t)n, &logits);
    if (st != TRIT_OK) rc = tool_fail_status("logits", st, "decode");
    else if ((st = tool_write_npy_f32(&out, logits, n, trit_model_n_vocab(s.model))) != TRIT_OK)
        rc = tool_fail_status("logits", st, "output");
    else
        fprintf(stderr, "wrote %s: float32 [%ld, %d]\n", out_path, n, trit_model_n_vocab(s.model));
    trit_out_abort(&out); /* after a decode failure; nothing after a commit */
    tool_session_close(&s);
    free(ids);
    return rc;
}
