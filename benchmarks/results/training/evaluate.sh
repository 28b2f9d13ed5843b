# Sourced by the eval scripts under benchmarks/results/training/*/eval.sh (run from the repo root).
# eval_model CORE MODEL DIR NAME [SHORT]: pinned to one core, writes into DIR
#   memory_use_NAME.{json,md}   what the memory carries (real key vs decoy) at 2 / 4 / 8 / 16 chunks
#   NAME.passkey320.json[l]     generation at 320 tokens, key in the first of 2 chunks (only if SHORT=1)
#   NAME.passkey.json[l]        generation at 1-4k tokens, 5 depths x 2 samples
#   NAME.digits.md              exact keys / digits in place of the generations (benchmarks/passkey_digits.py)
#   gate_retention_NAME.{json,md}  how long the global-memory gates keep
# eval_shippable CORE MODEL DIR NAME: the same with SHORT=1, after short inputs against the base
#   (short_inputs_NAME.{json,md}: held-out book perplexity, short chat questions): fit to ship?
eval_model() {
  local core=$1 m=$2 here=$3 name=$4 short=${5:-0}
  local t=(taskset -c "$core") rows=()
  "${t[@]}" python benchmarks/memory_use.py --models "$m" --kinds passkey \
      --placements pair-mid far farther farthest --no-fifo --samples 6 --out "$here/memory_use_$name"
  if [ "$short" = 1 ]; then
    "${t[@]}" comet eval passkey --model "$m" --lengths 320 --depths 4 --samples 6 \
        --out "$here/$name.passkey320.jsonl" --json > "$here/$name.passkey320.json"
    rows+=("$here/$name.passkey320.jsonl")
  fi
  "${t[@]}" comet eval passkey --model "$m" --lengths 1024,2048,4096 --depths 5 --samples 2 \
      --out "$here/$name.passkey.jsonl" --json > "$here/$name.passkey.json"
  rows+=("$here/$name.passkey.jsonl")
  python benchmarks/passkey_digits.py "${rows[@]}" > "$here/$name.digits.md"
  "${t[@]}" python benchmarks/gate_retention.py --models "$m" --out "$here/gate_retention_$name"
}

eval_shippable() {
  taskset -c "$1" python benchmarks/short_inputs.py --trained "$2" --out "$3/short_inputs_$4"
  eval_model "$1" "$2" "$3" "$4" 1
}
