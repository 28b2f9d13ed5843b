"""Pack the device runs into $OUT (at most 8 files, each <= 16 MiB, 64 MiB in all) and print a summary.

    python3 .dev/pack_results.py --runs /tmp/runs --logs /tmp/logs --evals /tmp/evals --out $OUT --recipes R.yaml...

$OUT/NAME.tar.gz per run: lora.safetensors, memory.safetensors, metrics.jsonl (+ metrics.untrimmed.jsonl when
the run was exported from a checkpoint), recipe.yaml (as resolved by the run; recipe.export.yaml is the
export-only resume), recipe.src.yaml (the file as written), model_config.json, status.json, the pass-key
eval (NAME.passkey.json aggregate, NAME.passkey.jsonl rows) and the run's logs. Not model/ or checkpoints/.
$OUT/logs.tar.gz: every log, every eval (the base model's too), status.json of all runs, summary.txt.
A tar over 16 MiB, or a total over 63 MiB, gets its safetensors in bfloat16 (NAME.bf16.safetensors; noted
in status.json "downcast"), largest first.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import tarfile
import time
from pathlib import Path

MiB = 1 << 20
FILE_LIMIT = int(os.environ.get("PACK_FILE_LIMIT", 16 * MiB - 64 * 1024))  # env: for tests of the bf16 path
TOTAL_LIMIT = int(os.environ.get("PACK_TOTAL_LIMIT", 63 * MiB))


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def planned_steps(run: Path) -> int | None:
    for name in ("recipe.yaml", "recipe.orig.yaml"):
        p = run / name
        if p.is_file():
            try:
                import yaml

                return int(yaml.safe_load(p.read_text())["train"]["steps"])
            except Exception:  # noqa: BLE001
                pass
    return None


def eval_summary(evals: Path, name: str) -> dict:
    """{"grid": {length: acc}, "items": n, "complete": bool} from the aggregate or, if the eval was cut
    short, from its per-sample rows."""
    agg = evals / f"{name}.passkey.json"
    try:
        data = json.loads(agg.read_text())
        grid = {int(L): sum(ds.values()) / len(ds) for L, ds in data["grid"].items() if ds}
        return {"acc_by_length": grid, "by_depth": data["grid"], "items": data.get("items"), "complete": True}
    except Exception:  # noqa: BLE001
        pass
    rows = [r for s in read_jsonl(evals / f"{name}.passkey.jsonl") for r in s.get("rows", [])]
    if not rows:
        return {}
    cells: dict = {}
    for r in rows:
        cells.setdefault(int(r["length"]), []).append(bool(r["correct"]))
    return {"acc_by_length": {L: sum(v) / len(v) for L, v in sorted(cells.items())}, "items": len(rows),
            "complete": False}


def status_of(run: Path, name: str, evals: Path) -> dict:
    st: dict = {"name": name, "steps_planned": planned_steps(run)}
    rc_file = run.parent / f"{name}.rc"
    if rc_file.is_file():
        parts = rc_file.read_text().split()
        st["train_rc"] = int(parts[0]) if parts and parts[0].lstrip("-").isdigit() else parts[:1]
        st["train_seconds"] = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    exported = (run / "memory.safetensors").is_file() and (run / "model" / "config.json").is_file()
    from_step = run / "exported_from_step"
    ckpts = sorted(int(p.name[5:]) for p in (run / "checkpoints").glob("step-*") if p.name[5:].isdigit()) \
        if (run / "checkpoints").is_dir() else []
    if exported and from_step.is_file():
        st["export"] = f"from checkpoint step-{from_step.read_text().strip()} (stopped by the timeout)"
        st["steps_done"] = int(from_step.read_text().strip())
    elif exported:
        # the final checkpoint is the last step trained (train.steps, or earlier with train.max_minutes)
        st["steps_done"] = ckpts[-1] if ckpts else st["steps_planned"]
        early = st["steps_planned"] is not None and st["steps_done"] < st["steps_planned"]
        st["export"] = "finished early (train.max_minutes)" if early else "finished"
    else:
        st["export"] = "none"
        st["steps_done"] = ckpts[-1] if ckpts else 0
    metrics = read_jsonl(run / "metrics.untrimmed.jsonl") or read_jsonl(run / "metrics.jsonl")
    losses = [m for m in metrics if "loss" in m]
    if losses:
        last = losses[-1]
        st["last_logged_step"] = last.get("step")
        st["last_loss"] = round(float(last["loss"]), 4)
        st["tokens_per_s"] = last.get("tokens_per_s")
        st["peak_gpu_mb"] = max((m.get("peak_gpu_mb") or 0) for m in metrics) or None
    train_pk = {k: v for m in metrics for k, v in m.items() if k.startswith("passkey@")}
    if train_pk:
        st["train_passkey_last"] = train_pk
    ev = eval_summary(evals, name)
    if ev:
        st["eval_passkey"] = ev
    return st


def downcast(src: Path) -> bytes:
    """The safetensors file with floating tensors in bfloat16 (metadata kept)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save

    with safe_open(str(src), framework="pt") as f:
        md = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    md["downcast"] = "bfloat16 (for transport)"
    return save(tensors, metadata=md)


def add_bytes(tar: tarfile.TarFile, arcname: str, data: bytes) -> None:
    info = tarfile.TarInfo(arcname)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


def pack_run(out: Path, name: str, run: Path, recipe: Path | None, logs: Path, evals: Path, st: dict,
             bf16: bool) -> int:
    tmp = out / f".{name}.tar.gz.tmp"
    st = dict(st, downcast=bf16)
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        for fname in ("lora.safetensors", "memory.safetensors"):
            p = run / fname
            if p.is_file():
                if bf16:
                    add_bytes(tar, f"{name}/{fname[:-12]}.bf16.safetensors", downcast(p))
                else:
                    tar.add(p, f"{name}/{fname}")
        for fname in ("metrics.jsonl", "metrics.untrimmed.jsonl", "recipe.yaml", "recipe.export.yaml"):
            if (run / fname).is_file():
                tar.add(run / fname, f"{name}/{fname}")
        if (run / "model" / "config.json").is_file():
            tar.add(run / "model" / "config.json", f"{name}/model_config.json")
        if recipe is not None and recipe.is_file():
            tar.add(recipe, f"{name}/recipe.src.yaml")
        for p in sorted(evals.glob(f"{name}.passkey.*")) + sorted(logs.glob(f"{name}.*.log")):
            tar.add(p, f"{name}/{p.name}")
        add_bytes(tar, f"{name}/status.json", (json.dumps(st, indent=2) + "\n").encode())
    size = tmp.stat().st_size
    os.replace(tmp, out / f"{name}.tar.gz")
    return size


def fmt_eval(ev: dict) -> str:
    if not ev:
        return "-"
    s = " ".join(f"{L}:{a:.0%}" for L, a in ev["acc_by_length"].items())
    return s + ("" if ev.get("complete") else f" (partial, {ev.get('items')} rows)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--logs", type=Path, required=True)
    ap.add_argument("--evals", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--recipes", nargs="*", default=[])
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    recipes = {Path(r).stem: Path(r) for r in a.recipes[:7]}
    statuses, sizes, bf16 = {}, {}, {}
    for name, recipe in recipes.items():
        run = a.runs / name
        statuses[name] = status_of(run, name, a.evals)
        bf16[name] = False
        sizes[name] = pack_run(a.out, name, run, recipe, a.logs, a.evals, statuses[name], False)
        if sizes[name] > FILE_LIMIT:
            print(f"[pack] WARNING: {name}.tar.gz is {sizes[name] / MiB:.1f} MiB > {FILE_LIMIT / MiB:.2f} MiB: weights in bfloat16")
            bf16[name] = True
            sizes[name] = pack_run(a.out, name, run, recipe, a.logs, a.evals, statuses[name], True)
    while sum(sizes.values()) > TOTAL_LIMIT - 2 * MiB:
        left = [n for n in sizes if not bf16[n]]
        if not left:
            break
        n = max(left, key=sizes.get)
        print(f"[pack] WARNING: {sum(sizes.values()) / MiB:.1f} MiB in all: {n} weights in bfloat16")
        bf16[n] = True
        sizes[n] = pack_run(a.out, n, a.runs / n, recipes[n], a.logs, a.evals, statuses[n], True)
    for n in statuses:
        statuses[n]["downcast"] = bf16[n]
        statuses[n]["tar_bytes"] = sizes[n]
    base = eval_summary(a.evals, "_base")
    lines = [f"{'run':28} {'steps':>11} {'export':>8} {'last loss':>9}  {'train passkey':18} eval passkey (acc by length)"]
    for n, s in statuses.items():
        steps = f"{s.get('steps_done')}/{s.get('steps_planned')}"
        exp = {"from": "ckpt", "finished early": "early"}.get(next((p for p in ("from", "finished early")
                                                                   if s["export"].startswith(p)), ""), s["export"])
        tp = " ".join(f"{k[8:]}:{v:.2f}" for k, v in (s.get("train_passkey_last") or {}).items()) or "-"
        loss = f"{s['last_loss']:.4f}" if "last_loss" in s else "-"
        lines.append(f"{n:28} {steps:>11} {exp:>8} {loss:>9}  {tp:18} {fmt_eval(s.get('eval_passkey', {}))}"
                     + (" [bf16]" if bf16[n] else ""))
    if base:
        lines.append(f"{'(base model)':28} {'':>11} {'':>8} {'':>9}  {'':18} {fmt_eval(base)}")
    summary = "\n".join(lines) + "\n"
    tmp = a.out / ".logs.tar.gz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for d, pat in ((a.logs, "*.log"), (a.evals, "*.json*")):
            for p in sorted(d.glob(pat)):
                tar.add(p, f"logs/{d.name}/{p.name}")
        add_bytes(tar, "logs/status.json", (json.dumps({"runs": statuses, "base_eval": base}, indent=2) + "\n").encode())
        add_bytes(tar, "logs/summary.txt", summary.encode())
    os.replace(tmp, a.out / "logs.tar.gz")
    total = sum(p.stat().st_size for p in a.out.iterdir() if p.is_file())
    files = [p for p in a.out.iterdir() if p.is_file()]
    if len(files) > 8 or total > 64 * MiB:
        print(f"[pack] WARNING: $OUT has {len(files)} files, {total / MiB:.1f} MiB (limit 8 files, 64 MiB)")
    if not a.quiet:
        print(summary + f"$OUT: {len(files)} files, {total / MiB:.1f} MiB")


if __name__ == "__main__":
    main()
