// labels: unit
/*
 * test_threadpool.c: the CPU worker pool (core/threadpool.h): every task runs exactly once, across
 * many reuses of one pool, with spinning and with sleeping waits, with fewer tasks than threads;
 * the static partition when the threads are idle and waiting; and that a thread stuck in a task
 * does not hold up the tasks of its range that it has not started (they are taken by others).
 *
 *   ctest --test-dir build -R test_threadpool --output-on-failure
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>

#include "core/threadpool.h"
#include "support.h"

#define MAX_TASKS 1000

struct count_ctx {
    _Atomic int runs[MAX_TASKS];
    int thread_of[MAX_TASKS];
    int n_threads;
    _Atomic int bad_thread;
};

static void count_task(void *vctx, int64_t task, int thread) {
    struct count_ctx *ctx = vctx;
    atomic_fetch_add(&ctx->runs[task], 1);
    ctx->thread_of[task] = thread;
    if (thread < 0 || thread >= ctx->n_threads) atomic_store(&ctx->bad_thread, 1);
}

/* The documented partition: n = b * T + e; thread i runs b + (i < e) tasks from i * b + min(i, e). */
static int expected_thread(int64_t task, int64_t n_tasks, int n_threads) {
    int64_t b = n_tasks / n_threads, e = n_tasks % n_threads;
    for (int i = 0; i < n_threads; i++) {
        int64_t begin = i * b + (i < e ? i : e), end = begin + b + (i < e ? 1 : 0);
        if (task >= begin && task < end) return i;
    }
    return -1;
}

static int64_t g_moved;

static void run_and_check(struct trit_pool *pool, int64_t n_tasks, struct count_ctx *ctx) {
    memset(ctx, 0, sizeof *ctx);
    ctx->n_threads = trit_pool_n_threads(pool);
    trit_pool_parallel_for(pool, n_tasks, count_task, ctx);
    cr_assert_eq(atomic_load(&ctx->bad_thread), 0);
    int64_t moved = 0; /* tasks that ran on another thread than their owner (a late worker) */
    for (int64_t t = 0; t < n_tasks; t++) {
        cr_assert_eq(atomic_load(&ctx->runs[t]), 1, "task %lld of %lld ran %d times on %d threads", (long long)t,
                     (long long)n_tasks, atomic_load(&ctx->runs[t]), ctx->n_threads);
        if (pool) moved += ctx->thread_of[t] != expected_thread(t, n_tasks, ctx->n_threads);
        else cr_assert_eq(ctx->thread_of[t], 0); /* NULL pool: the caller runs everything */
    }
    g_moved += moved;
    for (int64_t t = n_tasks; t < MAX_TASKS; t++) cr_assert_eq(atomic_load(&ctx->runs[t]), 0);
}

static struct count_ctx g_ctx;

Test(threadpool, every_task_once_on_its_thread) {
    const int threads[] = {1, 2, 3, 4, 8};
    const int64_t tasks[] = {0, 1, 2, 3, 5, 7, 8, 64, 100, 999, 1000};
    for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++) {
        struct trit_pool *pool;
        cr_assert_eq(trit_pool_create(threads[i], &pool), TRIT_OK);
        cr_assert_eq(trit_pool_n_threads(pool), threads[i]);
        for (int rep = 0; rep < 20; rep++)
            for (size_t j = 0; j < sizeof tasks / sizeof tasks[0]; j++) run_and_check(pool, tasks[j], &g_ctx);
        trit_pool_free(pool);
    }
    cr_log_info("tasks run by another thread than their owner: %lld", (long long)g_moved);
}

/* The static partition itself: every thread starts with the first task of its own range. Each
 * first task holds its thread at a barrier until all threads have started one, so no thread can
 * run out of work and take another's first task before its owner claims it. (Later tasks of a
 * range may legitimately move to a thread that finished early.) */
struct barrier_ctx {
    struct count_ctx count;
    _Atomic int started;
    int n_threads;
    int64_t tasks_per_thread;
};
static void barrier_task(void *vctx, int64_t task, int thread) {
    struct barrier_ctx *ctx = vctx;
    if (task % ctx->tasks_per_thread == 0) {
        atomic_fetch_add(&ctx->started, 1);
        int64_t t0 = trit_time_us();
        while (atomic_load(&ctx->started) < ctx->n_threads && trit_time_us() - t0 < 10 * 1000 * 1000) {
        }
    }
    count_task(&ctx->count, task, thread);
}

Test(threadpool, static_partition_when_all_threads_run) {
    static struct barrier_ctx ctx;
    for (int n_threads = 2; n_threads <= 3; n_threads++) {
        struct trit_pool *pool;
        cr_assert_eq(trit_pool_create(n_threads, &pool), TRIT_OK);
        for (int rep = 0; rep < 20; rep++) {
            memset(&ctx, 0, sizeof ctx);
            ctx.n_threads = ctx.count.n_threads = n_threads;
            ctx.tasks_per_thread = 5;
            trit_pool_parallel_for(pool, 5 * n_threads, barrier_task, &ctx);
            cr_assert_eq(atomic_load(&ctx.started), n_threads, "a thread never started its range");
            for (int64_t t = 0; t < 5 * n_threads; t++) {
                cr_assert_eq(atomic_load(&ctx.count.runs[t]), 1);
                if (t % 5 == 0) cr_assert_eq(ctx.count.thread_of[t], t / 5, "task %lld", (long long)t);
            }
        }
        trit_pool_free(pool);
    }
}

/* Thread 2's first task (4) waits for its second (5): without stealing, nothing would run task 5
 * and the call would hang; with it, threads 0 and 1 take task 5 from thread 2's range. */
struct steal_ctx {
    _Atomic int done5;
    _Atomic int timed_out;
    _Atomic int runs[6];
};
static void steal_task(void *vctx, int64_t task, int thread) {
    (void)thread;
    struct steal_ctx *ctx = vctx;
    if (task == 4) {
        int64_t t0 = trit_time_us();
        while (!atomic_load(&ctx->done5))
            if (trit_time_us() - t0 > 10 * 1000 * 1000) {
                atomic_store(&ctx->timed_out, 1);
                break;
            }
    }
    if (task == 5) atomic_store(&ctx->done5, 1);
    atomic_fetch_add(&ctx->runs[task], 1);
}

Test(threadpool, unstarted_tasks_are_taken_by_other_threads) {
    struct trit_pool *pool;
    cr_assert_eq(trit_pool_create(3, &pool), TRIT_OK);
    for (int rep = 0; rep < 50; rep++) {
        static struct steal_ctx ctx;
        memset(&ctx, 0, sizeof ctx);
        trit_pool_parallel_for(pool, 6, steal_task, &ctx);
        cr_assert_eq(atomic_load(&ctx.timed_out), 0, "task 5 was never taken from the blocked thread");
        for (int t = 0; t < 6; t++) cr_assert_eq(atomic_load(&ctx.runs[t]), 1);
    }
    trit_pool_free(pool);
}

Test(threadpool, null_pool_runs_on_caller) {
    run_and_check(NULL, 17, &g_ctx);
    for (int t = 0; t < 17; t++) cr_assert_eq(g_ctx.thread_of[t], 0);
    cr_assert_eq(trit_pool_n_threads(NULL), 1);
    trit_pool_free(NULL);
}

/* Thousands of back-to-back jobs on one pool (the decode pattern), spinning and sleeping. */
struct sum_ctx {
    _Atomic int64_t sum;
};
static void sum_task(void *vctx, int64_t task, int thread) {
    (void)thread;
    struct sum_ctx *ctx = vctx;
    atomic_fetch_add(&ctx->sum, task + 1);
}

Test(threadpool, reuse_many_times) {
    struct trit_pool *pool;
    cr_assert_eq(trit_pool_create(3, &pool), TRIT_OK);
    const int spins[] = {TRIT_POOL_SPIN_US_DEFAULT, 0, 5};
    for (size_t s = 0; s < sizeof spins / sizeof spins[0]; s++) {
        trit_pool_set_spin_us(pool, spins[s]);
        for (int rep = 0; rep < 3000; rep++) {
            struct sum_ctx ctx;
            atomic_init(&ctx.sum, 0);
            int64_t n = 1 + rep % 13;
            trit_pool_parallel_for(pool, n, sum_task, &ctx);
            cr_assert_eq(atomic_load(&ctx.sum), n * (n + 1) / 2, "spin %d rep %d", spins[s], rep);
        }
    }
    trit_pool_free(pool);
}

/* A job posted right after creation, and pools created and freed in a loop (no leaked or stuck
 * threads; workers that have not started yet still see the first job). */
Test(threadpool, create_free_cycles) {
    for (int i = 0; i < 50; i++) {
        struct trit_pool *pool;
        cr_assert_eq(trit_pool_create(1 + i % 4, &pool), TRIT_OK);
        if (i % 2) trit_pool_set_spin_us(pool, 0);
        run_and_check(pool, 10, &g_ctx);
        trit_pool_free(pool);
    }
}

Test(threadpool, bad_arguments) {
    struct trit_pool *pool = (struct trit_pool *)1;
    cr_expect_eq(trit_pool_create(0, &pool), TRIT_ERR_INVALID_ARG);
    cr_expect_null(pool);
    cr_expect_eq(trit_pool_create(2000, &pool), TRIT_ERR_INVALID_ARG);
    cr_expect_eq(trit_pool_create(2, NULL), TRIT_ERR_INVALID_ARG);
}
