// labels: gpu
/*
 * test_tp_nccl.c: the NCCL communicator (host/tp/comm_nccl.c, cuda/tp_nccl.cu) on one GPU: a
 * 1-rank group made by ncclCommInitAll and one bootstrapped over MPI (ncclUniqueId broadcast), each
 * running every collective on device buffers through its stream. Skips without a device (fails with
 * TRIT_REQUIRE_GPU=1). Groups of several GPUs need several devices and are not tested here. The
 * communicator lives in the CUDA module (host/cuda_module.h), which this test links.
 *
 *   TRIT_REQUIRE_GPU=1 build/tests/test_tp_nccl --jobs 1
 */
#include <criterion/criterion.h>
#include <string.h>

#include "support.h"
#include "tp/comm.h"
#ifdef TRIT_HAVE_CUDA
#include "trit_cuda.h"
#endif

#ifdef TRIT_HAVE_CUDA
/* Every collective of a 1-rank group: results equal the inputs (sum and max over one rank), the
 * gather is a copy, and the statistics count them. */
static void exercise(struct trit_comm *c) {
    cr_assert(trit_comm_rank(c) == 0 && trit_comm_size(c) == 1 && trit_comm_backend(c) == TRIT_COMM_NCCL);
    cr_assert_not_null(trit_comm_stream(c));
    enum { N = 1000 };
    int32_t hi[N], hi_back[N];
    float hf[N], hf_back[N];
    for (int i = 0; i < N; i++) hi[i] = i * 7 - 3000, hf[i] = (float)i * 0.25f - 100.0f;
    void *di = NULL, *df = NULL, *dg = NULL;
    cr_assert_eq(trit_cuda_malloc(&di, sizeof hi), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_cuda_malloc(&df, sizeof hf), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_cuda_malloc(&dg, sizeof hf), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_cuda_upload(di, hi, sizeof hi), TRIT_OK);
    cr_assert_eq(trit_cuda_upload(df, hf, sizeof hf), TRIT_OK);
    cr_assert_eq(trit_comm_allreduce(c, di, N, TRIT_COMM_I32, TRIT_COMM_SUM), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_comm_allreduce(c, df, N, TRIT_COMM_F32, TRIT_COMM_MAX), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_comm_allgather(c, df, dg, N, TRIT_COMM_F32), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_comm_broadcast(c, di, sizeof hi, 0), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_comm_sync(c), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_comm_barrier(c), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_cuda_download(hi_back, di, sizeof hi), TRIT_OK);
    cr_assert_eq(trit_cuda_download(hf_back, dg, sizeof hf), TRIT_OK);
    cr_assert(memcmp(hi, hi_back, sizeof hi) == 0 && memcmp(hf, hf_back, sizeof hf) == 0);
    struct trit_comm_stats s;
    trit_comm_get_stats(c, &s);
    cr_assert_eq(s.n_calls, 5);
    cr_assert(!trit_comm_broken(c));
    trit_cuda_free(di), trit_cuda_free(df), trit_cuda_free(dg);
}
#endif

/* Without NCCL the NCCL communicator says so by name; with it, bad arguments are refused. No GPU
 * needed. */
Test(tp_nccl, without_nccl_or_devices) {
#ifdef TRIT_HAVE_CUDA
    struct trit_comm *c[2] = {NULL, NULL};
    const int devs[2] = {0, 1};
    if (!trit_comm_nccl_compiled()) {
        cr_assert_eq(trit_comm_nccl_create_all(2, devs, NULL, c), TRIT_ERR_UNSUPPORTED);
        cr_expect(strstr(trit_last_error(), "NCCL") || strstr(trit_last_error(), "CUDA"), "%s", trit_last_error());
    } else {
        cr_assert_eq(trit_comm_nccl_create_all(0, devs, NULL, c), TRIT_ERR_INVALID_ARG);
    }
    cr_assert(c[0] == NULL && c[1] == NULL);
#else
    cr_skip_test("this build has no CUDA module");
#endif
}

Test(tp_nccl, one_process_one_gpu) {
    if (!test_require_gpu()) return;
#ifdef TRIT_HAVE_CUDA
    if (!trit_comm_nccl_compiled()) cr_skip_test("this build has no NCCL");
    int dev = 0;
    struct trit_comm *c[1] = {NULL};
    cr_assert_eq(trit_comm_nccl_create_all(1, &dev, NULL, c), TRIT_OK, "%s", trit_last_error());
    exercise(c[0]);
    trit_comm_free(c[0]);
#endif
}

Test(tp_nccl, one_rank_bootstrapped_over_mpi) {
    if (!test_require_gpu()) return;
#ifdef TRIT_HAVE_CUDA
    if (!trit_comm_nccl_compiled() || !trit_comm_mpi_compiled()) cr_skip_test("this build lacks NCCL or MPI");
    struct trit_comm *boot = NULL, *c = NULL;
    cr_assert_eq(trit_comm_mpi_create(NULL, &boot), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_comm_size(boot), 1, "run this test without mpirun");
    cr_assert_eq(trit_comm_nccl_create_mpi(boot, 0, NULL, &c), TRIT_OK, "%s", trit_last_error());
    exercise(c);
    trit_comm_free(c);
    trit_comm_free(boot);
#endif
}
