/*
 * pb_writer.h: a protobuf wire-format writer, to build SentencePiece tokenizer.model files
 * (sentencepiece_model.proto) in tests/test_tokenizer_spm_model.c and in the seed generator of
 * tests/fuzz/fuzz_spm_model.c. Varint, fixed32/64 and length-delimited fields, nested messages by
 * writing the inner one first. Static inline functions; aborts when out of memory.
 */
#ifndef TRIT_TEST_PB_WRITER_H
#define TRIT_TEST_PB_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PB_W_VARINT = 0, PB_W_I64 = 1, PB_W_LEN = 2, PB_W_I32 = 5 };

/* A growing byte buffer; zero-initialize, free(p) when done. */
struct pb {
    uint8_t *p;
    size_t n, cap;
};

static inline void pb_raw(struct pb *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            fprintf(stderr, "pb_writer: out of memory\n");
            abort();
        }
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}

static inline void pb_varint(struct pb *b, uint64_t v) {
    do {
        uint8_t byte = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        pb_raw(b, &byte, 1);
        v >>= 7;
    } while (v);
}

static inline void pb_tag(struct pb *b, uint32_t num, int wire) { pb_varint(b, (uint64_t)num << 3 | (uint64_t)wire); }

static inline void pb_uint(struct pb *b, uint32_t num, uint64_t v) {
    pb_tag(b, num, PB_W_VARINT);
    pb_varint(b, v);
}

/* proto int32: negatives are sign-extended to 64 bits, so they take 10 bytes */
static inline void pb_int32(struct pb *b, uint32_t num, int32_t v) { pb_uint(b, num, (uint64_t)(int64_t)v); }

static inline void pb_bytes(struct pb *b, uint32_t num, const void *data, size_t n) {
    pb_tag(b, num, PB_W_LEN);
    pb_varint(b, n);
    pb_raw(b, data, n);
}

static inline void pb_str(struct pb *b, uint32_t num, const char *s) { pb_bytes(b, num, s, strlen(s)); }

/* Writes message m as field num of b, and empties m for reuse. */
static inline void pb_msg(struct pb *b, uint32_t num, struct pb *m) {
    pb_bytes(b, num, m->p, m->n);
    free(m->p);
    *m = (struct pb){0};
}

/* A fixed32 (n_bytes 4) or fixed64 (8) field, little-endian. */
static inline void pb_fixed(struct pb *b, uint32_t num, uint64_t v, int n_bytes) {
    pb_tag(b, num, n_bytes == 4 ? PB_W_I32 : PB_W_I64);
    for (int i = 0; i < n_bytes; i++) {
        uint8_t byte = (uint8_t)(v >> (8 * i));
        pb_raw(b, &byte, 1);
    }
}

static inline void pb_float(struct pb *b, uint32_t num, float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    pb_fixed(b, num, u, 4);
}

/* Fields no version of the schema has: one of each wire type, and the largest field number. */
static inline void pb_unknown(struct pb *b) {
    pb_uint(b, 1000, 300);
    pb_fixed(b, 1001, 0x0123456789abcdefull, 8);
    pb_str(b, 1002, "not a field trit reads");
    pb_fixed(b, 1003, 0xdeadbeef, 4);
    pb_uint(b, (1u << 29) - 1, UINT64_MAX);
}

/* One ModelProto.pieces entry: SentencePiece {1 piece, 2 score, 3 type (left out when NORMAL, 1)}. */
static inline void pb_spm_piece(struct pb *model, const void *text, size_t len, float score, int type,
                                bool unknown) {
    struct pb m = {0};
    if (unknown) pb_unknown(&m);
    pb_bytes(&m, 1, text, len);
    pb_float(&m, 2, score);
    if (type != 1) pb_uint(&m, 3, (uint64_t)type);
    pb_msg(model, 1, &m);
}

#endif /* TRIT_TEST_PB_WRITER_H */
