/*
 * trit.c: the `trit` command. One program, subcommands dispatched by name.
 *
 *   trit --help
 *   trit version
 */
#include <stdio.h>
#include <string.h>

#include "trit.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit <command> [options]\n"
            "\n"
            "commands:\n"
            "  version      print the version and build features\n"
            "\n"
            "Run `trit <command> --help` for the options of a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("trit %s (CUDA backend: %s, %d device%s)\n", trit_version(),
               trit_cuda_compiled() ? "yes" : "no", trit_cuda_device_count(),
               trit_cuda_device_count() == 1 ? "" : "s");
        return 0;
    }
    fprintf(stderr, "trit: unknown command '%s' (see trit --help)\n", argv[1]);
    return 2;
}
