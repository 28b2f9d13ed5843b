"""Shared fixtures for the summarize/ask/plan tests: a tiny CoMeT model with the real SmolLM2
tokenizer, and a way to run `comet` in-process and capture stdout, stderr and the exit code."""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest

TINY_LAYOUT = dict(chunk_size=64, global_slots=4, temp_stride=8, temp_budget=16)


def build_tiny_model(root: Path) -> Path:
    """A random 2-layer, hidden-32 Llama with SmolLM2's tokenizer, converted to CoMeT."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from comet_models.convert import DEFAULT_GGUF, DEFAULT_PACKAGE, convert_model

    pkg = Path(list(importlib.util.find_spec(DEFAULT_PACKAGE).submodule_search_locations)[0])
    tok = AutoTokenizer.from_pretrained(pkg, gguf_file=DEFAULT_GGUF)
    torch.manual_seed(0)
    conf = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=2048,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    hf = root / "tiny-hf"
    LlamaForCausalLM(conf).save_pretrained(hf)
    tok.save_pretrained(hf)
    return convert_model(str(hf), root / "tiny-comet", layout=TINY_LAYOUT)


_BUILT: dict[str, str] = {}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    # imported into several test modules, each of which gets its own fixture: build only once
    key = str(tmp_path_factory.getbasetemp())
    if key not in _BUILT:
        _BUILT[key] = str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))
    return _BUILT[key]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models are bound by per-op overhead; a second thread only fights other processes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def comet(monkeypatch, capsys):
    """run(*args) -> (exit code, stdout, stderr) of `comet ARGS`, through cli.main's error boundary."""
    from rich.console import Console

    from comet_cli import console
    from comet_cli.cli import main

    def run(*args):
        buf = io.StringIO()
        monkeypatch.setattr(console, "err", Console(file=buf, highlight=False, soft_wrap=True, width=400))
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        out = capsys.readouterr().out
        return code, out, buf.getvalue()

    return run


def write_text(path: Path, paragraphs: int, seed: int = 0) -> Path:
    """A deterministic text file of roughly 60 characters per paragraph line."""
    words = "the memory reads every chunk and keeps a small state of fixed size while text streams".split()
    lines = []
    for i in range(paragraphs):
        k = (i * 7 + seed) % len(words)
        lines.append(f"{i:05d} " + " ".join(words[k:] + words[:k]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
