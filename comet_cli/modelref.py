"""Resolve `--model`: a CoMeT folder, or the embedded default converted on first use."""
from __future__ import annotations

import os


def quiet_transformers() -> None:
    """Silence transformers' own tqdm bars and info logs; our progress goes through rich."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # the GGUF de-quantizer uses its own tqdm bar, outside transformers' switch
    os.environ.setdefault("TQDM_DISABLE", "1")
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def resolve_model_dir(model: str | None, step=lambda msg: None):
    from comet_models.convert import ensure_default_model

    if model:
        return model
    return ensure_default_model(step=step)


def load_model(model: str | None, step=lambda msg: None, memory_weights: str | None = None):
    """(model, tokenizer, folder) for --model, converting the embedded default if needed."""
    quiet_transformers()
    from comet_models.convert import load_comet

    folder = resolve_model_dir(model, step)
    step(f"loading {folder}")
    m, tok = load_comet(folder, memory_weights=memory_weights)
    return m, tok, folder
