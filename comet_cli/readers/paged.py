"""PDFs and e-books (epub, mobi, fb2, xps, cbz) read page by page through pymupdf.

Only one page's text is held at a time. A page longer than `max_chars` becomes several pieces,
cut after the last newline that fits (or at `max_chars` inside a very long line).
"""
from __future__ import annotations

import hashlib
from typing import Iterator

from comet_cli.errors import fail

from .base import Piece, SourceFile, Warn

# Pages `count_estimate` extracts to estimate a document's characters.
SAMPLE_PAGES = 8


def read_paged(
    src: SourceFile, start: int, password: str | None, warn: Warn, max_chars: int
) -> Iterator[Piece]:
    """Pieces of a paged document from page index `start` (0-based).

    Every piece but the last of a page has `end` = that page's index, so resuming from it reads
    the page again from its beginning; the last piece has `end` = the next page's index.
    Pages without text are skipped; the image-only ones are named in one warning at the end.
    """
    doc = open_document(src, password)
    image_only: list[int] = []
    failed: list[int] = []
    failure = ""
    found_text = False
    try:
        for index in range(start, doc.page_count):
            try:
                page = doc.load_page(index)
                text = page.get_text()
            except Exception as e:  # pymupdf raises plain RuntimeError/ValueError on damaged pages
                failed.append(index + 1)
                failure = failure or str(e)
                continue
            if not text.strip():
                # A blank page (a verso, a section break) is expected; a scanned one is worth a word.
                if _has_images(page):
                    image_only.append(index + 1)
                continue
            found_text = True
            parts = split_page(text, max_chars)
            for k, part in enumerate(parts):
                end = index + 1 if k == len(parts) - 1 else index
                yield Piece(part, src.path, index + 1, None, None, end)
        pages = doc.page_count
    finally:
        doc.close()
    if failed:
        warn(f"{src.path}: {_pages_phrase(failed)} could not be read ({failure}); skipped")
    if not found_text and start == 0:
        raise fail(
            src.path,
            f"no text layer on any of its {pages} page(s) (scanned or image-only?); "
            "run OCR on it first, e.g. `ocrmypdf IN.pdf OUT.pdf`",
        )
    if image_only:
        verb = "has" if len(image_only) == 1 else "have"
        warn(f"{src.path}: {_pages_phrase(image_only)} {verb} no text layer (image-only); skipped")


def open_document(src: SourceFile, password: str | None, need_text: bool = True):
    """Open a pdf/book with pymupdf, authenticated; InputError when that is impossible.

    With `need_text=False` an encrypted document is returned unauthenticated when no password is
    given (its page count is still known), for estimates.
    """
    import pymupdf

    # MuPDF prints repair notes and errors to stderr by default, and library code never prints;
    # its messages are read back with mupdf_warnings() and put in our errors instead.
    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.reset_mupdf_warnings()
    label = "PDF" if src.kind == "pdf" else "document"
    try:
        doc = pymupdf.open(src.abspath, filetype="pdf" if src.kind == "pdf" else None)
    except Exception as e:  # FileDataError, FileNotFoundError, RuntimeError, by version
        raise fail(src.path, f"cannot open {label}: {_mupdf_reason(e)}") from None
    if doc.needs_pass:
        if password is None:
            if not need_text:
                return doc
            doc.close()
            raise fail(src.path, f"encrypted {label}; pass --password")
        if not doc.authenticate(password):
            doc.close()
            raise fail(src.path, f"wrong password for encrypted {label}")
    if doc.page_count == 0:
        doc.close()
        raise fail(src.path, f"cannot open {label}: no pages ({_mupdf_reason(None)})")
    return doc


def split_page(text: str, max_chars: int) -> list[str]:
    """Cut one page's text into parts of at most `max_chars`, after newlines where possible."""
    parts = []
    while len(text) > max_chars:
        cut = text.rfind("\n", 0, max_chars) + 1 or max_chars
        parts.append(text[:cut])
        text = text[cut:]
    if text:
        parts.append(text)
    return parts


def prefix_sha256_paged(src: SourceFile, end: int, password: str | None = None) -> str:
    """sha256 of the text of the first `end` pages, each page's text followed by a form feed."""
    h = hashlib.sha256()
    doc = open_document(src, password)
    try:
        for index in range(min(end, doc.page_count)):
            h.update(doc.load_page(index).get_text().encode("utf-8"))
            h.update(b"\f")
    finally:
        doc.close()
    return h.hexdigest()


def estimate_paged(src: SourceFile, password: str | None = None) -> tuple[int | None, int | None]:
    """(approximate characters, pages): the mean text length of a few evenly spread pages
    times the page count. Characters are None for an encrypted document without its password.
    """
    doc = open_document(src, password, need_text=False)
    try:
        pages = doc.page_count
        if doc.needs_pass:
            return None, pages
        count = min(SAMPLE_PAGES, pages)
        picks = sorted({round(k * (pages - 1) / max(count - 1, 1)) for k in range(count)})
        sampled = sum(len(doc.load_page(i).get_text()) for i in picks)
    finally:
        doc.close()
    return round(sampled / len(picks) * pages), pages


def _has_images(page) -> bool:
    try:
        return bool(page.get_image_info())
    except Exception:  # an unreadable image list: say nothing rather than guess
        return False


def _pages_phrase(pages: list[int]) -> str:
    """[3, 4, 5, 9] -> "pages 3-5, 9"; [2] -> "page 2"."""
    runs: list[str] = []
    first = prev = pages[0]
    for p in pages[1:] + [None]:
        if p is not None and p == prev + 1:
            prev = p
            continue
        runs.append(str(first) if first == prev else f"{first}-{prev}")
        if p is not None:
            first = prev = p
    if len(pages) == 1:
        return f"page {pages[0]}"
    return f"pages {', '.join(runs)}"


def _mupdf_reason(exc: Exception | None) -> str:
    """MuPDF's first complaint ("cannot find startxref"), which says more than the exception."""
    import pymupdf

    for line in pymupdf.TOOLS.mupdf_warnings().splitlines():
        line = line.strip()
        if line:
            return line.removeprefix("format error: ") + "; damaged or not a valid file"
    return str(exc) if exc is not None else "damaged or empty file"
