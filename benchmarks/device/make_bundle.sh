#!/usr/bin/env bash
# Build the two device bundles (.dev/ and .dev1/, both git-ignored) from this checkout and its venv:
#
#   bash benchmarks/device/make_bundle.sh [BASE_WEIGHTS.safetensors]
#
# A lent GPU machine reaches no model hub or package index and takes at most 64 MiB of working tree per
# call, so the model travels as its xz-compressed GGUF split in two, one part per call:
#   .dev1/  gguf.xz.part1 (+ sha256), pkgs/transformers-<v>.tar.xz (the wheel's files), setup.sh
#   .dev/   gguf.xz.part2, gguf.sha256, whl/gguf-<v>.whl, data/ (books + bAbI, xz), the scripts,
#           recipes/ (put the run recipes here), base_weights.bf16.safetensors if BASE_WEIGHTS is given
# Then, on one warm machine (see benchmarks/device/README.md):
#   run carry [".dev1"]  bash .dev1/setup.sh
#   run carry [".dev"]   BASE_WEIGHTS=.dev/base_weights.bf16.safetensors bash .dev/gpu_train.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=benchmarks/device
DATA=${COMET_DATA:-../shared/data}
PART1_BYTES=${PART1_BYTES:-44500000}
grep -qx '/.dev/' .git/info/exclude 2>/dev/null || echo '/.dev/' >> .git/info/exclude
grep -qx '/.dev1/' .git/info/exclude 2>/dev/null || echo '/.dev1/' >> .git/info/exclude
mkdir -p .dev/whl .dev/recipes .dev/data/books .dev/data/babi/en .dev1/pkgs

GGUF=$(python3 -c 'from comet_models.convert import default_gguf; print(default_gguf())')
echo "model file: $GGUF"
xz -T2 -6 -c "$GGUF" > /tmp/bundle.gguf.xz
head -c "$PART1_BYTES" /tmp/bundle.gguf.xz > .dev1/gguf.xz.part1
tail -c +"$((PART1_BYTES + 1))" /tmp/bundle.gguf.xz > .dev/gguf.xz.part2
{ echo "$(sha256sum "$GGUF" | cut -d' ' -f1)  smollm2.gguf"
  echo "$(sha256sum /tmp/bundle.gguf.xz | cut -d' ' -f1)  gguf.xz"
  echo "$(sha256sum .dev/gguf.xz.part2 | cut -d' ' -f1)  gguf.xz.part2"; } > .dev/gguf.sha256
echo "$(sha256sum .dev1/gguf.xz.part1 | cut -d' ' -f1)  gguf.xz.part1" > .dev1/gguf.xz.part1.sha256
rm -f /tmp/bundle.gguf.xz

# transformers (pure python) as its installed files; gguf as a wheel
TV=$(python3 -c 'import transformers; print(transformers.__version__)')
SP=$(python3 -c 'import os, transformers; print(os.path.dirname(os.path.dirname(transformers.__file__)))')
tar -C "$SP" --exclude=__pycache__ -cJf ".dev1/pkgs/transformers-$TV-py3-none-any.tar.xz" transformers "transformers-$TV.dist-info"
GV=$(python3 -c 'from importlib.metadata import version; print(version("gguf"))')
python3 -m pip download -q --no-deps --only-binary=:all: -d .dev/whl "gguf==$GV"

for f in moby_dick_pg2701 pride_and_prejudice_pg1342 war_and_peace_pg2600 ulysses_pg4300; do
  xz -c "$DATA/books/$f.txt" > ".dev/data/books/$f.txt.xz"
done
cp "$DATA/books/README.md" .dev/data/books/ 2>/dev/null || true
for f in "$DATA"/babi/en/qa[123]_*_test.txt; do xz -c "$f" > ".dev/data/babi/en/$(basename "$f").xz"; done
cp "$DATA"/babi/README.md "$DATA"/babi/LICENSE* .dev/data/babi/ 2>/dev/null || true

cp "$HERE/setup.sh" .dev1/setup.sh
cp "$HERE/gpu_train.sh" "$HERE/comet_dev.py" "$HERE/pack_results.py" .dev/
if [ $# -ge 1 ]; then
  python3 - "$1" <<'PY'
import sys, torch
from safetensors import safe_open
from safetensors.torch import save_file
with safe_open(sys.argv[1], "pt") as f:
    meta = f.metadata()
    t = {k: f.get_tensor(k) for k in f.keys()}
save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in t.items()},
          ".dev/base_weights.bf16.safetensors", metadata=meta)
PY
fi
du -sh .dev .dev1
echo "each call carries its folder plus the tracked tree: keep both under 64 MiB"
