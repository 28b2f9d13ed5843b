"""Which chunk layout suits the embedded SmolLM2-135M on this CPU?

Measures ingest tokens/s of the converted default model for several layouts (chunk size,
global slots, temp stride, FIFO budget) in one run, next to the base model's own forward on
plain chunks of the same text length (no memory), so the ratio is the memory's overhead.

    python benchmarks/layout_sweep.py            # writes benchmarks/results/layout_sweep.{json,md}
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT.parent / "shared" / "data" / "books" / "moby_dick_pg2701.txt"
LAYOUTS = [
    dict(chunk_size=256, global_slots=16, temp_stride=16, temp_budget=32),
    dict(chunk_size=512, global_slots=32, temp_stride=16, temp_budget=64),
    dict(chunk_size=512, global_slots=64, temp_stride=8, temp_budget=128),
    dict(chunk_size=1024, global_slots=32, temp_stride=16, temp_budget=64),
    dict(chunk_size=2048, global_slots=64, temp_stride=16, temp_budget=128),
]


def tokens(tok, n):
    text = BOOK.read_text(encoding="utf-8")[: n * 8]
    return tok(text, add_special_tokens=False)["input_ids"][:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=4096, help="tokens fed per layout (after one warm-up chunk)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "layout_sweep"))
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    from comet_cli.modelref import quiet_transformers
    quiet_transformers()
    from comet_models.convert import convert_model, load_comet, load_source
    from comet_models.runtime import feed, new_state
    import tempfile

    base, tok = load_source(None)
    all_ids = tokens(tok, 3 * max(l["chunk_size"] for l in LAYOUTS) + args.tokens)
    rows = []
    for lay in LAYOUTS:
        C = lay["chunk_size"]
        # one warm-up chunk, then at least --tokens (and at least 2 full chunks) measured
        n_meas = max(args.tokens // C, 2) * C
        ids = all_ids[: C + 1 + n_meas]
        # base model, plain causal chunks of C tokens, no memory
        with torch.inference_mode():
            base.model(input_ids=torch.tensor([ids[:C]]))
            t = time.perf_counter()
            for a in range(C + 1, C + 1 + n_meas, C):
                base.model(input_ids=torch.tensor([ids[a:a + C]]))
            base_tps = n_meas / (time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as d:
            convert_model(None, Path(d) / "m", layout=lay)
            model, _ = load_comet(Path(d) / "m")
            st = feed(model, new_state(model), ids[: C + 1])  # warm-up: one chunk closed
            t = time.perf_counter()
            n = n_meas
            st = feed(model, st, ids[C + 1: C + 1 + n] + [0])  # +1 so the last measured chunk closes
            tps = n / (time.perf_counter() - t)
            s = lay["temp_stride"]
            positions = 2 * lay["global_slots"] + lay["temp_budget"] + C + -(-C // s)
            rows.append({**lay, "positions_per_chunk": positions, "position_overhead": round(positions / C, 3),
                         "comet_tokens_per_s": round(tps, 1), "base_tokens_per_s": round(base_tps, 1),
                         "speed_ratio": round(tps / base_tps, 3), "state_mib": round(st.tensor_bytes() / 2**20, 2)})
            print(rows[-1], flush=True)
            del model
    meta = {"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "tokens": args.tokens}
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = ["| chunk | global | stride | FIFO | positions/chunk | CoMeT tok/s | base tok/s | ratio | state MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['chunk_size']} | {r['global_slots']} | {r['temp_stride']} | {r['temp_budget']} | "
                     f"{r['positions_per_chunk']} ({r['position_overhead']}x) | {r['comet_tokens_per_s']} | "
                     f"{r['base_tokens_per_s']} | {r['speed_ratio']} | {r['state_mib']} |")
    Path(args.out + ".md").write_text(f"Machine: {meta}\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
