"""Document readers: files, folders and stdin as bounded text pieces with provenance.

Everything streams: no reader holds a whole document, so a 1 GB log or a 500-page PDF is read
in constant memory. Typical use::

    for piece in iter_pieces("logs/", include=["*.log", "*.gz"], warn=console.warn):
        feed(piece.text)  # piece.path, piece.page / piece.line_start, piece.end to resume
"""
from .base import Piece, SourceFile
from .scan import scan
from .source import DEFAULT_MAX_CHARS, count_estimate, iter_pieces, prefix_sha256, read_source

__all__ = [
    "DEFAULT_MAX_CHARS",
    "Piece",
    "SourceFile",
    "count_estimate",
    "iter_pieces",
    "prefix_sha256",
    "read_source",
    "scan",
]
