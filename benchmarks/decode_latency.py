"""Decode milliseconds per token versus context length: CoMeT against plain full attention.

CoMeT decodes inside its final chunk with the memory as a fixed-size prefix, so its per-token cost
should not depend on how much was read; full attention decodes against a KV cache that grows with
the context. Both use the same model in one process, greedy, after reading real book text.

    python benchmarks/decode_latency.py     # writes benchmarks/results/decode_latency.{json,md,png}
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
BOOK = ROOT.parent / "shared" / "data" / "books" / "war_and_peace_pg2600.txt"
RESULTS = ROOT / "benchmarks" / "results"


def timed_tokens(gen, n: int) -> list[float]:
    """Seconds between successive tokens of a generator (the first, which includes the prompt, dropped)."""
    out, t = [], time.perf_counter()
    for i, _ in enumerate(gen):
        now = time.perf_counter()
        if i:
            out.append(now - t)
        t = now
        if i >= n:
            break
    return out


@torch.inference_mode()
def full_attention_decode(model, ids: list[int], n: int) -> list[float]:
    from transformers import DynamicCache

    cache = DynamicCache()
    out = model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
    tok = int(out.logits[0, -1].argmax())
    times = []
    for i in range(n):
        t = time.perf_counter()
        out = model(input_ids=torch.tensor([[tok]]), past_key_values=cache, use_cache=True,
                    position_ids=torch.tensor([[len(ids) + i]]))
        tok = int(out.logits[0, -1].argmax())
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--comet-lengths", default="2048,8192,32768,131072")
    ap.add_argument("--full-lengths", default="1024,2048,4096,8192,16384")
    ap.add_argument("--tokens", type=int, default=32, help="decoded tokens per point")
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    from comet_cli.modelref import load_model
    from comet_models.runtime import feed, generate, new_state

    model, tok, folder = load_model(args.model)
    need = max(int(x) for x in (args.comet_lengths + "," + args.full_lengths).split(","))
    ids, pos = [], 0
    text = BOOK.read_text(encoding="utf-8")
    while len(ids) < need:
        ids += tok(text[pos:pos + 400_000], add_special_tokens=False)["input_ids"]
        pos = (pos + 400_000) % len(text)
    rows = []
    state, done = new_state(model), 0
    for L in sorted(int(x) for x in args.comet_lengths.split(",")):
        t = time.perf_counter()
        state, done = feed(model, state, ids[done:L]), L
        read_s = time.perf_counter() - t
        times = timed_tokens(generate(model, state, tok.encode(" The", add_special_tokens=False),
                                      max_new_tokens=args.tokens + 1), args.tokens)
        rows.append({"method": "comet", "context": L, "ms_per_token": round(1000 * statistics.median(times), 2),
                     "read_seconds_increment": round(read_s, 1)})
        print(rows[-1], flush=True)
    for L in sorted(int(x) for x in args.full_lengths.split(",")):
        times = full_attention_decode(model, ids[:L], args.tokens)
        rows.append({"method": "full_attention", "context": L, "ms_per_token": round(1000 * statistics.median(times), 2)})
        print(rows[-1], flush=True)
    res = {"machine": f"{os.cpu_count()} cores {platform.machine()}", "torch": torch.__version__,
           "threads": torch.get_num_threads(), "model": str(folder), "layout": model.comet_config.layout_dict(),
           "tokens": args.tokens, "rows": rows, "load": os.getloadavg()[0]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "decode_latency.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = ["# Decode latency: ms per generated token vs context length", "",
             f"{res['machine']}, torch {res['torch']}, {res['threads']} threads, greedy, median of {args.tokens} tokens, "
             f"layout {res['layout']}. Command: `python benchmarks/decode_latency.py`.", "",
             "| method | context tokens | ms / token |", "|---|---:|---:|"]
    lines += [f"| {r['method']} | {r['context']:,} | {r['ms_per_token']} |" for r in rows]
    (RESULTS / "decode_latency.md").write_text("\n".join(lines) + "\n")
    plot(rows, RESULTS / "decode_latency.png")
    print("\n".join(lines))


def plot(rows, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for m in ("comet", "full_attention"):
        pts = [(r["context"], r["ms_per_token"]) for r in rows if r["method"] == m]
        ax.plot(*zip(*pts), marker="o", label=m)
    ax.set_xscale("log")
    ax.set_xlabel("context tokens")
    ax.set_ylabel("ms per decoded token")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
