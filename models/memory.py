"""The memory math: gated global memory, FIFO temporary memory (METHOD.md 6.2-6.3, 7).

Per decoder layer l and chunk k, with R the layer outputs at the G global beacons and C those at
the temp beacons:

    R~  = RMSNorm_g(R)                                     (B, G, H)
    S_k = R~                                   if k == 0   (first write: no gate)
          (with `initial_state`, ours: S_{-1} is a learned (G, H) per layer and k == 0 is gated too)
    S_k = g * S_{k-1} + (1 - g) * R~,  g = sigmoid(W_g [R~; S_{k-1}])   one scalar per slot
          (training may raise g to a power m >= 1: `train.gate_dilation`, see update_global)
    Gmem_k = S_k + U_g D_g S_k                             rank-r residual projection (RLA)
    E   = RMSNorm_t(C);  E = E + U_t D_t E                 new FIFO entries (B, n_b, H)
    FIFO_k = newest B_T of concat(FIFO_{k-1}, E)

`U` starts at zero (like LoRA's B), so at initialisation the memory read is exactly the
normalised state. Every parameter lives under the `comet_memory` name prefix.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class LowRankResidual(nn.Module):
    """x + U(D(x)) with D: H -> r, U: r -> H, no bias; U = 0 at init (exact identity)."""

    def __init__(self, hidden: int, rank: int):
        super().__init__()
        self.down = nn.Linear(hidden, rank, bias=False)
        self.up = nn.Linear(rank, hidden, bias=False)
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.down(x))


class MemoryModules(nn.Module):
    """The 36*H + 4*r*H new parameters of one layer (METHOD.md section 7)."""

    def __init__(self, hidden: int, rank: int = 8, eps: float = 1e-6, initial_slots: int = 0):
        super().__init__()
        # A learned state before the first chunk (CometConfig.initial_state): the first write is
        # then gated like every later one. Zero at conversion; never read by the first chunk.
        self.initial_state = nn.Parameter(torch.zeros(initial_slots, hidden)) if initial_slots else None
        self.global_norm = nn.RMSNorm(hidden, eps=eps)
        self.gate = nn.Linear(2 * hidden, 1, bias=False)
        nn.init.normal_(self.gate.weight, std=0.02)
        self.global_rla = LowRankResidual(hidden, rank)
        self.temp_norm = nn.RMSNorm(hidden, eps=1e-12)
        self.temp_rla = LowRankResidual(hidden, rank)

    def read_global(self, state: torch.Tensor) -> torch.Tensor:
        """Global memory injected into the slots: RLA(S).  (B, G, H) -> (B, G, H)"""
        return self.global_rla(state)

    def update_global(self, state: torch.Tensor | None, readout: torch.Tensor,
                      gate_power: float = 1.0) -> torch.Tensor:
        """Gated update of the global state from the global-beacon outputs (B, G, H).

        gate_power m != 1 (training's `gate_dilation` only) keeps g**m of the state, as if the chunk
        were m chunks: a slot then has to keep for m times as many writes as the sample has."""
        r = self.global_norm(readout)
        if state is None:
            if self.initial_state is None:
                return r
            state = self.initial_state.to(r.dtype).expand(r.shape[0], -1, -1)
        # (B, G, 2H) -> (B, G, 1): one gate value per slot
        g = torch.sigmoid(self.gate(torch.cat([r, state.to(r.dtype)], dim=-1)))
        if gate_power != 1.0:
            g = g ** gate_power
        return g * state + (1 - g) * r

    def write_temp(self, beacon_out: torch.Tensor) -> torch.Tensor:
        """New FIFO entries from the temp-beacon outputs.  (B, n_b, H) -> (B, n_b, H)"""
        return self.temp_rla(self.temp_norm(beacon_out))


@dataclass
class LayerMemory:
    """What one layer carries from chunk to chunk: global state and the valid FIFO entries."""

    global_state: torch.Tensor | None  # (B, G, H), None before the first closed chunk
    temp_memory: torch.Tensor | None  # (B, P, H) valid entries, oldest first, P <= B_T

    @property
    def n_global(self) -> int:
        return 0 if self.global_state is None else self.global_state.shape[1]

    @property
    def n_temp(self) -> int:
        return 0 if self.temp_memory is None else self.temp_memory.shape[1]


def fifo_push(queue: torch.Tensor | None, entries: torch.Tensor, budget: int) -> torch.Tensor | None:
    """Append new entries and keep the newest `budget`, in creation order (METHOD.md 6.3)."""
    if entries.shape[1] == 0:
        return queue
    q = entries if queue is None else torch.cat([queue, entries], dim=1)
    return q[:, -budget:] if q.shape[1] > budget else q


def memory_slots(memory: "MemoryModules", mem: LayerMemory) -> torch.Tensor | None:
    """Vectors written over the chunk's memory slots: [RLA(S) ; FIFO]  (B, G + P, H)."""
    parts = []
    if mem.global_state is not None:
        parts.append(memory.read_global(mem.global_state))
    if mem.temp_memory is not None and mem.temp_memory.shape[1]:
        parts.append(mem.temp_memory)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
