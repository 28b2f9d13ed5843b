"""Training tokens/s of the SmolLM2 passkey recipe on this machine, one process and two (pipeline).

Runs `comet finetune smollm2-passkey` for a few optimizer steps with fixed sample lengths
(data.min_chunks = data.max_chunks = K), evaluation and checkpoints off, and reads the
per-window tokens/s and peak RSS from the run's metrics.jsonl. The first window (warm-up:
model load, first allocations) is dropped. With --nproc 2 the same recipe runs under the
layer-level pipeline on gloo (each rank one torch thread).

    python benchmarks/train_throughput.py   # writes benchmarks/results/train_throughput.{json,md}
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def run_one(chunks: int, steps: int, nproc: int, tmp: Path) -> dict:
    out = tmp / f"k{chunks}-p{nproc}"
    cmd = [sys.executable, "-m", "comet_cli.cli", "finetune", "smollm2-passkey",
           f"data.min_chunks={chunks}", f"data.max_chunks={chunks}", f"data.max_tokens={chunks * 256}",
           f"train.steps={steps}", "train.grad_accum=1", "train.log_every=1",
           "eval.samples=0", "checkpoint.every=0", f"train.output_dir={out}", "--overwrite", "--quiet"]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    env = {**os.environ}
    if nproc == 1:
        env.pop("OMP_NUM_THREADS", None)
    before, t0 = loadavg(), time.time()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    wall = time.time() - t0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steady = rows[1:] or rows
    tps = sorted(r["tokens_per_s"] for r in steady)
    return {"chunks": chunks, "tokens_per_sample": chunks * 256, "processes": nproc, "steps": steps,
            "tokens_per_s_median": tps[len(tps) // 2], "tokens_per_s_best": tps[-1],
            "step_seconds_median": round(chunks * 256 / tps[len(tps) // 2], 2),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows), "wall_seconds": round(wall, 1),
            "final_loss": round(rows[-1]["loss"], 4), "load_before": before, "load_after": loadavg()}


def table(res: dict) -> str:
    lines = ["# Training throughput: smollm2-passkey recipe (SmolLM2-135M, LoRA r16 q/v + memory)", "",
             f"CPU: {res['machine']}, fp32, torch {res['torch']}. Command: `python benchmarks/train_throughput.py`. "
             "Each row: one optimizer step = forward + backward of one sample (batch 1, grad_accum 1), "
             "first step dropped as warm-up; tokens/s counts sample tokens (memory slots and beacons not counted).",
             "", "| chunks x 256 | processes | tokens/s (median) | tokens/s (best) | s/step (median) | peak RSS per process (MiB) | load before/after |",
             "|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        lines.append(f"| {r['chunks']} x 256 = {r['tokens_per_sample']} | {r['processes']} | {r['tokens_per_s_median']:.0f} | "
                     f"{r['tokens_per_s_best']:.0f} | {r['step_seconds_median']} | {r['peak_rss_mb']:.0f} | "
                     f"{r['load_before']} / {r['load_after']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, nargs="+", default=[2, 5])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    import torch

    res = {"machine": f"{os.cpu_count()} cores {platform.machine()}", "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.chunks:
            for p in args.nproc:
                r = run_one(k, args.steps, p, Path(tmp))
                print(json.dumps(r), file=sys.stderr)
                res["runs"].append(r)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_throughput.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "train_throughput.md").write_text(table(res))
    print(table(res))


if __name__ == "__main__":
    main()
