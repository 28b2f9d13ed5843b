#!/usr/bin/env bash
# r10: two continuations of an r9 stage-3 model, one core each, to find what brings a key back in order.
# Usage (from the repo root): bash benchmarks/results/training/r10/train.sh CORE long12|precise|reach|reach8 FROM
#   FROM: an r9 stage-3 model folder (runs/r9-float32-s3-d-fd5-long/model), or rebuild one from its pack:
#   comet convert --memory-weights benchmarks/results/training/r9/r9-d-fd5-long.safetensors -o DIR
# long12  = r5's 4-12-chunk pass keys (up to 3,072 tokens), fifo_dropout 0.5: longer reach, as r5 did.
# OUT=DIR writes the precise stage to DIR instead of runs/r10-precise (r12 reuses it).
# precise = 2-chunk pass keys (320 tokens) with the key in the first chunk (fixed planner), fifo_dropout
#           0.8: the cheapest sample that must go through the global memory, ~2.5x the steps per minute,
#           to see whether more steps of the same write/read put the digits in order.
# reach   = from the precise model: the same keys in 2-4 chunks (up to 1,024 tokens), so that the gated
#           writes of later chunks keep what the precise stage learned to write (MINUTES=40 in r10).
# reach8  = from the reach model: the same in 2-8 chunks (up to 2,048 tokens), the next step of the
#           alternation (started at the end of the r10 session, not evaluated there).
set -euo pipefail
core=$1; kind=$2; from=$3; minutes=${MINUTES:-75}
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
res=benchmarks/results
. $res/training/stage.sh
common=(model.source="$from" train.max_minutes="$minutes" train.dtype=float32 checkpoint.every=20 eval.samples=0)
short=(train.steps=20000 train.fifo_dropout=0.8 optim.lr=1e-4 optim.warmup_steps=5)  # precise/reach*
case $kind in
  long12) run_stage "$core" runs/r10-long12 $res/training/r5/r5-long12.recipe.yaml "${common[@]}" ;;
  precise) run_stage "$core" "${OUT:-runs/r10-precise}" $res/sink_ab/sink.recipe.yaml "${common[@]}" "${short[@]}" ;;
  reach|reach8)
    n=4; [ "$kind" = reach8 ] && n=8
    run_stage "$core" "runs/r10-$kind" $res/sink_ab/sink.recipe.yaml "${common[@]}" "${short[@]}" \
        data.min_chunks=2 data.max_chunks=$n data.max_tokens=$((n * 256)) ;;
  *) echo "train.sh: unknown run '$kind' (long12, precise, reach, reach8)" >&2; exit 2 ;;
esac
