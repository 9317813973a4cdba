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
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

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
            "  --jsonl              read JSON lines with a \"text\" field; write each object back with \"ids\" added\n"
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

/* A piece as a JSON string literal (cJSON escapes quotes, control bytes and backslashes). */
static void print_piece(const struct trit_tokenizer *tok, int32_t id) {
    size_t len;
    const char *p = trit_tokenizer_piece(tok, id, TRIT_DECODE_SPECIAL, &len);
    char *copy = strndup(p ? p : "", len); /* NULL (len 0) for an id out of range */
    if (!copy) {
        printf("%d\t?\n", id);
        return;
    }
    cJSON *s = cJSON_CreateString(copy);
    char *text = s ? cJSON_PrintUnformatted(s) : NULL;
    printf("%d\t%s\n", id, text ? text : "?");
    free(text);
    cJSON_Delete(s);
    free(copy);
}

static int run_prompt(const struct tok_opts *o, const char *prompt) {
    struct ids t = {0};
    enum trit_status st = encode(o, prompt, strlen(prompt), &t);
    if (st != TRIT_OK) {
        ids_free(&t);
        return tool_fail_status("tokenize", st, "tokenize");
    }
    if (o->pieces) {
        for (size_t i = 0; i < t.n; i++) print_piece(o->tok, t.v[i]);
    } else {
        for (size_t i = 0; i < t.n; i++) printf(i ? " %d" : "%d", t.v[i]);
        printf("\n");
    }
    ids_free(&t);
    return 0;
}

/* The ids of one parsed line against its "ids" array: 0 when equal. */
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
        enum trit_status st = encode(o, text->valuestring, strlen(text->valuestring), &t);
        if (st != TRIT_OK) {
            cJSON_Delete(obj);
            rc = tool_fail_status("tokenize", st, "tokenize");
            break;
        }
        n_lines++;
        if (check) {
            int r = check_line(obj, &t, line_no, text->valuestring);
            cJSON_Delete(obj);
            if (r == 2) {
                rc = 1;
                break;
            }
            n_bad += r;
            continue;
        }
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
    }
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
