"""Tally reads.py's answers: keys found by each read alone, by joint decoding over sets of reads, and by
picking among the reads' own answers the one with the highest summed score; per length and depth.

    python benchmarks/results/training/r21/tally.py benchmarks/results/training/r21/reads.jsonl
    python benchmarks/results/training/r21/tally.py --subsets reads.jsonl reads-heldout.jsonl
    # --subsets: which reads to take: the pick over every set of two to four of A-D, per file
    # --write-eval FILE: also append the --reads 3 answers as `comet eval passkey --reads 3` result lines
    # (reads A, B, C are that option's three reads, forked the same way), for passkey_grid.py's
    # trained-reads3 row; samples already in FILE are left alone
"""
from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))


def right(key: str, answer: str) -> bool:
    from comet_cli.finetune.evaluate import answer_of

    return answer_of(answer) == key


def pick(row: dict, reads: str) -> str:
    """Among the answers of `reads`, the one whose score summed over those reads is highest."""
    cands = sorted({row["single"][n] for n in reads})
    return max(cands, key=lambda c: sum(row["scores"][c][n] for n in reads))


def reads3(row: dict) -> str:
    """`--reads 3`'s answer (runtime.answer): among the joint answer of A, B, C and each one's own, the
    one with the highest score summed over A, B, C."""
    cands = sorted({row["single"][n] for n in "ABC"} | {row["joint"]["ABC"]})
    return max(cands, key=lambda c: sum(row["scores"][c][n] for n in "ABC"))


def methods(row: dict) -> dict[str, str]:
    out = {f"read {n}": a for n, a in row["single"].items()}
    out |= {f"joint {j}": a for j, a in row["joint"].items()}
    out |= {f"pick {p}": pick(row, p) for p in ("AB", "ABC", "ABCD")}
    out["--reads 3 (pick among A, B, C, joint ABC)"] = reads3(row)
    return out


def write_eval(rows: list[dict], path: Path) -> None:
    have = {json.loads(line)["id"] for line in path.read_text().splitlines()} if path.exists() else set()
    samples: dict = {}
    for r in rows:
        samples.setdefault((r["length"], r["sample"]), []).append(r)
    with open(path, "a") as f:
        for (length, sample), rs in sorted(samples.items()):
            rid = f"passkey:comet+reads3@bfloat16:{length}:5:{sample}"
            if rid in have or len(rs) != 5:
                continue
            f.write(json.dumps({"id": rid, "from": "benchmarks/results/training/r21/reads.py, --reads 3 rule", "rows": [
                {"length": length, "depth": r["depth"], "sample": sample, "key": r["key"],
                 "answer": reads3(r), "correct": right(r["key"], reads3(r)), "seconds": None}
                for r in sorted(rs, key=lambda r: r["depth"])]}) + "\n")


def subsets(files: list[str]) -> None:
    """Keys found by the pick over each set of reads, one column per file (in-sample and held-out keys)."""
    tables = {f: [json.loads(line) for line in Path(f).read_text().splitlines()] for f in files}
    sets = ["".join(c) for n in (1, 2, 3, 4) for c in itertools.combinations("ABCD", n)]
    print("| reads | " + " | ".join(f"{Path(f).name}: all | depth 0" for f in files) + " |")
    print("|---|" + "---:|---:|" * len(files))
    for s in sets:
        cells = []
        for rows in tables.values():
            found = [r for r in rows if right(r["key"], pick(r, s))]
            cells += [f"{len(found)}/{len(rows)}", f"{sum(r['depth'] == 0 for r in found)}/"
                      f"{sum(r['depth'] == 0 for r in rows)}"]
        print(f"| {s} | " + " | ".join(cells) + " |")


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--subsets":
        return subsets(args[1:])
    out = None
    if "--write-eval" in args:
        i = args.index("--write-eval")
        out, args = Path(args[i + 1]), args[:i] + args[i + 2:]
    rows = [json.loads(line) for f in args for line in Path(f).read_text().splitlines()]
    if out:
        write_eval(rows, out)
    names = list(methods(rows[0]))
    groups = {"all": rows}
    for length in sorted({r["length"] for r in rows}):
        groups[f"{length // 1024}k"] = [r for r in rows if r["length"] == length]
    groups["depth 0"] = [r for r in rows if r["depth"] == 0]
    groups["depths 0.25-0.75"] = [r for r in rows if 0 < r["depth"] < 1]
    groups["depth 1"] = [r for r in rows if r["depth"] == 1]
    print("| keys found | " + " | ".join(groups) + " |")
    print("|---|" + "---:|" * len(groups))
    for m in names:
        cells = [f"{sum(right(r['key'], methods(r)[m]) for r in g)}/{len(g)}" for g in groups.values()]
        print(f"| {m} | " + " | ".join(cells) + " |")
    agree = [r for r in rows if len({r["single"][n] for n in "ABC"}) == 1]
    print(f"\nreads A, B, C agree on {len(agree)} of {len(rows)} keys, "
          f"{sum(right(r['key'], r['single']['A']) for r in agree)} of them right")
    # the plain read A against the grid's answers for the same keys (forked the same way)
    grid = ROOT / "benchmarks/results/passkey/trained-shipped-6fe39f3d-bfloat16.jsonl"
    recorded = {}
    for line in grid.read_text().splitlines():
        for g in json.loads(line).get("rows", []):
            recorded[(g["length"], g["sample"], g["depth"])] = g["answer"]
    same = [recorded[k] == r["single"]["A"] for r in rows if (k := (r["length"], r["sample"], r["depth"])) in recorded]
    if same:  # held-out samples (reads-heldout.jsonl) are not on the grid
        print(f"read A gives the grid's recorded answer for {sum(same)} of {len(same)} keys")
    secs = sum(r["seconds"] for r in rows)
    print(f"answering time {secs / 60:.0f} min (4 reads of each sample, one thread per process)")


if __name__ == "__main__":
    main()
