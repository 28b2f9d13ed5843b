#!/usr/bin/env bash
# r11: make a memory-using model fit to ship: mix the everyday tasks back into r10's pass-key training.
# Usage (from the repo root): bash benchmarks/results/training/r11/train.sh CORE mix|chat|chat8|chat8l FROM
#   FROM: r10's reach model (runs/r10-reach/model), or rebuild it from its pack:
#   comet convert --memory-weights benchmarks/results/training/r10/r10-reach.safetensors -o DIR
# mix  = mix.recipe.yaml: keys 3 : bAbI 1 : recall 1 : book text 1 : chat summaries 1, 2-4 chunks.
# chat = chat.recipe.yaml, from the mix model (FROM=runs/r11-mix/model): the same + the base model's
#        answers to 120 short questions at weight 2 (recipes/distill_chat.py), 40 minutes in r11.
# chat8 = the chat recipe from r10's reach8 model (FROM=runs/r10-reach8/model): started at the end of
#        the r11 session, to resume in the next.
# chat8l = chat8 at reach8's lengths (2-8 chunks, up to 2,048 tokens), so the mix does not
#        train the 8-chunk reach away; run beside chat8 on the other core.
set -euo pipefail
core=$1; kind=$2; from=$3; minutes=${MINUTES:-70}
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
here=benchmarks/results/training/r11
. benchmarks/results/training/stage.sh
common=(model.source="$from" train.max_minutes="$minutes" train.dtype=float32)
case $kind in
  mix) run_stage "$core" runs/r11-mix $here/mix.recipe.yaml "${common[@]}" ;;
  chat) run_stage "$core" runs/r11-chat $here/chat.recipe.yaml "${common[@]}" ;;
  chat8) run_stage "$core" runs/r11-chat8 $here/chat.recipe.yaml "${common[@]}" ;;
  chat8l) run_stage "$core" runs/r11-chat8l $here/chat.recipe.yaml "${common[@]}" \
            data.max_tokens=2048 data.max_chunks=8 ;;
  *) echo "train.sh: unknown run '$kind' (mix, chat, chat8, chat8l)" >&2; exit 2 ;;
esac
