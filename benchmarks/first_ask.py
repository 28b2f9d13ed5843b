"""A new user's first `comet ask`: a long text file with a pass key hidden in it, one question.

Each file is a stretch of *Ulysses* (held out: never in any training mix) of about L tokens with
"The pass key is K. Remember it. K is the pass key." put at relative depth d. No preface tells the
model that something is hidden (the grid's samples have one). Every file is read by the command a
user runs, in a fresh process, with the embedded default unless --model is given:

    comet ask FILE "What is the pass key?" --json -q --no-cache --reads auto --beam 4

(`--reads auto` is `comet ask`'s default: three reads of these 2k-16k-token files.)
An answer is right when it contains the 5-digit key.

    python benchmarks/first_ask.py                       # 2k-16k tokens, depths 0.25 and 0.75
    python benchmarks/first_ask.py --lengths 4096 --depths 0.1,0.5,0.9 --model runs/x/model
    python benchmarks/first_ask.py --reads 1              # each file read once (`comet ask --reads 1`)
    python benchmarks/first_ask.py --beam 1               # greedy answers (as before `--beam`)
    # -> benchmarks/results/first_ask.{json,md}; answers kept in results/first_ask/<model>[-auto|-lead].jsonl,
    #    so a rerun only asks what is missing; --out STEM writes STEM.{json,md} instead
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from comet_cli.finetune.synthetic import PASSKEY_NEEDLE, PASSKEY_QUESTION, insert_at
from comet_cli.reading.plan import ANSWER_BEAM

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CHARS_PER_TOKEN = 3.2  # Ulysses with SmolLM2's tokenizer (measured); the tokens actually read are reported


def book_text() -> str:
    from comet_cli.finetune.sources import default_data_dir

    path = default_data_dir() / "books" / "ulysses_pg4300.txt"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (set COMET_DATA to the shared data folder)")
    text = path.read_text(encoding="utf-8")
    return text[text.find("Stately"):]


def make_file(folder: Path, text: str, length: int, depth: float, seed: int) -> tuple[Path, str]:
    rng = random.Random(f"first-ask:{seed}:{length}:{depth}")
    key = str(rng.randint(10000, 99999))
    n = int(length * CHARS_PER_TOKEN)
    start = rng.randrange(len(text) - n)
    start = text.find(" ", start) + 1  # begin at a word
    body = insert_at(text[start:start + n], depth, PASSKEY_NEEDLE.format(key=key))
    path = folder / f"ulysses-{length}-{depth:.2f}.txt"
    path.write_text(body, encoding="utf-8")
    return path, key


def ask(path: Path, model: str | None, reads: str = "auto", beam: int = ANSWER_BEAM) -> dict:
    cmd = [sys.executable, "-m", "comet_cli.cli", "ask", str(path), PASSKEY_QUESTION, "--json", "-q", "--no-cache",
           "--reads", str(reads), "--beam", str(beam)]
    t0 = time.time()
    got = subprocess.run(cmd + (["--model", model] if model else []), capture_output=True, text=True, cwd=ROOT)
    if got.returncode != 0:
        raise SystemExit(f"{path.name}: comet ask failed: {got.stderr.strip()[-400:]}")
    res = json.loads(got.stdout)
    return {"answer": res["answer"].strip()[:120], "tokens": res["tokens_read"], "reads": res["reads"],
            "seconds": round(time.time() - t0, 1)}


def _cell(answer: str) -> str:
    return repr(answer).replace("|", "\\|")  # a markdown table cell


def model_tag(model: str | None) -> str:
    if model:
        return Path(model).resolve().parent.name if Path(model).name == "model" else Path(model).name
    from comet_models.convert import default_model_tag

    return f"default-{default_model_tag()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="2048,4096,8192,16384", help="tokens per file (about)")
    ap.add_argument("--depths", default="0.25,0.75", help="where the key sits in each file (0 start, 1 end)")
    ap.add_argument("--model", default=None, help="CoMeT folder (default: the embedded default model)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reads", default="auto",
                    help="`comet ask --reads N|auto` (default auto, as comet ask; answers kept apart per value)")
    ap.add_argument("--beam", type=int, default=ANSWER_BEAM,
                    help="`comet ask --beam N` (default: its default; 1: greedy, the answers kept before --beam)")
    ap.add_argument("--out", default=str(RESULTS / "first_ask"),
                    help="stem of the summary files (default: the shipped default's, benchmarks/results/first_ask)")
    args = ap.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    depths = [float(x) for x in args.depths.split(",")]
    # `comet ask --reads 1` reads a long document after a chunk of lead prose (runtime.reads_with_lead):
    # "-lead" keeps its answers apart from those read before leads. Several reads read without it, as
    # before; "-auto" holds what `--reads auto` did per file (three reads up to 65,536 tokens, past that one
    # read with the lead: the row's "reads"); results/first_ask/*-auto-lead.jsonl holds r22's answers with
    # the lead in all three reads
    tag = model_tag(args.model) + {"1": "-lead", "auto": "-auto"}.get(args.reads, f"-reads{args.reads}")
    tag += f"-beam{args.beam}" if args.beam > 1 else ""  # answers searched whole (comet ask's default since r23)
    store = RESULTS / "first_ask" / f"{tag}.jsonl"
    store.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if store.exists():
        for line in store.read_text().splitlines():
            r = json.loads(line)
            done[(r["length"], r["depth"], r["key"])] = r
    text, rows = book_text(), []
    with tempfile.TemporaryDirectory() as tmp:
        for length in lengths:
            for depth in depths:
                path, key = make_file(Path(tmp), text, length, depth, args.seed)
                r = done.get((length, depth, key))
                if r is None:
                    r = {"length": length, "depth": depth, "key": key, **ask(path, args.model, args.reads, args.beam)}
                    r["right"] = key in r["answer"]
                    with open(store, "a") as f:
                        f.write(json.dumps(r) + "\n")
                print(f"{length:>6} tokens, depth {depth:.2f}: key {key}, answered {r['answer']!r} "
                      f"({'right' if r['right'] else 'wrong'}, {r['seconds']:.0f} s)", file=sys.stderr, flush=True)
                rows.append(r)
    right = sum(r["right"] for r in rows)
    cmd = "python benchmarks/first_ask.py " + " ".join(sys.argv[1:])
    res = {"command": cmd.strip(), "model": args.model or "embedded default", "tag": tag,
           "machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
           "right": right, "files": len(rows), "rows": rows}
    out = Path(args.out)
    out.with_name(out.name + ".json").write_text(json.dumps(res, indent=2) + "\n")
    lines = ["# A new user's first `comet ask`: a pass key hidden in a long text file", "",
             f"Command: `{res['command']}` ({res['model']}, weights {tag}; {res['machine']}, {res['date']}). "
             f"Each file is *Ulysses* (held out from training) with the key sentence at the given depth, "
             f"read by `comet ask FILE \"{PASSKEY_QUESTION}\" --json -q --no-cache"
             + f" --reads {args.reads} --beam {args.beam}` in a fresh process.", "",
             f"**{right} of {len(rows)}** files answered with the key.", "",
             "| tokens read | depth | key | answer | right | reads | seconds |", "|---:|---:|---:|---|:---:|---:|---:|"]
    lines += [f"| {r['tokens']:,} | {r['depth']:.2f} | {r['key']} | {_cell(r['answer'])} | {'yes' if r['right'] else 'no'} | "
              f"{r.get('reads', '?')} | {r['seconds']:.0f} |" for r in rows]
    out.with_name(out.name + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
