"""Reading comprehension: does the model answer a plain question about the text it just read?

Twelve short passages written for this benchmark (so no model has seen them), each with one question
whose answer is a word or name stated once in the passage. Two layouts per item:

    near  the passage alone (80-140 tokens): the answer shares the question's chunk, or the one before
    far   the passage, then 700 tokens of *Ulysses* (held out of training): the answer is 3-4 chunks back,
          so only the memory can give it

Rows: the base model with plain attention (`truncate` on an untrained conversion: the backbone as
released), the untrained conversion through its memory, the shipped default and any --trained folders,
all greedy, through `comet ask`'s frame (chat template, document then question, no repetition penalty).
An answer is right when it contains the gold word(s) as a whole word.

    python benchmarks/reading_qa.py                      # -> benchmarks/results/reading_qa.{json,md}
    python benchmarks/reading_qa.py --trained runs/r14-read/model --no-baselines --no-default \
        --out benchmarks/results/training/r14/reading_qa_read
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FILLER = ROOT.parent / "shared" / "data" / "books" / "ulysses_pg4300.txt"
ITEMS = [
    ("Maria Lopez opened a small bakery on Elm Street in the spring. Every morning she baked rye bread and "
     "cinnamon rolls, and by seven o'clock a line of neighbours waited at the door. Her brother Tomas "
     "delivered bread to the school across the road on his bicycle.", "Who opened the bakery on Elm Street?",
     r"maria|lopez"),
    ("The expedition left the harbour of Tromso on a grey morning. Captain Ingrid Halvorsen steered the "
     "ship north for eleven days until the ice grew too thick to pass. The crew spent the winter frozen in, "
     "hunting seals and reading the three hundred books they had brought.", "Who steered the ship north?",
     r"ingrid|halvorsen"),
    ("In the village of Brackwater the old mill had stood empty for twenty years. One summer a carpenter "
     "named Oliver Penrose bought it for a single gold coin, repaired the great wheel and began to grind "
     "flour again. Within a year the village had its own market.", "What did Oliver Penrose buy?",
     r"mill"),
    ("Dr. Amara Okafor studied the migration of cranes across the valley. She counted the birds from a "
     "wooden tower each evening and wrote the numbers in a green notebook. In the autumn of that year she "
     "counted more than four thousand cranes in a single night.", "What birds did Dr. Okafor study?",
     r"cranes?"),
    ("The letter arrived on Tuesday. It was from Henry, who had sailed to Lisbon the month before to sell "
     "his father's cork. He wrote that the weather was hot, the prices were good, and that he would come "
     "home before Christmas with a gift for his sister Clara.", "To which city did Henry sail?",
     r"lisbon"),
    ("Nobody in the office knew who kept stealing the stapler. Every Monday it was gone, and every Friday "
     "it was back on Priya's desk. At last the cleaner, Mr. Dobbs, admitted that he borrowed it each week "
     "to fix the posters in the lift.", "Who borrowed the stapler each week?", r"dobbs|cleaner"),
    ("The recipe came from the grandmother of the family, Rosa. She mixed flour, eggs and a pinch of "
     "saffron, rolled the dough thin and cut it into ribbons with a knife her own mother had given her. "
     "The pasta was dried on the backs of the kitchen chairs.", "What spice did Rosa add to the dough?",
     r"saffron"),
    ("At the county fair the prize for the largest pumpkin went to a boy of twelve, Samuel Reyes. His "
     "pumpkin weighed as much as a small horse, and it took six men and a tractor to lift it onto the "
     "scales. Samuel said he had fed it milk every day.", "Who won the prize for the largest pumpkin?",
     r"samuel|reyes"),
    ("The old lighthouse keeper, Agnes, lived alone on the island with a grey cat called Pilot. Twice a "
     "year a boat brought her oil, flour and newspapers. She read every newspaper from the first page "
     "to the last, even the advertisements.", "What was the name of Agnes's cat?", r"pilot"),
    ("The concert was moved from the park to the town hall because of the storm. The orchestra, led by "
     "the conductor Felix Brandt, played for two hours while the rain beat on the windows, and nobody in "
     "the audience went home early.", "Where was the concert moved to?", r"town hall|hall"),
    ("Leo repaired clocks in a narrow shop near the station. The most unusual clock he ever fixed belonged "
     "to a sea captain: it ran backwards and struck thirteen at noon. Leo kept it for a week and returned "
     "it running forwards, which made the captain angry.", "What was Leo's trade?",
     r"clocks?|clockmaker|watchmaker|repair"),
    ("On the first day of school the new teacher, Miss Fairweather, asked every child to bring an apple. "
     "She did not eat them. Instead she cut them open to show the class the star hidden inside each one, "
     "and then she made a pie for the whole school.", "What did Miss Fairweather make for the whole school?",
     r"pie|apple pie"),
]
FAR_TOKENS = 700


def right(answer: str, gold: str) -> bool:
    return re.search(rf"\b({gold})\b", answer.lower()) is not None


def filler(tok, k: int) -> str:
    """FAR_TOKENS of Ulysses, a different stretch for each item."""
    text = FILLER.read_text(encoding="utf-8")
    text = text[text.find("Stately"):]
    ids = tok(text[20_000 * (k + 1):20_000 * (k + 1) + 8 * FAR_TOKENS], add_special_tokens=False)["input_ids"]
    return tok.decode(ids[1:FAR_TOKENS + 1])


def evaluate(folder: str, method: str) -> dict:
    import torch

    from comet_cli.eval.methods import Answerer
    from comet_cli.eval.tasks import EvalItem
    from comet_models.convert import load_comet

    torch.set_grad_enabled(False)
    model, tok = load_comet(folder)
    ans = Answerer(model, tok, method, max_new_tokens=32)
    rows = []
    for k, (passage, question, gold) in enumerate(ITEMS):
        for layout, doc in (("near", passage), ("far", passage + "\n\n" + filler(tok, k))):
            t = time.time()
            item = EvalItem("reading", f"{k}-{layout}", doc, question, [gold], "em")
            a = ans.answer(item)
            rows.append({"item": k, "layout": layout, "tokens": len(tok(doc)["input_ids"]), "answer": a,
                         "correct": right(a, gold), "seconds": round(time.time() - t, 1)})
    return {"folder": folder, "method": method, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trained", action="append", default=[], help="more CoMeT folders to compare (repeatable)")
    ap.add_argument("--no-default", action="store_true", help="leave out the shipped default")
    ap.add_argument("--no-baselines", action="store_true",
                    help="leave out the base and the untrained conversion (their rows are in results/reading_qa.md)")
    ap.add_argument("--out", default=str(RESULTS / "reading_qa"), help="write OUT.json and OUT.md")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(evaluate(*args.worker)))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from quality_table import untrained_dir

    from comet_cli.modelref import resolve_model_dir

    base = str(untrained_dir())
    runs = [] if args.no_baselines else [("base, plain attention", base, "truncate"),
                                         ("untrained conversion", base, "comet")]
    runs += [] if args.no_default else [("shipped default", str(resolve_model_dir(None)), "comet")]
    runs += [(t, t, "comet") for t in args.trained]
    results = []
    for label, folder, method in runs:
        res = subprocess.run([sys.executable, __file__, "--worker", folder, method], check=True,
                             capture_output=True, text=True, cwd=ROOT)
        results.append({"label": label, **json.loads(res.stdout.strip().splitlines()[-1])})
        print(label, sum(r["correct"] for r in results[-1]["rows"]), file=sys.stderr, flush=True)
    report(results, Path(args.out), args)


def report(results: list[dict], out: Path, args) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"results": results, "cpu": os.cpu_count()}, indent=1) + "\n")
    cmd = "python benchmarks/reading_qa.py" + "".join(f" --trained {t}" for t in args.trained) + \
        (" --no-default" if args.no_default else "") + (" --no-baselines" if args.no_baselines else "") + \
        (f" --out {args.out}" if args.out != str(RESULTS / "reading_qa") else "")
    n = len(ITEMS)
    lines = ["# Reading comprehension: a plain question about the text just read", "",
             f"Command: `{cmd}` ({n} written passages, one question each; near = the passage alone, far = "
             f"the passage then {FAR_TOKENS} tokens of *Ulysses*; greedy, {time.strftime('%Y-%m-%d')}).", "",
             "| model | near | far |", "|---|---:|---:|"]
    for r in results:
        c = {lay: sum(x["correct"] for x in r["rows"] if x["layout"] == lay) for lay in ("near", "far")}
        lines.append(f"| {r['label']} | {c['near']}/{n} | {c['far']}/{n} |")
    lines += ["", "Answers (near / far):", ""]
    for k, (_, q, _) in enumerate(ITEMS):
        lines.append(f"- {q}")
        for r in results:
            a = {x["layout"]: x["answer"][:50].replace("\n", " ") for x in r["rows"] if x["item"] == k}
            lines.append(f"  - {r['label']}: \"{a['near']}\" / \"{a['far']}\"")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
