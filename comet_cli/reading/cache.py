"""Where memory states live, and how a saved state is matched against the input again.

A cached state is found by an *input key*: sha256 over the resolved input path and the
include/exclude globs. It is not a hash of the whole content on purpose: hashing a 1 GB log
folder to find its state would cost as much as reading it, and a key over sizes would change
every time a log grows, so the appended lines could never be read on top of the old state.
Instead the state's `meta` records, per source, the resume cursor and the sha256 of everything
read so far (`prefix_sha256`); `check_sources` compares those with the files on disk and says
whether the state is complete, can be continued (a read was interrupted, or files only grew),
or belongs to other content.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from comet_cli.readers import SourceFile

# Version of the `meta` layout written by session.py; a state with another one is re-read.
META_VERSION = 1
META_KIND = "comet-read"


def input_key(path: str, include=(), exclude=()) -> str | None:
    """Cache key of a read of `path` with these globs; None for stdin (never cached)."""
    if path == "-":
        return None
    ident = {"path": os.path.realpath(path), "include": list(include), "exclude": list(exclude)}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


def cache_state_path(fingerprint: str, key: str) -> Path:
    """$COMET_HOME/states/<model fingerprint>/<input key>.safetensors"""
    from comet_models.convert import comet_home

    return comet_home() / "states" / fingerprint / f"{key}.safetensors"


def shifted_path(final: Path | None, shift: int, lead: bool = False) -> Path | None:
    """Where a read with chunk boundaries shifted by `shift` tokens keeps its state: beside the plain
    read's (`x.safetensors` -> `x.shift85.safetensors`), so each read reuses and resumes on its own. A
    read with the lead (`--reads 1`, or one read of a long input) keeps its own, `x.lead.safetensors`, so
    `--reads 1` and `--reads 3` on the same input do not overwrite each other's state."""
    tags = (f".shift{shift}" if shift else "") + (".lead" if lead else "")
    return final.with_name(f"{final.stem}{tags}{final.suffix}") if final is not None and tags else final


def partial_path(final: Path) -> Path:
    """Checkpoints go beside the final file, so a complete state is never replaced by a partial one."""
    return final.with_name(final.name + ".partial")


class PrefixHasher:
    """Running sha256 of a source's content up to a cursor; equal to readers.prefix_sha256.

    Hashing as the read goes keeps checkpoints O(new text) instead of re-hashing the file
    from the start every time.
    """

    def __init__(self, src: SourceFile, password: str | None = None):
        self.src, self.password = src, password
        self.h = hashlib.sha256()
        self.at = 0
        self._file = None
        self._doc = None

    def advance(self, end: int) -> str:
        """Hash up to cursor `end` (>= the last one) and return the digest so far."""
        if end < self.at:
            raise ValueError(f"cursor went back from {self.at} to {end}")
        if self.src.kind in ("text", "gzip"):
            if self._file is None:
                self._file = gzip.open(self.src.abspath, "rb") if self.src.kind == "gzip" else open(self.src.abspath, "rb")
            left = end - self.at
            while left > 0:
                data = self._file.read(min(left, 1 << 20))
                if not data:
                    break
                self.h.update(data)
                left -= len(data)
        elif self.src.kind in ("pdf", "book"):
            if self._doc is None:
                from comet_cli.readers.paged import open_document
                self._doc = open_document(self.src, self.password)
            for index in range(self.at, min(end, self._doc.page_count)):
                self.h.update(self._doc.load_page(index).get_text().encode("utf-8"))
                self.h.update(b"\f")
        else:
            return ""
        self.at = end
        return self.h.hexdigest()

    def close(self) -> None:
        for f in (self._file, self._doc):
            if f is not None:
                f.close()
        self._file = self._doc = None


@dataclass
class Match:
    """How a saved state relates to the input now.

    status: "complete" (nothing new to read), "continue" (resume or read appended text),
    or "mismatch" (another input, or a file changed other than by growing); `reason` says why.
    hashers: per recorded path, a PrefixHasher already advanced to the recorded cursor.
    """

    status: str
    reason: str = ""
    hashers: dict = field(default_factory=dict)


def check_sources(meta: dict, sources: list[SourceFile], password: str | None = None) -> Match:
    """Compare a state's recorded sources with the current ones (see the module docstring)."""
    if meta.get("kind") != META_KIND or meta.get("version") != META_VERSION:
        return Match("mismatch", "state was not written by a read of this toolkit version")
    by_path = {s.path: s for s in sources}
    hashers = {}
    records = meta.get("sources", [])
    try:
        for rec in records:
            src = by_path.get(rec["path"])
            if src is None:
                return Match("mismatch", f"{rec['path']} is no longer part of the input")
            if src.kind != rec["kind"] or src.kind == "stdin":
                return Match("mismatch", f"{rec['path']} changed kind")
            if rec.get("skipped"):
                continue
            hasher = PrefixHasher(src, password)
            hashers[src.path] = hasher
            if hasher.advance(rec["end"]) != rec["prefix_sha256"]:
                return Match("mismatch", f"{rec['path']} changed (not only appended to)")
    except BaseException:
        for h in hashers.values():
            h.close()
        raise
    new_sources = set(by_path) - {r["path"] for r in records}
    if meta.get("complete") and not new_sources and not any(_grew(by_path[r["path"]], r) for r in records
                                                            if not r.get("skipped")):
        return Match("complete", hashers=hashers)
    return Match("continue", hashers=hashers)


def _grew(src: SourceFile, rec: dict) -> bool:
    """Whether there may be text after the recorded cursor (cheap where the size tells)."""
    if src.kind == "text":
        return (src.size or 0) > rec["end"]
    if src.kind == "gzip":
        # the trailer's size is exact below 4 GiB; otherwise look (prefix_sha256 read that far)
        from comet_cli.readers import count_estimate
        chars, _ = count_estimate(src)
        return chars is None or chars > rec["end"]
    if src.kind in ("pdf", "book"):
        return _page_count(src) > rec["end"]
    return False


def _page_count(src: SourceFile) -> int:
    from comet_cli.readers.paged import open_document

    doc = open_document(src, None, need_text=False)
    try:
        return doc.page_count
    finally:
        doc.close()

