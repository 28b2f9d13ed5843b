#!/usr/bin/env bash
# r15 read16: r14 read (best grid of r14: 9/12, 8/12, 7/12 whole keys from outside the question's chunk at
# 4k / 16k / 64k) carried on in r14 dil16's longer samples (2-16 chunks, up to 4,096 tokens, gate dilation
# 256, samples of any length; dil16 answered the first-ask files' keys at 36 of 42 short final-chunk fills,
# read at 13), on read's mix (the chat mix plus the distilled reading questions), fresh samples (seed 17).
# Usage (from the repo root): MINUTES=60 bash benchmarks/results/training/r15/train.sh CORE read16 FROM
#   FROM: the r14 read model, rebuilt from its pack:
#   comet convert --memory-weights benchmarks/results/training/r14/r14-read.safetensors -o runs/r14-read/model
set -euo pipefail
core=$1; kind=$2; from=$3
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
. benchmarks/results/training/stage.sh
case $kind in
  read16) run_stage "$core" "runs/r15-$kind" benchmarks/results/training/r14/read.recipe.yaml model.source="$from" \
      train.max_minutes="${MINUTES:-60}" train.dtype=float32 data.min_chunks=2 data.max_chunks=16 \
      data.max_tokens=4096 train.gate_dilation=256 train.seed=17 data.seed=17 data.whole_chunks=false ;;
  *) echo "train.sh: unknown run '$kind' (read16)" >&2; exit 2 ;;
esac
