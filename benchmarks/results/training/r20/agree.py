"""Two reads of the same document: where their pass-key answers differ, does the model's own likelihood
pick the right one?

The grid's answers without the lead-in (`../../passkey/trained-shipped-6fe39f3d-bfloat16.jsonl`) and with it
(`lead_in_grid.jsonl`, commit f233027) are two reads of each sample that differ only in where the chunk
boundaries fall. For every key where the two answers differ, both reads are rebuilt here (the lead-in one
as the explicit stream prefix + lead-in + shortened document, which tests/test_lead_in.py at f233027
showed equal to the option's read), and each answer is scored under each read: the log-probability of its
tokens and the end of the turn (`runtime.score`: teacher-forced through generate's final chunk and beacon
cadence). The pick is the answer with the higher summed score. `reread` is each rebuilt
read's own greedy answer (a straight read may round differently from the grid's forked one in bfloat16).

    python benchmarks/results/training/r20/agree.py runs/r16-mixed/model > benchmarks/results/training/r20/agree.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args()
    from comet_cli.eval.methods import Answerer
    from comet_cli.eval.passkey import grid_sample
    from comet_models.convert import load_comet
    from comet_models.runtime import feed, generate, new_state, score
    from tally import rows  # this folder's

    plain = rows(ROOT / "benchmarks/results/passkey/trained-shipped-6fe39f3d-bfloat16.jsonl")
    lead = rows(HERE / "lead_in_grid.jsonl")
    model, tok = load_comet(args.model, dtype=getattr(torch, args.dtype))
    ans = Answerer(model, tok, "comet")
    cfg = model.comet_config
    end = tok.convert_tokens_to_ids("<|im_end|>")
    text = subprocess.run(["git", "show", "f233027:models/lead_in.txt"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    lead_ids = tok(text, add_special_tokens=False)["input_ids"]
    data = Path(os.environ.get("COMET_DATA", ROOT.parent / "shared" / "data"))
    books = sorted(str(p) for p in (data / "books").glob("*.txt"))
    for key in sorted(k for k in lead if k in plain):
        a, b = plain[key]["answer"].strip(), lead[key]["answer"].strip()
        if a == b:
            continue
        t0 = time.time()
        length, sample, depth = key
        item, needle, fill = grid_sample(ans, books, length, 0, sample)
        prefix, suffix = ans.frame(item.question)
        li = lead_ids[: cfg.chunk_size - len(prefix)]
        short = fill[: len(fill) - len(li)]
        reads = {}
        for name, pre, doc in (("plain", prefix, fill), ("lead", prefix + li, short)):
            pos = round(depth * len(doc))
            reads[name] = feed(model, new_state(model), pre + doc[:pos] + needle + doc[pos:])
        # max_new_tokens=12: the grid's, so the final chunk is laid out as it was when the answers were made
        scores = {c: {n: round(score(model, st, suffix, ans.encode(c) + [end], max_new_tokens=12), 3)
                      for n, st in reads.items()} for c in (a, b)}
        again = {n: tok.decode(list(generate(model, st, suffix, max_new_tokens=12, stop=set(ans.stop))),
                               skip_special_tokens=True).strip() for n, st in reads.items()}
        pick = max((a, b), key=lambda c: sum(scores[c].values()))
        print(json.dumps({"length": length, "sample": sample, "depth": depth, "key": item.answer, "plain": a,
                          "lead": b, "reread": again, "scores": scores, "pick": pick, "pick_right": item.correct(pick),
                          "seconds": round(time.time() - t0, 1)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
