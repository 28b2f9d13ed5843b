#!/usr/bin/env bash
# r13: r12 pchat (the sharpest write/read of the project up to 2k tokens, but 1/12 whole keys at 16k) on
# r11's chat mix with longer samples, one core each, to carry its precision to 4k tokens and beyond.
# Usage (from the repo root): bash benchmarks/results/training/r13/train.sh CORE pchat8|pchat16|dil8 FROM
#   FROM: the r12 pchat model, rebuilt from its pack:
#   comet convert --memory-weights benchmarks/results/training/r12/r12-pchat.safetensors -o runs/r12-pchat/model
# pchat8  = the chat mix in 2-8 chunks (up to 2,048 tokens), the next stage r12's README proposed.
# pchat16 = the same in 2-16 chunks (up to 4,096 tokens): the key must survive up to 15 gated writes
#           (started, then stopped after 2 minutes to free its core for dil8).
# dil8    = pchat8 with train.gate_dilation=256: each sample's global gates are raised to a power m,
#           log-uniform in [1, 256], so a slot must keep through up to 7*256 writes (1,792 chunks,
#           ~460k tokens) within a 2,048-token sample; at inference m = 1 (MINUTES=88, to end with pchat8).
set -euo pipefail
core=$1; kind=$2; from=$3
export OMP_NUM_THREADS=1 COMET_DATA=${COMET_DATA:-../shared/data}
. benchmarks/results/training/stage.sh
# r11's chat mix from FROM in 2-N chunks (fp32), plus any extra overrides
chat_mix() {
  local n=$1; shift
  run_stage "$core" "runs/r13-$kind" benchmarks/results/training/r11/chat.recipe.yaml model.source="$from" \
      train.max_minutes="${MINUTES:-95}" train.dtype=float32 data.min_chunks=2 data.max_chunks="$n" \
      data.max_tokens=$((n * 256)) "$@"
}
case $kind in
  pchat8) chat_mix 8 ;;
  pchat16) chat_mix 16 ;;
  dil8) chat_mix 8 train.gate_dilation=256 ;;
  *) echo "train.sh: unknown run '$kind' (pchat8, pchat16, dil8)" >&2; exit 2 ;;
esac
