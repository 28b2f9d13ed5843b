#!/usr/bin/env bash
# r8: stage A then stage B on one core. Usage: bash train.sh keys|mix CORE   (from the repo root)
# Each stage resumes itself if rerun (--resume when its output folder exists).
set -euo pipefail
v=$1; core=$2; here=benchmarks/results/training/r8
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
. benchmarks/results/training/stage.sh
run_stage "$core" "runs/r8-a-$v" "$here/a-$v.recipe.yaml"
run_stage "$core" "runs/r8-b-$v" "$here/b.recipe.yaml" model.source="runs/r8-a-$v/model" data.seed=$((83 + core))
