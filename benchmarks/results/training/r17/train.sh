#!/usr/bin/env bash
# r17 init: r16 first (the shipped default) with a learned initial state, trained 60 minutes in r16's
# samples (2-16 chunks, up to 4,096 tokens, gate dilation 256, any length); fresh samples (seed 19).
# Usage (from the repo root): MINUTES=60 bash benchmarks/results/training/r17/train.sh CORES init FROM
#   CORES: taskset's list ("0" or "0,1"; OMP threads follow its length)
#   FROM: the shipped default with its initial state seeded:
#   python benchmarks/results/training/r17/seed_initial.py runs/r16-mixed/model runs/r17-seed/model
#   (runs/r16-mixed/model: comet convert --memory-weights models/weights/smollm2-135m-instruct.safetensors)
set -euo pipefail
core=$1; kind=$2; from=$3
n=$(awk -F, '{print NF}' <<< "$core")
export OMP_NUM_THREADS=$n COMET_DATA=${COMET_DATA:-../shared/data}
. benchmarks/results/training/stage.sh
case $kind in
  init) run_stage "$core" "runs/r17-$kind" benchmarks/results/training/r17/init.recipe.yaml model.source="$from" \
      train.max_minutes="${MINUTES:-60}" train.dtype=float32 data.min_chunks=2 data.max_chunks=16 \
      data.max_tokens=4096 train.gate_dilation=256 train.seed=19 data.seed=19 data.whole_chunks=false ;;
  # r18 open: the same from the shipped default itself (FROM runs/r16-mixed/model), the chat frame's 24
  # tokens closed as chunk 0 of every sample (r18/open.recipe.yaml), seed 19
  open) run_stage "$core" "runs/r18-$kind" benchmarks/results/training/r18/open.recipe.yaml model.source="$from" \
      train.max_minutes="${MINUTES:-60}" train.dtype=float32 data.min_chunks=2 data.max_chunks=16 \
      data.max_tokens=4096 train.gate_dilation=256 train.seed=19 data.seed=19 data.whole_chunks=false ;;
  # r19 first: the shipped default (FROM runs/r16-mixed/model) in its own layout with 40% of samples' keys
  # in the document's first 2% (r19/first.recipe.yaml), seed 20
  first) run_stage "$core" "runs/r19-$kind" benchmarks/results/training/r19/first.recipe.yaml model.source="$from" \
      train.max_minutes="${MINUTES:-60}" train.dtype=float32 data.min_chunks=2 data.max_chunks=16 \
      data.max_tokens=4096 train.gate_dilation=256 train.seed=20 data.seed=20 data.whole_chunks=false ;;
  *) echo "train.sh: unknown run '$kind' (init, open, first)" >&2; exit 2 ;;
esac
