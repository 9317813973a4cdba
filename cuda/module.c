/*
 * module.c: the entry point of libtrit-cuda.so, the CUDA backend module (host/cuda_module.h).
 * libtrit finds this one symbol with dlsym and reaches everything else through the table.
 */
#include "cuda_module.h"

int trit_cuda_device_count_impl(void); /* cuda/device.cu */

static const struct trit_cuda_module module = {
    .abi = TRIT_CUDA_MODULE_ABI,
    .size = sizeof(struct trit_cuda_module),
    .device_count = trit_cuda_device_count_impl,
    .backend = &trit_cuda_backend,
    /* without NCCL its init reports that (host/tp/forward_tp_cuda.c) */
    .tp_backend = &trit_tp_cuda_backend,
};

__attribute__((visibility("default"))) const struct trit_cuda_module *trit_cuda_module_entry(void);
const struct trit_cuda_module *trit_cuda_module_entry(void) { return &module; }
