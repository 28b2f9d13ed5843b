"""Short chat answers written by the base model, to keep its everyday chat while the memory trains.

Pass-key and bAbI samples end every chat with a terse answer (digits, a name), and a model trained on
them alone answers every question that way: r10's reach model replied to "What is the capital of
France?" with "7983" (benchmarks/results/training/r10/short_inputs_reach.md). These rows are the
embedded SmolLM2-135M-Instruct's own greedy answers to general questions (self-distillation), so
mixing them in (`kind: chat_jsonl`) teaches the model to answer them as it did before, not better.

    python recipes/distill_chat.py        # recipes/data/chat-questions.txt -> recipes/data/distill-chat.jsonl

The ten questions of benchmarks/short_inputs.py are not in the list (they measure what is kept).
An answer that repeats itself is dropped; rows are written one by one, so a rerun continues.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from distill_summaries import repetitive, teacher_reply

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", default=str(ROOT / "recipes" / "data" / "chat-questions.txt"))
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("-o", "--out", default=str(ROOT / "recipes" / "data" / "distill-chat.jsonl"))
    args = ap.parse_args()
    from comet_models.convert import load_source

    questions = [q.strip() for q in Path(args.questions).read_text(encoding="utf-8").splitlines() if q.strip()]
    model, tok = load_source(None)  # the embedded SmolLM2, plain attention
    out = Path(args.out)
    done = {json.loads(line)["messages"][0]["content"] for line in open(out)} if out.exists() else set()
    t0 = time.time()
    with open(out, "a", encoding="utf-8") as f:
        for k, q in enumerate(questions):
            if q in done:
                continue
            answer = teacher_reply(model, tok, q, args.max_new_tokens)
            kept = bool(answer) and not repetitive(answer)
            if kept:
                f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                                 {"role": "assistant", "content": answer}],
                                    "teacher": "SmolLM2-135M-Instruct, plain attention, greedy"}) + "\n")
                f.flush()
            print(f"[distill-chat] {k + 1}/{len(questions)}  {time.time() - t0:.0f} s  "
                  f"{'kept' if kept else 'dropped'}  {answer[:60]!r}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
