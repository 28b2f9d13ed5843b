"""r24 repeat (and soup, the mean of its weights and the shipped default's) against the shipped default on
the same pass keys: one read with the lead, bfloat16, each row answered with the beam and greedily (`comet
eval --beam 4` keeps both), keys split by whether they repeat a digit.

    python benchmarks/results/training/r24/tally.py [repeat|soup|soup-r64|soup2|w0.25|w0.75|w1]   # -> markdown on stdout

Rows that carry key_lp (comet eval since it records them: soup2, and the shipped default read again into
shipped-*.jsonl with the same answers; its 256k rows were read only there) are also compared read by
read on it: how surely each model holds the key, where exact matches flip near a tie.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parents[1] / "passkey" / "trained-shipped-6fe39f3d-bfloat16-lead-beam4.jsonl"
sys.path.insert(0, str(HERE.parents[2]))
from passkey_grid import read_rows  # noqa: E402


def rows(paths) -> dict:
    """{(length, sample, depth): row} from `comet eval` JSONL files (missing files give nothing)."""
    return {(r["length"], r["sample"], r["depth"]): r for path in paths for r in read_rows(path)}


def count(rs, field, keys) -> str:
    picked = [r for r in rs if keys(r["key"])]
    return f"{sum(r[field] for r in picked)}/{len(picked)}"


def main(run: str = "repeat") -> None:
    new = rows(sorted(HERE.glob(f"{run}-bfloat16-lead-beam4-*.jsonl")))
    reread = sorted(HERE.glob("shipped-bfloat16-lead-beam4-*.jsonl"))
    old = rows([SHIPPED, *reread])  # the re-reads answer as the grid's rows where both exist; 256k only there
    kinds = {"all": lambda k: True, "repeat a digit": lambda k: len(set(k)) < 5,
             "five different": lambda k: len(set(k)) == 5}
    print("| tokens | keys | answer | " + " | ".join(f"{k}: shipped / {run}" for k in kinds) + " |")
    print("|---:|---:|---|" + "---:|" * len(kinds))
    changes = []
    for length in sorted({k[0] for k in new}):
        ids = sorted(k for k in new if k[0] == length and k in old)
        if not ids:  # read only by the new model
            continue
        for field, name in (("correct", "beam 4"), ("greedy_correct", "greedy")):
            cells = [f"{count([old[i] for i in ids], field, f)} / **{count([new[i] for i in ids], field, f)}**"
                     for f in kinds.values()]
            print(f"| {length:,} | {len(ids)} | {name} | " + " | ".join(cells) + " |")
        won = [f"{new[i]['key']} (shipped {old[i]['answer']!r})" for i in ids if new[i]["correct"] and not old[i]["correct"]]
        lost = [f"{new[i]['key']} ({new[i]['answer']!r})" for i in ids if old[i]["correct"] and not new[i]["correct"]]
        changes.append(f"- {length:,}, beam 4: won {', '.join(won) or 'none'}; lost {', '.join(lost) or 'none'}")
    print("\n" + "\n".join(changes))
    margins(new, rows(reread), run)


def margins(new: dict, old: dict, run: str) -> None:
    """Per length, over the reads both files hold with key_lp: the mean key_lp of each, on how many
    reads the new one's is higher, and the mean margin key_lp - rival_lp (reads where a wrong answer
    was weighed by both)."""
    ids = [i for i in new if i in old and "key_lp" in new[i] and "key_lp" in old[i]]
    if not ids:
        return
    print(f"\n| tokens | reads | mean key_lp: shipped / {run} | key_lp higher / lower | "
          f"margin (key_lp - rival_lp): shipped / {run} |")
    print("|---:|---:|---:|---:|---:|")
    for length in sorted({i[0] for i in ids}):
        at = [i for i in ids if i[0] == length]
        mean = lambda rs: sum(r["key_lp"] for r in rs) / len(rs)  # noqa: E731
        up = sum(new[i]["key_lp"] > old[i]["key_lp"] for i in at)
        down = sum(new[i]["key_lp"] < old[i]["key_lp"] for i in at)
        both = [i for i in at if new[i]["rival_lp"] is not None and old[i]["rival_lp"] is not None]
        gap = lambda r: r["key_lp"] - r["rival_lp"]  # noqa: E731
        m_old = sum(gap(old[i]) for i in both) / max(len(both), 1)
        m_new = sum(gap(new[i]) for i in both) / max(len(both), 1)
        print(f"| {length:,} | {len(at)} | {mean([old[i] for i in at]):.3f} / **{mean([new[i] for i in at]):.3f}** "
              f"| {up} / {down} | {m_old:.3f} / **{m_new:.3f}** ({len(both)} reads) |")


if __name__ == "__main__":
    main(*sys.argv[1:2])
