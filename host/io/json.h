/*
 * json.h: small helpers over cJSON for the JSON files of a Hugging Face model folder (config.json,
 * tokenizer_config.json, model.safetensors.index.json, ...): load a file under a size cap, parse
 * with the error position, and typed getters addressed by a path, with messages that name the
 * file, the path and what was found.
 *
 * Paths: keys separated by '.', each optionally followed by array indices:
 *     "hidden_size"   "quantization_config.linear_class"   "architectures[0]"   "a.b[2][0].c"
 * Keys that contain '.' or '[' cannot be addressed this way (no config key we read does).
 *
 * Semantics, chosen to match what transformers sees through Python's json module:
 *   - a key that appears twice in one object resolves to its LAST occurrence (json.loads keeps the
 *     last; HF1BitLLM's config.json carries "quantization_config" twice and relies on it);
 *   - key comparison is exact (cJSON_GetObjectItem would ignore case);
 *   - a JSON null, a missing key and an index past the end of an array all mean "absent":
 *     the getter returns the caller's default;
 *   - a present value of the wrong type is TRIT_ERR_FORMAT, with the path in the message.
 */
#ifndef TRIT_JSON_H
#define TRIT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/core.h"

/* A parsed document and the label its messages start with (the file path, or a caller's name). */
struct json_doc {
    cJSON *root; /* never NULL after a successful parse */
    char *name;  /* owned, NUL-terminated */
};

/* Integers larger than this in magnitude are not exact in a JSON double: 2^53. */
#define JSON_MAX_EXACT_INT (INT64_C(1) << 53)

/* Parses len bytes of JSON text (need not be NUL-terminated). Anything but whitespace after the
 * value is an error. TRIT_ERR_FORMAT names the byte offset, line and column of the first error.
 * On success *out owns the tree; release it with json_doc_free. */
enum trit_status json_doc_parse(const char *text, size_t len, const char *name, struct json_doc *out);
/* Reads a regular file of at most max_bytes (TRIT_ERR_FORMAT when larger) and parses it.
 * TRIT_ERR_NOT_FOUND when the file does not exist, TRIT_ERR_IO when it cannot be read. */
enum trit_status json_doc_load(const char *path, size_t max_bytes, struct json_doc *out);
/* Reads a whole regular file of at most max_bytes into a NUL-terminated trit_alloc buffer
 * (*out_len excludes the NUL; release with trit_free). Errors as json_doc_load. */
enum trit_status json_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len);
/* Releases the tree and the name; accepts a zeroed struct and NULL. */
void json_doc_free(struct json_doc *doc);

/* Resolves `path` from the root. Returns TRIT_OK and *out = the node, or *out = NULL when absent
 * (missing key, JSON null, index past the end). TRIT_ERR_FORMAT when an intermediate node has the
 * wrong type ("'quantization_config' is a string, expected an object") or the path is malformed. */
enum trit_status json_find(const struct json_doc *doc, const char *path, const cJSON **out);

/* TRIT_ERR_NOT_FOUND "<name>: required key '<path>' is missing" when the path is absent. */
enum trit_status json_require(const struct json_doc *doc, const char *path);

/* Typed getters. Absent -> *out = def and TRIT_OK. Wrong type -> TRIT_ERR_FORMAT.
 * json_get_int: an integral number with |v| <= 2^53, within [lo, hi] (else TRIT_ERR_FORMAT naming
 * the range); pass INT64_MIN, INT64_MAX for no range. 4.0 counts as the integer 4.
 * json_get_float: any finite number.
 * json_get_bool: true or false only (not 0/1, not "true").
 * json_get_str: *out points into the tree, valid until json_doc_free; def may be NULL. */
enum trit_status json_get_int(const struct json_doc *doc, const char *path, int64_t def, int64_t lo,
                              int64_t hi, int64_t *out);
enum trit_status json_get_float(const struct json_doc *doc, const char *path, double def, double *out);
enum trit_status json_get_bool(const struct json_doc *doc, const char *path, bool def, bool *out);
enum trit_status json_get_str(const struct json_doc *doc, const char *path, const char *def,
                              const char **out);

/* True when node is a number with an integral value of magnitude <= 2^53; stores it in *out.
 * (cJSON keeps only the double, so 4.0 and 4 are the same value here.) */
bool json_int_value(const cJSON *node, int64_t *out);
/* The last member of `object` named `key` (exact match), or NULL. object may be NULL. */
const cJSON *json_member(const cJSON *object, const char *key);
/* "string", "number", "object", "array", "bool", "null" or "invalid". */
const char *json_type_name(const cJSON *node);

#endif /* TRIT_JSON_H */
