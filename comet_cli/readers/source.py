"""One entry point per question a command asks of its input: what to read, its pieces, whether
it only grew since last time, and roughly how big it is."""
from __future__ import annotations

import os
from typing import Iterator, Sequence

from comet_cli.errors import InputError, fail

from .base import Piece, SourceFile, Warn, check_max_chars, check_start, ignore_warning
from .paged import estimate_paged, prefix_sha256_paged, read_paged
from .scan import scan
from .text import estimate_text, prefix_sha256_text, read_stdin, read_text

DEFAULT_MAX_CHARS = 16384
PAGED_KINDS = ("pdf", "book")
STREAM_KINDS = ("text", "gzip")


def read_source(
    src: SourceFile,
    start: int = 0,
    password: str | None = None,
    warn: Warn | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Iterator[Piece]:
    """Stream one source as pieces of at most `max_chars` characters, in order.

    `start` is a previous `Piece.end`: a byte offset for text, gzip and stdin, a page index for
    pdf and book. Piece boundaries depend only on the content, so reading from a piece's `end`
    gives exactly the pieces that followed it in a read from 0. `password` opens encrypted PDFs.
    Problems with the file raise InputError ("PATH: reason"); recoverable ones (invalid UTF-8,
    image-only pages) go to `warn`, once per file.
    """
    check_max_chars(max_chars)
    check_start(src.path, start)
    warn = warn or ignore_warning
    if src.kind in STREAM_KINDS:
        return read_text(src, start, warn, max_chars)
    if src.kind == "stdin":
        return read_stdin(start, warn, max_chars)
    if src.kind in PAGED_KINDS:
        return read_paged(src, start, password, warn, max_chars)
    raise ValueError(f"unknown source kind {src.kind!r}")


def iter_pieces(
    path: str,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    password: str | None = None,
    warn: Warn | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Iterator[Piece]:
    """All pieces of a file, a folder or stdin ("-"): `scan` then `read_source` on each file.

    In a folder, a file that fails (damaged, encrypted without a password) is skipped with a
    warning so one bad file does not stop the rest; InputError only when no file gave text.
    A single file's errors are raised as they are.
    """
    warn = warn or ignore_warning
    sources = scan(path, include, exclude, warn)
    if path == "-" or not os.path.isdir(path):
        yield from read_source(sources[0], password=password, warn=warn, max_chars=max_chars)
        return
    read_any = False
    for src in sources:
        try:
            for piece in read_source(src, password=password, warn=warn, max_chars=max_chars):
                read_any = True
                yield piece
        except InputError as e:
            warn(f"{e} (skipped)")
    if not read_any:
        raise fail(path, "no file in the folder could be read; see the warnings")


def prefix_sha256(src: SourceFile, end: int, password: str | None = None) -> str:
    """sha256 of what a read up to `end` covered: the first `end` bytes of a text or gzip
    stream (decompressed), or the text of the first `end` pages of a pdf/book (each page's text
    followed by a form feed). Compare it with a stored value to check that a file only grew.
    A file now shorter than `end` hashes what is left, so the comparison fails as it should.
    """
    check_start(src.path, end)
    if src.kind in STREAM_KINDS:
        return prefix_sha256_text(src, end)
    if src.kind in PAGED_KINDS:
        return prefix_sha256_paged(src, end, password)
    raise fail(src.path, "stdin cannot be read twice; save it to a file to resume")


def count_estimate(src: SourceFile, password: str | None = None) -> tuple[int | None, int | None]:
    """A cheap size estimate, (approximate characters, pages), None where unknown.

    Text: the file size in bytes. Gzip: the uncompressed size from the gzip trailer. PDF/book:
    the page count and the mean length of a few sampled pages times it. Stdin: (None, None).
    """
    if src.kind in STREAM_KINDS:
        return estimate_text(src)
    if src.kind in PAGED_KINDS:
        return estimate_paged(src, password)
    return None, None
