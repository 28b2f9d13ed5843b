"""The FAMILIES table and inject_memory / remove_memory (PEFT-style, on the instance).

Per-family facts are rows of one table; nothing is subclassed or patched at class level. A
family not in the table gets an error naming the supported ones and the escape hatch
(`register_family`), which works for any decoder-only model whose layers follow the
`layer(hidden_states, attention_mask=, position_ids=, position_embeddings=, cache=)` contract
(the KV-cache keyword is `cache` from transformers 5.2x, `past_key_values` before: `cache_kwarg`).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from .config import CometConfig
from .layer import MemoryLayer

MEMORY_PREFIX = "comet_memory"


@dataclass(frozen=True)
class Family:
    """Where a family keeps its parts (dotted attribute paths from the *ForCausalLM module)."""

    layers: str = "model.layers"
    embed: str = "model.embed_tokens"
    norm: str = "model.norm"
    rotary: str = "model.rotary_emb"
    lm_head: str = "lm_head"
    # Notes shown by `comet info`; sliding windows are read per layer from the config.
    note: str = ""


FAMILIES: dict[str, Family] = {
    "llama": Family(note="full attention (SmolLM2, Llama 2/3)"),
    "mistral": Family(note="sliding window applied inside each chunk"),
    "qwen2": Family(note="full attention unless use_sliding_window"),
    "qwen3": Family(note="full attention unless use_sliding_window"),
    "gemma3_text": Family(note="5 of 6 layers slide (window 512) inside each chunk; rotary per layer type"),
}
ALIASES = {"gemma3": "gemma3_text"}


def register_family(model_type: str, family: Family) -> None:
    """Escape hatch: add a row for a decoder-only family with the standard layer contract."""
    FAMILIES[model_type] = family


def family_of(model) -> tuple[str, Family]:
    from comet_cli.errors import UnsupportedModelError

    model_type = getattr(model.config, "model_type", None)
    model_type = ALIASES.get(model_type, model_type)
    if model_type not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise UnsupportedModelError(
            f"model_type '{model_type}' is not supported (supported: {known}); a decoder-only model with "
            "the standard layer contract can be added with comet_models.inject.register_family")
    return model_type, FAMILIES[model_type]


def get_part(model, path: str):
    obj = model
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def inject_memory(model: nn.Module, cfg: CometConfig) -> nn.Module:
    """Wrap every decoder layer of `model` in a MemoryLayer (in place) and return the model.

    The token ids in `cfg` must already exist in the embedding (see add_memory_tokens).
    Attention runs through SDPA so that chunk masks are boolean and the causal fast path is used.
    """
    from comet_cli.errors import ModelError

    _, fam = family_of(model)
    if cfg.placeholder_id < 0 or len(cfg.global_beacon_ids) < cfg.global_slots or (cfg.sink_tokens and cfg.sink_id < 0):
        raise ModelError("memory tokens are not in the vocabulary yet; call add_memory_tokens first")
    layers = get_part(model, fam.layers)
    if layers and isinstance(layers[0], MemoryLayer):
        raise ModelError("memory is already injected into this model")
    hidden = model.config.hidden_size
    for i, layer in enumerate(layers):
        layers[i] = MemoryLayer(layer, hidden, cfg)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("sdpa")
    model.config.comet = cfg.to_dict()
    model.comet_config = cfg
    return model


def remove_memory(model: nn.Module) -> nn.Module:
    """Undo inject_memory: put the original decoder layers back."""
    _, fam = family_of(model)
    layers = get_part(model, fam.layers)
    for i, layer in enumerate(layers):
        if isinstance(layer, MemoryLayer):
            layers[i] = layer.base_layer
    model.__dict__.pop("comet_config", None)
    if hasattr(model.config, "comet"):
        del model.config.comet
    return model


def memory_layers(model) -> list[MemoryLayer]:
    _, fam = family_of(model)
    layers = list(get_part(model, fam.layers))
    if not layers or not isinstance(layers[0], MemoryLayer):
        from comet_cli.errors import ModelError
        raise ModelError("this model has no CoMeT memory; run inject_memory or load a converted folder")
    return layers


def add_memory_tokens(model, cfg: CometConfig, tokenizer=None) -> CometConfig:
    """Add the placeholder, temp-beacon and G global-beacon tokens; resize the embeddings.

    New rows are drawn around the mean of the existing embeddings (METHOD.md section 3). Without
    a tokenizer (tiny test models) the ids are appended after the current vocabulary.
    """
    from .config import PLACEHOLDER_TOKEN, TEMP_BEACON_TOKEN, global_beacon_token

    names = [PLACEHOLDER_TOKEN, TEMP_BEACON_TOKEN] + [global_beacon_token(i) for i in range(cfg.global_slots)]
    old_rows = model.get_input_embeddings().weight.shape[0]
    if tokenizer is not None:
        tokenizer.add_special_tokens({"additional_special_tokens": names}, replace_extra_special_tokens=False)
        ids = tokenizer.convert_tokens_to_ids(names)
        needed = len(tokenizer)
    else:
        ids = list(range(old_rows, old_rows + len(names)))
        needed = old_rows + len(names)
    if needed > old_rows:
        gen = torch.Generator().manual_seed(0)
        emb = model.get_input_embeddings().weight
        with torch.no_grad():
            mean = emb.float().mean(0)
            std = emb.float().std(0)
        model.resize_token_embeddings(needed, mean_resizing=False)
        with torch.no_grad():
            new = mean + 0.1 * std * torch.randn(needed - old_rows, emb.shape[1], generator=gen)
            model.get_input_embeddings().weight[old_rows:] = new.to(emb.dtype)
            out = model.get_output_embeddings()
            if out is not None and out.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
                out.weight[old_rows:] = new.to(out.weight.dtype)
    cfg.placeholder_id, cfg.temp_beacon_id = ids[0], ids[1]
    cfg.global_beacon_ids = list(ids[2:])
    if cfg.sink_tokens and cfg.sink_id < 0:
        # the token pretrained models see first (BOS), else the placeholder (a learned row)
        bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
        cfg.sink_id = bos if bos is not None else cfg.placeholder_id
    return cfg


def cache_kwarg(layer: nn.Module) -> str:
    """The keyword a decoder layer takes its KV cache by: `cache` in newer transformers,
    `past_key_values` (or `past_key_value`) in older ones."""
    params = inspect.signature(layer.forward).parameters
    for name in ("cache", "past_key_values", "past_key_value"):
        if name in params:
            return name
    return "cache"


def rotary_call(model):
    """fn(hidden, position_ids, layer_type) -> (cos, sin) for this family's rotary module."""
    _, fam = family_of(model)
    rotary = get_part(model, fam.rotary)
    takes_type = "layer_type" in inspect.signature(rotary.forward).parameters
    if takes_type:
        return lambda h, pos, layer_type: rotary(h, pos, layer_type)
    return lambda h, pos, layer_type: rotary(h, pos)
