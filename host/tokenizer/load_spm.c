/*
 * load_spm.c: a SentencePiece BPE tokenizer from a `tokenizer.model` file (the protobuf ModelProto
 * of sentencepiece_model.proto), with the Hugging Face added_tokens.json and tokenizer_config.json
 * that sit beside it. This is what 1bitLLM bitnet_b1_58-* folders ship: Llama's 32000 pieces plus
 * {"<pad>": 32000, "</line>": 32001} (docs/formats.md section 3).
 *
 * Fields read (numbers from sentencepiece_model.proto; every other field is skipped):
 *   ModelProto      1 pieces (repeated SentencePiece)  2 trainer_spec  3 normalizer_spec
 *   SentencePiece   1 piece (string)  2 score (float)  3 type (NORMAL 1 .. BYTE 6, default NORMAL)
 *   TrainerSpec     3 model_type (UNIGRAM 1 default, BPE 2, WORD 3, CHAR 4)
 *                   24 treat_whitespace_as_suffix  35 byte_fallback
 *                   40 unk_id (0)  41 bos_id (1)  42 eos_id (2)  43 pad_id (-1); -1 means none
 *   NormalizerSpec  1 name  2 precompiled_charsmap  3 add_dummy_prefix (true)
 *                   4 remove_extra_whitespaces (true)  5 escape_whitespaces (true)
 * trit's SentencePiece algorithm is the BPE one (spm.c, llama.cpp's "llama" vocab) with no text
 * normalization, so TRIT_ERR_UNSUPPORTED names whatever would make SentencePiece tokenize
 * differently: a model_type other than BPE; a normalizer other than "identity" or a non-empty
 * charsmap; remove_extra_whitespaces, escape_whitespaces false or treat_whitespace_as_suffix;
 * byte_fallback false (trit falls back to <0xXX> pieces, SentencePiece to <unk>).
 *
 * added_tokens.json {"text": id}: each id continues the pieces (n_pieces, n_pieces + 1, ... with no
 * gap) or is an existing piece with the same text. Added tokens are user-defined (matched in text
 * first, as transformers does), except those that are the bos, eos, unk or pad token: control.
 * tokenizer_config.json: as for tokenizer.json (vocab_apply_tokenizer_config). Defaults as Llama:
 * add_bos on, add_eos off, add_space_prefix = add_dummy_prefix.
 *
 * The file is hostile input: every varint is at most 10 bytes and fits 64 bits, every length stays
 * inside its enclosing message, sub-messages are entered only where the schema nests them (depth
 * 2), piece count and piece length are capped, and texts are (pointer, length): no NUL is assumed,
 * and UTF-8 is not required to be valid.
 */
#include <math.h>
#include <string.h>

#include "io/hf.h"
#include "io/json.h"
#include "tokenizer/vocab.h"

/* As the other loaders: far above real vocabularies (the largest are ~256K). */
#define SPM_MAX_VOCAB (1 << 24)
/* A piece of 64 KiB is far beyond SentencePiece's max_sentencepiece_length (16 characters by
 * default; user-defined pieces are whole words). */
#define SPM_MAX_PIECE_BYTES (1u << 16)

/* ---- protobuf wire format --------------------------------------------------------------------- */

enum pb_wire { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

/* The bytes [p, end) of one message; base is the start of the file, for offsets in messages. */
struct pb_reader {
    const uint8_t *base, *p, *end;
};

/* One field as read: its number and wire type, and its value (an integer, or a byte range). */
struct pb_field {
    uint32_t num;
    enum pb_wire wire;
    uint64_t u;         /* VARINT, I64, I32 */
    struct pb_reader m; /* LEN: the payload, readable as a message */
    size_t off;         /* offset of the field's tag in the file */
};

static size_t pb_off(const struct pb_reader *r) { return (size_t)(r->p - r->base); }

static enum trit_status pb_varint(struct pb_reader *r, uint64_t *out) {
    size_t start = pb_off(r);
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p == r->end)
            return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: varint at byte %zu runs past the end of its message",
                              start);
        uint8_t b = *r->p++;
        if (i == 9 && b > 1)
            return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: varint at byte %zu is %s", start,
                              b & 0x80 ? "longer than 10 bytes" : "larger than 64 bits");
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) break;
    }
    *out = v;
    return TRIT_OK;
}

/* n little-endian bytes (4 or 8). */
static enum trit_status pb_fixed(struct pb_reader *r, int n, uint64_t *out) {
    if (r->end - r->p < n)
        return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: %d-byte value at byte %zu runs past the end of its "
                          "message", n, pb_off(r));
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | r->p[i];
    r->p += n;
    *out = v;
    return TRIT_OK;
}

/* Reads the next field of the message. Fields of every wire type are consumed whole, so an unknown
 * one is skipped by ignoring it. */
static enum trit_status pb_next(struct pb_reader *r, struct pb_field *f) {
    memset(f, 0, sizeof *f);
    f->off = pb_off(r);
    uint64_t tag;
    TRIT_TRY(pb_varint(r, &tag));
    if (tag >> 3 == 0 || tag >> 3 > 0x1FFFFFFF)
        return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: field number %llu at byte %zu is not valid",
                          (unsigned long long)(tag >> 3), f->off);
    f->num = (uint32_t)(tag >> 3);
    f->wire = (enum pb_wire)(tag & 7);
    switch ((int)(tag & 7)) {
    case PB_VARINT: return pb_varint(r, &f->u);
    case PB_I64: return pb_fixed(r, 8, &f->u);
    case PB_I32: return pb_fixed(r, 4, &f->u);
    case PB_LEN: {
        uint64_t len;
        TRIT_TRY(pb_varint(r, &len));
        if (len > (uint64_t)(r->end - r->p))
            return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: field %u at byte %zu has length %llu, past the end "
                              "of its message (%zu bytes left)", f->num, f->off, (unsigned long long)len,
                              (size_t)(r->end - r->p));
        f->m = (struct pb_reader){.base = r->base, .p = r->p, .end = r->p + len};
        r->p += len;
        return TRIT_OK;
    }
    default: /* 3, 4: groups (unused since proto2's early days, never in this schema); 6, 7: invalid */
        return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: field %u at byte %zu has wire type %d, which this "
                          "schema never uses", f->num, f->off, (int)(tag & 7));
    }
}

/* A known field must come with its schema's wire type. */
static enum trit_status pb_expect(const struct pb_field *f, enum pb_wire wire, const char *name) {
    if (f->wire == wire) return TRIT_OK;
    return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: %s (field %u) at byte %zu has wire type %d, expected %d",
                      name, f->num, f->off, (int)f->wire, (int)wire);
}

/* proto int32 as a varint: the low 32 bits, two's complement (negatives are sign-extended to 10
 * bytes on the wire). */
static int32_t pb_int32(uint64_t v) {
    uint32_t u = (uint32_t)v;
    return u <= INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* ---- ModelProto ------------------------------------------------------------------------------- */

/* What the file says besides the pieces, with the schema's defaults. */
struct spm_model {
    int32_t n_pieces;
    uint64_t model_type;
    bool byte_fallback, whitespace_suffix;
    int32_t unk_id, bos_id, eos_id, pad_id;
    const uint8_t *norm_name;
    size_t norm_name_len, charsmap_len;
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
};

struct spm_piece {
    const uint8_t *text;
    size_t len;
    float score;
    enum trit_token_type type;
};

static enum trit_status parse_piece(struct pb_reader r, size_t off, int32_t index, struct spm_piece *out) {
    *out = (struct spm_piece){.type = TRIT_TOKEN_NORMAL};
    bool have_text = false;
    struct pb_field f;
    while (r.p < r.end) {
        TRIT_TRY(pb_next(&r, &f));
        if (f.num == 1) {
            TRIT_TRY(pb_expect(&f, PB_LEN, "SentencePiece.piece"));
            out->text = f.m.p;
            out->len = (size_t)(f.m.end - f.m.p);
            have_text = true;
        } else if (f.num == 2) {
            TRIT_TRY(pb_expect(&f, PB_I32, "SentencePiece.score"));
            uint32_t bits = (uint32_t)f.u;
            memcpy(&out->score, &bits, sizeof bits);
        } else if (f.num == 3) {
            TRIT_TRY(pb_expect(&f, PB_VARINT, "SentencePiece.type"));
            if (f.u < TRIT_TOKEN_NORMAL || f.u > TRIT_TOKEN_BYTE)
                return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: piece %d has type %llu (known: 1 to 6)", index,
                                  (unsigned long long)f.u);
            out->type = (enum trit_token_type)f.u;
        }
    }
    if (!have_text || out->len == 0)
        return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: piece %d (at byte %zu) has no text", index, off);
    if (out->len > SPM_MAX_PIECE_BYTES)
        return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: piece %d is %zu bytes long (at most %u)", index, out->len,
                          SPM_MAX_PIECE_BYTES);
    if (!isfinite(out->score))
        return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: piece %d has a score that is not finite", index);
    return TRIT_OK;
}

static enum trit_status parse_trainer(struct pb_reader r, struct spm_model *m) {
    struct pb_field f;
    while (r.p < r.end) {
        TRIT_TRY(pb_next(&r, &f));
        int32_t *id = f.num == 40 ? &m->unk_id : f.num == 41 ? &m->bos_id : f.num == 42 ? &m->eos_id
                    : f.num == 43 ? &m->pad_id : NULL;
        if (id) {
            TRIT_TRY(pb_expect(&f, PB_VARINT, "TrainerSpec.{unk,bos,eos,pad}_id"));
            *id = pb_int32(f.u);
        } else if (f.num == 3) {
            TRIT_TRY(pb_expect(&f, PB_VARINT, "TrainerSpec.model_type"));
            m->model_type = f.u;
        } else if (f.num == 24) {
            TRIT_TRY(pb_expect(&f, PB_VARINT, "TrainerSpec.treat_whitespace_as_suffix"));
            m->whitespace_suffix = f.u != 0;
        } else if (f.num == 35) {
            TRIT_TRY(pb_expect(&f, PB_VARINT, "TrainerSpec.byte_fallback"));
            m->byte_fallback = f.u != 0;
        }
    }
    return TRIT_OK;
}

static enum trit_status parse_normalizer(struct pb_reader r, struct spm_model *m) {
    struct pb_field f;
    while (r.p < r.end) {
        TRIT_TRY(pb_next(&r, &f));
        bool *flag = f.num == 3 ? &m->add_dummy_prefix : f.num == 4 ? &m->remove_extra_whitespaces
                   : f.num == 5 ? &m->escape_whitespaces : NULL;
        if (flag) {
            TRIT_TRY(pb_expect(&f, PB_VARINT, "NormalizerSpec flag"));
            *flag = f.u != 0;
        } else if (f.num == 1) {
            TRIT_TRY(pb_expect(&f, PB_LEN, "NormalizerSpec.name"));
            m->norm_name = f.m.p;
            m->norm_name_len = (size_t)(f.m.end - f.m.p);
        } else if (f.num == 2) {
            TRIT_TRY(pb_expect(&f, PB_LEN, "NormalizerSpec.precompiled_charsmap"));
            m->charsmap_len = (size_t)(f.m.end - f.m.p);
        }
    }
    return TRIT_OK;
}

/* Reads the whole ModelProto into *m. With tok, also stores piece i as token i (the second pass,
 * once the vocabulary is allocated). Embedded messages that repeat are merged, as protobuf does. */
static enum trit_status parse_model(const uint8_t *buf, size_t len, struct spm_model *m, struct trit_tokenizer *tok) {
    *m = (struct spm_model){.model_type = 1, .unk_id = 0, .bos_id = 1, .eos_id = 2, .pad_id = -1,
                            .add_dummy_prefix = true, .remove_extra_whitespaces = true, .escape_whitespaces = true};
    struct pb_reader r = {.base = buf, .p = buf, .end = len ? buf + len : buf}; /* no NULL + 0 */
    struct pb_field f;
    while (r.p < r.end) {
        TRIT_TRY(pb_next(&r, &f));
        if (f.num == 1) {
            TRIT_TRY(pb_expect(&f, PB_LEN, "ModelProto.pieces"));
            if (m->n_pieces >= SPM_MAX_VOCAB)
                return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: more than %d pieces", SPM_MAX_VOCAB);
            struct spm_piece p;
            TRIT_TRY(parse_piece(f.m, f.off, m->n_pieces, &p));
            if (tok) TRIT_TRY(vocab_set_token(tok, m->n_pieces, (const char *)p.text, p.len, p.score, p.type));
            m->n_pieces++;
        } else if (f.num == 2) {
            TRIT_TRY(pb_expect(&f, PB_LEN, "ModelProto.trainer_spec"));
            TRIT_TRY(parse_trainer(f.m, m));
        } else if (f.num == 3) {
            TRIT_TRY(pb_expect(&f, PB_LEN, "ModelProto.normalizer_spec"));
            TRIT_TRY(parse_normalizer(f.m, m));
        }
    }
    if (m->n_pieces == 0) return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: no pieces");
    return TRIT_OK;
}

/* Refuses what spm.c would tokenize differently from SentencePiece. */
static enum trit_status check_supported(const struct spm_model *m) {
    static const char *const types[] = {"", "UNIGRAM", "BPE", "WORD", "CHAR"};
    if (m->model_type != 2) {
        if (m->model_type >= 1 && m->model_type <= 4)
            return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.model: model_type %s is not supported (trit's "
                              "SentencePiece tokenizer is the BPE one)", types[m->model_type]);
        return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.model: model_type %llu is not a known type",
                          (unsigned long long)m->model_type);
    }
    bool identity = m->norm_name_len == 0 || (m->norm_name_len == 8 && memcmp(m->norm_name, "identity", 8) == 0);
    if (!identity)
        return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.model: normalizer '%.*s' is not supported (trit applies "
                          "no normalization: only 'identity')", (int)(m->norm_name_len < 64 ? m->norm_name_len : 64),
                          (const char *)m->norm_name);
    if (m->charsmap_len)
        return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.model: a %zu-byte precompiled_charsmap (a normalization "
                          "table) is not supported", m->charsmap_len);
    if (m->remove_extra_whitespaces)
        return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.model: normalizer remove_extra_whitespaces is not "
                          "supported (trit keeps every space)");
    if (!m->escape_whitespaces)
        return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.model: normalizer escape_whitespaces false is not "
                          "supported (trit writes spaces as U+2581)");
    if (m->whitespace_suffix)
        return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.model: treat_whitespace_as_suffix is not supported");
    if (!m->byte_fallback)
        return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.model: byte_fallback false is not supported (trit "
                          "encodes unknown characters as <0xXX> pieces, not as <unk>)");
    const struct {
        const char *name;
        int32_t id;
    } ids[] = {{"unk_id", m->unk_id}, {"bos_id", m->bos_id}, {"eos_id", m->eos_id}, {"pad_id", m->pad_id}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i].id < -1 || ids[i].id >= m->n_pieces)
            return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: trainer_spec %s = %d is outside the %d pieces",
                              ids[i].name, ids[i].id, m->n_pieces);
    return TRIT_OK;
}

/* ---- added_tokens.json ------------------------------------------------------------------------ */

struct added_token {
    const char *text; /* NUL-terminated, inside the JSON tree */
    int32_t id;
    int32_t order; /* position in the file */
};

struct added_tokens {
    struct added_token *t; /* sorted by text; a text given twice keeps its last id, as Python's json does */
    int32_t n;
    int32_t n_new; /* ids past the pieces */
};

static int cmp_added(const void *pa, const void *pb) {
    const struct added_token *a = pa, *b = pb;
    int c = strcmp(a->text, b->text);
    return c ? c : (a->order > b->order) - (a->order < b->order);
}

/* Reads {"text": id, ...} and checks that the ids past the pieces run n_pieces, n_pieces + 1, ...
 * with no gap (a repeated id is caught when the tokens are stored: load). Sorting makes repeated
 * keys O(n log n) to resolve, however many a hostile file holds. */
static enum trit_status read_added(const cJSON *root, int32_t n_pieces, struct added_tokens *out) {
    *out = (struct added_tokens){0};
    if (!cJSON_IsObject(root))
        return trit_error(TRIT_ERR_FORMAT, "added_tokens.json: expected an object {\"text\": id}, found %s",
                          json_type_name(root));
    int n = cJSON_GetArraySize(root);
    out->t = malloc((size_t)(n ? n : 1) * sizeof *out->t);
    if (!out->t) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "added_tokens.json: out of memory for %d tokens", n);
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        int64_t id;
        if (!json_int_value(it, &id) || id < 0 || id >= SPM_MAX_VOCAB)
            return trit_error(TRIT_ERR_FORMAT, "added_tokens.json: '%.64s' has no valid token id (%s)", it->string,
                              cJSON_IsNumber(it) ? "not an integer in range" : json_type_name(it));
        if (!it->string[0]) return trit_error(TRIT_ERR_FORMAT, "added_tokens.json: an added token has no text");
        out->t[out->n] = (struct added_token){.text = it->string, .id = (int32_t)id, .order = out->n};
        out->n++;
    }
    qsort(out->t, (size_t)out->n, sizeof *out->t, cmp_added);
    int32_t k = 0, max_id = -1;
    for (int32_t i = 0; i < out->n; i++) {
        if (i + 1 < out->n && strcmp(out->t[i].text, out->t[i + 1].text) == 0) continue; /* a later one wins */
        out->t[k++] = out->t[i];
        if (out->t[i].id >= n_pieces) out->n_new++;
        if (out->t[i].id > max_id) max_id = out->t[i].id;
    }
    out->n = k;
    if (out->n_new && max_id != n_pieces + out->n_new - 1)
        return trit_error(TRIT_ERR_FORMAT, "added_tokens.json: the %d ids past the %d pieces must be %d..%d, each "
                          "once, with no gap (the largest is %d)", out->n_new, n_pieces, n_pieces,
                          n_pieces + out->n_new - 1, max_id);
    return TRIT_OK;
}

/* ---- the loader ------------------------------------------------------------------------------- */

/* The second pass: pieces and added tokens into `tok` (allocated for both), then the special ids,
 * flags and types. */
static enum trit_status load(const uint8_t *buf, size_t len, const struct added_tokens *added, const cJSON *config,
                             struct trit_tokenizer *tok) {
    struct spm_model m;
    TRIT_TRY(parse_model(buf, len, &m, tok));
    const int32_t n_pieces = m.n_pieces;
    for (int32_t i = 0; i < added->n; i++) { /* the new ids; existing ones are checked against the pieces below */
        const struct added_token *a = &added->t[i];
        if (a->id < n_pieces) continue;
        if (tok->tokens[a->id].text_len)
            return trit_error(TRIT_ERR_FORMAT, "added_tokens.json: id %d is given twice", a->id);
        /* score -1000, as llama.cpp's converter gives added tokens: both load the same vocabulary */
        TRIT_TRY(vocab_set_token(tok, a->id, a->text, strlen(a->text), -1000.0f, TRIT_TOKEN_USER_DEFINED));
    }
    TRIT_TRY(vocab_build_index(tok));
    for (int32_t id = 0; id < tok->n_vocab; id++) { /* the index keeps the higher id of two equal texts */
        const struct tok_entry *e = &tok->tokens[id];
        int32_t found = vocab_find(tok, vocab_text(tok, id), e->text_len);
        if (found != id)
            return trit_error(TRIT_ERR_FORMAT, "%s: '%.*s' is both token %d and token %d",
                              found < n_pieces ? "tokenizer.model: duplicate piece" : "added_tokens.json",
                              (int)(e->text_len < 64 ? e->text_len : 64), vocab_text(tok, id), id, found);
    }
    for (int32_t i = 0; i < added->n; i++) {
        const struct added_token *a = &added->t[i];
        size_t a_len = strlen(a->text);
        const struct tok_entry *e = &tok->tokens[a->id];
        if (a->id < n_pieces && (e->text_len != a_len || memcmp(vocab_text(tok, a->id), a->text, a_len) != 0))
            return trit_error(TRIT_ERR_FORMAT, "added_tokens.json: '%.64s' has id %d, which is the piece '%.*s'",
                              a->text, a->id, (int)(e->text_len < 64 ? e->text_len : 64), vocab_text(tok, a->id));
    }

    tok->kind = TRIT_TOKENIZER_SPM;
    tok->unk = m.unk_id;
    tok->bos = m.bos_id;
    tok->eos = m.eos_id;
    tok->pad = m.pad_id;
    tok->add_bos = true;
    tok->add_eos = false;
    tok->add_space_prefix = m.add_dummy_prefix;
    TRIT_TRY(vocab_apply_tokenizer_config(tok, config));

    /* added tokens: user-defined, or control when they are one of the special tokens */
    for (int32_t i = 0; i < added->n; i++) {
        int32_t id = added->t[i].id;
        bool special = id == tok->bos || id == tok->eos || id == tok->unk || id == tok->pad;
        if (!special) tok->tokens[id].type = TRIT_TOKEN_USER_DEFINED;
        else if (tok->tokens[id].type != TRIT_TOKEN_UNKNOWN) tok->tokens[id].type = TRIT_TOKEN_CONTROL;
    }
    TRIT_TRY(vocab_finalize(tok));

    for (int b = 0; b < 256; b++) { /* byte_fallback needs a <0xXX> piece for every byte */
        int32_t id = tok->byte_token[b];
        if (id < 0 || tok->tokens[id].type != TRIT_TOKEN_BYTE)
            return trit_error(TRIT_ERR_FORMAT, "tokenizer.model: byte_fallback is set but the byte piece <0x%02X> "
                              "is missing", b);
    }
    return TRIT_OK;
}

enum trit_status trit_tokenizer_load_spm_memory(const uint8_t *model, size_t model_len, const char *added,
                                                size_t added_len, const char *config, size_t config_len,
                                                struct trit_tokenizer **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenizer_load_spm_memory: NULL output");
    *out = NULL;
    if (!model && model_len) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenizer_load_spm_memory: NULL model");
    struct spm_model m;
    TRIT_TRY(parse_model(model, model_len, &m, NULL));
    TRIT_TRY(check_supported(&m));

    struct json_doc added_doc = {0}, config_doc = {0};
    struct added_tokens added_toks = {0};
    struct trit_tokenizer *tok = NULL;
    enum trit_status st = TRIT_OK;
    if (added) {
        st = json_doc_parse(added, added_len, "added_tokens.json", &added_doc);
        if (st == TRIT_OK) st = read_added(added_doc.root, m.n_pieces, &added_toks);
    }
    if (st == TRIT_OK && config) {
        st = json_doc_parse(config, config_len, "tokenizer_config.json", &config_doc);
        if (st == TRIT_OK && !cJSON_IsObject(config_doc.root))
            st = trit_error(TRIT_ERR_FORMAT, "tokenizer_config.json: not a JSON object");
    }
    if (st == TRIT_OK && (int64_t)m.n_pieces + added_toks.n_new > SPM_MAX_VOCAB)
        st = trit_error(TRIT_ERR_FORMAT, "tokenizer.model: more than %d tokens with the added ones", SPM_MAX_VOCAB);
    if (st == TRIT_OK) st = vocab_init(m.n_pieces + added_toks.n_new, &tok);
    if (st == TRIT_OK) st = load(model, model_len, &added_toks, config_doc.root, tok);
    free(added_toks.t);
    json_doc_free(&added_doc);
    json_doc_free(&config_doc);
    if (st != TRIT_OK) {
        trit_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return TRIT_OK;
}

enum trit_status trit_tokenizer_load_spm(const char *model_path, const char *added_tokens_json_path,
                                         const char *config_path, struct trit_tokenizer **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenizer_load_spm: NULL output");
    *out = NULL;
    if (!model_path) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenizer_load_spm: NULL path");
    const uint8_t *map = NULL;
    uint64_t size = 0;
    char *added = NULL, *config = NULL;
    size_t added_len = 0, config_len = 0;
    TRIT_TRY(trit_file_map(model_path, &map, &size));
    enum trit_status st = TRIT_OK;
    /* the JSON files are small (a few KB); HF_TOKENIZER_CONFIG_MAX_BYTES caps what a hostile one costs */
    if (added_tokens_json_path)
        st = json_read_file(added_tokens_json_path, HF_TOKENIZER_CONFIG_MAX_BYTES, &added, &added_len);
    if (st == TRIT_OK && config_path)
        st = json_read_file(config_path, HF_TOKENIZER_CONFIG_MAX_BYTES, &config, &config_len);
    if (st == TRIT_OK)
        st = trit_tokenizer_load_spm_memory(map, (size_t)size, added, added_len, config, config_len, out);
    trit_free(added);
    trit_free(config);
    trit_file_unmap(map, size);
    return st;
}
