"""The beam's rows against the greedy answers of the same reads (each `comet eval --beam 4` row keeps both).

    python benchmarks/results/training/r23/tally.py   # -> a markdown table on stdout
"""
from __future__ import annotations

import json
from pathlib import Path

PASSKEY = Path(__file__).resolve().parents[2] / "passkey"
RUNS = {"one read, with the lead (`trained`)": "trained-shipped-6fe39f3d-bfloat16-lead-beam4.jsonl",
        "three reads, without it (`trained-reads3`)": "trained-shipped-6fe39f3d-bfloat16-reads3-beam4.jsonl"}


def main() -> None:
    print("| reads | tokens | samples | keys | greedy | beam | won | lost |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for name, file in RUNS.items():
        path = PASSKEY / file
        rows = [r for line in path.read_text().splitlines() for r in json.loads(line)["rows"]] if path.exists() else []
        for length in sorted({r["length"] for r in rows}):
            rs = [r for r in rows if r["length"] == length]
            won = [f"{r['key']} (greedy {r['greedy_answer']!r})" for r in rs if r["correct"] and not r["greedy_correct"]]
            lost = [f"{r['key']} (beam {r['answer']!r})" for r in rs if r["greedy_correct"] and not r["correct"]]
            print(f"| {name} | {length:,} | {len({r['sample'] for r in rs})} | {len(rs)} | "
                  f"{sum(r['greedy_correct'] for r in rs)} | **{sum(r['correct'] for r in rs)}** | "
                  f"{', '.join(won) or 'none'} | {', '.join(lost) or 'none'} |")


if __name__ == "__main__":
    main()
