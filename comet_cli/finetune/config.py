"""Fine-tuning recipes: the dataclasses are the schema, a YAML recipe is one serialized.

Loading is strict: an unknown key fails and names the nearest valid one, every value is checked
against its field's type, and `key.sub=value` overrides (values parsed as YAML) go through the same
checks. Defaults follow METHOD.md section 8.1 (AdamW, base LR 5e-5, memory modules at 5x, cosine
with 10 warm-up steps, gradient clip 1.5).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from comet_cli.errors import RecipeError
from comet_cli.finetune.planning import STRATEGIES
from comet_cli.finetune.typed_yaml import check_value, closest, key_lines
from comet_models.config import CometConfig

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass
class ModelSection:
    """source: a CoMeT folder, an HF folder, a .gguf file, "default" (the embedded SmolLM2) or
    "tiny-random:<family>" (llama, mistral, qwen2, qwen3, gemma3) for a tiny model built from a config."""

    source: str = "default"
    dtype: Dtype = "auto"


@dataclass
class MemorySection:
    """Overrides of the model's CometConfig layout; None keeps the model's (or CometConfig's) value."""

    chunk_size: int | None = None
    global_slots: int | None = None
    temp_stride: int | None = None
    temp_budget: int | None = None
    rla_rank: int | None = None
    sink_tokens: int | None = None
    initial_state: bool | None = None

    def apply(self, base: CometConfig) -> CometConfig:
        """`base` with the set fields replaced."""
        changes = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        try:
            return dataclasses.replace(base, **changes)
        except ValueError as e:
            raise RecipeError(f"memory: {e}") from None


@dataclass
class SourceSpec:
    """One data source. chat_jsonl/text read `path`/`paths`; passkey and recall read book text from
    `filler`; babilong reads bAbI files from `path`/`paths` and book text from `filler`. `depth`
    bounds the relative depth of a pass key or recall passage; `passage_tokens` the length of a
    recall passage; `keys` which pass keys a passkey source draws: any, repeat (some digit twice) or
    distinct (five different digits)."""

    kind: Literal["chat_jsonl", "text", "passkey", "babilong", "recall"] = "chat_jsonl"
    path: str | None = None
    paths: list[str] = field(default_factory=list)
    weight: float = 1.0
    filler: list[str] = field(default_factory=list)
    depth: list[float] = field(default_factory=lambda: [0.0, 1.0])
    passage_tokens: list[int] = field(default_factory=lambda: [32, 96])
    keys: Literal["any", "repeat", "distinct"] = "any"

    def files(self) -> list[str]:
        """`path` and `paths` together, in that order."""
        return ([self.path] if self.path else []) + list(self.paths)


@dataclass
class DataSection:
    """max_tokens: tokens per sample. Synthetic samples get a length of k * chunk_size tokens with
    k uniform in [min_chunks, max_chunks] (capped at max_tokens); max_chunks is also the planner's K.
    whole_chunks: false draws any length in ((min_chunks - 1) * chunk_size, max_tokens] instead, so the
    question and answer sit anywhere in a final chunk of any fill, as in `comet ask` (whole chunks
    put them at the end of an almost full one, and the answers then depend on where they fall).
    planner: {strategy: weight} for every length, or None for METHOD.md 8.3's table.
    opening_tokens: N > 0 closes the first N tokens of every sample as a chunk of their own and plans
    the rest as usual (so a chat sample's frame, SmolLM2's 24-token prefix, is read as an opening chunk
    and no document text is in the first chunk); the opening chunk comes on top of max_chunks."""

    sources: list[SourceSpec] = field(default_factory=list)
    max_tokens: int = 4096
    min_chunks: int = 1
    max_chunks: int = 16
    seed: int = 0
    planner: dict[str, float] | None = None
    whole_chunks: bool = True
    opening_tokens: int = 0


@dataclass
class TrainableSection:
    """mode: memory (memory modules + new token embeddings), lora (those plus LoRA adapters on
    lora_targets), full (everything). Memory modules train at lr * memory_lr_mult."""

    mode: Literal["memory", "lora", "full"] = "memory"
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    memory_lr_mult: float = 5.0


@dataclass
class OptimSection:
    lr: float = 5e-5
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int = 10
    schedule: Literal["cosine", "constant"] = "cosine"
    grad_clip: float = 1.5


@dataclass
class TrainSection:
    steps: int = 1000
    batch_size: int = 1
    grad_accum: int = 1
    seed: int = 0
    log_every: int = 10
    output_dir: str = "runs/comet"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Dtype = "auto"
    # Wall-clock budget of one invocation in minutes (0: none). Training stops after the step that
    # uses it up, checkpoints and exports; a cosine schedule then decays by time as well as steps.
    max_minutes: float = 0.0
    # Probability that a sample is trained without temporary memory (its FIFO is never kept), so
    # that what the question needs from earlier chunks must come through the global memory.
    fifo_dropout: float = 0.0
    # Largest gate power m (1: off). Each sample draws m log-uniformly from [1, gate_dilation] and its
    # global slots keep g**m per chunk instead of g, as if each chunk were m chunks: an 8-chunk sample
    # then asks a slot to keep through up to 7*m writes, far beyond what the sample's length asks.
    gate_dilation: float = 1.0


@dataclass
class ParallelSection:
    """nproc > 1 splits the layers over processes (METHOD.md section 10)."""

    nproc: int = 1
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    schedule: Literal["wavefront", "naive"] = "wavefront"


@dataclass
class CheckpointSection:
    every: int = 500
    keep: int = 2


@dataclass
class EvalSection:
    """every: evaluate every N steps (0 = only at the end)."""

    every: int = 0
    passkey_lengths: list[int] = field(default_factory=lambda: [1024, 4096])
    samples: int = 20


@dataclass
class Recipe:
    model: ModelSection = field(default_factory=ModelSection)
    memory: MemorySection = field(default_factory=MemorySection)
    data: DataSection = field(default_factory=DataSection)
    trainable: TrainableSection = field(default_factory=TrainableSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    parallel: ParallelSection = field(default_factory=ParallelSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    eval: EvalSection = field(default_factory=EvalSection)


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read a YAML recipe, apply `key.sub=value` overrides, validate. Raises RecipeError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: cannot read recipe ({e})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        reason = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise RecipeError(f"{where}: not valid YAML ({reason})") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of sections (model, data, optim, ...), "
                          f"got {type(raw).__name__}")
    lines = key_lines(node)
    recipe = check_value(raw, Recipe, "", lambda key: f"{path}:{lines[key]}" if key in lines else str(path))
    for item in overrides:
        recipe = apply_override(recipe, item)
    validate_recipe(recipe, str(path))
    return recipe


def apply_override(recipe: Recipe, override: str) -> Recipe:
    """A copy of `recipe` with one `dotted.key=value` override applied (value parsed as YAML and
    type-checked; list items by index, e.g. `data.sources.0.weight=2`)."""
    def where(_key: str) -> str:
        return f"override {override!r}"

    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"override {override!r}: expected key.sub=value, e.g. optim.lr=1e-4")
    raw = recipe_to_dict(recipe)
    parts = key.split(".")
    target, done = raw, []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(target, list):
            if not part.isdigit() or int(part) >= len(target):
                raise RecipeError(f"{where(key)}: '{'.'.join(done)}' has {len(target)} items, "
                                  f"{part!r} is not an index of one")
            part = int(part)
        elif not isinstance(target, dict) or part not in target:
            if not isinstance(target, dict):
                raise RecipeError(f"{where(key)}: '{'.'.join(done)}' is not a section")
            raise RecipeError(f"{where(key)}: unknown key '{key}'{closest(part, list(target), '.'.join(done))}")
        if last:
            target[part] = parse_override_value(text)
        else:
            target = target[part]
        done.append(str(part))
    return check_value(raw, Recipe, "", where)


def parse_override_value(text: str) -> Any:
    """An override's value, parsed as YAML (`1e-4`, `[1024, 4096]`, `null`, `{fixed: 1.0}`)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RecipeError(f"override value {text!r} is not valid YAML ({getattr(e, 'problem', e)})") from None


def validate_recipe(recipe: Recipe, where: str = "recipe") -> None:
    """Checks that span fields; types were checked on loading. Raises RecipeError."""
    def bad(key: str, reason: str) -> RecipeError:
        return RecipeError(f"{where}: {key}: {reason}")

    d = recipe.data
    for i, src in enumerate(d.sources):
        key = f"data.sources.{i}"
        if src.weight <= 0:
            raise bad(f"{key}.weight", f"must be > 0, got {src.weight}")
        if src.kind in ("chat_jsonl", "text", "babilong") and not src.files():
            raise bad(key, f"kind {src.kind} needs 'path' or 'paths'")
        if src.kind in ("passkey", "babilong", "recall") and not src.filler:
            raise bad(key, f"kind {src.kind} needs 'filler' (book .txt files for background text)")
        if len(src.depth) != 2 or not 0.0 <= src.depth[0] <= src.depth[1] <= 1.0:
            raise bad(f"{key}.depth", f"must be [low, high] with 0 <= low <= high <= 1, got {src.depth}")
        if len(src.passage_tokens) != 2 or not 1 <= src.passage_tokens[0] <= src.passage_tokens[1]:
            raise bad(f"{key}.passage_tokens", f"must be [low, high] with 1 <= low <= high, got {src.passage_tokens}")
        if src.keys != "any" and src.kind != "passkey":
            raise bad(f"{key}.keys", f"only a passkey source draws keys, this one is {src.kind}")
    if d.opening_tokens < 0:
        raise bad("data.opening_tokens", f"must be >= 0 (0: off), got {d.opening_tokens}")
    if not 1 <= d.min_chunks <= d.max_chunks:
        raise bad("data.min_chunks", f"need 1 <= min_chunks <= max_chunks, got {d.min_chunks} and {d.max_chunks}")
    if d.max_tokens < 1:
        raise bad("data.max_tokens", f"must be >= 1, got {d.max_tokens}")
    if d.planner is not None:
        unknown = sorted(set(d.planner) - set(STRATEGIES))
        if unknown:
            raise bad("data.planner", f"unknown strategy {unknown[0]!r}; known: {', '.join(STRATEGIES)}")
        if any(v < 0 for v in d.planner.values()) or sum(d.planner.values()) <= 0:
            raise bad("data.planner", "weights must be >= 0 with a positive sum")
    if len(recipe.optim.betas) != 2:
        raise bad("optim.betas", f"needs two values, got {recipe.optim.betas}")
    positive = {"train.steps": recipe.train.steps, "train.batch_size": recipe.train.batch_size,
                "train.grad_accum": recipe.train.grad_accum, "parallel.nproc": recipe.parallel.nproc,
                "trainable.lora_rank": recipe.trainable.lora_rank, "checkpoint.keep": recipe.checkpoint.keep}
    for key, value in positive.items():
        if value < 1:
            raise bad(key, f"must be >= 1, got {value}")
    for key, value in {"optim.lr": recipe.optim.lr, "optim.warmup_steps": recipe.optim.warmup_steps,
                       "eval.every": recipe.eval.every, "checkpoint.every": recipe.checkpoint.every,
                       "train.max_minutes": recipe.train.max_minutes}.items():
        if value < 0:
            raise bad(key, f"must be >= 0, got {value}")
    if not 0.0 <= recipe.train.fifo_dropout <= 1.0:
        raise bad("train.fifo_dropout", f"must be a probability in [0, 1], got {recipe.train.fifo_dropout}")
    if recipe.train.gate_dilation < 1.0:
        raise bad("train.gate_dilation", f"must be >= 1 (1: off), got {recipe.train.gate_dilation}")
    for name, value in dataclasses.asdict(recipe.memory).items():
        if value is not None and value < (1 if name in ("chunk_size", "rla_rank") else 0):
            raise bad(f"memory.{name}", f"must be >= {1 if name in ('chunk_size', 'rla_rank') else 0}, got {value}")


def recipe_to_dict(recipe: Recipe) -> dict:
    """Plain dict (YAML/JSON-ready) of a recipe."""
    return dataclasses.asdict(recipe)


def recipe_to_yaml(recipe: Recipe) -> str:
    """The recipe as YAML that load_recipe reads back to an equal Recipe."""
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=None)


# Keys left out of the fingerprint: they may change when a run is resumed without changing what
# the run computes step by step. steps (extend a run; the cosine horizon then moves, knowingly),
# where and how often to log, save and evaluate, and how the same math is laid out on devices
# (parallel.*: the pipeline schedule is exact, METHOD.md 13).
VOLATILE_KEYS = ("train.steps", "train.log_every", "train.output_dir", "train.device", "train.max_minutes",
                 "checkpoint", "eval", "parallel")
# Keys added after checkpoints existed: left out of the fingerprint at their default, so those resume
# ("*": every item of a list).
LATER_DEFAULTS = {"train.fifo_dropout": 0.0, "train.gate_dilation": 1.0, "data.whole_chunks": True,
                  "data.opening_tokens": 0, "memory.initial_state": None, "data.sources.*.keys": "any"}


def recipe_fingerprint(recipe: Recipe) -> str:
    """sha256 (hex) of the recipe minus VOLATILE_KEYS: a checkpoint resumes only under an equal one."""
    d = recipe_to_dict(recipe)
    for key in VOLATILE_KEYS:
        *head, last = key.split(".")
        section = d
        for part in head:
            section = section[part]
        section.pop(last, None)
    for key, default in LATER_DEFAULTS.items():
        *path, last = key.split(".")
        sections = [d]
        for part in path:
            sections = [x for s in sections for x in (s if part == "*" else [s[part]])]
        for section in sections:
            if section.get(last) == default:
                section.pop(last)
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
