"""Whole pass keys by length and depth, with and without the lead-in, from `comet eval --out` files.

    python benchmarks/results/training/r20/tally.py NOLEAD.jsonl LEAD.jsonl [--samples 4096:10,16384:10,65536:3]

Each file holds one line per sample (its rows, one per depth). Only samples below the given count per
length are counted, and a sample counts only where both files have it, so the two columns compare the
same keys and filler.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict


def rows(path) -> dict:
    """{(length, sample, depth): row} of a `comet eval --out` file."""
    return {(r["length"], r["sample"], r["depth"]): r for line in open(path) for r in json.loads(line)["rows"]}


def load(path) -> dict:
    """{(length, sample): {depth: correct}}"""
    out: dict = defaultdict(dict)
    for (length, sample, depth), r in rows(path).items():
        out[(length, sample)][depth] = bool(r["correct"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs=2, help="without, then with the lead-in")
    ap.add_argument("--samples", default="", help="LENGTH:N,... (default: every sample both files have)")
    args = ap.parse_args()
    cap = {int(a): int(b) for a, b in (x.split(":") for x in args.samples.split(",") if x)}
    a, b = load(args.files[0]), load(args.files[1])
    both = sorted(k for k in a.keys() & b.keys() if k[1] < cap.get(k[0], 1 << 30) and a[k].keys() == b[k].keys())
    lengths = sorted({L for L, _ in both})
    bands = [("depth 0 (the document's first chunk)", lambda d: d == 0),
             ("depths 0.25-0.75", lambda d: 0 < d < 1), ("depth 1 (the question's chunk)", lambda d: d == 1),
             ("all", lambda d: True)]
    print("| whole keys | " + " | ".join(f"{L:,} ({sum(k[0] == L for k in both)} samples)" for L in lengths)
          + " | all |")
    print("|---|" + "---:|" * (len(lengths) + 1))
    for name, keep in bands:
        cells = []
        for Ls in [[L] for L in lengths] + [lengths]:
            n = r0 = r1 = 0
            for k in both:
                if k[0] in Ls:
                    for d in a[k]:
                        if keep(d):
                            n, r0, r1 = n + 1, r0 + a[k][d], r1 + b[k][d]
            cells.append(f"{r0}/{n} -> **{r1}/{n}**" if r1 > r0 else f"{r0}/{n} -> {r1}/{n}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    changed = [(k, d, a[k][d], b[k][d]) for k in both for d in a[k] if a[k][d] != b[k][d]]
    print(f"\n{len(changed)} answers change: "
          + ", ".join(f"{L:,}/s{s}/d{d:g} {'gained' if y else 'lost'}" for (L, s), d, x, y in changed))


if __name__ == "__main__":
    main()
