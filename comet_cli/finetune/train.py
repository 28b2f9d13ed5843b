"""The fine-tuning recipe as a plain loop: setup, train, save_checkpoint, export, cleanup.

    run = setup(recipe, recipe_dir)          # model, trainable set, AdamW, data stream, resume
    train(run)                               # steps, metrics.jsonl, checkpoints, passkey eval
    export(run)                              # OUTPUT_DIR/model and OUTPUT_DIR/memory.safetensors
    cleanup(run)

One optimizer step draws batch_size * grad_accum samples from the MixedStream, cuts each into
chunks (planning.plan_sample, seeded by the step so a resumed run plans the same), and
backpropagates the summed loss divided by the step's supervised token count (METHOD.md 8.1).
With WORLD_SIZE > 1 (torchrun) every rank gets the same samples and computes its own block of
chunks (parallel.pipeline_loss, METHOD.md 10); gradients are then summed over ranks, so every
replica takes the same AdamW step.

Everything a step depends on is the weights, the optimizer state, the data position and the step
number, all in a checkpoint: a resumed run logs the same losses as an uninterrupted one.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from comet_cli import console
from comet_cli.errors import RecipeError
from comet_cli.finetune import checkpoint as ckpt
from comet_cli.finetune.config import Recipe, recipe_fingerprint, recipe_to_yaml
from comet_cli.finetune.data import Sample, build_stream
from comet_cli.finetune.evaluate import evaluate_now
from comet_cli.finetune.metrics import METRICS_FILE, log_line, trim_metrics, window_metrics
from comet_cli.finetune.planning import boundary_token_ids, plan_sample_chunks
from comet_cli.finetune.sources import prepare_data_section, resolve_model_dir
from comet_cli.finetune.trainable import TrainableSet, load_trainable_state, mark_trainable, trainable_state_dict

@dataclass
class Dist:
    """This process's place in the pipeline (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    group: object = None

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass
class Run:
    """Everything `setup` builds and the loop uses."""

    recipe: Recipe
    fingerprint: str
    output_dir: Path
    model_dir: Path
    model: torch.nn.Module
    tokenizer: object
    tset: TrainableSet
    optimizer: torch.optim.Optimizer
    stream: object
    device: torch.device
    autocast_dtype: torch.dtype | None
    dist: Dist
    data: object = None  # the recipe's DataSection with resolved paths
    boundaries: frozenset = frozenset()
    start_step: int = 0
    quiet: bool = False
    summary: dict = field(default_factory=dict)
    t_start: float = 0.0  # when this invocation's training loop began (train.max_minutes)


def read_dist_env() -> Dist:
    """RANK / WORLD_SIZE as set by torchrun or accelerate launch."""
    return Dist(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))


def pick_device(recipe: Recipe, dist: Dist) -> torch.device:
    want = recipe.train.device
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RecipeError("train.device is cuda but no CUDA device is available (use train.device=cpu)")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if dist.world > 1 else 0)
    return torch.device("cpu")


def _dtype(name: str, default: torch.dtype) -> torch.dtype:
    return default if name == "auto" else getattr(torch, name)


def autocast_dtype(recipe: Recipe, device: torch.device) -> torch.dtype | None:
    """train.dtype: mixed precision for the forward (weights and AdamW stay in model.dtype).
    auto = bfloat16 on a GPU that supports it, plain float32 on CPU."""
    if recipe.train.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    dt = _dtype(recipe.train.dtype, torch.float32)
    return None if dt == torch.float32 else dt


def check_output_dir(output_dir: Path, resuming: bool, overwrite: bool, remove: bool = True) -> None:
    """A fresh run never mixes into an earlier run's checkpoints and metrics: fail, or with
    overwrite (and remove) delete what the earlier run wrote."""
    import shutil

    if resuming or not output_dir.exists():
        return
    old = [p for p in (output_dir / "checkpoints", output_dir / METRICS_FILE) if p.exists()]
    if old and not overwrite:
        raise RecipeError(f"{output_dir}: holds an earlier run; continue it with --resume {output_dir}, "
                          f"start over with --overwrite, or pick another train.output_dir=...")
    if not remove:
        return
    for p in old + [output_dir / "model", output_dir / "memory.safetensors", output_dir / "lora.safetensors"]:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


# ---- setup --------------------------------------------------------------------------------------

def setup(recipe: Recipe, recipe_dir: Path | None = None, resume: str | None = None, overwrite: bool = False,
          quiet: bool = False, step=lambda msg: None) -> Run:
    """Load the model, mark what trains, build AdamW and the data stream; restore a checkpoint.

    A resume folder made by another recipe fails here, before the model is loaded."""
    from comet_cli.modelref import quiet_transformers

    quiet_transformers()
    dist = read_dist_env()
    fingerprint = recipe_fingerprint(recipe)
    checkpoint = None
    if resume:
        checkpoint = ckpt.find_checkpoint(resume)
        ckpt.check_fingerprint(checkpoint, fingerprint)
    output_dir = Path(recipe.train.output_dir)
    data = prepare_data_section(recipe.data, recipe_dir)
    # every rank checks (so every rank fails alike); only rank 0 writes
    check_output_dir(output_dir, checkpoint is not None, overwrite, remove=dist.main)
    if dist.main:
        output_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(recipe, dist)
    if dist.world > 1:
        from comet_cli.finetune import parallel

        backend = None if recipe.parallel.backend == "auto" else recipe.parallel.backend
        parallel.init_pipeline(backend)
    # rank 0 converts the source model (if needed) before the others read it
    model_dir = resolve_model_dir(recipe, step) if dist.main else None
    _barrier(dist)
    model_dir = model_dir or resolve_model_dir(recipe, step)

    from comet_models.convert import load_comet

    step(f"loading {model_dir}")
    model, tok = load_comet(model_dir, dtype=_dtype(recipe.model.dtype, torch.float32))
    model.to(device).train()
    torch.manual_seed(recipe.train.seed)
    random.seed(recipe.train.seed)
    tset = mark_trainable(model, recipe.trainable)
    o = recipe.optim
    optimizer = torch.optim.AdamW(tset.param_groups(o.lr, o.weight_decay, recipe.trainable.memory_lr_mult),
                                  betas=tuple(o.betas), eps=o.eps)
    start_step, position = 0, 0
    if checkpoint is not None:
        step(f"resuming from {checkpoint}")
        state = ckpt.load_checkpoint(checkpoint, fingerprint, device)
        load_trainable_state(model, state.weights)
        optimizer.load_state_dict(state.optimizer)
        start_step, position = state.step, state.data_position
    step("preparing data")
    check_lengths(data, model.comet_config.chunk_size, dist.world)
    stream = build_stream(data, tok, model.comet_config.chunk_size, position)
    run = Run(recipe, fingerprint, output_dir, Path(model_dir), model, tok, tset, optimizer, stream, device,
              autocast_dtype(recipe, device), dist, data, boundary_token_ids(tok), start_step, quiet or not dist.main)
    if dist.main:
        trim_metrics(output_dir / METRICS_FILE, start_step)
        (output_dir / "recipe.yaml").write_text(recipe_to_yaml(recipe))
    return run


def check_lengths(data, chunk_size: int, world: int) -> None:
    """Samples must span more than one chunk (else memory is never used) and, in a pipeline,
    give every rank at least one chunk. Raises RecipeError."""
    if data.max_tokens <= chunk_size:
        raise RecipeError(f"data.max_tokens ({data.max_tokens}) is not longer than one chunk (chunk_size "
                          f"{chunk_size}): memory would never be used; raise data.max_tokens or lower memory.chunk_size")
    if world > 1:
        from comet_cli.finetune.pipeline_plan import plan_blocks

        # the longest samples fill ceil(max_tokens / chunk_size) chunks; shorter ones are cut evenly
        plan_blocks(-(-data.max_tokens // chunk_size), world)


def _barrier(dist: Dist) -> None:
    if dist.world > 1:
        torch.distributed.barrier(group=dist.group)


# ---- one step -----------------------------------------------------------------------------------

def chunk_plan(run: Run, sample: Sample, step: int, index: int) -> list[int]:
    """Chunk sizes of sample `index` of optimizer step `step` (see plan_sample_chunks)."""
    return plan_sample_chunks(sample, run.model.comet_config.chunk_size, run.recipe.data, run.recipe.train.seed,
                              step, index, run.dist.world, run.boundaries)


def lr_factor(recipe: Recipe, step: int, time_used: float = 0.0) -> float:
    """Multiplier of each group's base LR for the optimizer step `step` (1-based): linear warm-up
    over optim.warmup_steps, then cosine to zero at train.steps (or constant). `time_used` is the
    fraction of train.max_minutes spent; the cosine follows whichever of steps and time is further."""
    o, total = recipe.optim, recipe.train.steps
    if step <= o.warmup_steps:
        return step / max(1, o.warmup_steps)
    if o.schedule == "constant":
        return 1.0
    progress = max((step - o.warmup_steps) / max(1, total - o.warmup_steps + 1), time_used)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def time_used(run: Run) -> float:
    """Fraction of this invocation's train.max_minutes spent (0 without a budget); on several
    ranks the largest, so that all ranks agree on the LR and on when to stop."""
    budget = run.recipe.train.max_minutes * 60
    if not budget or not run.t_start:
        return 0.0
    used = (time.time() - run.t_start) / budget
    if run.dist.world > 1:
        t = torch.tensor([used], dtype=torch.float64, device=run.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX, group=run.dist.group)
        used = float(t.item())
    return used


def train_step(run: Run, step: int) -> dict:
    """One optimizer step; returns its metrics (loss is the step's token-mean)."""
    recipe, model = run.recipe, run.model
    t0 = time.time()
    samples = [next(run.stream) for _ in range(recipe.train.batch_size * recipe.train.grad_accum)]
    total = sum(s.n_supervised for s in samples)
    loss_sum, tokens, dropped = 0.0, sum(len(s.input_ids) for s in samples), 0
    for j, s in enumerate(samples):
        keep, power = keep_temp(run, step, j), gate_power(run, step, j)
        dropped += not keep
        sizes = chunk_plan(run, s, step, j)
        ids = torch.tensor([s.input_ids], device=run.device)
        labels = torch.tensor([s.labels], device=run.device)
        with torch.autocast(run.device.type, dtype=run.autocast_dtype or torch.float32,
                            enabled=run.autocast_dtype is not None):
            loss, _ = _sample_loss(run, ids, labels, sizes, keep, power)
        if total:
            (loss / total).backward()
        loss_sum += float(loss.detach())
    if run.dist.world > 1:
        from comet_cli.finetune import parallel

        with parallel.abort_on_error(run.dist.group):
            parallel.allreduce_grads(model, run.dist.group)
            loss_sum, _ = parallel.reduce_loss(torch.tensor(loss_sum, device=run.device), total, run.dist.group)
    params = run.tset.parameters()
    clip = recipe.optim.grad_clip if recipe.optim.grad_clip > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
    used = time_used(run)  # one all-reduce per step on several ranks; the loop reads it from the metrics
    factor = lr_factor(recipe, step, used)
    for g in run.optimizer.param_groups:
        g["lr"] = g["base_lr"] * factor
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    seconds = time.time() - t0
    m = {"step": step, "loss": loss_sum / max(total, 1), "lr": recipe.optim.lr * factor,
         "grad_norm": grad_norm, "tokens": tokens, "tokens_per_s": tokens / max(seconds, 1e-9),
         "seconds": seconds, "time_used": used}
    if recipe.train.fifo_dropout > 0:
        m["fifo_dropped"] = dropped  # samples of this step trained without temporary memory
    return m


def keep_temp(run: Run, step: int, index: int) -> bool:
    """Whether sample `index` of step `step` keeps its temporary memory (train.fifo_dropout); drawn
    from (seed, step, index) like the chunk plan, so every rank and a resumed run agree."""
    p = run.recipe.train.fifo_dropout
    return p <= 0 or random.Random(f"fifo:{run.recipe.train.seed}:{step}:{index}").random() >= p


def gate_power(run: Run, step: int, index: int) -> float:
    """The gate power m of sample `index` of step `step` (train.gate_dilation D): log-uniform in
    [1, D], drawn from (seed, step, index) so that every rank and a resumed run agree; 1 when off."""
    d = run.recipe.train.gate_dilation
    if d <= 1.0:
        return 1.0
    return d ** random.Random(f"gate:{run.recipe.train.seed}:{step}:{index}").random()


def _sample_loss(run: Run, ids, labels, sizes, keep: bool = True, power: float = 1.0):
    if run.dist.world > 1:
        from comet_cli.finetune.parallel import pipeline_loss

        return pipeline_loss(run.model, ids, labels, sizes, run.dist.group, run.recipe.parallel.schedule,
                             keep_temp=keep, gate_power=power)
    from comet_models.chunked import sequence_loss

    return sequence_loss(run.model, ids, labels, sizes, keep_temp=keep, gate_power=power)


# ---- the loop -----------------------------------------------------------------------------------

def train(run: Run) -> dict:
    """Steps start_step+1 .. train.steps, with logging, evaluation and checkpoints."""
    recipe = run.recipe
    steps, every = recipe.train.steps, recipe.checkpoint.every
    if run.start_step >= steps:
        console.info(f"checkpoint is at step {run.start_step}, train.steps is {steps}: nothing to train "
                     f"(raise train.steps=... to continue)")
        return {"steps": 0}
    metrics_path = run.output_dir / METRICS_FILE
    window, last, step = [], {}, run.start_step
    t_start = run.t_start = time.time()
    with console.make_progress(quiet=run.quiet) as progress:
        task = progress.add_task("fine-tuning", total=steps, completed=run.start_step, extra="")
        for step in range(run.start_step + 1, steps + 1):
            m = train_step(run, step)
            window.append(m)
            out_of_time = m["time_used"] >= 1.0
            evaluated = evaluate_now(run, step, final=out_of_time)
            if step % recipe.train.log_every == 0 or step == steps or evaluated or out_of_time:
                last = window_metrics(window, step, time.time() - t_start)
                last.update(evaluated)
                window = []
                if run.dist.main:
                    with open(metrics_path, "a") as f:
                        f.write(json.dumps(last) + "\n")
                    # with a live bar, rich prints lines above it: show evaluations there too
                    if progress.disable or evaluated:
                        log_line(last, steps, run.quiet)
            progress.update(task, completed=step,
                            extra=f"loss {m['loss']:.3f}  {m['tokens_per_s']:,.0f} tok/s")
            if (every and step % every == 0) or step == steps or out_of_time:
                save_checkpoint(run, step)
            if out_of_time:
                console.info(f"train.max_minutes ({recipe.train.max_minutes:g}) used up at step {step}/{steps}: "
                             f"stopping (checkpoint saved; resume with --resume {run.output_dir})")
                break
    run.summary = {"steps": step - run.start_step, "final": last, "seconds": time.time() - t_start}
    return run.summary


# ---- checkpoints, export, cleanup ---------------------------------------------------------------

def save_checkpoint(run: Run, step: int) -> Path | None:
    """Rank 0 writes OUTPUT_DIR/checkpoints/step-N (replicas are identical); the others wait."""
    path = None
    if run.dist.main:
        path = ckpt.save_checkpoint(run.output_dir, step, trainable_state_dict(run.model, run.tset), run.optimizer,
                                    run.stream.position, run.fingerprint, recipe_to_yaml(run.recipe),
                                    run.tset.mode, run.recipe.checkpoint.keep)
    _barrier(run.dist)
    return path


def training_note(recipe: Recipe, steps: int) -> str:
    """One line for the `training` metadata of the exported weights."""
    kinds = "+".join(dict.fromkeys(s.kind for s in recipe.data.sources)) or "no"
    t = recipe.trainable
    mode = f"lora r{t.lora_rank} on {','.join(t.lora_targets)}" if t.mode == "lora" else f"{t.mode} weights"
    fd = f", fifo dropout {recipe.train.fifo_dropout:g}" if recipe.train.fifo_dropout else ""
    if recipe.train.gate_dilation > 1:
        fd += f", gate dilation up to {recipe.train.gate_dilation:g}"
    return f"{kinds} data, {steps} steps, {mode}, lr {recipe.optim.lr:g}{fd}, seed {recipe.train.seed}"


def export(run: Run) -> dict:
    """Write OUTPUT_DIR/model (a CoMeT folder: the source folder with the trained weights) and
    OUTPUT_DIR/memory.safetensors. Rank 0 only. LoRA is merged into the base weights of the
    folder (and its tensors kept in OUTPUT_DIR/lora.safetensors); the model is changed in place,
    so export is the last thing a run does."""
    out = {}
    if run.dist.main:
        step = run.start_step + run.summary.get("steps", 0)
        out = ckpt.export_model(run.model, run.tset, run.model_dir, run.output_dir,
                           training_note(run.recipe, step or run.recipe.train.steps))
    _barrier(run.dist)
    return out


def cleanup(run: Run | None) -> None:
    if run is not None and run.dist.world > 1 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()

