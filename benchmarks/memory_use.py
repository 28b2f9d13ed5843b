"""How much does a model's memory carry? Answer loss with the right memory vs a decoy.

Pass-key accuracy is 0 or 1 per sample and stays at 0 long after the memory has started to carry
something. This measures it continuously: for recall samples (repeat a quoted passage) and pass-key
samples, the per-token loss of the answer after reading the real context, and after reading the
same context with the passage (or key) swapped for a decoy. The answer is identical in both reads
and only the memory can tell them apart, so `gain = decoy loss - real loss` (nats per answer token)
is what the memory contributes: 0 for a model that carries nothing.

Placements, for chunks of 256 and a FIFO of two chunks: `near` puts the needle in the chunk right
before the answer's chunk (temporary memory reaches it), `far` in the first chunk of a 4-chunk
sample (only the global memory does), `farther` in the first of 8 chunks, `farthest` of 16 (4k tokens),
`16k` of 64 and `64k` of 256 (the grid's lengths; always 82 tokens into the first chunk), `16k-mid` in
chunk 32 of 64. A key in the first chunk favours a state that never changes after its first write, which
`--gate-power` near 0 gives (gates -> 1): `16k-mid` is the check that a gain is not that.
`pair-mid` and `pair-end` are 2-chunk samples of 320 tokens (the sink A/B's training length) with
the key in the middle or at the end of the first chunk. With `--no-fifo` every cell is measured a
second time without temporary memory (the FIFO is never kept, as in training's fifo_dropout): what
is left of the gain then travels through the global memory alone.
Filler and passages come from *Ulysses*, which no training recipe uses.

    python benchmarks/memory_use.py --models runs/default-s1/model runs/recall/model
    # -> benchmarks/results/memory_use.{json,md}
    python benchmarks/memory_use.py --models runs/r2-fd5/model --kinds passkey \
        --placements pair-mid pair-end near far --no-fifo --out benchmarks/results/memory_routes
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BOOK = ROOT.parent / "shared" / "data" / "books" / "ulysses_pg4300.txt"
RESULTS = ROOT / "benchmarks" / "results"
# name -> (total tokens, relative depth of the needle)
PLACEMENTS = {"near": (1024, 0.6), "far": (1024, 0.08), "farther": (2048, 0.04), "farthest": (4096, 0.02),
              "16k": (16384, 0.005), "64k": (65536, 0.00125),
              "16k-mid": (16384, 0.5), "pair-mid": (320, 0.3), "pair-end": (320, 0.75)}


def pairs(kind: str, tok, filler, length: int, depth: float, n: int, seed: int):
    """n (real, decoy) Samples: the decoy context has another passage/key at the same place."""
    from comet_cli.finetune.data import SyntheticSamples, qa_sample
    from comet_cli.finetune.synthetic import SyntheticSample, passkey_sample, recall_sample

    def make(rng, n_tokens, count):
        if kind == "recall":
            return recall_sample(rng, filler, n_tokens, depth, (48, 64), count)
        return passkey_sample(rng, filler, n_tokens, depth, count)

    family = SyntheticSamples(tok, make, [length], seed, f"memory-use:{kind}")
    out = []
    for k in range(n):
        item = family.item(k)
        decoy_ctx = item.context.replace(item.answer, _decoy(tok, family, k, item.answer))
        assert decoy_ctx != item.context
        out.append((qa_sample(tok, item), qa_sample(tok, SyntheticSample(decoy_ctx, item.question, item.answer, kind))))
    return out


def _decoy(tok, family, k: int, answer: str) -> str:
    """Another sample's answer cut to the same number of tokens, so that every later token of the
    decoy read sits where it sat in the real one (a shifted read would change the loss by itself)."""
    n = len(tok.encode(answer, add_special_tokens=False))
    for j in range(1, 50):
        ids = tok.encode(family.item(k + 1000 * j).answer, add_special_tokens=False)
        if len(ids) >= n and tok.decode(ids[:n]) != answer:
            return tok.decode(ids[:n])
    raise RuntimeError("no decoy of the right length")


@torch.no_grad()
def answer_loss(model, sample, chunk: int, keep_temp: bool = True, gate_power: float = 1.0) -> float:
    from comet_models.chunked import sequence_loss
    from comet_models.layout import split_chunks

    ids = torch.tensor([sample.input_ids])
    labels = torch.tensor([sample.labels])
    total, count = sequence_loss(model, ids, labels, split_chunks(ids.shape[1], chunk), keep_temp=keep_temp,
                                 gate_power=gate_power)
    return float(total) / max(count, 1)


def measure(model_dir: str, n: int, seed: int, kinds=("recall", "passkey"), placements=("near", "far", "farther"),
            no_fifo: bool = False, dtype: str = "float32", gate_power: float = 1.0) -> dict:
    from comet_cli.finetune.synthetic import FillerText
    from comet_cli.modelref import pick_dtype
    from comet_models.convert import load_comet

    model, tok = load_comet(model_dir, dtype=pick_dtype(dtype))
    chunk = model.comet_config.chunk_size
    filler = FillerText([BOOK])
    rows = {}
    for kind in kinds:
        for name in placements:
            length, depth = PLACEMENTS[name]
            for keep in (True, False) if no_fifo else (True,):
                t = time.time()
                real, decoy = [], []
                for a, b in pairs(kind, tok, filler, length, depth, n, seed):
                    real.append(answer_loss(model, a, chunk, keep, gate_power))
                    decoy.append(answer_loss(model, b, chunk, keep, gate_power))
                r, d = sum(real) / n, sum(decoy) / n
                key = f"{kind}/{name}" + ("" if keep else " no FIFO")
                rows[key] = {"real_loss": round(r, 3), "decoy_loss": round(d, 3), "gain": round(d - r, 3),
                             "real_better": sum(x < y for x, y in zip(real, decoy)), "samples": n,
                             "tokens": length, "depth": depth, "seconds": round(time.time() - t, 1)}
                print(f"{model_dir} {key}: real {r:.3f} decoy {d:.3f} gain {d - r:+.3f}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    from comet_cli.modelref import DTYPES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", required=True, help="CoMeT model folders (a run's model/)")
    ap.add_argument("--samples", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kinds", nargs="+", choices=["recall", "passkey"], default=["recall", "passkey"])
    ap.add_argument("--placements", nargs="+", choices=list(PLACEMENTS), default=["near", "far", "farther"])
    ap.add_argument("--no-fifo", action="store_true", help="also measure every cell without temporary memory")
    ap.add_argument("--dtype", choices=DTYPES, default="float32",
                    help="bfloat16 reads 2.6x faster on this CPU (benchmarks/results/reading_dtype.md); for 16k/64k")
    ap.add_argument("--gate-power", type=float, default=1.0,
                    help="read with every global gate raised to this power (below 1: slots keep longer, "
                         "and near 0 the state freezes after its first write)")
    ap.add_argument("--out", default=str(RESULTS / "memory_use"))
    args = ap.parse_args()
    res = {"samples": args.samples, "seed": args.seed, "threads": torch.get_num_threads(), "dtype": args.dtype,
           "gate_power": args.gate_power,
           "models": {m: measure(m, args.samples, args.seed, args.kinds, args.placements, args.no_fifo, args.dtype,
                                 args.gate_power)
                      for m in args.models}}
    out = Path(args.out)  # a stem: OUT.json and OUT.md (a dot in it, as in "gp0.5", stays in the name)
    out.with_name(out.name + ".json").write_text(json.dumps(res, indent=2) + "\n")
    keys = list(next(iter(res["models"].values())))
    lines = ["# What the memory carries: answer loss with the real context vs a decoy", "",
             f"Nats per answer token, {args.samples} samples per cell (Ulysses filler, held out of training); "
             "gain = decoy - real (0: the memory carries nothing). `near`: needle one chunk before the answer's "
             "chunk (temporary memory); `far`: first of 4 chunks, `farther`: first of 8, `farthest`: first of 16, "
             "`16k`: first of 64, `64k`: first of 256 (global memory only); "
             "`pair-mid`/`pair-end`: middle/end of the first of 2 chunks (320 tokens); `no FIFO`: read without "
             "temporary memory. Command: `python benchmarks/memory_use.py "
             f"{shlex.join(sys.argv[1:])}`.", "",
             "| model | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for m, rows in res["models"].items():
        cells = [f"{rows[k]['gain']:+.2f} ({rows[k]['real_loss']:.2f} vs {rows[k]['decoy_loss']:.2f})" for k in keys]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    out.with_name(out.name + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
