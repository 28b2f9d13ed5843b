"""`comet finetune RECIPE [key.sub=value ...]`: run a fine-tuning recipe (comet_cli/finetune/train.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from comet_cli import console
from comet_cli.errors import CometError, RecipeError


def find_recipe(name: str) -> Path:
    """A recipe file path, or the name of a shipped recipe (`tiny-smoke`, `smollm2-passkey.yaml`)."""
    path = Path(name)
    if path.exists():
        return path
    from comet_recipes import RECIPES_DIR, recipe_path

    if os.sep not in name and recipe_path(name).is_file():
        return recipe_path(name)
    known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
    raise RecipeError(f"{name}: no such recipe file (shipped recipes: {known})")


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Print the resolved recipe and the chunk plan, then exit.")
@click.option("--resume", "resume", type=click.Path(), help="Continue from an output dir or a checkpoint dir, writing on in that output dir.")
@click.option("--nproc", type=click.IntRange(1), help="Pipeline ranks on this machine (overrides parallel.nproc); "
              "relaunches itself under torchrun.")
@click.option("--overwrite", is_flag=True, help="Start over in an output dir that holds an earlier run.")
@click.option("--no-export", is_flag=True, help="Skip writing OUTPUT_DIR/model and memory.safetensors at the end.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or step lines (metrics.jsonl is still written).")
def finetune(recipe, overrides, dry_run, resume, nproc, overwrite, no_export, quiet):
    """Fine-tune a CoMeT model from a YAML recipe.

    RECIPE is a YAML file or the name of a shipped recipe (tiny-smoke, smollm2-passkey,
    smollm2-books, qwen3-gpu). OVERRIDES are key.sub=value pairs, type-checked like the file.
    Relative data paths are relative to the recipe file; ${COMET_DATA} is the data folder
    (default: ../shared/data beside the checkout).

    Writes OUTPUT_DIR/metrics.jsonl, checkpoints/step-N, and at the end OUTPUT_DIR/model
    (a CoMeT folder for `comet ask --model`) and OUTPUT_DIR/memory.safetensors.

    \b
    Examples:
      comet finetune tiny-smoke
      comet finetune recipes/smollm2-passkey.yaml train.steps=50 optim.lr=1e-4
      comet finetune recipes/smollm2-passkey.yaml --resume runs/smollm2-passkey

    --resume continues in the resumed run's folder (train.output_dir=DIR sends the rest elsewhere).
      comet finetune recipes/qwen3-gpu.yaml --nproc 4 --dry-run
    """
    from comet_cli.finetune.config import apply_override, load_recipe

    path = find_recipe(recipe)
    rec = load_recipe(path, overrides)
    if nproc is not None:
        rec = apply_override(rec, f"parallel.nproc={nproc}")
    if resume and not any(o.startswith("train.output_dir=") for o in overrides):
        # a resumed run goes on writing where it was, not into the recipe file's output_dir
        from comet_cli.finetune.checkpoint import find_checkpoint, run_folder

        rec = apply_override(rec, f"train.output_dir={run_folder(find_checkpoint(resume))}")
    under_launcher = int(os.environ.get("WORLD_SIZE", "1")) > 1
    world = int(os.environ["WORLD_SIZE"]) if under_launcher else rec.parallel.nproc
    if dry_run:
        show_plan(rec, path.parent, world)
        return
    if world > 1 and not under_launcher:
        preflight(rec, path.parent, resume, world, overwrite)
        args = ["finetune", str(path), *overrides] + (["--resume", resume] if resume else []) + \
            [flag for flag, on in (("--overwrite", overwrite), ("--no-export", no_export), ("--quiet", quiet)) if on]
        relaunch(world, args)
        return
    run_recipe(rec, path.parent, resume, overwrite, quiet, no_export)


def run_recipe(rec, recipe_dir: Path, resume, overwrite: bool, quiet: bool, no_export: bool) -> None:
    from comet_cli.finetune import train as T

    run = None
    try:
        with console.err.status("setting up", spinner="dots") as status:
            run = T.setup(rec, recipe_dir, resume=resume, overwrite=overwrite, quiet=quiet, step=status.update)
        main = run.dist.main
        if main and not quiet:
            console.info(f"training {run.tset.count():,} parameters ({rec.trainable.mode}) of {run.model_dir} "
                         f"on {run.device}" + (f" x{run.dist.world} ranks" if run.dist.world > 1 else "")
                         + f"; steps {run.start_step + 1}..{rec.train.steps}")
        summary = T.train(run)
        # a run resumed at its last step only exports: `--resume DIR` doubles as export-only
        if not no_export:
            written = T.export(run)
            if main:
                final = summary.get("final", {})
                trained = (f"trained {summary['steps']} steps in {summary['seconds']:.1f} s (final loss "
                           f"{final.get('loss', float('nan')):.4f}); " if summary.get("steps") else "")
                console.result(f"{trained}wrote {written['model']} and {written['memory_weights']}; "
                               f"try `comet ask --model {written['model']} FILE QUESTION`")
    except KeyboardInterrupt:
        if run is not None and run.dist.main:
            from comet_cli.finetune.checkpoint import list_checkpoints

            kept = list_checkpoints(run.output_dir)
            console.info(f"stopped; {'the last checkpoint is ' + str(kept[-1]) if kept else 'no checkpoint yet'}"
                         + (f"; continue with --resume {run.output_dir}" if kept else ""))
        raise
    except CometError as e:
        if run is not None and run.dist.world > 1:
            raise type(e)(f"[rank {run.dist.rank}] {e}") from None
        raise
    finally:
        T.cleanup(run)


def preflight(rec, recipe_dir: Path, resume, world: int, overwrite: bool) -> None:
    """Checks done once in the launching process, so bad input fails with one line before any
    worker starts: resume fingerprint, data files, chunk counts against ranks; converts the model."""
    from comet_cli.finetune import checkpoint as ckpt
    from comet_cli.finetune import sources as S
    from comet_cli.finetune import train as T
    from comet_cli.finetune.config import recipe_fingerprint

    if resume:
        ckpt.check_fingerprint(ckpt.find_checkpoint(resume), recipe_fingerprint(rec))
    T.check_output_dir(Path(rec.train.output_dir), bool(resume), overwrite, remove=False)
    S.prepare_data_section(rec.data, recipe_dir)
    folder = S.resolve_model_dir(rec)
    T.check_lengths(rec.data, _chunk_size(folder), world)


def relaunch(world: int, args: list[str]) -> None:
    """Run `comet ARGS` under torch.distributed.run with `world` local processes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}",
           "-m", "comet_cli.cli", *args]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // world))))
    console.info(f"launching {world} pipeline ranks: torchrun --standalone --nproc_per_node={world} ...")
    rc = subprocess.call(cmd, env=env)
    if rc:
        raise CometError(f"{world}-rank fine-tuning failed (exit code {rc}); the first error above names the cause")


def _chunk_size(folder: Path) -> int:
    import json

    return int(json.loads((Path(folder) / "config.json").read_text())["comet"]["chunk_size"])


def show_plan(rec, recipe_dir: Path, world: int, n_samples: int = 8) -> None:
    """--dry-run: the resolved recipe (YAML) and, for the first samples, how each is cut into
    chunks and spread over the ranks, with the estimated memory per rank."""
    import json

    from comet_cli.finetune import sources as S
    from comet_cli.finetune import train as T
    from comet_cli.finetune.config import recipe_to_yaml
    from comet_cli.finetune.data import build_stream
    from comet_cli.finetune.pipeline_plan import estimate_rank_memory, plan_blocks
    from comet_cli.finetune.planning import boundary_token_ids, plan_sample_chunks
    from comet_cli.modelref import quiet_transformers
    from comet_models.config import CometConfig

    quiet_transformers()
    console.result("# resolved recipe")
    console.result(recipe_to_yaml(rec).rstrip())
    data = S.prepare_data_section(rec.data, recipe_dir)
    with console.err.status("resolving the model", spinner="dots") as status:
        folder = S.resolve_model_dir(rec, status.update)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(folder)
    conf = json.loads((Path(folder) / "config.json").read_text())
    cfg = CometConfig.from_dict(conf["comet"])
    T.check_lengths(data, cfg.chunk_size, world)
    hidden = conf.get("hidden_size") or conf.get("text_config", {}).get("hidden_size")
    n_layers = conf.get("num_hidden_layers")
    n_params = _count_params(Path(folder))
    bytes_per = 2 if rec.model.dtype in ("bfloat16", "float16") else 4
    stream = build_stream(data, tok, cfg.chunk_size)
    boundaries = boundary_token_ids(tok)
    console.result(f"\n# plan: model {folder} ({n_params:,} parameters, {n_layers} layers, hidden {hidden}), "
                   f"chunk_size {cfg.chunk_size}, {world} rank(s)")
    console.result("sample  tokens  supervised  chunks  chunks/rank        est. memory/rank (MiB)")
    per_step = rec.train.batch_size * rec.train.grad_accum
    for i in range(min(n_samples, per_step * rec.train.steps)):
        s = next(stream)
        step, j = i // per_step + 1, i % per_step
        sizes = plan_sample_chunks(s, cfg.chunk_size, data, rec.train.seed, step, j, world, boundaries)
        blocks = plan_blocks(len(sizes), world)
        mem = estimate_rank_memory(sizes, cfg, world, hidden=hidden, n_layers=n_layers, n_params=n_params,
                                   bytes_per_value=bytes_per)
        console.result(f"{i:>6}  {len(s.input_ids):>6}  {s.n_supervised:>10}  {len(sizes):>6}  "
                       f"{'/'.join(str(len(b)) for b in blocks):<17}  "
                       f"{' '.join(f'{m.total_bytes / 2**20:,.0f}' for m in mem)}")


def _count_params(folder: Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for k in st.keys():
                n = 1
                for d in st.get_slice(k).get_shape():
                    n *= d
                total += n
    return total
