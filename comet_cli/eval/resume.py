"""Resume points inside one grid sample, so a long pass-key sample survives a stopped process.

One comet sample of 5 depths reads about 3.5 x its length: at 1M tokens that is hours on a CPU core,
longer than a process may live. `--out` keeps whole samples; this keeps the inside of the one in
progress, in a folder beside --out (OUT.partial/):

- the trunk (the filler read up to the depth in progress) with the rows answered so far, saved
  when it reaches a depth and again after that depth's answer;
- the fork being read (needle + the rest of the filler), saved every `every` tokens.

Files are memory states written atomically (`MemoryState.save`), tagged with the sample's id and key
and checked against the model's fingerprint: a resume point from another sample, grid or model is
ignored, never misused. Reading in slices closes the same chunks as one read, and a loaded state
computes exactly as the live one did, so a resumed sample answers as an uninterrupted one.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from comet_models.state import MemoryState


class SampleResume:
    """Resume points of one sample (`rid`, the id its --out line will carry) under `folder`."""

    def __init__(self, folder: str | Path, rid: str, every: int = 32768):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rid)
        self.folder = Path(folder)
        self.trunk_path = self.folder / f"{stem}.trunk.safetensors"
        self.fork_path = self.folder / f"{stem}.fork.safetensors"
        self.rid, self.every = rid, max(1, every)

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
        for p in (self.trunk_path, self.fork_path):
            p.unlink(missing_ok=True)
        try:
            self.folder.rmdir()  # only when no other sample left resume points there
        except OSError:
            pass

    # -- the two parts of a sample ------------------------------------------------------
    def trunk(self, state: MemoryState, key: str) -> tuple[MemoryState, int, list[dict]] | None:
        """The trunk saved after the last finished depth: (state, tokens of filler read, rows)."""
        got = self._load(self.trunk_path, f"{self.rid}:{key}:trunk", state.fingerprint)
        if got is None:
            return None
        saved, extra = got
        return saved, int(extra["done"]), list(extra["rows"])

    def save_trunk(self, state: MemoryState, key: str, done: int, rows: list[dict]) -> None:
        self._save(self.trunk_path, state, f"{self.rid}:{key}:trunk", done=done, rows=rows)

    def feed(self, model, state: MemoryState, ids: list[int], key: str, depth: float,
             progress=lambda msg: None) -> MemoryState:
        """`feed(model, state, ids)`, in slices of `every` tokens, resuming from the fork's file."""
        from comet_models.runtime import feed

        tag, start = f"{self.rid}:{key}:fork:{depth:.3f}:{len(ids)}", 0
        got = self._load(self.fork_path, tag, state.fingerprint)
        if got is not None:
            state, start = got[0], int(got[1]["consumed"])
            progress(f"depth {depth:.2f}: resumed at token {start:,} of {len(ids):,}")
        for i in range(start, len(ids), self.every):
            j = min(i + self.every, len(ids))
            state = feed(model, state, ids[i:j])
            if j < len(ids):
                self._save(self.fork_path, state, tag, consumed=j)
                progress(f"depth {depth:.2f}: {j:,} of {len(ids):,} tokens")
        return state
