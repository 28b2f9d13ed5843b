"""How long does the global memory remember? The update gates of each layer over a book.

Every closed chunk updates each global slot as S = g * S + (1 - g) * R (METHOD.md 6.2): a slot keeps
the fraction g of what it held. This streams `--chunks` chunks of held-out book text (Ulysses) through
each model, records g for every layer, slot and chunk (a hook on the gate), and reports the mean gate,
the per-chunk retention of the best-keeping slot, and what is left after 16 and 4,096 chunks of what a
slot held (the product of its gates; 16 chunks of 256 tokens are 4k tokens, 4,096 chunks are 1M).
A key written once into the global state survives to 1M tokens only if some slot keeps ~1.0.

    python benchmarks/gate_retention.py --models runs/default-s1/model runs/sink-memory/model
    # -> benchmarks/results/gate_retention.{json,md}
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BOOK = ROOT.parent / "shared" / "data" / "books" / "ulysses_pg4300.txt"
RESULTS = ROOT / "benchmarks" / "results"


@torch.no_grad()
def gates(model_dir: str, chunks: int, offset: int) -> torch.Tensor:
    """(chunks - 1, layers, slots) gate values while reading `chunks` chunks of the book."""
    from comet_cli.finetune.synthetic import FillerText
    from comet_models.chunked import Engine
    from comet_models.convert import load_comet

    model, tok = load_comet(model_dir)
    eng = Engine(model)
    size = eng.cfg.chunk_size
    text = FillerText([BOOK]).text(BOOK)[offset:offset + chunks * size * 8]
    ids = tok.encode(text, add_special_tokens=False)[: chunks * size]
    if len(ids) < chunks * size:
        raise SystemExit(f"{BOOK}: too short for {chunks} chunks")
    seen: list[list[torch.Tensor]] = [[] for _ in eng.layers]
    hooks = [layer.comet_memory.gate.register_forward_hook(
        lambda _m, _i, out, l=l: seen[l].append(torch.sigmoid(out.float())[0, :, 0]))
        for l, layer in enumerate(eng.layers)]
    mems = eng.empty_memory()
    try:
        for k in range(chunks):
            _, _, mems = eng.run_chunk(torch.tensor([ids[k * size:(k + 1) * size]]), mems, closed=True)
    finally:
        for h in hooks:
            h.remove()
    return torch.stack([torch.stack(s) for s in seen], dim=1)  # (chunks-1, L, G)


def summary(g: torch.Tensor) -> dict:
    log_keep = torch.log(g.clamp_min(1e-12)).mean(0)  # (L, G) mean log-gate per chunk
    best = log_keep.max(dim=1).values  # the best-keeping slot of each layer
    per_layer = [round(math.exp(float(v)), 4) for v in best]
    return {"mean_gate": round(float(g.mean()), 4),
            "best_slot_keep_per_chunk": round(math.exp(float(best.mean())), 4),
            "best_slot_keep_max_layer": max(per_layer),
            "left_after_16_chunks": float(f"{math.exp(16 * float(best.max())):.3g}"),
            "left_after_4096_chunks": float(f"{math.exp(4096 * float(best.max())):.3g}"),
            "per_layer_best_keep": per_layer}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--chunks", type=int, default=12)
    ap.add_argument("--offset", type=int, default=200_000, help="character offset into the book")
    ap.add_argument("--out", default=str(RESULTS / "gate_retention"))
    args = ap.parse_args()
    rows = {}
    for m in args.models:
        rows[m] = summary(gates(m, args.chunks, args.offset))
        print(m, json.dumps({k: v for k, v in rows[m].items() if k != "per_layer_best_keep"}), file=sys.stderr)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"chunks": args.chunks, "book": BOOK.name, "models": rows},
                                                   indent=2) + "\n")
    lines = ["# Global-memory gates: how much of a slot survives each chunk", "",
             f"{args.chunks} chunks of {BOOK.name} per model; g per layer, slot and chunk. Best slot: the slot "
             "of each layer with the highest mean log-gate. Command: `python benchmarks/gate_retention.py "
             f"--models {' '.join(args.models)}`; per layer in the JSON.", "",
             "| model | mean gate | best slot keeps / chunk (mean over layers) | best layer | left after 16 chunks (4k tokens) | left after 4,096 chunks (1M) |",
             "|---|---:|---:|---:|---:|---:|"]
    for m, r in rows.items():
        lines.append(f"| {m} | {r['mean_gate']:.3f} | {r['best_slot_keep_per_chunk']:.3f} | "
                     f"{r['best_slot_keep_max_layer']:.3f} | {r['left_after_16_chunks']:.3g} | "
                     f"{r['left_after_4096_chunks']:.3g} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
