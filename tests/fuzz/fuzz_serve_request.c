/*
 * fuzz_serve_request.c: libFuzzer target for the request bodies of `trit serve`
 * (tools/serve/openai.c): the first byte picks the endpoint (bit 1 set: /v1/embeddings; else even:
 * /v1/completions, odd: /v1/chat/completions), the rest is the body, parsed as the server parses it.
 * An embeddings body that parses must hold 1 .. 2048 inputs, non-empty texts or ids in range, and its
 * answer (over made-up vectors, floats or base64) must be JSON. A body that parses
 * must hold only values in their ranges; its prompt text then goes through the stop matcher with its
 * stop strings (in two pieces, cut where the second byte says) and into a response, and a refused
 * one into its error object, all of which must be JSON that cJSON reads back. Any refusal is fine;
 * a crash, a leak or a sanitizer report is not.
 *
 * cJSON is not instrumented: the body sits flush against a PROT_NONE page, so that a read past it
 * faults (as in fuzz_json_config.c).
 *
 *   CC=clang cmake -S . -B build-fuzz -DTRIT_FUZZ=ON -DTRIT_CUDA=OFF && cmake --build build-fuzz -j2
 *   build-fuzz/tests/fuzz/fuzz_serve_request -max_total_time=60 /tmp/serve-work tests/fuzz/corpus/serve_request
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "serve/openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct serve_limits LIM = {"trit-kjv-4m.gguf", 4096, 256, 8, 4};

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

/* The JSON in b must read back. */
static void check_json(const struct sv_buf *b, size_t skip) {
    if (b->failed || b->n < skip) __builtin_trap();
    cJSON *j = cJSON_ParseWithLength(b->p + skip, b->n - skip);
    if (!j) __builtin_trap();
    cJSON_Delete(j);
}

static void check_ranges(const struct serve_params *p) {
    if (!(p->temperature >= 0.0f && p->temperature <= 2.0f) || !(p->top_p > 0.0f && p->top_p <= 1.0f) ||
        !(p->min_p >= 0.0f && p->min_p <= 1.0f) || !(p->repeat_penalty > 0.0f) || p->top_k < 0 || p->n < 1 ||
        p->n > LIM.n_seq || p->max_tokens < 0 || p->n_stop < 0 || p->n_stop > SERVE_MAX_STOP || p->top_logprobs < 0 ||
        p->top_logprobs > SERVE_MAX_TOP_LOGPROBS)
        __builtin_trap();
    for (int i = 0; i < p->n_stop; i++) {
        const size_t n = strlen(p->stop[i]);
        if (n == 0 || n > SERVE_MAX_STOP_BYTES || !sv_utf8_valid(p->stop[i], n)) __builtin_trap();
    }
    if (p->kind == SERVE_COMPLETION) {
        if (!p->has_prompt_ids && !p->prompt_text) __builtin_trap();
        if (p->has_prompt_ids && (p->n_prompt_ids < 1 || p->n_prompt_ids > LIM.n_ctx)) __builtin_trap();
        for (int32_t i = 0; i < p->n_prompt_ids; i++)
            if (p->prompt_ids[i] < 0 || p->prompt_ids[i] >= LIM.n_vocab) __builtin_trap();
    } else {
        if (p->n_messages < 1 || p->n_messages > SERVE_MAX_MESSAGES) __builtin_trap();
        for (size_t i = 0; i < p->n_messages; i++)
            if (!p->messages[i].content || (strcmp(p->messages[i].role, "system") && strcmp(p->messages[i].role, "user") &&
                                            strcmp(p->messages[i].role, "assistant")))
                __builtin_trap();
    }
}

/* /v1/embeddings: the parsed inputs in their ranges, the answer and errors JSON. */
static void embeddings(const char *body, size_t len) {
    struct serve_embed_params p;
    struct serve_error e;
    struct sv_buf b = {0};
    if (serve_embed_parse(body, len, &LIM, &p, &e) == 0) {
        if (p.n_input < 1 || p.n_input > SERVE_MAX_EMBED_INPUTS || (p.has_ids ? !p.ids || p.texts : !p.texts || p.ids))
            __builtin_trap();
        for (int32_t i = 0; i < p.n_input; i++) {
            if (!p.has_ids && !p.texts[i][0]) __builtin_trap();
            if (p.has_ids && (p.n_ids[i] < 1 || p.n_ids[i] > LIM.n_ctx)) __builtin_trap();
            for (int32_t k = 0; p.has_ids && k < p.n_ids[i]; k++)
                if (p.ids[i][k] < 0 || p.ids[i][k] >= LIM.n_vocab) __builtin_trap();
        }
        static const float v[4] = {-0.0f, 1e-45f, 3.4028235e38f, 0.5f};
        serve_json_embeddings("m", v, 1, LIM.dim, p.base64, 3, &b);
    } else {
        if (e.http < 400 || e.http > 599) __builtin_trap();
        serve_json_error(&e, &b);
    }
    check_json(&b, 0);
    serve_embed_params_free(&p);
    sv_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    if (data[0] & 2) {
        char *map;
        size_t map_bytes;
        embeddings(guarded_copy(data + 2, size - 2, &map, &map_bytes), size - 2);
        munmap(map, map_bytes);
        return 0;
    }
    const enum serve_kind kind = (data[0] & 1) ? SERVE_CHAT : SERVE_COMPLETION;
    const size_t cut_at = data[1];
    char *map;
    size_t map_bytes;
    const char *body = guarded_copy(data + 2, size - 2, &map, &map_bytes);
    struct serve_params p;
    struct serve_error e;
    struct sv_buf b = {0};
    if (serve_params_parse(kind, body, size - 2, &LIM, &p, &e) == 0) {
        check_ranges(&p);
        /* the prompt's text (or the last message) as if the model had written it */
        const char *text = p.prompt_text ? p.prompt_text : p.n_messages ? p.messages[p.n_messages - 1].content : "";
        const size_t n = strlen(text), cut = cut_at < n ? cut_at : n;
        struct serve_stop st;
        serve_stop_init(&st, (const char *const *)p.stop, p.n_stop);
        struct sv_buf out = {0};
        sv_buf_add(&out, "", 0);
        if (serve_stop_feed(&st, text, cut, &out) == 0 && serve_stop_feed(&st, text + cut, n - cut, &out) == 0)
            serve_stop_flush(&st, &out);
        if (out.n > n || memcmp(out.p, text, out.n) != 0) __builtin_trap(); /* always a prefix */
        /* a response holds valid UTF-8 only: the lossy copy stands in for the streaming decoder */
        struct sv_buf clean = {0};
        sv_buf_add_utf8_lossy(&clean, out.p, out.n);
        const struct serve_resp r = {kind, "id", 1, "m", NULL, false, p.return_token_ids};
        const struct serve_piece piece = {0, clean.p ? clean.p : "", clean.n, p.prompt_ids, (size_t)p.n_prompt_ids,
                                          NULL, 0, "stop"};
        serve_json_response(&r, &piece, 1, 1, 1, &b);
        check_json(&b, 0);
        sv_buf_free(&clean);
        sv_buf_free(&out);
        serve_stop_free(&st);
    } else {
        if (e.http < 400 || e.http > 599) __builtin_trap();
        serve_json_error(&e, &b);
        check_json(&b, 0);
    }
    serve_params_free(&p);
    sv_buf_free(&b);
    munmap(map, map_bytes);
    return 0;
}
