"""Partial credit for pass keys: how much of each key an answer gets right.

`comet eval passkey --out ROWS.jsonl` counts a sample right only when the whole 5-digit key comes back.
A memory that carries part of a key scores 0 there; this reads the same rows and counts, for the keys
that are not in the question's own chunk (depth < 1.0 by default), exact answers, digits in their
place (chance: 1 in 10) and right first digits.

    python benchmarks/passkey_digits.py benchmarks/results/training/r5/*.passkey.jsonl
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def digit_stats(rows: list[dict], max_depth: float = 1.0) -> dict:
    rows = [r for r in rows if r["depth"] < max_depth]
    return {"items": len(rows),
            "exact": sum(bool(r["correct"]) for r in rows),
            "digits_in_place": sum(sum(a == b for a, b in zip(r["key"], r["answer"])) for r in rows),
            "digits": sum(len(r["key"]) for r in rows),
            "first_digit": sum(r["answer"][:1] == r["key"][:1] for r in rows)}


def read_rows(path: Path) -> list[dict]:
    return [row for line in path.read_text().splitlines() if line.strip() for row in json.loads(line)["rows"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", type=Path, help="`comet eval passkey --out` files")
    ap.add_argument("--max-depth", type=float, default=1.0, help="count keys at depths below this")
    args = ap.parse_args()
    print("| rows | items | exact | digits in place | first digit |\n|---|---:|---:|---:|---:|")
    for p in args.rows:
        s = digit_stats(read_rows(p), args.max_depth)
        print(f"| {p} | {s['items']} | {s['exact']} | {s['digits_in_place']}/{s['digits']} | {s['first_digit']}/{s['items']} |")


if __name__ == "__main__":
    main()
