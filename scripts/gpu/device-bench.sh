#!/usr/bin/env bash
# The webgpu measurements of README "Worker compute speed", in one call on a GPU host (the device
# machine). First, this project's kernels against the cpu backend on the card (kernelCheck.ts).
# Then the ch64 U-Net's batch-64 training step on tfjs webgpu against PyTorch CUDA fp32 on the
# same card, each with a tf.profile, a count of GPU programs dispatched and whether the gradient's
# bits repeat from step to step (the same unit each step). Variants, most important first (a run
# cut short still reports the first):
#   project         this project's webgpu kernels (the default: fused GroupNorm, tiled conv gradients,
#                   bias-gradient sums without a transpose)
#   tfjs            tfjs's own kernels only (DDPM_WEBGPU_KERNELS=tfjs): the baseline on the same card
#   project-matmul  the conv weight gradient as k*k tfjs matmuls (DDPM_WEBGPU_CONV_FILTER=matmul)
# Then single-kernel timings (GFLOP/s, GB/s) at the ch64 shapes, batch 64, for project and tfjs,
# and the host time of one kernel call.
# All of it within one 600 s call: check <= 90 s, steps <= 120 s each, kernels <= 60 s each.
# Prepared here:
#   npm run gpu:build && bash ../shared/gpu/pack-runtime.sh .gpu-runtime
# then run: bash scripts/gpu/device-bench.sh   (carry .gpu-runtime and .gpu-build). Results in $OUT.
set -uo pipefail
out=${OUT:-bench-results/gpu}
mkdir -p "$out"
export STEP_BENCH_DIR=$PWD/scripts/step-bench
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/gpu.csv" 2>&1
python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))' >"$out/torch.txt" 2>&1
# First, correctness on this card: the project's kernels against the cpu backend (kernelCheck.ts).
timeout "${CHECK_TIMEOUT:-90}" bash .gpu-runtime/run.sh .gpu-build/kernelCheck.js >"$out/kernel-check.log" 2>&1
echo "kernel check: exit $?"
grep -E '^(FAIL|[0-9]+ of)' "$out/kernel-check.log"
for variant in project tfjs project-matmul; do
  unset DDPM_WEBGPU_KERNELS DDPM_WEBGPU_CONV_FILTER
  case $variant in
    tfjs) export DDPM_WEBGPU_KERNELS=tfjs ;;
    project-matmul) export DDPM_WEBGPU_CONV_FILTER=matmul ;;
  esac
  timeout "${STEP_TIMEOUT:-120}" bash .gpu-runtime/run.sh .gpu-build/stepBench.js --backend webgpu --preset ch64 --batch 64 \
    --warmup 2 --repeats 5 --torch-threads 1 --python python3 --torch-device cuda --shapes 25 \
    --json "$out/ch64-$variant.json" >"$out/ch64-$variant.log" 2>&1
  echo "ch64 ($variant): exit $?"
  grep -E '^\| ch64|ms/step|GPU programs|gradient bits' "$out/ch64-$variant.log"
done
for variant in project tfjs; do
  if [[ $variant == tfjs ]]; then export DDPM_WEBGPU_KERNELS=tfjs; else unset DDPM_WEBGPU_KERNELS; fi
  unset DDPM_WEBGPU_CONV_FILTER
  timeout "${KERNEL_TIMEOUT:-60}" bash .gpu-runtime/run.sh .gpu-build/kernelBench.js --backend=webgpu --batch=64 --repeats=5 \
    >"$out/kernels-$variant.log" 2>&1
  echo "kernels ($variant): exit $?"
  grep -E 'Conv2DBackprop|GroupNorm|Sum over|per kernel call' "$out/kernels-$variant.log"
done
