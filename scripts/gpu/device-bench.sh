#!/usr/bin/env bash
# The webgpu measurements of README "Worker compute speed", in one call on a GPU host (the device
# machine): the ch64 U-Net's batch-64 training step on tfjs webgpu against PyTorch CUDA fp32 on the
# same card, with tfjs's conv weight gradient and with the project's matmul form
# (DDPM_WEBGPU_CONV_FILTER=matmul), each with a tf.profile. Prepared here:
#   npm run gpu:build && bash ../shared/gpu/pack-runtime.sh .gpu-runtime
# then run: bash scripts/gpu/device-bench.sh   (carry .gpu-runtime and .gpu-build). Results in $OUT.
set -uo pipefail
out=${OUT:-bench-results/gpu}
mkdir -p "$out"
export STEP_BENCH_DIR=$PWD/scripts/step-bench
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/gpu.csv" 2>&1
python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))' >"$out/torch.txt" 2>&1
for variant in tfjs matmul; do
  if [[ $variant == matmul ]]; then export DDPM_WEBGPU_CONV_FILTER=matmul; else unset DDPM_WEBGPU_CONV_FILTER; fi
  timeout "${STEP_TIMEOUT:-240}" bash .gpu-runtime/run.sh .gpu-build/stepBench.js --backend webgpu --preset ch64 --batch 64 \
    --warmup 2 --repeats 5 --torch-threads 1 --python python3 --torch-device cuda --shapes 25 \
    --json "$out/ch64-$variant.json" >"$out/ch64-$variant.log" 2>&1
  echo "ch64 ($variant conv weight gradient): exit $?"
  grep -E '^\| ch64|ms/step' "$out/ch64-$variant.log"
done
