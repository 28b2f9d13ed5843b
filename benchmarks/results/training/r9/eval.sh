#!/usr/bin/env bash
# r9: what a stage-3 model's memory carries, how long its gates keep, and what it generates.
# Usage (from the repo root, after train.sh): bash benchmarks/results/training/r9/eval.sh CORE b-fd8|d-fd5-long
set -euo pipefail
core=$1; s3=$2; here=benchmarks/results/training/r9; m=runs/r9-float32-s3-$s3/model
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
taskset -c "$core" python benchmarks/memory_use.py --models "$m" --kinds passkey \
    --placements pair-mid far farther farthest --no-fifo --samples 6 --out "$here/memory_use_$s3"
taskset -c "$core" comet eval passkey --model "$m" --lengths 1024,2048,4096 --depths 5 --samples 2 \
    --out "$here/$s3.passkey.jsonl" --json > "$here/$s3.passkey.json"
python benchmarks/passkey_digits.py "$here/$s3.passkey.jsonl" > "$here/$s3.digits.md"
taskset -c "$core" python benchmarks/gate_retention.py --models "$m" --out "$here/gate_retention_$s3"
