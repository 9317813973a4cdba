/*
 * backend_cpu.h: the CPU backend's rank (backend_cpu.c), for host/tp/forward_tp.c, which creates the
 * MPI communicator of a tensor-parallel CPU job. Internal to host/.
 */
#ifndef TRIT_CPU_BACKEND_CPU_H
#define TRIT_CPU_BACKEND_CPU_H

#include "backend.h"
#include "tp/tp.h"

/* One rank's CPU backend over comm (host memory: MPI or the one-rank communicator; freed with the
 * state when own_comm, also when init fails). Collective: every rank of comm calls it with the same
 * model and configuration (checked by a fingerprint), and it fails on every rank when it fails on
 * one. cfg->n_threads 0 = the online cores divided by the ranks on this node. floats: grouped
 * mode's per-shard alpha (NULL: the model's). */
enum trit_status trit_cpu_rank_init(const struct trit_model *m, const struct trit_backend_config *cfg,
                                    struct trit_comm *comm, bool own_comm, enum trit_tp_quant quant,
                                    const struct trit_tp_float_source *floats, void **state);

/* trit_tp_cpu_backend's init (forward_tp.c). */
enum trit_status trit_tp_cpu_init_cfg(const struct trit_model *m, const struct trit_backend_config *cfg, void **out);

#endif /* TRIT_CPU_BACKEND_CPU_H */
