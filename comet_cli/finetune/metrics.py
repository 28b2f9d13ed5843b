"""The training log: one metrics.jsonl line per logging window, and the line shown on stderr.

A line holds the step, the window's mean loss, the last lr and gradient norm, tokens/s over the
window's busy time, peak RSS (and peak GPU memory on CUDA), wall seconds since the run started and
any pass-key accuracies evaluated at that step. A resumed run first drops the lines logged after its
checkpoint, so the file reads as one uninterrupted run.
"""
from __future__ import annotations

import json
import resource
from pathlib import Path

import torch

from comet_cli import console

METRICS_FILE = "metrics.jsonl"


def trim_metrics(path: Path, last_step: int) -> None:
    # Lines logged after the checkpoint being resumed belong to the interrupted run's future.
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= last_step]
    path.write_text("".join(line + "\n" for line in keep))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def window_metrics(window: list[dict], step: int, seconds: float) -> dict:
    tokens = sum(m["tokens"] for m in window)
    busy = sum(m["seconds"] for m in window)
    out = {"step": step, "loss": sum(m["loss"] for m in window) / len(window), "lr": window[-1]["lr"],
           "grad_norm": window[-1]["grad_norm"], "tokens_per_s": round(tokens / max(busy, 1e-9), 1),
           "peak_rss_mb": round(peak_rss_mb(), 1), "seconds": round(seconds, 2)}
    if "fifo_dropped" in window[0]:
        # samples trained without temporary memory, and the mean loss of the steps that had any
        out["fifo_dropped"] = sum(m["fifo_dropped"] for m in window)
        off = [m["loss"] for m in window if m["fifo_dropped"]]
        if off:
            out["loss_no_fifo"] = sum(off) / len(off)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def log_line(m: dict, steps: int, quiet: bool) -> None:
    if quiet:
        return
    evals = "".join(f"  {k} {v:.2f}" for k, v in m.items() if k.startswith("passkey@"))
    console.info(f"step {m['step']}/{steps}  loss {m['loss']:.4f}  lr {m['lr']:.2e}  grad_norm {m['grad_norm']:.3f}  "
                 f"{m['tokens_per_s']:,.0f} tok/s{evals}")
