"""Can a model trained with 256-token chunks read with larger ones? Fewer chunks mean fewer gated
writes between a pass key and the question (4x fewer at 1,024), which would stretch the memory's reach
if the write itself carried over to the larger chunk.

Each variant is the shipped default's converted folder with only `chunk_size` changed (weights are
linked, the memory file's layout metadata rewritten; no weight has a chunk-size-dependent shape), then
the grid's own sample: `comet eval passkey --lengths 16384 --depths 5 --samples 1`.

    python benchmarks/inference_chunk.py --chunks 256,512,1024
    # -> benchmarks/results/inference_chunk/c<N>.16k.jsonl and inference_chunk.{json,md}
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "inference_chunk"


def variant(src: Path, chunk: int, dst: Path) -> Path:
    """`src` with chunk_size = `chunk`: weights linked, config and memory metadata rewritten."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.name not in ("config.json", "comet_memory.safetensors"):
            (dst / f.name).symlink_to(f.resolve())
    cfg = json.loads((src / "config.json").read_text())
    cfg["comet"]["chunk_size"] = chunk
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    with safe_open(str(src / "comet_memory.safetensors"), framework="pt") as f:
        md, sd = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    layout = json.loads(md["comet"])
    layout["chunk_size"] = chunk
    save_file(sd, str(dst / "comet_memory.safetensors"), metadata={**md, "comet": json.dumps(layout)})
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", default="256,512,1024")
    ap.add_argument("--length", type=int, default=16384)
    args = ap.parse_args()
    from comet_models.convert import ensure_default_model

    src = Path(ensure_default_model())
    OUT.mkdir(parents=True, exist_ok=True)
    trained_chunk = json.loads((src / "config.json").read_text())["comet"]["chunk_size"]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="comet-chunk-") as tmp:  # variants never land in the repo
        for c in map(int, args.chunks.split(",")):
            out = OUT / f"c{c}.{args.length // 1024}k.jsonl"
            model = src if c == trained_chunk else variant(src, c, Path(tmp) / f"c{c}")
            cmd = [sys.executable, "-m", "comet_cli.cli", "eval", "passkey", "--model", str(model), "--lengths",
                   str(args.length), "--depths", "5", "--samples", "1", "--out", str(out), "--json", "-q"]
            subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            rows[c] = [r for line in out.read_text().splitlines() for r in json.loads(line)["rows"]]
    res = {"command": "python benchmarks/inference_chunk.py " + " ".join(sys.argv[1:]), "length": args.length,
           "rows": {str(c): [{k: r[k] for k in ("depth", "key", "answer", "correct")} for r in rs]
                    for c, rs in rows.items()}}
    (OUT.parent / "inference_chunk.json").write_text(json.dumps(res, indent=2) + "\n")
    depths = [r["depth"] for r in next(iter(rows.values()))]
    md = ["# Reading the shipped default (trained at 256-token chunks) with other chunk sizes", "",
          f"`{res['command']}`: the grid's {args.length:,}-token sample (one key, five depths); "
          "cells are the greedy answer, bold when right.", "",
          "| chunk | " + " | ".join(f"depth {d:.2f}" for d in depths) + " | right |", "|---:|" + "---|" * len(depths) + "---:|"]
    for c, rs in rows.items():
        cells = [f"**{r['answer'][:12]}**" if r["correct"] else r["answer"][:12].replace("\n", " ") for r in rs]
        md.append(f"| {c} | " + " | ".join(cells) + f" | {sum(r['correct'] for r in rs)}/{len(rs)} |")
    (OUT.parent / "inference_chunk.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
