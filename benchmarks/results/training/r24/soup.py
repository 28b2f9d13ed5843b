"""r24 soup: the mean of two CoMeT folders' weights (WiSE-FT-style weight-space averaging): every tensor
of model.safetensors and comet_memory.safetensors, so the base weights (LoRA merged) and the memory
modules both sit halfway. r24 repeat was trained from the shipped default, so the soup is the shipped
default plus half of r24's update.

    python benchmarks/results/training/r24/soup.py runs/r16-mixed/model runs/r24-repeat/model runs/r24-soup/model
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from comet_models.convert import MEMORY_FILE, _tensors_sha256

NOTE = "r24 soup: the mean of r16 first (shipped) and r24 repeat"


def main(a: str, b: str, out: str) -> None:
    a, b, out = Path(a), Path(b), Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(b, tmp)
    for name in ("model.safetensors", MEMORY_FILE):
        x, y = load_file(a / name), load_file(b / name)
        if x.keys() != y.keys():
            raise SystemExit(f"{name}: the two folders hold different tensors")
        mean = {k: ((x[k].float() + y[k].float()) / 2).to(x[k].dtype) if x[k].is_floating_point() else x[k]
                for k in x}
        with safe_open(str(b / name), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        if name == MEMORY_FILE:
            metadata["training"] = NOTE
        save_file(mean, str(tmp / name), metadata=metadata)
        if name == "model.safetensors":
            sha = _tensors_sha256(mean)
    conf = json.loads((tmp / "config.json").read_text())
    conf["comet"].update(base_sha256=sha, training=NOTE)
    conf["comet"].pop("fingerprint", None)  # computed again on load
    (tmp / "config.json").write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
