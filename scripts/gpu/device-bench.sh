#!/usr/bin/env bash
# The webgpu measurements of README "Worker compute speed", in one call on a GPU host (the device
# machine). Sections (SECTIONS, default all but tuning, in this order; a run cut short still reports the first):
#   check    this project's kernels and readInto against the cpu backend's values on the card
#            (kernelCheck.ts; the references are computed beforehand without a GPU)
#   steps    the ch64 U-Net's batch-64 training step on tfjs webgpu against PyTorch CUDA fp32 (TF32
#            off) on the same card, each with a tf.profile, a count of GPU programs dispatched and
#            whether the gradient's bits repeat from step to step (the same unit each step):
#              project         this project's webgpu kernels (the default)
#              project-alone   the same with no PyTorch steps in between
#              tfjs            tfjs's own kernels only (DDPM_WEBGPU_KERNELS=tfjs): the baseline
#                              (TFJS_BASELINE=0 skips it)
#   replay   side by side, alternating: the step replayed without tfjs (the default once two steps
#            of the size are learnt; src/backend/webgpu/stepReplay.ts) and through tfjs
#            (DDPM_WEBGPU_REPLAY=off), then PyTorch beside the replayed step
#   convinput side by side, alternating: the stride-1 conv input gradient as a forward convolution
#            (the default; src/backend/webgpu/convInputGradient.ts) and tfjs's input-gradient program
#            (DDPM_WEBGPU_CONV_INPUT=tfjs)
#   conv     side by side, alternating: forward convolutions through tfjs's program (DDPM_WEBGPU_CONV=tfjs)
#            and this project's tiled one (the default; src/backend/webgpu/conv2d.ts)
#   batch128 the project's step and PyTorch's at batch 128 (the host's share of a step does not grow
#            with the batch)
#   host     the project's step without tf.profile under V8's CPU profiler: where the host's time
#            goes (scripts/gpu/cpuProfileTop.js)
#   submit   the project's step with tfjs submitting its commands every N dispatches, N from
#            SUBMIT_SIZES taking turns step by step in one process (--sweep)
#   before   side by side, alternating: the step bench built from an earlier commit
#            (.gpu-build/before/stepBench.js, if present) and this one
#   tuning   (only when named) side by side, alternating with the default: tfjs sending every
#            kernel to the GPU (WEBGPU_CPU_HANDOFF_SIZE_THRESHOLD=0) and V8 with a 64 MiB young
#            generation
#   kernels  single-kernel timings (GFLOP/s, GB/s) at the ch64 shapes, batch 64, project and tfjs
# Prepared here:
#   npm run gpu:build && node .gpu-build/kernelCheck.js --write-references .gpu-build/kernel-references.bin
#   bash ../shared/gpu/pack-runtime.sh .gpu-runtime
# then run: bash scripts/gpu/device-bench.sh   (carry .gpu-runtime and .gpu-build). Everything
# lands in $OUT/bench.log (the lines that matter) and $OUT/results.tgz (every log, JSON and profile),
# repacked after each phase so that a run stopped at its limit still returns what it finished.
set -uo pipefail
out=${OUT:-bench-results/gpu}
work=/tmp/device-bench
rm -rf "$work" && mkdir -p "$work" "$out"
log=$out/bench.log
sections=" ${SECTIONS:-check steps replay convinput conv batch128 host submit before kernels} "
repeats=${REPEATS:-5}
warmup=${WARMUP:-2}
export STEP_BENCH_DIR=$PWD/scripts/step-bench
pack() { tar -czf "$out/results.tgz.tmp" -C "$work" . && mv "$out/results.tgz.tmp" "$out/results.tgz"; }
want() { [[ $sections == *" $1 "* ]]; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))' 2>&1
} | tee -a "$log"

if want check; then
  timeout 45 bash .gpu-runtime/run.sh .gpu-build/kernelCheck.js --references .gpu-build/kernel-references.bin >"$work/kernel-check.log" 2>&1
  echo "kernel check: exit $?" | tee -a "$log"
  grep -E '^(PASS|FAIL|[0-9]+ of)' "$work/kernel-check.log" | tee -a "$log"
  pack
fi

# step NAME TIMEOUT [--bundle FILE] ARGS...: one run of the step bench, its log in $work, its key lines in bench.log.
step() {
  local name=$1 limit=$2 bundle=.gpu-build/stepBench.js
  shift 2
  if [[ ${1:-} == --bundle ]]; then bundle=$2; shift 2; fi
  timeout "$limit" bash .gpu-runtime/run.sh "$bundle" --backend webgpu --preset ch64 --batch 64 \
    --warmup "$warmup" --torch-threads 1 --python python3 --torch-device cuda --json "$work/ch64-$name.json" "$@" \
    >"$work/ch64-$name.log" 2>&1
  echo "ch64 ($name): exit $?" | tee -a "$log"
  grep -E '^\| [A-Z_]|ms/step|^WEBGPU|issuing|images and noise|step replay|GPU programs|gradient bits|profile of|tfjs flags|rror' "$work/ch64-$name.log" | grep -v '^| config' | head -60 | tee -a "$log"
  pack
}

if want steps; then
  step project 110 --repeats "$repeats" --shapes 25
  # The same without PyTorch's steps between tfjs's (the two processes share the GPU).
  step project-alone 60 --repeats "$repeats" --no-torch --no-profile
  if [[ ${TFJS_BASELINE:-1} == 1 ]]; then DDPM_WEBGPU_KERNELS=tfjs step tfjs 110 --repeats "$repeats" --shapes 10; fi
fi

if want replay; then
  for round in 1 2; do
    DDPM_WEBGPU_REPLAY=off step "through-tfjs-$round" 50 --repeats "$repeats" --no-torch --no-profile
    step "replayed-$round" 50 --repeats "$repeats" --no-torch --no-profile
  done
  step replayed-torch 80 --repeats "$repeats" --no-profile
fi

if want convinput; then
  for round in 1 2; do
    DDPM_WEBGPU_CONV_INPUT=tfjs step "conv-input-tfjs-$round" 50 --repeats "$repeats" --no-torch --no-profile
    step "conv-input-conv-$round" 50 --repeats "$repeats" --no-torch --no-profile
  done
fi

if want conv; then
  for round in 1 2; do
    DDPM_WEBGPU_CONV=tfjs step "conv-tfjs-$round" 50 --repeats "$repeats" --no-torch --no-profile
    step "conv-tiled-$round" 50 --repeats "$repeats" --no-torch --no-profile
  done
fi

if want batch128; then
  step project-batch128 110 --repeats "$repeats" --batch 128 --no-profile
fi

if want host; then
  step project-host 60 --repeats 3 --no-torch --no-profile --cpu-profile "$work/host.cpuprofile"
  if [[ -f $work/host.cpuprofile ]]; then
    /tmp/gpu-node scripts/gpu/cpuProfileTop.js "$work/host.cpuprofile" 30 >"$work/host-profile.txt" 2>&1
    head -70 "$work/host-profile.txt" | tee -a "$log"
    pack
  fi
fi

if want submit; then
  step submit 120 --repeats "$repeats" --no-torch --no-profile --sweep WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE="${SUBMIT_SIZES:-8,15,32,64,128,1000}"
fi

if want before && [[ -f .gpu-build/before/stepBench.js ]]; then
  for round in 1 2; do
    step "before-$round" 50 --bundle .gpu-build/before/stepBench.js --repeats "$repeats" --no-torch --no-profile
    step "after-$round" 50 --repeats "$repeats" --no-torch --no-profile
  done
fi

if want tuning; then
  for round in 1 2; do
    step "default-$round" 50 --repeats "$repeats" --no-torch --no-profile
    step "no-cpu-handoff-$round" 50 --repeats "$repeats" --no-torch --no-profile --tf-flag WEBGPU_CPU_HANDOFF_SIZE_THRESHOLD=0
    NODE_OPTIONS=--max-semi-space-size=64 step "semi-space-64-$round" 50 --repeats "$repeats" --no-torch --no-profile
  done
fi

if want kernels; then
  for variant in project tfjs; do
    if [[ $variant == tfjs ]]; then export DDPM_WEBGPU_KERNELS=tfjs; else unset DDPM_WEBGPU_KERNELS; fi
    timeout 40 bash .gpu-runtime/run.sh .gpu-build/kernelBench.js --backend=webgpu --batch=64 --repeats=5 \
      >"$work/kernels-$variant.log" 2>&1
    echo "kernels ($variant): exit $?" | tee -a "$log"
    grep -E 'Conv2DBackprop|GroupNorm|Sum over|per kernel call' "$work/kernels-$variant.log" | tee -a "$log"
    pack
  done
  unset DDPM_WEBGPU_KERNELS
fi
