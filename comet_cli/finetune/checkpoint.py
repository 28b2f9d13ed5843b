"""Training checkpoints: written atomically, found again by `--resume`, checked against the recipe.

A checkpoint is a folder `OUTPUT_DIR/checkpoints/step-N` holding
  trainable.safetensors  the trained tensors (trainable.trainable_state_dict: memory modules and
                         new token rows, plus LoRA tensors or every weight for lora / full)
  optimizer.pt           the AdamW state_dict (torch.save; read back with weights_only=True)
  rng.safetensors        torch CPU (and CUDA) generator states
  state.json             step, data position (MixedStream.position), recipe fingerprint, python
                         random state, trainable mode
  recipe.yaml            the resolved recipe, for people
It is written into a hidden temporary sibling and renamed into place, so a crash or Ctrl-C never
leaves a half-written `step-N`; only the newest `checkpoint.keep` are kept.

`export_model` writes the end product the same way: OUTPUT_DIR/model (a CoMeT folder) and
OUTPUT_DIR/memory.safetensors. The folder's training note is the whole lineage (the source folder's
note, " then ", this run's), so `comet info` on a fine-tuned default says what it was trained from;
OUTPUT_DIR/memory.safetensors keeps this run's note alone, as `comet_models.ship` joins stages itself.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from comet_cli.errors import RecipeError

STATE_FILE = "state.json"
STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class Resumed:
    """What `load_checkpoint` hands back to the training loop."""

    path: Path
    step: int
    data_position: int
    weights: dict[str, torch.Tensor]
    optimizer: dict
    state: dict


def checkpoints_dir(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under output_dir, oldest first."""
    d = checkpoints_dir(output_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir()
             if (m := STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def find_checkpoint(path: str | os.PathLike) -> Path:
    """`path` itself if it is a checkpoint, else the newest checkpoint of the output dir `path`."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    if not path.exists():
        raise RecipeError(f"{path}: no such folder to resume from")
    found = list_checkpoints(path)
    if not found:
        raise RecipeError(f"{path}: no checkpoint to resume from (expected {STATE_FILE} or checkpoints/step-N)")
    return found[-1]


def run_folder(checkpoint: Path) -> Path:
    """The output dir a checkpoint belongs to (OUT for OUT/checkpoints/step-N)."""
    return checkpoint.parent.parent if checkpoint.parent.name == checkpoints_dir("").name else checkpoint.parent


def read_state(checkpoint: Path) -> dict:
    try:
        return json.loads((checkpoint / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RecipeError(f"{checkpoint / STATE_FILE}: unreadable checkpoint state ({e})") from None


def check_fingerprint(checkpoint: Path, fingerprint: str) -> dict:
    """The checkpoint's state, or a one-line RecipeError if it was made by another recipe."""
    state = read_state(checkpoint)
    if state.get("fingerprint") != fingerprint:
        raise RecipeError(f"{checkpoint}: checkpoint was made by a different recipe (fingerprint "
                          f"{str(state.get('fingerprint'))[:12]} vs {fingerprint[:12]}); resume with the "
                          f"recipe it was made with (see {checkpoint / 'recipe.yaml'}) or start a new output_dir")
    return state


def save_checkpoint(output_dir: str | os.PathLike, step: int, weights: dict[str, torch.Tensor], optimizer,
                    data_position: int, fingerprint: str, recipe_yaml: str, mode: str, keep: int) -> Path:
    """Write step-N atomically and drop the oldest beyond `keep`. Returns the folder."""
    from safetensors.torch import save_file

    root = checkpoints_dir(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        save_file({k: v.cpu() for k, v in weights.items()}, str(tmp / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        rng = {"torch_cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng.update({f"torch_cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
        save_file(rng, str(tmp / "rng.safetensors"))
        (tmp / "recipe.yaml").write_text(recipe_yaml)
        state = {"step": step, "data_position": data_position, "fingerprint": fingerprint, "mode": mode,
                 "python_random": _python_state()}
        (tmp / STATE_FILE).write_text(json.dumps(state))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(checkpoint: Path, fingerprint: str, device: torch.device) -> Resumed:
    """Read a checkpoint (after checking its fingerprint) and restore the RNG states."""
    from safetensors.torch import load_file

    state = check_fingerprint(checkpoint, fingerprint)
    try:
        weights = load_file(str(checkpoint / "trainable.safetensors"), device=str(device))
        optimizer = torch.load(checkpoint / "optimizer.pt", map_location=device, weights_only=True)
        rng = load_file(str(checkpoint / "rng.safetensors"))
    except Exception as e:  # safetensors / torch raise many types for a damaged file
        raise RecipeError(f"{checkpoint}: damaged checkpoint ({str(e).splitlines()[0][:200]})") from None
    torch.set_rng_state(rng["torch_cpu"])
    cuda = [rng[k] for k in sorted(rng) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    random.setstate(_from_json(state["python_random"]))
    return Resumed(checkpoint, int(state["step"]), int(state["data_position"]), weights, optimizer, state)


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _from_json(s: list) -> tuple:
    return (s[0], tuple(s[1]), s[2])


def export_model(model, tset, source_dir: Path, output_dir: Path, training: str) -> dict:
    """OUTPUT_DIR/model: a copy of the source CoMeT folder with the trained weights, and
    OUTPUT_DIR/memory.safetensors (memory modules + new rows, metadata `training`).

    memory mode only replaces comet_memory.safetensors; lora merges the adapters into the base
    weights (their tensors also go to OUTPUT_DIR/lora.safetensors) and, like full, rewrites
    model.safetensors. Written into a temporary sibling and renamed into place."""
    from safetensors.torch import save_file

    from comet_cli.finetune.trainable import lora_state_dict, merge_lora
    from comet_models.convert import (MEMORY_FILE, _base_state_dict, _tensors_sha256, model_fingerprint,
                                      save_memory_weights)
    from comet_models.ship import STAGE_SEPARATOR

    output_dir = Path(output_dir)
    out = output_dir / "model"
    tmp = output_dir / f".model.exporting-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    written = {"model": str(out), "memory_weights": str(output_dir / "memory.safetensors")}
    metadata = {"training": training}
    before = source_training(source_dir)
    lineage = {"training": f"{before}{STAGE_SEPARATOR}{training}" if before else training}
    try:
        base_changed = tset.mode in ("lora", "full")
        skip = {MEMORY_FILE} | ({"model.safetensors", "model.safetensors.index.json"} if base_changed else set())
        shutil.copytree(source_dir, tmp, ignore=lambda d, names: [n for n in names if n in skip or
                                                                  (base_changed and n.startswith("model-"))])
        comet = dict(model.config.comet)
        if tset.mode == "lora":
            save_file(lora_state_dict(model), str(output_dir / "lora.safetensors"), metadata=metadata)
            written["lora"] = str(output_dir / "lora.safetensors")
            merge_lora(model)
        if base_changed:
            base = {k: v.cpu() for k, v in _base_state_dict(model).items()}
            save_file(base, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            comet["base_sha256"] = _tensors_sha256(base)
        model.config.comet = comet
        comet["training"] = lineage["training"]
        comet["fingerprint"] = model_fingerprint(model)
        save_memory_weights(model, tmp / MEMORY_FILE, lineage)
        conf_path = tmp / "config.json"
        conf = json.loads(conf_path.read_text())
        conf["comet"] = comet
        conf_path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    save_memory_weights(model, output_dir / "memory.safetensors", metadata)
    written["fingerprint"] = comet["fingerprint"]
    return written


def source_training(folder: Path) -> str | None:
    """The training note of a CoMeT folder's memory weights (None for an untrained conversion)."""
    from safetensors import safe_open

    from comet_models.convert import MEMORY_FILE

    path = Path(folder) / MEMORY_FILE
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("training")
