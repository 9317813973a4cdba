#!/usr/bin/env bash
# gpu_session.sh: what to run first on a machine with a GPU (DESIGN.md section 7), in one go:
#   1. build the CUDA tests and the kernel benchmark for this GPU's architecture;
#   2. the gpu-labelled suite with TRIT_REQUIRE_GPU=1 (a skip is a failure here);
#   3. compute-sanitizer memcheck, racecheck and synccheck on the CUDA kernel tests;
#   4. bench_kernels (2B and 8B shapes by default), CSV and JSON next to the log.
#
#   cuda/check/gpu_session.sh [RESULTS_DIR] [bench args...]      (default: bench/results/<date>-<gpu>)
# Exits non-zero on the first failing step; the logs stay in RESULTS_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '_')
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
out=${1:-bench/results/$(date +%Y%m%d)-${gpu}}
shift || true
mkdir -p "$out"
nvidia-smi -q > "$out/nvidia-smi.txt" 2>&1 || true

cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$cc" > "$out/configure.log"
cmake --build build-gpu -j"$(nproc)" --target test_cuda_kernels test_cuda_decode test_cuda_layout test_gpu_gate \
    bench_kernels 2>&1 | tee "$out/build.log" | tail -3

TRIT_REQUIRE_GPU=1 ctest --test-dir build-gpu -R "test_cuda|test_gpu_gate" --output-on-failure 2>&1 | tee "$out/ctest_gpu.log"

if command -v compute-sanitizer > /dev/null; then
    for tool in memcheck racecheck synccheck; do
        # --jobs 1: one Criterion worker at a time; the kernels' own launches are what is checked
        TRIT_REQUIRE_GPU=1 compute-sanitizer --tool "$tool" --error-exitcode 3 \
            build-gpu/tests/test_cuda_kernels --jobs 1 --filter '*gemv_*' 2>&1 | tail -20 | tee "$out/sanitizer_${tool}.log"
        TRIT_REQUIRE_GPU=1 compute-sanitizer --tool "$tool" --error-exitcode 3 \
            build-gpu/tests/test_cuda_kernels --jobs 1 --filter '*act_quantize*' 2>&1 | tail -5 | tee -a "$out/sanitizer_${tool}.log"
        # the cp.async ring and its barriers are what racecheck and synccheck are for (slow: minutes)
        TRIT_REQUIRE_GPU=1 compute-sanitizer --tool "$tool" --error-exitcode 3 \
            build-gpu/tests/test_cuda_kernels --jobs 1 --filter '*gemm_mma_i32*' 2>&1 | tail -5 | tee -a "$out/sanitizer_${tool}.log"
    done
else
    echo "compute-sanitizer not found: skipped" | tee "$out/sanitizer.log"
fi

(cd "$out" && "$OLDPWD/build-gpu/bench/bench_kernels" --models 2b,8b --out bench_kernels "$@") 2>&1 | tee "$out/bench_kernels.log"
echo "results in $out"
