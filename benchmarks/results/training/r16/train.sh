#!/usr/bin/env bash
# r16 first: r14 dil16 (the next default's candidate) carried on with a tenth of its samples' keys in the
# first 5% of the text (first.recipe.yaml), in dil16's samples: 2-16 chunks, up to 4,096 tokens, gate
# dilation 256, any length; fresh samples (seed 18).
# Usage (from the repo root): MINUTES=60 bash benchmarks/results/training/r16/train.sh CORE first FROM
#   FROM: the r14 dil16 model, rebuilt from its pack:
#   comet convert --memory-weights benchmarks/results/training/r14/r14-dil16.safetensors -o runs/r14-dil16/model
set -euo pipefail
core=$1; kind=$2; from=$3
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
. benchmarks/results/training/stage.sh
case $kind in
  first) run_stage "$core" "runs/r16-$kind" benchmarks/results/training/r16/first.recipe.yaml model.source="$from" \
      train.max_minutes="${MINUTES:-60}" train.dtype=float32 data.min_chunks=2 data.max_chunks=16 \
      data.max_tokens=4096 train.gate_dilation=256 train.seed=18 data.seed=18 data.whole_chunks=false ;;
  *) echo "train.sh: unknown run '$kind' (first)" >&2; exit 2 ;;
esac
