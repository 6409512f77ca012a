#!/usr/bin/env bash
# `ddpm train` itself on a GPU host (the device machine), webgpu backend, in one call:
#   default  the quick start's job (mnist-fast, 2,500 steps, batch 32) on the built-in MNIST digits
#   ch64     the benchmarks' ch64 U-Net (ch 64, mult 1,2,2, 2 res blocks, attention at 16) on the
#            digits at 32x32, batch 64 as one unit, STEPS_CH64 steps (default 300)
# Prepared here: npm run build && npm run gpu:build -- --train && bash ../shared/gpu/pack-runtime.sh .gpu-runtime
# then: bash scripts/gpu/device-train.sh  (carry .gpu-runtime and .gpu-train). Logs, the runs'
# final sample grids and timings land in $OUT (train.log: the lines that matter); checkpoints stay
# in /tmp/device-train.
set -uo pipefail
out=${OUT:-bench-results/gpu-train}
mkdir -p "$out" /tmp/gpu-app
log=$out/train.log
jobs=" ${JOBS:-default ch64} "
# run.sh copies ddpm.js beside the Dawn addon in /tmp/gpu-app; its thread scripts and zeromq go there too.
cp .gpu-train/*.js /tmp/gpu-app/ && cp -r .gpu-train/node_modules /tmp/gpu-app/
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$log"
data=npz:$PWD/.gpu-train/mnist.npz

# train NAME TIMEOUT ARGS...: one `ddpm train` run, its output in $out/NAME.log, the key lines in train.log.
train() {
  local name=$1 limit=$2 start
  shift 2
  start=$(date +%s%N)
  timeout "$limit" bash .gpu-runtime/run.sh .gpu-train/ddpm.js train --backend webgpu --data "$data" \
    --checkpoint-dir "/tmp/device-train/$name" --log-every 10 "$@" >"$out/$name.log" 2>&1
  local rc=$?
  cp "/tmp/device-train/$name/samples.png" "$out/$name-samples.png" 2>/dev/null
  echo "$name: exit $rc, $((($(date +%s%N) - start) / 1000000)) ms wall" | tee -a "$log"
  grep -E 'adapter|^(data|model|workers):|replay|^step +[0-9]+/|samples|checkpoint|rror' "$out/$name.log" | tail -25 | tee -a "$log"
}

[[ $jobs == *" default "* ]] && train default "${LIMIT_DEFAULT:-200}"
[[ $jobs == *" ch64 "* ]] && train ch64 "${LIMIT_CH64:-120}" --channels 64 --channel-mult 1,2,2 --res-blocks 2 --attention-resolutions 16 \
  --image-size 32 --batch-size 64 --unit-size 64 --steps "${STEPS_CH64:-300}" --checkpoint-every 0 --sample-n 16
exit 0
