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


def pick_device(device: str = "cpu"):
    """--device: auto (CUDA when available, else CPU), cpu, cuda, cuda:N; a one-line error otherwise."""
    import torch

    from comet_cli.errors import InputError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError(f"--device {device}: not a device (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA device is available here (use --device cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"--device {device}: only cpu and cuda are supported")
    return dev


DTYPES = ("float32", "bfloat16")


def dtype_option(help: str):
    """The `--dtype` option of the commands that load a model (one definition, one choice list)."""
    import click

    return click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True, help=help)


def pick_dtype(name: str = "float32"):
    """--dtype: float32 (exact, the default) or bfloat16 (half the weight memory; on CPUs with
    AVX512-BF16 or AMX, and on GPUs, several times faster); a one-line error otherwise."""
    import torch

    from comet_cli.errors import InputError

    if name not in DTYPES:
        raise InputError(f"--dtype {name}: not supported (use {' or '.join(DTYPES)})")
    return getattr(torch, name)


def load_model(model: str | None, step=lambda msg: None, memory_weights: str | None = None, device: str = "cpu",
               dtype: str = "float32"):
    """(model, tokenizer, folder) for --model, converting the embedded default if needed; the model
    is loaded in `dtype` and moved to `device` (the streaming runtime follows it; states stay on
    the host, in the model's dtype)."""
    quiet_transformers()
    from comet_models.convert import load_comet

    dev, dt = pick_device(device), pick_dtype(dtype)
    folder = resolve_model_dir(model, step)
    step(f"loading {folder}")
    m, tok = load_comet(folder, memory_weights=memory_weights, dtype=dt)
    return m.to(dev), tok, folder
