/*
 * trit.c: the `trit` command. One program; subcommands live in tools/cmd_<name>.c.
 *
 *   trit --help
 *   trit run -p "In the beginning" -n 64
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "trit.h"

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    {"run", cmd_run, "generate text from a prompt"},
    {"chat", cmd_chat, "talk with the model (its chat template, the conversation kept in the KV cache)"},
    {"perplexity", cmd_perplexity, "perplexity of a text file (llama.cpp's method)"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server with continuous batching (docs/serve.md)"},
    {"bench", cmd_bench, "prompt and generation speed, llama-bench style (also on synthetic models)"},
    {"logits", cmd_logits, "write the logits of token ids as a .npy file"},
    {"embed", cmd_embed, "sentence embeddings (last token, final norm, L2-normalized) as .npy or JSON lines"},
    {"tokenize", cmd_tokenize, "text to token ids (one prompt, or JSON lines)"},
    {"inspect", cmd_inspect, "what a GGUF file or HF folder holds, and whether trit runs it"},
    {"convert", cmd_convert, "any model trit reads to a GGUF in trit's layout"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: trit <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "  %-12s %s\n", "version", "print the version and build features");
    fprintf(out, "\nRun `trit <command> --help` for the options of a command.\n");
}

/* Every way out of a command passes here: what it wrote to stdout must have reached it, through
 * the last flush and the close (a full disk, a closed pipe, a quota show there at the latest), or
 * the exit status says so even when the command itself succeeded. A command that failed has said
 * why already (perhaps that very write): its status stands, with no second message. */
static int finish(const char *cmd, int rc) {
    if (rc != 0) return rc;
    errno = 0; /* whatever the command left there is not the reason of a lost write */
    int failed = tool_stdout_check(cmd);
    if (!failed && fclose(stdout) != 0) {
        tool_fail(cmd, "writing the output: %s", strerror(errno));
        failed = -1;
    }
    return failed ? 1 : 0;
}

/* The three standard descriptors, made safe before anything is opened. One that was closed
 * (`2>&-`) would otherwise be the next file opened, and an output file would receive the status
 * lines meant for stderr: each closed one is given /dev/null, opened for the direction it is not
 * used in, so that writing to a closed stdout still fails (EBADF) and is reported, and reading a
 * closed stdin still fails. SIGXFSZ is ignored so that a write past `ulimit -f` fails with EFBIG,
 * which the output-file code handles (its temporary is removed), instead of killing trit. */
static void standard_fds(void) {
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        const int nul = open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY);
        if (nul >= 0 && nul != fd) {
            dup2(nul, fd);
            close(nul);
        }
    }
    signal(SIGXFSZ, SIG_IGN);
}

int main(int argc, char **argv) {
    standard_fds();
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return finish("", argc < 2 ? 2 : 0);
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("trit %s (CUDA backend: %s, %d device%s)\n", trit_version(), trit_cuda_compiled() ? "yes" : "no",
               trit_cuda_device_count(), trit_cuda_device_count() == 1 ? "" : "s");
        return finish("version", 0);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return finish(commands[i].name, commands[i].fn(argc - 1, argv + 1));
    fprintf(stderr, "trit: unknown command '%s' (see trit --help)\n", argv[1]);
    return 2;
}
