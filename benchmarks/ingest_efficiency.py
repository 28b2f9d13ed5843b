"""How close does CoMeT ingest run to what this CPU's matrix multiply can do?

In one process: (1) the fp32 matmul FLOP/s torch reaches here (square 2048 and the model's own
largest shape, best of several); (2) the FLOPs of reading one chunk, counted by
torch.utils.flop_counter over every position the chunk carries (text, temp and global beacons,
memory slots); (3) the time per chunk while reading real book text. Efficiency = FLOPs per chunk
/ seconds per chunk / matmul FLOP/s. The base model's plain forward over the same text length
is measured the same way, for reference. Matmul and ingest are interleaved in rounds, so a
noisy neighbour hits both.

    python benchmarks/ingest_efficiency.py      # writes benchmarks/results/ingest_efficiency.{json,md}
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT.parent / "shared" / "data" / "books" / "moby_dick_pg2701.txt"
RESULTS = ROOT / "benchmarks" / "results"


def matmul_flops(m: int, k: int, n: int, reps: int = 5) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * m * k * n / best


def counted_flops(fn) -> tuple[int, int]:
    """(all FLOPs, attention FLOPs) of fn(). torch's counter knows the CUDA attention kernels but
    not the CPU one that SDPA picks here, so that one is mapped to torch's own SDPA formula (QK^T
    and AV), halved when the kernel runs causal: it then skips the blocks above the diagonal, as
    FLOP counts of causal attention usually assume. CoMeT chunks are plain causal (METHOD.md 5)."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_sdpa(q_shape, k_shape, v_shape, dropout_p=0.0, is_causal=False, *args, out_shape=None, **kwargs) -> int:
        dense = sdpa_flop_count(q_shape, k_shape, v_shape)
        return dense // 2 if is_causal else dense

    aten = torch.ops.aten
    with FlopCounterMode(display=False, custom_mapping={
            aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa}) as fc:
        fn()
    counts = fc.get_flop_counts().get("Global", {})
    attn = sum(v for k, v in counts.items() if "attention" in str(k))
    return fc.get_total_flops(), attn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="CoMeT folder (default: the embedded default)")
    ap.add_argument("--chunks", type=int, default=6, help="chunks timed per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    from comet_cli.modelref import load_model
    from comet_models.runtime import feed, new_state

    model, tok, folder = load_model(args.model)
    cfg, conf = model.comet_config, model.config
    C = cfg.chunk_size
    # warm until the FIFO is full, so every measured chunk carries all its positions
    W = 1 + -(-cfg.temp_budget * (cfg.temp_stride or C) // C)
    S = W * C + 1
    text = BOOK.read_text(encoding="utf-8")[: (args.chunks + W + 2) * C * 6]
    ids = tok(text, add_special_tokens=False)["input_ids"][: S + (args.chunks + 1) * C]
    assert len(ids) >= S + (args.chunks + 1) * C, "book too short"
    warm = feed(model, new_state(model), ids[:S])
    assert bool(warm.temp_valid.all()), "FIFO not full after warm-up"
    with torch.inference_mode():
        chunk_flops, chunk_attn = counted_flops(lambda: feed(model, warm, ids[S: S + C]))
        base_flops, base_attn = counted_flops(lambda: model.model(input_ids=torch.tensor([ids[:C]])))
    shapes = {"square 2048": (2048, 2048, 2048),
              "model MLP (positions x hidden x intermediate)": (C, conf.hidden_size, conf.intermediate_size)}
    peaks = {k: [] for k in shapes}
    comet_s, base_s = [], []
    for _ in range(args.rounds):
        for k, s in shapes.items():
            peaks[k].append(matmul_flops(*s))
        with torch.inference_mode():
            t = time.perf_counter()
            feed(model, warm, ids[S: S + args.chunks * C] + [0])
            comet_s.append((time.perf_counter() - t) / args.chunks)
            t = time.perf_counter()
            for a in range(S, S + args.chunks * C, C):
                model.model(input_ids=torch.tensor([ids[a:a + C]]))
            base_s.append((time.perf_counter() - t) / args.chunks)
    peak = max(max(v) for v in peaks.values())
    comet_fps, base_fps = chunk_flops / min(comet_s), base_flops / min(base_s)
    s = cfg.temp_stride
    res = {
        "machine": f"{os.cpu_count()} cores {platform.machine()}", "torch": torch.__version__,
        "threads": torch.get_num_threads(), "model": str(folder), "layout": cfg.layout_dict(),
        "positions_per_chunk": 2 * cfg.global_slots + cfg.temp_budget + C + (-(-C // s) if s else 0),
        "matmul_gflops": {k: round(max(v) / 1e9, 1) for k, v in peaks.items()},
        "comet": {"flops_per_chunk": chunk_flops, "attention_flops_per_chunk": chunk_attn, "seconds_per_chunk_best": round(min(comet_s), 4),
                  "seconds_per_chunk_median": round(statistics.median(comet_s), 4),
                  "gflops": round(comet_fps / 1e9, 1), "efficiency": round(comet_fps / peak, 3),
                  "tokens_per_s": round(C / min(comet_s), 1)},
        "base_forward": {"flops_per_chunk": base_flops, "attention_flops_per_chunk": base_attn, "seconds_per_chunk_best": round(min(base_s), 4),
                         "gflops": round(base_fps / 1e9, 1), "efficiency": round(base_fps / peak, 3),
                         "tokens_per_s": round(C / min(base_s), 1)},
        "load": os.getloadavg()[0],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest_efficiency.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "ingest_efficiency.md").write_text(table(res))
    print(table(res))


def table(r: dict) -> str:
    c, b = r["comet"], r["base_forward"]
    peak = max(r["matmul_gflops"].values())
    peaks = "; ".join(f"{k}: {v} GFLOP/s" for k, v in r["matmul_gflops"].items())
    return "\n".join([
        "# Ingest efficiency: achieved FLOP/s over fp32 matmul FLOP/s", "",
        f"{r['machine']}, torch {r['torch']} ({r['threads']} threads), layout {r['layout']}, "
        f"{r['positions_per_chunk']} positions per chunk. Command: `python benchmarks/ingest_efficiency.py`. "
        f"Matmul, best of the run: {peaks}. Load average at the end: {r['load']:.2f}. "
        "FLOPs are counted by torch.utils.flop_counter; attention (QK^T and AV by torch's SDPA formula, "
        "halved because the kernel runs causal and skips the upper blocks) is added for the CPU kernel "
        "the counter does not know.", "",
        "| what | FLOPs per chunk (counted; of which attention) | s per chunk (best) | GFLOP/s | efficiency vs matmul peak | same, attention FLOPs left out | text tokens/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| CoMeT ingest (all positions) | {c['flops_per_chunk'] / 1e9:.1f} G ({c['attention_flops_per_chunk'] / 1e9:.1f} G) | {c['seconds_per_chunk_best']} | "
        f"{c['gflops']} | {c['efficiency']:.2f} | {lin(c, peak):.2f} | {c['tokens_per_s']} |",
        f"| base model forward, same text, no memory | {b['flops_per_chunk'] / 1e9:.1f} G ({b['attention_flops_per_chunk'] / 1e9:.1f} G) | {b['seconds_per_chunk_best']} | "
        f"{b['gflops']} | {b['efficiency']:.2f} | {lin(b, peak):.2f} | {b['tokens_per_s']} |", ""])


def lin(row: dict, peak_gflops: float) -> float:
    """Efficiency counting only the non-attention FLOPs (a lower bound: attention time stays in)."""
    return (row["flops_per_chunk"] - row["attention_flops_per_chunk"]) / row["seconds_per_chunk_best"] / 1e9 / peak_gflops


if __name__ == "__main__":
    main()
