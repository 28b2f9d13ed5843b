"""Answers to the first-ask files by how many document tokens share the question's (last) chunk.

`comet ask` asks after whatever tail the document leaves in its last chunk; whole-chunk training samples
always end an almost full chunk. For each first-ask file (benchmarks/first_ask.py, seed 0) this reads the
document up to the end of a full chunk, then `tail` more tokens, and asks "What is the pass key?" with
greedy decoding, as `comet ask` does (without its repetition penalty). One JSON line per file and tail.

    python benchmarks/results/training/r14/tail_fill.py runs/r13-dil8/model --tails 13-33,180-250/5 \\
        --files 2048:0.25,2048:0.75,4096:0.25,4096:0.75 > OUT.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "benchmarks"))


def tails(spec: str) -> list[int]:
    """'13-33,180-250/5' -> 13..33 and 180, 185, ..., 250."""
    out = []
    for part in spec.split(","):
        span, _, step = part.partition("/")
        lo, _, hi = span.partition("-")
        out += range(int(lo), int(hi or lo) + 1, int(step or 1))
    return out


def main() -> None:
    import first_ask as fa
    import torch
    from comet_cli.modelref import load_model
    from comet_models.runtime import chat_frame, feed, generate, new_state, stop_ids

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--tails", default="13-33,180-250/5")
    ap.add_argument("--files", default="2048:0.25,2048:0.75,4096:0.25,4096:0.75", help="LENGTH:DEPTH,...")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tok, _ = load_model(args.model)
    C, text = model.comet_config.chunk_size, fa.book_text()
    prefix, suffix = chat_frame(tok, "What is the pass key?")
    for spec in args.files.split(","):
        length, depth = spec.split(":")
        path, key = fa.make_file(Path(tempfile.mkdtemp()), text, int(length), float(depth), 0)
        ids = prefix + tok(path.read_text(), add_special_tokens=False)["input_ids"]
        end = (len(ids) // C - 1) * C  # the last full chunk ends here, so a tail < C stays open
        base = feed(model, new_state(model), ids[:end])
        for tail in tails(args.tails):
            state = feed(model, base, ids[end:end + tail])
            answer = tok.decode(list(generate(model, state, suffix, 12, stop=stop_ids(tok)))).strip()
            print(json.dumps({"length": int(length), "depth": float(depth), "key": key, "tail": tail,
                              "question_at": len(state.pending), "answer": answer, "right": answer == key}),
                  flush=True)


if __name__ == "__main__":
    main()
