"""Resume points inside one grid sample, so a long pass-key sample survives a stopped process.

One comet sample of 5 depths reads about 3.5 x its length (times --reads): at 1M tokens that is hours
on a CPU core, longer than a process may live. `--out` keeps whole samples; this keeps the inside of
the one in progress, in a folder beside --out (OUT.partial/), one set of files per read:

- the trunk (the filler read up to the depth in progress) with the rows answered so far, saved
  when it reaches a depth and again after that depth's answer;
- the fork being read (needle + the rest of the filler), saved every `every` tokens and once whole,
  so with several reads a finished read's fork waits for the others instead of being read again.

Files are memory states written atomically (`MemoryState.save`), tagged with the sample's id, key and
read and checked against the model's fingerprint: a resume point from another sample, grid, read or
model is ignored, never misused. Reading in slices closes the same chunks as one read, and a loaded
state computes exactly as the live one did, so a resumed sample answers as an uninterrupted one.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from comet_models.state import MemoryState


class SampleResume:
    """Resume points of one sample (`rid`, the id its --out line will carry) under `folder`."""

    def __init__(self, folder: str | Path, rid: str, every: int = 32768):
        self.stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rid)
        self.folder = Path(folder)
        self.rid, self.every = rid, max(1, every)

    def _path(self, part: str, read: int) -> Path:
        """Read 0's files keep the one-read names, so a one-read sample resumes across versions."""
        return self.folder / f"{self.stem}{'' if read == 0 else f'.read{read}'}.{part}.safetensors"

    def _tag(self, key: str, part: str, read: int) -> str:
        return f"{self.rid}:{key}:{part}" + ("" if read == 0 else f":read{read}")

    # -- files --------------------------------------------------------------------------
    def _save(self, path: Path, state: MemoryState, tag: str, **extra) -> None:
        meta = {"resume": tag, "meta": state.meta, **extra}
        replace(state, meta=meta).save(path)

    def _load(self, path: Path, tag: str, fingerprint: str) -> tuple[MemoryState, dict] | None:
        from comet_cli.errors import StateError

        if not path.is_file():
            return None
        try:
            saved = MemoryState.load(path, fingerprint)
        except StateError:
            return None  # broken or another model's: read that part again
        if saved.meta.get("resume") != tag:
            return None
        extra = dict(saved.meta)
        return replace(saved, meta=extra.pop("meta", {})), extra

    def clear(self) -> None:
        for p in self.folder.glob(f"{self.stem}.*safetensors"):
            p.unlink(missing_ok=True)
        try:
            self.folder.rmdir()  # only when no other sample left resume points there
        except OSError:
            pass

    # -- the two parts of a sample ------------------------------------------------------
    def trunk(self, states: list[MemoryState], key: str) -> tuple[list[MemoryState], int, list[dict]] | None:
        """The trunks (one per read) saved after the last finished depth: (states, tokens of filler
        read, rows); None unless every read's trunk is there at the same point."""
        got = [self._load(self._path("trunk", r), self._tag(key, "trunk", r), st.fingerprint)
               for r, st in enumerate(states)]
        if any(g is None for g in got) or len({(g[1]["done"], len(g[1]["rows"])) for g in got}) != 1:
            return None
        return [g[0] for g in got], int(got[0][1]["done"]), list(got[0][1]["rows"])

    def save_trunk(self, states: list[MemoryState], key: str, done: int, rows: list[dict]) -> None:
        for r, st in enumerate(states):
            self._save(self._path("trunk", r), st, self._tag(key, "trunk", r), done=done, rows=rows)

    def _slices(self, start: int, end: int):
        return ((i, min(i + self.every, end)) for i in range(start, end, self.every))

    def advance(self, model, states: list[MemoryState], fill: list[int], done: int, pos: int, key: str,
                rows: list[dict], depth: float, progress=lambda msg: None) -> list[MemoryState]:
        """The trunks fed fill[done:pos] (the filler up to the next depth) in slices of `every` tokens,
        saved after each: at 1M tokens there are 250k tokens of filler between two depths."""
        from comet_models.runtime import feed

        for i, j in self._slices(done, pos):
            states = [feed(model, st, fill[i:j]) for st in states]
            self.save_trunk(states, key, j, rows)
            if j < pos:
                progress(f"filler {j:,} of {pos:,} tokens before depth {depth:.2f}")
        return states

    def feed(self, model, state: MemoryState, ids: list[int], key: str, depth: float, read: int = 0,
             progress=lambda msg: None) -> MemoryState:
        """`feed(model, state, ids)`, in slices of `every` tokens, resuming from the read's fork file."""
        from comet_models.runtime import feed

        path, tag = self._path("fork", read), self._tag(key, f"fork:{depth:.3f}:{len(ids)}", read)
        name, start = f"depth {depth:.2f}" + (f" read {read + 1}" if read else ""), 0
        got = self._load(path, tag, state.fingerprint)
        if got is not None:
            state, start = got[0], int(got[1]["consumed"])
            progress(f"{name}: resumed at token {start:,} of {len(ids):,}")
        for i, j in self._slices(start, len(ids)):
            state = feed(model, state, ids[i:j])
            self._save(path, state, tag, consumed=j)
            if j < len(ids):
                progress(f"{name}: {j:,} of {len(ids):,} tokens")
        return state
