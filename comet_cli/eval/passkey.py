"""Needle grids over lengths and depths (pass key, BABILong-style facts), with a heatmap.

A pass-key item: book text of `length` tokens (filler from the given books at a random offset) with
the needle "The pass key is 12345. Remember it. 12345 is the pass key." inserted at a relative depth,
read as a document; then "What is the pass key?". Right when the first 5-digit number of the
greedy answer is the key. A BABILong item (bAbI qa1/qa2 by default) puts a question's story facts,
in order, as one block at the depth and asks the bAbI question; right when the answer word appears
in the greedy answer.

For CoMeT the depths of one sample share their filler, and memory states are values, so the
reading forks: the text before the shallowest needle is read once, each depth's continuation
from a copy. One sample of 5 depths reads about 3.5 x length tokens instead of 5 x.
The baselines (truncate, sliding) only see a window, so they encode just that window.
"""
from __future__ import annotations

import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from comet_cli.eval.methods import Answerer
from comet_cli.finetune.synthetic import PASSKEY_NEEDLE as NEEDLE
from comet_cli.finetune.synthetic import PASSKEY_QUESTION as QUESTION


@dataclass(frozen=True)
class Needle:
    """What one sample hides and asks: text inserted at each depth, the question, the answer."""

    text: str
    question: str
    answer: str
    kind: str = "passkey"

    def correct(self, reply: str) -> bool:
        if self.kind == "passkey":
            from comet_cli.finetune.evaluate import answer_of

            return answer_of(reply) == self.answer
        return re.search(rf"\b{re.escape(self.answer.lower())}\b", reply.lower()) is not None


def passkey_needle(rng: random.Random, tasks=None) -> Needle:
    key = str(rng.randint(10000, 99999))
    return Needle(NEEDLE.format(key=key), QUESTION, key)


def babilong_needle(rng: random.Random, tasks) -> Needle:
    task = tasks[rng.randrange(len(tasks))]
    item = task.items[rng.randrange(len(task.items))]
    return Needle(" ".join(item.facts), item.question, item.answer, kind="babilong")


NEEDLES = {"passkey": passkey_needle, "babilong": babilong_needle}


def depths_grid(n: int) -> list[float]:
    return [0.0] if n <= 1 else [i / (n - 1) for i in range(n)]


def filler_tokens(ans: Answerer, books: Sequence[str], n: int, rng: random.Random) -> list[int]:
    from comet_cli.finetune.synthetic import FillerText

    filler, out = FillerText(list(books), max_cached=len(books)), []
    while len(out) < n:
        out += ans.encode(" " + filler.take(rng, max(4 * (n - len(out)), 2000)))
    return out[:n]


def grid_sample(ans: Answerer, books, length: int, seed: int, sample: int, kind: str = "passkey",
                tasks=None) -> tuple[Needle, list[int], list[int]]:
    """Sample `sample` of a grid: (needle item, needle tokens, filler tokens), fixed by the seed."""
    rng = random.Random(f"{kind}-grid:{seed}:{length}:{sample}")
    item = NEEDLES[kind](rng, tasks)
    needle = ans.encode(" " + item.text)
    return item, needle, filler_tokens(ans, books, length - len(needle), rng)


def run_sample(ans: Answerer, books, length: int, depths: Sequence[float], seed: int, sample: int,
               progress=lambda msg: None, kind: str = "passkey", tasks=None, resume=None) -> list[dict]:
    """One sample (needle of `kind`, filler) at every depth; returns one row per depth.

    resume: a `comet_cli.eval.resume.SampleResume` to keep (and pick up) resume points inside the
    sample (comet only: the baselines read one window per depth)."""
    item, needle, fill = grid_sample(ans, books, length, seed, sample, kind, tasks)
    key = item.answer
    prefix, suffix = ans.frame(item.question)
    cuts = sorted((round(d * len(fill)), d) for d in depths)
    if ans.method == "comet":
        return _comet_sample(ans, item, needle, fill, prefix, suffix, cuts, length, sample, progress, resume)
    rows = []
    for pos, depth in cuts:
        t0 = time.time()
        progress(f"length {length:,} depth {depth:.2f}")
        ids = ans.window_ids(prefix, fill[:pos] + needle + fill[pos:], suffix)
        text = ans.full_attention(ids, max_new_tokens=12)
        rows.append(_row(length, depth, sample, key, text, item.correct(text), time.time() - t0))
        progress(_answered(rows[-1]))
    return rows


def _comet_sample(ans: Answerer, item, needle, fill, prefix, suffix, cuts, length, sample, progress,
                  resume) -> list[dict]:
    """A comet sample, read `ans.reads` times (chunk boundaries shifted) and answered from all the reads
    together (Answerer.answer_ids; one read: its own answer). Each read forks at the depths; with `resume`,
    every read keeps its resume points."""
    from comet_models.runtime import feed

    key = item.answer
    trunks, done, rows = ans.open(prefix), 0, []
    saved = resume.trunk(trunks, key) if resume else None
    if saved:
        trunks, done, rows = saved
        progress(f"length {length:,}: resumed after {len(rows)} of {len(cuts)} depths")
    for pos, depth in cuts[len(rows):]:  # depths in the order read: the saved rows come first
        t0 = time.time()
        if pos > done:  # the filler up to this depth (with resume: in slices, so it is not read twice)
            trunks = resume.advance(ans.model, trunks, fill, done, pos, key, rows, depth,
                                    lambda m: progress(f"length {length:,}: {m}")) if resume \
                else [feed(ans.model, st, fill[done:pos]) for st in trunks]
            done = pos
        progress(f"length {length:,} depth {depth:.2f}: " + (f"{len(trunks)} reads" if len(trunks) > 1 else "reading"))
        rest = needle + fill[pos:]
        forks = [resume.feed(ans.model, st, rest, key, depth, r, lambda m: progress(f"length {length:,} {m}"))
                 if resume else feed(ans.model, st, rest) for r, st in enumerate(trunks)]
        ids, plain, weighed = ans.answer_ids(forks, suffix, 12)
        text = ans.tokenizer.decode(ids, skip_special_tokens=True)
        rows.append(_row(length, depth, sample, key, text, item.correct(text), time.time() - t0))
        if plain is not None:  # the beam's row also keeps the answer without it
            greedy = ans.tokenizer.decode(plain, skip_special_tokens=True)
            rows[-1].update(greedy_answer=greedy.strip()[:80], greedy_correct=bool(item.correct(greedy)))
        rows[-1].update(ans.key_scores(forks, suffix, key, item.correct, 12, weighed))
        progress(_answered(rows[-1]))
        if resume:
            resume.save_trunk(trunks, key, done, rows)
    if resume:
        resume.clear()
    return rows


def _answered(r: dict) -> str:
    return (f"length {r['length']:,} depth {r['depth']:.2f}: {'right' if r['correct'] else 'wrong'} "
            f"(key {r['key']}, answered {r['answer']!r}, {r['seconds']:.0f} s)")


def _row(length, depth, sample, key, text, correct, seconds) -> dict:
    return {"length": length, "depth": round(depth, 3), "sample": sample, "key": key, "answer": text.strip()[:80],
            "correct": bool(correct), "seconds": round(seconds, 2)}


def summarize_grid(rows: list[dict]) -> dict:
    """{length: {depth: accuracy}} from per-sample rows."""
    cells: dict = {}
    for r in rows:
        cells.setdefault(r["length"], {}).setdefault(r["depth"], []).append(r["correct"])
    return {L: {d: sum(v) / len(v) for d, v in sorted(ds.items())} for L, ds in sorted(cells.items())}


def plot_heatmaps(results: dict[str, list[dict]], path: Path, lengths: Sequence[int] | None = None) -> None:
    """One heatmap per method: rows depths, columns lengths, colour accuracy. With `lengths`, every
    panel has those columns and a cell without a sample reads "not run"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, (name, rows) in zip(axes[0], results.items()):
        grid = summarize_grid(rows)
        cols = list(lengths) if lengths else list(grid)
        depths = sorted({d for ds in grid.values() for d in ds})
        data = [[grid.get(L, {}).get(d, float("nan")) for L in cols] for d in depths]
        ax.imshow(data, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
        ax.set_xticks(range(len(cols)), [_k(L) for L in cols])
        ax.set_yticks(range(len(depths)), [f"{d:.2f}" for d in depths])
        for i, row in enumerate(data):
            for j, v in enumerate(row):
                ax.text(j, i, "not\nrun" if v != v else f"{v:.0%}", ha="center", va="center",
                        fontsize=6 if v != v else 8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("input tokens")
        ax.set_ylabel("needle depth")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _k(n: int) -> str:
    for unit, div in (("M", 2**20), ("M", 10**6), ("k", 1024), ("k", 1000)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)

