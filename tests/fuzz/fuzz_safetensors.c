/*
 * fuzz_safetensors.c: libFuzzer target for the safetensors reader (host/io/safetensors.c).
 * Parses the input from memory, then walks every tensor: each lookup must find it again, its
 * bytes must lie inside the input (every byte is read, so ASan sees any escape), and its size must
 * agree with dtype and shape.
 *
 *   CC=clang cmake -S . -B build-fuzz -DTRIT_FUZZ=ON -DTRIT_CUDA=OFF && cmake --build build-fuzz -j2
 *   build-fuzz/tests/fuzz/fuzz_safetensors -max_total_time=60 /tmp/st-work tests/fuzz/corpus/safetensors
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct st_file f;
    if (st_open_memory(data, size, &f) != TRIT_OK) return 0;
    volatile uint8_t sink = 0;
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const struct st_tensor *t = &f.tensors[i];
        if (st_find(&f, t->name) != t) __builtin_trap();
        if (t->data < f.data || t->n_bytes > size || t->data + t->n_bytes > data + size) __builtin_trap();
        if (t->n_bytes != (uint64_t)t->n_elements * (uint64_t)st_dtype_size(t->dtype)) __builtin_trap();
        if (t->n_dims < 0 || t->n_dims > ST_MAX_DIMS) __builtin_trap();
        for (uint64_t j = 0; j < t->n_bytes; j++) sink ^= t->data[j];
    }
    for (int64_t i = 0; i < f.n_meta; i++) {
        if (strcmp(st_meta_find(&f, f.meta[i].key), f.meta[i].value) != 0) __builtin_trap();
    }
    (void)sink;
    st_close(&f);
    return 0;
}
