"""Pass-key (or BABILong) retrieval over input lengths x needle depths, CoMeT and its baselines.

Each method is one `comet eval passkey` run (book filler, a random 5-digit key per sample) whose
per-sample rows go to benchmarks/results/passkey/<method>.jsonl (the trained row named after the
shipped weights), so a rerun (or a longer --lengths)
only computes the cells that are missing. Methods: `trained` (the embedded default with its shipped
weights, reading as `comet ask` does: read once, a long document starts after a chunk of lead prose),
`trained-nolead` (the same weights, the document's first tokens in the prompt's chunk, as the toolkit
read before leads), `trained-lead` (the lead forced), `untrained` (the same layout, freshly converted; read without the lead, as its
committed rows were: it finds no key either way) and `sliding` (attention sinks + recent tokens at
CoMeT's memory budget, base weights).

    python benchmarks/passkey_grid.py --lengths 4096,16384,65536 --depths 5 --samples 1
    # -> benchmarks/results/passkey_grid.{json,md,png}
    python benchmarks/passkey_grid.py --lengths 4096,16384,65536,262144 --samples 3,3,3,1
    # --samples: one count for every length, or one per length (long samples cost hours)
    python benchmarks/passkey_grid.py --task babilong --lengths 4096,16384 --samples 3
    # --cached: tables and heatmaps from the samples already computed, nothing run
    # --trained-dtype bfloat16: the trained row read in bfloat16 (2.6x faster here; answers in
    #   results/<task>/trained-...-bfloat16.jsonl); the baselines stay float32
    python benchmarks/passkey_grid.py --methods trained trained-reads3 --lengths 4096,16384,65536 \
        --samples 10,10,3 --trained-dtype bfloat16 --out benchmarks/results/passkey_grid_reads3
    # trained-readsN: the trained weights answering from N reads of each sample (`comet eval --reads N`),
    #   without the lead as `comet ask --reads N` reads; trained-lead-readsN the same with it
    # trained rows answer as `comet ask` does, a short answer picked among a beam's whole answers
    #   (`comet eval --beam 4`, results/<task>/...-beam4.jsonl); a -greedy suffix (trained-greedy,
    #   trained-nolead-reads3-greedy) reads the greedy rows measured before the beam; a sample read only
    #   with the beam is added to them from the greedy answers its rows keep (the same read), not read again
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

from comet_cli.reading.plan import ANSWER_BEAM

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))


def trained_tag(model: str | None, dtype: str = "float32") -> str:
    """The trained row's file name under results/<task>/: named after the weights (and the precision
    when not float32), so new weights run anew."""
    from comet_models.convert import default_model_tag

    tag = f"trained-{Path(model).parent.name}" if model else f"trained-shipped-{default_model_tag()}"
    return tag if dtype == "float32" else f"{tag}-{dtype}"


METHOD = re.compile(r"trained(-nolead|-lead)?(?:-reads(\d+))?(-greedy)?|untrained|sliding")


def run_method(name: str, args) -> list[dict]:
    from quality_table import untrained_dir

    from comet_models.runtime import reads_with_lead

    m = METHOD.fullmatch(name)
    trained = name.startswith("trained")
    reads = int(m.group(2) or 1) if trained else 1
    # trained: as `comet ask` reads (the lead with one read only); -lead / -nolead force it; untrained: none
    lead = trained and (m.group(1) == "-lead" or (m.group(1) is None and reads_with_lead(reads)))
    base = None if trained else str(untrained_dir())
    method, model = ("comet", args.trained_model) if trained else \
        {"untrained": ("comet", base), "sliding": ("sliding", base)}[name]
    tag = trained_tag(args.trained_model, args.trained_dtype) if trained else name
    tag += "-lead" if lead else ""  # the files of rows read without the lead keep their names
    tag += f"-reads{reads}" if reads > 1 else ""
    # trained: short answers searched as `comet ask` searches them; -greedy and the baselines: greedy
    beam = ANSWER_BEAM if trained and not m.group(3) else 1
    tag += f"-beam{beam}" if beam > 1 else ""  # greedy rows keep their files
    out = RESULTS / args.task / f"{tag}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    if trained and m.group(3):
        adopt_greedy(out, out.with_name(f"{out.stem}-beam{ANSWER_BEAM}.jsonl"))
    t = time.time()
    counts = () if args.cached else sorted(set(args.samples.values()))
    for n in counts:  # one `comet eval` per sample count
        lengths = ",".join(str(L) for L, k in args.samples.items() if k == n)
        cmd = [sys.executable, "-m", "comet_cli.cli", "eval", args.task, "--method", method, "--lengths", lengths,
               "--depths", str(args.depths), "--samples", str(n), "--out", str(out), "--json", "-q"]
        cmd += ["--dtype", args.trained_dtype] if trained else []
        cmd += ["--reads", str(reads)] if reads > 1 else []
        cmd += (["--lead"] if lead else ["--no-lead"]) if method == "comet" else []
        cmd += ["--beam", str(beam)] if method == "comet" else []
        subprocess.run(cmd + (["--model", model] if model else []), check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    print(f"{name}: {time.time() - t:.0f} s", file=sys.stderr, flush=True)
    return [r for r in read_rows(out) if r["sample"] < args.samples.get(r["length"], 0)]


def adopt_greedy(out: Path, beam: Path) -> None:
    """Append to the greedy rows' file `out`, under its own ids, every sample that only `beam` has read:
    its rows' greedy answers (the same read, decoded greedily), so `comet eval` does not read it again."""
    have = {json.loads(line)["id"] for line in out.read_text().splitlines()} if out.exists() else set()
    tag = f"+beam{ANSWER_BEAM}"
    lines = []
    for line in beam.read_text().splitlines() if beam.exists() else []:
        item = json.loads(line)
        rows = [{k: v for k, v in r.items() if not k.startswith("greedy_")} | {"answer": r["greedy_answer"],
                "correct": r["greedy_correct"]} for r in item["rows"] if "greedy_answer" in r]
        if item["id"].replace(tag, "") not in have and len(rows) == len(item["rows"]) > 0:
            lines.append(json.dumps({"id": item["id"].replace(tag, ""), "rows": rows}) + "\n")
    if lines:
        with out.open("a") as f:
            f.writelines(lines)


def read_rows(path: Path) -> list[dict]:
    """The rows of a `comet eval` JSONL file (one line per sample: its rows, one per depth); none if absent."""
    return [r for line in (path.read_text().splitlines() if path.exists() else []) for r in json.loads(line)["rows"]]


def samples_per_length(lengths: str, samples: str) -> dict[int, int]:
    """--samples N (every length) or N1,N2,... (one per length), as {length: samples}."""
    Ls, ns = [int(x) for x in lengths.split(",")], [int(x) for x in samples.split(",")]
    if len(ns) == 1:
        ns *= len(Ls)
    if len(ns) != len(Ls) or min(ns) < 1:
        raise SystemExit(f"--samples {samples}: one count >= 1, or one per length ({len(Ls)})")
    return dict(zip(Ls, ns))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=("passkey", "babilong"), default="passkey")
    ap.add_argument("--lengths", default="4096,16384,65536")
    ap.add_argument("--depths", type=int, default=5)
    ap.add_argument("--samples", default="1", help="samples per cell: N, or one count per length (N1,N2,...)")
    ap.add_argument("--methods", nargs="+", default=["trained", "untrained", "sliding"],
                    help="trained, trained-nolead, trained-lead, untrained, sliding, or trained[-nolead|-lead]-readsN "
                         "(the trained row read N times; trained alone reads as `comet ask`: the lead with one read only, "
                         "short answers searched with its beam); a -greedy suffix answers greedily (rows from before --beam)")
    ap.add_argument("--out", default=None, help="stem of the output files (default: results/<task>_grid)")
    ap.add_argument("--trained-model", default=None,
                    help="CoMeT folder for the `trained` row (default: the embedded default with its shipped weights)")
    ap.add_argument("--trained-dtype", choices=("float32", "bfloat16"), default="float32",
                    help="precision of the trained row (bfloat16 reads 2.6x faster on this CPU; baselines stay float32)")
    ap.add_argument("--cached", action="store_true",
                    help="only the samples already in results/<task>/ (a cell without one reads \"not run\")")
    args = ap.parse_args()
    args.samples = samples_per_length(args.lengths, args.samples)
    bad = [m for m in args.methods if not METHOD.fullmatch(m)]
    if bad:
        raise SystemExit(f"--methods {' '.join(bad)}: not trained[-nolead|-lead][-readsN][-greedy], untrained or sliding")
    stem = Path(args.out) if args.out else RESULTS / f"{args.task}_grid"
    from comet_cli.eval.passkey import plot_heatmaps, summarize_grid

    results = {m: run_method(m, args) for m in args.methods}
    grids = {m: summarize_grid(rows) for m, rows in results.items()}
    res = {"command": "python benchmarks/passkey_grid.py " + " ".join(sys.argv[1:]),
           "machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
           "samples_per_cell": {str(L): n for L, n in args.samples.items()}, "trained_model": args.trained_model or "embedded default",
           "trained_dtype": args.trained_dtype,
           "samples_run": {m: {str(L): len({r["sample"] for r in rows if r["length"] == L}) for L in args.samples}
                           for m, rows in results.items()},
           "grids": {m: {str(L): {str(d): a for d, a in ds.items()} for L, ds in g.items()} for m, g in grids.items()},
           "overall": {m: round(sum(r["correct"] for r in rows) / max(1, len(rows)), 3) for m, rows in results.items()}}
    stem.with_name(stem.name + ".json").write_text(json.dumps(res, indent=2) + "\n")
    plot_heatmaps(results, stem.with_name(stem.name + ".png"), lengths=list(args.samples))
    ns = set(args.samples.values())
    per_cell = (f"{ns.pop()} sample(s) per cell" if len(ns) == 1 else
                "samples per cell: " + ", ".join(f"{n} at {L:,}" for L, n in args.samples.items()))
    title = "Pass-key retrieval" if args.task == "passkey" else "BABILong-style facts (bAbI qa1/qa2)"
    lines = [f"# {title}: accuracy by input length and needle depth", "",
             f"Command: `{res['command']}` ({per_cell}, {res['machine']}, {res['date']}); "
             f"per-sample answers in `results/{args.task}/`.", ""]
    for m, g in grids.items():
        depths = sorted({d for ds in g.values() for d in ds})
        who = f", {res['trained_model']}, {args.trained_dtype}" if m.startswith("trained") else ""
        lines += [f"**{m}**{who} (overall {res['overall'][m]:.0%})", "",
                  "| tokens | " + " | ".join(f"depth {d:.2f}" for d in depths) + " | samples |",
                  "|---:|" + "---:|" * (len(depths) + 1)]
        for L in args.samples:
            cells = [f"{g[L][d]:.0%}" if d in g.get(L, {}) else "not run" for d in depths]
            lines.append(f"| {L:,} | " + " | ".join(cells) + f" | {res['samples_run'][m][str(L)]} |")
        lines.append("")
    stem.with_name(stem.name + ".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
