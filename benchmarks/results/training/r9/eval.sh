#!/usr/bin/env bash
# r9: what a stage-3 model's memory carries, how long its gates keep, and what it generates.
# Usage (from the repo root, after train.sh): bash benchmarks/results/training/r9/eval.sh CORE b-fd8|d-fd5-long
set -euo pipefail
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
. benchmarks/results/training/evaluate.sh
eval_model "$1" "runs/r9-float32-s3-$2/model" benchmarks/results/training/r9 "$2"
