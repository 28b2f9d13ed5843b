"""`comet summarize PATH`, `comet ask PATH QUESTION`, `comet plan PATH`.

Parse, call comet_cli.reading, render. The document streams through memory piece by piece;
the answer is generated from the memory plus the final chunk (document tail + instruction).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import click

from comet_cli import console
from comet_cli.modelref import dtype_option

SUMMARIZE_INSTRUCTION = "Summarize the document above in a few sentences."


def _common(f):
    """Options shared by summarize and ask (applied bottom-up, listed top-down in --help)."""
    opts = [
        click.option("--model", "model_dir", type=click.Path(), default=None,
                     help="CoMeT model folder (default: the embedded SmolLM2, converted on first use)."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming text."),
        click.option("--state", "state_file", type=click.Path(dir_okay=False), default=None,
                     help="Memory-state file to write, reuse or resume (default: the cache in $COMET_HOME/states)."),
        click.option("--max-new-tokens", type=click.IntRange(1), default=256, show_default=True,
                     help="Longest answer, in tokens."),
        click.option("--include", multiple=True, metavar="GLOB",
                     help="In a folder, read only files matching GLOB (repeatable)."),
        click.option("--exclude", multiple=True, metavar="GLOB",
                     help="In a folder, skip files and folders matching GLOB (repeatable)."),
        click.option("--password", default=None, help="Password for encrypted PDFs."),
        click.option("--quiet", "-q", is_flag=True, help="No progress display on stderr."),
        click.option("--checkpoint-every", type=click.IntRange(1), default=8, show_default=True,
                     help="Save the state every N chunks so an interrupted read can resume."),
        click.option("--no-cache", is_flag=True,
                     help="Neither reuse nor write a cached state (--state still applies)."),
        click.option("--dry-run", is_flag=True, help="Only print the plan (tokens, chunks, time, memory)."),
        click.option("--device", default="auto", show_default=True,
                     help="Where the model runs: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda, cuda:N."),
        dtype_option("Precision of the model and the memory: bfloat16 reads faster on CPUs with "
                     "AVX512-BF16/AMX and on GPUs (README: Reading huge inputs)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@click.command()
@click.argument("path")
@_common
def summarize(path, **kw):
    """Stream PATH (a file, a folder, or - for stdin) through memory and summarize it.

    Reading leaves a memory-state file; running again on the same input reuses it, and an
    interrupted read continues from its last checkpoint."""
    _run(path, SUMMARIZE_INSTRUCTION, "summary", **kw)


@click.command()
@click.argument("path")
@click.argument("question")
@_common
def ask(path, question, **kw):
    """Stream PATH (a file, a folder, or - for stdin) through memory and answer QUESTION.

    A second question on the same input reuses the saved memory and only runs the question."""
    if not question.strip():
        from comet_cli.errors import InputError
        raise InputError("QUESTION is empty")
    _run(path, question.strip(), "answer", **kw)


@click.command()
@click.argument("path")
@click.option("--model", "model_dir", type=click.Path(), default=None,
              help="CoMeT model folder (default: the embedded SmolLM2).")
@click.option("--include", multiple=True, metavar="GLOB", help="In a folder, read only files matching GLOB.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="In a folder, skip files matching GLOB.")
@click.option("--password", default=None, help="Password for encrypted PDFs.")
@click.option("--max-new-tokens", type=click.IntRange(1), default=256, show_default=True,
              help="Longest answer, in tokens (sizes the final chunk's cache).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--device", default="auto", show_default=True, help="Where the read would run (as for summarize).")
@dtype_option("Precision the read would use (as for summarize).")
def plan(path, model_dir, include, exclude, password, max_new_tokens, as_json, device, dtype):
    """Predict tokens, chunks, reading time and peak memory for PATH, before reading it.

    Time comes from one chunk timed on this machine; memory does not grow with the input."""
    from comet_cli.readers import scan

    sources = scan(path, include, exclude, warn=console.warn)
    _print_plan(path, sources, model_dir, password, max_new_tokens, as_json, include, exclude, device, dtype)


def _print_plan(path, sources, model_dir, password, max_new_tokens, as_json, include=(), exclude=(),
                device="auto", dtype="float32"):
    from comet_cli.modelref import load_model
    from comet_cli.reading.cache import cache_state_path, input_key
    from comet_cli.reading.plan import make_plan

    model, tok, folder = load_model(model_dir, device=device, dtype=dtype)
    p = make_plan(model, tok, sources, password, max_new_tokens, warn=console.warn)
    key = input_key(path, include, exclude)
    if key is not None:
        cached = cache_state_path(model.comet_fingerprint, key)
        p.cached_state = str(cached) if cached.exists() else None
    d = {"path": path, "model": str(folder), **p.as_dict()}
    if as_json:
        console.result_json(d)
        return
    mib = lambda b: f"{b / 2**20:,.1f} MiB"  # noqa: E731
    unknown = "unknown (stdin)"
    lines = [
        f"input        {path}: {p.sources} source(s)" + (f", {p.pages} page(s)" if p.pages else ""),
        f"tokens       ~{p.estimated_tokens:,} (from ~{p.estimated_chars:,} characters)"
        if p.estimated_tokens is not None else f"tokens       {unknown}",
        f"chunks       ~{p.chunks:,} of {p.chunk_size}" if p.chunks is not None else f"chunks       {unknown}",
        f"speed        {p.tokens_per_second:,.0f} tokens/s (one chunk timed on this machine)",
        f"time         ~{_duration(p.predicted_seconds)}" if p.predicted_seconds is not None
        else f"time         {unknown}",
        f"memory       peak ~{mib(p.peak_memory_bytes)} whatever the length: model {mib(p.model_bytes)}, "
        f"state {mib(p.state_bytes)}, one chunk's activations ~{mib(p.chunk_activation_bytes)}, "
        f"answer cache ~{mib(p.answer_cache_bytes)} (process RSS after one chunk {mib(p.measured_rss_bytes)})",
    ]
    if p.cached_state:
        lines.append(f"cached       {p.cached_state} (its questions skip the read)")
    console.result("\n".join(lines))


def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


LOG_EVERY_S = 60.0  # without a terminal (a log file), one progress line per minute of reading


def _run(path, instruction, field, *, model_dir, as_json, state_file, max_new_tokens, include, exclude,
         password, quiet, checkpoint_every, no_cache, dry_run, device, dtype):
    from comet_cli.readers import scan

    t0 = time.monotonic()
    sources = scan(path, include, exclude, warn=console.warn)
    if dry_run:
        _print_plan(path, sources, model_dir, password, max_new_tokens, as_json, include, exclude, device, dtype)
        return
    from comet_cli.modelref import load_model
    from comet_cli.reading.cache import cache_state_path, input_key
    from comet_cli.reading.plan import estimate_size, estimate_tokens
    from comet_cli.reading.session import ReadOptions, read_document
    from comet_models.runtime import chat_frame

    show = console.progress_enabled(quiet)
    model, tok, folder = load_model(model_dir, step=console.info if show else (lambda m: None), device=device,
                                    dtype=dtype)
    prefix_ids, suffix_ids = chat_frame(tok, instruction)

    if state_file is not None:
        target, strict = Path(state_file), True
    else:
        key = None if no_cache else input_key(path, include, exclude)
        target = cache_state_path(model.comet_fingerprint, key) if key else None
        strict = False
    est = estimate_tokens(estimate_size(sources, password)[0]) if show else None

    log_at = time.monotonic() + LOG_EVERY_S if not (show or quiet) else None  # no live bar: plain lines

    with console.make_progress(quiet) as progress:
        task = progress.add_task("reading", total=None if est is None else est + len(prefix_ids), extra="")

        def on_progress(p):
            nonlocal log_at
            name = p.path if len(p.path) <= 32 else "…" + p.path[-31:]
            where = name + (f" p.{p.page}" if p.page else f" l.{p.line}" if p.line else "")
            rate = p.tokens_this_run / p.seconds if p.seconds > 0 else 0
            if log_at is not None and time.monotonic() >= log_at:
                log_at = time.monotonic() + LOG_EVERY_S
                console.info(f"read {p.tokens:,} tokens ({p.chunks:,} chunks), at {where or 'stdin'}, {rate:,.0f} tok/s")
            total = progress.tasks[0].total
            if total is not None and p.tokens > total:
                total = None  # the estimate was low: drop the bar's end rather than show >100 %
            progress.update(task, completed=p.tokens, total=total, description=where or "reading",
                            extra=f"{p.chunks:,} chunks  {rate:,.0f} tok/s")

        opts = ReadOptions(state_file=target, strict=strict, checkpoint_every=checkpoint_every,
                           password=password, folder=os.path.isdir(path) and path != "-", input_path=path,
                           warn=console.warn, on_progress=on_progress,
                           on_step=console.info if show else (lambda m: None))
        res = read_document(model, tok, sources, prefix_ids, opts)
    if show and res.reused:
        console.info(f"reusing memory from {res.state_file} ({res.state.tokens:,} tokens read before)")

    text = _answer(model, tok, res.state, suffix_ids, max_new_tokens, stream=not as_json)
    if as_json:
        console.result_json({
            field: text, "model": str(folder), "tokens_read": res.state.tokens, "chunks": res.state.chunks,
            "sources": [_source_row(r) for r in res.records],
            "seconds": round(time.monotonic() - t0, 3), "reused_state": res.reused,
            "tokens_read_this_run": res.tokens_this_run,
            "state_file": None if res.state_file is None else str(res.state_file),
            "state_sha256": res.sha256,
        })


def _source_row(rec: dict) -> dict:
    row = {"path": rec["path"]}
    for unit in ("pages", "lines"):
        if unit in rec:
            row[unit] = rec[unit]
    row["tokens"] = rec["tokens"]
    if rec.get("skipped"):
        row["skipped"] = rec["skipped"]
    return row


def _answer(model, tok, state, suffix_ids, max_new_tokens, stream: bool) -> str:
    """Generate from the memory; when streaming, write text to stdout as it is decoded."""
    from comet_models.runtime import generate, stop_ids

    ids, shown = [], ""
    for t in generate(model, state, suffix_ids, max_new_tokens, stop=stop_ids(tok), repetition_penalty=1.1):
        ids.append(t)
        text = tok.decode(ids, skip_special_tokens=True)
        # a multi-byte character split across tokens decodes to U+FFFD until it is whole
        if not stream or text.endswith("\ufffd") or not text.startswith(shown):
            continue
        console.result(text[len(shown):], end="")
        shown = text
    text = tok.decode(ids, skip_special_tokens=True).strip()
    if stream:
        rest = tok.decode(ids, skip_special_tokens=True)[len(shown):]
        console.result(rest)
    return text
