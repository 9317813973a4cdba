/*
 * template.c: a small interpreter for the Jinja subset that chat templates use (template.h).
 *
 * Like transformers' apply_chat_template, it renders with trim_blocks and lstrip_blocks: the first
 * newline after a {% %} tag is dropped, and spaces/tabs before a {% %} tag at the start of a line
 * are dropped. The template is split into text / {{ }} / {% %} pieces once; statements are
 * executed by walking that flat list, and expressions are parsed and evaluated from their source
 * each time they run (templates are tiny).
 */
#include "chat/template.h"
#include "io/gguf.h"
#include "io/hf.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const trit_chat_template_plain =
    "{{ bos_token }}{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

/* ---- output and string storage ------------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* ---- values ---------------------------------------------------------------------------------- */

enum vkind { V_UNDEF, V_NONE, V_BOOL, V_INT, V_STR, V_LIST, V_MSG, V_LOOP, V_STRS, V_NS };

struct loop_state {
    long long index0, length;
};

struct value {
    enum vkind k;
    long long i;          /* V_BOOL, V_INT; V_MSG: message index; V_NS: namespace index */
    const char *s;        /* V_STR (NUL-terminated, owned by the arena or the caller) */
    long long lo, hi;     /* V_LIST: messages[lo:hi]; V_STRS: strs[0:hi] */
    bool rev;             /* V_LIST: in reverse order (messages[::-1]) */
    const char **strs;    /* V_STRS: the strings of a str.split() (owned by the arena) */
    const struct loop_state *loop;
};

#define MAX_VARS 64
#define MAX_NS 8        /* namespace() objects per rendering */
#define MAX_NS_ATTRS 16 /* attributes per namespace */
/* Limits that keep a hostile template (a GGUF file brings its own) from exhausting the stack or
 * running for ever: nesting of expressions plus blocks, and pieces and expressions evaluated. A
 * chat template takes a few steps per message. */
#define MAX_DEPTH 64
#define MAX_STEPS 10000000L

struct ctx {
    const char *src;
    const struct trit_chat_vars *vars;
    const struct chat_flag *flags; /* more boolean variables (enable_thinking) */
    size_t n_flags;
    struct { char name[64]; struct value v; } var[MAX_VARS];
    int n_var;
    int scope; /* var[scope..n_var) belong to the innermost for-loop body (Jinja scoping) */
    char **strings; /* every string (and string list) made while rendering, freed at the end */
    size_t n_strings, cap_strings;
    enum trit_status st;
    struct sbuf out;
    int depth;
    long steps;
    /* namespace(): objects whose attributes {% set ns.x = ... %} changes in any scope */
    struct { struct { char name[64]; struct value v; } attr[MAX_NS_ATTRS]; int n; } ns[MAX_NS];
    int n_ns;
    /* > 0 while evaluating an operand that `and`/`or` does not need: Jinja does not evaluate it, so
     * what it would fail on at run time (an index out of range, raise_exception) is not an error */
    int quiet;
};

static enum trit_status fail(struct ctx *c, size_t off, const char *fmt, const char *what) {
    if (c->st == TRIT_OK && !c->quiet) {
        c->st = trit_error(TRIT_ERR_UNSUPPORTED, "chat template: %s%s at offset %zu", fmt, what ? what : "", off);
    }
    return c->st;
}

/* Takes ownership of p (any malloc'd block) until the end of the rendering. On failure p is freed,
 * the rendering fails and false comes back. */
static bool keep_mem(struct ctx *c, void *p) {
    if (p && c->n_strings == c->cap_strings) {
        size_t cap = c->cap_strings ? 2 * c->cap_strings : 256;
        char **v = realloc(c->strings, cap * sizeof *v);
        if (v) {
            c->strings = v;
            c->cap_strings = cap;
        }
    }
    if (!p || c->n_strings == c->cap_strings) {
        free(p);
        if (c->st == TRIT_OK) c->st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "chat template: out of memory");
        return false;
    }
    c->strings[c->n_strings++] = p;
    return true;
}

/* keep_mem for a string: s, or "" (read-only) when it failed. */
static const char *keep(struct ctx *c, char *s) { return keep_mem(c, s) ? s : ""; }

static const char *dup_n(struct ctx *c, const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return keep(c, d);
}

static struct value vstr(const char *s) { return (struct value){.k = V_STR, .s = s}; }
static struct value vbool(bool b) { return (struct value){.k = V_BOOL, .i = b}; }
static struct value vint(long long i) { return (struct value){.k = V_INT, .i = i}; }

static bool truthy(struct value v) {
    switch (v.k) {
    case V_UNDEF:
    case V_NONE: return false;
    case V_BOOL:
    case V_INT: return v.i != 0;
    case V_STR: return v.s[0] != '\0';
    case V_LIST:
    case V_STRS: return v.hi > v.lo;
    default: return true;
    }
}

/* String form for output and concatenation. */
static const char *to_str(struct ctx *c, struct value v) {
    char buf[32];
    switch (v.k) {
    case V_STR: return v.s;
    case V_UNDEF: return "";
    case V_NONE: return "None";
    case V_BOOL: return v.i ? "True" : "False";
    case V_INT: snprintf(buf, sizeof buf, "%lld", v.i); return dup_n(c, buf, strlen(buf));
    default: return "";
    }
}

static bool equal(struct ctx *c, struct value a, struct value b) {
    if (a.k == V_STR || b.k == V_STR) return a.k == b.k && strcmp(a.s, b.s) == 0;
    if ((a.k == V_INT || a.k == V_BOOL) && (b.k == V_INT || b.k == V_BOOL)) return a.i == b.i;
    (void)c;
    return a.k == b.k && (a.k == V_NONE || a.k == V_UNDEF);
}

/* ---- expressions ------------------------------------------------------------------------------ */

struct parser {
    struct ctx *c;
    const char *p, *end;
};

static void skip_ws(struct parser *P) {
    while (P->p < P->end && isspace((unsigned char)*P->p)) P->p++;
}

static size_t off(struct parser *P) { return (size_t)(P->p - P->c->src); }

static bool is_word_char(char ch) { return isalnum((unsigned char)ch) || ch == '_'; }

/* Consumes keyword `kw` if the next word is exactly it. */
static bool accept_word(struct parser *P, const char *kw) {
    skip_ws(P);
    size_t n = strlen(kw);
    if ((size_t)(P->end - P->p) >= n && memcmp(P->p, kw, n) == 0 && (P->p + n == P->end || !is_word_char(P->p[n]))) {
        P->p += n;
        return true;
    }
    return false;
}

static bool accept(struct parser *P, const char *tok) {
    skip_ws(P);
    size_t n = strlen(tok);
    if ((size_t)(P->end - P->p) >= n && memcmp(P->p, tok, n) == 0) {
        P->p += n;
        return true;
    }
    return false;
}

static size_t read_name(struct parser *P, const char **name) {
    skip_ws(P);
    const char *s = P->p;
    if (P->p < P->end && (isalpha((unsigned char)*P->p) || *P->p == '_'))
        while (P->p < P->end && is_word_char(*P->p)) P->p++;
    *name = s;
    return (size_t)(P->p - s);
}

static struct value expr(struct parser *P);
static bool enter(struct ctx *c, size_t at);

static struct value lookup(struct ctx *c, const char *name, size_t n) {
    for (int i = c->n_var - 1; i >= 0; i--)
        if (strlen(c->var[i].name) == n && memcmp(c->var[i].name, name, n) == 0) return c->var[i].v;
    const struct trit_chat_vars *v = c->vars;
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(name, lit, n) == 0)
    if (IS("messages")) return (struct value){.k = V_LIST, .lo = 0, .hi = (long long)v->n_messages};
    if (IS("bos_token")) return vstr(v->bos_token ? v->bos_token : "");
    if (IS("eos_token")) return vstr(v->eos_token ? v->eos_token : "");
    if (IS("add_generation_prompt")) return vbool(v->add_generation_prompt);
    for (size_t k = 0; k < c->n_flags; k++)
        if (strlen(c->flags[k].name) == n && memcmp(c->flags[k].name, name, n) == 0) return vbool(c->flags[k].value);
    if (IS("true") || IS("True")) return vbool(true);
    if (IS("false") || IS("False")) return vbool(false);
    if (IS("none") || IS("None")) return (struct value){.k = V_NONE};
#undef IS
    return (struct value){.k = V_UNDEF};
}

/* The index of namespace id's attribute `name`, or -1. */
static int ns_find(const struct ctx *c, int id, const char *name, size_t n) {
    for (int k = 0; k < c->ns[id].n; k++)
        if (strlen(c->ns[id].attr[k].name) == n && memcmp(c->ns[id].attr[k].name, name, n) == 0) return k;
    return -1;
}

/* Sets (or adds) namespace id's attribute `name`. */
static void ns_set(struct ctx *c, int id, const char *name, size_t n, struct value v, size_t at) {
    int k = ns_find(c, id, name, n);
    if (k < 0) {
        if (c->ns[id].n == MAX_NS_ATTRS || n >= sizeof c->ns[id].attr[0].name) {
            fail(c, at, "too many namespace() attributes", NULL);
            return;
        }
        k = c->ns[id].n++;
        memcpy(c->ns[id].attr[k].name, name, n);
        c->ns[id].attr[k].name[n] = '\0';
    }
    c->ns[id].attr[k].v = v;
}

static struct value attr(struct ctx *c, struct value obj, const char *name, size_t n, size_t at) {
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(name, lit, n) == 0)
    if (obj.k == V_MSG) {
        const struct trit_chat_message *m = &c->vars->messages[obj.i];
        if (IS("role")) return vstr(m->role);
        if (IS("content")) return vstr(m->content);
        return (struct value){.k = V_UNDEF};
    }
    if (obj.k == V_NS) {
        int k = ns_find(c, (int)obj.i, name, n);
        return k >= 0 ? c->ns[obj.i].attr[k].v : (struct value){.k = V_UNDEF};
    }
    if (obj.k == V_LOOP) {
        if (IS("index0")) return vint(obj.loop->index0);
        if (IS("index")) return vint(obj.loop->index0 + 1);
        if (IS("first")) return vbool(obj.loop->index0 == 0);
        if (IS("last")) return vbool(obj.loop->index0 == obj.loop->length - 1);
        if (IS("length")) return vint(obj.loop->length);
    }
#undef IS
    if (obj.k == V_UNDEF) return obj;
    fail(c, at, "unknown attribute ", dup_n(c, name, n));
    return (struct value){.k = V_UNDEF};
}

static const char *str_transform(struct ctx *c, const char *s, const char *how) {
    size_t n = strlen(s);
    if (!strcmp(how, "trim") || !strcmp(how, "strip")) {
        while (n && isspace((unsigned char)s[n - 1])) n--;
        while (n && isspace((unsigned char)*s)) s++, n--;
        return dup_n(c, s, n);
    }
    /* transformed before keep(): a failed keep returns a read-only "" */
    char *w = malloc(n + 1);
    if (!w) return keep(c, NULL);
    memcpy(w, s, n + 1);
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(how, "upper")) w[i] = (char)toupper((unsigned char)w[i]);
        else if (!strcmp(how, "lower")) w[i] = (char)tolower((unsigned char)w[i]);
        else if (!strcmp(how, "capitalize")) w[i] = (char)(i == 0 ? toupper((unsigned char)w[i]) : tolower((unsigned char)w[i]));
    }
    return keep(c, w);
}

/* Python's str.strip/lstrip/rstrip: `set` NULL strips whitespace, else the characters of set (ASCII
 * only: a byte of a multi-byte character is not a character). */
static const char *strip_chars(struct ctx *c, const char *s, const char *set, bool left, bool right) {
    size_t n = strlen(s);
#define STRIPPED(ch) (set ? (ch) != '\0' && strchr(set, (ch)) != NULL : isspace((unsigned char)(ch)) != 0)
    while (right && n && STRIPPED(s[n - 1])) n--;
    while (left && n && STRIPPED(*s)) s++, n--;
#undef STRIPPED
    return dup_n(c, s, n);
}

/* Python's str.split(sep) with a non-empty sep: the pieces, as a V_STRS list. */
static struct value split_str(struct ctx *c, const char *s, const char *sep) {
    size_t n_sep = strlen(sep), n = 1;
    for (const char *p = strstr(s, sep); p; p = strstr(p + n_sep, sep)) n++;
    const char **v = malloc(n * sizeof *v);
    if (!keep_mem(c, v)) return (struct value){.k = V_UNDEF};
    size_t k = 0;
    for (const char *p = s;; k++) {
        const char *q = strstr(p, sep);
        v[k] = dup_n(c, p, q ? (size_t)(q - p) : strlen(p));
        if (!q) break;
        p = q + n_sep;
    }
    return (struct value){.k = V_STRS, .strs = v, .lo = 0, .hi = (long long)n};
}

/* s.NAME(ARGS) after the "(": strip lstrip rstrip (no argument or a string of characters), upper
 * lower, startswith endswith (a string), split (a non-empty separator). */
static struct value call_method(struct parser *P, struct value v, const char *name, size_t n, size_t at) {
    struct ctx *c = P->c;
    struct value arg = {.k = V_UNDEF};
    bool has_arg = false;
    skip_ws(P);
    if (P->p < P->end && *P->p != ')') {
        arg = expr(P);
        has_arg = true;
    }
    if (!accept(P, ")")) return fail(c, at, "a method takes at most one argument", NULL), v;
    if (c->st != TRIT_OK) return v;
    char m[16];
    snprintf(m, sizeof m, "%.*s", (int)(n < 15 ? n : 15), name);
    if (v.k != V_STR) return fail(c, at, "method on a value that is not a string: ", dup_n(c, name, n)), v;
    if (has_arg && arg.k != V_STR) return fail(c, at, "a string method's argument is not a string: ", m), v;
    bool l = !strcmp(m, "strip") || !strcmp(m, "lstrip"), r = !strcmp(m, "strip") || !strcmp(m, "rstrip");
    if (l || r) {
        if (has_arg)
            for (const char *q = arg.s; *q; q++)
                if ((unsigned char)*q >= 0x80) return fail(c, at, "strip of non-ASCII characters", NULL), v;
        return vstr(strip_chars(c, v.s, has_arg ? arg.s : NULL, l, r));
    }
    if (!has_arg && (!strcmp(m, "upper") || !strcmp(m, "lower"))) return vstr(str_transform(c, v.s, m));
    if (has_arg && !strcmp(m, "startswith")) return vbool(strncmp(v.s, arg.s, strlen(arg.s)) == 0);
    if (has_arg && !strcmp(m, "endswith")) {
        size_t a = strlen(v.s), b = strlen(arg.s);
        return vbool(a >= b && memcmp(v.s + a - b, arg.s, b) == 0);
    }
    if (has_arg && !strcmp(m, "split") && arg.s[0]) return split_str(c, v.s, arg.s);
    return fail(c, at, "unsupported method ", dup_n(c, name, n)), v;
}

static struct value apply_filter(struct parser *P, struct value v, const char *name, size_t n, size_t at) {
    struct ctx *c = P->c;
    char f[32];
    snprintf(f, sizeof f, "%.*s", (int)(n < 31 ? n : 31), name);
    if (!strcmp(f, "length")) {
        if (v.k == V_LIST || v.k == V_STRS) return vint(v.hi - v.lo);
        if (v.k == V_STR) return vint((long long)strlen(v.s));
        fail(c, at, "length of a value that is not a list or string", NULL);
        return v;
    }
    if (!strcmp(f, "trim") || !strcmp(f, "capitalize") || !strcmp(f, "upper") || !strcmp(f, "lower")) {
        if (v.k != V_STR) return fail(c, at, "filter on a non-string: ", f), v;
        return vstr(str_transform(c, v.s, f));
    }
    fail(c, at, "unsupported filter ", dup_n(c, name, n));
    return v;
}

static struct value primary(struct parser *P) {
    struct ctx *c = P->c;
    skip_ws(P);
    size_t at = off(P);
    if (P->p >= P->end) return fail(c, at, "expression expected", NULL), (struct value){0};
    char ch = *P->p;
    if (ch == '\'' || ch == '"') {
        P->p++;
        struct sbuf b = {0};
        while (P->p < P->end && *P->p != ch) {
            char x = *P->p++;
            if (x == '\\' && P->p < P->end) {
                char e = *P->p++;
                x = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
            }
            sb_put(&b, &x, 1);
        }
        if (P->p >= P->end) {
            free(b.p);
            return fail(c, at, "unterminated string", NULL), (struct value){0};
        }
        P->p++;
        if (!b.p) return vstr("");
        return vstr(keep(c, b.p));
    }
    if (isdigit((unsigned char)ch)) {
        long long x = 0;
        while (P->p < P->end && isdigit((unsigned char)*P->p))
            if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, *P->p++ - '0', &x))
                return fail(c, at, "integer too large", NULL), (struct value){0};
        return vint(x);
    }
    if (ch == '(') {
        P->p++;
        struct value v = expr(P);
        if (!accept(P, ")")) fail(c, off(P), "')' expected", NULL);
        return v;
    }
    if (ch == '-') { /* unary minus on a literal or a name: -1 in a subscript (-a|f is (-a)|f in Jinja too) */
        P->p++;
        if (!enter(c, at)) return (struct value){0};
        struct value v = primary(P);
        c->depth--;
        if (c->st == TRIT_OK && (v.k != V_INT || v.i == LLONG_MIN)) return fail(c, at, "'-' needs an integer", NULL), v;
        return vint(-v.i);
    }
    const char *name;
    size_t n = read_name(P, &name);
    if (n == 0) return fail(c, at, "unexpected character ", dup_n(c, P->p, 1)), (struct value){0};
    if (n == 9 && memcmp(name, "namespace", 9) == 0 && accept(P, "(")) { /* namespace(a=expr, ...) */
        if (c->n_ns == MAX_NS) return fail(c, at, "too many namespace() objects", NULL), (struct value){0};
        int id = c->n_ns++;
        c->ns[id].n = 0;
        if (!accept(P, ")")) {
            do {
                const char *key;
                size_t kn = read_name(P, &key);
                if (!kn || !accept(P, "=")) return fail(c, off(P), "namespace() takes NAME=VALUE arguments", NULL), (struct value){0};
                ns_set(c, id, key, kn, expr(P), at);
            } while (accept(P, ","));
            if (!accept(P, ")")) return fail(c, off(P), "')' expected", NULL), (struct value){0};
        }
        return (struct value){.k = V_NS, .i = id};
    }
    if (n == 15 && memcmp(name, "raise_exception", 15) == 0) {
        if (!accept(P, "(")) return fail(c, at, "raise_exception needs (", NULL), (struct value){0};
        struct value msg = expr(P);
        accept(P, ")");
        if (c->st == TRIT_OK && !c->quiet) c->st = trit_error(TRIT_ERR_INVALID_ARG, "chat template: %s", to_str(c, msg));
        return (struct value){0};
    }
    return lookup(c, name, n);
}

static struct value postfix(struct parser *P) {
    struct ctx *c = P->c;
    struct value v = primary(P);
    for (;;) {
        if (c->st != TRIT_OK) return v;
        skip_ws(P);
        size_t at = off(P);
        if (accept(P, ".")) {
            const char *name;
            size_t n = read_name(P, &name);
            if (accept(P, "(")) {
                v = call_method(P, v, name, n, at);
            } else {
                v = attr(c, v, name, n, at);
            }
        } else if (accept(P, "[")) {
            skip_ws(P);
            bool slice = false;
            struct value a = {.k = V_NONE}, b = {.k = V_NONE}, step = {.k = V_NONE};
            if (P->p < P->end && *P->p != ':') a = expr(P);
            if (accept(P, ":")) {
                slice = true;
                skip_ws(P);
                if (P->p < P->end && *P->p != ']' && *P->p != ':') b = expr(P);
                if (accept(P, ":")) {
                    skip_ws(P);
                    if (P->p < P->end && *P->p != ']') step = expr(P);
                }
            }
            if (!accept(P, "]")) return fail(c, at, "']' expected", NULL), v;
            if (c->st != TRIT_OK) return v;
            if (slice && step.k == V_INT && step.i == -1 && a.k == V_NONE && b.k == V_NONE && v.k == V_LIST) {
                v.rev = !v.rev; /* [::-1] */
            } else if (slice) {
                if (step.k != V_NONE && !(step.k == V_INT && step.i == 1))
                    return fail(c, at, "a slice step other than 1, or -1 on a whole list", NULL), v;
                if (v.k != V_LIST) return fail(c, at, "slice of a value that is not a list", NULL), v;
                if (v.rev) return fail(c, at, "slice of a reversed list", NULL), v;
                long long len = v.hi - v.lo, lo = a.k == V_INT ? a.i : 0, hi = b.k == V_INT ? b.i : len;
                if (lo < 0) lo += len;
                if (hi < 0) hi += len;
                lo = lo < 0 ? 0 : lo > len ? len : lo;
                hi = hi < lo ? lo : hi > len ? len : hi;
                v.hi = v.lo + hi;
                v.lo = v.lo + lo;
            } else if ((v.k == V_LIST || v.k == V_STRS) && a.k == V_INT) {
                long long i = a.i < 0 ? a.i + (v.hi - v.lo) : a.i;
                if (i < 0 || i >= v.hi - v.lo) { /* quiet (not evaluated in Jinja): go on with undefined */
                    fail(c, at, "list index out of range", NULL);
                    v = (struct value){.k = V_UNDEF};
                } else if (v.k == V_STRS) {
                    v = vstr(v.strs[v.lo + i]);
                } else {
                    v = (struct value){.k = V_MSG, .i = v.rev ? v.hi - 1 - i : v.lo + i};
                }
            } else if (a.k == V_STR) {
                v = attr(c, v, a.s, strlen(a.s), at);
            } else {
                return fail(c, at, "unsupported subscript", NULL), v;
            }
        } else if (accept(P, "|")) {
            const char *name;
            size_t n = read_name(P, &name);
            v = apply_filter(P, v, name, n, at);
        } else if (accept_word(P, "is")) {
            bool neg = accept_word(P, "not");
            const char *name;
            size_t n = read_name(P, &name);
            bool r;
            if (n == 7 && !memcmp(name, "defined", 7)) r = v.k != V_UNDEF;
            else if (n == 9 && !memcmp(name, "undefined", 9)) r = v.k == V_UNDEF;
            else if (n == 4 && !memcmp(name, "none", 4)) r = v.k == V_NONE;
            else if (n == 6 && !memcmp(name, "string", 6)) r = v.k == V_STR;
            else if (n == 5 && !memcmp(name, "false", 5)) r = v.k == V_BOOL && !v.i;
            else if (n == 4 && !memcmp(name, "true", 4)) r = v.k == V_BOOL && v.i;
            else return fail(c, at, "unsupported test ", dup_n(c, name, n)), v;
            v = vbool(neg ? !r : r);
        } else {
            return v;
        }
    }
}

static struct value concat(struct parser *P) {
    struct ctx *c = P->c;
    struct value v = postfix(P);
    for (;;) {
        size_t at = off(P);
        bool tilde = accept(P, "~"), minus = !tilde && accept(P, "-");
        if (!tilde && !minus && !accept(P, "+")) return v;
        struct value w = postfix(P);
        if (c->st != TRIT_OK) return v;
        if (minus) {
            if (v.k != V_INT || w.k != V_INT) {
                fail(c, at, "'-' needs two integers", NULL);
                v = (struct value){.k = V_UNDEF};
            } else if (__builtin_sub_overflow(v.i, w.i, &v.i)) {
                return fail(c, at, "integer too large", NULL), v;
            }
        } else if (!tilde && v.k == V_INT && w.k == V_INT) {
            if (__builtin_add_overflow(v.i, w.i, &v.i)) return fail(c, at, "integer too large", NULL), v;
        } else if (tilde || (v.k == V_STR && w.k == V_STR)) {
            const char *a = to_str(c, v), *b = to_str(c, w);
            size_t na = strlen(a), nb = strlen(b);
            char *s = malloc(na + nb + 1);
            if (s) {
                memcpy(s, a, na);
                memcpy(s + na, b, nb + 1);
            }
            v = vstr(keep(c, s));
        } else {
            return fail(c, at, "'+' needs two strings or two integers", NULL), v;
        }
    }
}

static struct value comparison(struct parser *P) {
    struct ctx *c = P->c;
    struct value v = concat(P);
    skip_ws(P);
    size_t at = off(P);
    if (accept(P, "==")) return vbool(equal(c, v, concat(P)));
    if (accept(P, "!=")) return vbool(!equal(c, v, concat(P)));
    const char *ops[] = {"<=", ">=", "<", ">"};
    for (int i = 0; i < 4; i++) {
        if (accept(P, ops[i])) {
            struct value w = concat(P);
            if (v.k != V_INT || w.k != V_INT) return fail(c, at, "ordering needs integers", NULL), v;
            bool r = i == 0 ? v.i <= w.i : i == 1 ? v.i >= w.i : i == 2 ? v.i < w.i : v.i > w.i;
            return vbool(r);
        }
    }
    const char *save = P->p;
    bool neg = accept_word(P, "not");
    if (accept_word(P, "in")) {
        struct value w = concat(P);
        bool r = false;
        if (w.k == V_STR && v.k == V_STR) r = strstr(w.s, v.s) != NULL;
        else return fail(c, at, "'in' is supported for strings only", NULL), v;
        return vbool(neg ? !r : r);
    }
    P->p = save;
    return v;
}

static bool enter(struct ctx *c, size_t at) {
    if (++c->depth <= MAX_DEPTH) return true;
    fail(c, at, "nested too deeply", NULL);
    c->depth--;
    return false;
}

static struct value negation(struct parser *P) {
    if (accept_word(P, "not")) {
        if (!enter(P->c, off(P))) return (struct value){0};
        struct value v = vbool(!truthy(negation(P)));
        P->c->depth--;
        return v;
    }
    return comparison(P);
}

/* `and` and `or` give back an operand, as Jinja does ("a or b" is a when a is true), and evaluate
 * the right one quietly when the left decides (short-circuit: `loop.last or messages[i + 1]`). */
static struct value conjunction(struct parser *P) {
    struct value v = negation(P);
    while (accept_word(P, "and")) {
        bool skip = !truthy(v);
        P->c->quiet += skip;
        struct value w = negation(P);
        P->c->quiet -= skip;
        if (!skip) v = w;
    }
    return v;
}

static struct value expr(struct parser *P) {
    if (!enter(P->c, off(P))) return (struct value){0};
    struct value v = conjunction(P);
    while (accept_word(P, "or")) {
        bool skip = truthy(v);
        P->c->quiet += skip;
        struct value w = conjunction(P);
        P->c->quiet -= skip;
        if (!skip) v = w;
    }
    P->c->depth--;
    return v;
}

static struct value eval(struct ctx *c, const char *s, size_t n) {
    struct parser P = {c, s, s + n};
    struct value v = expr(&P);
    skip_ws(&P);
    if (c->st == TRIT_OK && P.p != P.end) fail(c, off(&P), "unexpected text in expression: ", dup_n(c, P.p, (size_t)(P.end - P.p)));
    return v;
}

/* ---- template pieces --------------------------------------------------------------------------- */

enum piece_kind { P_TEXT, P_EXPR, P_STMT };
struct piece {
    enum piece_kind kind;
    const char *s;
    size_t n;
};

struct pieces {
    struct piece *v;
    size_t n, cap;
};

static bool push_piece(struct pieces *ps, enum piece_kind k, const char *s, size_t n) {
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 64;
        struct piece *v = realloc(ps->v, cap * sizeof *v);
        if (!v) return false;
        ps->v = v;
        ps->cap = cap;
    }
    ps->v[ps->n++] = (struct piece){k, s, n};
    return true;
}

static enum trit_status split(struct ctx *c, const char *t, struct pieces *ps) {
    const char *p = t;
    bool trim_next_ws = false, trim_next_nl = false;
    while (*p) {
        const char *open = strstr(p, "{");
        while (open && open[1] != '{' && open[1] != '%' && open[1] != '#') open = strstr(open + 1, "{");
        const char *text_end = open ? open : p + strlen(p);
        const char *ts = p;
        if (trim_next_ws) while (ts < text_end && isspace((unsigned char)*ts)) ts++;
        else if (trim_next_nl && ts < text_end && *ts == '\n') ts++;
        const char *te = text_end;
        if (open) {
            bool minus = open[2] == '-';
            bool block = open[1] == '%' || open[1] == '#';
            if (minus) {
                while (te > ts && isspace((unsigned char)te[-1])) te--;
            } else if (block) { /* lstrip_blocks: spaces and tabs from the line start to the tag */
                const char *q = te;
                while (q > ts && (q[-1] == ' ' || q[-1] == '\t')) q--;
                if (q == t || q[-1] == '\n') te = q;
            }
        }
        if (te > ts && !push_piece(ps, P_TEXT, ts, (size_t)(te - ts))) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
        if (!open) break;
        char kind = open[1];
        const char *close_tok = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
        const char *close = strstr(open + 2, close_tok);
        if (!close) return fail(c, (size_t)(open - t), "unterminated tag", NULL);
        const char *in_s = open + 2, *in_e = close;
        if (in_s < in_e && *in_s == '-') in_s++;
        trim_next_ws = close > in_s && close[-1] == '-';
        if (trim_next_ws && in_e > in_s) in_e--;
        trim_next_nl = kind == '%' || kind == '#'; /* trim_blocks */
        if (kind != '#' && !push_piece(ps, kind == '{' ? P_EXPR : P_STMT, in_s, (size_t)(in_e - in_s)))
            return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
        p = close + 2;
    }
    return TRIT_OK;
}

/* The statement keyword of a piece ("if", "endfor", ...), and where its arguments start. */
static size_t keyword(const struct piece *pc, const char **args) {
    const char *s = pc->s, *e = pc->s + pc->n;
    while (s < e && isspace((unsigned char)*s)) s++;
    const char *k = s;
    while (s < e && is_word_char(*s)) s++;
    *args = s;
    return (size_t)(s - k);
}

static bool kw_is(const struct piece *pc, const char *kw) {
    const char *args;
    const char *s = pc->s;
    while (s < pc->s + pc->n && isspace((unsigned char)*s)) s++;
    size_t n = keyword(pc, &args);
    return pc->kind == P_STMT && n == strlen(kw) && memcmp(s, kw, n) == 0;
}

static const char *kw_start(const struct piece *pc) {
    const char *s = pc->s;
    while (s < pc->s + pc->n && isspace((unsigned char)*s)) s++;
    return s;
}

/* Index of the statement that closes the block opened at `i` (endif/endfor), -1 if none.
 * With `stops`, also stops at elif/else at depth 0. */
static long find_close(const struct pieces *ps, size_t i, size_t hi, bool stops) {
    int depth = 0;
    for (size_t j = i + 1; j < hi; j++) {
        const struct piece *pc = &ps->v[j];
        if (pc->kind != P_STMT) continue;
        if (kw_is(pc, "if") || kw_is(pc, "for")) depth++;
        else if (kw_is(pc, "endif") || kw_is(pc, "endfor")) {
            if (depth == 0) return (long)j;
            depth--;
        } else if (stops && depth == 0 && (kw_is(pc, "elif") || kw_is(pc, "else"))) {
            return (long)j;
        }
    }
    return -1;
}

static void exec(struct ctx *c, const struct pieces *ps, size_t lo, size_t hi);

/* A new variable in the innermost scope (it may shadow an outer one of the same name). */
static void push_var(struct ctx *c, const char *name, size_t n, struct value v, size_t at) {
    if (c->n_var == MAX_VARS || n >= sizeof c->var[0].name) {
        fail(c, at, "too many variables", NULL);
        return;
    }
    memcpy(c->var[c->n_var].name, name, n);
    c->var[c->n_var].name[n] = '\0';
    c->var[c->n_var++].v = v;
}

/* {% set %}: assigns in the innermost scope; a variable of an enclosing scope is shadowed, not
 * changed (Jinja: "it is not possible to set variables inside a block and have them show up
 * outside of it"; if blocks are no scope). */
static void set_var(struct ctx *c, const char *name, size_t n, struct value v, size_t at) {
    for (int i = c->n_var - 1; i >= c->scope; i--)
        if (strlen(c->var[i].name) == n && memcmp(c->var[i].name, name, n) == 0) {
            c->var[i].v = v;
            return;
        }
    push_var(c, name, n, v, at);
}

static void exec_stmt(struct ctx *c, const struct pieces *ps, size_t *i, size_t hi) {
    const struct piece *pc = &ps->v[*i];
    const char *args;
    size_t at = (size_t)(pc->s - c->src);
    size_t kn = keyword(pc, &args);
    const char *k = kw_start(pc), *end = pc->s + pc->n;
    if (kn == 2 && !memcmp(k, "if", 2)) {
        size_t j = *i;
        bool done = false;
        const char *cond = args;
        for (;;) {
            long next = find_close(ps, j, hi, true);
            if (next < 0) return (void)fail(c, at, "{% if %} without {% endif %}", NULL);
            const struct piece *np = &ps->v[next];
            bool take = false;
            if (!done) {
                if (cond) take = truthy(eval(c, cond, (size_t)(ps->v[j].s + ps->v[j].n - cond)));
                else take = true;
            }
            if (take) {
                exec(c, ps, j + 1, (size_t)next);
                done = true;
            }
            if (kw_is(np, "endif")) {
                *i = (size_t)next;
                return;
            }
            if (kw_is(np, "elif")) {
                const char *a2;
                keyword(np, &a2);
                cond = a2;
            } else {
                cond = NULL; /* else */
            }
            j = (size_t)next;
            if (c->st != TRIT_OK) return;
        }
    }
    if (kn == 3 && !memcmp(k, "for", 3)) {
        struct parser P = {c, args, end};
        const char *name;
        size_t n = read_name(&P, &name);
        if (!n || !accept_word(&P, "in")) return (void)fail(c, at, "expected {% for NAME in LIST %}", NULL);
        struct value list = eval(c, P.p, (size_t)(end - P.p));
        long close = find_close(ps, *i, hi, false);
        if (close < 0 || !kw_is(&ps->v[close], "endfor")) return (void)fail(c, at, "{% for %} without {% endfor %}", NULL);
        if (c->st != TRIT_OK) return;
        if (list.k != V_LIST) return (void)fail(c, at, "{% for %} over a value that is not a list", NULL);
        /* The body is a scope of its own, entered afresh each iteration: `loop` and the target come
         * first, then what the body sets; all of it goes at the end of the iteration. */
        struct loop_state ls = {0, list.hi - list.lo};
        const int saved = c->n_var, saved_scope = c->scope;
        push_var(c, "loop", 4, (struct value){.k = V_LOOP, .loop = &ls}, at);
        push_var(c, name, n, (struct value){.k = V_NONE}, at);
        c->scope = saved;
        for (long long m = list.lo; m < list.hi && c->st == TRIT_OK; m++) {
            c->n_var = saved + 2;
            ls.index0 = m - list.lo;
            c->var[saved + 1].v = (struct value){.k = V_MSG, .i = list.rev ? list.hi - 1 - (m - list.lo) : m};
            exec(c, ps, *i + 1, (size_t)close);
        }
        c->n_var = saved;
        c->scope = saved_scope;
        *i = (size_t)close;
        return;
    }
    if (kn == 3 && !memcmp(k, "set", 3)) {
        struct parser P = {c, args, end};
        const char *name, *attr_name = NULL;
        size_t n = read_name(&P, &name), an = 0;
        if (n && accept(&P, ".")) an = read_name(&P, &attr_name); /* {% set ns.attr = ... %} */
        if (!n || (attr_name && !an) || !accept(&P, "="))
            return (void)fail(c, at, "expected {% set NAME = EXPR %} or {% set NS.NAME = EXPR %}", NULL);
        struct value v = eval(c, P.p, (size_t)(end - P.p));
        if (!attr_name) {
            set_var(c, name, n, v, at);
            return;
        }
        struct value ns = lookup(c, name, n);
        if (ns.k != V_NS) return (void)fail(c, at, "{% set X.NAME %} where X is not a namespace()", NULL);
        ns_set(c, (int)ns.i, attr_name, an, v, at);
        return;
    }
    fail(c, at, "unsupported statement ", dup_n(c, k, kn ? kn : (size_t)(end - k)));
}

static void exec(struct ctx *c, const struct pieces *ps, size_t lo, size_t hi) {
    if (lo < hi && !enter(c, (size_t)(ps->v[lo].s - c->src))) return;
    for (size_t i = lo; i < hi && c->st == TRIT_OK; i++) {
        const struct piece *pc = &ps->v[i];
        if (++c->steps > MAX_STEPS) {
            fail(c, (size_t)(pc->s - c->src), "the template runs too long (more than 10^7 steps)", NULL);
            break;
        }
        if (pc->kind == P_TEXT) sb_put(&c->out, pc->s, pc->n);
        else if (pc->kind == P_EXPR) {
            const char *s = to_str(c, eval(c, pc->s, pc->n));
            sb_put(&c->out, s, strlen(s));
        } else exec_stmt(c, ps, &i, hi);
    }
    if (lo < hi) c->depth--;
}

enum trit_status chat_render_flags(const char *tmpl, const struct trit_chat_vars *vars, const struct chat_flag *flags,
                                   size_t n_flags, char **out) {
    if (!tmpl || !vars || !out || (!flags && n_flags)) return trit_error(TRIT_ERR_INVALID_ARG, "chat template: NULL argument");
    *out = NULL;
    struct ctx *c = calloc(1, sizeof *c);
    if (!c) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
    c->src = tmpl;
    c->vars = vars;
    c->flags = flags;
    c->n_flags = n_flags;
    struct pieces ps = {0};
    enum trit_status st = split(c, tmpl, &ps);
    if (st == TRIT_OK) {
        exec(c, &ps, 0, ps.n);
        st = c->st;
    }
    if (st == TRIT_OK && c->out.oom) st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "chat template: out of memory");
    if (st == TRIT_OK) {
        *out = c->out.p ? c->out.p : strdup("");
        c->out.p = NULL;
        if (!*out) st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    free(c->out.p);
    for (size_t i = 0; i < c->n_strings; i++) free(c->strings[i]);
    free(c->strings);
    free(ps.v);
    free(c);
    return st;
}

enum trit_status trit_chat_render(const char *tmpl, const struct trit_chat_vars *vars, char **out) {
    return chat_render_flags(tmpl, vars, NULL, 0, out);
}

/* ---- finding a model's template -------------------------------------------------------------- */

enum trit_status trit_chat_template_load(const char *path, char **out) {
    if (!path || !out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_chat_template_load: NULL argument");
    *out = NULL;
    const char *found = NULL;
    size_t len = 0;
    enum trit_status st;
    if (hf_is_folder(path)) {
        struct hf_folder f;
        TRIT_TRY(hf_folder_open(path, &f));
        struct hf_tokenizer_config tc = {0};
        st = hf_folder_tokenizer_config(&f, &tc);
        if (st == TRIT_OK && tc.chat_template && !(*out = strdup(tc.chat_template)))
            st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
        hf_tokenizer_config_free(&tc);
        hf_folder_close(&f);
        return st;
    }
    struct gguf_file g;
    TRIT_TRY(gguf_open(path, &g));
    const struct gguf_kv *kv = gguf_find_kv(&g, "tokenizer.chat_template");
    if (kv && kv->type == GGUF_TYPE_STRING) found = kv->str.ptr, len = kv->str.len;
    st = TRIT_OK;
    if (found && !(*out = strndup(found, len))) st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
    gguf_close(&g);
    return st;
}
