"""`comet`: a thin click group. Commands live in comet_cli/commands/, imported lazily so
that `comet --help` answers instantly; torch is only imported inside a command."""
from __future__ import annotations

import importlib
import os
import sys

import click

from comet_cli import __version__

# tqdm reads TQDM_DISABLE once, when it is first imported (transformers imports it early), so the
# switch must be set before any command module loads; the GGUF de-quantizer's bar would otherwise
# leak into `comet finetune` on first use. Our own progress goes through rich.
os.environ.setdefault("TQDM_DISABLE", "1")

# name -> (module in comet_cli.commands, attribute, one-line help shown by `comet --help`)
COMMANDS = {
    "convert": ("convert", "convert", "Convert a Hugging Face causal LM (folder or GGUF) into a CoMeT model."),
    "info": ("info", "info", "Describe a CoMeT model folder: family, parameters, chunk layout, state size."),
    "state": ("state", "state", "Inspect memory-state files (tokens read, model fingerprint, sha256)."),
    "summarize": ("read", "summarize", "Stream a document, folder or stdin through memory and summarize it."),
    "ask": ("read", "ask", "Stream a document, folder or stdin through memory and answer a question."),
    "plan": ("read", "plan", "Predict tokens, chunks, time and peak memory for reading PATH."),
    "finetune": ("finetune", "finetune", "Fine-tune a CoMeT model from a YAML recipe (pipeline-parallel)."),
    "eval": ("eval", "eval_cmd", "Evaluate a model on long-document tasks against baselines."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(n for n, (mod, _, _) in COMMANDS.items() if _module_exists(mod))

    def get_command(self, ctx, name):
        if name not in COMMANDS or not _module_exists(COMMANDS[name][0]):
            return None
        mod, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"comet_cli.commands.{mod}"), attr)

    def format_commands(self, ctx, formatter):
        rows = [(n, COMMANDS[n][2]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _module_exists(mod: str) -> bool:
    return importlib.util.find_spec(f"comet_cli.commands.{mod}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="comet")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx, debug):
    """CoMeT: run a language model over inputs far longer than its context window,
    with constant memory (Collaborative Memory Transformer, arXiv 2602.01766).

    With no --model, commands use the embedded default (SmolLM2-135M-Instruct),
    converted on first use into $COMET_HOME (default ~/.cache/comet)."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv=None):
    """Entry point: the one boundary where typed errors become one-line messages."""
    from comet_cli import console
    from comet_cli.errors import CometError

    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        cli.main(args=argv, prog_name="comet", standalone_mode=False)
    except click.exceptions.Abort:
        console.error("interrupted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except CometError as e:
        if debug:
            raise
        console.error(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.error("interrupted; progress up to the last checkpoint is kept")
        sys.exit(130)
    except OSError as e:
        if debug:
            raise
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        console.error(f"{where}{e.strerror or e}")
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - last-resort boundary, see --debug
        if debug:
            raise
        console.error(f"{type(e).__name__}: {e} (rerun with --debug for the traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
