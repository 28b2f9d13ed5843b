#!/usr/bin/env bash
# r10: what a continuation's memory carries, what it generates at 320 tokens (the precise run's own
# length: key in the first of 2 chunks) and at 1-4k, and how long its gates keep.
# Usage (from the repo root, after train.sh): bash benchmarks/results/training/r10/eval.sh CORE long12|precise
set -euo pipefail
core=$1; kind=$2; here=benchmarks/results/training/r10; m=runs/r10-$kind/model
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
t() { taskset -c "$core" "$@"; }
t python benchmarks/memory_use.py --models "$m" --kinds passkey \
    --placements pair-mid far farther farthest --no-fifo --samples 6 --out "$here/memory_use_$kind"
t comet eval passkey --model "$m" --lengths 320 --depths 4 --samples 6 \
    --out "$here/$kind.passkey320.jsonl" --json > "$here/$kind.passkey320.json"
t comet eval passkey --model "$m" --lengths 1024,2048,4096 --depths 5 --samples 2 \
    --out "$here/$kind.passkey.jsonl" --json > "$here/$kind.passkey.json"
python benchmarks/passkey_digits.py "$here/$kind.passkey320.jsonl" "$here/$kind.passkey.jsonl" > "$here/$kind.digits.md"
t python benchmarks/gate_retention.py --models "$m" --out "$here/gate_retention_$kind"
