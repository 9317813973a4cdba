/* threadpool.c: the CPU worker pool; see threadpool.h for the contract. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall() */
#endif
#include "core/threadpool.h"

#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#define TRIT_POOL_FUTEX 1
#endif

/* ---- one word to wait on ------------------------------------------------------------------
 *
 * Two words are waited on: `generation` (workers wait for the next job) and `pending` (the caller
 * waits for the workers to finish). Each has a sleeper count so that the waker makes a system
 * call only when someone sleeps. Waker: store the word, then read the sleeper count; sleeper:
 * raise the count, then re-read the word. Both are seq_cst, so at least one of them sees the
 * other's store (Dekker), and a wake is never lost. */
struct trit_pool {
    alignas(64) _Atomic uint32_t generation; /* bumped once per job (and at shutdown) */
    _Atomic int gen_sleepers;
    alignas(64) _Atomic uint32_t pending; /* workers that have not finished the current job */
    _Atomic int pending_sleepers;
    alignas(64) trit_pool_fn fn; /* the current job; written by the caller before the bump */
    void *ctx;
    int64_t n_tasks;
    _Atomic bool stop;
    _Atomic int spin_us;
    int n_threads;
    pthread_t *threads;
    struct worker_arg *args;
#ifndef TRIT_POOL_FUTEX
    pthread_mutex_t mutex;
    pthread_cond_t cond;
#endif
};

struct worker_arg {
    struct trit_pool *pool;
    int index; /* 1 .. n_threads - 1 */
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Sleeps while *word == expected (may return spuriously). */
static void word_wait(struct trit_pool *pool, _Atomic uint32_t *word, uint32_t expected) {
#ifdef TRIT_POOL_FUTEX
    (void)pool;
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
#else
    pthread_mutex_lock(&pool->mutex);
    while (atomic_load(word) == expected) pthread_cond_wait(&pool->cond, &pool->mutex);
    pthread_mutex_unlock(&pool->mutex);
#endif
}

static void word_wake_all(struct trit_pool *pool, _Atomic uint32_t *word) {
#ifdef TRIT_POOL_FUTEX
    (void)pool;
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
    pthread_mutex_lock(&pool->mutex);
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->mutex);
#endif
}

/* Waits until *word != value: spins for spin_us, then sleeps. Returns the new value. */
static uint32_t wait_until_changed(struct trit_pool *pool, _Atomic uint32_t *word, uint32_t value,
                                   _Atomic int *sleepers) {
    uint32_t now = atomic_load_explicit(word, memory_order_acquire);
    if (now != value) return now;
    int spin_us = atomic_load_explicit(&pool->spin_us, memory_order_relaxed);
    if (spin_us > 0) {
        int64_t t0 = trit_time_us();
        for (uint32_t i = 1;; i++) {
            cpu_relax();
            now = atomic_load_explicit(word, memory_order_acquire);
            if (now != value) return now;
            if ((i & 255u) == 0 && trit_time_us() - t0 >= spin_us) break;
        }
    }
    atomic_fetch_add(sleepers, 1);
    while ((now = atomic_load(word)) == value) word_wait(pool, word, value);
    atomic_fetch_sub(sleepers, 1);
    return now;
}

/* ---- running a job ------------------------------------------------------------------------ */

static void run_share(struct trit_pool *pool, int thread) {
    int64_t n = pool->n_tasks, t = pool->n_threads;
    int64_t base = n / t, extra = n % t; /* the first `extra` threads run one task more */
    int64_t begin = thread * base + (thread < extra ? thread : extra);
    int64_t end = begin + base + (thread < extra ? 1 : 0);
    for (int64_t task = begin; task < end; task++) pool->fn(pool->ctx, task, thread);
}

static void *worker_main(void *varg) {
    struct worker_arg *arg = varg;
    struct trit_pool *pool = arg->pool;
    uint32_t seen = 0; /* the generation at creation: a job may be posted before we get here */
    for (;;) {
        seen = wait_until_changed(pool, &pool->generation, seen, &pool->gen_sleepers);
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) break;
        run_share(pool, arg->index);
        if (atomic_fetch_sub(&pool->pending, 1) == 1 && atomic_load(&pool->pending_sleepers) > 0)
            word_wake_all(pool, &pool->pending);
    }
    return NULL;
}

void trit_pool_parallel_for(struct trit_pool *pool, int64_t n_tasks, trit_pool_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (!pool || pool->n_threads == 1 || n_tasks == 1) {
        for (int64_t task = 0; task < n_tasks; task++) fn(ctx, task, 0);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_tasks = n_tasks;
    atomic_store_explicit(&pool->pending, (uint32_t)(pool->n_threads - 1), memory_order_relaxed);
    atomic_fetch_add(&pool->generation, 1); /* publishes the job (seq_cst) */
    if (atomic_load(&pool->gen_sleepers) > 0) word_wake_all(pool, &pool->generation);

    run_share(pool, 0);

    uint32_t left = atomic_load_explicit(&pool->pending, memory_order_acquire);
    while (left != 0) left = wait_until_changed(pool, &pool->pending, left, &pool->pending_sleepers);
}

/* ---- life cycle --------------------------------------------------------------------------- */

int trit_pool_n_threads(const struct trit_pool *pool) { return pool ? pool->n_threads : 1; }

void trit_pool_set_spin_us(struct trit_pool *pool, int spin_us) {
    if (pool) atomic_store(&pool->spin_us, spin_us < 0 ? 0 : spin_us);
}

static void stop_workers(struct trit_pool *pool, int n_started) {
    atomic_store(&pool->stop, true);
    atomic_fetch_add(&pool->generation, 1);
    word_wake_all(pool, &pool->generation);
    for (int i = 0; i < n_started; i++) pthread_join(pool->threads[i], NULL);
}

enum trit_status trit_pool_create(int n_threads, struct trit_pool **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_pool_create: NULL out");
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_pool_create: %d threads (1..1024)", n_threads);
    struct trit_pool *pool = trit_alloc(sizeof *pool);
    if (!pool) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "trit_pool_create: out of memory");
    pool->n_threads = n_threads;
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->gen_sleepers, 0);
    atomic_init(&pool->pending_sleepers, 0);
    atomic_init(&pool->stop, false);
    atomic_init(&pool->spin_us, TRIT_POOL_SPIN_US_DEFAULT);
#ifndef TRIT_POOL_FUTEX
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->cond, NULL);
#endif
    int n_workers = n_threads - 1;
    pool->threads = trit_alloc(sizeof(pthread_t) * (size_t)n_workers);
    pool->args = trit_alloc(sizeof(struct worker_arg) * (size_t)n_workers);
    if (!pool->threads || !pool->args) {
        trit_pool_free(pool);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "trit_pool_create: out of memory");
    }
    for (int i = 0; i < n_workers; i++) {
        pool->args[i].pool = pool;
        pool->args[i].index = i + 1;
        if (pthread_create(&pool->threads[i], NULL, worker_main, &pool->args[i]) != 0) {
            stop_workers(pool, i);
            pool->n_threads = 1; /* nothing left to join */
            trit_pool_free(pool);
            return trit_error(TRIT_ERR_INTERNAL, "trit_pool_create: pthread_create failed for "
                                                 "worker %d of %d", i + 1, n_workers);
        }
    }
    *out = pool;
    return TRIT_OK;
}

void trit_pool_free(struct trit_pool *pool) {
    if (!pool) return;
    if (pool->n_threads > 1 && pool->threads && pool->args) stop_workers(pool, pool->n_threads - 1);
#ifndef TRIT_POOL_FUTEX
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->cond);
#endif
    trit_free(pool->threads);
    trit_free(pool->args);
    trit_free(pool);
}
