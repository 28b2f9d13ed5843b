"""Read one cell of the pass-key grid: one sample at one depth, as `comet eval passkey` reads it.

`comet eval` reads a sample at all its depths, sharing the filler before each one; at 1M tokens that is
3.5M tokens (about 3 h on one core). One depth costs one 1M read (about 50 min), so a candidate can be
tried on the one cell where the shipped default misses. The sample (key, filler, needle position) is
the grid's: `grid_sample` with the same seed, and the depth's cut rounds as in `run_sample`.

    python benchmarks/results/training/r25/one_depth.py --model runs/r25-dil4096/model \
        --length 1048576 --sample 1 --depth 0.5 --out benchmarks/results/training/r25/dil4096-1m.jsonl

Appends one row (with resume points in OUT.partial/, every 32k tokens) and prints it.
"""
import argparse
import json
import os
from pathlib import Path

from comet_cli.eval.methods import Answerer
from comet_cli.eval.passkey import run_sample
from comet_cli.eval.resume import SampleResume
from comet_cli.modelref import load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--sample", type=int, required=True)
    p.add_argument("--depth", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default="bfloat16")
    a = p.parse_args()
    data = Path(os.environ.get("COMET_DATA", "../shared/data"))
    books = sorted(str(f) for f in (data / "books").glob("*.txt"))
    model, tok, _ = load_model(a.model, dtype=a.dtype)
    ans = Answerer(model, tok, "comet", lead=True, beam=4)
    rid = f"passkey:{ans.run_tag}:{a.length}:depth={a.depth}:{a.sample}"
    resume = SampleResume(f"{a.out}.partial", rid)
    rows = run_sample(ans, books, a.length, [a.depth], 0, a.sample, resume=resume,
                      progress=lambda m: print(m, flush=True))
    row = {"id": rid, "model": a.model, "rows": rows}
    with open(a.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
