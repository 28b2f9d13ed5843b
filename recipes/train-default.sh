#!/usr/bin/env bash
# The curriculum that trains the shipped default memory, stage by stage; rerun it to resume.
#
#   bash recipes/train-default.sh            # runs/default-s1 .. s3, then ships the weights:
#   -> models/weights/smollm2-135m-instruct.safetensors (+ runs/default-*/metrics.jsonl)
#
# Each stage starts from the previous stage's export (LoRA merged into the base weights); a stage
# with an export is skipped, one with a checkpoint resumes. STEPS_S1/S2/S3 override the lengths.
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=recipes/smollm2-default.yaml
stage() {  # name source min_chunks max_chunks steps lr
  local out=runs/default-$1
  if [ -f "$out/model/config.json" ]; then echo "stage $1: done ($out/model)"; return; fi
  local args=("$RECIPE" "model.source=$2" "data.min_chunks=$3" "data.max_chunks=$4" "train.steps=$5"
              "optim.lr=$6" "train.output_dir=$out")
  if ls "$out"/checkpoints/step-* >/dev/null 2>&1; then
    comet finetune "${args[@]}" --resume "$out"
  else
    comet finetune "${args[@]}" --overwrite
  fi
}
stage s1 default 2 2 "${STEPS_S1:-150}" 2.0e-4
stage s2 runs/default-s1/model 2 4 "${STEPS_S2:-200}" 1.5e-4
stage s3 runs/default-s2/model 3 8 "${STEPS_S3:-300}" 1.0e-4
python -m comet_models.ship runs/default-s1 runs/default-s2 runs/default-s3 \
  -o models/weights/smollm2-135m-instruct.safetensors
