"""Does reading cost constant memory? Peak RSS and tokens/s of CoMeT vs full attention, by length.

    python benchmarks/constant_memory.py --lengths 10000,100000 --baseline-lengths 2000,4000,8000,16000

Each length runs in a fresh subprocess (so ru_maxrss is that run's peak): the default CoMeT model
(or --model) feeds book text from ../shared/data/books, repeated as needed, chunk by chunk through
models.runtime.feed; the baseline is the same base model with plain full attention, prefilled 512
tokens at a time into an HF KV cache (memory grows with the input; past the base model's 8192
trained positions it still runs but RoPE is extrapolated, so only speed and memory are meaningful).
Writes benchmarks/results/constant_memory.{json,md,png}; existing rows for other lengths are kept,
so the 1M row can be added later with `--lengths 1000000 --baseline-lengths ''`.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOOKS = HERE.parent.parent / "shared" / "data" / "books"
RESULTS = HERE / "results"
PIECE_CHARS = 16384


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def token_pieces(tokenizer, n_tokens: int):
    """Token ids of book text, one piece at a time, n_tokens in all (books repeat as needed)."""
    books = sorted(BOOKS.glob("*.txt"))
    if not books:
        sys.exit(f"{BOOKS}: no books found")
    left = n_tokens
    while left > 0:
        for book in books:
            with open(book, encoding="utf-8", errors="replace") as f:
                while left > 0:
                    text = f.read(PIECE_CHARS)
                    if not text:
                        break
                    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:left]
                    left -= len(ids)
                    yield ids
            if left <= 0:
                return


def worker_comet(model_dir: str | None, n_tokens: int) -> dict:
    from comet_cli.modelref import load_model
    from comet_models.runtime import feed, new_state

    model, tok, folder = load_model(model_dir)
    rss_loaded = rss_bytes()
    state = new_state(model)
    curve, times, next_mark = [], [], 0
    t0 = time.perf_counter()
    for ids in token_pieces(tok, n_tokens):
        state = feed(model, state, ids)
        if state.tokens >= next_mark:
            curve.append((state.tokens, rss_bytes()))
            times.append((state.tokens, round(time.perf_counter() - t0, 3)))
            next_mark += max(n_tokens // 20, 1)
    seconds = time.perf_counter() - t0
    curve.append((state.tokens, rss_bytes()))
    if not times or times[-1][0] != state.tokens:  # the last mark may already be the end (a repeat would read 0 tok/s)
        times.append((state.tokens, round(seconds, 3)))
    return {"method": "comet", "model": str(folder), "tokens": state.tokens, "chunks": state.chunks,
            "seconds": round(seconds, 2), "tokens_per_second": round(state.tokens / seconds, 1),
            "rss_after_load_bytes": rss_loaded, "peak_rss_bytes": peak_rss_bytes(),
            "state_bytes": state.tensor_bytes(), "rss_curve": curve, "time_curve": times,
            # throughput in the first and the last ~5% of the same read: does speed drift with length?
            "window_tokens_per_second": _windows(times)}


def _windows(times) -> dict:
    if len(times) < 4:
        return {}
    (a0, s0), (a1, s1), (b0, t0), (b1, t1) = times[1], times[2], times[-2], times[-1]
    return {"first": round((a1 - a0) / max(s1 - s0, 1e-9), 1), "last": round((b1 - b0) / max(t1 - t0, 1e-9), 1)}


def worker_full_attention(model_dir: str | None, n_tokens: int, prefill: int = 512) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

    from comet_cli.modelref import quiet_transformers, resolve_model_dir

    quiet_transformers()
    folder = resolve_model_dir(model_dir)
    # the CoMeT folder holds the base weights in plain HF naming; load them without memory
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa").eval()
    tok = AutoTokenizer.from_pretrained(folder)
    rss_loaded = rss_bytes()
    cache, done, curve, next_mark = DynamicCache(), 0, [], 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for ids in token_pieces(tok, n_tokens):
            for a in range(0, len(ids), prefill):
                x = torch.tensor([ids[a:a + prefill]])
                model(input_ids=x, past_key_values=cache, use_cache=True, logits_to_keep=1)
                done += x.shape[1]
            if done >= next_mark:
                curve.append((done, rss_bytes()))
                next_mark += max(n_tokens // 20, 1)
    seconds = time.perf_counter() - t0
    curve.append((done, rss_bytes()))
    return {"method": "full_attention", "model": str(folder), "tokens": done, "seconds": round(seconds, 2),
            "tokens_per_second": round(done / seconds, 1), "rss_after_load_bytes": rss_loaded,
            "peak_rss_bytes": peak_rss_bytes(), "beyond_trained_positions": done > model.config.max_position_embeddings,
            "rss_curve": curve}


def run_one(method: str, n: int, model_dir: str | None, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--tokens", str(n)] + (["--model", model_dir] if model_dir else [])
    print(f"[constant_memory] {method} {n:,} tokens ...", file=sys.stderr, flush=True)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"method": method, "tokens": n, "error": f"timed out after {timeout:.0f} s"}
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        why = "killed (out of memory?)" if p.returncode < 0 else tail
        return {"method": method, "tokens": n, "error": why}
    row = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"[constant_memory]   {row['tokens_per_second']} tok/s, peak RSS {row['peak_rss_bytes'] / 2**20:.0f} MiB",
          file=sys.stderr, flush=True)
    return row


def write_results(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: (r["method"], r["tokens"]))
    meta = {"machine": f"{os.cpu_count()} CPU cores", "torch_threads": _threads(),
            "command": "python benchmarks/constant_memory.py " + " ".join(sys.argv[1:]), "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    lines = ["# Constant memory: peak RSS and speed by input length", "",
             f"Machine: {meta['machine']}, {meta['torch_threads']} torch thread(s), CPU only, fp32. "
             f"Produced by `{meta['command']}`.", "",
             "Peak RSS is the process's ru_maxrss (it includes a transient while the weights load); "
             "RSS while reading is the largest of ~20 samples taken during the read, and growth is that "
             "minus the RSS right after loading: what the input length costs.", "",
             "| method | tokens | peak RSS (MiB) | RSS after load (MiB) | RSS while reading (MiB) | growth (MiB) "
             "| tokens/s | seconds | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['tokens']:,} | - | - | - | - | - | - | {r['error']} |")
            continue
        note = "past the 8192 trained positions" if r.get("beyond_trained_positions") else ""
        if r["method"] == "comet":
            note = f"state {r['state_bytes'] / 2**20:.1f} MiB, {r['chunks']:,} chunks"
            w = r.get("window_tokens_per_second")
            if w:
                note += f"; tok/s first 5% {w['first']}, last 5% {w['last']}"
        mib = lambda b: f"{b / 2**20:,.0f}"  # noqa: E731
        reading = max(v for _, v in r["rss_curve"])
        lines.append(f"| {r['method']} | {r['tokens']:,} | {mib(r['peak_rss_bytes'])} | {mib(r['rss_after_load_bytes'])} "
                     f"| {mib(reading)} | {mib(reading - r['rss_after_load_bytes'])} | {r['tokens_per_second']:,} "
                     f"| {r['seconds']:,} | {note} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    _plot(rows, out.with_suffix(".png"))


def _threads() -> int:
    import torch
    return torch.get_num_threads()


def _plot(rows, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[constant_memory] matplotlib missing (pip install matplotlib): no PNG", file=sys.stderr)
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for method, style in (("comet", "o-"), ("full_attention", "s--")):
        ok = [r for r in rows if r["method"] == method and "error" not in r]
        if not ok:
            continue
        a.plot([r["tokens"] for r in ok], [max(v for _, v in r["rss_curve"]) / 2**20 for r in ok], style, label=method)
        b.plot([r["tokens"] for r in ok], [r["tokens_per_second"] for r in ok], style, label=method)
    for ax, title in ((a, "RSS while reading (MiB)"), (b, "tokens/s")):
        ax.set_xscale("log")
        ax.set_xlabel("input tokens")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="10000,100000,1000000", help="CoMeT input lengths in tokens")
    ap.add_argument("--baseline-lengths", default="2000,4000,8000,16000",
                    help="full-attention lengths ('' for none)")
    ap.add_argument("--model", default=None, help="CoMeT model folder (default: the embedded default)")
    ap.add_argument("--timeout", type=float, default=4 * 3600, help="seconds allowed per run")
    ap.add_argument("--out", default=str(RESULTS / "constant_memory"), help="output path without suffix")
    ap.add_argument("--worker", choices=("comet", "full_attention"), help=argparse.SUPPRESS)
    ap.add_argument("--tokens", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        fn = worker_comet if args.worker == "comet" else worker_full_attention
        print(json.dumps(fn(args.model, args.tokens)))
        return
    out = Path(args.out)
    old = json.loads(out.with_suffix(".json").read_text())["rows"] if out.with_suffix(".json").exists() else []
    plan = [("comet", int(n)) for n in args.lengths.split(",") if n] + \
           [("full_attention", int(n)) for n in args.baseline_lengths.split(",") if n]
    rows = [r for r in old if (r["method"], r["tokens"]) not in set(plan)]
    for method, n in plan:
        rows.append(run_one(method, n, args.model, args.timeout))
        write_results(rows, out)  # after every run, so a long benchmark leaves partial results


if __name__ == "__main__":
    main()
