#!/usr/bin/env bash
# r12: one more alternation on the shipped lineage (r11 chat8), one core each, to bring whole keys back
# (chat8 10/24 at 1-4k vs reach8's 15/24) without losing the short inputs chat8 won back.
# Usage (from the repo root): bash benchmarks/results/training/r12/train.sh CORE precise|pchat|keys6 FROM
#   FROM: the shipped model (runs/r11-chat8/model), or rebuild it from its pack:
#   comet convert --memory-weights benchmarks/results/training/r11/r11-chat8.safetensors -o DIR
# precise = r10's precise stage (2-chunk pass keys, 320 tokens, key in the first chunk, fifo_dropout 0.8)
#           from chat8: the cheapest sample that must go through the global memory (MINUTES=25).
# pchat   = from the precise model (FROM=runs/r12-precise/model): r11's chat mix (2-4 chunks), so the
#           everyday tasks come back with the sharper write (MINUTES=45).
# keys6   = r11's chat mix from chat8 with pass keys at weight 6 (was 3) and half the learning rate
#           (5e-5): more key samples, smaller steps, beside the other two (MINUTES=70).
set -euo pipefail
core=$1; kind=$2; from=$3; minutes=${MINUTES:-45}
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
res=benchmarks/results
. $res/training/stage.sh
common=(model.source="$from" train.max_minutes="$minutes" train.dtype=float32)
chat=$res/training/r11/chat.recipe.yaml
case $kind in
  precise) OUT=runs/r12-precise MINUTES=$minutes bash $res/training/r10/train.sh "$core" precise "$from" ;;
  pchat) run_stage "$core" runs/r12-pchat $chat "${common[@]}" ;;
  keys6) run_stage "$core" runs/r12-keys6 $chat "${common[@]}" data.sources.0.weight=6.0 optim.lr=5e-5 ;;
  *) echo "train.sh: unknown run '$kind' (precise, pchat, keys6)" >&2; exit 2 ;;
esac
