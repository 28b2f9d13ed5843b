"""Stream sources into a memory state, checkpointing as it goes, and resume or extend a saved one.

The token stream of a read is: the chat frame's prefix, then (when the input is longer than the
first chunk's room) the read's lead prose (runtime.with_lead), then for each source (in a folder) a
header line, then the source's pieces, each tokenized on its own. Chunk boundaries depend only on
that stream (runtime.feed closes chunks from the pending tokens, whatever the feed calls), so a
read resumed from a checkpoint taken after a whole piece ends in the same state as one that was
never interrupted: the checkpoint holds the pending partial-chunk tokens, and reading goes on
from the piece's `end` cursor.

`state.meta` records, for the checkpoint and for the complete state alike::

    {"kind": "comet-read", "version": 1, "complete": bool, "input": PATH, "frame_sha256": ...,
     "sources": [{"path", "kind", "end", "tokens", "prefix_sha256", "header", "done",
                  "pages" | "lines": [first, last], "skipped": reason?}, ...]}

Test-only hook: COMET_TEST_CRASH_AFTER_CHUNKS=N makes a read stop after closing N chunks in
this process, as Ctrl-C would (`N:kill` sends itself SIGKILL instead, as `kill -9` would).
"""
from __future__ import annotations

import hashlib
import os
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from comet_cli.errors import InputError, StateError, fail
from comet_cli.readers import SourceFile, read_source

from .cache import META_KIND, META_VERSION, Match, PrefixHasher, check_sources, partial_path

CRASH_ENV = "COMET_TEST_CRASH_AFTER_CHUNKS"
PAGED = ("pdf", "book")


def header_text(path: str, continued: bool = False) -> str:
    """The line fed before a file's text when reading a folder."""
    return f"\n\n=== {path}{' (continued)' if continued else ''} ===\n"


@dataclass
class ReadProgress:
    """Where a read is, for progress display. tokens counts everything fed into memory."""

    path: str
    page: int | None
    line: int | None
    tokens: int
    chunks: int
    tokens_this_run: int
    seconds: float


@dataclass
class ReadOptions:
    """How to read: `state_file` is where the state goes (None: keep it in memory only);
    `strict` when the user named that file (it is never overwritten with another input's state)."""

    state_file: Path | None = None
    strict: bool = False
    checkpoint_every: int = 8
    password: str | None = None
    folder: bool = False
    input_path: str = ""
    warn: Callable[[str], None] = lambda msg: None
    on_progress: Callable[[ReadProgress], None] = lambda p: None
    on_step: Callable[[str], None] = lambda msg: None


@dataclass
class ReadResult:
    state: object
    records: list[dict]
    reused: bool
    tokens_this_run: int
    seconds: float
    state_file: Path | None
    sha256: str
    resumed_from: str | None = None
    notes: list[str] = field(default_factory=list)


def frame_sha256(prefix_ids: list[int], lead_ids: Sequence[int] = ()) -> str:
    """The frame a state was read in: its prefix and held-back lead (a state without a lead hashes as
    before leads existed, so it is never taken for one read with a lead)."""
    ids = list(prefix_ids) + ([-1, *lead_ids] if lead_ids else [])
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def read_document(model, tokenizer, sources: list[SourceFile], prefix_ids: list[int],
                  opts: ReadOptions, lead_ids: Sequence[int] = ()) -> ReadResult:
    """Read `sources` after `prefix_ids` into a memory state, reusing or resuming a saved one; with
    `lead_ids`, an input longer than the first chunk's room starts after them (runtime.with_lead)."""
    from comet_models.runtime import new_state

    t0 = time.monotonic()
    fingerprint = model.comet_fingerprint
    frame = frame_sha256(prefix_ids, lead_ids)
    start = _find_start(sources, fingerprint, frame, opts)
    if start is not None and start[1].status == "complete":
        state, match, path = start
        _close(match)
        return ReadResult(state, state.meta["sources"], True, 0, time.monotonic() - t0,
                          opts.state_file, state.sha256(), resumed_from=str(path))
    if start is None:
        from comet_models.runtime import feed, with_lead

        state = feed(model, new_state(model), prefix_ids)
        state = with_lead(state, lead_ids) if lead_ids else state
        state = replace(state, meta=_meta(opts, frame, [], False))
        match, resumed_from = Match("continue"), None
    else:
        state, match, path = start
        resumed_from = str(path)
        opts.on_step(f"continuing from {path} ({state.tokens:,} tokens already read)")
    run = _Run(model, tokenizer, opts, frame, state, match, t0)
    run.tokens_this_run = state.tokens if start is None else 0
    try:
        run.read_all(sources)
    finally:
        _close(match)
    state = run.finish()
    return ReadResult(state, state.meta["sources"], False, run.tokens_this_run, time.monotonic() - t0,
                      opts.state_file, state.sha256(), resumed_from=resumed_from)


def _close(match: Match) -> None:
    for h in match.hashers.values():
        h.close()


def _meta(opts: ReadOptions, frame: str, records: list[dict], complete: bool) -> dict:
    return {"kind": META_KIND, "version": META_VERSION, "complete": complete, "input": opts.input_path,
            "frame_sha256": frame, "sources": records}


def _find_start(sources, fingerprint, frame, opts: ReadOptions):
    """(state, match, file) to go on from, or None to read from the beginning."""
    from comet_models.state import MemoryState

    final = opts.state_file
    if final is None:
        return None
    stdin = sources[0].kind == "stdin"
    for path in (partial_path(final), final):
        if not path.exists():
            continue
        is_partial = path != final
        try:
            # a state from another model is an error for the file the user named
            state = MemoryState.load(path, fingerprint if opts.strict else None)
        except StateError:
            if is_partial or not opts.strict:
                opts.warn(f"{path}: unreadable saved state; reading from the beginning")
                continue
            raise
        if state.fingerprint != fingerprint:
            continue
        meta = state.meta or {}
        if stdin:
            was_stdin = [r.get("kind") for r in meta.get("sources", [])] == ["stdin"]
            if not is_partial and opts.strict and not was_stdin and meta:
                raise StateError(f"{path}: holds the state of {meta.get('input', 'another input')}, not of stdin; "
                                 "delete it or pass another --state")
            continue
        match = check_sources(meta, sources, opts.password) if meta.get("frame_sha256") == frame else \
            Match("mismatch", "made with another chat frame or lead, or by a version before leads")
        if match.status != "mismatch":
            return state, match, path
        _close(match)
        if not is_partial and opts.strict:
            raise StateError(f"{path}: holds the state of other content ({match.reason}); "
                             "delete it or pass another --state")
        opts.on_step(f"ignoring saved state {path}: {match.reason}")
    return None


class _Run:
    """One pass over the sources: feeds pieces, keeps the records, writes checkpoints."""

    def __init__(self, model, tokenizer, opts, frame, state, match, t0):
        self.model, self.tok, self.opts, self.frame = model, tokenizer, opts, frame
        self.state, self.match, self.t0 = state, match, t0
        self.records = [dict(r) for r in state.meta.get("sources", [])]
        self.C = model.comet_config.chunk_size
        self.last_checkpoint = state.chunks
        self.tokens_this_run = 0
        self.chunks_this_run = 0
        self.where = ("", None, None)
        crash = os.environ.get(CRASH_ENV, "")
        self.crash_after, _, self.crash_mode = crash.partition(":")

    # -- the loop ---------------------------------------------------------------------------
    def read_all(self, sources: list[SourceFile]) -> None:
        by_path = {r["path"]: r for r in self.records}
        order = [s for r in self.records for s in sources if s.path == r["path"]]
        order += [s for s in sources if s.path not in by_path]
        read_any = any(r["tokens"] for r in self.records)
        for src in order:
            rec = by_path.get(src.path)
            if rec is None:
                rec = {"path": src.path, "kind": src.kind, "end": 0, "tokens": 0, "prefix_sha256": None,
                       "header": False, "done": False}
                self.records.append(rec)
            if rec.get("skipped") or (rec["done"] and not self._may_have_more(src, rec)):
                continue
            try:
                self._read_source(src, rec)
            except InputError as e:
                if not self.opts.folder:
                    raise
                self.opts.warn(f"{e} (skipped)")
                rec["skipped"] = str(e)
                rec["done"] = True
            read_any = read_any or rec["tokens"] > 0
        if self.opts.folder and not read_any:
            raise fail(self.opts.input_path, "no file in the folder could be read; see the warnings")

    def _may_have_more(self, src: SourceFile, rec: dict) -> bool:
        return not (src.kind == "text" and (src.size or 0) <= rec["end"])

    def _read_source(self, src: SourceFile, rec: dict) -> None:
        hasher = self.match.hashers.pop(src.path, None) or PrefixHasher(src, self.opts.password)
        try:
            continued = rec["done"]
            for piece in read_source(src, start=rec["end"], password=self.opts.password, warn=self.opts.warn):
                if self.opts.folder and (continued or not rec["header"]):
                    self._feed(header_text(src.path, continued))
                    rec["header"], rec["done"], continued = True, False, False
                self.where = (src.path, piece.page, piece.line_start)
                n = self._feed(piece.text)
                rec["tokens"] += n
                rec["end"] = piece.end
                unit, first, last = ("pages", piece.page, piece.page) if piece.page is not None else \
                    ("lines", piece.line_start, piece.line_end)
                if first is not None:
                    rec[unit] = [rec.get(unit, [first])[0], last]
                # a piece that is not the last of its page resumes from the page start: no checkpoint
                boundary = src.kind not in PAGED or piece.end == piece.page
                if boundary and self.state.chunks - self.last_checkpoint >= self.opts.checkpoint_every:
                    rec["prefix_sha256"] = hasher.advance(rec["end"])
                    self._checkpoint()
            rec["done"] = True
            rec["prefix_sha256"] = hasher.advance(rec["end"])
        finally:
            hasher.close()

    def _feed(self, text: str) -> int:
        from comet_models.runtime import feed

        ids = self.tok(text, add_special_tokens=False)["input_ids"]
        before = self.state.tokens
        self.state = feed(self.model, self.state, ids, on_chunk=self._on_chunk)
        self.tokens_this_run += self.state.tokens - before  # with a lead, when it goes in
        self._report(self.state.tokens, self.state.chunks)
        return len(ids)

    def _on_chunk(self, partial_state) -> None:
        self.chunks_this_run += 1
        # tokens are approximate inside a feed call: chunks closed times chunk size
        in_flight = (partial_state.chunks - self.state.chunks) * self.C
        self._report(self.state.tokens + in_flight, partial_state.chunks, in_flight)
        if self.crash_after and self.chunks_this_run >= int(self.crash_after):
            if self.crash_mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise KeyboardInterrupt(f"{CRASH_ENV} reached")

    def _report(self, tokens: int, chunks: int, in_flight: int = 0) -> None:
        path, page, line = self.where
        self.opts.on_progress(ReadProgress(path, page, line, tokens, chunks, self.tokens_this_run + in_flight,
                                           time.monotonic() - self.t0))

    # -- files --------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        self.last_checkpoint = self.state.chunks
        if self.opts.state_file is None:
            return
        self.state = replace(self.state, meta=_meta(self.opts, self.frame, self.records, False))
        self.state.save(partial_path(self.opts.state_file), self.C)

    def finish(self):
        """Mark the state complete, write it, and drop the checkpoint."""
        self.state = replace(self.state, meta=_meta(self.opts, self.frame, self.records, True))
        final = self.opts.state_file
        if final is not None:
            self.state.save(final, self.C)
            partial_path(final).unlink(missing_ok=True)
        return self.state
