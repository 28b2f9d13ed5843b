"""`comet info [DIR] [--json]`: what a CoMeT model folder holds."""
from __future__ import annotations

import json
from pathlib import Path

import click

from comet_cli import console


def training_summary(note: str) -> str:
    """A packed lineage's training note ("stage then stage then ...") in one line: the stage and step
    counts and the last stage; one- and two-stage notes as they are (--json keeps the whole note)."""
    import re

    from comet_models.ship import STAGE_SEPARATOR

    stages = note.split(STAGE_SEPARATOR)
    if len(stages) <= 2:
        return note
    steps = sum(int(n) for n in re.findall(r"(\d+) steps", note))
    return f"{len(stages)} stages, {steps:,} steps in all (--json lists each); the last: {stages[-1]}"


def describe(path) -> dict:
    """Family, parameter counts, layout and memory-state size, read from the folder's files."""
    from safetensors import safe_open

    from comet_cli.errors import ModelError
    from comet_models.convert import MEMORY_FILE
    from comet_models.inject import FAMILIES

    path = Path(path)
    try:
        conf = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: not a CoMeT model folder ({e})") from e
    comet = conf.get("comet")
    if not comet:
        raise ModelError(f"{path}: a plain model folder, not a CoMeT model; run `comet convert {path}`")

    def count(file):
        n = 0
        with safe_open(str(path / file), framework="pt") as f:
            for k in f.keys():
                n += f.get_slice(k).get_shape().numel() if hasattr(f.get_slice(k).get_shape(), "numel") else \
                    _numel(f.get_slice(k).get_shape())
            md = f.metadata() or {}
        return n, md

    base, _ = count("model.safetensors")
    added, md = count(MEMORY_FILE)
    L, H = conf["num_hidden_layers"], conf["hidden_size"]
    G, BT, C, s = comet["global_slots"], comet["temp_budget"], comet["chunk_size"], comet["temp_stride"]
    state_bytes = L * (G + BT) * H * 4 + BT
    beacons = -(-C // s) if s > 0 and BT > 0 else 0
    mt = conf.get("model_type")
    return {
        "path": str(path), "family": mt, "architecture": (conf.get("architectures") or ["?"])[0],
        "family_note": FAMILIES.get({"gemma3": "gemma3_text"}.get(mt, mt)).note if mt in FAMILIES or mt == "gemma3" else "",
        "source": comet.get("source"), "fingerprint": comet.get("fingerprint"),
        "memory_weights": comet.get("memory_weights") or "untrained (fresh from convert)",
        "training": md.get("training"),
        "layers": L, "hidden_size": H,
        "parameters": {"base": base, "added": added, "added_fraction": round(added / max(base, 1), 6)},
        "layout": {"chunk_size": C, "global_slots": G, "temp_stride": s, "temp_budget": BT,
                   "rla_rank": comet["rla_rank"], "sink_tokens": comet.get("sink_tokens", 0),
                   "initial_state": bool(comet.get("initial_state", False)),
                   "temp_beacons_per_chunk": beacons,
                   "max_positions_per_chunk": comet.get("sink_tokens", 0) + 2 * G + BT + C + beacons},
        "memory_state_bytes": state_bytes,
    }


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


@click.command()
@click.argument("model_dir", required=False, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(model_dir, as_json):
    """Describe a CoMeT model folder (default: the embedded default model).

    Prints the family, base and added parameter counts, the chunk layout and the size of
    one memory state (constant, whatever the input length)."""
    if model_dir is None:
        from comet_cli.modelref import quiet_transformers, resolve_model_dir

        quiet_transformers()
        with console.err.status("preparing the default model"):
            model_dir = resolve_model_dir(None, step=console.info)
    if not Path(model_dir).is_dir():
        from comet_cli.errors import InputError
        raise InputError(f"{model_dir}: no such model folder")
    d = describe(model_dir)
    if as_json:
        console.result_json(d)
        return
    lay, p = d["layout"], d["parameters"]
    lines = [
        f"model        {d['path']}",
        f"family       {d['family']} ({d['architecture']}){' - ' + d['family_note'] if d['family_note'] else ''}",
        f"source       {d['source']}",
        f"fingerprint  {d['fingerprint']}",
        f"memory       {d['memory_weights']}" + (f"; {training_summary(d['training'])}" if d['training'] else ""),
        f"parameters   base {p['base']:,}  added {p['added']:,} ({100 * p['added_fraction']:.3f}%)",
        f"layers       {d['layers']} x hidden {d['hidden_size']}",
        f"chunk        {lay['chunk_size']} text tokens + {lay['temp_beacons_per_chunk']} temp beacons "
        f"(1 per {lay['temp_stride']}) + {lay['global_slots']} global beacons",
        f"memory       {lay['global_slots']} global slots + FIFO of {lay['temp_budget']} temp slots per layer, "
        f"RLA rank {lay['rla_rank']}",
        f"max chunk    {lay['max_positions_per_chunk']} positions",
        f"state size   {d['memory_state_bytes'] / 2**20:.2f} MiB (fp32), the same for any input length",
    ]
    console.result("\n".join(lines))
