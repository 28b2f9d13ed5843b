#!/usr/bin/env bash
# r14: what this round is about, for a run (or any model folder), most telling first:
#   first_ask_NAME.{json,md}     a new user's first `comet ask` (8 Ulysses files, 2k-15k tokens, fp32)
#   tail_fill_NAME.jsonl         two of those files read up to a full chunk plus 13-33 / 180-250 tokens
#   reading_qa_NAME.{json,md}    plain questions about a written passage, next to it and 700 tokens later
#   short_inputs_NAME.{json,md}  short inputs against the base (fit to ship?)
#   NAME.grid3.json[l]           the README grid's three samples at 4k / 16k / 64k (bfloat16)
# Usage (from the repo root): bash benchmarks/results/training/r14/eval.sh CORE NAME [MODEL]
#   MODEL defaults to runs/r14-NAME/model; STEPS="ask tail read short grid" picks parts (default: all);
#   HERE=benchmarks/results/training/r15 writes a later round's results into its own folder.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} COMET_DATA=${COMET_DATA:-../shared/data}
here=${HERE:-benchmarks/results/training/r14}
core=$1; name=$2; m=${3:-runs/r14-$name/model}; t=(taskset -c "$core")
for step in ${STEPS:-ask tail read short grid}; do
  case $step in
    ask) "${t[@]}" python benchmarks/first_ask.py --model "$m" --out "$here/first_ask_$name" ;;
    tail) "${t[@]}" python benchmarks/results/training/r14/tail_fill.py "$m" --files 2048:0.25,2048:0.75 > "$here/tail_fill_$name.jsonl" ;;
    read) "${t[@]}" python benchmarks/reading_qa.py --trained "$m" --no-baselines --no-default \
            --out "$here/reading_qa_$name" ;;
    short) "${t[@]}" python benchmarks/short_inputs.py --trained "$m" --out "$here/short_inputs_$name" ;;
    grid) "${t[@]}" comet eval passkey --model "$m" --lengths 4096,16384,65536 --depths 5 --samples 3 \
            --dtype bfloat16 --out "$here/$name.grid3.jsonl" --json > "$here/$name.grid3.json" ;;
    *) echo "eval.sh: unknown step '$step' (ask tail read short grid)" >&2; exit 2 ;;
  esac
done
