"""Summaries written by the base model with full attention, as chat data for CoMeT to learn from.

The teacher is the embedded SmolLM2-135M-Instruct reading a whole passage in plain context (it does
this well at ~1k tokens); the student is the CoMeT model, which must write the same summary after
reading the passage chunk by chunk through its memory. Training on these rows
(`kind: chat_jsonl`) teaches the memory to keep what a summary needs, without any summarization
data beyond the books themselves.

    python recipes/distill_summaries.py -n 60 -o recipes/data/distill-summaries.jsonl

Passages are token windows of the training books (Ulysses stays held out), starting at a paragraph;
rows are written one by one, so an interrupted run continues where it stopped. A summary that
repeats itself (the teacher loops now and then) is dropped rather than taught.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("COMET_DATA", ROOT.parent / "shared" / "data"))
BOOKS = ["pride_and_prejudice_pg1342.txt", "moby_dick_pg2701.txt", "war_and_peace_pg2600.txt"]


def passages(n: int, tokens: int, tok, seed: int):
    rng = random.Random(seed)
    texts = [(DATA / "books" / b).read_text(encoding="utf-8").replace("\r\n", "\n") for b in BOOKS]
    for k in range(n):
        text = texts[k % len(texts)]
        start = text.find("\n\n", rng.randrange(len(text) // 20, len(text) - 20 * tokens)) + 2
        ids = tok.encode(text[start:start + 8 * tokens], add_special_tokens=False)[:tokens]
        yield tok.decode(ids).strip()


def repetitive(text: str, n: int = 6) -> bool:
    """True if some run of n words occurs twice: the teacher got stuck in a loop."""
    words = text.lower().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def teacher_reply(model, tok, user: str, max_new_tokens: int) -> str:
    """The teacher's greedy reply to one user message; a reply cut at max_new_tokens ends at its last full sentence."""
    import torch

    ids = tok.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        gen = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
    reply = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True).strip()
    if gen.shape[1] - ids.shape[1] >= max_new_tokens:
        reply = reply[:reply.rfind(".") + 1] or reply
    return reply


def passages_done(out: Path) -> int:
    """Where an interrupted run resumes: one past the last passage index written to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return max((json.loads(line)["passage"] + 1 for line in open(out)), default=0) if out.exists() else 0


def chat_row(user: str, reply: str, **extra) -> str:
    """One JSONL line of `kind: chat_jsonl` data: the user turn, the teacher's reply, provenance."""
    return json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}],
                       **extra, "teacher": "SmolLM2-135M-Instruct, full attention, greedy"}) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=60, help="number of passages")
    ap.add_argument("--tokens", type=int, default=900, help="passage length in tokens")
    ap.add_argument("--max-new-tokens", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--out", default=str(ROOT / "recipes" / "data" / "distill-summaries.jsonl"))
    args = ap.parse_args()
    from comet_cli.commands.read import SUMMARIZE_INSTRUCTION  # the instruction `comet summarize` uses
    from comet_models.convert import load_source

    model, tok = load_source(None)  # the embedded SmolLM2, plain full attention
    out = Path(args.out)
    done = passages_done(out)
    t0 = time.time()
    with open(out, "a", encoding="utf-8") as f:
        for k, passage in enumerate(passages(args.n, args.tokens, tok, args.seed)):
            if k < done:
                continue
            user = passage + "\n\n" + SUMMARIZE_INSTRUCTION
            summary = teacher_reply(model, tok, user, args.max_new_tokens)
            kept = not repetitive(summary)
            if kept:
                f.write(chat_row(user, summary, passage=k))
                f.flush()
            print(f"[distill] {k + 1}/{args.n}  {time.time() - t0:.0f} s  {'kept' if kept else 'dropped (loops)'}  "
                  f"{summary[:60]!r}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
