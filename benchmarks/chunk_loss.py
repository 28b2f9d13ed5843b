"""Next-token loss of book text read through memory, per chunk index.

Chunk 0 has no memory: its loss is the backbone's on that text (plus the beacons' interference).
Every later chunk starts with the memory slots and no attention to the text before it, so its loss
shows what a layout does to the model: how much the slots disturb it and how much the memory
carries. Comparing an untrained conversion with and without a sink token (`comet convert
--sink-tokens 1`) shows what taking position 0 away from the attention sink costs; `--full`
adds the backbone with full attention over the whole sample (the same model, no chunks) as the
floor. Text from *Ulysses*, which no training recipe uses.

    python benchmarks/chunk_loss.py --models DIR_A DIR_B [--full DIR] --samples 12
    # -> benchmarks/results/chunk_loss.{json,md}
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BOOK = ROOT.parent / "shared" / "data" / "books" / "ulysses_pg4300.txt"
RESULTS = ROOT / "benchmarks" / "results"


def book_windows(tok, n_samples: int, n_tokens: int, seed: int) -> list[list[int]]:
    """n_samples windows of n_tokens tokens at random offsets of the book."""
    from comet_cli.finetune.data import _encode_long
    from comet_cli.finetune.synthetic import FillerText

    text = FillerText([BOOK]).text(BOOK)
    ids = _encode_long(tok, text)
    rng = random.Random(seed)
    starts = [rng.randrange(0, len(ids) - n_tokens) for _ in range(n_samples)]
    return [ids[s:s + n_tokens] for s in starts]


@torch.no_grad()
def per_chunk_loss(model, windows: list[list[int]], n_chunks: int) -> list[float]:
    """Mean next-token loss (nats) of the text of each chunk index, over the windows."""
    from comet_models.chunked import Engine

    eng, C = Engine(model), model.comet_config.chunk_size
    sums = [0.0] * n_chunks
    for w in windows:
        ids = torch.tensor([w])
        labels = torch.cat([ids[:, 1:], torch.full((1, 1), -100)], dim=1)
        hs, ctxs, _ = eng.run_layer_major([ids[:, k * C:(k + 1) * C] for k in range(n_chunks)], eng.empty_memory())
        for k in range(n_chunks):
            total, count = eng.text_loss([hs[k]], [ctxs[k]], [labels[:, k * C:(k + 1) * C]])
            sums[k] += float(total) / count
    return [s / len(windows) for s in sums]


@torch.no_grad()
def full_attention_loss(model, windows: list[list[int]], chunk: int, n_chunks: int) -> list[float]:
    """The backbone alone (memory layers call the base layer) over the whole window, per chunk span."""
    import torch.nn.functional as F

    sums = [0.0] * n_chunks
    for w in windows:
        ids = torch.tensor([w])
        logits = model(ids).logits[0, :-1].float()
        loss = F.cross_entropy(logits, ids[0, 1:], reduction="none")
        for k in range(n_chunks):
            sums[k] += loss[k * chunk:(k + 1) * chunk].mean().item()
    return [s / len(windows) for s in sums]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", required=True, help="CoMeT model folders")
    ap.add_argument("--full", help="a CoMeT folder whose backbone is also run with full attention (the floor)")
    ap.add_argument("--samples", type=int, default=12)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS / "chunk_loss"))
    args = ap.parse_args()
    from comet_models.convert import load_comet

    res = {"samples": args.samples, "chunks": args.chunks, "seed": args.seed, "models": {}}
    for m, full in [(m, False) for m in args.models] + ([(args.full, True)] if args.full else []):
        t = time.time()
        model, tok = load_comet(m)
        C = model.comet_config.chunk_size
        windows = book_windows(tok, args.samples, C * args.chunks, args.seed)
        key = f"{m} (full attention)" if full else m
        losses = full_attention_loss(model, windows, C, args.chunks) if full else per_chunk_loss(model, windows, args.chunks)
        res["models"][key] = {"loss": [round(x, 4) for x in losses], "sink_tokens": model.comet_config.sink_tokens,
                              "seconds": round(time.time() - t, 1)}
        print(f"{key}: {' '.join(f'{x:.3f}' for x in losses)}", file=sys.stderr, flush=True)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    head = " | ".join(f"chunk {k}" for k in range(args.chunks))
    lines = ["# Next-token loss of book text per chunk index (nats; lower is better)", "",
             f"{args.samples} windows of {args.chunks} chunks from *Ulysses* (seed {args.seed}). Command: "
             f"`python benchmarks/chunk_loss.py --models {' '.join(args.models)}"
             + (f" --full {args.full}" if args.full else "") + f" --samples {args.samples}`", "",
             f"| model | sink | {head} |", "|---|---:|" + "---:|" * args.chunks]
    for m, r in res["models"].items():
        lines.append(f"| {m} | {r['sink_tokens']} | " + " | ".join(f"{x:.3f}" for x in r["loss"]) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
