#!/usr/bin/env bash
# r11: the r10 measures (what the memory carries, generation at 320 tokens and 1-4k, gate retention)
# plus short inputs against the base (Ulysses perplexity, 10 short chat questions): fit to ship?
# Usage (from the repo root, after train.sh): bash benchmarks/results/training/r11/eval.sh CORE mix|chat|chat8|chat8l
set -euo pipefail
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
here=benchmarks/results/training/r11
. benchmarks/results/training/evaluate.sh
eval_shippable "$1" "runs/r11-$2/model" $here "$2"
