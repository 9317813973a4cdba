/*
 * make_tiny_model.c: writes one tiny Hugging Face model folder (tests/tiny_model.h) for the CLI
 * tests of tests/ctest_tools.cmake, which have no other way to make binary fixtures.
 *
 *   make_tiny_model autobitlinear|bitlinear-llama|float-1bitllm|qwen3-grouped DIR [SEED]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiny_model.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: make_tiny_model autobitlinear|bitlinear-llama|float-1bitllm|qwen3-grouped DIR [SEED]\n");
        return 2;
    }
    enum tiny_kind kind;
    if (!strcmp(argv[1], "autobitlinear")) kind = TINY_HF_AUTOBITLINEAR;
    else if (!strcmp(argv[1], "bitlinear-llama")) kind = TINY_HF_BITLINEAR_LLAMA;
    else if (!strcmp(argv[1], "float-1bitllm")) kind = TINY_HF_FLOAT_1BITLLM;
    else if (!strcmp(argv[1], "qwen3-grouped")) kind = TINY_HF_QWEN3_GROUPED;
    else {
        fprintf(stderr, "make_tiny_model: unknown kind '%s'\n", argv[1]);
        return 2;
    }
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    struct tiny_model m;
    bool ok = tiny_model_init(&m, kind, 256, 512, 2, seed) && tiny_write_hf(&m, argv[2], true);
    tiny_model_free(&m);
    if (!ok) {
        fprintf(stderr, "make_tiny_model: could not write '%s'\n", argv[2]);
        return 1;
    }
    return 0;
}
