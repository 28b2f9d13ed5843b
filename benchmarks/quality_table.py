"""The quality table: long-document tasks x methods, on the same backbone, through `comet eval`.

Rows (methods): (a) truncate, (b) sliding, (c) mapreduce, all three on the base weights of an
untrained conversion; (c') truncate on the base fine-tuned with full attention on the same
training data (benchmarks/full_attention_finetune.py, row key `cft`); (d) CoMeT freshly converted
(untrained); (e) CoMeT trained (the shipped default). Each cell is `comet eval TASK --method M --model DIR --limit N`, with per-item results
kept in benchmarks/results/quality/*.jsonl, so a rerun only computes what is missing.

    python benchmarks/quality_table.py --limit 4     # writes benchmarks/results/quality.{json,md}
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TASKS = ["qmsum", "squality", "financial_qa", "tpo"]
FT_DIR = ROOT / "runs" / "full-attention-ft" / "model"
MAIN_METRIC = {"rouge": "rougeL", "f1": "f1", "mc": "accuracy"}


def untrained_dir(sink_tokens: int | None = None) -> Path:
    """An untrained conversion of the embedded default in the shipped recipe's memory layout, so
    rows (b) and (d) have the same memory budget as the trained default (e); `sink_tokens` set
    gives the same layout with (or without) sink tokens (row d')."""
    from comet_cli.finetune.config import load_recipe

    mem = load_recipe(ROOT / "recipes" / "smollm2-default.yaml").memory
    sink = (mem.sink_tokens or 0) if sink_tokens is None else sink_tokens
    flags = {"chunk-size": mem.chunk_size, "global-slots": mem.global_slots,
             "temp-stride": mem.temp_stride, "temp-budget": mem.temp_budget, "sink-tokens": sink}
    home = Path(os.environ.get("COMET_HOME", Path.home() / ".cache" / "comet"))
    out = home / "models" / ("smollm2-untrained-" + "-".join(str(v) for v in flags.values()))
    if not (out / "config.json").is_file():
        cmd = [sys.executable, "-m", "comet_cli.cli", "convert", "--untrained", "-o", str(out), "--force"]
        subprocess.run(cmd + [a for k, v in flags.items() for a in (f"--{k}", str(v))], check=True, cwd=ROOT)
    return out


def run_cell(task: str, method: str, model: str | None, tag: str, limit: int, window: int) -> dict:
    out = RESULTS / "quality" / f"{task}.{tag}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "comet_cli.cli", "eval", task, "--method", method, "--limit", str(limit),
           "--window", str(window), "--out", str(out), "--json", "-q"] + (["--model", model] if model else [])
    t = time.time()
    res = subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
    row = json.loads(res.stdout)
    row["wall_seconds"] = round(time.time() - t, 1)
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=TASKS)
    ap.add_argument("--rows", nargs="+", default=["a", "b", "c", "cft", "d", "dsink", "e"],
                    help="cft is (c'): needs `python benchmarks/full_attention_finetune.py` first; dsink is (d'), "
                         "the untrained conversion with a sink token")
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--window", type=int, default=4096)
    ap.add_argument("--trained", metavar="DIR", help="row e from this converted or exported model folder "
                    "(a training run's model/) instead of the shipped default, to judge weights before shipping")
    args = ap.parse_args()
    from comet_cli.eval.tasks import TASKS as REGISTRY
    from comet_models.convert import default_model_tag

    base = str(untrained_dir())
    rows = {"a": ("truncate", base, "(a) full attention, truncated to the window (head + tail)"),
            "b": ("sliding", base, "(b) sliding window + attention sinks, CoMeT's memory budget"),
            "c": ("mapreduce", base, "(c) map-reduce over window-sized pieces"),
            "cft": ("truncate", str(FT_DIR), "(c') full attention fine-tuned on the training data, truncated"),
            "d": ("comet", base, "(d) CoMeT, freshly converted (untrained)"),
            "dsink": ("comet", None, "(d') CoMeT, freshly converted with a sink token (untrained)"),
            "e": ("comet", None, "(e) CoMeT, trained (shipped default)")}
    if "dsink" in args.rows:
        rows["dsink"] = ("comet", str(untrained_dir(sink_tokens=1)), rows["dsink"][2])
    if args.trained:
        rows["e"] = ("comet", args.trained, f"(e) CoMeT, trained ({args.trained})")
    if "cft" in args.rows and not (FT_DIR / "config.json").is_file():
        sys.exit(f"{FT_DIR}: not found; run `python benchmarks/full_attention_finetune.py` first (row cft)")
    shipped = ROOT / "models" / "weights" / "smollm2-135m-instruct.safetensors"
    if "e" in args.rows and not args.trained and not shipped.is_file():
        sys.exit(f"{shipped}: no trained weights are shipped yet, so row e would be the untrained model; "
                 "leave it out (--rows a b c cft d)")
    # rows already measured with the same settings are kept, so rows can be added one run at a time
    old = json.loads((RESULTS / "quality.json").read_text()) if (RESULTS / "quality.json").is_file() else {}
    same = (old.get("limit"), old.get("window"), old.get("tasks")) == (args.limit, args.window, args.tasks)
    table = dict(old.get("table", {})) if same else {}
    # per-item files are resumed, so each trained folder keeps its own
    # the shipped default's files are named after its weights, so new weights are measured anew
    shipped = f"shipped-{default_model_tag()}"
    tags = {r: r for r in rows} | {"e": "e-" + ("-".join(Path(args.trained).parts[-2:]) if args.trained else shipped)}
    for r in args.rows:
        method, model, label = rows[r]
        for task in args.tasks:
            table.setdefault(label, {})[task] = run_cell(task, method, model, tags[r], args.limit, args.window)
    order = [rows[r][2] for r in rows]  # labels of other --trained runs sort last
    table = {label: table[label] for label in sorted(table, key=lambda l: order.index(l) if l in order else 99)}
    res = {"limit": args.limit, "window": args.window, "tasks": args.tasks, "table": table,
           "machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")}
    (RESULTS / "quality.json").write_text(json.dumps(res, indent=2) + "\n")
    head = "| method | " + " | ".join(f"{t} ({MAIN_METRIC[REGISTRY[t].metric]})" for t in args.tasks) + " |"
    lines = ["# Quality on long-document tasks (same backbone: SmolLM2-135M-Instruct)", "",
             f"First {args.limit} items of each task, greedy, window {args.window} tokens for (a) and (c). "
             "Command: `python benchmarks/quality_table.py --limit "
             f"{args.limit} --rows {' '.join(k for k, v in rows.items() if v[2] in table)}` (row e of a run: `--trained DIR`); per-item predictions in `results/quality/`. Cells: main metric (mean s per item).", "",
             head, "|---|" + "---:|" * len(args.tasks)]
    for label, cells in table.items():
        vals = []
        for t in args.tasks:
            c = cells[t]
            vals.append(f"{c.get(MAIN_METRIC[REGISTRY[t].metric], float('nan')):.3f} ({c.get('seconds', 0):.0f} s)")
        lines.append(f"| {label} | " + " | ".join(vals) + " |")
    (RESULTS / "quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
