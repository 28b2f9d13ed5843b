"""The README grid's samples read with the chat frame closed as a chunk of its own (as r18 open trains).

Same keys, filler and question as `comet eval passkey --depths 5` (sample s of each length). The chat
frame's prefix (24 tokens for SmolLM2) is closed as chunk 0, then the document, which gives up as many
tokens at its end (so the question's chunk is filled as in the grid), with the key at each depth.
--frame open reads prefix and document as one stream instead, exactly as the grid does. --frame seeded
reads them so too, but the first chunk already has global memory in its soft prompt: the state one chunk
of the chat frame and the neutral lead-in line leaves (r17's seed), without its FIFO, so no chunk is read
with an empty soft prompt (what a learned initial state read by chunk 0 would start from, untrained).

    python benchmarks/results/training/r18/frame_grid.py runs/r18-open/model --lengths 4096,16384
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "r16"))
from opening import closed, lead_chunk  # noqa: E402  the r16 scripts' opening chunk, lead-in chunk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--lengths", default="4096,16384")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--depths", default="0,0.25,0.5,0.75,1")
    ap.add_argument("--frame", choices=["closed", "open", "seeded"], default="closed")
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args()
    from comet_cli.eval.methods import Answerer
    from comet_cli.eval.passkey import grid_sample
    from comet_models.convert import load_comet
    from comet_models.runtime import feed, generate, new_state

    model, tok = load_comet(args.model, dtype=getattr(torch, args.dtype))
    ans = Answerer(model, tok, "comet")
    data = Path(os.environ.get("COMET_DATA", "../shared/data"))
    books = sorted(str(p) for p in (data / "books").glob("*.txt"))
    start = new_state(model)
    if args.frame == "seeded":
        start = replace(start, global_state=lead_chunk(model, tok).global_state, has_global=True)
    for length in [int(x) for x in args.lengths.split(",")]:
        for s in range(args.samples):
            item, needle, fill = grid_sample(ans, books, length, 0, s)
            prefix, suffix = ans.frame(item.question)
            for depth in [float(x) for x in args.depths.split(",")]:
                t0 = time.time()
                if args.frame == "closed":
                    doc = fill[:len(fill) - len(prefix)]
                    pos = round(depth * len(doc))
                    state = feed(model, closed(model, prefix), doc[:pos] + needle + doc[pos:])
                else:
                    pos = round(depth * len(fill))
                    state = feed(model, start, prefix + fill[:pos] + needle + fill[pos:])
                ids = list(generate(model, state, suffix, max_new_tokens=12, stop=set(ans.stop), doc_tail=None))
                text = tok.decode(ids, skip_special_tokens=True)
                print(json.dumps({"length": length, "sample": s, "depth": depth, "frame": args.frame,
                                  "key": item.answer, "answer": text.strip(), "correct": item.correct(text),
                                  "seconds": round(time.time() - t0, 1)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
