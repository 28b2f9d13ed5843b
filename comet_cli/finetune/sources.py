"""Where a recipe's model and data come from: `model.source` resolved to a CoMeT folder (the embedded
default, a tiny random model for tests, a CoMeT folder, or an HF folder / GGUF converted on first use)
and `data.sources` paths resolved against $COMET_DATA and the recipe's folder."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from comet_cli.errors import RecipeError
from comet_cli.finetune.config import Recipe

# tiny-random:<family>: a 2-layer random model with the SmolLM2 vocabulary, for smoke tests and CI.
TINY_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, max_position_embeddings=4096, tie_word_embeddings=True)
TINY_LAYOUT = dict(chunk_size=64, global_slots=4, temp_stride=8, temp_budget=16, rla_rank=4)


def _cache_dir(name: str, key: dict) -> Path:
    import hashlib

    from comet_models.convert import comet_home

    tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    return comet_home() / "models" / f"{name}-{tag}"


def resolve_model_dir(recipe: Recipe, step=lambda msg: None) -> Path:
    """The CoMeT folder a recipe trains, converting `model.source` on first use.

    default        the embedded SmolLM2: with no memory.* keys the shipped default (trained weights
                   when the package has them); with memory.* keys a fresh, untrained conversion
    tiny-random:F  a tiny random model of family F, built and cached in $COMET_HOME
    a CoMeT folder used as is (memory.* must agree with its layout)
    an HF folder or .gguf  converted into $COMET_HOME/models with memory.* as the layout
    """
    from comet_models.convert import convert_model, ensure_default_model

    layout = {k: v for k, v in dataclasses.asdict(recipe.memory).items() if v is not None}
    src = recipe.model.source
    if src == "default":
        if not layout:
            return ensure_default_model(step)
        out = _cache_dir("smollm2-135m-instruct", layout)
        if not (out / "config.json").is_file():
            step(f"converting the embedded default model into {out}")
            convert_model(None, out, layout=layout, force=True, step=step)
        return out
    if src.startswith("tiny-random:"):
        family = src.split(":", 1)[1]
        out = _cache_dir(f"tiny-random-{family}", layout)
        if not (out / "config.json").is_file():
            build_tiny_random(family, out, {**TINY_LAYOUT, **layout}, step)
        return out
    path = Path(src).expanduser()
    if not path.exists():
        raise RecipeError(f"model.source: {src}: no such file or folder (or use 'default', 'tiny-random:llama')")
    conf = path / "config.json"
    comet = json.loads(conf.read_text()).get("comet") if conf.is_file() else None
    if comet:
        from comet_models.config import CometConfig

        have = {k: comet.get(k, getattr(CometConfig, k, None)) for k in layout}  # keys newer than the folder
        differ = {k: (have[k], v) for k, v in layout.items() if have[k] != v}
        if differ:
            raise RecipeError(f"memory: {differ} (folder, recipe) differ from the layout of the CoMeT folder {path}; "
                              "drop those memory.* keys or train from the original Hugging Face model")
        return path
    out = _cache_dir(path.stem or path.name, {"source": str(path.resolve()), **layout})
    if not (out / "config.json").is_file():
        step(f"converting {path} into {out}")
        convert_model(path, out, layout=layout, force=True, step=step)
    return out


def build_tiny_random(family: str, out: Path, layout: dict, step=lambda msg: None) -> Path:
    """A random-weight model of `family` with the SmolLM2 tokenizer, converted into `out`."""
    import shutil

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from comet_models.convert import convert_model, default_gguf
    from comet_models.inject import ALIASES, FAMILIES

    model_type = ALIASES.get(family, family)
    if model_type not in FAMILIES:
        raise RecipeError(f"model.source: tiny-random:{family}: unknown family (known: {', '.join(sorted(FAMILIES))})")
    step(f"building tiny-random:{family}")
    gguf = default_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    conf = AutoConfig.for_model(model_type, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                                eos_token_id=tok.eos_token_id, **TINY_SHAPE)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(conf)
    tmp = out.parent / f".{out.name}.hf-{os.getpid()}"
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        convert_model(tmp, out, layout=layout, force=True, step=step)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def default_data_dir() -> Path:
    """$COMET_DATA, else ../shared/data beside a checkout (where the project keeps its data)."""
    if os.environ.get("COMET_DATA"):
        return Path(os.environ["COMET_DATA"])
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def resolve_path(path: str, recipe_dir: Path | None) -> str:
    """`${COMET_DATA}` (and any other `${VAR}`) expanded; a relative path is relative to the
    recipe file's folder, so a recipe means the same files wherever it is run from."""
    expanded = path.replace("${COMET_DATA}", str(default_data_dir()))
    expanded = os.path.expandvars(expanded)
    if "${" in expanded or "$" in expanded.split("/")[0]:
        raise RecipeError(f"data path {path!r}: environment variable not set")
    p = Path(expanded).expanduser()
    if not p.is_absolute() and recipe_dir is not None:
        p = recipe_dir / p
    return str(p)


def prepare_data_section(data, recipe_dir: Path | None, check: bool = True):
    """A copy of the recipe's data section with every path resolved (and, with check, existing)."""
    from comet_cli.errors import DataError

    sources = []
    for i, spec in enumerate(data.sources):
        fields = {}
        for name in ("paths", "filler"):
            fields[name] = [resolve_path(p, recipe_dir) for p in getattr(spec, name)]
        fields["path"] = resolve_path(spec.path, recipe_dir) if spec.path else None
        if check:
            for original, p in zip(spec.files() + spec.filler, ([fields["path"]] if spec.path else []) +
                                   fields["paths"] + fields["filler"]):
                if not Path(p).is_file():
                    hint = " (set COMET_DATA to the folder holding books/ and babi/)" if "COMET_DATA" in original else ""
                    raise DataError(f"{p}: no such data file (data.sources.{i}){hint}")
        sources.append(dataclasses.replace(spec, **fields))
    return dataclasses.replace(data, sources=sources)
