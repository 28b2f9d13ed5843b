#!/usr/bin/env bash
# r9: the fifo_dropout lineage that learned (r2-fd5 -> r3-fd5 -> H100 b-fd8 / d-fd5-long) replayed on one CPU
# core from an untrained conversion, with the committed recipes. Usage (from the repo root):
#   bash benchmarks/results/training/r9/train.sh float32 0 b-fd8 &
#   bash benchmarks/results/training/r9/train.sh float32 1 d-fd5-long &   # waits for the shared stages 1-2
# DTYPE is the forward's autocast dtype (train.dtype; bfloat16 learned far less in stage 1, see README);
# CORE pins the run to one core; STAGE3 names a recipe in ../gpu-h100-fd/. A stage whose model exists is
# skipped; one whose folder exists resumes from its last checkpoint.
set -euo pipefail
dt=$1; core=$2; s3=${3:-b-fd8}; tag=r9-${dt}
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
res=benchmarks/results
. benchmarks/results/training/stage.sh
run() { run_stage "$core" "$1" "$2" train.dtype="$dt" "${@:3}"; }  # out recipe [key=value...]
if [ "$s3" = b-fd8 ]; then
  # 1: 2-chunk samples (320 tokens), key in the first chunk ~80% of the time (fixed planner): memory is the only route.
  run "runs/$tag-s1" $res/sink_ab/sink.recipe.yaml train.steps=400 train.fifo_dropout=0.5 checkpoint.every=50 eval.samples=0
  # 2: 2-3 chunks (up to 768 tokens), so the gated write of a later chunk is exercised.
  run "runs/$tag-s2" $res/sink_ab/sink.recipe.yaml model.source="runs/$tag-s1/model" data.max_tokens=768 \
      data.max_chunks=3 train.steps=120 train.fifo_dropout=0.5 optim.lr=1e-4 optim.warmup_steps=5 eval.samples=0 \
      checkpoint.every=40
else
  while [ ! -f "runs/$tag-s2/model/config.json" ]; do sleep 30; done
fi
# 3: an H100-window recipe for 60 min: b-fd8 = keys anywhere in 2-6 chunks : book text 3:1, fifo_dropout 0.8;
#    d-fd5-long = keys only, 3-8 chunks (up to 2,048 tokens), fifo_dropout 0.5; both lr 1e-4.
run "runs/$tag-s3-$s3" $res/training/gpu-h100-fd/$s3.recipe.yaml model.source="runs/$tag-s2/model" \
    train.max_minutes=60 checkpoint.every=25
