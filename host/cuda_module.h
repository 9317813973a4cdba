/*
 * cuda_module.h: the CUDA backend as a module loaded at run time. The CUDA code (cuda/, and the
 * GPU halves of tensor parallelism: host/tp/forward_tp_cuda.c, host/tp/comm_nccl.c) is built into
 * its own shared library, libtrit-cuda.so, which links the CUDA runtime, cuBLAS and NCCL. libtrit
 * never links them: it opens the module with dlopen the first time a CUDA device is asked for
 * (--device cuda, --tp N) or may be present (--device auto on a machine with NVIDIA device nodes),
 * so a CPU run neither loads those libraries nor needs them installed.
 *
 * Where the module is looked for, in order: $TRIT_CUDA_MODULE (a path); the directory of libtrit
 * itself; the dynamic linker's search path. The module exports one function,
 * trit_cuda_module_entry, which returns the table below; its abi field must equal this build's.
 *
 * Adding a CUDA entry point the host needs: a field here (append, bump TRIT_CUDA_MODULE_ABI), its
 * value in cuda/module.c, and the host calls it through trit_cuda_module_load().
 */
#ifndef TRIT_CUDA_MODULE_H
#define TRIT_CUDA_MODULE_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "tp/tp.h"

#define TRIT_CUDA_MODULE_ABI 2
#define TRIT_CUDA_MODULE_ENTRY "trit_cuda_module_entry"

struct trit_cuda_module {
    uint32_t abi;  /* TRIT_CUDA_MODULE_ABI of the module's build */
    uint32_t size; /* sizeof(struct trit_cuda_module) there */
    /* CUDA devices visible to this process (0 when the driver has none). Never fails. */
    int (*device_count)(void);
    /* The one-GPU backend (cuda/backend.cu). */
    const struct trit_backend_ops *backend;
    /* Tensor parallelism over NCCL (tp.h, "GPUs"), configured through trit_backend_config's tp_*
     * fields; without NCCL its init reports that. */
    const struct trit_backend_ops *tp_backend;
};

typedef const struct trit_cuda_module *(*trit_cuda_module_entry_fn)(void);

/* The module, loaded on the first call (thread safe; later calls return the same table). NULL when
 * this build has no CUDA backend or the module cannot be loaded; trit_last_error() then says why
 * (the file looked for and the loader's message), on every call. */
const struct trit_cuda_module *trit_cuda_module_load(void);
/* Whether this process has loaded the module (without loading it). */
bool trit_cuda_module_loaded(void);

#endif /* TRIT_CUDA_MODULE_H */
