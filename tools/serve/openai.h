/*
 * openai.h: the OpenAI HTTP shapes of `trit serve`: request bodies of POST /v1/completions and
 * POST /v1/chat/completions parsed and range-checked into struct serve_params, those of
 * POST /v1/embeddings into struct serve_embed_params, and the response objects, stream chunks and
 * errors written as JSON (docs/serve.md lists every field). Pure: cJSON in and out, no threads; the
 * tokenizer is only read (token texts of logprobs).
 */
#ifndef TRIT_SERVE_OPENAI_H
#define TRIT_SERVE_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stop.h"
#include "trit.h"
#include "util.h"

enum serve_kind { SERVE_COMPLETION = 0, SERVE_CHAT = 1 };

#define SERVE_MAX_TOP_LOGPROBS 20       /* chat's top_logprobs; completions' logprobs go to 5 */
#define SERVE_MAX_MESSAGES 4096         /* messages of one chat request */
#define SERVE_MAX_EMBED_INPUTS 2048     /* inputs of one embeddings request (OpenAI's own bound) */

/* An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}. */
struct serve_error {
    int http;          /* 400, 401, 404, 405, 413, 429, 500, 503 */
    const char *type;  /* "invalid_request_error", "authentication_error", ... (static) */
    const char *code;  /* "model_not_found", "invalid_api_key", ... or NULL (static) */
    char param[64];    /* the request field at fault; "" for none (JSON null) */
    char message[512];
};
/* Fills *e; returns -1 (for `return serve_error_set(...)`). param may be NULL. */
int serve_error_set(struct serve_error *e, int http, const char *type, const char *param, const char *code,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The error object, one line. */
int serve_json_error(const struct serve_error *e, struct sv_buf *out);

/* What a request may ask for, from the server's configuration. */
struct serve_limits {
    const char *model_name; /* the one model served: another name is 404 model_not_found */
    int32_t n_vocab;        /* token ids of a prompt are 0 .. n_vocab - 1 */
    int32_t n_ctx;          /* the longest sequence: prompt arrays longer than this are refused unread */
    int32_t n_seq;          /* the most choices (n) */
    int32_t dim;            /* embeddings' length: 'dimensions' must be this (0: not checked) */
};

struct serve_message {
    char *role; /* system, user or assistant (developer is read as system) */
    char *content;
};

struct serve_params {
    enum serve_kind kind;
    char *model; /* NULL when absent */
    /* The prompt: completions give prompt_text or prompt_ids; chat gives messages. */
    char *prompt_text;
    size_t prompt_len;
    int32_t *prompt_ids;
    int32_t n_prompt_ids;
    bool has_prompt_ids;
    struct serve_message *messages;
    size_t n_messages;
    /* Generation. max_tokens 0: up to the context. */
    int32_t max_tokens;
    float temperature, top_p, min_p, repeat_penalty; /* OpenAI's defaults: 1, 1, 0, 1 */
    int32_t top_k;                                   /* 0 = off */
    bool has_seed;
    uint64_t seed;
    int32_t n;
    char *stop[SERVE_MAX_STOP];
    int n_stop;
    bool ignore_eos;
    /* Output. logprobs: the chosen token's log-probability; top_logprobs more (0..5 for
     * completions, 0..20 for chat). */
    bool logprobs;
    int32_t top_logprobs;
    bool stream, include_usage, return_token_ids;
};
/* Parses the body of a completion request (kind) into *p (zeroed first; free with
 * serve_params_free, also after a failure). Returns 0, or -1 with *e saying why (400, or 404 for
 * another model). */
int serve_params_parse(enum serve_kind kind, const char *body, size_t len, const struct serve_limits *lim,
                       struct serve_params *p, struct serve_error *e);
void serve_params_free(struct serve_params *p);

/* A POST /v1/embeddings body: `input` is texts or token-id lists (never both), one per vector. */
struct serve_embed_params {
    char *model;     /* NULL when absent */
    int32_t n_input; /* 1 .. SERVE_MAX_EMBED_INPUTS */
    bool has_ids;    /* ids, else texts */
    char **texts;    /* [n_input] each non-empty, NUL-terminated (JSON strings hold no NUL here: cJSON stops there) */
    int32_t **ids;   /* [n_input] each 1 .. n_ctx ids from 0 .. n_vocab - 1 */
    int32_t *n_ids;  /* [n_input] */
    bool base64;     /* encoding_format "base64": little-endian float32 bytes; else "float" */
};
/* Parses an embeddings body into *p (zeroed first; free with serve_embed_params_free, also after a
 * failure). input: a string, a list of strings, a list of token ids, or a list of lists of token ids.
 * Returns 0, or -1 with *e saying why (400, or 404 for another model). */
int serve_embed_parse(const char *body, size_t len, const struct serve_limits *lim, struct serve_embed_params *p,
                      struct serve_error *e);
void serve_embed_params_free(struct serve_embed_params *p);

/* ---- responses --------------------------------------------------------------------------------- */

struct serve_logprob {
    int32_t id;
    float logprob;
    int32_t n_top;
    int32_t top_id[SERVE_MAX_TOP_LOGPROBS];
    float top_logprob[SERVE_MAX_TOP_LOGPROBS];
};

/* One choice's output: all of it (a whole response) or what is new since its last chunk. */
struct serve_piece {
    int32_t index;
    const char *text; /* valid UTF-8 */
    size_t n_text;
    const int32_t *ids; /* its tokens (token_ids, with return_token_ids) */
    size_t n_ids;
    const struct serve_logprob *lps; /* [n_ids] when logprobs were asked for, else NULL */
    size_t text_offset;              /* completions' logprobs.text_offset of the first token */
    const char *finish_reason;       /* "stop", "length", or NULL while it runs */
};

struct serve_resp {
    enum serve_kind kind;
    const char *id; /* "chatcmpl-..." / "cmpl-..." */
    int64_t created;
    const char *model;
    const trit_tokenizer *tok; /* the texts of logprobs' tokens; NULL: "" */
    bool logprobs;
    bool token_ids;
};

/* The whole response object (stream false), with usage. */
int serve_json_response(const struct serve_resp *r, const struct serve_piece *choices, int n_choices,
                        int64_t prompt_tokens, int64_t completion_tokens, struct sv_buf *out);
/* One server-sent event "data: {chunk}\n\n" for one choice. Chat: with role, the delta carries
 * "role":"assistant" (a choice's first chunk); a piece with a finish_reason and no text is the
 * final chunk (empty delta). */
int serve_sse_chunk(const struct serve_resp *r, const struct serve_piece *c, bool role, struct sv_buf *out);
/* The usage chunk (stream_options.include_usage): no choices, the usage object. */
int serve_sse_usage(const struct serve_resp *r, int64_t prompt_tokens, int64_t completion_tokens, struct sv_buf *out);
/* "data: [DONE]\n\n". */
int serve_sse_done(struct sv_buf *out);
/* A server-sent event carrying an error object (a failure after the stream began). */
int serve_sse_error(const struct serve_error *e, struct sv_buf *out);

/* The embeddings answer: {"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
 * "model", "usage": {"prompt_tokens", "total_tokens"}}. vecs: [n][dim], every value finite. Floats as
 * %.9g (which gives every float32 back exactly), or with base64 each vector's dim floats as
 * little-endian bytes in base64 (RFC 4648, padded). */
int serve_json_embeddings(const char *model, const float *vecs, int32_t n, int32_t dim, bool base64,
                          int64_t prompt_tokens, struct sv_buf *out);

/* GET /v1/models and /v1/models/{id}. */
int serve_json_models(const char *model, int64_t created, struct sv_buf *out);
int serve_json_model(const char *model, int64_t created, struct sv_buf *out);

#endif /* TRIT_SERVE_OPENAI_H */
