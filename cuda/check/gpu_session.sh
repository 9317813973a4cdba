#!/usr/bin/env bash
# gpu_session.sh: what to run first on a machine with a GPU (docs/design.md section 7), in one go and
# in about 8 minutes on an H100 (the device tool allows 10 per call):
#   1. build the gpu-labelled tests, `trit` and the kernel benchmark for this GPU's architecture;
#   2. the whole gpu-labelled suite with TRIT_REQUIRE_GPU=1 (a skip is a failure here);
#   3. compute-sanitizer memcheck and racecheck on the kernel tests (ternary kernels, the backend's
#      other ops), on a decode loop through the CUDA graph and on batches of several sequences over
#      the paged cache with forks (test_cuda_backend);
#   4. `trit bench --device cuda` on synthetic:2b4t and synthetic:8b (pp512, tg128);
#   5. bench_kernels (2B and 8B shapes): ternary GEMV/GEMM against cuBLAS, CSV and JSON; the
#      attention kernels (decode at 512 and 4096 positions, prefill of 512), <out>_attention.csv.
# The CUDA review's checks (docs/design.md section 7) are in these steps: test_cuda_backend_ops's
# head_gemv_any_row_count (1, 8, 9, 512 rows) and the prefill test over both query tiles,
# test_cuda_tp's logits_all_more_than_8_rows_across_gpu_counts (bit for bit on 2+ GPUs), the decode
# attention's bandwidth in bench_kernels' attention rows, and the NCCL warm-up in every TP test.
# Every step writes its log to RESULTS_DIR (default bench/results/<gpu>-<date>) and runs under a
# time limit; a failing or timed-out step does not stop the later ones. summary.txt lists each
# step with its status and duration; the exit status is non-zero if any step failed.
#
#   cuda/check/gpu_session.sh [RESULTS_DIR] [bench_kernels args...]
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$PWD
budget_s=${TRIT_SESSION_BUDGET_S:-470}
t0=$(date +%s)

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr -cs 'A-Za-z0-9.\n-' '_' | sed 's/_$//')
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
gpu=${gpu:-no-gpu}
cc=${cc:-90}
out=${1:-bench/results/${gpu}-$(date +%Y%m%d)}
shift || true
mkdir -p "$out"
out=$(cd "$out" && pwd)
: > "$out/summary.txt"
nvidia-smi -q > "$out/nvidia-smi.txt" 2>&1 || true
{ git rev-parse HEAD; git status --short; } > "$out/git.txt" 2>&1 || true
failed=0

# step NAME LIMIT_S COMMAND...: runs under min(LIMIT_S, what is left of the budget), logs to NAME.log.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((budget_s - ($(date +%s) - t0)))
    if [ "$left" -lt 20 ]; then
        echo "$name SKIPPED (session budget spent)" | tee -a "$out/summary.txt"
        failed=1
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local start rc status
    start=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
    rc=$?
    status=ok
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status="TIMEOUT after ${limit}s"; elif [ $rc -ne 0 ]; then status="FAILED (rc $rc)"; fi
    [ $rc -ne 0 ] && failed=1
    echo "$name: $status, $(($(date +%s) - start)) s" | tee -a "$out/summary.txt"
    tail -n 4 "$out/$name.log" | sed 's/^/    /'
}

# 1. build: the gpu-labelled tests, trit, bench_kernels
gpu_tests=$(grep -l '^// labels:.*\bgpu\b' tests/test_*.c | xargs -n1 basename | sed 's/\.c$//' | tr '\n' ' ')
step configure 60 cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$cc"
# shellcheck disable=SC2086
step build 240 cmake --build build-gpu -j"$(nproc)" --target trit bench_kernels $gpu_tests

# 2. the gpu-labelled suite; a skip fails
step ctest_gpu 150 env TRIT_REQUIRE_GPU=1 ctest --test-dir build-gpu -L gpu --output-on-failure

# 3. compute-sanitizer (one Criterion worker at a time: the kernels' own launches are what is checked)
if command -v compute-sanitizer > /dev/null; then
    # shellcheck disable=SC2317 # called through bash -c
    san() { # san TOOL TEST FILTER
        TRIT_REQUIRE_GPU=1 compute-sanitizer --tool "$1" --error-exitcode 3 "build-gpu/tests/$2" --jobs 1 --filter "$3"
    }
    export -f san
    step memcheck 110 bash -c 'set -e
        san memcheck test_cuda_kernels "*gemv_dp4a_i32*"
        san memcheck test_cuda_kernels "*gemv_add_i32*"
        san memcheck test_cuda_kernels "*act_quantize*"
        san memcheck test_cuda_kernels "*gemm_mma_i32*"
        san memcheck test_cuda_kernels "*group*"
        san memcheck test_cuda_backend_ops "*"
        san memcheck test_cuda_backend "*decode_loop_graph_equals_eager*"
        san memcheck test_cuda_backend "*group_rule_models*"
        san memcheck test_cuda_tp "*one_gpu_exact*"
        san memcheck test_cuda_kernels "*topk*"
        san memcheck test_cuda_backend "*forward_topk*"
        san memcheck test_cuda_backend "*kv_copy_and_fork*"'
    step racecheck 90 bash -c 'set -e
        san racecheck test_cuda_kernels "*gemm_mma_f32*"
        san racecheck test_cuda_kernels "*group_rule*"
        san racecheck test_cuda_backend_ops "*attention*"
        san racecheck test_cuda_backend_ops "*norm*"
        san racecheck test_cuda_backend "*decode_loop_graph_equals_eager*"
        san racecheck test_cuda_backend "*kv_copy_and_fork*"
        san racecheck test_cuda_kernels "*topk*"
        san synccheck test_cuda_kernels "*topk*"'
else
    echo "compute-sanitizer: not found, SKIPPED" | tee -a "$out/summary.txt"
    failed=1
fi

# 4. end to end: llama-bench style pp512 / tg128 on the synthetic shapes (random ternary weights)
# (the default add-only decode GEMV, and the dp4a one on the 2B-4T shape, to choose the default)
for model in 2b4t 8b; do
    step "trit_bench_$model" 90 bash -c "build-gpu/trit bench --device cuda -m synthetic:$model -r 3 -o json |
        tee '$out/trit_bench_$model.json'"
done
step trit_bench_2b4t_dp4a 60 bash -c "build-gpu/trit bench --device cuda --cuda-gemv dp4a -m synthetic:2b4t -n 128 \
    -p 0 -r 3 -o json | tee '$out/trit_bench_2b4t_dp4a.json'"

# 5. kernel benchmark
step bench_kernels 120 bash -c "cd '$out' && '$root/build-gpu/bench/bench_kernels' --models 2b,8b --out bench_kernels $*"

echo "total $(($(date +%s) - t0)) s; results in $out" | tee -a "$out/summary.txt"
exit $failed
