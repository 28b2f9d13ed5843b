"""MemoryLayer: wraps any Hugging Face decoder layer and calls it untouched.

The wrapper touches only `hidden_states`: it writes the memory vectors over the chunk's slot
positions, passes every other argument through to the original layer, accepts either return
shape (tensor or tuple, which changed across transformers versions), and reads the new memory
off the outputs at the beacon positions. Memory is a value passed in and returned
(`LayerMemory`), never stored on the module between calls.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import CometConfig
from .layout import ChunkLayout
from .memory import LayerMemory, MemoryModules, fifo_push, memory_slots


def first_output(out) -> torch.Tensor:
    """Hidden states from a decoder layer's return value, whatever its shape."""
    return out[0] if isinstance(out, (tuple, list)) else out


class MemoryLayer(nn.Module):
    """A decoder layer plus its memory modules (`comet_memory`)."""

    def __init__(self, base_layer: nn.Module, hidden: int, cfg: CometConfig):
        super().__init__()
        self.base_layer = base_layer
        self.comet_memory = MemoryModules(hidden, cfg.rla_rank,
                                           initial_slots=cfg.global_slots if cfg.initial_state else 0)
        self.comet_cfg = cfg
        ref = next(base_layer.parameters())
        self.comet_memory.to(device=ref.device, dtype=ref.dtype)

    def forward(self, hidden_states, *args, **kwargs):
        """Plain call: the base layer, unchanged (used when no chunk is being processed)."""
        return self.base_layer(hidden_states, *args, **kwargs)

    def forward_chunk(self, hidden_states: torch.Tensor, mem: LayerMemory, layout: ChunkLayout,
                      keep_temp: bool = True, gate_power: float = 1.0,
                      **layer_kwargs) -> tuple[torch.Tensor, LayerMemory]:
        """Run one chunk through this layer with memory `mem`; return outputs and new memory.

        hidden_states: (B, n, H) for the chunk; positions [layout.n_sink, layout.slot_end) are slots.
        keep_temp=False writes no FIFO entries (the beacons stay in the chunk, their outputs unused).
        gate_power: see MemoryModules.update_global (1 outside training's gate_dilation).
        """
        slots = memory_slots(self.comet_memory, mem)
        if slots is not None:
            # overwrite (not add) the slot positions, keeping autograd intact
            hidden_states = torch.cat([hidden_states[:, :layout.n_sink], slots.to(hidden_states.dtype),
                                       hidden_states[:, layout.slot_end:]], dim=1)
        y = first_output(self.base_layer(hidden_states, **layer_kwargs))
        return y, self.update_memory(y, mem, layout, keep_temp, gate_power)

    def update_memory(self, y: torch.Tensor, mem: LayerMemory, layout: ChunkLayout,
                      keep_temp: bool = True, gate_power: float = 1.0) -> LayerMemory:
        """Write the chunk's beacon outputs into the global state and the FIFO."""
        if not layout.closed:
            return mem
        cfg = self.comet_cfg
        state = mem.global_state
        if layout.global_beacon_pos.numel():
            readout = y[:, layout.global_beacon_pos.to(y.device)]  # (B, G, H)
            state = self.comet_memory.update_global(state, readout, gate_power)
        temp = mem.temp_memory
        if keep_temp and cfg.uses_temp_memory and layout.temp_beacon_pos.numel():
            entries = self.comet_memory.write_temp(y[:, layout.temp_beacon_pos.to(y.device)])  # (B, n_b, H)
            temp = fifo_push(temp, entries, cfg.temp_budget)
        return LayerMemory(state, temp)
