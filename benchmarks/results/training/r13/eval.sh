#!/usr/bin/env bash
# r13: r11's measures for an r13 run (short inputs, what the memory carries, generation at 320 tokens and
# 1-4k, gate retention), to set beside r11 chat8 (shipped) and r12 pchat (where r13 started).
# Usage (from the repo root, after train.sh): bash benchmarks/results/training/r13/eval.sh CORE pchat8|pchat16
set -euo pipefail
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
here=benchmarks/results/training/r13
. benchmarks/results/training/evaluate.sh
eval_shippable "$1" "runs/r13-$2/model" $here "$2"
