"""Pack trained runs into one small weights file that `comet convert` applies to the base model.

A curriculum trains in stages; each stage adds LoRA adapters on top of the previous stage's
export (adapters merged), so the trained model is W0 + sum_s scale_s * B_s A_s for every adapted
weight. The shipped file holds, besides the last stage's memory weights (memory modules and new
token rows), that sum as one exact low-rank factor pair per weight:

    lora_delta.<HF weight name>.A   (sum of ranks x in)     stacked A_s
    lora_delta.<HF weight name>.B   (out x sum of ranks)    stacked scale_s * B_s

so a few MB stand for the tens of MB of changed base weights. `apply_base_deltas` adds them.
A long curriculum stacks many ranks; `rank=R` keeps each sum's best rank-R approximation (an exact
SVD of the product, computed from the factors) and reports the relative error it leaves, and
`dtype=torch.bfloat16` halves the file; `delta_dtype=torch.float16` halves only the factors (the bulk),
keeping the memory modules and token rows exact in float32.

    python -m comet_models.ship runs/default-s1 runs/default-s2 runs/default-s3 -o OUT.safetensors
    python -m comet_models.ship runs/s1 ... runs/s7 -o OUT.safetensors --rank 48 --dtype bfloat16

A stage may also be an earlier packed file: a run trained from a model converted with that file
(`comet convert --memory-weights PACK`, or the shipped default) is packed as `PACK runs/next`,
so a lineage goes on after its run folders are gone.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import torch

DELTA_PREFIX = "lora_delta."
STAGE_SEPARATOR = " then "  # joins the stages' training notes in the file's `training` metadata
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


def _hf_name(module: str) -> str:
    """A module path inside the injected model -> the plain HF weight name."""
    return module.replace(".base_layer.", ".") + ".weight"


def _recipe_scale(run: Path) -> float:
    text = (run / "recipe.yaml").read_text()
    import yaml

    t = yaml.safe_load(text)["trainable"]
    return float(t["lora_alpha"]) / float(t["lora_rank"])


def stage_deltas(run: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{HF weight name: (A, scale * B)} of one run's lora.safetensors, or the deltas of a packed file."""
    from safetensors.torch import load_file

    if run.is_file():
        return {name: (a.float(), b.float()) for name, (a, b) in split_deltas(load_file(str(run))).items()}
    sd, scale, pairs = load_file(str(run / "lora.safetensors")), _recipe_scale(run), {}
    for key, tensor in sd.items():
        m = _LORA_KEY.match(key)
        if not m:
            continue
        pairs.setdefault(_hf_name(m["module"]), {})[m["ab"]] = tensor.float()
    return {name: (p["A"], p["B"] * scale) for name, p in pairs.items()}


def truncate(a: torch.Tensor, b: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The best rank-`rank` approximation of B @ A as factors (A', B'), and its relative Frobenius
    error. Exact (Eckart-Young) without forming B @ A: QR of both factors, SVD of the small core."""
    if rank >= a.shape[0]:
        return a, b, 0.0
    qb, rb = torch.linalg.qr(b.double())
    qa, ra = torch.linalg.qr(a.double().T)
    u, s, vh = torch.linalg.svd(rb @ ra.T)
    root = s[:rank].sqrt()
    b2 = (qb @ u[:, :rank]) * root
    a2 = root[:, None] * (vh[:rank] @ qa.T)
    err = float(s[rank:].square().sum().sqrt() / s.square().sum().sqrt().clamp_min(1e-30))
    return a2.float().contiguous(), b2.float().contiguous(), err


def pack(runs: list[Path], out: Path, rank: int | None = None, dtype: torch.dtype | None = None,
         delta_dtype: torch.dtype | None = None, last_weight: float = 1.0) -> dict:
    """Write the shipped file from stage runs (oldest first); returns a summary. `rank` truncates
    each stacked delta (see `truncate`); `dtype` casts every floating tensor in the file, and
    `delta_dtype` (default: `dtype`) the delta factors. `last_weight` w < 1 packs the weight average
    (1 - w) * before + w * after of the last stage (a model soup, WiSE-FT): its delta scaled by w and
    its memory weights interpolated with the stage before's."""
    from safetensors.torch import save_file

    if not 0.0 <= last_weight <= 1.0 or (last_weight != 1.0 and len(runs) < 2):
        raise ValueError(f"last_weight {last_weight}: needs 0 <= w <= 1 and an earlier stage to weigh against")
    stacked: dict[str, tuple[list, list]] = {}
    for i, run in enumerate(runs):
        w = last_weight if i == len(runs) - 1 else 1.0
        if run.is_file() or (run / "lora.safetensors").is_file():
            for name, (a, b) in stage_deltas(run).items():
                stacked.setdefault(name, ([], []))[0].append(a)
                stacked[name][1].append(b * w)
    metadata, tensors = _memory_tensors(runs[-1])
    if last_weight != 1.0:
        _, before = _memory_tensors(runs[-2])
        if before.keys() != tensors.keys():
            raise ValueError(f"{runs[-2]} and {runs[-1]} hold different memory weights: not one lineage")
        tensors = {k: (last_weight * v.float() + (1 - last_weight) * before[k].float()).to(v.dtype)
                   if v.is_floating_point() else v for k, v in tensors.items()}
    errors = []
    for name, (a_list, b_list) in stacked.items():
        a, b = torch.cat(a_list, 0).contiguous(), torch.cat(b_list, 1).contiguous()
        if rank is not None:
            a, b, err = truncate(a, b, rank)
            errors.append(err)
        tensors[f"{DELTA_PREFIX}{name}.A"] = a
        tensors[f"{DELTA_PREFIX}{name}.B"] = b
    def cast(k: str, v: torch.Tensor) -> torch.Tensor:
        to = delta_dtype if delta_dtype is not None and k.startswith(DELTA_PREFIX) else dtype
        return v.to(to) if to is not None and v.is_floating_point() else v

    tensors = {k: cast(k, v) for k, v in tensors.items()}
    metadata["training"] = STAGE_SEPARATOR.join(_training_note(r) for r in runs)
    if last_weight != 1.0:
        metadata["training"] += f" (weighted {last_weight:g}: averaged with the stage before)"
        metadata["last_weight"] = str(last_weight)
    metadata["stages"] = json.dumps([s for r in runs for s in _stage_names(r)])
    if rank is not None:
        metadata["delta_rank"] = str(rank)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.chmod(tmp, 0o644)  # a file to commit and ship: readable by everyone
    os.replace(tmp, out)
    summary = {"file": str(out), "bytes": out.stat().st_size, "adapted_weights": len(stacked),
               "tensors": len(tensors)}
    if errors:
        summary["delta_rel_error"] = {"max": max(errors), "mean": sum(errors) / len(errors)}
    return summary


def _memory_tensors(run: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """A stage's metadata and its memory weights (memory modules, new token rows; no deltas)."""
    from safetensors import safe_open

    with safe_open(str(_weights_file(run)), framework="pt") as f:
        return dict(f.metadata() or {}), {k: f.get_tensor(k) for k in f.keys() if not k.startswith(DELTA_PREFIX)}


def _weights_file(run: Path) -> Path:
    """A run's memory.safetensors, or a packed file itself."""
    return run if run.is_file() else run / "memory.safetensors"


def _metadata(run: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(_weights_file(run)), framework="pt") as f:
        return dict(f.metadata() or {})


def _training_note(run: Path) -> str:
    return _metadata(run).get("training", run.name)


def _stage_names(run: Path) -> list[str]:
    """The stages a path stands for: a run folder is one, a packed file lists its own."""
    listed = _metadata(run).get("stages") if run.is_file() else None
    return json.loads(listed) if listed else [str(run)]


def split_deltas(sd: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Remove the lora_delta.* tensors from `sd` (in place) and return them as {name: (A, B)}."""
    out: dict[str, dict] = {}
    for key in [k for k in sd if k.startswith(DELTA_PREFIX)]:
        name, ab = key[len(DELTA_PREFIX):].rsplit(".", 1)
        out.setdefault(name, {})[ab] = sd.pop(key)
    return {name: (p["A"], p["B"]) for name, p in out.items()}


def apply_base_deltas(model, deltas: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> int:
    """W += B @ A for every delta, addressed by HF weight name on an injected model."""
    params = {n.replace(".base_layer.", "."): p for n, p in model.named_parameters()}
    with torch.no_grad():
        for name, (a, b) in deltas.items():
            if name not in params:
                raise KeyError(name)
            p = params[name]
            p.add_((b.float() @ a.float()).to(p.dtype))
    return len(deltas)


def main() -> None:
    ap = argparse.ArgumentParser(description="Pack trained CoMeT runs (stages, oldest first) into one weights file.")
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--rank", type=int, default=None, help="keep each delta's best rank-R approximation")
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                    help="store every tensor in this dtype (default: as trained)")
    ap.add_argument("--delta-dtype", choices=["float32", "bfloat16", "float16"], default=None,
                    help="store the delta factors (most of the file) in this dtype instead")
    ap.add_argument("--last-weight", type=float, default=1.0, metavar="W",
                    help="pack (1 - W) * before + W * after of the last stage, a weight average (default 1: all of it)")
    args = ap.parse_args()
    if args.rank is not None and args.rank < 1:
        ap.error("--rank must be at least 1")
    dtype = getattr(torch, args.dtype) if args.dtype else None
    delta_dtype = getattr(torch, args.delta_dtype) if args.delta_dtype else None
    try:
        summary = pack(args.runs, args.output, rank=args.rank, dtype=dtype, delta_dtype=delta_dtype,
                       last_weight=args.last_weight)
    except ValueError as e:  # pack's own checks (--last-weight), one line
        ap.error(str(e))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
