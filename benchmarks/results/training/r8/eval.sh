#!/usr/bin/env bash
# r8: what each stage-B model's memory carries and what it generates. Usage: bash eval.sh keys|mix CORE
# (from the repo root, after train.sh). Writes into benchmarks/results/training/r8/.
set -euo pipefail
v=$1; core=$2; here=benchmarks/results/training/r8; m=runs/r8-b-$v/model
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
taskset -c "$core" python benchmarks/memory_use.py --models "$m" --kinds passkey \
    --placements near far farther farthest --samples 4 --out "$here/memory_use_$v"
taskset -c "$core" comet eval passkey --model "$m" --lengths 1024,2048,4096 --depths 5 --samples 2 \
    --out "$here/b-$v.passkey.jsonl" --json > "$here/b-$v.passkey.json"
