#!/usr/bin/env bash
# r8: stage A then stage B on one core. Usage: bash train.sh keys|mix CORE   (from the repo root)
# Each stage resumes itself if rerun (--resume when its output folder exists).
set -euo pipefail
v=$1; core=$2; here=benchmarks/results/training/r8
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
run() { # recipe out [key=value...]
  local recipe=$1 out=$2; shift 2
  if [ -f "$out/model/config.json" ]; then return; fi
  if [ -d "$out" ]; then taskset -c "$core" comet finetune "$recipe" --resume "$out" "$@" --quiet
  else taskset -c "$core" comet finetune "$recipe" train.output_dir="$out" "$@" --quiet; fi
}
run "$here/a-$v.recipe.yaml" "runs/r8-a-$v"
run "$here/b.recipe.yaml" "runs/r8-b-$v" model.source="runs/r8-a-$v/model" data.seed=$((83 + core))
