"""The fast chunk engine: one (layer, chunk) cell at a time, in either order.

Cell (l, k) needs the hidden states of cell (l-1, k) and the memory of cell (l, k-1)
(METHOD.md 6.1), so chunk-major order (inference: all layers of a chunk, then the next chunk)
and layer-major order (training and the pipeline: one layer over all chunks, then the next
layer) compute identical values from the same `cell` function.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .config import CometConfig
from .inject import cache_kwarg, family_of, get_part, memory_layers, rotary_call
from .layout import ChunkLayout, attention_mask, chunk_input_ids, chunk_labels, chunk_layout, layer_window
from .memory import LayerMemory


@dataclass
class ChunkContext:
    """Per-chunk inputs shared by all layers: layout, positions, rotary tables, masks."""

    layout: ChunkLayout
    position_ids: torch.Tensor  # (1, n)
    rotary: dict = field(default_factory=dict)  # layer_type -> (cos, sin)
    masks: dict = field(default_factory=dict)  # window -> bool mask or None
    cache: object = None


class Engine:
    """Holds references to a CoMeT-injected model's parts; stateless between calls.

    keep_temp=False runs without temporary memory: chunks still carry their temp beacons (the
    layout of the text is unchanged) but the FIFO is never kept, so nothing but the global memory
    links one chunk to the next (training's `fifo_dropout`). gate_power m keeps g**m of each global
    slot per chunk instead of g (training's `gate_dilation`; 1 everywhere else)."""

    def __init__(self, model, keep_temp: bool = True, gate_power: float = 1.0):
        self.model = model
        self.keep_temp = keep_temp
        self.gate_power = gate_power
        self.cfg: CometConfig = model.comet_config
        _, fam = family_of(model)
        self.layers = memory_layers(model)
        self.embed = get_part(model, fam.embed)
        self.norm = get_part(model, fam.norm)
        self.lm_head = get_part(model, fam.lm_head)
        self.rotary = rotary_call(model)
        conf = model.config
        self.windows = [layer_window(conf, i) for i in range(len(self.layers))]
        types = getattr(conf, "layer_types", None)
        self.layer_types = list(types) if types else ["full_attention"] * len(self.layers)
        self.softcap = getattr(conf, "final_logit_softcapping", None)
        self.cache_kw = cache_kwarg(self.layers[0].base_layer)

    @property
    def device(self):
        return self.embed.weight.device

    def empty_memory(self) -> list[LayerMemory]:
        return [LayerMemory(None, None) for _ in self.layers]

    # -- one chunk's inputs -------------------------------------------------------------
    def prepare(self, text_ids: torch.Tensor, mems: list[LayerMemory], closed: bool):
        """Token ids, layout and context of the chunk holding text_ids (B, T) after memory mems."""
        layout = chunk_layout(text_ids.shape[1], self.cfg, mems[0].n_global, mems[0].n_temp, closed)
        ids = chunk_input_ids(text_ids.to(self.device), layout, self.cfg)
        ctx = ChunkContext(layout, torch.arange(layout.length, device=self.device).unsqueeze(0))
        return ids, ctx

    def layer_kwargs(self, l: int, h: torch.Tensor, ctx: ChunkContext, past: int = 0) -> dict:
        ltype = self.layer_types[l]
        if ltype not in ctx.rotary:
            ctx.rotary[ltype] = self.rotary(h, ctx.position_ids, ltype)
        w = self.windows[l]
        if w not in ctx.masks:
            q = ctx.position_ids.shape[1]
            ctx.masks[w] = attention_mask(q, q + past, w, h.device)
        kw = dict(attention_mask=ctx.masks[w], position_ids=ctx.position_ids,
                  position_embeddings=ctx.rotary[ltype])
        if ctx.cache is not None:
            kw.update({self.cache_kw: ctx.cache, "use_cache": True})
        return kw

    # -- cells --------------------------------------------------------------------------
    def cell(self, l: int, h: torch.Tensor, mem: LayerMemory, ctx: ChunkContext):
        """Layer l on one chunk: (hidden (B, n, H), memory of layer l) -> (hidden, new memory)."""
        return self.layers[l].forward_chunk(h, mem, ctx.layout, self.keep_temp, self.gate_power,
                                            **self.layer_kwargs(l, h, ctx))

    def run_chunk(self, text_ids: torch.Tensor, mems: list[LayerMemory], closed: bool = True,
                  cache=None) -> tuple[torch.Tensor, ChunkContext, list[LayerMemory]]:
        """Chunk-major: all layers on one chunk. Returns final hidden (B, n, H) (before the final norm)."""
        ids, ctx = self.prepare(text_ids, mems, closed)
        ctx.cache = cache
        h = self.embed(ids)
        new = []
        for l in range(len(self.layers)):
            h, m = self.cell(l, h, mems[l], ctx)
            new.append(m)
        return h, ctx, new

    def run_layer_major(self, text_chunks: list[torch.Tensor], mems: list[LayerMemory],
                        last_closed: bool = True):
        """Layer-major: each layer over all chunks. Returns per-chunk final hidden, contexts, memory."""
        prepared, m0 = [], mems
        # layouts only depend on slot counts, which follow from the chunk sequence
        for k, t in enumerate(text_chunks):
            closed = last_closed or k < len(text_chunks) - 1
            ids, ctx = self.prepare(t, m0, closed)
            prepared.append((ids, ctx))
            m0 = [self._after(m0[0], ctx.layout, t.shape[0])]
        hs = [self.embed(ids) for ids, _ in prepared]
        out_mems = []
        for l in range(len(self.layers)):
            mem = mems[l]
            for k, (_, ctx) in enumerate(prepared):
                hs[k], mem = self.cell(l, hs[k], mem, ctx)
            out_mems.append(mem)
        return hs, [c for _, c in prepared], out_mems

    def _after(self, mem: LayerMemory, layout: ChunkLayout, batch: int) -> LayerMemory:
        """Slot counts after a chunk, as a shape-only LayerMemory (for planning layouts)."""
        if not layout.closed:
            return mem
        g = torch.empty(batch, self.cfg.global_slots, 0) if self.cfg.global_slots else None
        n_t = min(mem.n_temp + layout.temp_beacon_pos.numel(), self.cfg.temp_budget) \
            if self.cfg.uses_temp_memory and self.keep_temp else 0
        return LayerMemory(g, torch.empty(batch, n_t, 0) if n_t else None)

    # -- heads --------------------------------------------------------------------------
    def logits(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(self.norm(h))
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def text_loss(self, hs: list[torch.Tensor], ctxs: list[ChunkContext], text_labels: list[torch.Tensor]):
        """Summed cross-entropy over supervised text positions, and their count."""
        total = hs[0].new_zeros(())
        count = 0
        for h, ctx, lab in zip(hs, ctxs, text_labels):
            lab = chunk_labels(lab.to(h.device), ctx.layout)
            sel = lab != -100
            n = int(sel.sum())
            if n:
                logits = self.logits(h[sel])
                total = total + F.cross_entropy(logits.float(), lab[sel], reduction="sum")
                count += n
        return total, count


def sequence_loss(model, input_ids: torch.Tensor, labels: torch.Tensor, chunk_sizes: list[int],
                  order: str = "layer", keep_temp: bool = True, gate_power: float = 1.0):
    """Training forward over one (B, N) sample cut into chunk_sizes; labels already shifted.

    Returns (summed loss, supervised token count). `order` is "layer" or "chunk"; both agree.
    keep_temp=False: without temporary memory; gate_power: gates raised to this power (see Engine)."""
    eng = Engine(model, keep_temp, gate_power)
    bounds = torch.tensor([0] + chunk_sizes).cumsum(0).tolist()
    t_chunks = [input_ids[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    l_chunks = [labels[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    if order == "layer":
        hs, ctxs, _ = eng.run_layer_major(t_chunks, eng.empty_memory())
    else:
        hs, ctxs, mems = [], [], eng.empty_memory()
        for t in t_chunks:
            h, ctx, mems = eng.run_chunk(t, mems, closed=True)
            hs.append(h)
            ctxs.append(ctx)
    return eng.text_loss(hs, ctxs, l_chunks)
