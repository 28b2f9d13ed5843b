#!/usr/bin/env bash
# r14: r13 dil8 (gate dilation 256 on the chat mix in 2-8 chunks) carried on in 2-16 chunks (up to 4,096
# tokens), so the key must survive up to 15 gated writes, each raised to a power m in [1, 256]: up to
# 3,840 plain writes (~980k tokens) inside one 4,096-token sample. data.whole_chunks=false: samples of
# any length, so the question and answer fall anywhere in a final chunk of any fill, as in `comet ask`
# (r13's whole-chunk samples always ended an almost full chunk; its answers at a short final chunk
# drop or change digits depending on where the temp beacons fall).
# read: r13 dil8 on the chat mix plus questions about a passage (read.recipe.yaml, recipes/distill_reading.py),
# next to it and with other book text between, in 2-8 chunks, dilated, samples of any length (MINUTES=55).
# Usage (from the repo root): MINUTES=100 bash benchmarks/results/training/r14/train.sh CORE dil16|read FROM
#   FROM: the r13 dil8 model, rebuilt from its pack:
#   comet convert --memory-weights benchmarks/results/training/r13/r13-dil8.safetensors -o runs/r13-dil8/model
set -euo pipefail
core=$1; kind=$2; from=$3
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
. benchmarks/results/training/stage.sh
case $kind in
  dil16) run_stage "$core" "runs/r14-$kind" benchmarks/results/training/r11/chat.recipe.yaml model.source="$from" \
      train.max_minutes="${MINUTES:-100}" train.dtype=float32 data.min_chunks=2 data.max_chunks=16 \
      data.max_tokens=4096 train.gate_dilation=256 train.seed=14 data.seed=14 \
      data.whole_chunks=false ;;
  read) run_stage "$core" "runs/r14-$kind" benchmarks/results/training/r14/read.recipe.yaml model.source="$from" \
      train.max_minutes="${MINUTES:-55}" train.dtype=float32 data.min_chunks=2 data.max_chunks=8 \
      data.max_tokens=2048 train.gate_dilation=256 train.seed=16 data.seed=16 data.whole_chunks=false ;;
  *) echo "train.sh: unknown run '$kind' (dil16, read)" >&2; exit 2 ;;
esac
