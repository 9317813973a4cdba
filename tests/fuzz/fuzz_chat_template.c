/*
 * fuzz_chat_template.c: libFuzzer target for the chat-template interpreter (host/chat/template.c).
 * A model file brings its own template (GGUF tokenizer.chat_template, tokenizer_config.json), so
 * the template text is hostile input. Each input is a template, rendered over a fixed conversation
 * with and without the generation prompt. Checked, trapping on failure:
 *   - a status other than TRIT_OK leaves *out NULL and sets a message;
 *   - TRIT_OK gives a NUL-terminated string;
 *   - a template without tags renders to itself (trim_blocks drops nothing there).
 * Crashes, stack overflows, leaks and sanitizer reports are failures too; -timeout catches a
 * rendering that does not end.
 *
 *   CC=clang cmake -S . -B build-fuzz -DTRIT_FUZZ=ON -DTRIT_CUDA=OFF && cmake --build build-fuzz -j2
 *   build-fuzz/tests/fuzz/fuzz_chat_template -max_total_time=60 /tmp/tmpl-work tests/fuzz/corpus/chat_template
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"

#define CHECK(cond)                                                                                   \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            fprintf(stderr, "fuzz_chat_template: check failed: %s (line %d); last error: %s\n", #cond, \
                    __LINE__, trit_last_error());                                                     \
            __builtin_trap();                                                                         \
        }                                                                                             \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct trit_chat_message msgs[] = {
    {"system", "Be brief."},
    {"user", "  Hello {{ there }} {% if %}\n"},
    {"assistant", "Hi."},
    {"user", "Who was Moses?"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The interpreter takes a C string: the bytes up to the first NUL. */
    char *tmpl = malloc(size + 1);
    if (!tmpl) return 0;
    if (size) memcpy(tmpl, data, size);
    tmpl[size] = '\0';
    for (int gen = 0; gen < 2; gen++) {
        struct trit_chat_vars v = {msgs, sizeof msgs / sizeof msgs[0], "<s>", "</s>", gen == 1};
        char *out = (char *)1; /* must be overwritten */
        enum trit_status st = trit_chat_render(tmpl, &v, &out);
        if (st != TRIT_OK) {
            CHECK(out == NULL);
            CHECK(trit_last_error()[0] != '\0');
            continue;
        }
        CHECK(out != NULL);
        if (!strchr(tmpl, '{')) CHECK(strcmp(out, tmpl) == 0);
        free(out);
    }
    free(tmpl);
    return 0;
}
