/*
 * threadpool.h: a fixed pool of worker threads for the CPU backend (`-t N`).
 *
 * The threads are created once, by trit_pool_create; the decode path only wakes them. A call
 *
 *     trit_pool_parallel_for(pool, n_tasks, fn, ctx);
 *
 * runs fn(ctx, task, thread) once for every task in [0, n_tasks) and returns when all have run.
 * The calling thread takes part as thread 0; workers are threads 1 .. n_threads - 1.
 *
 * Partitioning is static first: with n_tasks = b * n_threads + e (0 <= e < n_threads), thread i
 * owns the b + (i < e) contiguous tasks that start at i * b + min(i, e), and runs them in
 * increasing order. So with n_tasks == n_threads task i normally runs on thread i, a kernel that splits its
 * rows into ranges gets one contiguous range (one weight stream) per thread, and with fewer tasks
 * than threads the caller (thread 0) is always busy. A thread that has finished its own range then
 * takes the tasks other threads have not claimed yet (owner + 1, + 2, ...): on a machine where a
 * worker wakes late or is not scheduled, the call finishes on the threads that run instead of
 * waiting for it. Each task still runs exactly once; `thread` names the thread that runs it, so
 * per-thread scratch indexed by it stays private. Results must not depend on which thread runs a
 * task (the matmul kernels' do not: integer, exact).
 *
 * Waiting: an idle worker spins (with a pause instruction) for spin_us microseconds after its last
 * task, then sleeps on a futex (a mutex and condition variable off Linux). The caller waits for
 * the tasks the same way. Spinning keeps the wake-up latency of back-to-back calls (one per
 * matrix in a decode step) at well under a microsecond; sleeping frees the cores between tokens.
 *
 * Not re-entrant: one parallel_for at a time per pool, and fn must not call parallel_for on the
 * same pool. fn must not fail; a task that can fail records its status in ctx.
 */
#ifndef TRIT_THREADPOOL_H
#define TRIT_THREADPOOL_H

#include <stdint.h>

#include "core/core.h"

struct trit_pool;

/* One task: `task` in [0, n_tasks), `thread` in [0, n_threads) is the thread running it. */
typedef void (*trit_pool_fn)(void *ctx, int64_t task, int thread);

/* Default spin time before a waiting thread sleeps, in microseconds. */
#define TRIT_POOL_SPIN_US_DEFAULT 200

/* Creates a pool of n_threads threads in all (the caller plus n_threads - 1 workers);
 * 1 <= n_threads <= 1024. n_threads == 1 starts no thread. *out is NULL on failure. */
enum trit_status trit_pool_create(int n_threads, struct trit_pool **out);
/* Stops and joins the workers and frees the pool. Accepts NULL. */
void trit_pool_free(struct trit_pool *pool);
/* The thread count given at creation; 1 for a NULL pool. */
int trit_pool_n_threads(const struct trit_pool *pool);
/* Bytes of private scratch each thread of a pool has (trit_pool_scratch): room for a kernel to
 * unpack a block of weights that it then reuses from cache (cpu/gemm_cpu.c). */
#define TRIT_POOL_SCRATCH_BYTES (192 * 1024)
/* Thread `thread`'s scratch: TRIT_POOL_SCRATCH_BYTES, 64-byte aligned, contents undefined, private
 * to the task running on that thread. NULL for a NULL pool. Allocated with the pool (only the pages
 * a kernel touches become resident). */
void *trit_pool_scratch(struct trit_pool *pool, int thread);
/* Sets how long waiting threads spin before they sleep; 0 sleeps at once. Call between
 * parallel_for calls, not during one. */
void trit_pool_set_spin_us(struct trit_pool *pool, int spin_us);

/* Runs every task once (see the header comment) and returns when all are done. A NULL pool runs
 * them all on the caller, in order. n_tasks <= 0 returns at once. */
void trit_pool_parallel_for(struct trit_pool *pool, int64_t n_tasks, trit_pool_fn fn, void *ctx);

#endif /* TRIT_THREADPOOL_H */
