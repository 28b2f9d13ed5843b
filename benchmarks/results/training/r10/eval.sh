#!/usr/bin/env bash
# r10: what a continuation's memory carries, what it generates at 320 tokens (the precise run's own
# length: key in the first of 2 chunks) and at 1-4k, and how long its gates keep.
# Usage (from the repo root, after train.sh): bash benchmarks/results/training/r10/eval.sh CORE precise|reach|reach8
set -euo pipefail
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
. benchmarks/results/training/evaluate.sh
eval_model "$1" "runs/r10-$2/model" benchmarks/results/training/r10 "$2" 1
