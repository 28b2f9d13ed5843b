# Sourced by the stage scripts under benchmarks/results/training/*/train.sh (run from the repo root).
# run_stage CORE OUT RECIPE [key=value...]: one `comet finetune` stage pinned to one core; skipped when
# OUT/model exists, resumed from its last checkpoint when OUT exists, started fresh otherwise.
run_stage() {
  local core=$1 out=$2 recipe=$3; shift 3
  if [ -f "$out/model/config.json" ]; then return; fi
  if [ -d "$out" ]; then taskset -c "$core" comet finetune "$recipe" --resume "$out" "$@" --quiet
  else taskset -c "$core" comet finetune "$recipe" train.output_dir="$out" "$@" --quiet; fi
}
