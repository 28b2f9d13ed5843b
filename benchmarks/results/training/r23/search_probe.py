"""Probe: would a search over whole answers fix the grid's digit slips? For each grid sample (one read with
the lead, as `comet eval passkey` reads it), the greedy answer, the true key's and the greedy answer's
teacher-forced log-probabilities (answer + end of turn), and the best answer of a beam search.

    OMP_NUM_THREADS=1 python benchmarks/results/training/r23/search_probe.py --length 4096 --samples 0-9
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import torch


@torch.inference_mode()
def beam(model, state, prompt_ids, width, max_new, stop):
    from comet_models.runtime import _Decoder, _logprobs

    beams, done = [(0.0, [], _Decoder(model, state, prompt_ids, max_new))], []
    for _ in range(max_new):
        cands = []
        for s, toks, dec in beams:
            lp = _logprobs(dec)
            top = torch.topk(lp, width)
            cands += [(s + v, toks + [i], dec) for v, i in zip(top.values.tolist(), top.indices.tolist())]
        cands.sort(key=lambda c: -c[0])
        beams = []
        for s, toks, dec in cands:
            if toks[-1] in stop:
                done.append((s, toks[:-1]))
            elif len(beams) < width:
                beams.append((s, toks, dec))
        if not beams or (done and max(d[0] for d in done) >= beams[0][0]):
            break
        nxt = []
        for s, toks, dec in beams:
            d = copy.copy(dec)
            d.cache = copy.deepcopy(dec.cache)
            d.step(toks[-1])
            nxt.append((s, toks, d))
        beams = nxt
    return sorted(done, key=lambda d: -d[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="runs/r16-mixed/model")
    ap.add_argument("--length", type=int, default=4096)
    ap.add_argument("--samples", default="0-9")
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from comet_cli.eval.methods import Answerer
    from comet_cli.eval.passkey import depths_grid, grid_sample
    from comet_cli.finetune.evaluate import answer_of
    from comet_cli.modelref import load_model
    from comet_models.runtime import answer, feed, score

    model, tok, _ = load_model(a.model, dtype="bfloat16")
    ans = Answerer(model, tok, "comet")
    data = Path(os.environ.get("COMET_DATA", "../shared/data"))
    books = sorted(str(p) for p in (data / "books").glob("*.txt"))
    lo, hi = (int(x) for x in a.samples.split("-"))
    out = Path(a.out or f"benchmarks/results/training/r23/search_probe_{a.length}.jsonl")
    seen = {(r["sample"], r["depth"]) for r in map(json.loads, out.open())} if out.exists() else set()
    stop = set(ans.stop)
    for s in range(lo, hi + 1):
        item, needle, fill = grid_sample(ans, books, a.length, 0, s)
        prefix, suffix = ans.frame(item.question)
        trunk, done = ans.open(prefix)[0], 0
        for pos, depth in sorted((round(d * len(fill)), d) for d in depths_grid(5)):
            if (s, round(depth, 3)) in seen:
                continue
            t0 = time.time()
            trunk, done = feed(model, trunk, fill[done:pos]), pos
            st = feed(model, trunk, needle + fill[pos:])
            g = answer(model, st, suffix, max_new_tokens=12, stop=stop)
            key_ids = tok(item.answer, add_special_tokens=False)["input_ids"]
            t1 = time.time()
            bs = beam(model, st, suffix, a.width, 12, stop)
            t2 = time.time()
            dec = lambda ids: tok.decode(ids, skip_special_tokens=True).strip()  # noqa: E731
            row = {"sample": s, "depth": round(depth, 3), "key": item.answer, "greedy": dec(g),
                   "greedy_ok": answer_of(dec(g)) == item.answer,
                   "lp_key": score(model, st, suffix, key_ids, 12, None, stop),
                   "lp_greedy": score(model, st, suffix, g, 12, None, stop),
                   "beam": [(round(b[0], 3), dec(b[1])) for b in bs[:a.width]],
                   "beam_ok": bool(bs) and answer_of(dec(bs[0][1])) == item.answer,
                   "read_s": round(t1 - t0, 1), "beam_s": round(t2 - t1, 2)}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
