/*
 * json.c: loading, parsing and typed path lookups over cJSON. See json.h for the path syntax and
 * the duplicate-key and null semantics. Tested by tests/test_hf_folder.c, fuzzed through
 * tests/fuzz/fuzz_json_config.c.
 */
#include "io/json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- documents ---------------------------------------------------------------------------- */

static char *json_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = trit_alloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

static bool json_is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

enum trit_status json_doc_parse(const char *text, size_t len, const char *name, struct json_doc *out) {
    if (!out || (!text && len)) return trit_error(TRIT_ERR_INVALID_ARG, "json_doc_parse: NULL argument");
    memset(out, 0, sizeof *out);
    if (!name) name = "<json>";
    if (len == 0) return trit_error(TRIT_ERR_FORMAT, "%s: 0 bytes, expected JSON text", name);

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        /* cJSON points `end` at the byte where parsing stopped (clamped to the buffer). */
        size_t off = (end && end >= text && end <= text + len) ? (size_t)(end - text) : 0;
        size_t line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        return trit_error(TRIT_ERR_FORMAT, "%s: invalid JSON at byte %zu (line %zu, column %zu)", name,
                          off, line, col);
    }
    size_t pos = (size_t)(end - text);
    while (pos < len && json_is_space(text[pos])) pos++;
    if (pos < len) {
        cJSON_Delete(root);
        return trit_error(TRIT_ERR_FORMAT, "%s: unexpected byte 0x%02x after the JSON value at byte %zu",
                          name, (unsigned)(unsigned char)text[pos], pos);
    }
    out->name = json_strdup(name);
    if (!out->name) {
        cJSON_Delete(root);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    }
    out->root = root;
    return TRIT_OK;
}

enum trit_status json_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len) {
    if (!path || !out || !out_len) return trit_error(TRIT_ERR_INVALID_ARG, "json_read_file: NULL argument");
    *out = NULL;
    *out_len = 0;
    char why[128] = "";

    int fd;
    uint64_t file_size;
    TRIT_TRY(trit_file_open(path, &fd, &file_size));
    if (file_size > (uint64_t)max_bytes) {
        close(fd);
        return trit_error(TRIT_ERR_FORMAT, "%s: %lld bytes, more than the %zu-byte cap for this file", path,
                          (long long)file_size, max_bytes);
    }
    size_t size = (size_t)file_size;
    char *buf = trit_alloc(size + 1);
    if (!buf) {
        close(fd);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r < 0) strerror_r(errno, why, sizeof why);
            close(fd);
            trit_free(buf);
            return trit_error(TRIT_ERR_IO, "%s: read failed at byte %zu of %zu%s%s", path, got, size,
                              r < 0 ? ": " : " (file shrank)", why);
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = '\0';
    *out = buf;
    *out_len = size;
    return TRIT_OK;
}

enum trit_status json_doc_load(const char *path, size_t max_bytes, struct json_doc *out) {
    if (!path || !out) return trit_error(TRIT_ERR_INVALID_ARG, "json_doc_load: NULL argument");
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    TRIT_TRY(json_read_file(path, max_bytes, &text, &len));
    enum trit_status st = json_doc_parse(text, len, path, out);
    trit_free(text);
    return st;
}

void json_doc_free(struct json_doc *doc) {
    if (!doc) return;
    cJSON_Delete(doc->root);
    trit_free(doc->name);
    memset(doc, 0, sizeof *doc);
}

/* ---- lookups ------------------------------------------------------------------------------ */

const char *json_type_name(const cJSON *node) {
    if (!node) return "nothing";
    if (cJSON_IsString(node)) return "string";
    if (cJSON_IsNumber(node)) return "number";
    if (cJSON_IsObject(node)) return "object";
    if (cJSON_IsArray(node)) return "array";
    if (cJSON_IsBool(node)) return "bool";
    if (cJSON_IsNull(node)) return "null";
    return "invalid";
}

/* The last member named key[0..n) (a key need not be NUL-terminated here). */
static const cJSON *json_member_n(const cJSON *object, const char *key, size_t n) {
    const cJSON *found = NULL;
    if (!object) return NULL;
    for (const cJSON *c = object->child; c; c = c->next) {
        if (c->string && strncmp(c->string, key, n) == 0 && c->string[n] == '\0') found = c;
    }
    return found;
}

const cJSON *json_member(const cJSON *object, const char *key) {
    return key ? json_member_n(object, key, strlen(key)) : NULL;
}

/* Path syntax (json.h): key ('[' digits ']')* ('.' key ('[' digits ']')*)*, keys non-empty and
 * free of '.', '[' and ']'; the first key may be empty before an index (a top-level array). */
static bool json_path_ok(const char *p) {
    for (bool first = true;; first = false) {
        size_t n = strcspn(p, ".[]");
        if (n == 0 && !(first && *p == '[')) return false;
        p += n;
        while (*p == '[') {
            p++;
            if (*p < '0' || *p > '9') return false;
            while (*p >= '0' && *p <= '9') p++;
            if (*p++ != ']') return false;
        }
        if (*p == '\0') return true;
        if (*p++ != '.') return false;
    }
}

enum trit_status json_find(const struct json_doc *doc, const char *path, const cJSON **out) {
    if (!doc || !doc->root || !path || !out) return trit_error(TRIT_ERR_INVALID_ARG, "json_find: NULL argument");
    *out = NULL;
    if (!json_path_ok(path)) return trit_error(TRIT_ERR_INVALID_ARG, "%s: malformed JSON path '%s'", doc->name, path);
    const cJSON *node = doc->root;
    const char *p = path;
    for (;;) {
        size_t n = strcspn(p, ".[");
        if (n > 0) {
            if (!cJSON_IsObject(node) && p == path)
                return trit_error(TRIT_ERR_FORMAT, "%s: the top level is a JSON %s, expected an object (reading '%s')",
                                  doc->name, json_type_name(node), path);
            if (!cJSON_IsObject(node)) {
                return trit_error(TRIT_ERR_FORMAT, "%s: '%.*s' is a JSON %s, expected an object (reading '%s')",
                                  doc->name, (int)(p - path - 1), path, json_type_name(node), path);
            }
            node = json_member_n(node, p, n);
            if (!node || cJSON_IsNull(node)) return TRIT_OK;
            p += n;
        }
        while (*p == '[') {
            /* Digits were checked by json_path_ok; an index past INT32_MAX is past any array's end. */
            const char *bracket = p;
            int64_t index = 0;
            for (p++; *p != ']'; p++)
                if (index < INT32_MAX) index = index * 10 + (*p - '0');
            p++;
            if (!cJSON_IsArray(node)) {
                return trit_error(TRIT_ERR_FORMAT, "%s: '%.*s' is a JSON %s, expected an array (reading '%s')",
                                  doc->name, (int)(bracket - path), path, json_type_name(node), path);
            }
            node = index < INT32_MAX ? cJSON_GetArrayItem(node, (int)index) : NULL;
            if (!node || cJSON_IsNull(node)) return TRIT_OK;
        }
        if (*p == '\0') break;
        p++; /* '.' */
    }
    *out = node;
    return TRIT_OK;
}

enum trit_status json_require(const struct json_doc *doc, const char *path) {
    const cJSON *node;
    TRIT_TRY(json_find(doc, path, &node));
    if (!node) return trit_error(TRIT_ERR_NOT_FOUND, "%s: required key '%s' is missing", doc->name, path);
    return TRIT_OK;
}

/* "must be an integer, found string "abc"" with the value shown for strings, numbers and bools. */
static enum trit_status json_type_error(const struct json_doc *doc, const char *path, const char *want,
                                        const cJSON *node) {
    if (cJSON_IsString(node))
        return trit_error(TRIT_ERR_FORMAT, "%s: '%s' must be %s, found string \"%.40s\"", doc->name, path, want,
                          node->valuestring);
    if (cJSON_IsNumber(node))
        return trit_error(TRIT_ERR_FORMAT, "%s: '%s' must be %s, found number %.17g", doc->name, path, want,
                          node->valuedouble);
    if (cJSON_IsBool(node))
        return trit_error(TRIT_ERR_FORMAT, "%s: '%s' must be %s, found %s", doc->name, path, want,
                          cJSON_IsTrue(node) ? "true" : "false");
    return trit_error(TRIT_ERR_FORMAT, "%s: '%s' must be %s, found %s", doc->name, path, want,
                      json_type_name(node));
}

bool json_int_value(const cJSON *node, int64_t *out) {
    if (!cJSON_IsNumber(node)) return false;
    double d = node->valuedouble;
    /* 2^53: beyond it a JSON number read as a double no longer names one integer. */
    if (!isfinite(d) || d != floor(d) || fabs(d) > (double)JSON_MAX_EXACT_INT) return false;
    *out = (int64_t)d;
    return true;
}

enum trit_status json_get_int(const struct json_doc *doc, const char *path, int64_t def, int64_t lo,
                              int64_t hi, int64_t *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "json_get_int: NULL argument");
    *out = def;
    const cJSON *node;
    TRIT_TRY(json_find(doc, path, &node));
    if (!node) return TRIT_OK;
    if (!cJSON_IsNumber(node)) return json_type_error(doc, path, "an integer", node);
    int64_t v;
    if (!json_int_value(node, &v)) return json_type_error(doc, path, "an integer of magnitude at most 2^53", node);
    if (v < lo || v > hi)
        return trit_error(TRIT_ERR_FORMAT, "%s: '%s' is %lld, outside the valid range [%lld, %lld]", doc->name,
                          path, (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return TRIT_OK;
}

enum trit_status json_get_float(const struct json_doc *doc, const char *path, double def, double *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "json_get_float: NULL argument");
    *out = def;
    const cJSON *node;
    TRIT_TRY(json_find(doc, path, &node));
    if (!node) return TRIT_OK;
    if (!cJSON_IsNumber(node) || !isfinite(node->valuedouble))
        return json_type_error(doc, path, "a finite number", node);
    *out = node->valuedouble;
    return TRIT_OK;
}

enum trit_status json_get_bool(const struct json_doc *doc, const char *path, bool def, bool *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "json_get_bool: NULL argument");
    *out = def;
    const cJSON *node;
    TRIT_TRY(json_find(doc, path, &node));
    if (!node) return TRIT_OK;
    if (!cJSON_IsBool(node)) return json_type_error(doc, path, "true or false", node);
    *out = cJSON_IsTrue(node) != 0;
    return TRIT_OK;
}

enum trit_status json_get_str(const struct json_doc *doc, const char *path, const char *def,
                              const char **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "json_get_str: NULL argument");
    *out = def;
    const cJSON *node;
    TRIT_TRY(json_find(doc, path, &node));
    if (!node) return TRIT_OK;
    if (!cJSON_IsString(node) || !node->valuestring) return json_type_error(doc, path, "a string", node);
    *out = node->valuestring;
    return TRIT_OK;
}
