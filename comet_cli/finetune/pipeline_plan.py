"""Planning for the layer-level pipeline (METHOD.md section 10): pure arithmetic, no torch.

The sequence is split, not the layers: rank r owns a contiguous block of chunks and every layer.
Layers stream through the ranks like micro-batches through a classic pipeline: rank r runs layer
l over its chunks as soon as rank r-1 has sent the layer-l memory leaving its last chunk.

Everything here is a function of the chunk sizes, the memory layout (CometConfig) and the number
of ranks, so every rank derives the same plan on its own and nothing about shapes needs to be
sent: `slot_counts_at` gives the shapes of the memory crossing a block boundary, `plan_blocks`
the blocks, and `estimate_rank_memory` what a rank must hold. `parallel.py` does the sending.
"""
from __future__ import annotations

from dataclasses import dataclass

from comet_cli.errors import RecipeError


def plan_blocks(n_chunks: int, world: int) -> list[range]:
    """Contiguous chunk blocks, one per rank, sizes differing by at most one (larger first).

    The official code needs n_chunks % world == 0; here 5 chunks on 2 ranks give [0, 3) and [3, 5).
    Every rank needs at least one chunk, because an empty rank would only forward memory."""
    if world < 1:
        raise RecipeError(f"pipeline world size must be at least 1, got {world}")
    if n_chunks < world:
        raise RecipeError(
            f"pipeline has {world} ranks but the sample has only {n_chunks} chunks; "
            "use at most as many ranks as chunks (or longer samples / smaller chunk_size)")
    base, extra = divmod(n_chunks, world)
    blocks, start = [], 0
    for r in range(world):
        size = base + (1 if r < extra else 0)
        blocks.append(range(start, start + size))
        start += size
    return blocks


def temp_beacons(n_text: int, stride: int) -> int:
    """Temp beacons a closed chunk of n_text tokens emits: ceil(n_text / s) (layout.n_temp_beacons)."""
    return -(-n_text // stride) if stride > 0 else 0


def slot_counts_at(chunk_sizes: list[int], cfg, k: int, keep_temp: bool = True) -> tuple[int, int]:
    """(n_global, n_temp): memory slots entering chunk k when every chunk before it is closed.

    The global state exists from the first closed chunk on (G slots, or none when G = 0); the
    FIFO holds every temp beacon emitted so far, capped at the budget B_T (METHOD.md 6.3).
    These are also the shapes (B, n, H) of the layer memory sent into the block starting at k.
    keep_temp=False (a sample trained without temporary memory): no FIFO slots."""
    if not 0 <= k <= len(chunk_sizes):
        raise ValueError(f"chunk index {k} is outside 0..{len(chunk_sizes)}")
    n_global = cfg.global_slots if k > 0 else 0
    if not cfg.uses_temp_memory or not keep_temp:
        return n_global, 0
    emitted = sum(temp_beacons(n, cfg.temp_stride) for n in chunk_sizes[:k])
    return n_global, min(emitted, cfg.temp_budget)


def chunk_positions(chunk_sizes: list[int], cfg, k: int) -> int:
    """Positions of closed chunk k: sink + slots + text + temp beacons + G global beacons (layout.py)."""
    n_global, n_temp = slot_counts_at(chunk_sizes, cfg, k)
    n_text = chunk_sizes[k]
    n_beacons = temp_beacons(n_text, cfg.temp_stride) if cfg.uses_temp_memory else 0
    return cfg.sink_tokens + n_global + n_temp + n_text + n_beacons + cfg.global_slots


def ideal_speedup(world: int, n_layers: int) -> float:
    """Wavefront over naive context parallelism: P*L box-times against L+P-1 (METHOD.md 10.3)."""
    return world * n_layers / (n_layers + world - 1)


def bubble_fraction(world: int, n_layers: int) -> float:
    """Share of the wavefront's L+P-1 box-times a rank spends idle: (P-1)/(L+P-1)."""
    return (world - 1) / (n_layers + world - 1)


@dataclass(frozen=True)
class RankMemory:
    """What one rank holds for one training step (an estimate; bytes unless named otherwise)."""

    rank: int
    chunks: range
    positions: int  # sum of the positions of the rank's chunks (slots and beacons included)
    activation_bytes: int  # saved-for-backward tensors of all layers over those positions
    parameter_bytes: int  # weights + gradients, replicated on every rank
    message_bytes: int  # layer memory received per layer (0 on rank 0)

    @property
    def total_bytes(self) -> int:
        return self.activation_bytes + self.parameter_bytes


def estimate_rank_memory(chunk_sizes: list[int], cfg, world: int, *, hidden: int, n_layers: int,
                         n_params: int = 0, batch: int = 1, bytes_per_value: int = 4,
                         values_per_position: int | None = None) -> list[RankMemory]:
    """Per-rank memory of one pipelined step, without activation checkpointing.

    Activations grow with the rank's own positions only, which is what lets more ranks train
    longer samples: activation_bytes = batch * positions * n_layers * values_per_position *
    bytes_per_value. values_per_position is what one decoder layer keeps for backward per
    position (norm inputs, q/k/v before and after RoPE, attention output, the MLP projections,
    the memory modules). The default 32 * hidden matches the peak RSS measured by
    benchmarks/pipeline_wavefront.py (HF Llama layer, fp32, SDPA on CPU, MLP 2.75 H) to about
    20 %; pass a measured value for another model or precision. Parameters and their gradients
    are replicated on every rank (no sharding here). world=1 gives the single-process figure.
    """
    per_pos = 32 * hidden if values_per_position is None else values_per_position
    out = []
    for r, block in enumerate(plan_blocks(len(chunk_sizes), world)):
        positions = sum(chunk_positions(chunk_sizes, cfg, k) for k in block)
        n_global, n_temp = slot_counts_at(chunk_sizes, cfg, block.start)
        message = batch * (n_global + n_temp) * hidden * bytes_per_value if r > 0 else 0
        out.append(RankMemory(
            rank=r, chunks=block, positions=positions,
            activation_bytes=batch * positions * n_layers * per_pos * bytes_per_value,
            parameter_bytes=2 * n_params * bytes_per_value, message_bytes=message))
    return out


def wavefront_steps(world: int, n_layers: int, schedule: str = "wavefront") -> list[list[tuple[int, int]]]:
    """Idealised forward timeline: step t lists the (rank, layer) boxes running at t.

    "wavefront": rank r runs layer l at step r + l (L+P-1 steps). "naive": rank r starts only
    once rank r-1 has finished all layers, so rank r runs layer l at step r*L + l (P*L steps)."""
    if schedule not in ("wavefront", "naive"):
        raise ValueError(f"schedule must be 'wavefront' or 'naive', got {schedule!r}")
    n_steps = n_layers + world - 1 if schedule == "wavefront" else world * n_layers
    steps: list[list[tuple[int, int]]] = [[] for _ in range(n_steps)]
    for r in range(world):
        for l in range(n_layers):
            steps[(r + l) if schedule == "wavefront" else (r * n_layers + l)].append((r, l))
    return steps
