"""Is the first-chunk miss about the first (ungated) write, or about the key's place in the text?

The README grid's depth-0 samples (the key right after the chat frame, in the first chunk) read again
with `--lead` tokens of other book text between the frame and the document (and as many taken off the
document's end, so the question's chunk is filled as in the grid), so that the key's chunk reaches the
memory through a gated write like any later chunk. Same keys, filler and
question as `comet eval passkey --depths 5` (sample s of each length); only depth 0 is read unless
--depths names others (the key then sits that far into the shortened document). --text line fills the
lead-in with the opening's neutral line (opening.LEAD_IN) repeated, a text the runtime could ship,
instead of *Ulysses*.

    python benchmarks/results/training/r16/lead_in.py runs/r14-dil16/model --lengths 4096,16384 --lead 0,chunk
    python benchmarks/results/training/r16/lead_in.py runs/r16-mixed/model --lead chunk --text line --depths 0,0.25,0.5,0.75,1
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--lengths", default="4096,16384")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--first", type=int, default=0, help="first sample index (the grid reads 0-2)")
    ap.add_argument("--lead", default="0,chunk",
                    help="lead-in tokens before the document: 0 reads as the grid; chunk fills the first chunk")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--depths", default="0", help="key depths in the document (the grid's: 0,0.25,0.5,0.75,1)")
    ap.add_argument("--text", choices=["ulysses", "line"], default="ulysses", help="what fills the lead-in")
    args = ap.parse_args()
    from comet_cli.eval.methods import Answerer
    from comet_cli.eval.passkey import filler_tokens, grid_sample
    from comet_models.convert import load_comet
    from comet_models.runtime import feed, generate, new_state

    model, tok = load_comet(args.model, dtype=getattr(torch, args.dtype))
    ans = Answerer(model, tok, "comet")
    data = Path(os.environ.get("COMET_DATA", "../shared/data"))
    books = sorted(str(p) for p in (data / "books").glob("*.txt"))
    lead_book = [str(data / "books" / "ulysses_pg4300.txt")]  # held out of training
    from opening import neutral_tokens  # this folder's scripts: the opening chunk's neutral line
    for length in [int(x) for x in args.lengths.split(",")]:
        for s in range(args.first, args.first + args.samples):
            item, needle, fill = grid_sample(ans, books, length, 0, s)  # the grid's key and filler
            prefix, suffix = ans.frame(item.question)
            size = model.comet_config.chunk_size
            for lead in [size - len(prefix) if x == "chunk" else int(x) for x in args.lead.split(",")]:
                if args.text == "line":
                    extra = neutral_tokens(tok, lead)
                else:
                    extra = filler_tokens(ans, lead_book, lead, random.Random(f"lead:{s}")) if lead else []
                # the document loses as many tokens at its end, so the total length, and with it the
                # question's chunk and its fill, stay as in the grid: only the key's chunk moves
                doc = fill[:len(fill) - lead]
                for depth in [float(x) for x in args.depths.split(",")]:
                    t0, pos = time.time(), round(depth * len(doc))
                    state = feed(model, new_state(model), prefix + extra + doc[:pos] + needle + doc[pos:])
                    ids = list(generate(model, state, suffix, max_new_tokens=12, stop=set(ans.stop), doc_tail=None))
                    text = tok.decode(ids, skip_special_tokens=True)
                    print(json.dumps({"length": length, "sample": s, "lead": lead, "prefix": len(prefix),
                                      "depth": depth, "text": args.text if lead else "", "key": item.answer,
                                      "answer": text.strip(), "correct": item.correct(text),
                                      "seconds": round(time.time() - t0, 1)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
