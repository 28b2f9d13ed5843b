#!/usr/bin/env bash
# Device call 1 of 2 (run from the repo root):  bash .dev1/setup.sh
#
# Stashes the first part of the xz-compressed SmolLM2 GGUF in /tmp/stash and unpacks the
# pure-python packages of .dev1 into /tmp/site (transformers 5.24.0: the wheel's files, repacked
# as .tar.xz because that is 3.7 MB instead of 13.5 MB). Call 2 (.dev/gpu_train.sh) must follow on
# the same warm machine: /tmp survives between calls only while the machine is held.
set -u
cd "$(dirname "$0")/.." || exit 1
T0=$(date +%s)
STASH=${STASH:-/tmp/stash}
SITE=${SITE:-/tmp/site}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 PIP_ROOT_USER_ACTION=ignore PIP_BREAK_SYSTEM_PACKAGES=1
rc=0
mkdir -p "$STASH" "$SITE"

# 1. the first part of the model file
want=$(cut -d' ' -f1 .dev1/gguf.xz.part1.sha256 2>/dev/null)
if cp -f .dev1/gguf.xz.part1 "$STASH/" && [ -n "$want" ] && \
   [ "$(sha256sum "$STASH/gguf.xz.part1" | cut -d' ' -f1)" = "$want" ]; then
  echo "[setup] .dev1/gguf.xz.part1 -> $STASH ($(stat -c %s "$STASH/gguf.xz.part1") bytes, sha256 ok)"
else
  echo "[setup] ERROR: .dev1/gguf.xz.part1 missing or damaged"; rc=1
fi

# 2. packages: *.tar.xz are unpacked wheels (extracted as is), *.whl go through pip
for t in .dev1/pkgs/*.tar.xz; do
  [ -e "$t" ] || continue
  for top in $(tar -tJf "$t" | sed 's,^\./,,' | cut -d/ -f1 | sort -u); do
    [ -n "$top" ] && [ "$top" != "." ] && rm -rf "${SITE:?}/$top"
  done
  if tar -xJf "$t" -C "$SITE" 2>/dev/null || python3 -c 'import sys,tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$t" "$SITE"; then
    echo "[setup] unpacked $t"
  else
    echo "[setup] ERROR: cannot unpack $t"; rc=1
  fi
done
for w in .dev1/whl/*.whl; do
  [ -e "$w" ] || continue
  if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$w"; then
    echo "[setup] pip installed $w"
  elif python3 -m zipfile -e "$w" "$SITE"; then
    echo "[setup] pip failed; unzipped $w into $SITE"
  else
    echo "[setup] ERROR: cannot install $w"; rc=1
  fi
done

# 3. what the machine has
nvidia-smi -L 2>&1 | head -4
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null | head -2
PYTHONPATH=$SITE python3 - <<'EOF' || rc=1
import importlib, sys, warnings
warnings.simplefilter("ignore")
print("python", sys.version.split()[0], sys.executable)
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      "bf16", torch.cuda.is_available() and torch.cuda.is_bf16_supported())
if torch.cuda.is_available():
    x = torch.randn(256, 256, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = (x @ x).float().sum().item()
    print("cuda ok:", torch.cuda.get_device_name(0), f"{torch.cuda.mem_get_info()[0] / 2**30:.1f} GiB free")
import transformers
print("transformers", transformers.__version__, transformers.__file__)
for name in ("huggingface_hub", "tokenizers", "safetensors", "accelerate", "peft", "numpy", "yaml", "click", "rich", "regex"):
    try:
        m = importlib.import_module(name)
        try:
            from importlib.metadata import version
            v = version({"yaml": "pyyaml"}.get(name, name))
        except Exception:  # noqa: BLE001
            v = getattr(m, "__version__", "?")
        print(" ", name, v)
    except Exception as e:  # noqa: BLE001
        print(" ", name, "MISSING", type(e).__name__, e)
assert transformers.__version__ == "5.24.0", "expected transformers 5.24.0 from /tmp/site"
EOF
df -h /tmp 2>/dev/null | tail -1
echo "[setup] done in $(( $(date +%s) - T0 )) s, rc=$rc"
exit $rc
