"""`--dtype bfloat16` against float32 for reading: speed, next-token loss and pass-key answers.

Three measurements of the shipped default, both precisions in one run on the same machine:
  speed     tokens/s of reading Ulysses text through memory (the work of `comet summarize/ask`),
            the two precisions interleaved, median of --repeats reads of --tokens tokens each;
  loss      next-token loss per chunk index on book windows (benchmarks/chunk_loss.py's measure);
  passkey   `comet eval passkey --dtype bfloat16` on the grid's samples (same seed, keys and filler
            as the float32 rows of benchmarks/results/passkey/), answer by answer against float32.

    python benchmarks/reading_dtype.py                      # -> benchmarks/results/reading_dtype.{json,md}
    python benchmarks/reading_dtype.py --pk-lengths 4096 --pk-samples 1   # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))


def reading_speed(models: dict, ids: list[int], repeats: int) -> dict[str, list[float]]:
    from comet_models.runtime import feed, new_state

    for m in models.values():  # warm-up: first-call allocations and kernel choices
        feed(m, new_state(m), ids[:1024])
    rates = {k: [] for k in models}
    for _ in range(repeats):
        for name, m in models.items():
            t = time.perf_counter()
            feed(m, new_state(m), ids)
            rates[name].append(len(ids) / (time.perf_counter() - t))
    return rates


def passkey_rows(out: Path) -> dict[tuple, dict]:
    lines = out.read_text().splitlines() if out.exists() else []
    return {(r["length"], r["depth"], r["sample"]): r for line in lines for r in json.loads(line)["rows"]}


def run_passkey(args, tag: str) -> dict:
    """bfloat16 rows from `comet eval`, paired with the float32 rows of the same samples."""
    f32_file = RESULTS / "passkey" / f"{tag}.jsonl"
    out = RESULTS / "passkey" / f"{tag}-bfloat16.jsonl"
    cmd = [sys.executable, "-m", "comet_cli.cli", "eval", "passkey", "--dtype", "bfloat16", "--lengths",
           args.pk_lengths, "--depths", "5", "--samples", str(args.pk_samples), "--out", str(out), "--json", "-q"]
    subprocess.run(cmd + (["--model", args.model] if args.model else []), check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    f32, b16 = passkey_rows(f32_file), passkey_rows(out)
    wanted = {int(L) for L in args.pk_lengths.split(",")}
    pairs = [(f32[k], b16[k]) for k in sorted(b16) if k in f32 and k[0] in wanted and k[2] < args.pk_samples]
    cells = {}
    for a, b in pairs:
        c = cells.setdefault(a["length"], {"items": 0, "float32_right": 0, "bfloat16_right": 0, "same_answer": 0})
        c["items"] += 1
        c["float32_right"] += a["correct"]
        c["bfloat16_right"] += b["correct"]
        c["same_answer"] += a["answer"] == b["answer"]
    differ = [{"length": a["length"], "depth": a["depth"], "key": a["key"], "float32": a["answer"],
               "bfloat16": b["answer"]} for a, b in pairs if a["answer"] != b["answer"]]
    return {"float32_rows": str(f32_file.relative_to(ROOT)), "bfloat16_rows": str(out.relative_to(ROOT)),
            "per_length": cells, "answers_that_differ": differ}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="CoMeT folder (default: the embedded default)")
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per timed read")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loss-samples", type=int, default=12)
    ap.add_argument("--pk-lengths", default="4096,16384")
    ap.add_argument("--pk-samples", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS / "reading_dtype"))
    args = ap.parse_args()
    from chunk_loss import book_windows, per_chunk_loss
    from comet_cli.modelref import DTYPES, load_model
    from passkey_grid import trained_tag

    models, tok = {}, None
    for d in DTYPES:
        models[d], tok, folder = load_model(args.model, dtype=d)
    windows = book_windows(tok, 1, args.tokens, seed=11)[0]
    rates = reading_speed(models, windows, args.repeats)
    med = {d: statistics.median(r) for d, r in rates.items()}
    print(f"speed: {med}", file=sys.stderr, flush=True)
    C = models["float32"].comet_config.chunk_size
    wins = book_windows(tok, args.loss_samples, C * 4, seed=3)
    loss = {d: [round(x, 4) for x in per_chunk_loss(m, wins, 4)] for d, m in models.items()}
    print(f"loss: {loss}", file=sys.stderr, flush=True)
    del models
    pk = run_passkey(args, trained_tag(args.model))
    res = {"model": str(folder), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "threads": torch.get_num_threads(), "tokens_per_read": args.tokens, "repeats": args.repeats,
           "tokens_per_s": {d: [round(x, 1) for x in r] for d, r in rates.items()},
           "median_tokens_per_s": {d: round(v, 1) for d, v in med.items()},
           "speedup_bfloat16": round(med["bfloat16"] / med["float32"], 2),
           "loss_per_chunk": loss, "loss_windows": args.loss_samples, "passkey": pk}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(res, args))
    print(render(res, args))


def render(res: dict, args) -> str:
    cmd = "python benchmarks/reading_dtype.py" + (f" --pk-lengths {args.pk_lengths}" if args.pk_lengths != "4096,16384" else "")
    med, loss = res["median_tokens_per_s"], res["loss_per_chunk"]
    lines = ["# Reading in bfloat16 against float32 (shipped default)", "",
             f"Command: `{cmd}`. This machine: CPU kernels {res['cpu_capability']}, {res['threads']} threads, "
             f"{os.cpu_count()} cores; both precisions in one run, interleaved.", "",
             "| | float32 | bfloat16 |", "|---|---:|---:|",
             f"| reading speed, tokens/s (median of {res['repeats']} reads of {res['tokens_per_read']:,} tokens) | "
             f"{med['float32']:,.0f} | {med['bfloat16']:,.0f} ({res['speedup_bfloat16']:.2f}x) |"]
    for k in range(len(loss["float32"])):
        lines.append(f"| next-token loss, chunk {k} ({res['loss_windows']} Ulysses windows), nats | "
                     f"{loss['float32'][k]:.3f} | {loss['bfloat16'][k]:.3f} |")
    for L, c in res["passkey"]["per_length"].items():
        lines.append(f"| pass key at {L:,} tokens, right of {c['items']} (same answer in {c['same_answer']}) | "
                     f"{c['float32_right']} | {c['bfloat16_right']} |")
    lines += ["", "Answers that differ:" if res["passkey"]["answers_that_differ"] else "No pass-key answer differs."]
    lines += [f"- {d['length']:,} tokens, depth {d['depth']}: key {d['key']}, float32 {d['float32']!r}, "
              f"bfloat16 {d['bfloat16']!r}" for d in res["passkey"]["answers_that_differ"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
