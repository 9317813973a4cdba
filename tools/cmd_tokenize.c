/*
 * cmd_tokenize.c: `trit tokenize`: text to token ids with a model's (or a tokenizer file's)
 * vocabulary. One prompt on the command line, or JSON lines from stdin or a file.
 *
 *   trit tokenize -m model.gguf -p "Hello world"            -> 9906 1917
 *   trit tokenize -m model.gguf -p "Hello world" --pieces   -> one "id<TAB>piece" per line
 *   trit tokenize -m tokenizer.json --jsonl < in.jsonl > out.jsonl
 *   trit tokenize -m vocab.gguf --jsonl -f cases.jsonl --check
 *
 * JSON lines: each line is an object with a string field "text"; it is written back with every
 * field kept and an "ids" array added (replacing one that is there). --check instead compares the
 * ids with the line's own "ids" and exits 1 when any line differs (the CLI tests use it).
 *
 * Every string this command writes is valid JSON in valid UTF-8, whatever the bytes: "text" is
 * decoded with its length (cJSON stops at an escaped \u0000), and a piece that is not UTF-8 by
 * itself is written as the Unicode replacement decoding plus its bytes (usage() states the rule).
 * A failed write to stdout ends the command at that record with exit 1.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "tokenizer/vocab.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit tokenize -m PATH (-p TEXT | --jsonl) [options]\n"
            "\n"
            "Prints the token ids of a text. No BOS and no special-token parsing unless asked for.\n"
            "\n"
            "  -m, --model PATH     a .gguf file (model or vocab-only), a Hugging Face folder or a tokenizer.json\n"
            "                       (default: the shipped model)\n"
            "  -p, --prompt TEXT    the text; prints its ids on one line, space-separated\n"
            "  --pieces             print one line per token: id, a tab, and the piece as a JSON string\n"
            "                       (UTF-8, control characters escaped). A piece that is not valid UTF-8 by\n"
            "                       itself (a byte token, part of a character) is written as Python's\n"
            "                       bytes.decode('utf-8', 'replace') gives it (U+FFFD for each ill-formed\n"
            "                       sequence), then a tab and its bytes as a JSON array: 172<TAB>\"\xef\xbf\xbd\"<TAB>[240].\n"
            "                       Its bytes in Python: f = line.rstrip('\\n').split('\\t');\n"
            "                       bytes(json.loads(f[2])) if len(f) == 3 else json.loads(f[1]).encode()\n"
            "  --jsonl              read JSON lines with a \"text\" field; write each object back with \"ids\" added\n"
            "                       (\\u0000 in \"text\" is the byte 0, tokenized like any other)\n"
            "  -f, --file PATH      read the JSON lines from PATH instead of stdin\n"
            "  --check              with --jsonl: compare with each line's own \"ids\" instead of writing;\n"
            "                       exit 1 when any line differs\n"
            "  --bos                prepend the vocabulary's BOS token\n"
            "  --special            match special tokens written in the text (<|eot_id|>, <s>, ...)\n"
            "  -h, --help           this text\n");
}

struct tok_opts {
    const struct trit_tokenizer *tok;
    bool bos, special, pieces;
};

/* The ids of one text: BOS (with --bos) then the text's tokens. `scratch` is reused across calls. */
struct ids {
    int32_t *v;
    size_t n, cap;
    struct trit_tokens scratch;
};

static void ids_free(struct ids *ids) {
    free(ids->v);
    trit_tokens_free(&ids->scratch);
    memset(ids, 0, sizeof *ids);
}

static enum trit_status encode(const struct tok_opts *o, const char *text, size_t len, struct ids *out) {
    int32_t bos = -1;
    if (o->bos && (bos = trit_tokenizer_bos(o->tok)) < 0)
        return trit_error(TRIT_ERR_UNSUPPORTED, "--bos: this vocabulary has no BOS token");
    out->scratch.n = 0;
    TRIT_TRY(trit_tokenize(o->tok, text, len, o->special ? TRIT_TOKENIZE_PARSE_SPECIAL : 0, &out->scratch));
    size_t n = out->scratch.n + (bos >= 0);
    if (n > out->cap) {
        int32_t *p = realloc(out->v, n * sizeof *p);
        if (!p) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory for %zu ids", n);
        out->v = p;
        out->cap = n;
    }
    out->n = 0;
    if (bos >= 0) out->v[out->n++] = bos;
    if (out->scratch.n) memcpy(out->v + out->n, out->scratch.ids, out->scratch.n * sizeof *out->v);
    out->n = n;
    return TRIT_OK;
}

/* ---- JSON strings ------------------------------------------------------------------------------ */

/* s[0..n) as a JSON string literal, NUL-terminated, in a new buffer (NULL when out of memory). The
 * escapes are cJSON's (so --jsonl writes what it always wrote): \" \\ \b \f \n \r \t, \u00XX for the
 * other bytes below 0x20; every other byte as it is (the caller gives UTF-8 when it promises it). */
static char *json_quote(const char *s, size_t n) {
    if (n > (SIZE_MAX - 3) / 6) return NULL;
    char *out = malloc(6 * n + 3), *o = out; /* each byte at most \u00XX */
    if (!out) return NULL;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" : c == '\f' ? "\\f"
                          : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
        if (esc) {
            memcpy(o, esc, 2);
            o += 2;
        } else if (c < 0x20) {
            o += snprintf(o, 7, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

static int hex4(const char *s) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Decodes the JSON string literal at s[0] == '"' within s[0..n) into out (capacity >= n: no escape
 * decodes to more bytes than it is written with) and its byte count into *out_len; \u0000 is the
 * byte 0. Returns the literal's length with its quotes, or 0 when it is not a well-formed one
 * (a raw control character, a bad escape, a lone surrogate, no closing quote). */
static size_t json_unquote(const char *s, size_t n, char *out, size_t *out_len) {
    size_t i = 1, o = 0;
    if (n == 0 || s[0] != '"') return 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i++];
        if (c == '"') {
            *out_len = o;
            return i;
        }
        if (c < 0x20) return 0;
        if (c != '\\') {
            out[o++] = (char)c;
            continue;
        }
        if (i >= n) return 0;
        char e = s[i++];
        static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
        const char *simple = e ? strchr(esc_in, e) : NULL;
        if (simple) {
            out[o++] = esc_out[simple - esc_in];
            continue;
        }
        if (e != 'u' || n - i < 4) return 0;
        long cp = hex4(s + i);
        i += 4;
        if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return 0;
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate: its low one must follow */
            int lo = n - i >= 6 && s[i] == '\\' && s[i + 1] == 'u' ? hex4(s + i + 2) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) return 0;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        }
        o += utf8_encode((uint32_t)cp, out + o);
    }
    return 0;
}

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* The end of the JSON value at s[i] (s[0..n) is well-formed JSON: cJSON parsed it), or 0. */
static size_t skip_value(const char *s, size_t n, size_t i) {
    int depth = 0;
    do {
        if (i >= n) return 0;
        char c = s[i++];
        if (c == '"') {
            while (i < n && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
            if (i++ >= n) return 0;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (depth == 0) { /* a number or a literal */
            while (i < n && !strchr(",}] \t\r\n", s[i])) i++;
        }
    } while (depth > 0);
    return i;
}

/* The bytes of the first member "text" of the JSON object s[0..n) (which cJSON parsed: keys are
 * compared decoded, as cJSON does, and the first one wins, as cJSON_GetObjectItem finds it), in a
 * new buffer (free it) with their count in *len; NULL when there is no such string member or out of
 * memory. */
static char *json_text_member(const char *s, size_t n, size_t *len) {
    char *buf = malloc(n + 1);
    size_t i = skip_ws(s, n, 0);
    if (!buf || i >= n || s[i] != '{') goto fail;
    for (i = skip_ws(s, n, i + 1); i < n && s[i] != '}';) {
        size_t k_len, k = json_unquote(s + i, n - i, buf, &k_len);
        if (!k) goto fail;
        bool is_text = k_len == 4 && !memcmp(buf, "text", 4);
        i = skip_ws(s, n, i + k);
        if (i >= n || s[i] != ':') goto fail;
        i = skip_ws(s, n, i + 1);
        if (is_text) return json_unquote(s + i, n - i, buf, len) ? buf : (free(buf), NULL);
        if (!(i = skip_value(s, n, i))) goto fail;
        i = skip_ws(s, n, i);
        if (i < n && s[i] == ',') i = skip_ws(s, n, i + 1);
    }
fail:
    free(buf);
    return NULL;
}

/* ---- output ------------------------------------------------------------------------------------ */

/* After a record: 0 while stdout takes what is written; else the error (a full disk, a closed
 * pipe) and 1, so that the command stops at the first record whose buffer could not be written
 * (within one stdio buffer of the failure). `flush` after the last record. */
static int stdout_check(bool flush) {
    if (!ferror(stdout) && (!flush || fflush(stdout) == 0)) return 0;
    return tool_fail("tokenize", "cannot write to stdout: %s", strerror(errno));
}

/* One --pieces line: the id, a tab and the piece as a JSON string: the piece when it is UTF-8, else
 * its replacement decoding (a fresh stream fed the one token and flushed), then a tab and its bytes.
 * `buf` holds trit_tok_stream_max_out + 3 bytes. */
static void print_piece(const struct trit_tokenizer *tok, int32_t id, char *buf, size_t cap) {
    size_t len = 0, n_text = 0, n_tail = 0;
    const char *p = trit_tokenizer_piece(tok, id, TRIT_DECODE_SPECIAL, &len);
    struct trit_tok_stream ts;
    trit_tok_stream_init(&ts, tok, TRIT_DECODE_SPECIAL);
    if (trit_tok_stream_feed(&ts, id, buf, cap - 3, &n_text) != TRIT_OK) n_text = 0;
    if (trit_tok_stream_flush(&ts, buf + n_text, 3, &n_tail) != TRIT_OK) n_tail = 0;
    bool utf8 = n_text + n_tail == len && (len == 0 || !memcmp(buf, p, len));
    char *text = json_quote(buf, n_text + n_tail);
    printf("%d\t%s", id, text ? text : "\"\"");
    free(text);
    if (!utf8) {
        printf("\t[");
        for (size_t i = 0; i < len; i++) printf(i ? ",%u" : "%u", (unsigned char)p[i]);
        printf("]");
    }
    printf("\n");
}

static int run_prompt(const struct tok_opts *o, const char *prompt) {
    struct ids t = {0};
    enum trit_status st = encode(o, prompt, strlen(prompt), &t);
    if (st != TRIT_OK) {
        ids_free(&t);
        return tool_fail_status("tokenize", st, "tokenize");
    }
    int rc = 0;
    if (o->pieces) {
        size_t cap = trit_tok_stream_max_out(o->tok) + 3;
        char *buf = malloc(cap);
        if (!buf) rc = tool_fail("tokenize", "out of memory");
        for (size_t i = 0; !rc && i < t.n; i++) {
            print_piece(o->tok, t.v[i], buf, cap);
            rc = stdout_check(false);
        }
        free(buf);
    } else {
        for (size_t i = 0; i < t.n; i++) printf(i ? " %d" : "%d", t.v[i]);
        printf("\n");
    }
    if (!rc) rc = stdout_check(true);
    ids_free(&t);
    return rc;
}

/* The ids of one parsed line against its "ids" array: 0 when equal. `text` is the line's text as
 * a JSON string literal. */
static int check_line(const cJSON *obj, const struct ids *t, long line_no, const char *text) {
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(obj, "ids");
    if (!cJSON_IsArray(want)) {
        fprintf(stderr, "trit tokenize: error: line %ld: --check needs an \"ids\" array\n", line_no);
        return 2;
    }
    size_t n = (size_t)cJSON_GetArraySize(want), i = 0;
    bool same = n == t->n;
    const cJSON *it;
    cJSON_ArrayForEach(it, want) {
        if (!cJSON_IsNumber(it)) {
            fprintf(stderr, "trit tokenize: error: line %ld: \"ids\" holds a non-number\n", line_no);
            return 2;
        }
        if (i < t->n && (double)t->v[i] != it->valuedouble) same = false;
        i++;
    }
    if (same) return 0;
    char *w = cJSON_PrintUnformatted(want);
    fprintf(stderr, "trit tokenize: line %ld: ids differ for %.200s\n  expected %s\n  got      [", line_no, text,
            w ? w : "?");
    for (size_t k = 0; k < t->n; k++) fprintf(stderr, k ? ",%d" : "%d", t->v[k]);
    fprintf(stderr, "]\n");
    free(w);
    return 1;
}

static int run_jsonl(const struct tok_opts *o, const char *path, bool check) {
    FILE *in = stdin;
    if (path && !(in = fopen(path, "rb"))) return tool_fail("tokenize", "cannot open '%s': %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long line_no = 0, n_lines = 0, n_bad = 0;
    int rc = 0;
    struct ids t = {0};
    while ((got = getline(&line, &cap, in)) >= 0) {
        line_no++;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == len) continue; /* blank line */
        cJSON *obj = cJSON_ParseWithLength(line, len);
        const cJSON *text = obj ? cJSON_GetObjectItemCaseSensitive(obj, "text") : NULL;
        if (!obj) {
            const char *at = cJSON_GetErrorPtr();
            long col = at && at >= line && at <= line + len ? (long)(at - line) + 1 : 0;
            rc = tool_fail("tokenize", "line %ld: not valid JSON (near column %ld)", line_no, col);
            break;
        }
        if (!cJSON_IsObject(obj)) {
            cJSON_Delete(obj);
            rc = tool_fail("tokenize", "line %ld: not a JSON object", line_no);
            break;
        }
        if (!cJSON_IsString(text)) {
            cJSON_Delete(obj);
            rc = tool_fail("tokenize", "line %ld: no string field \"text\"", line_no);
            break;
        }
        /* cJSON's valuestring ends at an escaped \u0000: the bytes come from the line again */
        size_t n_text = 0;
        char *bytes = json_text_member(line, len, &n_text), *quoted = bytes ? json_quote(bytes, n_text) : NULL;
        cJSON *raw = quoted ? cJSON_CreateRaw(quoted) : NULL;
        enum trit_status st = raw ? encode(o, bytes, n_text, &t) : TRIT_OK;
        free(bytes);
        free(quoted);
        if (!raw || st != TRIT_OK) {
            cJSON_Delete(obj);
            cJSON_Delete(raw);
            rc = raw ? tool_fail_status("tokenize", st, "tokenize")
                     : tool_fail("tokenize", "line %ld: \"text\" is not a well-formed JSON string", line_no);
            break;
        }
        n_lines++;
        if (check) {
            int r = check_line(obj, &t, line_no, raw->valuestring);
            cJSON_Delete(obj);
            cJSON_Delete(raw);
            if (r == 2) {
                rc = 1;
                break;
            }
            n_bad += r;
            continue;
        }
        /* written back as it was decoded, \u0000 included */
        cJSON_ReplaceItemInObjectCaseSensitive(obj, "text", raw);
        cJSON *ids = cJSON_CreateArray();
        for (size_t i = 0; ids && i < t.n; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(t.v[i]));
        if (cJSON_GetObjectItemCaseSensitive(obj, "ids")) cJSON_ReplaceItemInObjectCaseSensitive(obj, "ids", ids);
        else cJSON_AddItemToObject(obj, "ids", ids);
        char *out = cJSON_PrintUnformatted(obj);
        cJSON_Delete(obj);
        if (!out) {
            rc = tool_fail("tokenize", "line %ld: out of memory", line_no);
            break;
        }
        puts(out);
        free(out);
        if ((rc = stdout_check(false))) break;
    }
    if (rc == 0 && !check) rc = stdout_check(true);
    if (rc == 0 && ferror(in)) rc = tool_fail("tokenize", "read error on %s", path ? path : "stdin");
    free(line);
    ids_free(&t);
    if (path) fclose(in);
    if (rc == 0 && check) {
        fprintf(stderr, "trit tokenize: checked %ld lines: %ld differ\n", n_lines, n_bad);
        if (n_bad) rc = 1;
    }
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    struct tool_opts o;
    tool_opts_init(&o);
    struct tok_opts t = {0};
    const char *prompt = NULL, *file = NULL;
    bool jsonl = false, check = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!v) return tool_fail("tokenize", "%s needs a path", a) + 1;
            o.model = v;
            i++;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!v) return tool_fail("tokenize", "%s needs text", a) + 1;
            prompt = v;
            i++;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!v) return tool_fail("tokenize", "%s needs a path", a) + 1;
            file = v;
            i++;
        } else if (!strcmp(a, "--jsonl")) {
            jsonl = true;
        } else if (!strcmp(a, "--check")) {
            check = true;
        } else if (!strcmp(a, "--pieces")) {
            t.pieces = true;
        } else if (!strcmp(a, "--bos")) {
            t.bos = true;
        } else if (!strcmp(a, "--special")) {
            t.special = true;
        } else {
            usage(stderr);
            return tool_fail("tokenize", "unknown option '%s'", a) + 1;
        }
    }
    if (jsonl == (prompt != NULL)) {
        usage(stderr);
        return tool_fail("tokenize", "give either -p TEXT or --jsonl") + 1;
    }
    if (!jsonl && (file || check)) return tool_fail("tokenize", "-f and --check go with --jsonl") + 1;
    if (jsonl && t.pieces) return tool_fail("tokenize", "--pieces goes with -p") + 1;

    const char *path = tool_model_path(&o);
    struct trit_tokenizer *tok;
    enum trit_status st = trit_tokenizer_load(path, &tok);
    if (st != TRIT_OK) return tool_fail_status("tokenize", st, path);
    t.tok = tok;
    int rc = jsonl ? run_jsonl(&t, file, check) : run_prompt(&t, prompt);
    trit_tokenizer_free(tok);
    return rc;
}
