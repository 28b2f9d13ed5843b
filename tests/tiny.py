"""Tiny random-weight models of every FAMILIES row, built from configs (never downloaded)."""
from __future__ import annotations

import torch
from transformers import (AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, MistralConfig, Qwen2Config,
                          Qwen3Config)

from comet_models.config import CometConfig
from comet_models.inject import add_memory_tokens, inject_memory

COMMON = dict(vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=512, head_dim=8)

CONFIGS = {
    "llama": lambda: LlamaConfig(**COMMON),
    "mistral": lambda: MistralConfig(**COMMON, sliding_window=12),
    "qwen2": lambda: Qwen2Config(**COMMON),
    "qwen3": lambda: Qwen3Config(**COMMON),
    # window smaller than a chunk so the sliding mask inside a chunk is exercised
    "gemma3_text": lambda: Gemma3TextConfig(**COMMON, sliding_window=10,
                                            layer_types=["sliding_attention", "full_attention"]),
}

LAYOUT = dict(chunk_size=16, global_slots=4, temp_stride=4, temp_budget=6)


def base_model(family: str, seed: int = 0):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(CONFIGS[family](), attn_implementation="sdpa").eval()


def comet_model(family: str = "llama", seed: int = 0, randomize_memory: bool = True, **layout):
    """A tiny CoMeT model; memory weights randomised so that tests see non-trivial memory."""
    m = base_model(family, seed)
    cfg = CometConfig(**{**LAYOUT, **layout})
    add_memory_tokens(m, cfg)
    inject_memory(m, cfg)
    if randomize_memory:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for n, p in m.named_parameters():
                if "comet_memory" in n and "norm" not in n:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return m


def sample(n: int, seed: int = 0, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 99, (batch, n), generator=g)
    labels = torch.cat([ids[:, 1:], torch.full((batch, 1), -100)], dim=1)
    return ids, labels
