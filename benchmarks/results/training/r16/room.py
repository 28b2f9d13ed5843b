"""Does the answer need room in the question's chunk? Grid pass-key samples read so that a full chunk
of document shares the final chunk with the question (the document shortened by the chat frame's
prefix, so frame + document end a chunk), then asked twice:

- none: the final chunk is the last chunk_size tokens of document + question (the runtime before
  `runtime.final_chunk`): the answer's tokens lie past the chunk, where training never put them;
- room: `runtime.final_chunk` (12 positions kept free for the 12-token answer budget);
- short (with --short): `generate(..., doc_tail=24)`, only the last 24 document tokens share the final
  chunk with the question, the rest closed into memory first (the grid's own layout, whatever the
  document's length); not the runtime's default (README: quality).

Same keys, filler, question and depths as `comet eval passkey --depths 5`.

    python benchmarks/results/training/r16/room.py runs/r16-first/model --lengths 4096,16384 > OUT.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch


def no_room(model, state, prompt_ids, max_new_tokens, eng=None, doc_tail=None):
    """The final chunk as the runtime laid it out before final_chunk: up to chunk_size tokens."""
    from comet_models.chunked import Engine
    from comet_models.runtime import _close_chunks

    C, text = model.comet_config.chunk_size, state.pending + list(prompt_ids)
    if len(text) > C:
        state, text = _close_chunks(Engine(model), state, text[:len(text) - C], None), text[len(text) - C:]
    return state, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--lengths", default="4096")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--short", action="store_true", help="also ask with only 24 document tokens before the question")
    args = ap.parse_args()
    import comet_models.runtime as R
    from comet_cli.eval.methods import Answerer
    from comet_cli.eval.passkey import depths_grid, grid_sample
    from comet_models.convert import load_comet

    model, tok = load_comet(args.model, dtype=getattr(torch, args.dtype))
    ans = Answerer(model, tok, "comet")
    data = Path(os.environ.get("COMET_DATA", "../shared/data"))
    books = sorted(str(p) for p in (data / "books").glob("*.txt"))
    room = R.final_chunk
    for length in [int(x) for x in args.lengths.split(",")]:
        for s in range(args.samples):
            item, needle, fill = grid_sample(ans, books, length, 0, s)
            prefix, suffix = ans.frame(item.question)
            fill = fill[:len(fill) - len(prefix)]  # frame + document end a chunk: a full tail
            for depth in depths_grid(5):
                t0, pos = time.time(), round(depth * len(fill))
                state = R.feed(model, R.new_state(model), prefix + fill[:pos] + needle + fill[pos:])
                layouts = [("none", no_room, None), ("room", room, None)] + ([("short", room, 24)] if args.short else [])
                for name, layout, doc_tail in layouts:
                    R.final_chunk = layout
                    ids = list(R.generate(model, state, suffix, max_new_tokens=12, stop=set(ans.stop), doc_tail=doc_tail))
                    text = tok.decode(ids, skip_special_tokens=True)
                    print(json.dumps({"length": length, "sample": s, "depth": depth, "final": name,
                                      "pending": len(state.pending), "key": item.answer, "answer": text.strip(),
                                      "correct": item.correct(text), "seconds": round(time.time() - t0, 1)}),
                          flush=True)
                R.final_chunk = room


if __name__ == "__main__":
    sys.exit(main())
