"""Byte streams (text files, gzip logs, stdin) cut into bounded, resumable text pieces.

Where a piece ends is a function of the bytes from where it starts, and nothing else: from a
start position, look at the next `4 * max_chars` bytes (the most that `max_chars` characters can
take in UTF-8), find the longest prefix of at most `max_chars` characters, and cut after its last
newline, or at the character limit when a line is longer than that. Reading from 0 and reading
from a previous piece's `end` therefore give the same later pieces, however the stream arrives
in blocks. Memory stays at a few blocks whatever the file or line length.
"""
from __future__ import annotations

import codecs
import gzip
import hashlib
import sys
import zlib
from typing import BinaryIO, Callable, Iterator

from comet_cli.errors import fail

from .base import Piece, SourceFile, Warn

BLOCK_BYTES = 1 << 16
# gzip.open raises these on a damaged or truncated stream.
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


def read_text(src: SourceFile, start: int, warn: Warn, max_chars: int) -> Iterator[Piece]:
    """Pieces of a text file or gzip log from byte `start` of its (decompressed) content."""
    try:
        f = gzip.open(src.abspath, "rb") if src.kind == "gzip" else open(src.abspath, "rb")
    except PermissionError:
        raise fail(src.path, "permission denied") from None
    except OSError as e:
        raise fail(src.path, e.strerror or str(e)) from None
    with f:
        yield from split_stream(_guarded_reader(src, f), src.path, start, warn, max_chars)


def read_stdin(start: int, warn: Warn, max_chars: int) -> Iterator[Piece]:
    """Pieces of whatever is piped to stdin, read in blocks as it arrives."""
    stream = sys.stdin
    if stream is None:
        raise fail("<stdin>", "stdin is closed")
    if stream.isatty():
        raise fail("<stdin>", "stdin is a terminal; pipe a document in, e.g. `cat FILE | comet ... -`")
    # Text wrappers expose the bytes underneath; a binary stream is used as it is. read1 hands
    # over what a pipe has now (`tail -f app.log | comet ...`) instead of waiting for a full block.
    raw = getattr(stream, "buffer", stream)
    read = getattr(raw, "read1", raw.read)
    produced = False
    for piece in split_stream(read, "<stdin>", start, warn, max_chars):
        produced = True
        yield piece
    if not produced and start == 0:
        raise fail("<stdin>", "no input on stdin")


def split_stream(
    read: Callable[[int], bytes], path: str, start: int, warn: Warn, max_chars: int
) -> Iterator[Piece]:
    """Cut a binary stream into pieces of at most `max_chars` characters, from byte `start`.

    `read(n)` returns up to n bytes and b"" at the end. The bytes before `start` are read and
    only counted, so line numbers stay right after a resume.
    """
    line = 1 + _skip(read, start, path)
    window = 4 * max_chars
    block = max(BLOCK_BYTES, window)
    offset = start
    buf, pos, eof = b"", 0, False
    warned = False
    while True:
        if len(buf) - pos < window and not eof:
            data = read(block)
            buf, pos = buf[pos:] + data, 0
            eof = not data
            continue
        if pos == len(buf):
            return
        w = buf[pos : pos + window]
        cut = _cut(w, max_chars, at_end=eof and pos + len(w) == len(buf))
        raw = w[:cut]
        pos += cut
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            if not warned:
                warned = True
                warn(f"{path}: not valid UTF-8; decoded with replacement")
        if offset == 0 and text.startswith("\ufeff"):
            text = text[1:]
        newlines = raw.count(b"\n")
        line_end = line + newlines - (1 if raw.endswith(b"\n") else 0)
        offset += cut
        yield Piece(text, path, None, line, line_end, offset)
        line += newlines


def _cut(w: bytes, max_chars: int, at_end: bool) -> int:
    """Where the piece starting at `w` ends, in bytes (at least 1 for a non-empty `w`)."""
    limit = _char_limit(w, max_chars)
    if limit == 0 or (at_end and limit == len(w)):
        return len(w)
    newline = w.rfind(b"\n", 0, limit)
    return newline + 1 if newline >= 0 else limit


def _char_limit(w: bytes, max_chars: int) -> int:
    """Bytes in the longest prefix of `w` that holds at most `max_chars` whole characters."""
    if w.isascii():
        return min(len(w), max_chars)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(w, final=False)
    except UnicodeDecodeError:
        # Invalid UTF-8 decodes to at most one character per byte, so a byte count bounds the
        # characters; step back off continuation bytes so a valid character is not split.
        limit = min(len(w), max_chars)
        back = limit
        while back > 1 and back > limit - 3 and back < len(w) and 0x80 <= w[back] < 0xC0:
            back -= 1
        return back
    if len(text) <= max_chars:
        return len(w) - len(decoder.getstate()[0])
    return len(text[:max_chars].encode("utf-8"))


def _skip(read: Callable[[int], bytes], start: int, path: str) -> int:
    """Read and drop the first `start` bytes; return how many newlines they held."""
    newlines, left = 0, start
    while left > 0:
        data = read(min(left, 1 << 20))
        if not data:
            raise fail(
                path,
                f"resume offset {start} is past the end ({start - left} bytes); "
                "the file was truncated or replaced since it was read",
            )
        newlines += data.count(b"\n")
        left -= len(data)
    return newlines


def _guarded_reader(src: SourceFile, f: BinaryIO) -> Callable[[int], bytes]:
    """f.read, with damaged-stream and I/O errors turned into one-line InputErrors."""
    done = 0

    def read(n: int) -> bytes:
        nonlocal done
        try:
            data = f.read(n)
        except _GZIP_ERRORS as e:
            what = "gzip stream is damaged" if src.kind == "gzip" else "read failed"
            raise fail(src.path, f"{what} after {done} bytes ({e})") from None
        done += len(data)
        return data

    return read


def prefix_sha256_text(src: SourceFile, end: int) -> str:
    """sha256 of the first `end` bytes of a text or gzip file (fewer if the file is shorter)."""
    h = hashlib.sha256()
    try:
        opener = gzip.open if src.kind == "gzip" else open
        with opener(src.abspath, "rb") as f:
            read = _guarded_reader(src, f)
            left = end
            while left > 0:
                data = read(min(left, 1 << 20))
                if not data:
                    break
                h.update(data)
                left -= len(data)
    except OSError as e:
        raise fail(src.path, e.strerror or str(e)) from None
    return h.hexdigest()


def estimate_text(src: SourceFile) -> tuple[int | None, int | None]:
    """Approximate characters of a text or gzip file without reading it: (chars, None).

    Text: the file size. Gzip: the trailer's ISIZE (uncompressed size mod 2**32), or None when it
    is smaller than the compressed file, a sign of a stream over 4 GiB or of several members.
    """
    if src.kind != "gzip":
        return src.size, None
    try:
        with open(src.abspath, "rb") as f:
            f.seek(-4, 2)
            isize = int.from_bytes(f.read(4), "little")
    except OSError:
        return None, None
    return (isize if src.size is not None and isize >= src.size else None), None
