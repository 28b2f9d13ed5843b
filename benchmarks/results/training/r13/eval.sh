#!/usr/bin/env bash
# r13: what this round is about, reach beyond the training length, for a run (or any model folder):
#   memory_use_long_NAME.{json,md}  answer loss with the real key vs a decoy, key in the first of 16 / 64 /
#                                   256 chunks (4k / 16k / 64k tokens) and in chunk 32 of 64 (16k-mid),
#                                   3 samples, bfloat16 reads
#   NAME.passkey_long.json[l]       greedy answers, the grid's first sample at 4k / 16k / 64k (bfloat16)
#   short_inputs_NAME.{json,md}     short inputs against the base (fit to ship?)
# `full` adds r11's whole suite (benchmarks/results/training/evaluate.sh: eval_model).
# Usage (from the repo root): bash benchmarks/results/training/r13/eval.sh CORE NAME [MODEL] [full]
#   MODEL defaults to runs/r13-NAME/model.
set -euo pipefail
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
here=benchmarks/results/training/r13
core=$1; name=$2; m=${3:-runs/r13-$name/model}; t=(taskset -c "$core")
"${t[@]}" python benchmarks/short_inputs.py --trained "$m" --out "$here/short_inputs_$name"
"${t[@]}" python benchmarks/memory_use.py --models "$m" --kinds passkey --placements farthest 16k 16k-mid 64k \
    --samples 3 --dtype bfloat16 --out "$here/memory_use_long_$name"
"${t[@]}" comet eval passkey --model "$m" --lengths 4096,16384,65536 --depths 5 --samples 1 --dtype bfloat16 \
    --out "$here/$name.passkey_long.jsonl" --json > "$here/$name.passkey_long.json"
if [ "${4:-}" = full ]; then
  . benchmarks/results/training/evaluate.sh
  eval_model "$core" "$m" $here "$name" 1
fi
