"""CometConfig: the memory layout, stored as the `comet` section of a model's config.json."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

PLACEHOLDER_TOKEN = "<|memory|>"
TEMP_BEACON_TOKEN = "<beacon>"


def global_beacon_token(i: int) -> str:
    return f"<beacon_{i}>"


@dataclass
class CometConfig:
    """The per-chunk memory layout (METHOD.md sections 2-4) plus the ids of the added tokens.

    chunk_size   C: text tokens per chunk.
    global_slots G: global-memory slots = number of global beacons appended to a closed chunk.
    temp_stride  s: one temp beacon after every s text tokens (0 disables temporary memory).
    temp_budget  B_T: FIFO capacity in temporary-memory entries.
    rla_rank     r: rank of the residual low-rank adapters (8 in the paper).
    sink_tokens  leading positions of every chunk that hold a fixed attention-sink token (`sink_id`)
                 before the memory slots; 0 (the paper's layout) puts a memory slot at position 0.
    initial_state  ours, not the paper's: a learned global state per layer before the first chunk,
                 so the first chunk's write is gated like every later one (the paper's first write
                 is not). The first chunk still reads no global memory; zero at conversion.
    """

    chunk_size: int = 512
    global_slots: int = 32
    temp_stride: int = 16
    temp_budget: int = 64
    rla_rank: int = 8
    sink_tokens: int = 0
    initial_state: bool = False
    # Filled in by convert/inject once the tokenizer has the new tokens.
    placeholder_id: int = -1
    temp_beacon_id: int = -1
    global_beacon_ids: list[int] = field(default_factory=list)
    sink_id: int = -1
    format_version: int = 1

    def __post_init__(self):
        for name in ("chunk_size", "global_slots", "temp_budget", "rla_rank", "sink_tokens"):
            if getattr(self, name) < (1 if name in ("chunk_size", "rla_rank") else 0):
                raise ValueError(f"comet.{name} must be positive, got {getattr(self, name)}")
        if self.temp_stride < 0:
            raise ValueError(f"comet.temp_stride must be >= 0 (0 disables), got {self.temp_stride}")

    @property
    def uses_temp_memory(self) -> bool:
        return self.temp_stride > 0 and self.temp_budget > 0

    def beacons_per_chunk(self, n_text: int | None = None) -> int:
        """Temp beacons a closed chunk of n_text tokens emits: one per (partial) segment."""
        n = self.chunk_size if n_text is None else n_text
        return -(-n // self.temp_stride) if self.uses_temp_memory else 0

    def max_chunk_positions(self) -> int:
        """Largest number of positions one chunk can carry (slots + text + beacons)."""
        return self.sink_tokens + self.global_slots * 2 + self.temp_budget + self.chunk_size + self.beacons_per_chunk()

    def layout_dict(self) -> dict:
        """The layout fields; `sink_tokens` and `initial_state` only when set, so layouts (and
        fingerprints) of models made before they existed are unchanged."""
        d = {k: getattr(self, k) for k in ("chunk_size", "global_slots", "temp_stride", "temp_budget", "rla_rank")}
        if self.sink_tokens:
            d["sink_tokens"] = self.sink_tokens
        if self.initial_state:
            d["initial_state"] = True
        return d

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CometConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
