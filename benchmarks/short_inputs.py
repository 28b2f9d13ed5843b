"""Does training the memory hurt short inputs? Base SmolLM2 vs the trained default on text that fits
in one chunk: perplexity on held-out book text (Ulysses, never used in training) and greedy answers
to short questions.

    python benchmarks/short_inputs.py       # writes benchmarks/results/short_inputs.{json,md}
    python benchmarks/short_inputs.py --rescore   # re-score the answers stored in OUT.json, no model run
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT.parent / "shared" / "data" / "books" / "ulysses_pg4300.txt"
RESULTS = ROOT / "benchmarks" / "results"
QUESTIONS = [("What is the capital of France?", "paris"), ("How many days are in a week?", "seven|7"),
             ("What color is the sky on a clear day?", "blue"), ("What is 12 plus 30?", "42"),
             ("Who wrote Romeo and Juliet?", "shakespeare"), ("What is the largest planet in our solar system?", "jupiter"),
             ("What gas do plants absorb from the air?", "carbon dioxide|co2"), ("What is the freezing point of water in Celsius?", "0|zero"),
             ("Which ocean lies between Europe and America?", "atlantic"), ("What language is spoken in Brazil?", "portuguese")]


def passages(tok, n: int, length: int, seed: int = 0) -> list[list[int]]:
    text = BOOK.read_text(encoding="utf-8")
    text = text[text.find("Stately"):]
    rng, out = random.Random(seed), []
    while len(out) < n:
        start = rng.randrange(len(text) - 8 * length)
        ids = tok(text[start:start + 8 * length], add_special_tokens=False)["input_ids"][1:length + 1]
        if len(ids) == length:
            out.append(ids)
    return out


@torch.inference_mode()
def evaluate(folder: str, n: int, length: int) -> dict:
    from comet_models.chunked import sequence_loss
    from comet_models.convert import load_comet
    from comet_models.runtime import chat_frame, feed, generate, new_state, stop_ids

    model, tok = load_comet(folder)
    nll = cnt = 0.0
    for ids in passages(tok, n, length):
        x = torch.tensor([ids])
        labels = torch.tensor([ids[1:] + [-100]])  # next-token targets, already shifted
        loss, count = sequence_loss(model, x, labels, [length])
        nll, cnt = nll + float(loss), cnt + float(count)
    answers, right = [], 0
    for q, gold in QUESTIONS:
        prefix, suffix = chat_frame(tok, q)
        state = feed(model, new_state(model), prefix)
        text = tok.decode(list(generate(model, state, suffix, max_new_tokens=24, stop=stop_ids(tok))),
                          skip_special_tokens=True).strip()
        ok = right_answer(text, gold)
        right += ok
        answers.append({"question": q, "answer": text, "correct": ok})
    return {"model": folder, "perplexity": round(math.exp(nll / cnt), 3), "tokens": int(cnt),
            "short_qa_correct": right, "short_qa_total": len(QUESTIONS), "answers": answers}


def right_answer(text: str, gold: str) -> bool:
    """Whether `text` says `gold` (a regex of alternatives) as a whole word or number: "0" is not
    found in "-18.0" or "10", "7" is in "7 days" and "42" in "is 42."."""
    return re.search(rf"(?<![\w.,-])({gold})(?![\w]|[.,]\d)", text.lower()) is not None


def rescore(rows: list[dict]) -> list[dict]:
    """The rows with every stored answer scored again by `right_answer`."""
    golds = dict(QUESTIONS)
    for r in rows:
        for a in r["answers"]:
            a["correct"] = right_answer(a["answer"], golds[a["question"]])
        r["short_qa_correct"] = sum(a["correct"] for a in r["answers"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=24)
    ap.add_argument("--length", type=int, default=200, help="tokens per passage (shorter than one chunk)")
    ap.add_argument("--trained", default=None,
                    help="CoMeT folder to compare with the base (default: the embedded default with its shipped weights)")
    ap.add_argument("--out", default=str(RESULTS / "short_inputs"),
                    help="write OUT.json and OUT.md (default: benchmarks/results/short_inputs)")
    ap.add_argument("--rescore", action="store_true",
                    help="score the answers stored in OUT.json again (after a change of the rule), no model run")
    ap.add_argument("--worker", nargs=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(evaluate(args.worker[0], args.passages, args.length)))
        return
    out = Path(args.out)
    if args.rescore:
        report(rescore(json.loads(out.with_suffix(".json").read_text())["rows"]), out, args)
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from quality_table import untrained_dir

    from comet_cli.modelref import resolve_model_dir

    rows = []
    for label, folder in (("base (untrained conversion)", str(untrained_dir())),
                          (f"trained ({args.trained or 'shipped default'})", str(resolve_model_dir(args.trained)))):
        res = subprocess.run([sys.executable, __file__, "--passages", str(args.passages), "--length", str(args.length),
                              "--worker", folder], check=True, capture_output=True, text=True, cwd=ROOT)
        rows.append({"label": label, **json.loads(res.stdout.strip().splitlines()[-1])})
        print(json.dumps(rows[-1])[:300], file=sys.stderr)
    report(rows, out, args)


def report(rows: list[dict], out: Path, args) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "cpu": os.cpu_count()}, indent=1) + "\n")
    lines = ["# Short inputs (one chunk): base SmolLM2 vs a trained CoMeT model", "",
             f"Perplexity on {args.passages} passages of {args.length} tokens of *Ulysses* (held out of training); "
             f"greedy answers to {len(QUESTIONS)} short questions through the chat template. "
             f"Command: `python benchmarks/short_inputs.py{' --trained ' + args.trained if args.trained else ''}"
             f"{' --out ' + args.out if args.out != str(RESULTS / 'short_inputs') else ''}`.", "",
             "| model | perplexity | short questions right |", "|---|---:|---:|"]
    lines += [f"| {r['label']} | {r['perplexity']} | {r['short_qa_correct']}/{r['short_qa_total']} |" for r in rows]
    lines += ["", "Answers:", ""]
    for i, (q, _) in enumerate(QUESTIONS):
        lines.append(f"- {q} " + " / ".join(f"{r['label'].split()[0]}: \"{r['answers'][i]['answer'][:60]}\"" for r in rows))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
