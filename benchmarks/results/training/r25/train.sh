#!/usr/bin/env bash
# r25 gate dilation A/B: the shipped default (FROM runs/r16-mixed/model = `comet convert -o runs/r16-mixed/model`)
# carried on in r16's own mix (r16/first.recipe.yaml: LoRA rank 16 on top, fifo dropout 0.5) and r16's samples
# (2-16 chunks, up to 4,096 tokens, any length), seed 25, fp32, a fixed step count (so both arms see the
# same samples under the same cosine), with the largest gate power D the only difference:
#   D=256 (r16's own: up to 15 x 256 = 3,840 writes, a key ~1M tokens back at most) or
#   D=4096 (up to 61k writes: a 1M read's 4,096 writes sit in the middle of what is trained, not at its edge).
# Usage (from the repo root): bash benchmarks/results/training/r25/train.sh CORE D FROM   [STEPS=220]
set -euo pipefail
core=$1; dil=$2; from=$3
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
. benchmarks/results/training/stage.sh
run_stage "$core" "runs/r25-dil$dil" benchmarks/results/training/r16/first.recipe.yaml model.source="$from" \
    train.max_minutes=0 train.steps="${STEPS:-220}" train.dtype=float32 data.min_chunks=2 data.max_chunks=16 \
    data.max_tokens=4096 train.gate_dilation="$dil" train.seed=25 data.seed=25 data.whole_chunks=false
