#!/usr/bin/env bash
# r24 repeat: the shipped default (FROM runs/r16-mixed/model = `comet convert -o runs/r16-mixed/model`)
# carried on with LoRA rank 16 on top, in r16's samples (2-16 chunks, up to 4,096 tokens, gate dilation
# 256, any length) and r16's mix plus pass keys that repeat a digit (repeat.recipe.yaml), seed 24, fp32.
# Usage (from the repo root): MINUTES=75 bash benchmarks/results/training/r24/train.sh CORES FROM
#   or STEPS=245 MINUTES=0 ...: a fixed step count (the cosine over steps, not time), so a rerun is the same run
#   CORES: taskset's list ("0" or "0,1"; OMP threads follow its length)
set -euo pipefail
core=$1; from=$2
n=$(awk -F, '{print NF}' <<< "$core")
export OMP_NUM_THREADS=$n COMET_DATA=${COMET_DATA:-../shared/data}
. benchmarks/results/training/stage.sh
run_stage "$core" runs/r24-repeat benchmarks/results/training/r24/repeat.recipe.yaml model.source="$from" \
    train.max_minutes="${MINUTES:-75}" ${STEPS:+train.steps=$STEPS} train.dtype=float32 data.min_chunks=2 data.max_chunks=16 \
    data.max_tokens=4096 train.gate_dilation=256 train.seed=24 data.seed=24 data.whole_chunks=false
