"""Training tokens/s of the SmolLM2 passkey recipe on this machine, one process and two (pipeline).

Runs `comet finetune smollm2-passkey` for a few optimizer steps with fixed sample lengths
(data.min_chunks = data.max_chunks = K), evaluation and checkpoints off, and reads the
per-window tokens/s and peak RSS from the run's metrics.jsonl. The first window (warm-up:
model load, first allocations) is dropped. With --nproc 2 the same recipe runs under the
layer-level pipeline on gloo (each rank one torch thread). With --dtypes the forward runs under
that autocast dtype (`train.dtype`; weights and AdamW stay fp32), alternating dtypes for --repeats
rounds so that both see the same machine load; the final loss shows what the lower precision costs
on the same samples.

    python benchmarks/train_throughput.py   # writes benchmarks/results/train_throughput.{json,md}
    python benchmarks/train_throughput.py --chunks 3 --nproc 1 --dtypes float32 bfloat16 --repeats 2 --out train_dtype
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


def run_one(chunks: int, steps: int, nproc: int, tmp: Path, dtype: str = "float32") -> dict:
    out = tmp / f"k{chunks}-p{nproc}-{dtype}"
    cmd = [sys.executable, "-m", "comet_cli.cli", "finetune", "smollm2-passkey",
           f"data.min_chunks={chunks}", f"data.max_chunks={chunks}", f"data.max_tokens={chunks * 256}",
           f"train.steps={steps}", "train.grad_accum=1", "train.log_every=1",
           "eval.samples=0", "checkpoint.every=0", f"train.dtype={dtype}", f"train.output_dir={out}",
           "--overwrite", "--quiet", "--no-export"]
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
    return {"chunks": chunks, "dtype": dtype, "tokens_per_sample": chunks * 256, "processes": nproc, "steps": steps,
            "tokens_per_s_median": tps[len(tps) // 2], "tokens_per_s_best": tps[-1],
            "step_seconds_median": round(chunks * 256 / tps[len(tps) // 2], 2),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows), "wall_seconds": round(wall, 1),
            "final_loss": round(rows[-1]["loss"], 4), "load_before": before, "load_after": loadavg()}


def table(res: dict) -> str:
    lines = ["# Training throughput: smollm2-passkey recipe (SmolLM2-135M, LoRA r16 q/v + memory)", "",
             f"CPU: {res['machine']}, torch {res['torch']}. Command: `{res['command']}`. "
             "Each row: one optimizer step = forward + backward of one sample (batch 1, grad_accum 1), "
             "first step dropped as warm-up; tokens/s counts sample tokens (memory slots and beacons not counted).",
             "", "| chunks x 256 | processes | forward dtype | tokens/s (median) | tokens/s (best) | s/step (median) | final loss | peak RSS per process (MiB) | load before/after |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        lines.append(f"| {r['chunks']} x 256 = {r['tokens_per_sample']} | {r['processes']} | {r['dtype']} | "
                     f"{r['tokens_per_s_median']:.0f} | {r['tokens_per_s_best']:.0f} | {r['step_seconds_median']} | "
                     f"{r['final_loss']} | {r['peak_rss_mb']:.0f} | "
                     f"{r['load_before']} / {r['load_after']} |")
    groups: dict[tuple, list[float]] = {}  # (chunks, processes, dtype) -> median tokens/s of each repeat
    for r in res["runs"]:
        groups.setdefault((r["chunks"], r["processes"], r["dtype"]), []).append(r["tokens_per_s_median"])
    mean = {k: sum(v) / len(v) for k, v in groups.items()}
    for (k, p, dt), tps in mean.items():
        if dt != "float32" and (k, p, "float32") in mean:
            lines.append(f"\n{dt} / float32 tokens/s ({k} chunks, {p} process(es)): {tps / mean[(k, p, 'float32')]:.2f}x")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, nargs="+", default=[2, 5])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dtypes", nargs="+", default=["float32"], choices=["float32", "bfloat16", "float16"],
                    help="forward autocast dtypes to compare (train.dtype)")
    ap.add_argument("--repeats", type=int, default=1, help="rounds over the dtypes, alternating")
    ap.add_argument("--out", default="train_throughput", help="result name under benchmarks/results/")
    args = ap.parse_args()
    import torch

    res = {"machine": f"{os.cpu_count()} cores {platform.machine()}", "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), "command": "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:]),
           "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.chunks:
            for p in args.nproc:
                for _ in range(args.repeats):
                    for dt in args.dtypes:
                        r = run_one(k, args.steps, p, Path(tmp), dt)
                        print(json.dumps(r), file=sys.stderr)
                        res["runs"].append(r)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(table(res))
    print(table(res))


if __name__ == "__main__":
    main()
