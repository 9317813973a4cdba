// device.cu: device discovery for the host runtime (extern "C", no CUDA types cross the line).
#include <cuda_runtime.h>

extern "C" int trit_cuda_device_count_impl(void) {
    int n = 0;
    // cudaGetDeviceCount fails with cudaErrorNoDevice or cudaErrorInsufficientDriver on machines
    // without a GPU; both mean "no device" to the caller.
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

// Makes dev the calling thread's current device (tensor parallelism: one host thread per GPU).
// Returns 0, or the CUDA error code.
extern "C" int trit_cuda_set_device_impl(int dev) {
    const cudaError_t e = cudaSetDevice(dev);
    if (e != cudaSuccess) (void)cudaGetLastError();
    return (int)e;
}
