/* threadpool.c: the CPU worker pool; see threadpool.h for the contract.
 *
 * Protocol, per job (one parallel_for):
 *   caller  1. waits until no worker is still inside the previous job (`active` == 0);
 *           2. writes the job (fn, ctx, each thread's cursor over its static range, done = 0);
 *           3. opens it: open = g, then generation = g (and wakes sleepers);
 *           4. runs tasks like any worker; waits until done == n_tasks; closes it: open = 0.
 *   worker  waits for generation to change to g; active += 1; if open == g it runs tasks, else
 *           the job is already closed (it woke late) and it runs nothing; active -= 1.
 *   running tasks: claim the next index of the own cursor (fetch_add) until the own range is
 *           exhausted, then claim from the other threads' cursors in turn (thread + 1, + 2, ...).
 * Steps 1-2 cannot overlap a worker reading the job: a worker raises `active` before it reads
 * `open` (seq_cst), the caller lowers `open` before it reads `active` (seq_cst), so either the
 * caller sees the worker and waits, or the worker sees the job closed. Counting finished tasks
 * (not finished workers) lets a call complete without a worker that is slow to wake or not
 * scheduled: its unclaimed tasks are taken by the threads that are running.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall() */
#endif
#include "core/threadpool.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#define TRIT_POOL_FUTEX 1
#endif

/* One thread's share of the current job: tasks [next, end), claimed by fetch_add on next. */
struct cursor {
    alignas(64) _Atomic int64_t next;
    _Atomic int64_t end;
};

/* Two words are waited on, each with a sleeper count so that the waker makes a system call only
 * when someone sleeps: `generation` (workers wait for a job) and `done` (the caller waits for the
 * tasks). Waker: store the word, then read the count; sleeper: raise the count, then re-read the
 * word. Both seq_cst: one of them sees the other's store, and no wake is lost. */
struct trit_pool {
    alignas(64) _Atomic uint32_t generation; /* bumped once per job (and at shutdown) */
    _Atomic int gen_sleepers;
    alignas(64) _Atomic uint32_t done; /* tasks of the open job that have finished */
    _Atomic int done_sleepers;
    alignas(64) _Atomic uint32_t open; /* generation of the open job, 0 when none is */
    _Atomic int active;                /* workers between their check of `open` and their exit */
    alignas(64) trit_pool_fn fn;       /* the job: written while no worker is active */
    void *ctx;
    int64_t base;    /* task index of the job's first task (long calls run as several jobs) */
    uint32_t n_jobtasks;
    _Atomic bool stop;
    _Atomic int spin_us;
    int n_threads;
    struct cursor *cursors; /* n_threads */
    uint8_t *scratch;       /* n_threads x TRIT_POOL_SCRATCH_BYTES, not zeroed */
    pthread_t *threads;
    struct worker_arg *args;
#ifndef TRIT_POOL_FUTEX
    pthread_mutex_t mutex;
    pthread_cond_t cond;
#endif
};

/* Tasks per job; a parallel_for with more runs as several jobs (done counts in 32 bits). */
#define MAX_JOB_TASKS ((int64_t)1 << 30)

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

/* ---- waiting on a word -------------------------------------------------------------------- */

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

/* Claims and runs tasks: the own range first, then the others' leftovers. */
static void run_tasks(struct trit_pool *pool, int thread) {
    int n = pool->n_threads;
    for (int k = 0; k < n; k++) {
        struct cursor *c = &pool->cursors[(thread + k) % n];
        int64_t end = atomic_load_explicit(&c->end, memory_order_relaxed);
        for (;;) {
            if (atomic_load_explicit(&c->next, memory_order_relaxed) >= end) break;
            int64_t task = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
            if (task >= end) break;
            pool->fn(pool->ctx, pool->base + task, thread);
            uint32_t finished = atomic_fetch_add(&pool->done, 1) + 1;
            if (finished == pool->n_jobtasks && atomic_load(&pool->done_sleepers) > 0)
                word_wake_all(pool, &pool->done);
        }
    }
}

static void *worker_main(void *varg) {
    struct worker_arg *arg = varg;
    struct trit_pool *pool = arg->pool;
    uint32_t seen = 0; /* the generation at creation: a job may be posted before we get here */
    for (;;) {
        seen = wait_until_changed(pool, &pool->generation, seen, &pool->gen_sleepers);
        if (atomic_load(&pool->stop)) break;
        atomic_fetch_add(&pool->active, 1);
        if (atomic_load(&pool->open) == seen) run_tasks(pool, arg->index);
        atomic_fetch_sub(&pool->active, 1);
    }
    return NULL;
}

/* Waits for workers still inside a closed job (they only find its cursors exhausted). */
static void wait_inactive(struct trit_pool *pool) {
    for (uint32_t i = 1; atomic_load(&pool->active) != 0; i++) {
        cpu_relax();
        if ((i & 1023u) == 0) sched_yield(); /* a preempted worker needs this core */
    }
}

static void run_job(struct trit_pool *pool, int64_t base, int64_t n_tasks, trit_pool_fn fn, void *ctx) {
    wait_inactive(pool);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->base = base;
    pool->n_jobtasks = (uint32_t)n_tasks;
    int64_t t = pool->n_threads, share = n_tasks / t, extra = n_tasks % t;
    for (int64_t i = 0; i < t; i++) { /* the static partition of threadpool.h */
        int64_t begin = i * share + (i < extra ? i : extra);
        atomic_store_explicit(&pool->cursors[i].next, begin, memory_order_relaxed);
        atomic_store_explicit(&pool->cursors[i].end, begin + share + (i < extra ? 1 : 0), memory_order_relaxed);
    }
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    uint32_t g = atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1;
    if (g == 0) g = 1; /* 0 means "no job open" */
    atomic_store(&pool->open, g);
    atomic_store(&pool->generation, g); /* publishes the job (seq_cst) */
    if (atomic_load(&pool->gen_sleepers) > 0) word_wake_all(pool, &pool->generation);

    run_tasks(pool, 0);

    uint32_t finished = atomic_load_explicit(&pool->done, memory_order_acquire);
    while (finished != pool->n_jobtasks)
        finished = wait_until_changed(pool, &pool->done, finished, &pool->done_sleepers);
    atomic_store(&pool->open, 0);
}

void trit_pool_parallel_for(struct trit_pool *pool, int64_t n_tasks, trit_pool_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (!pool || pool->n_threads == 1 || n_tasks == 1) {
        for (int64_t task = 0; task < n_tasks; task++) fn(ctx, task, 0);
        return;
    }
    for (int64_t base = 0; base < n_tasks; base += MAX_JOB_TASKS)
        run_job(pool, base, n_tasks - base < MAX_JOB_TASKS ? n_tasks - base : MAX_JOB_TASKS, fn, ctx);
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
    atomic_init(&pool->gen_sleepers, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->done_sleepers, 0);
    atomic_init(&pool->open, 0);
    atomic_init(&pool->active, 0);
    atomic_init(&pool->stop, false);
    atomic_init(&pool->spin_us, TRIT_POOL_SPIN_US_DEFAULT);
#ifndef TRIT_POOL_FUTEX
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->cond, NULL);
#endif
    int n_workers = n_threads - 1;
    pool->cursors = trit_alloc(sizeof(struct cursor) * (size_t)n_threads);
    pool->threads = trit_alloc(sizeof(pthread_t) * (size_t)n_workers);
    pool->args = trit_alloc(sizeof(struct worker_arg) * (size_t)n_workers);
    pool->scratch = aligned_alloc(TRIT_ALIGN, (size_t)n_threads * TRIT_POOL_SCRATCH_BYTES); /* untouched: not resident */
    if (!pool->cursors || !pool->threads || !pool->args || !pool->scratch) {
        pool->n_threads = 1; /* no worker to stop */
        trit_pool_free(pool);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "trit_pool_create: out of memory");
    }
    for (int i = 0; i < n_threads; i++) {
        atomic_init(&pool->cursors[i].next, 0);
        atomic_init(&pool->cursors[i].end, 0);
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
    if (pool->n_threads > 1) stop_workers(pool, pool->n_threads - 1);
#ifndef TRIT_POOL_FUTEX
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->cond);
#endif
    trit_free(pool->cursors);
    trit_free(pool->threads);
    trit_free(pool->args);
    free(pool->scratch);
    trit_free(pool);
}

void *trit_pool_scratch(struct trit_pool *pool, int thread) {
    if (!pool || thread < 0 || thread >= pool->n_threads) return NULL;
    return pool->scratch + (size_t)thread * TRIT_POOL_SCRATCH_BYTES;
}
