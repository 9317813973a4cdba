/*
 * forward_tp.c: the tensor-parallel CPU backend (tp.h): the MPI communicator of the job, and the
 * CPU backend (host/cpu/backend_cpu.c) as one rank over it. The forward pass is host/forward.c,
 * the same program one process runs; what a rank does differently is in the plan (its shards,
 * tp/plan.h) and in the collectives its ops call.
 */
#include "cpu/backend_cpu.h"
#include "tp/tp.h"

enum trit_status trit_tp_cpu_init(const struct trit_model *m, const struct trit_backend_config *cfg,
                                  const struct trit_tp_config *tp, void **out) {
    if (!m || !cfg || !tp || !out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tp_cpu_init: NULL argument");
    *out = NULL;
    if (tp->comm) return trit_cpu_rank_init(m, cfg, tp->comm, false, tp->quant, tp->floats, out);
    struct trit_comm_params cp = trit_comm_default_params();
    cp.timeout_ms = tp->timeout_ms;
    struct trit_comm *comm;
    TRIT_TRY(trit_comm_mpi_create(&cp, &comm));
    if (tp->expect_ranks > 0 && trit_comm_size(comm) != tp->expect_ranks) {
        const int size = trit_comm_size(comm);
        trit_comm_free(comm);
        return trit_error(TRIT_ERR_INVALID_ARG, "--tp %d: the MPI job has %d ranks (mpirun -np %d)", tp->expect_ranks,
                          size, tp->expect_ranks);
    }
    return trit_cpu_rank_init(m, cfg, comm, true, tp->quant, tp->floats, out);
}

/* The backend table's init: an MPI communicator over MPI_COMM_WORLD, the mode and the job size of cfg. */
enum trit_status trit_tp_cpu_init_cfg(const struct trit_model *m, const struct trit_backend_config *cfg, void **out) {
    const struct trit_tp_config tp = {.quant = cfg->tp_quant, .expect_ranks = cfg->tp_expect_ranks};
    return trit_tp_cpu_init(m, cfg, &tp, out);
}
