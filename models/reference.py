"""The slow, obviously correct chunk loop: a test oracle only, never used by the toolkit.

Everything the fast path vectorises is spelled out here: the chunk is built as a Python list of
token ids, every attention mask is an explicit (n x n) boolean matrix, the gate is evaluated
slot by slot, and the FIFO is a Python list of per-entry vectors. Tests assert the fast engine
(models/chunked.py) matches this loop in outputs and gradients.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .inject import family_of, get_part, memory_layers, rotary_call
from .layout import layer_window


def _build_chunk(text: list[int], cfg, n_global: int, n_temp: int, closed: bool):
    """Token list and role of each position: 's' sink, 'g' slot, 't' slot, 'x' text, 'b' beacon,
    'R' readout."""
    ids, roles = [cfg.sink_id] * cfg.sink_tokens, ["s"] * cfg.sink_tokens
    for _ in range(n_global):
        ids.append(cfg.placeholder_id)
        roles.append("g")
    for _ in range(n_temp):
        ids.append(cfg.placeholder_id)
        roles.append("t")
    s = cfg.temp_stride if cfg.uses_temp_memory else 0
    for i, tok in enumerate(text):
        ids.append(tok)
        roles.append("x")
        last = i == len(text) - 1
        if s and ((i + 1) % s == 0 or (closed and last)):
            ids.append(cfg.temp_beacon_id)
            roles.append("b")
    if closed:
        for j in range(cfg.global_slots):
            ids.append(cfg.global_beacon_ids[j])
            roles.append("R")
    return ids, roles


def _mask(n: int, window):
    m = torch.zeros(n, n, dtype=torch.bool)
    for q in range(n):
        for k in range(q + 1):
            if window is None or q - k < window:
                m[q, k] = True
    return m[None, None]


def _rms(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def reference_forward(model, input_ids: torch.Tensor, chunk_sizes: list[int], keep_temp: bool = True,
                      gate_power: float = 1.0):
    """Chunk-by-chunk forward of a CoMeT model. Returns per-chunk (final hidden (B, n, H), roles).
    keep_temp=False: temp beacons are placed but no FIFO entry is ever kept; gate_power m: each
    slot keeps g**m of its state (training's gate_dilation)."""
    cfg = model.comet_config
    _, fam = family_of(model)
    layers = memory_layers(model)
    embed = get_part(model, fam.embed)
    rotary = rotary_call(model)
    types = getattr(model.config, "layer_types", None) or ["full_attention"] * len(layers)
    states = [None] * len(layers)  # per layer: (B, G, H) global state
    fifos = [[] for _ in layers]  # per layer: list of (B, H) entries, oldest first
    outputs, start = [], 0
    for size in chunk_sizes:
        text = input_ids[0, start:start + size].tolist()
        start += size
        n_global = 0 if states[0] is None else cfg.global_slots
        ids, roles = _build_chunk(text, cfg, n_global, len(fifos[0]), closed=True)
        ids_t = torch.tensor([ids] * input_ids.shape[0])
        h = embed(ids_t)
        pos = torch.arange(len(ids)).unsqueeze(0)
        for l, layer in enumerate(layers):
            mm = layer.comet_memory
            rows = []
            gi = ti = 0
            for p, role in enumerate(roles):
                if role == "g":
                    st = states[l][:, gi]
                    rows.append(st + mm.global_rla.up(mm.global_rla.down(st)))
                    gi += 1
                elif role == "t":
                    rows.append(fifos[l][ti])
                    ti += 1
                else:
                    rows.append(h[:, p])
            h = torch.stack(rows, dim=1)
            out = layer.base_layer(h, attention_mask=_mask(len(ids), layer_window(model.config, l)),
                                   position_ids=pos, position_embeddings=rotary(h, pos, types[l]))
            h = out[0] if isinstance(out, (tuple, list)) else out
            readouts = [h[:, p] for p, r in enumerate(roles) if r == "R"]
            new_state = []
            prev = states[l]  # (B, G, H); before the first chunk the learned initial state, if any
            if prev is None and mm.initial_state is not None:
                prev = mm.initial_state.expand(h.shape[0], -1, -1)
            for j, r in enumerate(readouts):
                rn = _rms(r, mm.global_norm.weight, mm.global_norm.eps)
                if prev is None:
                    new_state.append(rn)
                else:
                    old = prev[:, j].to(rn.dtype)
                    g = torch.sigmoid(torch.cat([rn, old], -1) @ mm.gate.weight[0])[:, None] ** gate_power
                    new_state.append(g * old + (1 - g) * rn)
            if new_state:
                states[l] = torch.stack(new_state, dim=1)
            for p, r in enumerate(roles):
                if r == "b":
                    e = _rms(h[:, p], mm.temp_norm.weight, mm.temp_norm.eps)
                    fifos[l].append(e + mm.temp_rla.up(mm.temp_rla.down(e)))
            fifos[l] = fifos[l][-cfg.temp_budget:] if cfg.temp_budget and keep_temp else []
        outputs.append((h, roles))
    return outputs


def reference_loss(model, input_ids: torch.Tensor, labels: torch.Tensor, chunk_sizes: list[int],
                   keep_temp: bool = True, gate_power: float = 1.0):
    """Summed next-token loss at text positions and its count, from reference_forward."""
    _, fam = family_of(model)
    norm, head = get_part(model, fam.norm), get_part(model, fam.lm_head)
    total, count, start = 0.0, 0, 0
    for (h, roles), size in zip(reference_forward(model, input_ids, chunk_sizes, keep_temp, gate_power), chunk_sizes):
        text_h = torch.stack([h[:, p] for p, r in enumerate(roles) if r == "x"], dim=1)
        lab = labels[:, start:start + size]
        start += size
        keep = lab != -100
        if keep.any():
            logits = head(norm(text_h[keep]))
            cap = getattr(model.config, "final_logit_softcapping", None)
            if cap:
                logits = torch.tanh(logits / cap) * cap
            total = total + F.cross_entropy(logits.float(), lab[keep], reduction="sum")
            count += int(keep.sum())
    return total, count
