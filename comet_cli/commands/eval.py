"""`comet eval TASK`: one method on one long-document task (or a needle grid: passkey, babilong), scored."""
from __future__ import annotations

import json
import re
import resource
import time
from pathlib import Path

import click

from comet_cli import console
from comet_cli.modelref import dtype_option
from comet_cli.reading.plan import ANSWER_BEAM, AUTO_READS, AUTO_READS_MAX_TOKENS


BABI_FILES = ("qa1_single-supporting-fact_test.txt", "qa2_two-supporting-facts_test.txt")


class SamplesParam(click.ParamType):
    """--samples N (samples 0 to N-1 of every cell) or A-B (samples A to B only): a grid split over
    processes, each with its own range and one shared --out, runs every sample once."""

    name = "N|A-B"

    def convert(self, value, param, ctx) -> range:
        if isinstance(value, range):
            return value
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(value))
        got = None if not m else range(int(m[1])) if m[2] is None else range(int(m[1]), int(m[2]) + 1)
        if not got:
            self.fail(f"{value!r}: expected a count of samples like 4, or a range of sample numbers like 4-5",
                      param, ctx)
        return got


class DepthsParam(click.ParamType):
    """--depths N (N depths from 0 to 1, the grid) or explicit depths like 0.5 or 0.25,0.75 (a dot in each):
    one cell of a long grid costs one read of its length instead of the whole sample's. Converts to
    (tag, depths); the tag goes in each sample's id (N itself for a grid, so earlier --out files resume)."""

    name = "N|D,D.."

    def convert(self, value, param, ctx) -> tuple[str, list[float]]:
        from comet_cli.eval.passkey import depths_grid

        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        if re.fullmatch(r"\d+", text) and int(text) >= 1:
            return text, depths_grid(int(text))
        try:
            got = [float(x) for x in text.split(",")]
        except ValueError:
            got = []
        if not got or not all("." in x and 0.0 <= d <= 1.0 for x, d in zip(text.split(","), got)):
            self.fail(f"{value!r}: expected a count of depths like 5, or depths from 0 to 1 like 0.5 or 0.25,0.75",
                      param, ctx)
        return "at" + ",".join(f"{d:g}" for d in got), got


def _default_data() -> Path:
    from comet_cli.finetune.sources import default_data_dir

    return default_data_dir()


@click.command("eval")
@click.argument("task")
@click.option("--method", type=click.Choice(["comet", "truncate", "sliding", "mapreduce"]), default="comet",
              show_default=True, help="CoMeT memory, or a baseline on the same backbone (see below).")
@click.option("--model", "model_dir", type=click.Path(), default=None,
              help="CoMeT model folder (default: the embedded default). Baselines use its base weights.")
@click.option("--limit", type=click.IntRange(0), default=None, help="Evaluate only the first N items (questions).")
@click.option("--data", "data_dir", type=click.Path(), default=None,
              help="Shared data folder (default: $COMET_DATA or ../shared/data beside the checkout).")
@click.option("--window", type=click.IntRange(64), default=4096, show_default=True,
              help="Context window of the truncate and mapreduce baselines, in tokens.")
@click.option("--max-new-tokens", type=click.IntRange(1), default=128, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Per-item JSONL; items already in it are not run again (resume). A passkey/"
                   "babilong sample in progress also keeps resume points in OUT.partial/ (comet, every "
                   "read, every 32k tokens).")
@click.option("--lengths", default="4096,16384", show_default=True,
              help="passkey/babilong: input lengths in tokens.")
@click.option("--depths", type=DepthsParam(), default="5", show_default=True,
              help="passkey/babilong: N depths from 0 to 1, or the depths to read, like 0.5 or 0.25,0.75 "
                   "(one cell of a 1M grid: one 1M read instead of a whole sample's 3.5M tokens).")
@click.option("--samples", type=SamplesParam(), default="1", show_default=True,
              help="passkey/babilong: samples per cell (0 to N-1), or A-B: only samples A to B, to split "
                   "a grid over processes that share --out.")
@dtype_option("Precision of the model and the memory (bfloat16: faster where the hardware has it).")
@click.option("--reads", type=click.IntRange(1, 8), default=1, show_default=True,
              help="comet: read each document N times, chunk boundaries shifted, and answer from all "
                   "the reads together (as `comet ask --reads`); N times the reading time. One by default, "
                   f"so every length reads alike (`comet ask` reads inputs up to {AUTO_READS_MAX_TOKENS:,} "
                   f"tokens {AUTO_READS} times).")
@click.option("--lead/--no-lead", default=None,
              help="comet: start a document longer than the first chunk's room after a chunk of prose (--no-lead: "
                   "its first tokens share the first chunk with the prompt). Default: as `comet ask`, with one "
                   "read and not with several. Rows read with a lead carry +lead in their id.")
@click.option("--beam", type=click.IntRange(1, 16), default=ANSWER_BEAM, show_default=True, metavar="N",
              help="comet: search short answers whole with a beam of width N, as `comet ask --beam` (1: greedy). "
                   "Rows answered with a beam carry +beamN in their id; passkey/babilong rows also keep the "
                   "answer without it (greedy_answer, greedy_correct).")
@click.option("--json", "as_json", is_flag=True, help="Print the aggregate as one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display on stderr.")
def eval_cmd(task, method, model_dir, limit, data_dir, window, max_new_tokens, out, lengths, depths, samples,
             dtype, reads, lead, beam, as_json, quiet):
    """Score a method on TASK: a long-document task from the shared data, `passkey` or `babilong`.

    `comet eval list` shows the tasks. Methods (greedy, same chat prompt): comet (the
    document streams through memory; short answers searched with --beam, as `comet ask`),
    truncate (full attention on head + tail within --window), sliding (attention sinks + recent tokens at CoMeT's memory budget), mapreduce
    (answer per --window piece, then over the notes).

    \b
    Examples:
      comet eval qmsum --limit 5
      comet eval qmsum --limit 5 --method truncate --model base-untrained
      comet eval passkey --lengths 4096,16384,65536 --depths 5 --out pk.jsonl
      comet eval passkey --lengths 1048576 --depths 0.5 --samples 1-1 --out pk1m.jsonl
      comet eval babilong --lengths 4096,16384 --samples 4 --method sliding
    """
    from comet_cli.eval.tasks import TASKS, get_task

    if task == "list":
        for name, spec in TASKS.items():
            console.result(f"{name:18} {spec.metric:6} {spec.description}")
        console.result(f"{'passkey':18} {'acc':6} pass-key retrieval over --lengths x --depths (book filler)")
        console.result(f"{'babilong':18} {'acc':6} bAbI qa1/qa2 facts hidden in book text, --lengths x --depths")
        return
    grid_task = task in ("passkey", "babilong")
    if not grid_task:
        get_task(task)  # unknown task: one-line error before loading anything
    data = Path(data_dir) if data_dir else _default_data()
    from comet_cli.modelref import load_model

    with console.err.status("loading model", spinner="dots") as status:
        model, tok, folder = load_model(model_dir, step=status.update, dtype=dtype)
    from comet_cli.eval.methods import Answerer

    ans = Answerer(model, tok, method, window=window, max_new_tokens=max_new_tokens, reads=reads, lead=lead, beam=beam)
    done = _read_done(Path(out)) if out else {}
    if grid_task:
        rows = _grid(task, ans, data, lengths, depths, samples, done, out, quiet)
        from comet_cli.eval.passkey import summarize_grid

        grid = summarize_grid(rows)
        summary = {"task": task, "method": method, "dtype": dtype, "grid": grid, "items": len(rows)}
        text = "\n".join(f"{L:>9,} tokens: " + "  ".join(f"{d:.2f}:{a:.0%}" for d, a in ds.items())
                         for L, ds in grid.items())
    else:
        rows = _task(ans, task, data, limit, done, out, quiet)
        from comet_cli.eval.metrics import aggregate

        scores = aggregate([r["scores"] | {"seconds": r["seconds"]} for r in rows])
        summary = {"task": task, "method": method, "dtype": dtype, **{k: round(v, 4) for k, v in scores.items()},
                   "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
        text = "  ".join(f"{k} {v}" for k, v in summary.items())
    summary["model"] = str(folder)
    if reads > 1 and method == "comet":
        summary["reads"] = reads
    console.result_json(summary) if as_json else console.result(text)


def _read_done(path: Path) -> dict:
    if not path.is_file():
        return {}
    done = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        try:
            row = json.loads(line)
            done[row["id"]] = row
        except (ValueError, KeyError):
            from comet_cli.errors import DataError

            raise DataError(f"{path}:{lineno}: not a result line of `comet eval --out` (delete it or pick another --out)")
    return done


def _append(out: str | None, row: dict) -> None:
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


def _task(ans, task, data, limit, done, out, quiet) -> list[dict]:
    from comet_cli.eval.scoring import score_item
    from comet_cli.eval.tasks import load_task

    items = list(load_task(task, data, limit))
    rows = []
    with console.make_progress(quiet=quiet) as progress:
        bar = progress.add_task(f"{task} ({ans.method})", total=len(items), extra="")
        for item in items:
            rid = f"{task}:{ans.run_tag}:{item.item_id}"
            if rid not in done:
                t0 = time.time()
                pred = ans.answer(item)
                done[rid] = {"id": rid, "task": task, "method": ans.method, "item": item.item_id,
                             "prediction": pred, "scores": score_item(item, pred),
                             "seconds": round(time.time() - t0, 2),
                             "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
                _append(out, done[rid])
                if progress.disable and not quiet:  # no live bar (a log file): one line per item
                    console.info(f"{task} ({ans.method}) {len(rows) + 1}/{len(items)} {item.item_id}: "
                                 f"{done[rid]['seconds']:.0f} s")
            rows.append(done[rid])
            progress.update(bar, advance=1)
    return rows


def _grid(task, ans, data, lengths, depths, samples, done, out, quiet) -> list[dict]:
    from comet_cli.errors import InputError
    from comet_cli.eval.passkey import run_sample
    from comet_cli.eval.resume import SampleResume

    try:
        sizes = [int(x) for x in str(lengths).split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--lengths {lengths!r}: expected comma-separated token counts like 4096,16384") from None
    books = sorted(str(p) for p in (data / "books").glob("*.txt"))
    if not books:
        from comet_cli.errors import DataError

        raise DataError(f"{data / 'books'}: no book .txt files for the filler text")
    tasks = None
    if task == "babilong":
        from comet_cli.finetune.synthetic import BabiTask

        tasks = [BabiTask(data / "babi" / "en" / f) for f in BABI_FILES]
    rows = []
    with console.make_progress(quiet=quiet) as progress:
        bar = progress.add_task(f"{task} ({ans.method})", total=len(sizes) * len(samples), extra="")
        log = progress.disable and not quiet  # no live bar (a log file): the same news as plain lines

        def note(msg: str) -> None:
            progress.update(bar, extra=msg)
            if log:
                console.info(f"{task} ({ans.method}) sample {s}, {msg}")

        for length in sizes:
            for s in samples:
                rid = f"{task}:{ans.run_tag}:{length}:{depths[0]}:{s}"
                if rid not in done:
                    resume = SampleResume(f"{out}.partial", rid) if out and ans.method == "comet" else None
                    got = run_sample(ans, books, length, depths[1], 0, s, resume=resume,
                                     progress=note, kind=task, tasks=tasks)
                    done[rid] = {"id": rid, "rows": got}
                    _append(out, done[rid])
                    note(f"length {length:,}: {sum(r['correct'] for r in got)}/{len(got)} depths right")
                rows += done[rid]["rows"]
                progress.update(bar, advance=1)
    return rows
