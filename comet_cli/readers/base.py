"""The two values every reader deals in (SourceFile, Piece) and how a file's kind is decided.

Kind detection looks at the name first and at most the first 8 KB of content, so that scanning a
folder of thousands of files stays cheap and never reads a whole file.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Callable

from comet_cli.errors import fail

Warn = Callable[[str], None]

SNIFF_BYTES = 8192
STDIN_PATH = "<stdin>"

PDF_SUFFIXES = (".pdf",)
# Formats pymupdf opens page by page besides PDF.
BOOK_SUFFIXES = (".epub", ".mobi", ".fb2", ".xps", ".oxps", ".cbz")
# Gzip archives of many files decompress to a binary container, not text.
ARCHIVE_GZ_SUFFIXES = (".tar.gz", ".tgz")
BINARY_SUFFIXES = frozenset(
    """
    png jpg jpeg gif bmp tif tiff webp ico icns psd heic avif svgz
    zip tar tgz 7z rar bz2 xz zst lz4 lzma z jar war whl egg apk deb rpm dmg iso
    exe dll so dylib o a lib obj bin class pyc pyo pyd wasm elc
    mp3 mp4 m4a m4v wav flac ogg oga opus avi mov mkv webm wmv aac
    ttf otf woff woff2 eot
    sqlite sqlite3 db pkl pickle npy npz pt pth ckpt safetensors gguf h5 hdf5 parquet onnx arrow
    doc docx xls xlsx ppt pptx odt ods odp
    """.split()
)


@dataclass(frozen=True)
class SourceFile:
    """One readable input: a file on disk or stdin.

    `path` is what messages and provenance show: the path as given, the path relative to the
    folder given, or "<stdin>". `kind` is one of "pdf", "book", "text", "gzip", "stdin".
    """

    path: str
    abspath: str | None
    kind: str
    size: int | None


@dataclass(frozen=True)
class Piece:
    """A bounded run of text with its provenance.

    `end` is the resume cursor after this piece: a byte offset into the (decompressed) stream for
    text, gzip and stdin; for pdf and book, the 0-based index of the next page to read. Pass it as
    `start` to `read_source` to continue from here.
    """

    text: str
    path: str
    page: int | None
    line_start: int | None
    line_end: int | None
    end: int


def ignore_warning(message: str) -> None:
    """The default `warn` callback: drop the message."""


def has_suffix(name: str, suffixes) -> bool:
    """True when the lower-cased file name ends with one of `suffixes`."""
    lower = name.lower()
    return any(lower.endswith(s) for s in suffixes)


def suffix_of(name: str) -> str:
    """The last extension of a file name, lower case and without the dot ("" when none)."""
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base.lstrip(".") else ""


def sniff_gzip_head(abspath: str) -> bytes:
    """Up to SNIFF_BYTES of the decompressed start of a gzip file; raises OSError/EOFError/zlib.error."""
    with gzip.open(abspath, "rb") as f:
        return f.read(SNIFF_BYTES)


def classify(abspath: str) -> tuple[str | None, str | None]:
    """Decide how to read a file: returns (kind, None) or (None, why it cannot be read as text).

    Raises OSError when the file cannot be opened (the caller words the error).
    """
    name = abspath.rsplit("/", 1)[-1]
    if has_suffix(name, PDF_SUFFIXES):
        return "pdf", None
    if has_suffix(name, BOOK_SUFFIXES):
        return "book", None
    if has_suffix(name, ARCHIVE_GZ_SUFFIXES):
        return None, "archive"
    with open(abspath, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if head.startswith(b"\x1f\x8b") or has_suffix(name, (".gz",)):
        try:
            inner = sniff_gzip_head(abspath)
        except (OSError, EOFError, zlib.error):
            return None, "corrupt gzip"
        return ("gzip", None) if b"\0" not in inner else (None, "binary")
    if head.startswith(b"%PDF-"):
        return "pdf", None
    if suffix_of(name) in BINARY_SUFFIXES or b"\0" in head:
        return None, "binary"
    return "text", None


def check_start(path: str, start: int) -> None:
    """Reject a negative resume cursor with a message naming the file."""
    if start < 0:
        raise fail(path, f"resume offset must be >= 0, got {start}")


def check_max_chars(max_chars: int) -> None:
    """Pieces need room for at least one character."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
