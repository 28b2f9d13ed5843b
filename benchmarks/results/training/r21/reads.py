"""Several reads of the same document, their chunk boundaries shifted: do they together find more keys?

r20 found that two reads differing only in where the chunk boundaries fall give the same answer for 68 of
100 keys (65 right) and that the model's own likelihood picks the right answer in half of the rest. This
measures four reads of every key at 4k and 16k (the grid's samples, bfloat16, the shipped default):

    A  the product's read: chat prefix (24 tokens) + document, so the document starts 24 tokens into a chunk
    B  prefix + 85 tokens of held-out prose (the opening of Ulysses) + document: boundaries shifted by 85
    C  prefix + 170 tokens of that prose + document: shifted by 170
    D  the prefix closed alone as a short first chunk, so the document starts on a chunk boundary

and, from the same four memories, these ways to combine them:

    joint_XY...  greedy decoding from the summed log-probabilities of the reads X, Y, ... at every step
    scores       every distinct answer scored under every read (`runtime.score`, summed log-probability)

One JSON line per key. Each sample's reads are forked at the planted depths the way the grid reads them.

    python benchmarks/results/training/r21/reads.py runs/r16-mixed/model --lengths 4096,16384 --samples 0-9
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
JOINTS = ("ABCD", "ABC", "AB", "AD")


@torch.inference_mode()
def joint_generate(model, states, prompt_ids, max_new_tokens, stop):
    """Greedy tokens from the summed log-probabilities of one decoder per state."""
    from comet_models.runtime import _Decoder

    decs = [_Decoder(model, st, prompt_ids, max_new_tokens) for st in states]
    out = []
    for _ in range(max_new_tokens):
        total = 0
        for d in decs:
            lg = d.logits.float().clone()
            lg[d.banned] = float("-inf")
            total = total + torch.log_softmax(lg, -1)
        tok = int(total.argmax())
        if tok in stop:
            break
        out.append(tok)
        for d in decs:
            d.step(tok)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--lengths", default="4096,16384")
    ap.add_argument("--samples", default="0-9", help="first-last")
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args()
    from comet_cli.eval.methods import Answerer
    from comet_cli.eval.passkey import grid_sample
    from comet_models.chunked import Engine
    from comet_models.convert import load_comet
    from comet_models.runtime import _close_chunks, feed, generate, new_state, score

    model, tok = load_comet(args.model, dtype=getattr(torch, args.dtype))
    ans = Answerer(model, tok, "comet")
    stop = set(ans.stop)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    prose = subprocess.run(["git", "show", "f233027:models/lead_in.txt"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout
    prose_ids = tok(prose, add_special_tokens=False)["input_ids"]
    data = Path(os.environ.get("COMET_DATA", ROOT.parent / "shared" / "data"))
    books = sorted(str(p) for p in (data / "books").glob("*.txt"))
    first, last = (int(x) for x in args.samples.split("-"))
    decode = lambda ids: tok.decode(ids, skip_special_tokens=True).strip()  # noqa: E731
    for length in (int(x) for x in args.lengths.split(",")):
        for sample in range(first, last + 1):
            item, needle, fill = grid_sample(ans, books, length, 0, sample)
            prefix, suffix = ans.frame(item.question)
            starts = {"A": feed(model, new_state(model), prefix),
                      "B": feed(model, new_state(model), prefix + prose_ids[:85]),
                      "C": feed(model, new_state(model), prefix + prose_ids[:170])}
            d = feed(model, new_state(model), prefix)
            starts["D"] = replace(_close_chunks(Engine(model), d, d.pending, None), pending=[])
            cuts = sorted((round(x * len(fill)), x) for x in DEPTHS)
            trunks, done = dict(starts), 0
            for pos, depth in cuts:
                t0 = time.time()
                trunks = {n: feed(model, st, fill[done:pos]) for n, st in trunks.items()}
                done = pos
                reads = {n: feed(model, st, needle + fill[pos:]) for n, st in trunks.items()}
                t_read = time.time() - t0
                single = {n: decode(list(generate(model, st, suffix, max_new_tokens=12, stop=stop)))
                          for n, st in reads.items()}
                joint = {j: decode(joint_generate(model, [reads[n] for n in j], suffix, 12, stop)) for j in JOINTS}
                cands = sorted(set(single.values()) | set(joint.values()))
                scores = {c: {n: round(score(model, st, suffix, ans.encode(c) + [end], max_new_tokens=12), 3)
                              for n, st in reads.items()} for c in cands}
                print(json.dumps({"length": length, "sample": sample, "depth": depth, "key": item.answer,
                                  "single": single, "joint": joint, "scores": scores,
                                  "read_s": round(t_read, 1), "seconds": round(time.time() - t0, 1)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
