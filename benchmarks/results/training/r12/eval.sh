#!/usr/bin/env bash
# r12: r11's measures (short inputs against the base, what the memory carries, generation at 320 tokens
# and 1-4k, gate retention) for an r12 run, to set beside the shipped r11 chat8.
# Usage (from the repo root, after train.sh): bash benchmarks/results/training/r12/eval.sh CORE pchat|keys6|precise
set -euo pipefail
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
here=benchmarks/results/training/r12
. benchmarks/results/training/evaluate.sh
eval_shippable "$1" "runs/r12-$2/model" $here "$2"
