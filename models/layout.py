"""Where slots and beacons go in a chunk, its position ids, and attention masks.

Pure functions over token ids (METHOD.md sections 4-5). One chunk k >= 1 reads:

    [ (sink) | G global slots | P temp slots | x(s) b x(s) b ... x(<=s) b | G global beacons ]

The first chunk has no global slots (there is no global memory yet), and a chunk carries only
as many temp slots as the FIFO holds valid entries (the validity mask replaces the official
code's masked pads, METHOD.md 6.3). A temp beacon follows every `s` text tokens; a *closed*
chunk also gets one after its trailing partial segment and then the G global beacons. The open
last chunk used for generation gets neither (its text never attends to them anyway), and
decoding keeps the same cadence by counting text tokens only, so training and inference place
beacons identically (METHOD.md 4.4 quirk fixed). Position ids restart at 0 in every chunk.

With `sink_tokens` > 0 (not in the paper) every chunk, the first included, starts with that many
fixed sink tokens that are never overwritten, so position 0 keeps the attention-sink role it has
in the pretrained model instead of holding a memory vector.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import CometConfig


@dataclass(frozen=True)
class ChunkLayout:
    """Index lists of one chunk; every tensor is 1-D over chunk-local positions."""

    n_global: int  # global-memory slots at positions [0, n_global)
    n_temp: int  # temp-memory slots at positions [n_global, n_global + n_temp)
    text_pos: torch.Tensor  # (T,) positions of the text tokens
    temp_beacon_pos: torch.Tensor  # (n_b,) positions of temp beacons
    global_beacon_pos: torch.Tensor  # (G,) positions of global beacons, empty for an open chunk
    length: int  # n: positions in the chunk
    n_sink: int = 0  # fixed sink tokens at positions [0, n_sink), before the slots

    @property
    def n_slots(self) -> int:
        return self.n_global + self.n_temp

    @property
    def slot_end(self) -> int:
        """Position after the last memory slot: slots sit at [n_sink, slot_end)."""
        return self.n_sink + self.n_slots

    @property
    def closed(self) -> bool:
        return self.global_beacon_pos.numel() > 0 or self.n_text == 0

    @property
    def n_text(self) -> int:
        return self.text_pos.numel()


def n_temp_beacons(n_text: int, stride: int, closed: bool) -> int:
    """Temp beacons in a chunk of n_text tokens: one per full segment, plus the partial one if closed."""
    if stride <= 0:
        return 0
    return -(-n_text // stride) if closed else n_text // stride


def chunk_layout(n_text: int, cfg: CometConfig, n_global: int, n_temp: int, closed: bool) -> ChunkLayout:
    """Positions of every element of a chunk holding n_text text tokens."""
    s = cfg.temp_stride if cfg.uses_temp_memory else 0
    n_b = n_temp_beacons(n_text, s, closed)
    n_mem = cfg.sink_tokens + n_global + n_temp
    i = torch.arange(n_text)
    # text token i sits after i tokens and the beacons of the i // s full segments before it
    text_pos = n_mem + i + (i // s if s > 0 else 0)
    j = torch.arange(n_b)
    # beacon j follows text index min((j + 1) * s, T) - 1
    beacon_pos = n_mem + torch.clamp((j + 1) * s, max=n_text) + j
    body_end = n_mem + n_text + n_b
    n_gb = cfg.global_slots if closed else 0
    global_pos = torch.arange(body_end, body_end + n_gb)
    return ChunkLayout(n_global, n_temp, text_pos, beacon_pos, global_pos, body_end + n_gb, cfg.sink_tokens)


def chunk_input_ids(text_ids: torch.Tensor, layout: ChunkLayout, cfg: CometConfig) -> torch.Tensor:
    """Token ids of a chunk: (B, T) text ids -> (B, n) with placeholders, beacons, global beacons."""
    b = text_ids.shape[0]
    ids = torch.full((b, layout.length), cfg.placeholder_id, dtype=torch.long, device=text_ids.device)
    ids[:, layout.text_pos.to(ids.device)] = text_ids
    ids[:, : layout.n_sink] = cfg.sink_id
    ids[:, layout.temp_beacon_pos.to(ids.device)] = cfg.temp_beacon_id
    if layout.global_beacon_pos.numel():
        gb = torch.tensor(cfg.global_beacon_ids[: cfg.global_slots], dtype=torch.long, device=ids.device)
        ids[:, layout.global_beacon_pos.to(ids.device)] = gb
    return ids


def chunk_labels(text_labels: torch.Tensor, layout: ChunkLayout) -> torch.Tensor:
    """(B, T) shifted text labels -> (B, n) labels; slots and beacons get -100 (METHOD.md 4.3)."""
    lab = torch.full((text_labels.shape[0], layout.length), -100, dtype=torch.long, device=text_labels.device)
    lab[:, layout.text_pos.to(lab.device)] = text_labels
    return lab


def layer_window(config, layer_idx: int) -> int | None:
    """The sliding-attention window of one decoder layer, or None for full attention."""
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if types is not None:
        return window if types[layer_idx] == "sliding_attention" else None
    if getattr(config, "use_sliding_window", True) is False:
        return None
    return window


def attention_mask(q_len: int, kv_len: int, window: int | None, device=None) -> torch.Tensor | None:
    """Boolean (1, 1, q, kv) mask, bottom-right aligned causal, limited to `window` keys.

    Returns None where SDPA's own `is_causal` gives the same result (square, no effective window),
    which keeps the fast kernel on the common path."""
    past = kv_len - q_len
    if (window is None or window >= kv_len) and (q_len == kv_len or q_len == 1):
        return None
    q = torch.arange(q_len, device=device).unsqueeze(1) + past
    k = torch.arange(kv_len, device=device).unsqueeze(0)
    allowed = k <= q
    if window is not None:
        allowed &= (q - k) < window
    return allowed[None, None]


def split_chunks(n_tokens: int, chunk_size: int) -> list[int]:
    """Fixed planning: full chunks, remainder last (METHOD.md 8.3 'fixed')."""
    sizes = [chunk_size] * (n_tokens // chunk_size)
    if n_tokens % chunk_size:
        sizes.append(n_tokens % chunk_size)
    return sizes
