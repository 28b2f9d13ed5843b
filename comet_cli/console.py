"""The only place that prints: results to stdout, progress and diagnostics to stderr."""
from __future__ import annotations

import json
import sys

from rich.console import Console

# No fixed file: rich then looks up sys.stdout / sys.stderr at each write, so redirection
# (tests, pipes) is honoured.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def result(text: str, end: str = "\n") -> None:
    """Write a result to stdout, unstyled (safe to pipe)."""
    sys.stdout.write(text + end)
    sys.stdout.flush()


def result_json(obj) -> None:
    """Write one JSON object to stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}", markup=True, highlight=False)


def info(message: str) -> None:
    err.print(message, markup=False, highlight=False)


def error(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)


def progress_enabled(quiet: bool = False) -> bool:
    """Progress bars only on an interactive stderr and without --quiet."""
    return (not quiet) and sys.stderr.isatty()


def make_progress(quiet: bool = False, transient: bool = False):
    """A rich Progress on stderr with tokens/s and ETA columns; disabled when not a TTY."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not progress_enabled(quiet),
        transient=transient,
    )
