/*
 * sampler.c: token choice from logits: greedy, or repetition penalty -> top-k -> top-p -> min-p ->
 * temperature -> draw, in llama.cpp's default order. All buffers are allocated at init, so
 * sampling allocates nothing per token.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "core/core.h"

struct candidate {
    float logit;
    int32_t id;
};

struct trit_sampler {
    struct trit_sampler_params p;
    int32_t n_vocab;
    struct candidate *cand; /* (n_vocab) */
    float *prob;            /* (n_vocab) */
    int32_t *recent;        /* ring of the last repeat_last_n accepted tokens */
    int32_t n_recent, recent_head;
    uint64_t rng[2];        /* xoroshiro128+ */
};

struct trit_sampler_params trit_sampler_default_params(void) {
    struct trit_sampler_params p = {
        .temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
        .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0x5EED,
    };
    return p;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* Uniform double in [0, 1) from xoroshiro128+. */
static double rng_uniform(struct trit_sampler *s) {
    uint64_t s0 = s->rng[0], s1 = s->rng[1];
    uint64_t r = s0 + s1;
    s1 ^= s0;
    s->rng[0] = rotl(s0, 24) ^ s1 ^ (s1 << 16);
    s->rng[1] = rotl(s1, 37);
    return (double)(r >> 11) * (1.0 / 9007199254740992.0);
}

void trit_sampler_reset(trit_sampler *s) {
    uint64_t x = s->p.seed;
    s->rng[0] = splitmix64(&x);
    s->rng[1] = splitmix64(&x);
    s->n_recent = 0;
    s->recent_head = 0;
}

enum trit_status trit_sampler_init(const struct trit_sampler_params *params, int32_t n_vocab, trit_sampler **out) {
    if (!params || !out || n_vocab <= 0) return trit_error(TRIT_ERR_INVALID_ARG, "sampler: bad arguments");
    *out = NULL;
    /* 0 is greedy; a negative temperature is no temperature (it would silently mean greedy too) */
    if (!(params->temperature >= 0.0f) || !isfinite(params->temperature))
        return trit_error(TRIT_ERR_INVALID_ARG, "sampler: temperature %g is out of range (0 = greedy, or a finite T > 0)",
                          (double)params->temperature);
    if (params->top_k < 0 || !(params->top_p > 0.0f && params->top_p <= 1.0f) || !(params->min_p >= 0.0f) ||
        params->min_p > 1.0f || !(params->repeat_penalty > 0.0f) || !isfinite(params->repeat_penalty) || params->repeat_last_n < 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "sampler: parameters out of range (top-k >= 0, 0 < top-p <= 1, 0 <= min-p <= 1, "
                                                "finite repeat penalty > 0, repeat window >= 0)");
    trit_sampler *s = trit_alloc(sizeof *s);
    if (!s) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "sampler: out of memory");
    s->p = *params;
    s->n_vocab = n_vocab;
    s->cand = trit_alloc((size_t)n_vocab * sizeof *s->cand);
    s->prob = trit_alloc((size_t)n_vocab * sizeof *s->prob);
    s->recent = trit_alloc((size_t)(params->repeat_last_n > 0 ? params->repeat_last_n : 1) * sizeof *s->recent);
    if (!s->cand || !s->prob || !s->recent) {
        trit_sampler_free(s);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "sampler: out of memory for %d candidates", n_vocab);
    }
    trit_sampler_reset(s);
    *out = s;
    return TRIT_OK;
}

void trit_sampler_free(trit_sampler *s) {
    if (!s) return;
    trit_free(s->cand);
    trit_free(s->prob);
    trit_free(s->recent);
    trit_free(s);
}

void trit_sampler_accept(trit_sampler *s, int32_t token) {
    if (s->p.repeat_last_n <= 0) return;
    s->recent[s->recent_head] = token;
    s->recent_head = (s->recent_head + 1) % s->p.repeat_last_n;
    if (s->n_recent < s->p.repeat_last_n) s->n_recent++;
}

/* The lowest id among the largest logits; NaN ranks below every number (as in the sampler). */
static int32_t argmax(const float *logits, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > logits[best] || (isnan(logits[best]) && !isnan(logits[i]))) best = i;
    return best;
}

/* Descending by logit, ascending id on ties, so the order (and every draw) is deterministic. */
static int cmp_candidate(const void *a, const void *b) {
    const struct candidate *x = a, *y = b;
    if (x->logit > y->logit) return -1;
    if (x->logit < y->logit) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Moves the k largest candidates to the front, sorted (quickselect partition, then sort k). */
static void partial_sort(struct candidate *c, int32_t n, int32_t k) {
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        struct candidate pivot = c[(lo + hi) / 2];
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (cmp_candidate(&c[i], &pivot) < 0) i++;
            while (cmp_candidate(&c[j], &pivot) > 0) j--;
            if (i <= j) {
                struct candidate t = c[i];
                c[i] = c[j];
                c[j] = t;
                i++;
                j--;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
    qsort(c, (size_t)k, sizeof *c, cmp_candidate);
}

/* The shared tail of the chain: c[0..k) holds the k best candidates, sorted (logit desc, id asc).
 * top-p -> min-p -> temperature -> one draw (one RNG step). */
static int32_t draw_sorted(trit_sampler *s, const struct candidate *c, int32_t k) {
    /* top-p and min-p on the temperature-1 distribution, as llama.cpp does. */
    const float max_logit = c[0].logit;
    double sum = 0.0;
    for (int32_t i = 0; i < k; i++) {
        s->prob[i] = expf(c[i].logit - max_logit);
        sum += s->prob[i];
    }
    if (s->p.top_p < 1.0f) {
        double cum = 0.0;
        for (int32_t i = 0; i < k; i++) {
            cum += s->prob[i] / sum;
            if (cum >= s->p.top_p) {
                k = i + 1;
                break;
            }
        }
    }
    if (s->p.min_p > 0.0f) {
        /* prob[0] is the largest (== 1 before normalization). */
        int32_t keep = 1;
        while (keep < k && s->prob[keep] >= s->p.min_p * s->prob[0]) keep++;
        k = keep;
    }

    /* Temperature, then a draw from what is left. */
    double total = 0.0;
    for (int32_t i = 0; i < k; i++) {
        s->prob[i] = expf((c[i].logit - max_logit) / s->p.temperature);
        total += s->prob[i];
    }
    double u = rng_uniform(s) * total, acc = 0.0;
    for (int32_t i = 0; i < k; i++) {
        acc += s->prob[i];
        if (u < acc) return c[i].id;
    }
    return c[k - 1].id;
}

/* top-k of the candidates c[0..n) (already penalized), then the rest of the chain. */
static int32_t sample_from(trit_sampler *s, struct candidate *c, int32_t n) {
    int32_t k = s->p.top_k > 0 && s->p.top_k < n ? s->p.top_k : n;
    partial_sort(c, n, k);
    if (s->p.temperature <= 0.0f) return c[0].id; /* greedy: the lowest id among the maxima */
    return draw_sorted(s, c, k);
}

int32_t trit_sampler_sample(trit_sampler *s, const float *logits) {
    const int32_t n = s->n_vocab;
    struct candidate *c = s->cand;
    /* A NaN logit would make the ordering inconsistent: it ranks below every number. */
    for (int32_t i = 0; i < n; i++) c[i] = (struct candidate){isnan(logits[i]) ? -INFINITY : logits[i], i};

    /* Repetition penalty (llama.cpp / CTRL style): positive logits divided, negative multiplied. */
    if (s->p.repeat_penalty != 1.0f) {
        for (int32_t r = 0; r < s->n_recent; r++) {
            int32_t id = s->recent[r];
            if (id < 0 || id >= n) continue;
            /* A token seen several times in the window is penalized once. */
            if (c[id].logit != logits[id]) continue;
            c[id].logit = c[id].logit > 0 ? c[id].logit / s->p.repeat_penalty : c[id].logit * s->p.repeat_penalty;
        }
    }
    if (s->p.temperature <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (c[i].logit > c[best].logit) best = i;
        return best;
    }
    return sample_from(s, c, n);
}

int32_t trit_sampler_sample_candidates(trit_sampler *s, const float *logits, const int32_t *ids, int32_t n) {
    if (!s || !logits || !ids || n <= 0 || n > s->n_vocab) return -1;
    const int32_t need = s->p.top_k > 0 && s->p.top_k < s->n_vocab ? s->p.top_k : s->n_vocab;
    if (n < need && s->p.temperature > 0.0f) return -1; /* not the whole top-k: not the full row's draw */
    struct candidate *c = s->cand;
    for (int32_t i = 0; i < n; i++) c[i] = (struct candidate){isnan(logits[i]) ? -INFINITY : logits[i], ids[i]};
    return sample_from(s, c, n);
}

int32_t trit_sampler_top_k(const trit_sampler *s) { return s->p.top_k; }

int32_t trit_sampler_penalty(const trit_sampler *s, const int32_t **recent, float *penalty) {
    if (recent) *recent = s->recent;
    if (penalty) *penalty = s->p.repeat_penalty;
    return s->p.repeat_penalty != 1.0f ? s->n_recent : 0;
}

/* Penalty rule shared with the backends' top-k (cuda/ops_hd.h has the device twin). */
static float penalized(float x, float penalty) {
    if (isnan(x)) return -INFINITY;
    return x > 0 ? x / penalty : x * penalty;
}

void trit_topk_penalized(const float *logits, int32_t n_vocab, const int32_t *pen_ids, int32_t n_pen, float penalty,
                         int32_t k, float *vals, int32_t *ids) {
    struct candidate best[TRIT_TOPK_MAX];
    int32_t nb = 0;
    if (k > TRIT_TOPK_MAX) k = TRIT_TOPK_MAX;
    if (k > n_vocab) k = n_vocab;
    for (int32_t i = 0; i < n_vocab; i++) {
        float x = isnan(logits[i]) ? -INFINITY : logits[i];
        for (int32_t r = 0; r < n_pen; r++)
            if (pen_ids[r] == i) {
                x = penalized(logits[i], penalty);
                break;
            }
        struct candidate cd = {x, i};
        if (nb == k && cmp_candidate(&cd, &best[nb - 1]) >= 0) continue;
        int32_t j = nb < k ? nb++ : k - 1;
        while (j > 0 && cmp_candidate(&cd, &best[j - 1]) < 0) {
            best[j] = best[j - 1];
            j--;
        }
        best[j] = cd;
    }
    for (int32_t i = 0; i < nb; i++) {
        vals[i] = best[i].logit;
        ids[i] = best[i].id;
    }
}

int32_t trit_argmax(const float *logits, int32_t n) { return argmax(logits, n); }
