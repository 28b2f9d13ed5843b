"""MemoryState (a value) and its safetensors file format.

A state holds everything needed to continue reading: per-layer global state, the FIFO in a
fixed-capacity buffer with one validity flag per entry, the tokens of the partial last chunk,
and counters. Every tensor has a fixed shape, so a state after 2 chunks and after 50 000 chunks
has the same size. Files are written atomically (temporary file, fsync, rename).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .memory import LayerMemory


def tensor_bytes(t: torch.Tensor) -> bytes:
    """The raw bytes of a tensor on any device (digests of weights and states; GPU tensors are
    copied to the host first)."""
    if not t.numel():
        return b""
    return t.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes()

FORMAT = "comet-memory-state"
FORMAT_VERSION = 1


@dataclass
class MemoryState:
    """The memory of a CoMeT model after reading `tokens` tokens.

    global_state: (L, B, G, H), meaningful once has_global (a chunk was closed).
    temp_memory:  (L, B, B_T, H), entries in creation order; temp_valid (B_T,) marks real ones.
    pending:      token ids read but not yet closed into a chunk (fewer than chunk_size + 1).
    lead:         token ids held back until a chunk closes, then put at pending[lead_at]
                  (runtime.with_lead); empty once they are.
    """

    global_state: torch.Tensor
    temp_memory: torch.Tensor
    temp_valid: torch.Tensor
    has_global: bool = False
    pending: list[int] = field(default_factory=list)
    tokens: int = 0
    chunks: int = 0
    fingerprint: str = ""
    lead: list[int] = field(default_factory=list)
    lead_at: int = 0
    meta: dict = field(default_factory=dict)

    @classmethod
    def empty(cls, n_layers: int, hidden: int, global_slots: int, temp_budget: int, batch: int = 1,
              dtype=torch.float32, fingerprint: str = "") -> "MemoryState":
        return cls(torch.zeros(n_layers, batch, global_slots, hidden, dtype=dtype),
                   torch.zeros(n_layers, batch, temp_budget, hidden, dtype=dtype),
                   torch.zeros(temp_budget, dtype=torch.bool), fingerprint=fingerprint)

    # -- conversion to the per-layer values the engine passes around ----------------------
    def layer_memories(self, device=None, dtype=None) -> list[LayerMemory]:
        valid = self.temp_valid
        out = []
        for l in range(self.global_state.shape[0]):
            g = self.global_state[l].to(device=device, dtype=dtype) if self.has_global else None
            t = self.temp_memory[l][:, valid].to(device=device, dtype=dtype) if bool(valid.any()) else None
            out.append(LayerMemory(g, t))
        return out

    def with_layer_memories(self, mems: list[LayerMemory], **changes) -> "MemoryState":
        """A new state holding mems (valid FIFO entries right-aligned in the fixed buffer)."""
        gs = self.global_state.clone()
        tm = torch.zeros_like(self.temp_memory)
        valid = torch.zeros_like(self.temp_valid)
        has_global = self.has_global
        for l, m in enumerate(mems):
            if m.global_state is not None:
                gs[l] = m.global_state.detach().to(gs.dtype).cpu()
                has_global = True
            if m.temp_memory is not None and m.n_temp:
                p = m.n_temp
                tm[l, :, tm.shape[2] - p:] = m.temp_memory.detach().to(tm.dtype).cpu()
                valid[tm.shape[2] - p:] = True
        return replace(self, global_state=gs, temp_memory=tm, temp_valid=valid, has_global=has_global, **changes)

    def tensor_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.global_state, self.temp_memory, self.temp_valid))

    def sha256(self) -> str:
        """Digest over the state's tensors and pending tokens: equal digests mean equal memories."""
        h = hashlib.sha256()
        for t in self._tensors().values():
            h.update(tensor_bytes(t))
        if self.lead:  # a held-back lead changes what the next feed reads
            h.update(json.dumps([self.lead_at, self.lead]).encode())
        return h.hexdigest()

    def _tensors(self, chunk_size: int | None = None) -> dict[str, torch.Tensor]:
        n = max(chunk_size or 0, len(self.pending))
        pend = torch.full((n,), -1, dtype=torch.int64)
        pend[: len(self.pending)] = torch.tensor(self.pending, dtype=torch.int64)
        return {"global_state": self.global_state.contiguous(), "temp_memory": self.temp_memory.contiguous(),
                "temp_valid": self.temp_valid.to(torch.uint8), "pending": pend}

    # -- files ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, chunk_size: int | None = None) -> str:
        """Write atomically to `path`; returns the state's sha256."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = self.sha256()
        metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "fingerprint": self.fingerprint,
                    "tokens": str(self.tokens), "chunks": str(self.chunks), "has_global": str(int(self.has_global)),
                    "pending_len": str(len(self.pending)), "sha256": digest, "meta": json.dumps(self.meta)}
        if self.lead:
            metadata["lead"] = json.dumps([self.lead_at, self.lead])
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(self._tensors(chunk_size), tmp, metadata=metadata)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    @classmethod
    def load(cls, path: str | os.PathLike, fingerprint: str | None = None) -> "MemoryState":
        """Read a state file; fails with a one-line StateError for every way a file can be unusable."""
        from comet_cli.errors import StateError
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise StateError(f"{path}: no such state file")
        try:
            with safe_open(str(path), framework="pt") as f:
                md = f.metadata() or {}
                # get_tensor's buffers can sit at any offset in the file; CPU kernels then take other
                # code paths with other rounding, and a resumed read would drift from an uninterrupted
                # one. A copy is freshly (64-byte) aligned, like the tensors of a live state.
                tensors = {k: f.get_tensor(k).clone() for k in f.keys()}
        except Exception as e:  # safetensors raises several types for truncated/corrupt files
            raise StateError(f"{path}: not a readable state file (truncated or corrupt: {str(e).splitlines()[0]})") from e
        if md.get("format") != FORMAT:
            raise StateError(f"{path}: not a CoMeT memory-state file")
        version = int(md.get("format_version", "0"))
        if version > FORMAT_VERSION:
            raise StateError(f"{path}: state format version {version} is newer than this toolkit's "
                             f"({FORMAT_VERSION}); upgrade cometkit")
        missing = {"global_state", "temp_memory", "temp_valid", "pending"} - set(tensors)
        if missing:
            raise StateError(f"{path}: state file lacks tensors {sorted(missing)}")
        if fingerprint is not None and md.get("fingerprint") != fingerprint:
            raise StateError(f"{path}: state was written by another model (fingerprint {md.get('fingerprint')}, "
                             f"this model {fingerprint})")
        n = int(md.get("pending_len", "0"))
        lead_at, lead = json.loads(md.get("lead", "[0, []]"))
        state = cls(tensors["global_state"], tensors["temp_memory"], tensors["temp_valid"].bool(),
                    has_global=md.get("has_global") == "1", pending=tensors["pending"][:n].tolist(),
                    tokens=int(md["tokens"]), chunks=int(md["chunks"]), fingerprint=md.get("fingerprint", ""),
                    meta=json.loads(md.get("meta", "{}")), lead=lead, lead_at=lead_at)
        if md.get("sha256") and state.sha256() != md["sha256"]:
            raise StateError(f"{path}: state tensors do not match their recorded sha256 (corrupt file)")
        return state


def read_state_metadata(path: str | os.PathLike) -> dict:
    """Metadata and sizes of a state file without building the state (for `comet state info`)."""
    state = MemoryState.load(path)
    return {"file": str(path), "format_version": FORMAT_VERSION, "fingerprint": state.fingerprint,
            "tokens": state.tokens, "chunks": state.chunks, "pending_tokens": len(state.pending),
            "layers": state.global_state.shape[0], "global_slots": state.global_state.shape[2],
            "temp_budget": state.temp_memory.shape[2], "temp_valid": int(state.temp_valid.sum()),
            "hidden": state.global_state.shape[3], "state_bytes": state.tensor_bytes(),
            "file_bytes": os.path.getsize(path), "sha256": state.sha256(), "meta": state.meta}
