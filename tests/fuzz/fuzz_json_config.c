/*
 * fuzz_json_config.c: libFuzzer target for config.json reading: the input is the file's text, fed
 * through hf_config_parse and then the json.h getters for every key a BitNet / Llama config has,
 * exactly as the model loader reads them. The same bytes also go through the tokenizer_config.json
 * reader. Any status is fine; a crash, a leak or a sanitizer report is not.
 *
 * cJSON comes from the system and is not instrumented, so ASan cannot see it read past the text.
 * The text is therefore copied to the end of a mapping followed by a PROT_NONE page: a read of
 * even one byte past it faults (the text is not NUL-terminated, as a mapped file would not be).
 *
 *   CC=clang cmake -S . -B build-fuzz -DTRIT_FUZZ=ON -DTRIT_CUDA=OFF && cmake --build build-fuzz -j2
 *   build-fuzz/tests/fuzz/fuzz_json_config -max_total_time=60 /tmp/json-work tests/fuzz/corpus/json_config
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/hf.h"
#include "io/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const int_keys[] = {
    "hidden_size",         "intermediate_size", "num_hidden_layers",       "num_attention_heads",
    "num_key_value_heads", "vocab_size",        "max_position_embeddings", "head_dim",
    "bos_token_id",        "eos_token_id",      "eos_token_id[1]",
};
static const char *const float_keys[] = {"rms_norm_eps", "rope_theta", "rope_scaling.factor"};
static const char *const str_keys[] = {
    "hidden_act", "quantization_config.linear_class", "quantization_config.quantization_mode",
    "quantization_config.quant_method", "architectures[0]", "model_type", "torch_dtype", "rope_scaling.rope_type",
};
static const char *const bool_keys[] = {"tie_word_embeddings", "attention_bias", "quantization_config.use_rms_norm"};

/* size bytes of data placed flush against a guard page; *map, *map_bytes: the mapping to unmap. */
static char *guarded_copy(const uint8_t *data, size_t size, char **map_out, size_t *map_bytes) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (size + page - 1) / page * page;
    *map_bytes = body + page;
    char *map = mmap(NULL, *map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) __builtin_trap();
    if (mprotect(map + body, page, PROT_NONE) != 0) __builtin_trap();
    char *text = map + body - size;
    if (size) memcpy(text, data, size);
    *map_out = map;
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *map;
    size_t map_bytes;
    const char *text = guarded_copy(data, size, &map, &map_bytes);
    struct json_doc doc;
    if (hf_config_parse(text, size, "config.json", &doc) == TRIT_OK) {
        int64_t v;
        double x;
        bool b;
        const char *s;
        for (size_t i = 0; i < sizeof int_keys / sizeof int_keys[0]; i++) {
            if (json_get_int(&doc, int_keys[i], 0, 1, INT32_MAX, &v) == TRIT_OK && (v < 0 || v > INT32_MAX))
                __builtin_trap();
            (void)json_require(&doc, int_keys[i]);
        }
        for (size_t i = 0; i < sizeof float_keys / sizeof float_keys[0]; i++) {
            if (json_get_float(&doc, float_keys[i], 1.0, &x) == TRIT_OK && !(x == x)) __builtin_trap();
        }
        for (size_t i = 0; i < sizeof str_keys / sizeof str_keys[0]; i++) {
            if (json_get_str(&doc, str_keys[i], "", &s) == TRIT_OK && s == NULL) __builtin_trap();
            else if (s) (void)strlen(s);
        }
        for (size_t i = 0; i < sizeof bool_keys / sizeof bool_keys[0]; i++)
            (void)json_get_bool(&doc, bool_keys[i], false, &b);
        json_doc_free(&doc);
    }
    struct hf_tokenizer_config tc;
    if (hf_tokenizer_config_parse(text, size, "tokenizer_config.json", &tc) == TRIT_OK) {
        if (tc.chat_template) (void)strlen(tc.chat_template);
        hf_tokenizer_config_free(&tc);
    }
    munmap(map, map_bytes);
    return 0;
}
